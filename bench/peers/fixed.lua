-- wrk script: bench/score.lua's requests, a fixed number of them.  The
-- thread (bench/peers.sh runs one) stops after $PEERS_QUOTA responses and
-- leaves the file $PEERS_DONE, so the script knows when to end wrk, which
-- would otherwise wait out its -d.
dofile("bench/score.lua")

local quota, seen = tonumber(os.getenv("PEERS_QUOTA")), 0
function response(status, headers, body)
  seen = seen + 1
  if seen == quota then
    io.open(os.getenv("PEERS_DONE"), "w"):close()
    wrk.thread:stop()
  end
end
