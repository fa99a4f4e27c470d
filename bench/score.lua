-- wrk script: POST /dags/customer_score/run with 32 random ids of 200,000.
-- The 1024 requests are built whole, once per thread, and rotated, so
-- wrk's own CPU (it shares the cores with the servers) goes to HTTP, not
-- to building requests.
local requests, n = {}, 0
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  for b = 1, 1024 do
    local ids = {}
    for i = 1, 32 do ids[i] = math.random(0, 199999) end
    requests[b] = wrk.format("POST", "/dags/customer_score/run", {["Content-Type"] = "application/json"},
                             '{"inputs":{"ids":[' .. table.concat(ids, ",") .. ']}}')
  end
end
function request()
  n = n % 1024 + 1
  return requests[n]
end
