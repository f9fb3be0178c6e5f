-- Argo CD health of a vmgitops.io VMApplication: its VMs' health as the operator reports
-- it (status.health, the worst of its targets), made stricter where Argo CD's sync waves
-- need it: a rollout in progress, or a new revision that automated sync is about to roll
-- out, is Progressing; a failed rollout, or Git or the manifest failing, is Degraded.
local hs = {status = "Progressing", message = "waiting for the operator"}
local spec = obj.spec or {}
local st = obj.status
if spec.paused == true then
  hs.status = "Suspended"
  hs.message = "spec.paused is true: nothing is synced"
  return hs
end
if st == nil then
  return hs
end
local function condition(kind)
  for _, c in ipairs(st.conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end
local function short(rev)
  if rev == nil then
    return "?"
  end
  return string.sub(rev, 1, 12)
end
local sync = st.sync or {}
local op = st.operation
if op ~= nil and op.phase == "Running" then
  local batches = op.batches or {}
  hs.message = "rolling out " .. short(op.revision) .. ": batch " .. (batches.current or 0) .. "/" .. (batches.total or 0)
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (st.observedGeneration == nil or st.observedGeneration < generation) then
  hs.message = "the operator has not reconciled the latest spec yet"
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "False" and ready.reason ~= nil and ready.reason ~= "NotReady" then
  -- Git or the manifest failed (GitFetchFailed, RevisionNotFound, ManifestInvalid, ...).
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. (ready.message or "")
  return hs
end
if op ~= nil and op.phase == "Failed" and op.revision == sync.revision then
  hs.status = "Degraded"
  hs.message = "the rollout of " .. short(op.revision) .. " failed: " .. (op.message or "")
  return hs
end
local automated = spec.syncPolicy ~= nil and spec.syncPolicy.automated ~= nil
local observeOnly = spec.managementPolicy == "ObserveOnly"
if automated and not observeOnly and sync.status == "OutOfSync" and (op == nil or op.revision ~= sync.revision) then
  hs.message = "automated sync to " .. short(sync.revision) .. " is due"
  return hs
end
local health = st.health or {}
local status = health.status
if status == "Missing" then
  -- No VirtualMachineTarget matches the selector; for Argo CD, Missing means "not in the
  -- cluster", which this application is.
  hs.status = "Degraded"
  hs.message = health.message or "the destination selector matches no VirtualMachineTarget"
  return hs
end
if status == "Healthy" or status == "Progressing" or status == "Degraded" or status == "Suspended" or status == "Unknown" then
  hs.status = status
  hs.message = health.message or ""
  if status == "Healthy" and sync.status == "OutOfSync" then
    hs.message = "OutOfSync: the VMs differ from " .. short(sync.revision)
  end
  return hs
end
return hs
