-- wrk script for bench/compare: POST the body template (args[1]) with "@@N@@" replaced by
-- a number new to this run (args[2] is the run's tag), and print the figures as JSON.
local pre, post, tag, n = "", "", "", 0

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local text = f:read("*a")
  f:close()
  local i = assert(string.find(text, "@@N@@", 1, true))
  pre, post, tag = string.sub(text, 1, i - 1), string.sub(text, i + 5), args[2]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  return wrk.format(nil, nil, nil, pre .. tag .. "-" .. n .. post)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "p50_ms": %.4f, "p99_ms": %.4f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
