-- wrk_get.lua -- GET /v1/users/{id} over random ids, for bench/run.sh.
--
-- wrk -s bench/wrk_get.lua URL -- IDS_FILE   (one id a line)
-- BENCH_AUTH in the environment, if set, is sent as the Authorization header.
-- On exit prints one JSON line (prefixed "{") with requests/s, latency
-- percentiles in microseconds and the error counts wrk saw.

local ids = {}
local auth = os.getenv("BENCH_AUTH")

function init(args)
    for line in io.lines(args[1]) do
        ids[#ids + 1] = line
    end
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
    local headers = {}
    if auth then
        headers["Authorization"] = auth
    end
    local id = ids[math.random(#ids)]
    return wrk.format("GET", "/v1/users/" .. id, headers)
end

function done(summary, latency, requests)
    local secs = summary.duration / 1e6
    local e = summary.errors
    local bad = e.connect + e.read + e.write + e.timeout + e.status
    io.write(string.format(
        '{"op":"http_get","ops":%d,"seconds":%.3f,"ops_per_sec":%.1f,' ..
        '"p50_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f,' ..
        '"errors":%d,"non_2xx":%d}\n',
        summary.requests, secs, summary.requests / secs,
        latency:percentile(50), latency:percentile(99),
        latency:percentile(99.9), latency.max, bad, e.status))
end
