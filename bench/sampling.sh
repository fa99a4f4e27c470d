#!/bin/sh
# bench/sampling.sh BUILD_DIR: the cost of memory sampling to request
# throughput -- bench/load.sh's customer_score load against cowdag with a
# sample every second (bench/cowdag-bench.json) and with sampling in effect
# off (one an hour, bench/cowdag-bench-nosample.json), alternating ROUNDS
# times in one run.
set -eu
B=${1:-build}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
PORT=18182
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

measure() { # CONFIG OUT
  "$B/cowdag" serve -c "$1" 2> "$tmp/log" & srv=$!
  i=0; until grep -q "listening on" "$tmp/log" || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
  wrk -t2 -c8 -d"${DURATION}s" -s bench/score.lua "http://127.0.0.1:$PORT/" > "$2"
  kill -TERM $srv; wait $srv 2>/dev/null || true
}

echo "## Sampling on (every 1 s) vs off: customer_score, wrk -t2 -c8, ${DURATION} s each, $ROUNDS rounds alternating"
echo
echo "| round | off req/s | on req/s | on / off |"
echo "|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  measure bench/cowdag-bench-nosample.json "$tmp/off.$r"
  measure bench/cowdag-bench.json "$tmp/on.$r"
  off=$(sed -n 's/^Requests\/sec: *//p' "$tmp/off.$r")
  on=$(sed -n 's/^Requests\/sec: *//p' "$tmp/on.$r")
  echo "| $r | $off | $on | $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }') |"
done
echo
