-- wrk script of bench/soak.sh, the good requests: customer_score with 32
-- random ids of 200,000 (the default config's store), marketing with a
-- year of weekly spend and signups, and graph (its ring of linked node
-- records is cyclic garbage once the run is over), 16:2:2.  Every one
-- must be answered 2xx; wrk counts the others ("Non-2xx or 3xx responses").
-- Bodies are made once per thread (1000 of them) and rotated.
local bodies, paths, n = {}, {}, 0

function init(args)
  local records = tonumber(args[1]) or 200000
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  for b = 1, 1000 do
    local k = b % 20
    if k == 0 or k == 10 then
      paths[b] = "/dags/graph/run"
      bodies[b] = '{"inputs":{"n":' .. math.random(50, 400) .. ',"start":' .. math.random(0, 49) .. '}}'
    elseif k == 5 or k == 15 then
      local spend, signups = {}, {}
      for i = 1, 52 do
        spend[i] = math.random(1, 100000) / 10
        signups[i] = math.random(1, 5000)
      end
      paths[b] = "/dags/marketing/run"
      bodies[b] = '{"inputs":{"spend":[' .. table.concat(spend, ",") .. '],"signups":[' ..
                  table.concat(signups, ",") .. '],"window":' .. math.random(1, 8) .. '}}'
    else
      local ids = {}
      for i = 1, 32 do ids[i] = math.random(0, records - 1) end
      paths[b] = "/dags/customer_score/run"
      bodies[b] = '{"inputs":{"ids":[' .. table.concat(ids, ",") .. ']}}'
    end
  end
end

local headers = {["Content-Type"] = "application/json"}

function request()
  n = n % 1000 + 1
  return wrk.format("POST", paths[n], headers, bodies[n])
end
