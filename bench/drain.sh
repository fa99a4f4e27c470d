#!/bin/sh
# bench/drain.sh BUILD_DIR: requests lost while cowdag replaces its workers,
# under keep-alive load.  Each scenario serves a fresh copy of
# tests/fixtures/server (2 workers, no access log) and runs its own
# `wrk -t1 -c16 -dDURATION` of POST /dags/version/run, body {} (an instant
# answer), while this script acts on the master:
#
#   none     nothing: the control
#   hup      HUP_COUNT SIGHUPs, one a second, each after the log says the
#            previous generation is serving
#   ttin     TTIN_COUNT times SIGTTIN, then SIGTTOU, waiting for the new worker
#            to start and the retired one to exit, a second apart
#   ttou     the same, SIGTTOU first: TTIN's worker gets no connection from
#            a keep-alive client that already has its 16, and TTOU retires
#            it again, so ttin alone does not disturb the load; here TTOU
#            retires a worker that holds connections
#   recycle  max_requests RECYCLE_AT: workers recycle all the time
#   term     SIGTERM half-way: the server is gone for the second half, so
#            refused reconnects are expected there -- wrk counts them as
#            write errors (its non-blocking connect returns EINPROGRESS on
#            loopback and the refusal comes on the first write), not as
#            connect errors; read errors and non-2xx are the requests lost
#
# and prints one markdown row per scenario with wrk's figures (requests,
# socket errors by kind, non-2xx) and the requests the workers say they
# served (their exit lines), then the command line to reproduce.
#
# Parameters (environment): DURATION=20 HUP_COUNT=10 TTIN_COUNT=4 (also for ttou)
# RECYCLE_AT=2000 GRACE_MS=5000 (graceful_timeout_ms) PORT=18330
# SCENARIOS="none hup ttin ttou recycle term" LOGS= (a folder to keep the server
# logs and wrk outputs in).  Needs wrk and jq
# (make deps-bench).  About 2.5 minutes.
set -eu
B=${1:-build}
DURATION=${DURATION:-20}
HUP_COUNT=${HUP_COUNT:-10}
TTIN_COUNT=${TTIN_COUNT:-4}
RECYCLE_AT=${RECYCLE_AT:-2000}
GRACE_MS=${GRACE_MS:-5000}
PORT=${PORT:-18330}
SCENARIOS=${SCENARIOS:-none hup ttin ttou recycle term}
LOGS=${LOGS:-}
URL=http://127.0.0.1:$PORT
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for tool in wrk jq curl; do
  command -v $tool > /dev/null || { echo "drain: $tool not found (make deps-bench)" >&2; exit 1; }
done
[ -x "$B/cowdag" ] || { echo "drain: $B/cowdag not built (make $B/cowdag)" >&2; exit 1; }

tmp=$(mktemp -d)
srv="" wrkpid=""

# Stops what this script started and is still running: wrk, the master
# (SIGTERM, SIGKILL after 10 s) and any worker that outlived it.
cleanup() {
  rc=$?
  trap - EXIT INT TERM
  [ $rc -eq 0 ] || echo "drain: stopped with status $rc" >&2
  [ -n "$wrkpid" ] && { kill "$wrkpid" 2>/dev/null || true; wait "$wrkpid" 2>/dev/null || true; }
  [ -n "$srv" ] && { stop_server || true; }
  if [ -n "$LOGS" ]; then
    mkdir -p "$LOGS" && cp "$tmp"/log* "$tmp"/wrk.* "$LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the server ---------------------------------------------------------------

. "$ROOT/bench/lib.sh" # stop_server, wait_exit, kill_orphans
BENCH=drain

# Lines of the log matching the pattern $1 (grep -E).
count_log() { grep -cE "$1" "$tmp/log" || true; }

# Waits up to $3 tenths of a second for $2 log lines matching the pattern $1
# (grep -E); 0 when they came.
wait_log() {
  i=0
  until [ "$(count_log "$1")" -ge "$2" ]; do
    [ $i -lt "$3" ] || return 1
    sleep 0.1; i=$((i + 1))
  done
}

# Starts the master on a copy of the fixture with the jq edit $1; returns once
# it answers GET /healthz (that one request is in the workers' counts).
start_server() {
  rm -rf "$tmp/srv"
  cp -R "$ROOT/tests/fixtures/server" "$tmp/srv"
  jq --argjson grace "$GRACE_MS" ".workers = 2 | .access_log = false | .graceful_timeout_ms = \$grace | $1" \
    "$ROOT/tests/fixtures/server/cowdag.json" > "$tmp/srv/cowdag.json"
  : > "$tmp/log"
  "$B/cowdag" serve -c "$tmp/srv/cowdag.json" --listen "127.0.0.1:$PORT" 2> "$tmp/log" & srv=$!
  i=0
  until grep -q "listening on" "$tmp/log" && curl -sf --max-time 1 "$URL/healthz" > /dev/null; do
    kill -0 "$srv" 2>/dev/null || { echo "drain: server exited:" >&2; cat "$tmp/log" >&2; exit 1; }
    [ $i -lt 100 ] || { echo "drain: server not ready in 10 s" >&2; exit 1; }
    sleep 0.1; i=$((i + 1))
  done
}

# Sleeps until $2 seconds after the time $1 (at least 0.05 s).
sleep_until() { sleep "$(awk -v t="$1" -v d="$2" -v n="$(now)" 'BEGIN { s = t + d - n; printf "%.3f", s < 0.05 ? 0.05 : s }')"; }

# --- the scenarios --------------------------------------------------------------
# Each runs while wrk does (started at T0) and writes what it did to
# $tmp/events; none takes longer than the wrk run plus its own bounded waits.

act_none() { echo "-" > "$tmp/events"; }

act_hup() {
  sleep_until "$T0" 2
  n=0
  while [ $n -lt "$HUP_COUNT" ] && kill -0 "$wrkpid" 2>/dev/null; do
    t=$(now)
    kill -HUP "$srv"
    n=$((n + 1))
    wait_log "generation $((n + 1)) serving" 1 100 || { echo "drain: generation $((n + 1)) not serving in 10 s" >&2; break; }
    sleep_until "$t" 1
  done
  echo "$n HUP in $(since "$T0") s; $(count_log 'generation [0-9]+ serving') generations serving" > "$tmp/events"
}

# TTIN_COUNT times signal $1 then $2 (TTIN and TTOU in either order), a
# second apart, each after the log shows its effect: a worker started, a
# worker retired.
scale() {
  sleep_until "$T0" 2
  n=0
  while [ $n -lt "$TTIN_COUNT" ] && kill -0 "$wrkpid" 2>/dev/null; do
    for sig in "$1" "$2"; do
      if [ "$sig" = TTIN ]; then what=' started, pid '; else what='retired worker'; fi
      had=$(count_log "$what")
      kill -"$sig" "$srv"
      wait_log "$what" $((had + 1)) 100 || { echo "drain: no effect of SIG$sig in 10 s" >&2; break 2; }
      sleep 1
    done
    n=$((n + 1))
  done
  echo "$n x ($1, $2) in $(since "$T0") s; $(count_log 'served 0 requests') of the retired workers served nothing" > "$tmp/events"
}

act_ttin() { scale TTIN TTOU; }
act_ttou() { scale TTOU TTIN; }

act_recycle() {
  sleep_until "$T0" "$DURATION"
  echo "$(($(count_log ' started, pid ') - 2)) workers started to replace recycled ones (max_requests $RECYCLE_AT)" > "$tmp/events"
}

act_term() {
  sleep_until "$T0" "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"
  t=$(now)
  at=$(since "$T0")
  kill -TERM "$srv"
  if wait_exit 150; then
    echo "TERM at $at s; master exited $(since "$t") s later" > "$tmp/events"
  else
    echo "TERM at $at s; master still running 15 s later" > "$tmp/events"
  fi
}

config_of() {
  case $1 in
    recycle) echo ".max_requests = $RECYCLE_AT" ;;
    none|hup|ttin|ttou|term) echo ".max_requests = 0" ;;
    *) echo "drain: unknown scenario $1" >&2; exit 1 ;;
  esac
}

cat > "$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.path = "/dags/version/run"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
LUA

# wrk's figures: requests, req/s, then socket errors connect read write
# timeout, then non-2xx (0 when wrk prints no such line).
wrk_fields() {
  nreq=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$1")
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1")
  errs=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$1")
  bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$1")
  echo "$nreq $rps ${errs:-0 0 0 0} ${bad:-0}"
}

for s in $SCENARIOS; do
  cfg=$(config_of "$s")
  start_server "$cfg"
  echo "drain: $s: serving, wrk for $DURATION s" >&2
  T0=$(now)
  wrk -t1 -c16 -d"${DURATION}s" -s "$tmp/post.lua" "$URL/" > "$tmp/wrk.$s" 2>&1 & wrkpid=$!
  "act_$s"
  wait "$wrkpid" || true
  wrkpid=""
  if kill -0 "$srv" 2>/dev/null; then
    stop_server 100
  else # term: gone already
    wait "$srv" 2>/dev/null || true
    kill_orphans
    srv=""
  fi
  served=$(sed -n 's/.*worker [0-9]* served \([0-9]*\) requests.*/\1/p' "$tmp/log" | awk '{ n += $1 } END { print n - 1 }')
  # shellcheck disable=SC2046 # word splitting wanted: seven numbers
  set -- $(wrk_fields "$tmp/wrk.$s")
  [ $# -eq 7 ] || { echo "drain: $s: cannot read wrk's output:" >&2; cat "$tmp/wrk.$s" >&2; exit 1; }
  echo "| $s | $(cat "$tmp/events") | $1 | $2 | $3 | $4 | $5 | $6 | $7 | $served |" >> "$tmp/rows"
  cp "$tmp/log" "$tmp/log.$s"
done

echo "## Worker replacement under keep-alive load: wrk -t1 -c16 -d${DURATION}s, POST /dags/version/run, 2 workers"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, Linux $(uname -r); graceful_timeout_ms $GRACE_MS."
echo "Socket errors as wrk counts them; read errors are requests lost on a connection the server closed;"
echo "in term, the write errors are reconnects refused once the server is gone."
echo "\"served\" sums the workers' exit lines (the readiness probe taken off)."
echo
echo "| scenario | events | requests | req/s | connect err | read err | write err | timeout | non-2xx | served |"
echo "|---|---|---|---|---|---|---|---|---|---|"
cat "$tmp/rows"
echo
echo "Reproduce: \`make BUILD=$B $B/cowdag && DURATION=$DURATION HUP_COUNT=$HUP_COUNT TTIN_COUNT=$TTIN_COUNT RECYCLE_AT=$RECYCLE_AT GRACE_MS=$GRACE_MS sh bench/drain.sh $B\`"
