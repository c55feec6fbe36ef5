-- wrk: POST /orders, one line of a random product, rotating over logged-in customers,
-- each request with its own Idempotency-Key (the realistic, safe-to-retry path).
local products = tonumber(os.getenv("KEEL_BENCH_PRODUCTS") or "100000")
local tokens = {}
for token in string.gmatch(os.getenv("KEEL_BENCH_TOKENS") or "", "[^,]+") do
  tokens[#tokens + 1] = token
end
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local run = os.time()
function init(args)
  math.randomseed(run * 100 + (tid or 0))
end
request = function()
  counter = counter + 1
  local body = string.format('{"lines":[{"product_id":%d,"quantity":1}]}', math.random(1, products))
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[(counter % #tokens) + 1],
    ["Idempotency-Key"] = string.format("wrk-%d-%d-%d", run, tid or 0, counter),
  }
  return wrk.format("POST", "/orders", headers, body)
end
