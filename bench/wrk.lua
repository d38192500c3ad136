-- wrk script: Authorization from a token file. TOKENS=<file>; ONCE=1 gives each token to exactly
-- one request (disjoint slices per thread) and stops the thread when its slice is used up.
local file = os.getenv("TOKENS")
local once = os.getenv("ONCE") == "1"
local path = os.getenv("REQ_PATH") or "/fhir/Observation?patient=123&category=vital-signs"
local tokens = {}
for line in io.lines(file) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local threads = tonumber(os.getenv("THREADS") or "1")
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local per = math.floor(#tokens / threads)
  first = id * per + 1
  last = first + per - 1
  i = first - 1
end
function request()
  i = i + 1
  if i > last then
    if once then
      wrk.thread:stop()
      i = last
    else
      i = first
    end
  end
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[i] })
end
