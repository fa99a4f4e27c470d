#!/bin/sh
# bench/run.sh BUILD_DIR: every benchmark of `make bench`, printed as the
# markdown tables bench/RESULTS.md quotes.  One run measures everything side
# by side; figures are medians or ratios within the run.
set -eu
B=${1:-build}
RECORDS=${RECORDS:-300000}
LOOKUPS=$((RECORDS * 256 / 30))

echo "# cowdag benchmarks, $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r)"
echo
"$B/bench/bench_heap"

echo "## cowtest: pages of inherited state a forked child copies ($RECORDS records)"
echo
echo "| mode | thresholds | immortal | lookups | collect | state pages | private pages | private_ratio | tracked_share | build ms | lookups ms | collect ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
run() {
  "$B/cowdag" cowtest --records "$RECORDS" "$@" | jq -r '
    "| \(.mode) | \(.thresholds|map(tostring)|join(",")) | \(.immortal) | \(.lookups) | \(.collect // "-") | \(.state.pages) | \(.state.private_pages) | \(.state.private_ratio*10000|round/10000) | \(.state.tracked_share*1000|round/1000) | \(.elapsed_ms.build|round) | \(.elapsed_ms.lookups|round) | \(.elapsed_ms.collect|round) |"'
}
run --gc tuned --gc-thresholds 700,10,10 --collect 2
run --gc disable --collect 2
run --gc freeze --collect 2
run --gc tuned --gc-thresholds 700,10,10 --lookups "$LOOKUPS"
run --gc freeze --lookups "$LOOKUPS"
run --gc freeze --immortal --lookups "$LOOKUPS" --collect 2
echo

"$B/bench/bench_dag"

echo "## chain end to end: \`cowdag run chain --outputs foo_999\` (96 MiB arrays, 239 MB of JSON to /dev/null)"
echo
/usr/bin/time -v "$B/cowdag" run -c config/cowdag.json chain --outputs foo_999 > /dev/null 2> /tmp/cowdag-chain.time
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' /tmp/cowdag-chain.time)
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' /tmp/cowdag-chain.time)
echo "| peak RSS | bound 2 x 96 MiB + 16 MiB | wall (run + writing JSON) |"
echo "|---|---|---|"
echo "| $((rss_kb / 1024)) MiB | 208 MiB | $wall |"
echo

echo "## cowdag check with a 100,000-node DAG (one family), median of 5"
echo
dir=$(mktemp -d)
mkdir -p "$dir/dags"
cat > "$dir/dags/big.json" <<'JSON'
{"name": "big", "nodes": {"n_0": {"const": 0}},
 "families": [{"name": "n_{i}", "range": [1, 100000], "op": "add", "args": ["n_{i-1}", 1]}]}
JSON
echo '{"dags": ["dags/*.json"]}' > "$dir/cowdag.json"
times=""
for i in 1 2 3 4 5; do
  t0=$(date +%s%N); "$B/cowdag" check -c "$dir/cowdag.json" > /dev/null; t1=$(date +%s%N)
  times="$times $(( (t1 - t0) / 1000000 ))"
done
med=$(echo $times | tr ' ' '\n' | sort -n | sed -n 3p)
echo "| runs (ms) | median ms | goal |"
echo "|---|---|---|"
echo "|$times | $med | <= 1000 |"
rm -rf "$dir"
echo
sh bench/load.sh "$B"
echo
echo "## Where a request's time goes: worker CPU and switches per request"
echo
sh bench/request_cost.sh "$B"
echo
sh bench/sampling.sh "$B"
