-- wrk script: sends the signed-in contact's session cookie and prints one JSON line with latency percentiles.
-- BENCH_COOKIE: "session=..." (empty for the floor); BENCH_USER_AGENT must match the one the cookie was made with.
local cookie = os.getenv("BENCH_COOKIE") or ""
wrk.headers["User-Agent"] = os.getenv("BENCH_USER_AGENT") or "portal-bench"
if cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
