-- wrk script: POST /dags/customer_score/run with 32 random ids of 200,000.
-- Bodies are made once per thread (1024 of them) and rotated, so wrk's own
-- CPU goes to HTTP, not to building JSON.
local bodies, n = {}, 0
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  for b = 1, 1024 do
    local ids = {}
    for i = 1, 32 do ids[i] = math.random(0, 199999) end
    bodies[b] = '{"inputs":{"ids":[' .. table.concat(ids, ",") .. ']}}'
  end
end
function request()
  n = n % 1024 + 1
  return wrk.format("POST", "/dags/customer_score/run", {["Content-Type"] = "application/json"}, bodies[n])
end
