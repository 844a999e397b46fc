-- wrk script: POST /v1/completions with a JSON body (OpenAI-compatible API of `sculpt serve`).
--   wrk -t4 -c16 -d30s -s deploy/wrk/completions.lua http://127.0.0.1:8080
-- Non-2xx answers are counted by wrk as "Non-2xx or 3xx responses"; the summary below fails
-- loudly when any appear.
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
  io.write(string.format("requests %d, p50 %.1f ms, p99 %.1f ms, non-200 %d\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
