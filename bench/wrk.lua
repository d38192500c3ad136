-- wrk script: Authorization from a token file, the tokens in turn. TOKENS=<file>,
-- REQ_PATH=<path> (each token once: bench/once.mjs).
local file = os.getenv("TOKENS")
local path = os.getenv("REQ_PATH") or "/fhir/Patient/123"
local tokens = {}
for line in io.lines(file) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local i = 0
function request()
  i = i + 1
  if i > #tokens then i = 1 end
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[i] })
end
