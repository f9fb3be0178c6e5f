-- Argo CD health of a vmgitops.io Promotion: Succeeded is Healthy; Failed and RolledBack
-- are Degraded; WaitingForApproval is Suspended (a human approves with the annotation
-- vmgitops.io/approved-by=<who>); Pending, Promoting and Verifying are Progressing.
local hs = {status = "Progressing", message = "waiting for the operator"}
local st = obj.status
if st == nil or st.phase == nil then
  return hs
end
local detail = st.message or ""
if st.reason ~= nil and st.reason ~= st.phase then
  detail = st.reason .. ": " .. detail
end
local phase = st.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "RolledBack" then
  hs.status = "Degraded"
  detail = "rolled back: " .. detail
elseif phase == "WaitingForApproval" then
  hs.status = "Suspended"
  detail = "waiting for approval: kubectl annotate promotion " .. obj.metadata.name .. " vmgitops.io/approved-by=<you>"
else
  hs.status = "Progressing"
end
hs.message = detail
return hs
