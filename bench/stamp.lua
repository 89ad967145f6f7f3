-- wrk script: POST /api/v1/stamps, a random card of the set and a fresh Idempotency-Key each time.
-- The card list comes from the file named by the environment variable BENCH_CARDS.
local cards = {}
local secret = os.getenv("BENCH_SECRET")
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_CARDS")) do
    cards[#cards + 1] = line
  end
  math.randomseed(os.time() + (tid or 0) * 7919)
end

function request()
  counter = counter + 1
  local token = cards[math.random(#cards)]
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. secret,
    ["Idempotency-Key"] = string.format("bench-%d-%d-%d", tid or 0, counter, math.random(1e9)),
  }
  return wrk.format("POST", "/api/v1/stamps", headers, '{"token":"' .. token .. '"}')
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f\n", latency:percentile(50) / 1000,
    latency:percentile(99) / 1000))
end
