#!/bin/sh
# bench/compare_builds.sh OLD_TREE NEW_TREE: two source trees of cowdag,
# each built in its build/ (cowdag and bench/bench_dag: `make build/cowdag
# build/bench/bench_dag`; an older tree from `git archive COMMIT | tar -x`),
# side by side in one run, alternating ROUNDS times, each run from its own
# tree (its own config and DAG files): under the load of bench/load.sh (wrk
# -t2 -c8, DURATION s, customer_score with 32 random ids of 200,000, 2
# workers, bench/cowdag-bench.json on PORT) each build's req/s and its
# workers' CPU per request (user and kernel, from /proc/PID/stat); then, in
# process, each build's `bench_dag request` (parse, run, response).  On a
# machine shared with other work the absolute figures move from round to
# round; the medians of the alternating rounds are what to compare.
# Prints markdown tables.
set -eu
OLD=$(cd "${1:?usage: compare_builds.sh OLD_TREE NEW_TREE}" && pwd)
NEW=$(cd "${2:?usage: compare_builds.sh OLD_TREE NEW_TREE}" && pwd)
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18182}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
ticks=$(getconf CLK_TCK)

# usage: load LABEL TREE ROUND -> a line "label round req/s user_us kernel_us"
load() {
  label=$1; t=$2; r=$3
  (cd "$t" && exec build/cowdag serve -c bench/cowdag-bench.json --listen "127.0.0.1:$PORT") 2> "$tmp/log" & srv=$!
  i=0; until grep -q "listening on" "$tmp/log" || [ $i -ge 200 ]; do sleep 0.1; i=$((i+1)); done
  i=0; until [ "$(pgrep -P $srv | wc -l)" -ge 2 ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
  sleep 1 # the workers settle their heaps before serving
  pids=$(pgrep -P $srv | tr '\n' ' ')
  snap() { for p in $pids; do awk '{print $14, $15}' "/proc/$p/stat"; done | awk '{u+=$1; k+=$2} END {print u, k}'; }
  before=$(snap)
  wrk -t2 -c8 -d"${DURATION}s" -s "$NEW/bench/score.lua" "http://127.0.0.1:$PORT/" > "$tmp/wrk.out"
  after=$(snap)
  kill -TERM $srv; wait $srv 2>/dev/null || true
  rps=$(sed -n 's/^Requests\/sec: *//p' "$tmp/wrk.out")
  echo "$before $after" | awk -v l="$label" -v r="$r" -v q="$rps" -v d="$DURATION" -v hz="$ticks" '{
    n = q * d; us = 1e6 / hz; printf "%s %s %.0f %.2f %.2f\n", l, r, q, ($3-$1)*us/n, ($4-$2)*us/n }'
}

for r in $(seq 1 "$ROUNDS"); do
  load old "$OLD" "$r" >> "$tmp/load"
  load new "$NEW" "$r" >> "$tmp/load"
  (cd "$OLD" && build/bench/bench_dag request) | awk -v r="$r" '/µs \|$/ {print "old", r, $0}' >> "$tmp/inproc"
  (cd "$NEW" && build/bench/bench_dag request) | awk -v r="$r" '/µs \|$/ {print "new", r, $0}' >> "$tmp/inproc"
done

med() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo "## Two builds under load, wrk -t2 -c8, ${DURATION} s a measurement, $ROUNDS rounds alternating"
echo
echo "| build | round | req/s | worker user µs/req | worker kernel µs/req |"
echo "|---|---|---|---|---|"
awk '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}' "$tmp/load"
for b in old new; do
  q=$(awk -v b=$b '$1 == b {print $3}' "$tmp/load" | med)
  u=$(awk -v b=$b '$1 == b {print $4}' "$tmp/load" | med)
  k=$(awk -v b=$b '$1 == b {print $5}' "$tmp/load" | med)
  echo "| $b | median | $q | $u | $k |"
done
echo
echo "## Two builds in process, bench_dag request: parse, run, response, total (each build's own paths)"
echo
sed 's/^\([a-z]*\) \([0-9]*\) |/| \1, round \2 |/' "$tmp/inproc"
echo
