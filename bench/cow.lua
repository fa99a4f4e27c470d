-- wrk script of bench/cow_matrix.sh: POST /dags/customer_score/run with 32
-- random ids of RECORDS, and one request in 20 POST /dags/graph/run, whose
-- ring of linked node records is cyclic garbage once the run is over.
--
--   wrk ... -s bench/cow.lua URL -- RECORDS [STOP_AFTER [CLOSE_EVERY [GRAPH_EVERY]]]
--
-- RECORDS defaults to 300000.  STOP_AFTER > 0 makes each thread stop after
-- that many responses (the warm-up); 0 or absent: run for wrk's -d.
-- One request in CLOSE_EVERY (default 0: never) asks for "Connection:
-- close", and wrk reconnects.  (Workers spread wrk's 8 connections between
-- them themselves: each accepts only while no other holds fewer.)
-- GRAPH_EVERY (default 20) sets the share of graph requests; 1 sends only
-- graph requests, which read no state (the warm-up of bench/cow_matrix.sh).
-- Bodies are made once per thread (1024 of them) and rotated, so wrk's own
-- CPU goes to HTTP, not to building JSON.
local bodies, n, paths = {}, 0, {}
local graph_every, close_every, sent = 20, 0, 0

function init(args)
  local records = tonumber(args[1]) or 300000
  local stop_after = tonumber(args[2]) or 0
  close_every = tonumber(args[3]) or close_every
  graph_every = tonumber(args[4]) or graph_every
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  for b = 1, 1024 do
    if b % graph_every == 0 then
      paths[b] = "/dags/graph/run"
      bodies[b] = '{"inputs":{"start":' .. math.random(0, 199) .. '}}'
    else
      local ids = {}
      for i = 1, 32 do ids[i] = math.random(0, records - 1) end
      paths[b] = "/dags/customer_score/run"
      bodies[b] = '{"inputs":{"ids":[' .. table.concat(ids, ",") .. ']}}'
    end
  end
  if stop_after > 0 then
    -- Defined only for the warm-up: wrk parses response headers and calls
    -- this only when the function exists, which costs throughput.
    local seen = 0
    response = function(status, headers, body)
      seen = seen + 1
      if seen >= stop_after then wrk.thread:stop() end
    end
  end
end

local keep = {["Content-Type"] = "application/json"}
local close = {["Content-Type"] = "application/json", ["Connection"] = "close"}

function request()
  n = n % 1024 + 1
  sent = sent + 1
  local headers = (close_every > 0 and sent % close_every == 0) and close or keep
  return wrk.format("POST", paths[n], headers, bodies[n])
end
