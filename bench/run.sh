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
