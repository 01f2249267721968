-- wrk script for scripts/bench/issue-api.ts: POST the bytes of $BODY_FILE (Content-Type application/json);
-- with $TOKENS_FILE, every request carries the next join token of that file as a Bearer token, starting at
-- line $TOKEN_OFFSET + 1 (one wrk thread: run wrk with -t1). Prints one line at the end:
-- WRKJSON {"requests":…,"rps":…,"p50_ms":…,"p99_ms":…,"err_status":…,…,"tokens_used":…,"tokens_exhausted":…}
-- (as /work/shared/peers/post.lua, which the peers' figures come from, plus the tokens).

-- wrk's default resolve() test-connects to each address and closes the socket without sending anything.
wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local tokens = nil
local nextToken = 1
used = 0
exhausted = 0

local tokensFile = os.getenv("TOKENS_FILE")
if tokensFile then
  tokens = {}
  local skip = tonumber(os.getenv("TOKEN_OFFSET") or "0")
  local n = 0
  for line in io.lines(tokensFile) do
    n = n + 1
    if n > skip and line ~= "" then tokens[#tokens + 1] = line end
  end
end

local threads = {}
setup = function(thread)
  threads[#threads + 1] = thread
end

request = function()
  if not tokens then return wrk.format() end
  local t = tokens[nextToken]
  if not t then
    exhausted = 1
    t = "exhausted"
  else
    nextToken = nextToken + 1
    used = used + 1
  end
  return wrk.format(nil, nil, { ["Host"] = wrk.headers["Host"], ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. t }, body)
end

done = function(summary, latency, requests)
  local u, x = 0, 0
  for _, t in ipairs(threads) do
    u = u + (t:get("used") or 0)
    x = math.max(x, t:get("exhausted") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"err_status":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d,"tokens_used":%d,"tokens_exhausted":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect, e.read, e.write, e.timeout, u, x))
end
