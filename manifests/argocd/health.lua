-- Argo CD health of a tokenfleet resource (ModelTier, CachePolicy, InferenceFleet), read from
-- its status.conditions (Ready, Progressing, Degraded) and status.observedGeneration.
-- Installed through argocd-cm (manifests/argocd/argocd-cm.yaml); see docs/gitops.md.
local hs = {status = "Progressing", message = "Waiting for the tokenfleet operator to report status"}

local function find(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  local text = fallback
  if c.reason ~= nil and c.reason ~= "" then
    text = c.reason
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = string.format("Waiting for the operator to observe generation %d", generation)
  return hs
end

local ready = find(obj.status.conditions, "Ready")
local progressing = find(obj.status.conditions, "Progressing")
local degraded = find(obj.status.conditions, "Degraded")

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
elseif progressing ~= nil and progressing.status == "True" then
  hs.message = describe(progressing, "Progressing")
elseif ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
end
return hs
