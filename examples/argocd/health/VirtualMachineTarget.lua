-- Argo CD health of a vmgitops.io VirtualMachineTarget: can the operator reach the VM?
-- Healthy: the last SSH probe connected (Reachable=True). Degraded: it did not, with
-- the reason (HostKeyMismatch, AuthenticationFailed, Timeout, ...). Suspended: paused.
-- Progressing: not probed yet, or not since the last spec change.
local hs = {status = "Progressing", message = "waiting for the first probe of the VM"}
if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "spec.paused is true: the VM is neither probed nor changed"
  return hs
end
local st = obj.status
if st == nil or st.conditions == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and st.observedGeneration ~= nil and st.observedGeneration < generation then
  hs.message = "the operator has not probed the latest spec yet"
  return hs
end
for _, c in ipairs(st.conditions) do
  if c.type == "Reachable" then
    if c.status == "True" then
      hs.status = "Healthy"
      hs.message = c.message or "connected"
    elseif c.status == "False" then
      hs.status = "Degraded"
      hs.message = (c.reason or "Unreachable") .. ": " .. (c.message or "")
    end
    return hs
  end
end
return hs
