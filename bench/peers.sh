#!/bin/sh
# bench/peers.sh BUILD_DIR: cowdag beside its peers on the same job,
# customer_score with 32 random ids of 200,000 customers (bench/score.lua):
#
#   bare     bench/bare_server, the pre-fork libmicrohttpd ceiling (fixed body)
#   cowdag   bench/cowdag-bench.json: freeze + immortal, no access log
#   node     bench/peers/cluster.js: node's cluster, the state built in each worker
#   gthread  bench/peers/app.py under gunicorn, gthread workers, preloaded + gc.freeze()
#   sync     the same app, sync workers
#
# Speed: before measuring, each peer's answers to CHECKS requests must agree
# with cowdag's to 1e-12, or that peer is not measured.  Then ROUNDS rounds,
# the servers one after another in each, WORKERS workers each, wrk -t2 -c8
# keep-alive for WARMUP s (not counted), then DURATION s measured.  Memory
# (MEMORY=1): each server but the bare one at each of MEM_WORKERS workers,
# the PSS of the master and every process under it (/proc/PID/smaps_rollup)
# once it is up, then after MEM_REQUESTS requests a worker (wrk -t1 -c32,
# bench/peers/fixed.lua).
# Writes bench/results/peers.md, peers_memory.csv and peers_memory.png;
# with UPDATE_README=1 also README.md's tables between the peers markers.
# A peer whose runtime is missing (node, gunicorn) is named and skipped.
set -eu
BUILD_ARG=${1:-build}
B=$(cd "$BUILD_ARG" && pwd)
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-4}
CHECKS=${CHECKS:-20}
MEMORY=${MEMORY:-1}
MEM_WORKERS=${MEM_WORKERS:-1 2 4 8}
MEM_REQUESTS=${MEM_REQUESTS:-10000}
MEM_TIMEOUT=${MEM_TIMEOUT:-120}
UPDATE_README=${UPDATE_README:-0}
OUT=bench/results
RECORDS=200000 # bench/score.lua draws its ids from these
export RECORDS SEED=42 PYTHONDONTWRITEBYTECODE=1

tmp=$(mktemp -d)
srv=""
cleanup() {
  [ -z "$srv" ] || stop_server
  for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "peers: $*" >&2; }
started=$(date +%s)

# --- the servers ----------------------------------------------------------------

# Ports PORT_BASE (default 18195) to PORT_BASE + 4, apart from the other
# benchmarks' (18181 to 18184).
port_of() {
  b=${PORT_BASE:-18195}
  case $1 in bare) echo $b ;; cowdag) echo $((b + 1)) ;; node) echo $((b + 2)) ;; gthread) echo $((b + 3)) ;; sync) echo $((b + 4)) ;; esac
}

GUNICORN=$(command -v gunicorn || true)
NODE=$(command -v node || command -v nodejs || true)
skip_why() { # SERVER -> why it cannot run here, or nothing
  case $1 in
  node) [ -n "$NODE" ] || echo "no node or nodejs on the PATH" ;;
  gthread | sync) [ -n "$GUNICORN" ] || echo "no gunicorn on the PATH" ;;
  esac
}
label() {
  case $1 in
  bare) echo "bare libmicrohttpd pre-fork, fixed body" ;;
  cowdag) echo "cowdag, freeze + immortal" ;;
  node) echo "node $("$NODE" --version | tr -d v) \`cluster\`, the same records and scores in JavaScript" ;;
  gthread | sync)
    py=$(sed -n '1s/^#! *//p' "$GUNICORN")
    echo "gunicorn $("$GUNICORN" --version | sed 's/.*version \([^)]*\).*/\1/') + CPython $($py -c 'import platform; print(platform.python_version())'), $1 workers$([ "$1" = gthread ] && echo " ($THREADS threads)"), gc.freeze" ;;
  esac
}

# SERVER WORKERS: starts it in the background ($srv: its pid, $tmp/log: its
# output) and returns once every worker is up and it answers; 1 if it never
# does within 120 s.
start_server() {
  port=$(port_of "$1")
  if ss -Htln "sport = :$port" | grep -q .; then
    say "port $port, for $1, is taken by another process (set PORT_BASE):"
    ss -Htlnp "sport = :$port" >&2
    return 1
  fi
  case $1 in
  bare) "$B/bench/bare_server" "$port" "$2" > "$tmp/log" 2>&1 & ready="" ;;
  cowdag) "$B/cowdag" serve -c bench/cowdag-bench.json --listen "127.0.0.1:$port" --workers "$2" > "$tmp/log" 2>&1 &
    ready="started, pid" ;;
  node) "$NODE" bench/peers/cluster.js "$port" "$2" > "$tmp/log" 2>&1 & ready="ready" ;;
  gthread | sync)
    "$GUNICORN" --chdir bench/peers -c bench/peers/gunicorn.conf.py -b "127.0.0.1:$port" -w "$2" \
      -k "$1" --threads "$([ "$1" = gthread ] && echo "$THREADS" || echo 1)" app:app > "$tmp/log" 2>&1 &
    ready="Booting worker" ;;
  esac
  srv=$!
  i=0
  while [ $i -lt 1200 ]; do
    kill -0 "$srv" 2>/dev/null || { say "$1 exited at start:"; cat "$tmp/log" >&2; srv=""; return 1; }
    if [ -z "$ready" ] || [ "$(grep -c "$ready" "$tmp/log")" -ge "$2" ]; then
      if [ "$1" = bare ]; then
        code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)
      else
        code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' -d @"$tmp/check/1.json" \
          "http://127.0.0.1:$port/dags/customer_score/run" || true)
      fi
      [ "$code" = 200 ] && return 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  say "$1 did not answer within 120 s:"
  cat "$tmp/log" >&2
  stop_server
  return 1
}

tree() { # PID -> PID and every process under it
  echo "$1"
  for c in $(pgrep -P "$1" || true); do tree "$c"; done
}

# SIGTERM to the server, up to 15 s for it and its workers to leave,
# SIGKILL to whatever of them is left.
stop_server() {
  pids=$(tree "$srv")
  kill -TERM "$srv" 2>/dev/null || true
  i=0
  while [ $i -lt 150 ]; do
    alive=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break
    sleep 0.1
    i=$((i + 1))
  done
  for p in $pids; do
    kill -0 "$p" 2>/dev/null && { say "pid $p did not stop, SIGKILL"; kill -KILL "$p" 2>/dev/null || true; }
  done
  wait "$srv" 2>/dev/null || true
  srv=""
}

# --- the agreement check ----------------------------------------------------------

# CHECKS request bodies of 32 ids each, the same in every run; the first
# holds the first and last customers.
mkdir -p "$tmp/check"
awk -v n="$CHECKS" -v records="$RECORDS" -v dir="$tmp/check" 'BEGIN {
  srand(14)
  for (r = 1; r <= n; r++) {
    ids = (r == 1) ? "0," (records - 1) : int(rand() * records) "," int(rand() * records)
    for (k = 3; k <= 32; k++) ids = ids "," int(rand() * records)
    printf "{\"inputs\":{\"ids\":[%s]}}\n", ids > (dir "/" r ".json")
  } }'

# SERVER: its answers to the check requests, in $tmp/check/N.SERVER.
answers() {
  q=1
  while [ $q -le "$CHECKS" ]; do
    curl -s -m 10 -H 'Content-Type: application/json' -d @"$tmp/check/$q.json" \
      "http://127.0.0.1:$(port_of "$1")/dags/customer_score/run" > "$tmp/check/$q.$1" || true
    q=$((q + 1))
  done
}

# SERVER: 0 when each of its answers has as many scores as cowdag's and
# none is farther than 1e-12 from cowdag's; the largest difference in
# $tmp/agree.SERVER.
agrees() {
  answers "$1"
  q=1 worst=0
  while [ $q -le "$CHECKS" ]; do
    d=$(jq -n --slurpfile a "$tmp/check/$q.cowdag" --slurpfile b "$tmp/check/$q.$1" '
      ($a[0].outputs.scores) as $x | ($b[0].outputs.scores // []) as $y
      | if ($x | length) != 32 or ($y | length) != 32 then "mismatch"
        else [range(32) | ($x[.] - $y[.]) | fabs] | max end' 2>/dev/null || echo mismatch)
    if [ "$d" = '"mismatch"' ] || [ "$d" = mismatch ]; then
      say "$1: answer $q differs from cowdag's in shape: $(head -c 200 "$tmp/check/$q.$1")"
      return 1
    fi
    worst=$(awk -v a="$worst" -v b="$d" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
    q=$((q + 1))
  done
  echo "$worst" > "$tmp/agree.$1"
  awk -v w="$worst" 'BEGIN { exit !(w + 0 <= 1e-12) }' || { say "$1: a score differs from cowdag's by $worst"; return 1; }
}

# --- speed ----------------------------------------------------------------------

# FILE -> "req/s p50_us p99_us non2xx errors" from wrk's output.
wrk_fields() {
  awk 'function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
    /^Requests\/sec:/ { rps = $2 } /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
    END { printf "%s %s %s %d %d\n", rps, p50, p99, bad, err }' "$1"
}

SERVERS="bare cowdag node gthread sync"
for s in $SERVERS; do
  why=$(skip_why "$s")
  if [ -n "$why" ]; then say "skipping $s: $why"; echo "$why" > "$tmp/skip.$s"; fi
done

say "speed: $ROUNDS rounds of $SERVERS, $WORKERS workers, ${WARMUP} s + ${DURATION} s each"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  for s in $SERVERS; do
    [ -e "$tmp/skip.$s" ] && continue
    start_server "$s" "$WORKERS" || { say "round $r, $s: not measured"; continue; }
    if [ "$s" = cowdag ] && [ ! -e "$tmp/check/1.cowdag" ]; then
      answers cowdag
    elif [ "$s" != bare ] && [ "$s" != cowdag ] && [ ! -e "$tmp/check/1.cowdag" ]; then
      say "round $r, $s: not measured, cowdag has not answered the checks yet"
      stop_server
      continue
    elif [ "$s" != bare ] && [ "$s" != cowdag ]; then
      if ! agrees "$s"; then
        echo "its answers differ from cowdag's (checked before measuring)" > "$tmp/skip.$s"
        stop_server
        continue
      fi
    fi
    url="http://127.0.0.1:$(port_of "$s")/"
    wrk -t2 -c8 -d"${WARMUP}s" -s bench/score.lua "$url" > /dev/null
    wrk -t2 -c8 -d"${DURATION}s" --latency -s bench/score.lua "$url" > "$tmp/wrk.$s.$r"
    stop_server
    set -- $(wrk_fields "$tmp/wrk.$s.$r")
    echo "$r $s $*" >> "$tmp/speed"
    say "round $r, $s: $1 req/s, p50 $2 us, p99 $3 us"
  done
  r=$((r + 1))
done
[ -e "$tmp/check/1.cowdag" ] || { say "cowdag did not run: nothing to compare with"; exit 1; }

# --- memory -----------------------------------------------------------------------

# PSS of the server's every process, "PID KiB" a line.
pss() {
  for p in $(tree "$srv"); do
    kb=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    [ -n "$kb" ] && echo "$p $kb"
  done
}

# SERVER WORKERS: the PSS once it is up, MEM_REQUESTS a worker, the PSS
# again; one line of the CSV.
memory_point() {
  before=$(pss | awk '{ sum += $2 } END { printf "%.1f", sum / 1024 }')
  rm -f "$tmp/done"
  quota=$((MEM_REQUESTS * $2))
  t0=$(date +%s)
  PEERS_QUOTA=$quota PEERS_DONE="$tmp/done" wrk -t1 -c32 -d"$((MEM_TIMEOUT + 10))s" -s bench/peers/fixed.lua \
    "http://127.0.0.1:$(port_of "$1")/" > "$tmp/memwrk" &
  load=$!
  while [ ! -e "$tmp/done" ] && [ $(($(date +%s) - t0)) -lt "$MEM_TIMEOUT" ]; do sleep 0.2; done
  kill -INT $load 2>/dev/null || true
  wait $load || true
  secs=$(($(date +%s) - t0))
  sent=$(awk '/requests in/ { print $1 }' "$tmp/memwrk")
  sleep 1
  pss > "$tmp/pss"
  awk -v s="$1" -v w="$2" -v n="${sent:-0}" -v t="$secs" -v master="$srv" -v before="$before" '
    $1 == master { m = $2 } $1 != master { k++; if (k == 1 || $2 < lo) lo = $2; if ($2 > hi) hi = $2 }
    { sum += $2 }
    END { printf "%s,%d,%d,%d,%s,%.1f,%.1f,%d,%.1f,%.1f\n", s, w, n, t, before, sum / 1024, m / 1024, k, lo / 1024, hi / 1024 }' \
    "$tmp/pss" >> "$tmp/memory.csv"
  say "memory, $1 at $2 workers: $(tail -n 1 "$tmp/memory.csv")"
}

echo "server,workers,requests,seconds,total_pss_before_mib,total_pss_mib,master_pss_mib,workers_seen,worker_pss_min_mib,worker_pss_max_mib" > "$tmp/memory.csv"
if [ "$MEMORY" = 1 ]; then
  say "memory: PSS at $MEM_WORKERS workers after $MEM_REQUESTS requests a worker"
  for s in cowdag node gthread sync; do
    [ -e "$tmp/skip.$s" ] && continue
    for w in $MEM_WORKERS; do
      start_server "$s" "$w" || continue
      memory_point "$s" "$w"
      stop_server
    done
  done
fi

# --- results ------------------------------------------------------------------------

mkdir -p "$OUT"
med() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fmt_rps() { awk -v v="$1" 'BEGIN { s = sprintf("%.0f", v); o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) } print s o }'; }
fmt_us() { awk -v v="$1" 'BEGIN { if (v < 1000) printf "%.0f µs\n", v; else if (v < 1e6) printf "%.2f ms\n", v / 1000; else printf "%.2f s\n", v / 1e6 }'; }

column_of() { awk -v s="$1" -v c="$2" '$2 == s { print $c }' "$tmp/speed" | med; }
cow_rps=$(column_of cowdag 3)

{
  echo "| server | req/s | p50 | p99 | cowdag is |"
  echo "|---|---|---|---|---|"
  for s in $SERVERS; do
    if [ -e "$tmp/skip.$s" ]; then
      echo "| $s | skipped: $(cat "$tmp/skip.$s") | | | |"
      continue
    fi
    rps=$(column_of "$s" 3)
    ratio=$(awk -v c="$cow_rps" -v x="$rps" 'BEGIN { r = c / x; printf (r < 10 ? "%.2f×" : "%.1f×"), r }')
    [ "$s" = cowdag ] && ratio=1
    echo "| $(label "$s") | $(fmt_rps "$rps") | $(fmt_us "$(column_of "$s" 4)") | $(fmt_us "$(column_of "$s" 5)") | $ratio |"
  done
} > "$tmp/speed.md"

{
  printf "| server |"; for w in $MEM_WORKERS; do printf " %s worker%s |" "$w" "$([ "$w" = 1 ] || echo s)"; done; echo
  printf "|---|"; for w in $MEM_WORKERS; do printf -- "---|"; done; echo
  for s in cowdag node gthread sync; do
    grep -q "^$s," "$tmp/memory.csv" || continue
    printf "| %s |" "$(label "$s" | sed 's/, the same records.*//')"
    for w in $MEM_WORKERS; do
      awk -F, -v s="$s" -v w="$w" '$1 == s && $2 == w { printf " %.0f MiB (%.0f before)", $6, $5; f = 1 } END { if (!f) printf " -" }' "$tmp/memory.csv"
      printf " |"
    done
    echo
  done
} > "$tmp/memory.md"

{
  echo "# cowdag beside its peers: customer_score, $WORKERS workers each"
  echo
  echo "\`sh bench/peers.sh $BUILD_ARG\` (\`make bench-peers\`), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores,"
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(($(date +%s) - started)) s in all."
  echo "POST /dags/customer_score/run with 32 random ids of 200,000 customers"
  echo "(bench/score.lua), wrk -t2 -c8 keep-alive: ${WARMUP} s of warm-up, then ${DURATION} s"
  echo "measured, the servers one after another in each of $ROUNDS rounds. Medians of the rounds;"
  echo "\"cowdag is\" divides cowdag's median req/s by the server's."
  echo
  cat "$tmp/speed.md"
  echo
  for s in node gthread sync; do
    [ -e "$tmp/agree.$s" ] && echo "- $s agreed with cowdag on $CHECKS requests of 32 ids: largest difference of a score $(cat "$tmp/agree.$s")."
  done
  echo
  echo "Each round:"
  echo
  echo "| round | server | req/s | p50 | p99 | non-2xx | socket errors |"
  echo "|---|---|---|---|---|---|---|"
  while read -r r s rps p50 p99 bad err; do
    echo "| $r | $s | $(fmt_rps "$rps") | $(fmt_us "$p50") | $(fmt_us "$p99") | $bad | $err |"
  done < "$tmp/speed"
  if [ "$MEMORY" = 1 ]; then
    echo
    echo "## Memory: total PSS of the master and its workers"
    echo
    echo "The PSS of every process of the server summed (/proc/PID/smaps_rollup), once every worker"
    echo "is up (before) and after $MEM_REQUESTS requests a worker (wrk -t1 -c32, bench/peers/fixed.lua: a new"
    echo "connection for each request, so that it reaches every worker)."
    echo
    cat "$tmp/memory.md"
    echo
    echo "![Total PSS against workers](peers_memory.png)"
    echo
    echo "Per point (peers_memory.csv):"
    echo
    echo "| server | workers | requests | s | total PSS MiB before | after | master MiB after | smallest worker MiB | largest worker MiB |"
    echo "|---|---|---|---|---|---|---|---|---|"
    tail -n +2 "$tmp/memory.csv" | awk -F, '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $9, $10 }'
  fi
} > "$OUT/peers.md"

if [ "$MEMORY" = 1 ] && [ "$(wc -l < "$tmp/memory.csv")" -gt 1 ]; then
  cp "$tmp/memory.csv" "$OUT/peers_memory.csv"
  sh bench/peers/plot.sh "$OUT/peers_memory.csv" "$OUT/peers_memory.png"
fi

# README.md's tables sit between <!-- peers:begin --> and <!-- peers:end -->,
# and <!-- peers-memory:begin --> and <!-- peers-memory:end -->.
splice() { # MARKER FILE: README.md with FILE between MARKER's lines
  awk -v b="<!-- $1:begin -->" -v e="<!-- $1:end -->" -v f="$2" '
    $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
    $0 == e { skip = 0 } !skip' README.md > "$tmp/README.md" && cp "$tmp/README.md" README.md
}
if [ "$UPDATE_README" = 1 ]; then
  splice peers "$tmp/speed.md"
  [ "$MEMORY" = 1 ] && splice peers-memory "$tmp/memory.md"
  say "README.md's tables updated"
fi
cat "$OUT/peers.md"
for s in node gthread sync; do
  grep -q "differ" "$tmp/skip.$s" 2>/dev/null && exit 1
done
exit 0
