#!/bin/sh
# bench/soak.sh BUILD_DIR: the soak of `make soak` -- long-lived workers
# under a mixed load, reloaded every minute, must keep their memory flat.
#
# For each mode of SOAK_MODE (default "tuned freeze+immortal") the default
# config (config/cowdag.json: 200,000 customers, the marketing table, the
# example DAGs, 2 workers; only its gc, listen address and access log
# changed) is served for SOAK_SECONDS (default 600), niced, under:
#   - wrk -t1 -c4, bench/soak.lua: customer_score, marketing and graph
#     (whose node rings are cyclic garbage), 16:2:2; every answer must be 2xx
#     and no socket error is allowed;
#   - wrk -t1 -c1, bench/soak_bad.lua: bad requests, each must be 4xx;
#   - a slow reader: curl --limit-rate 512k of chain's foo_999 (131072
#     numbers, a streamed response of about 2.4 MB), one after another;
#     each must arrive whole (HTTP 200, valid JSON, 131072 numbers);
#   - SIGHUP to the master every SOAK_HUP seconds (default 60): a reload,
#     which replaces every worker.
# GET /stats is sampled every 10 s: per worker RSS, heap objects alive
# and copied state pages; the master's RSS.  Written to OUT (default
# BUILD_DIR/soak): soak.csv (one row per process per sample), soak.png
# (gnuplot) and soak.md (the figures and the verdict).
#
# The bound.  Workers are replaced by every reload, so like is compared
# with like: for each worker slot, the last sample of each worker while it
# was serving (its figures just before the next reload retired it), from
# the first minute on; and the master's least sample in each generation's
# time after the first minute (while it loads the next generation it holds
# two states for a moment: the least is its figure between reloads).  The
# least-squares slope of each series, times the soak's length after the
# first minute, is the growth; it must stay within 2% of the series'
# mean, and at least 20000 objects / 8 MiB (noise of in-flight requests
# and of garbage awaiting the collector).  The soak fails on such growth, on
# any failed good request or slow read, on a bad request not answered 4xx,
# and on any worker death (a crash or a watchdog kill in /stats's
# restarts, or "killed by signal"/"exited with status N>0" in the master's
# log).
#
# Parameters (environment; `make soak VAR=...` passes them on):
#   SOAK_SECONDS=600  SOAK_MODE="tuned freeze+immortal"  SOAK_HUP=60
#   SOAK_PORT=18260   OUT=BUILD_DIR/soak
# Needs wrk, curl, jq, gnuplot and python3 (`make soak` installs them).
set -eu
B=${1:-build}
DURATION=${SOAK_SECONDS:-600}
MODES=${SOAK_MODE:-tuned freeze+immortal}
HUP_EVERY=${SOAK_HUP:-60}
PORT=${SOAK_PORT:-18260}
OUT=${OUT:-$B/soak}
URL=http://127.0.0.1:$PORT
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=soak
PAGE=$(getconf PAGESIZE)

for tool in wrk curl jq gnuplot python3; do
  command -v $tool > /dev/null || { echo "soak: $tool not found (make soak installs it)" >&2; exit 1; }
done
[ -x "$B/cowdag" ] || { echo "soak: $B/cowdag not built (make all)" >&2; exit 1; }

tmp=$(mktemp -d)
srv="" pids=""
. "$ROOT/bench/lib.sh"

cleanup() {
  rc=$?
  trap - EXIT INT TERM
  touch "$tmp/stop"
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  [ -n "$srv" ] && { stop_server || true; }
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# The default config, with this mode's gc, the soak's port, no access log,
# and its relative paths made absolute (it is written elsewhere).
config() { # MODE
  case $1 in
    tuned)           gc='{"mode": "tuned", "thresholds": [700, 10, 10], "immortal": false}' ;;
    freeze+immortal) gc='{"mode": "freeze", "thresholds": [700, 10, 10], "immortal": true}' ;;
    freeze)          gc='{"mode": "freeze", "thresholds": [700, 10, 10], "immortal": false}' ;;
    disable)         gc='{"mode": "disable", "thresholds": [700, 10, 10], "immortal": false}' ;;
    *) echo "soak: unknown mode $1" >&2; exit 1 ;;
  esac
  jq --argjson gc "$gc" --arg listen "127.0.0.1:$PORT" --arg dir "$ROOT/config" '
    def abs: if startswith("/") then . else $dir + "/" + . end;
    .gc = $gc | .listen = $listen | .access_log = false
    | .state |= map(if .csv then .csv |= abs else . end | if .file then .file |= abs else . end)
    | .dags |= map(abs)' "$ROOT/config/cowdag.json"
}

# One sample: a CSV row per worker and one for the master.
sample() { # MODE T0
  t=$(since "$2")
  "$B/cowdag" stats --json --url "$URL" 2> /dev/null | jq -r --arg t "$t" --arg mode "$1" --argjson page "$PAGE" '
    ([$t, $mode, "master", "", .master.pid, "", "", "", "",
      (.master.memory.rss_bytes / 1048576 * 100 | round / 100), "", "", "", ""] | @csv),
    (.workers[] | [$t, $mode, "worker", .id, .pid, .generation, .status, .requests, .errors,
      (.memory.rss_bytes / 1048576 * 100 | round / 100), .gc.objects, .memory.state.private_pages,
      (.memory.state.private_pages * $page / 1048576 * 100 | round / 100),
      (.restarts.crash + .restarts.timeout)] | @csv)' >> "$tmp/samples.csv" || true
}

sample_loop() { # MODE T0
  i=0
  while [ ! -e "$tmp/stop" ]; do
    sample "$1" "$2"
    i=$((i + 10))
    d=$(awk -v t0="$2" -v i=$i -v now="$(now)" 'BEGIN { d = t0 + i - now; printf "%.3f", d < 0.05 ? 0.05 : d }')
    sleep "$d"
  done
}

hup_loop() { # T0
  i=0
  while [ ! -e "$tmp/stop" ]; do
    i=$((i + HUP_EVERY))
    while [ ! -e "$tmp/stop" ] && awk -v t0="$1" -v i=$i -v now="$(now)" 'BEGIN { exit !(now < t0 + i) }'; do
      sleep 1
    done
    [ -e "$tmp/stop" ] && break
    kill -HUP "$srv" && echo "$(since "$1")" >> "$tmp/hups"
  done
}

# Slow reads of a large streamed result, one after another; each one's
# verdict is a line of $tmp/slow ("ok SECONDS" or "fail WHY").
slow_loop() {
  while [ ! -e "$tmp/stop" ]; do
    t=$(now)
    code=$(curl -s --max-time 120 --limit-rate 512k -o "$tmp/large.json" -w '%{http_code}' \
      -H 'Content-Type: application/json' -d '{"inputs":{"size_mb":1},"outputs":["foo_999"]}' \
      "$URL/dags/chain/run" 2> /dev/null) || code="curl-$?"
    [ -e "$tmp/stop" ] && [ "$code" != 200 ] && break # cut short by the end of the soak
    if [ "$code" = 200 ] && jq -e '.outputs.foo_999 | length == 131072' "$tmp/large.json" > /dev/null 2>&1; then
      echo "ok $(since "$t") $(wc -c < "$tmp/large.json")" >> "$tmp/slow"
    else
      echo "fail HTTP $code after $(since "$t") s" >> "$tmp/slow"
    fi
  done
}

echo 'time_s,mode,process,slot,pid,generation,status,requests,errors,rss_mib,objects,copied_pages,copied_mib,crashes' > "$tmp/samples.csv"
: > "$tmp/verdicts"
for mode in $MODES; do
  safe=$(echo "$mode" | tr '+' '_')
  config "$mode" > "$tmp/cowdag.$safe.json"
  : > "$tmp/log"; : > "$tmp/hups"; : > "$tmp/slow"; rm -f "$tmp/stop"
  nice -n 19 "$B/cowdag" serve -c "$tmp/cowdag.$safe.json" 2> "$tmp/log" & srv=$!
  i=0
  until grep -q "listening on" "$tmp/log"; do
    kill -0 "$srv" 2>/dev/null || { echo "soak: $mode: server exited:" >&2; cat "$tmp/log" >&2; exit 1; }
    [ $i -lt 1200 ] || { echo "soak: $mode: no 'listening on' in 120 s" >&2; exit 1; }
    sleep 0.1; i=$((i + 1))
  done
  workers=$(jq .workers "$tmp/cowdag.$safe.json")
  i=0
  until "$B/cowdag" stats --json --url "$URL" 2> /dev/null |
        jq -e --argjson w "$workers" '[.workers[] | select(.status == "ready" and .memory.state.pages > 0)] | length == $w' > /dev/null; do
    [ $i -lt 600 ] || { echo "soak: $mode: workers not ready in 60 s" >&2; exit 1; }
    sleep 0.1; i=$((i + 1))
  done
  echo "soak: $mode for ${DURATION}s on $URL" >&2
  T0=$(now)
  pids=""
  sample_loop "$mode" "$T0" & pids="$pids $!"
  hup_loop "$T0" & pids="$pids $!"
  slow_loop & pids="$pids $!"
  nice -n 19 wrk -t1 -c4 -d"${DURATION}s" --timeout 60s -s "$ROOT/bench/soak.lua" "$URL/" > "$tmp/wrk.good" 2>&1 & good=$!
  nice -n 19 wrk -t1 -c1 -d"${DURATION}s" --timeout 60s -s "$ROOT/bench/soak_bad.lua" "$URL/" > "$tmp/wrk.bad" 2>&1 & bad=$!
  wait $good || true
  wait $bad || true
  touch "$tmp/stop"
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  pids=""
  sample "$mode" "$T0"
  stop_server 600 # a reload may be loading the state: up to a minute
  cp "$tmp/log" "$tmp/log.$safe"

  # The load's verdicts, for the analysis below.
  good_req=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$tmp/wrk.good")
  non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$tmp/wrk.good")
  sockerr=$(sed -n 's/^ *Socket errors: *//p' "$tmp/wrk.good")
  bad_line=$(grep '^bad requests:' "$tmp/wrk.bad" || echo "bad requests: ? answered, ? not 4xx")
  bad_ans=$(echo "$bad_line" | awk '{print $3}') not4xx=$(echo "$bad_line" | awk '{print $5}')
  slow_ok=$(grep -c '^ok' "$tmp/slow" || true) slow_fail=$(grep -c '^fail' "$tmp/slow" || true)
  slow_s=$(awk '/^ok/ { s += $2; n++ } END { if (n) printf "%.1f", s / n; else print "-" }' "$tmp/slow")
  deaths=$(grep -cE 'killed by signal|exited with status [1-9]|respawning in' "$tmp/log" || true)
  hups=$(wc -l < "$tmp/hups" | tr -d ' ')
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$mode" "${good_req:-0}" "${non2xx:-0}" "${sockerr:-none}" \
    "$bad_ans" "$not4xx" "$slow_ok" "$slow_fail" "$slow_s" "$deaths" "$hups" >> "$tmp/verdicts"
  grep -E 'killed by signal|exited with status [1-9]|respawning in' "$tmp/log" | sed "s/^/soak: $mode: /" >&2 || true
  grep '^fail' "$tmp/slow" | sed "s/^/soak: $mode: slow read: /" >&2 || true
  echo "soak: $mode done: $good_req good requests, ${non2xx:-0} non-2xx, socket errors: ${sockerr:-none}; $bad_line; slow reads $slow_ok ok, $slow_fail failed; $hups reloads" >&2
done

mkdir -p "$OUT"
cp "$tmp/samples.csv" "$OUT/soak.csv"
rc=0
python3 "$ROOT/bench/soak_check.py" "$OUT/soak.csv" "$tmp/verdicts" "$DURATION" "$OUT/soak.md" || rc=1
sh "$ROOT/bench/soak_plot.sh" "$OUT/soak.csv" "$OUT/soak.png" "$MODES" || echo "soak: no plot" >&2
cat "$OUT/soak.md"
exit $rc
