-- wrk script: POST /v1/completions with a JSON body (OpenAI-compatible API of `sculpt serve`).
--   wrk -t4 -c16 -d60s --timeout 60s -s deploy/wrk/completions.lua http://127.0.0.1:8080
-- A generation on a CPU server takes seconds under load: wrk's default 2 s timeout would count
-- most of them as timeouts, so give --timeout. The summary counts every failure wrk knows of
-- (timeouts, connect/read/write errors, non-200 answers) and says when latencies mean nothing
-- because no request completed.
wrk.method = "POST"
wrk.path = "/v1/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"prompt": "def fibonacci(n):", "max_tokens": 64, "steps": 32, "block_length": 32}'

local errors = 0

response = function(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local failed = e.connect + e.read + e.write + e.timeout + e.status
  local completed = summary.requests - e.timeout - e.connect
  if completed <= 0 then
    io.write(string.format("no request completed: timeouts %d, connect errors %d " ..
      "(raise --timeout, or check the server)\n", e.timeout, e.connect))
    return
  end
  io.write(string.format(
    "requests %d, p50 %.1f ms, p99 %.1f ms; failed %d (timeouts %d, connect %d, read %d, " ..
    "write %d, non-200 %d)\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000, failed,
    e.timeout, e.connect, e.read, e.write, e.status))
end
