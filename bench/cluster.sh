#!/bin/sh
# bench/cluster.sh BUILD_DIR: two cowdag instances behind nginx
# (deploy/nginx/cowdag.conf) under keep-alive load, while one instance
# reloads and the other's master is killed (README, "Running it in
# production").
#
# Each instance serves a fresh copy of tests/fixtures/server (2 workers, no
# access log) on its own port; nginx runs from a temporary prefix (its own
# config, pid file, logs and temp folders) as the current user, listening
# on 127.0.0.1, with deploy/nginx/cowdag.conf included as it is but for its
# ports and access log path.  wrk sends POST /dags/version/run, body {} (an
# instant answer), through nginx for DURATION seconds; meanwhile:
#
#   at HUP_AT s    SIGHUP to instance A's master; the script waits for its
#                  second generation to serve
#   at KILL_AT s   SIGKILL to instance B's master: its workers notice
#                  (PR_SET_PDEATHSIG), answer what they hold and leave by
#                  themselves; once they have, B is started again, as a
#                  supervisor would
#
# and prints wrk's requests, socket errors and non-2xx, what nginx's access
# log says of them (requests each instance answered, requests nginx sent to
# more than one instance, statuses nginx returned) and the upstream errors
# of nginx's error log, then the command line to reproduce.
#
# Parameters (environment): DURATION=20 HUP_AT=4 KILL_AT=10 PORT=18350
# (nginx; the instances take PORT+1 and PORT+2) CONNS=16 LOGS= (a folder to
# keep every log in).  Needs nginx, wrk, jq and curl (make deps-bench).
set -eu
B=${1:-build}
DURATION=${DURATION:-20}
HUP_AT=${HUP_AT:-4}
KILL_AT=${KILL_AT:-10}
PORT=${PORT:-18350}
CONNS=${CONNS:-16}
LOGS=${LOGS:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=cluster

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "cluster: nginx not found (make deps-bench)" >&2; exit 1; }
for tool in wrk jq curl; do
  command -v $tool > /dev/null || { echo "cluster: $tool not found (make deps-bench)" >&2; exit 1; }
done
[ -x "$B/cowdag" ] || { echo "cluster: $B/cowdag not built (make $B/cowdag)" >&2; exit 1; }
case $B in /*) ;; *) B=$(pwd)/$B ;; esac

work=$(mktemp -d)
chmod 755 "$work" # nginx's workers may run as another user (root's run as nobody)
pid_a="" pid_b="" nginx_pid="" wrkpid=""
port_a=$((PORT + 1)) port_b=$((PORT + 2))

. "$ROOT/bench/lib.sh" # stop_server, wait_exit, kill_orphans: on $srv and $tmp/log

# --- the instances ----------------------------------------------------------------
# Instance X (a or b) lives in $work/X: its config folder, its log $work/X/log,
# its master's pid in $pid_X.  lib.sh's helpers act on one at a time.

use() { tmp=$work/$1; eval "srv=\${pid_$1}"; }

start_instance() {
  eval "port=\$port_$1"
  rm -rf "$work/$1/srv"
  mkdir -p "$work/$1"
  cp -R "$ROOT/tests/fixtures/server" "$work/$1/srv"
  jq '.workers = 2 | .access_log = false | .graceful_timeout_ms = 5000' \
    "$ROOT/tests/fixtures/server/cowdag.json" > "$work/$1/srv/cowdag.json"
  "$B/cowdag" serve -c "$work/$1/srv/cowdag.json" --listen "127.0.0.1:$port" 2>> "$work/$1/log" &
  eval "pid_$1=$!"
  i=0
  until curl -sf --max-time 1 "http://127.0.0.1:$port/healthz" > /dev/null; do
    kill -0 "$(eval echo "\$pid_$1")" 2>/dev/null || { echo "cluster: instance $1 exited:" >&2; cat "$work/$1/log" >&2; exit 1; }
    [ $i -lt 100 ] || { echo "cluster: instance $1 not ready in 10 s" >&2; exit 1; }
    sleep 0.1; i=$((i + 1))
  done
}

stop_instance() {
  use "$1"
  [ -n "$srv" ] || return 0
  stop_server 100 || true
  eval "pid_$1="
}

# --- nginx --------------------------------------------------------------------------

start_nginx() {
  n=$work/nginx
  mkdir -p "$n/tmp"
  sed -e "s|^\( *\)listen 80;|\1listen 127.0.0.1:$PORT;|" \
      -e "s|127.0.0.1:8081|127.0.0.1:$port_a|" -e "s|127.0.0.1:8082|127.0.0.1:$port_b|" \
      -e "s|/var/log/nginx/cowdag.access.log|$n/access.log|" \
      "$ROOT/deploy/nginx/cowdag.conf" > "$n/cowdag.conf"
  for p in "listen 127.0.0.1:$PORT;" "127.0.0.1:$port_a " "127.0.0.1:$port_b " "$n/access.log"; do
    grep -qF "$p" "$n/cowdag.conf" || { echo "cluster: deploy/nginx/cowdag.conf: could not set '$p'" >&2; exit 1; }
  done
  cat > "$n/nginx.conf" <<NGINX
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    include $n/cowdag.conf;
}
NGINX
  "$NGINX" -p "$n/" -e "$n/error.log" -c "$n/nginx.conf" -g 'daemon off;' 2>> "$n/error.log" &
  nginx_pid=$!
  i=0
  until curl -sf --max-time 1 "http://127.0.0.1:$PORT/healthz" > /dev/null; do
    kill -0 "$nginx_pid" 2>/dev/null || { echo "cluster: nginx exited:" >&2; cat "$n/error.log" >&2; exit 1; }
    [ $i -lt 100 ] || { echo "cluster: nginx not answering in 10 s" >&2; exit 1; }
    sleep 0.1; i=$((i + 1))
  done
}

# nginx: SIGQUIT (graceful), SIGTERM after 5 s, SIGKILL after 10.
stop_nginx() {
  [ -n "$nginx_pid" ] || return 0
  kill -QUIT "$nginx_pid" 2>/dev/null || true
  i=0
  while kill -0 "$nginx_pid" 2>/dev/null && [ $i -lt 100 ]; do
    [ $i -eq 50 ] && kill -TERM "$nginx_pid" 2>/dev/null
    sleep 0.1; i=$((i + 1))
  done
  kill -KILL "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""
}

# Stops what this script started and is still running: wrk, nginx, both
# masters and any worker that outlived its master.
cleanup() {
  rc=$?
  trap - EXIT INT TERM
  [ $rc -eq 0 ] || echo "cluster: stopped with status $rc" >&2
  [ -n "$wrkpid" ] && { kill "$wrkpid" 2>/dev/null || true; wait "$wrkpid" 2>/dev/null || true; }
  stop_nginx
  stop_instance a
  stop_instance b
  if [ -n "$LOGS" ]; then
    mkdir -p "$LOGS" && cp -R "$work"/a/log "$LOGS"/a.log 2>/dev/null && cp "$work"/b/log "$LOGS"/b.log 2>/dev/null &&
      cp "$work"/nginx/*.log "$work"/wrk.out "$LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sleep_until() { sleep "$(awk -v t="$1" -v d="$2" -v n="$(now)" 'BEGIN { s = t + d - n; printf "%.3f", s < 0.05 ? 0.05 : s }')"; }

# Waits up to $3 tenths of a second for the log of instance $1 to match the
# pattern $2 (grep -E); 0 when it did.
wait_log() {
  i=0
  until grep -qE "$2" "$work/$1/log"; do
    [ $i -lt "$3" ] || return 1
    sleep 0.1; i=$((i + 1))
  done
}

# The live processes among the worker pids instance $1's log names.
live_workers() {
  for w in $(sed -n 's/.*worker [0-9]* started, pid \([0-9]*\),.*/\1/p' "$work/$1/log"); do
    kill -0 "$w" 2>/dev/null && grep -q cowdag "/proc/$w/cmdline" 2>/dev/null && echo "$w"
  done
}

# --- the run --------------------------------------------------------------------------

start_instance a
start_instance b
start_nginx
: > "$work/nginx/access.log"   # the readiness probe is not part of the run

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.path = "/dags/version/run"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
LUA

echo "cluster: nginx on :$PORT, instances a on :$port_a and b on :$port_b; wrk for $DURATION s" >&2
T0=$(now)
wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$work/post.lua" "http://127.0.0.1:$PORT/" > "$work/wrk.out" 2>&1 & wrkpid=$!

sleep_until "$T0" "$HUP_AT"
hup_at=$(since "$T0")
kill -HUP "$pid_a"
if wait_log a 'generation 2 serving' 100; then
  hup_ev="HUP to a at $hup_at s, generation 2 serving $(since "$T0") s"
else
  hup_ev="HUP to a at $hup_at s, generation 2 not serving 10 s later"
fi

sleep_until "$T0" "$KILL_AT"
kill_at=$(since "$T0")
kill -KILL "$pid_b"
wait "$pid_b" 2>/dev/null || true
pid_b=""
i=0
while [ -n "$(live_workers b)" ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
left=$(live_workers b | wc -l)
gone_at=$(since "$T0")
use b; kill_orphans
start_instance b
if [ "$left" -eq 0 ]; then gone="its workers gone at $gone_at s"; else gone="$left of its workers still there at $gone_at s (killed)"; fi
kill_ev="KILL to b's master at $kill_at s, $gone, b started again and serving at $(since "$T0") s"

wait "$wrkpid" || true
wrkpid=""

# --- figures --------------------------------------------------------------------------

out=$work/wrk.out
nreq=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$out")
rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$out")
errs=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/connect \1, read \2, write \3, timeout \4/p' "$out")
bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$out")
[ -n "$nreq" ] || { echo "cluster: cannot read wrk's output:" >&2; cat "$out" >&2; exit 1; }

log=$work/nginx/access.log
logged=$(wc -l < "$log")
retried=$(grep -c 'upstream="[^"]*,' "$log" || true)
to_a=$(grep -c "upstream=\"\\([^\"]*, \\)\\?127.0.0.1:$port_a\"" "$log" || true)
to_b=$(grep -c "upstream=\"\\([^\"]*, \\)\\?127.0.0.1:$port_b\"" "$log" || true)
statuses=$(awk '{ print $5 }' "$log" | sort | uniq -c | awk '{ printf "%s%s x %s", sep, $2, $1; sep = ", " }')
ustat=$(sed -n 's/.*ustatus="\([^"]*\)".*/\1/p' "$log" | grep ',' | sort | uniq -c | sort -rn | awk '{ c = $1; $1 = ""; printf "%s%s x%s", sep, c, $0; sep = "; " }')
uerr=$(grep -c 'upstream' "$work/nginx/error.log" || true)
uerr_kinds=$(sed -n 's/.*\] [0-9#]*: \*[0-9]* \(.*\) while .*/\1/p' "$work/nginx/error.log" | sed 's/ ([0-9]*: /(/; s/(\([^)]*\))/(\1)/' | sort | uniq -c | sort -rn | awk '{ c = $1; $1 = ""; printf "%s%s x%s", sep, c, $0; sep = "; " }')

echo "## Two instances behind nginx: a reload, and a master killed (wrk -t1 -c$CONNS -d${DURATION}s through nginx)"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, Linux $(uname -r), nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'); deploy/nginx/cowdag.conf, 2 instances of 2 workers."
echo
echo "- events: $hup_ev; $kill_ev"
echo "- wrk: $nreq requests, $rps req/s; socket errors: ${errs:-none}; non-2xx: ${bad:-0}"
echo "- nginx's access log: $logged requests (statuses: $statuses); $to_a answered by a, $to_b by b (last try); $retried sent to more than one instance${ustat:+ (upstream statuses of those: $ustat)}"
echo "- nginx's error log: $uerr lines on upstreams${uerr_kinds:+: $uerr_kinds}"
echo
echo "Reproduce: \`make BUILD=${1:-build} cluster-demo\` or \`DURATION=$DURATION HUP_AT=$HUP_AT KILL_AT=$KILL_AT sh bench/cluster.sh ${1:-build}\`"
