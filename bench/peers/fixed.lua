-- wrk script: bench/score.lua's requests (32 random ids of 200,000), a
-- fixed number of them, each on a new connection ("Connection: close"), so
-- that whichever worker is free accepts it and the load reaches every
-- worker (a kept-alive connection stays with the worker that accepted it).
-- The thread (bench/peers.sh runs one) stops after $PEERS_QUOTA responses
-- and leaves the file $PEERS_DONE, so the script knows when to end wrk,
-- which would otherwise wait out its -d.
local requests, n = {}, 0
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  for b = 1, 1024 do
    local ids = {}
    for i = 1, 32 do ids[i] = math.random(0, 199999) end
    requests[b] = wrk.format("POST", "/dags/customer_score/run",
                             {["Content-Type"] = "application/json", ["Connection"] = "close"},
                             '{"inputs":{"ids":[' .. table.concat(ids, ",") .. ']}}')
  end
end
function request()
  n = n % 1024 + 1
  return requests[n]
end

local quota, seen = tonumber(os.getenv("PEERS_QUOTA")), 0
function response(status, headers, body)
  seen = seen + 1
  if seen == quota then
    io.open(os.getenv("PEERS_DONE"), "w"):close()
    wrk.thread:stop()
  end
end
