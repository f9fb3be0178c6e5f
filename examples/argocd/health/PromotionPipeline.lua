-- Argo CD health of a vmgitops.io PromotionPipeline, the worst of its stages:
-- Degraded when a stage is held (after a failed promotion or a manual rollback, until a
-- user clears it) or an application is missing; Suspended when a stage waits for
-- approval; Progressing while a promotion is under way; Healthy otherwise.
local hs = {status = "Progressing", message = "waiting for the operator"}
local st = obj.status
if st == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (st.observedGeneration == nil or st.observedGeneration < generation) then
  hs.message = "the operator has not reconciled the latest spec yet"
  return hs
end
for _, c in ipairs(st.conditions or {}) do
  if c.type == "Ready" and c.status == "False" then
    hs.status = "Degraded"
    hs.message = (c.reason or "NotReady") .. ": " .. (c.message or "")
    return hs
  end
end
local held, approval, moving = {}, {}, {}
for _, s in ipairs(st.stages or {}) do
  if s.hold ~= nil then
    table.insert(held, s.name .. ": " .. (s.hold.reason or "Held"))
  end
  local waiting = s.waiting and s.waiting.reason
  if s.phase == "WaitingForApproval" or waiting == "WaitingForApproval" then
    table.insert(approval, s.name)
  elseif s.phase == "Pending" or s.phase == "Promoting" or s.phase == "Verifying" or waiting == "Promoting" then
    table.insert(moving, s.name)
  end
end
if #held > 0 then
  hs.status = "Degraded"
  hs.message = "held: " .. table.concat(held, "; ") .. " (clear with the annotation vmgitops.io/clear-hold=<stage>)"
elseif #approval > 0 then
  hs.status = "Suspended"
  hs.message = "waiting for approval: " .. table.concat(approval, ", ")
elseif #moving > 0 then
  hs.status = "Progressing"
  hs.message = "promoting into " .. table.concat(moving, ", ")
else
  hs.status = "Healthy"
  hs.message = st.summary or ""
end
return hs
