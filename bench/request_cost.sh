#!/bin/sh
# bench/request_cost.sh BUILD_DIR: where a request's time goes.  Under the
# load of bench/load.sh (wrk -t2 -c8, 2 workers, DURATION s each), the
# workers' CPU per request, user and kernel, and their context switches per
# request, for: the bare libmicrohttpd server (GET, and the load's POSTs,
# answered with its fixed body, without and with parsing them with
# jansson); cowdag answering the
# same POSTs with a 404 (HTTP, body read, error JSON: no run); customer_score
# with 1 id; with 32 ids (the load benchmark); and with 32 ids when the
# workers run at nice -5 (as root only: fewer preemptions by wrk, which
# shares the cores).  Prints a markdown table.
set -eu
B=${1:-build}
DURATION=${DURATION:-5}
PORT=18182
BARE_PORT=18181
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# scripts: the load's own, one aimed at no DAG, one with a single id
sed 's#/dags/customer_score/run#/dags/no_such_dag/run#' bench/score.lua > "$tmp/nodag.lua"
sed 's#for i = 1, 32 do#for i = 1, 1 do#' bench/score.lua > "$tmp/one.lua"

ticks=$(getconf CLK_TCK)
# usage: measure LABEL PARENT_PID URL [wrk args...]
measure() {
  label=$1; parent=$2; url=$3; shift 3
  pids=$(pgrep -P "$parent" | tr '\n' ' ')
  snap() {
    for p in $pids; do
      u=$(awk '{print $14, $15}' "/proc/$p/stat")
      c=$(awk '/^voluntary_ctxt_switches/ {v=$2} /^nonvoluntary_ctxt_switches/ {n=$2} END {print v, n}' "/proc/$p/status")
      echo "$u $c"
    done | awk '{u+=$1; k+=$2; v+=$3; n+=$4} END {print u, k, v, n}'
  }
  set -- "$@"
  before=$(snap)
  wrk -t2 -c8 -d"${DURATION}s" "$@" "$url" > "$tmp/wrk.out"
  after=$(snap)
  rps=$(sed -n 's/^Requests\/sec: *//p' "$tmp/wrk.out")
  echo "$before $after" | awk -v r="$rps" -v d="$DURATION" -v hz="$ticks" -v l="$label" '{
    n = r * d; us = 1e6 / hz;
    printf "| %s | %.0f | %.1f | %.1f | %.2f | %.2f |\n", l, r, ($5-$1)*us/n, ($6-$2)*us/n, ($7-$3)/n, ($8-$4)/n }'
}

wait_listening() {
  i=0; until grep -q "listening on" "$1" || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
}

echo "| load | req/s | worker user µs/req | worker kernel µs/req | voluntary switches/req | preemptions/req |"
echo "|---|---|---|---|---|---|"
"$B/bench/bare_server" $BARE_PORT 2 & bare=$!
sleep 0.5
measure "bare server, GET" $bare "http://127.0.0.1:$BARE_PORT/"
measure "bare server, the load's POSTs" $bare "http://127.0.0.1:$BARE_PORT/" -s bench/score.lua
kill $bare; wait $bare 2>/dev/null || true
"$B/bench/bare_server" $BARE_PORT 2 parse & bare=$!
sleep 0.5
measure "bare server, the load's POSTs parsed with jansson" $bare "http://127.0.0.1:$BARE_PORT/" -s bench/score.lua
kill $bare; wait $bare 2>/dev/null || true

"$B/cowdag" serve -c bench/cowdag-bench.json 2> "$tmp/log" & srv=$!
wait_listening "$tmp/log"
measure "cowdag, POST to no DAG (404)" $srv "http://127.0.0.1:$PORT/" -s "$tmp/nodag.lua"
measure "cowdag, customer_score, 1 id" $srv "http://127.0.0.1:$PORT/" -s "$tmp/one.lua"
measure "cowdag, customer_score, 32 ids" $srv "http://127.0.0.1:$PORT/" -s bench/score.lua
kill -TERM $srv; wait $srv 2>/dev/null || true

if [ "$(id -u)" = 0 ]; then
  nice -n -5 "$B/cowdag" serve -c bench/cowdag-bench.json 2> "$tmp/log2" & srv=$!
  wait_listening "$tmp/log2"
  measure "cowdag at nice -5, customer_score, 32 ids" $srv "http://127.0.0.1:$PORT/" -s bench/score.lua
  kill -TERM $srv; wait $srv 2>/dev/null || true
fi
