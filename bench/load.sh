#!/bin/sh
# bench/load.sh BUILD_DIR: cowdag serving customer_score (32 random ids of
# 200,000 customers, 2 workers, freeze + immortal, no access log) under wrk
# with 2 threads and 8 connections, against the bare libmicrohttpd ceiling
# (bench/bare_server.c) answering a fixed body to GETs and to the same POSTs
# (score.lua), alternating ROUNDS times in one run; prints the
# markdown table of bench/RESULTS.md.  DURATION seconds per measurement.
set -eu
B=${1:-build}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-5}
BARE_PORT=18181
PORT=18182
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

wrk_field() { # FILE -> "req/s p50 p99"
  rps=$(sed -n 's/^Requests\/sec: *//p' "$1")
  p50=$(sed -n 's/^ *50% *//p' "$1")
  p99=$(sed -n 's/^ *99% *//p' "$1")
  echo "$rps $p50 $p99"
}

for r in $(seq 1 "$ROUNDS"); do
  "$B/bench/bare_server" $BARE_PORT 2 & bare=$!
  sleep 0.3
  wrk -t2 -c8 -d"${DURATION}s" --latency "http://127.0.0.1:$BARE_PORT/" > "$tmp/bare.$r"
  wrk -t2 -c8 -d"${DURATION}s" --latency -s bench/score.lua "http://127.0.0.1:$BARE_PORT/" > "$tmp/barepost.$r"
  kill $bare; wait $bare 2>/dev/null || true

  "$B/cowdag" serve -c bench/cowdag-bench.json 2> "$tmp/log.$r" & srv=$!
  i=0; until grep -q "listening on" "$tmp/log.$r" || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
  wrk -t2 -c8 -d"${DURATION}s" --latency -s bench/score.lua "http://127.0.0.1:$PORT/" > "$tmp/cowdag.$r"
  kill -TERM $srv; wait $srv 2>/dev/null || true
done

echo "## Load: customer_score over HTTP, wrk -t2 -c8, ${DURATION} s a measurement, $ROUNDS rounds alternating"
echo
echo "| round | bare GET req/s | bare POST req/s | cowdag req/s | ratio to GET | ratio to POST | cowdag p50 | cowdag p99 | non-2xx | requests per worker |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  set -- $(wrk_field "$tmp/bare.$r"); brps=$1
  set -- $(wrk_field "$tmp/barepost.$r"); bprps=$1
  set -- $(wrk_field "$tmp/cowdag.$r"); crps=$1; p50=$2; p99=$3
  non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$tmp/cowdag.$r"); non2xx=${non2xx:-0}
  per=$(sed -n 's/.*worker \([0-9]*\) served \([0-9]*\) requests.*/w\1: \2/p' "$tmp/log.$r" | sort | tr '\n' ' ')
  ratio=$(awk -v a="$crps" -v b="$brps" 'BEGIN { printf "%.2f", a / b }')
  pratio=$(awk -v a="$crps" -v b="$bprps" 'BEGIN { printf "%.2f", a / b }')
  echo "| $r | $brps | $bprps | $crps | $ratio | $pratio | $p50 | $p99 | $non2xx | $per|"
  echo "$brps $bprps $crps" >> "$tmp/all"
done
med() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
mg=$(cut -d' ' -f1 "$tmp/all" | med); mp=$(cut -d' ' -f2 "$tmp/all" | med); mc=$(cut -d' ' -f3 "$tmp/all" | med)
echo
awk -v g="$mg" -v p="$mp" -v c="$mc" 'BEGIN { printf "Medians: bare GET %.0f, bare POST %.0f, cowdag %.0f req/s; cowdag ÷ bare GET %.2f, ÷ bare POST %.2f.\n", g, p, c, c / g, c / p }'
echo
