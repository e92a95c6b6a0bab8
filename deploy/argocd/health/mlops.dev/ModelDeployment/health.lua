-- Argo CD health of a ModelDeployment (mlops.dev/v1alpha1), from its status.phase:
-- Stable, Promoted -> Healthy (Progressing while status.handoff says the promotion's hand-off
-- is under way); Progressing -> Progressing; Paused -> Suspended (a rollout
-- waiting for a person, as Argo Rollouts reports a paused rollout); RolledBack, Degraded,
-- Failed -> Degraded; no status yet or an unknown phase -> Progressing.
local hs = {}

local function condition_of(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function describe(condition, fallback)
  if condition == nil or condition.message == nil or condition.message == "" then
    return fallback
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason .. ": " .. condition.message
  end
  return condition.message
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the ModelDeployment"
  return hs
end
if status.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end

local phase = status.phase
if phase == "Promoted" and status.handoff ~= nil then
  hs.status = "Progressing"
  hs.message = describe(condition_of(status, "Progressing"), "Promoting")
elseif phase == "Stable" or phase == "Promoted" then
  hs.status = "Healthy"
  hs.message = describe(condition_of(status, "Ready"), phase)
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = describe(condition_of(status, "Progressing"), "Paused")
elseif phase == "RolledBack" or phase == "Degraded" or phase == "Failed" then
  hs.status = "Degraded"
  local condition = condition_of(status, "Degraded")
  if condition == nil or condition.status ~= "True" then
    condition = condition_of(status, "Ready")
  end
  hs.message = describe(condition, phase)
else
  hs.status = "Progressing"
  hs.message = describe(condition_of(status, "Progressing"), phase)
end
return hs
