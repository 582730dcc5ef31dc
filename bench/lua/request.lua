-- One request, repeated: method, path, headers and body come from the environment (set by run.py).
--   BENCH_METHOD, BENCH_PATH, BENCH_BODY, BENCH_HEADERS ("name: value" lines), BENCH_EXPECT
--   (a substring every answer's body must hold; empty: no check), BENCH_STATUS (expected status).
-- done() prints one JSON line: requests, errors, bad answers and latency percentiles (microseconds).

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
if body and #body > 0 then
  wrk.body = body
end
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then
    wrk.headers[name] = value
  end
end

local expect = os.getenv("BENCH_EXPECT") or ""
local expected_status = tonumber(os.getenv("BENCH_STATUS") or "200")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  first_bad = ""
end

function response(status, headers, answer)
  if status ~= expected_status or (#expect > 0 and not string.find(answer, expect, 1, true)) then
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(answer or "", 1, 300)
    end
  end
end

local function escape(text)
  return (string.gsub(text, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end))
end

function done(summary, latency, requests)
  local bad_total = 0
  local sample = ""
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    local one = thread:get("first_bad")
    if sample == "" and one ~= "" then
      sample = one
    end
  end
  local errors = summary.errors
  io.write(string.format(
    '\nBENCH_RESULT {"requests": %d, "duration_us": %d, "bad": %d, "sample_bad": "%s", ' ..
      '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, bad_total, escape(sample),
    errors.connect, errors.read, errors.write, errors.timeout, errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
