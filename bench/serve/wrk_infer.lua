-- wrk script: POST one v2 infer body over and over, then print one JSON line.
--   WRK_BODY=/tmp/mlp.json wrk -t2 -c8 -d10s --latency -s wrk_infer.lua \
--     http://127.0.0.1:8000/v2/models/mlp/infer
-- The URL's path is the endpoint; the body comes from a file (make_body.py) so a
-- 784-float input never has to pass through a command line.

-- wrk only logs a script error and then benchmarks plain GETs anyway, which
-- would look like a valid (405-filled) run; exiting is the only way to stop it.
local function die(msg)
  io.stderr:write("wrk_infer.lua: ", msg, "\n")
  os.exit(2)
end

local path = os.getenv("WRK_BODY") or die("set WRK_BODY to a JSON infer body file (make_body.py)")
local f, err = io.open(path, "rb")
if not f then die(err) end
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- wrk reports latency in microseconds; a single JSON line lets scripts
-- parse the result without scraping wrk's human-readable table.
function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"errors":%d,"non2xx":%d,"duration_s":%.3f,"rps":%.1f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    e.status, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean))
end
