-- wrk: GET /products/{id} over random seeded ids.
local products = tonumber(os.getenv("KEEL_BENCH_PRODUCTS") or "100000")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  math.randomseed(os.time() * 100 + (tid or 0))
end
request = function()
  return wrk.format("GET", "/products/" .. math.random(1, products))
end
