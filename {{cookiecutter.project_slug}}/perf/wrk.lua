-- wrk script of perf/run.py: cycles through the request paths of the file $PERF_PATHS.
--   PERF_METHOD   GET (default), POST, PUT
--   PERF_TOKEN    bearer token, when set
--   PERF_BODY     JSON body; COUNTER in it becomes a number unique to the request
--   PERF_IDEMPOTENCY=1   a fresh Idempotency-Key per request
-- In a path, NEWKEY becomes a key never sent before (an upsert that inserts).
-- Plain GETs are formatted once, up front, so the generator spends its time sending.
local paths = {}
for line in io.lines(os.getenv("PERF_PATHS")) do paths[#paths + 1] = line end
local method = os.getenv("PERF_METHOD") or "GET"
local body = os.getenv("PERF_BODY")
local token = os.getenv("PERF_TOKEN")
local idempotent = os.getenv("PERF_IDEMPOTENCY") == "1"
local run = os.getenv("PERF_RUN") or "run"

local headers = {}
if token then headers["Authorization"] = "Bearer " .. token end
if body then headers["Content-Type"] = "application/json" end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local prepared = {}
if not body then
  for i, path in ipairs(paths) do prepared[i] = wrk.format(method, path, headers) end
end

local counter = 0
function request()
  counter = counter + 1
  local i = (counter % #paths) + 1
  if not body then return prepared[i] end
  local unique = run .. "-" .. tostring(tid) .. "-" .. counter
  local h = {}
  for k, v in pairs(headers) do h[k] = v end
  if idempotent then h["Idempotency-Key"] = "perf-" .. unique end
  local path = paths[i]:gsub("NEWKEY", "NEW-" .. unique)
  return wrk.format(method, path, h, (body:gsub("COUNTER", unique)))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON{"requests": %d, "seconds": %f, "p50": %f, "p95": %f, "p99": %f, "errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
