-- wrk script: every request asks for a model name never seen before (metric-label exhaustion).
-- predict.lua (beside this file) sets the method, headers and the summary printed at the end.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "predict.lua")
wrk.body = '{"instances": [1]}'

request = function()
  return wrk.format(nil, "/v1/models/m" .. math.random(1, 1000000000) .. ":predict")
end
