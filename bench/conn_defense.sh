#!/bin/sh
# bench/conn_defense.sh BUILD_DIR: can abusive connections lock cowdag out?
# Serves tests/fixtures/server (2 workers, the connection timeouts at their
# defaults) and runs bench/flood.c against it: DRIP connections sending a
# header one byte a second, IDLE keep-alive connections holding still after
# one request, and NORMAL GET /healthz spread over DURATION seconds, each timed
# out after 5 s.  When the flood has closed its side, waits SETTLE seconds and
# counts the server's sockets on the port still not closed (ESTABLISHED, or
# CLOSE-WAIT: the client left and the server has not closed its end), then
# checks that GET /healthz answers.  Prints one markdown row; the goal is
# >= 99% normal ok, p99 < 1 s, nothing left open.  "held open" is what the
# server still kept of the abusive connections when the flood stopped;
# an idle connection closed after its answer is a keep-alive timeout, one
# closed before it a refusal.
#
# Parameters (environment): DRIP=4000 IDLE=4000 NORMAL=200 DURATION=20
# SETTLE=3 PORT=18320.  Needs $BUILD/cowdag and $BUILD/bench/flood
# (make build/cowdag build/bench/flood), ss and curl.  About 40 s.
set -eu
B=${1:-build}
DRIP=${DRIP:-4000}
IDLE=${IDLE:-4000}
NORMAL=${NORMAL:-200}
DURATION=${DURATION:-20}
SETTLE=${SETTLE:-3}
PORT=${PORT:-18320}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for tool in ss curl jq; do
  command -v $tool > /dev/null || { echo "conn_defense: $tool not found" >&2; exit 1; }
done
for bin in cowdag bench/flood; do
  [ -x "$B/$bin" ] || { echo "conn_defense: $B/$bin not built (make $B/$bin)" >&2; exit 1; }
done

tmp=$(mktemp -d)
srv="" floodpid=""

# Stops what this script started: the flood, the master (SIGTERM, SIGKILL
# after 10 s) and any worker of it that outlived it (pids from its log).
cleanup() {
  rc=$?
  trap - EXIT INT TERM
  [ $rc -eq 0 ] || echo "conn_defense: stopped with status $rc" >&2
  [ -n "$floodpid" ] && { kill "$floodpid" 2>/dev/null || true; wait "$floodpid" 2>/dev/null || true; }
  [ -n "$srv" ] && { stop_server 100 || true; }
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

. "$ROOT/bench/lib.sh" # stop_server
BENCH=conn_defense

# Server sockets on PORT in state $1 (ss state name).
count_state() { ss -Htn state "$1" "( sport = :$PORT )" | wc -l; }

# --- the server -----------------------------------------------------------------
# The fixture folder copied (its paths are relative), 2 workers, no access log,
# a short graceful_timeout_ms so that stopping it is quick.  The connection
# timeouts are not set: their defaults are what is measured.
cp -R "$ROOT/tests/fixtures/server" "$tmp/srv"
jq '.workers = 2 | .access_log = false | .graceful_timeout_ms = 5000' \
  "$ROOT/tests/fixtures/server/cowdag.json" > "$tmp/srv/cowdag.json"
: > "$tmp/log"
"$B/cowdag" serve -c "$tmp/srv/cowdag.json" --listen "127.0.0.1:$PORT" 2> "$tmp/log" & srv=$!
i=0
until grep -q "listening on" "$tmp/log" && [ "$(grep -c ' started, pid ' "$tmp/log")" -ge 2 ] &&
      curl -sf --max-time 1 "http://127.0.0.1:$PORT/healthz" > /dev/null; do
  kill -0 "$srv" 2>/dev/null || { echo "conn_defense: server exited:" >&2; cat "$tmp/log" >&2; exit 1; }
  [ $i -lt 100 ] || { echo "conn_defense: server not ready in 10 s" >&2; exit 1; }
  sleep 0.1; i=$((i + 1))
done

# --- the flood ------------------------------------------------------------------
"$B/bench/flood" "$PORT" --drip "$DRIP" --idle "$IDLE" --normal "$NORMAL" --seconds "$DURATION" \
  > "$tmp/flood" 2>&1 & floodpid=$!
wait "$floodpid" || { echo "conn_defense: flood failed:" >&2; cat "$tmp/flood" >&2; exit 1; }
floodpid=""
sed '/^RESULT /d' "$tmp/flood" >&2

# --- after it -------------------------------------------------------------------
sleep "$SETTLE"
est=$(count_state established)
cw=$(count_state close-wait)
t0=$(date +%s.%N)
if curl -sf --max-time 10 "http://127.0.0.1:$PORT/healthz" > /dev/null; then
  after=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "ok in %.2f s", a - b }')
else
  after="no answer in 10 s"
fi

r() { sed -n "s/^RESULT .*[ ]$1=\([^ ]*\).*/\1/p" "$tmp/flood"; }
ok=$(r normal_ok)
fails="$(r normal_timeout) timeout, $(r normal_refused) refused, $(r normal_closed) reset/EOF, $(r normal_local) local, $(r normal_bad) bad answer"
if [ "$ok" -gt 0 ]; then p99="$(r p99_ms) ms"; max="$(r max_ms) ms"; else p99=-; max=-; fi
drip_closed=$(r drip_closed)
idle_closed=$(r idle_closed)
# How many the server closed and when: drip, the median time after connect;
# idle, how many after their answer and the median time after it.
[ "$drip_closed" -gt 0 ] && drip_closed="$drip_closed (median $(r drip_close_median_s) s)"
[ "$(r idle_closed_answered)" -gt 0 ] &&
  idle_closed="$idle_closed ($(r idle_closed_answered) after the answer, median $(r idle_close_median_s) s)"

held="$(($(r drip_open) + $(r idle_open))) ($(r drip_open) drip, $(r idle_open) idle)"
echo "| drip | idle | held open at the flood's end | drip closed by server | idle answered | idle closed by server | normal ok | normal failed | p99 | max | left open ${SETTLE} s after | /healthz after |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
echo "| $DRIP | $IDLE | $held | $drip_closed | $(r idle_answered) | $idle_closed | $ok/$NORMAL | $fails | $p99 | $max | $((est + cw)) ($est established, $cw close-wait) | $after |"
echo
echo "Reproduce: \`make BUILD=$B $B/cowdag $B/bench/flood && DRIP=$DRIP IDLE=$IDLE NORMAL=$NORMAL DURATION=$DURATION sh bench/conn_defense.sh $B\`"
