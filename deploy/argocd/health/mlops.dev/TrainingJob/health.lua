-- Argo CD health of a TrainingJob (mlops.dev/v1alpha1), from its status.phase:
-- Succeeded -> Healthy, Failed -> Degraded, anything else (Pending, Running) -> Progressing.
local hs = {}

local function failing_condition(status)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.status == "False" and condition.message ~= nil and condition.message ~= "" then
      return condition
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the TrainingJob"
  return hs
end
if status.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end

if status.phase == "Succeeded" then
  hs.status = "Healthy"
  if status.model ~= nil and status.model.version ~= nil then
    hs.message = "Trained model version " .. tostring(status.model.version)
  else
    hs.message = status.message or "Succeeded"
  end
elseif status.phase == "Failed" then
  hs.status = "Degraded"
  local condition = failing_condition(status)
  if status.message ~= nil and status.message ~= "" then
    hs.message = status.message
  elseif condition ~= nil then
    hs.message = (condition.reason or condition.type) .. ": " .. condition.message
  else
    hs.message = "Failed"
  end
else
  hs.status = "Progressing"
  hs.message = status.message or status.phase
end
return hs
