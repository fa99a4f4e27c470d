#!/bin/sh
# bench/cow_matrix.sh BUILD_DIR: the copy-on-write matrix of `make bench-cow`.
#
# For each collector mode -- tuned (700,10,10), tuned with high thresholds
# (50000,100,100), disable, freeze, freeze + immortal -- serve the customer
# store of RECORDS records with WORKERS workers, warm up with WARMUP `graph`
# requests (which read no state), then load it for SECONDS seconds with wrk
# (2 threads, 8 connections, bench/cow.lua: customer_score with 32 random
# ids, one request in 20 `graph`, which leaves cyclic garbage), sample
# GET /stats every second with `cowdag stats --json`, and stop the server
# with SIGTERM.  Writes, under OUT:
#
#   cow_matrix.csv    one row per worker per sample
#   cow_matrix.md     the summary table, the command and the date
#   cow_private.png   private MiB of state over time, mean over the workers
#   cow_objects.png   heap objects alive over time, mean over the workers
#                     (both drawn by bench/cow_plot.sh from the CSV)
#
# Parameters (environment; `make bench-cow VAR=...` passes them on):
#   RECORDS=300000    customer records in the state
#   WORKERS=2         worker processes
#   SECONDS=30        seconds of load per mode
#   WARMUP=200        graph requests before each mode's load
#   PORT=18183        the port each mode's server listens on (127.0.0.1)
#   MODES="tuned tuned-high disable freeze freeze+immortal"
#   OUT               where the results go: build/bench-cow, or
#                     bench/results with UPDATE_README=1
#   UPDATE_README=1   also write the results into the repository: OUT
#                     defaults to bench/results (the committed plots), and
#                     README.md's run line and table, between its
#                     cow-matrix markers, are rewritten with this run's date,
#                     parameters and figures.  Without it no tracked file
#                     changes.
# Needs wrk, jq and gnuplot (`make deps-bench`).
set -eu
B=${1:-build}
RECORDS=${RECORDS:-300000}
WORKERS=${WORKERS:-2}
DURATION=${SECONDS:-30}
WARMUP=${WARMUP:-200}
PORT=${PORT:-18183}
MODES=${MODES:-tuned tuned-high disable freeze freeze+immortal}
UPDATE_README=${UPDATE_README:-0}
if [ "$UPDATE_README" = 1 ]; then OUT=${OUT:-bench/results}; else OUT=${OUT:-$B/bench-cow}; fi
URL=http://127.0.0.1:$PORT
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PAGE=$(getconf PAGESIZE)

for tool in wrk jq gnuplot; do
  command -v $tool > /dev/null || { echo "cow_matrix: $tool not found (make deps-bench)" >&2; exit 1; }
done
[ -x "$B/cowdag" ] || { echo "cow_matrix: $B/cowdag not built (make all)" >&2; exit 1; }

tmp=$(mktemp -d)
srv="" wrkpid="" sampler=""

# Stops whatever this script started and is still running: the sampler loop,
# wrk, the master (SIGTERM, then SIGKILL after 15 s) and, should the master
# have died without stopping them, its workers (pids from its log).
cleanup() {
  rc=$?
  trap - EXIT INT TERM
  [ -n "$sampler" ] && { touch "$tmp/stop"; kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }
  [ -n "$wrkpid" ] && { kill "$wrkpid" 2>/dev/null || true; wait "$wrkpid" 2>/dev/null || true; }
  if [ -n "$srv" ]; then
    stop_server || true
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# SIGTERM to the master, wait for it (graceful stop), then make sure no worker
# of it is left.
stop_server() {
  if kill -TERM "$srv" 2>/dev/null; then
    i=0
    while kill -0 "$srv" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$srv" 2>/dev/null && { echo "cow_matrix: master $srv did not stop, SIGKILL" >&2; kill -KILL "$srv" 2>/dev/null || true; }
  fi
  wait "$srv" 2>/dev/null || true
  for w in $(sed -n 's/.*worker [0-9]* started, pid \([0-9]*\),.*/\1/p' "$tmp/log" 2>/dev/null); do
    if kill -0 "$w" 2>/dev/null && grep -q cowdag "/proc/$w/cmdline" 2>/dev/null; then
      echo "cow_matrix: worker $w outlived its master, SIGKILL" >&2
      kill -KILL "$w" 2>/dev/null || true
    fi
  done
  srv=""
}

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }

# One sample: GET /stats, tagged with the mode and the seconds since T0.
sample() { # MODE T0
  t=$(since "$2")
  "$B/cowdag" stats --json --url "$URL" 2> /dev/null |
    jq -c --argjson t "$t" --arg mode "$1" '{t: $t, mode: $mode, stats: .}' >> "$tmp/samples.jsonl" || true
}

# Samples every second, on the second since T0, until $tmp/stop appears.
sample_loop() { # MODE T0
  i=0
  while [ ! -e "$tmp/stop" ]; do
    sample "$1" "$2"
    i=$((i + 1))
    d=$(awk -v t0="$2" -v i=$i -v now="$(now)" 'BEGIN { d = t0 + i - now; printf "%.3f", d < 0.05 ? 0.05 : d }')
    sleep "$d"
  done
}

config() { # MODE -> config JSON
  case $1 in
    tuned)           gc='"mode": "tuned", "thresholds": [700, 10, 10], "immortal": false' ;;
    tuned-high)      gc='"mode": "tuned", "thresholds": [50000, 100, 100], "immortal": false' ;;
    disable)         gc='"mode": "disable", "thresholds": [700, 10, 10], "immortal": false' ;;
    freeze)          gc='"mode": "freeze", "thresholds": [700, 10, 10], "immortal": false' ;;
    freeze+immortal) gc='"mode": "freeze", "thresholds": [700, 10, 10], "immortal": true' ;;
    *) echo "cow_matrix: unknown mode $1" >&2; exit 1 ;;
  esac
  cat <<JSON
{
  "listen": "127.0.0.1:$PORT",
  "workers": $WORKERS,
  "max_requests": 0,
  "graceful_timeout_ms": 10000,
  "stats_interval_ms": 1000,
  "access_log": false,
  "gc": { $gc },
  "state": [
    { "name": "customers", "kind": "records", "generate": { "count": $RECORDS, "seed": 42 } },
    { "name": "marketing", "kind": "table", "csv": "$ROOT/config/data/marketing.csv" }
  ],
  "dags": ["$ROOT/config/dags/*.json"]
}
JSON
}

wrk_field() { # FILE -> "req/s p50 p99 requests non2xx"
  rps=$(sed -n 's/^Requests\/sec: *//p' "$1")
  p50=$(sed -n 's/^ *50% *//p' "$1")
  p99=$(sed -n 's/^ *99% *//p' "$1")
  nreq=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$1")
  bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$1")
  echo "$rps $p50 $p99 $nreq ${bad:-0}"
}

started=$(now)
: > "$tmp/samples.jsonl"
n=0
for mode in $MODES; do
  n=$((n + 1))
  safe=$(echo "$mode" | tr '+' '_')
  config "$mode" > "$tmp/cowdag.$safe.json"
  m0=$(now)
  : > "$tmp/log"
  "$B/cowdag" serve -c "$tmp/cowdag.$safe.json" 2> "$tmp/log" & srv=$!
  i=0
  until grep -q "listening on" "$tmp/log"; do
    kill -0 "$srv" 2>/dev/null || { echo "cow_matrix: $mode: server exited:" >&2; cat "$tmp/log" >&2; exit 1; }
    [ $i -lt 600 ] || { echo "cow_matrix: $mode: no 'listening on' in 60 s" >&2; exit 1; }
    sleep 0.1; i=$((i + 1))
  done
  # Every worker ready and sampled once.
  i=0
  until "$B/cowdag" stats --json --url "$URL" 2> /dev/null |
        jq -e --argjson w "$WORKERS" '[.workers[] | select(.status == "ready" and .memory.state.pages > 0)] | length == $w' > /dev/null; do
    [ $i -lt 100 ] || { echo "cow_matrix: $mode: workers not ready in 10 s" >&2; exit 1; }
    sleep 0.1; i=$((i + 1))
  done
  # Warm-up: WARMUP graph requests (each wrk thread stops after its share).
  # They exercise the HTTP path, the DAG engine and the collector but read no
  # state, so the t = 0 sample shows the state as the workers inherited it.
  wrk -t2 -c8 -d1s -s bench/cow.lua "$URL/" -- "$RECORDS" $((WARMUP / 2)) 100 1 > "$tmp/warmup.$safe" & wrkpid=$!
  wait $wrkpid; wrkpid=""
  sleep 1.1 # one stats interval: the t = 0 sample shows the state after the warm-up
  rm -f "$tmp/stop"
  T0=$(now)
  sample_loop "$mode" "$T0" & sampler=$!
  wrk -t2 -c8 -d"${DURATION}s" --latency -s bench/cow.lua "$URL/" -- "$RECORDS" > "$tmp/wrk.$safe" & wrkpid=$!
  wait $wrkpid; wrkpid=""
  touch "$tmp/stop"; wait "$sampler" 2>/dev/null || true; sampler=""
  sleep 1.1 # one stats interval: the final sample shows the state at the end of the load
  sample "$mode" "$T0"
  stop_server
  cp "$tmp/log" "$tmp/log.$safe"
  set -- $(wrk_field "$tmp/wrk.$safe")
  echo "$mode" "$@" >> "$tmp/wrk.summary"
  echo "cow_matrix: $mode done in $(since "$m0") s ($1 req/s, p50 $2, p99 $3)" >&2
done

mkdir -p "$OUT"

# --- CSV: one row per worker per sample ------------------------------------
jq -r --argjson page "$PAGE" '
  .t as $t | .mode as $m | .stats.workers[] |
  [$t, $m, .id, .memory.state.pages, .memory.state.shared_pages, .memory.state.private_pages,
   (.memory.state.private_pages * $page / 1048576 * 100 | round / 100),
   (.memory.rss_bytes / 1048576 * 100 | round / 100), (.memory.pss_bytes / 1048576 * 100 | round / 100),
   .gc.objects, (.gc.collections | add), .gc.collections[2], (.gc.pause_us_total / 1000 * 100 | round / 100),
   .requests] | @csv' "$tmp/samples.jsonl" |
  { echo "time_s,mode,worker,state_pages,shared_pages,private_pages,private_mib,rss_mib,pss_mib,objects,collections,full_collections,pause_ms_total,requests"
    cat; } > "$OUT/cow_matrix.csv"

# --- summary table ---------------------------------------------------------
{
  echo "## Copy-on-write matrix: $RECORDS customer records, $WORKERS workers, ${DURATION} s of load per mode"
  echo
  echo "Produced by \`make bench-cow\` (\`sh bench/cow_matrix.sh $B\`, RECORDS=$RECORDS WORKERS=$WORKERS SECONDS=$DURATION)"
  echo "on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, Linux $(uname -r). Load: \`wrk -t2 -c8 -d${DURATION}s --latency -s bench/cow.lua\`,"
  echo "customer_score with 32 random ids of $RECORDS, one request in 20 \`graph\`; $WARMUP warm-up \`graph\` requests before (they read no state)."
  echo "Figures are from the last /stats sample, taken one stats interval after the load ended. Private MiB: state pages"
  echo "this worker has copied (x $PAGE B). Total PSS: master + workers. Collections: gen0/gen1/gen2, summed over the"
  echo "workers; pause: total collector time, summed over the workers, and the longest single collection. Copied"
  echo "pages by type: the copied state pages holding each type, summed over the workers, most first (a page holding"
  echo "several types counts for each; README.md, \"Which object types were copied\")."
  echo
  echo "| mode | thresholds | private MiB of state, per worker | state shared | total PSS MiB | req/s | p50 | p99 | collections | pause ms, total | pause ms, max | objects alive, per worker | copied pages by type |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for mode in $MODES; do
    read -r _ rps p50 p99 nreq bad <<EOF
$(grep "^$mode " "$tmp/wrk.summary")
EOF
    jq -r -s --arg mode "$mode" --arg rps "$rps" --arg p50 "$p50" --arg p99 "$p99" --arg bad "$bad" --argjson page "$PAGE" '
      def mib: . / 1048576 * 10 | round / 10 | tostring | if test("\\.") then . else . + ".0" end;
      def pct: . * 10000 | round / 100 | tostring | if test("\\.") then . else . + ".0" end;
      def thousands: tostring | [match("\\d{1,3}(?=(\\d{3})*$)"; "g").string] | join(",");
      [.[] | select(.mode == $mode)] | last | .stats as $s | $s.workers as $w |
      [ $mode + (if $bad != "0" then " (" + $bad + " non-2xx)" else "" end),
        ($s.master.gc.thresholds | map(tostring) | join(",")),
        ($w | map(.memory.state.private_pages * $page | mib) | join(" / ")),
        (($w | map(.memory.state.shared_pages) | add) / ($w | map(.memory.state.pages) | add) | pct) + "%",
        ($s.master.memory.pss_bytes + ($w | map(.memory.pss_bytes) | add) | mib),
        ($rps | tonumber | round | tostring), $p50, $p99,
        ([0, 1, 2] | map(. as $g | $w | map(.gc.collections[$g]) | add | tostring) | join("/")),
        ($w | map(.gc.pause_us_total) | add / 1000 | . * 10 | round / 10 | tostring),
        ($w | map(.gc.pause_us_max) | max / 1000 | . * 10 | round / 10 | tostring),
        ($w | map(.gc.objects | thousands) | join(" / ")),
        ([$w[].memory.state.copied_by_type // {} | to_entries[]] | group_by(.key)
          | map({type: .[0].key, pages: (map(.value.pages) | add)}) | map(select(.pages > 0))
          | sort_by(-.pages) | map(.type + " " + (.pages | thousands)) | join(", ")
          | if . == "" then "none" else . end)
      ] | "| " + join(" | ") + " |"' "$tmp/samples.jsonl"
  done
  echo
} > "$OUT/cow_matrix.md"
cat "$OUT/cow_matrix.md"

# --- the README's copy of the table, when asked ---------------------------
# Between the markers <!-- cow-matrix:begin --> and <!-- cow-matrix:end -->:
# one line saying when and how the run was made, then the table.
if [ "$UPDATE_README" = 1 ]; then
  grep -q 'cow-matrix:begin' "$ROOT/README.md" || { echo "cow_matrix: no cow-matrix markers in README.md" >&2; exit 1; }
  jq -r -s --argjson page "$PAGE" --arg date "$(date -u '+%Y-%m-%d')" --arg cores "$(nproc)" \
        --arg params "RECORDS=$RECORDS WORKERS=$WORKERS SECONDS=$DURATION" '
      def thousands: tostring | [match("\\d{1,3}(?=(\\d{3})*$)"; "g").string] | join(",");
      last | .stats.master as $m |
      "The latest run (`make bench-cow UPDATE_README=1 " + $params + "`, " + $date + ", " + $cores +
      " cores; " + ($m.state_bytes / 1048576 | round | tostring) + " MiB of state in " +
      ($m.state_pages | thousands) + " pages; figures from the last sample, one second after the load " +
      "ended; collections are generation 0/1/2 summed over the workers):"' "$tmp/samples.jsonl" > "$tmp/runline"
  awk -v table="$OUT/cow_matrix.md" -v runline="$tmp/runline" '
    /<!-- cow-matrix:begin -->/ {
      print
      while ((getline l < runline) > 0) print l
      print ""
      while ((getline l < table) > 0) if (l ~ /^\|/) print l
      skip = 1; next }
    /<!-- cow-matrix:end -->/ { skip = 0 }
    !skip' "$ROOT/README.md" > "$ROOT/README.md.new" && mv "$ROOT/README.md.new" "$ROOT/README.md"
fi

# --- plots ------------------------------------------------------------------
sh "$ROOT/bench/cow_plot.sh" "$OUT/cow_matrix.csv" "$OUT" "$DURATION"
echo "cow_matrix: wrote $OUT/cow_matrix.csv, $OUT/cow_matrix.md, $OUT/cow_private.png, $OUT/cow_objects.png in $(since "$started") s" >&2
if [ "$UPDATE_README" = 1 ]; then
  echo "cow_matrix: README.md's table and run line rewritten (git diff README.md $OUT)" >&2
else
  echo "cow_matrix: README.md and bench/results/ left as they were (UPDATE_README=1 writes them)" >&2
fi
