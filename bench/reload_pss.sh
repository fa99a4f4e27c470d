#!/bin/sh
# bench/reload_pss.sh BUILD_DIR: what a reload leaves in memory.  Serves
# config/cowdag.json (200,000 records, 2 workers, freeze + immortal) on
# PORT, sends REQUESTS customer_score requests (8 ids each, over one keep-alive
# connection), sums the PSS of the master
# and its workers (/proc/PID/smaps_rollup), sends SIGHUP, waits until the
# old generation's workers have left and the master has released its
# state, sends the same requests again and sums the PSS again.  Prints a
# markdown table row per reload (RELOADS of them).
set -eu
B=${1:-build}
PORT=${PORT:-18184}
RELOADS=${RELOADS:-3}
REQUESTS=${REQUESTS:-2000}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

sed "s/127.0.0.1:8080/127.0.0.1:$PORT/" config/cowdag.json > config/.reload-bench.json
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp" config/.reload-bench.json' EXIT

wait_log() { # NEEDLE COUNT: waits until the log holds NEEDLE COUNT times (60 s at most)
  i=0
  until [ "$(grep -c "$1" "$tmp/log")" -ge "$2" ]; do
    i=$((i + 1)); [ $i -le 600 ] || { echo "timed out waiting for '$1'" >&2; cat "$tmp/log" >&2; exit 1; }
    sleep 0.1
  done
}

pss_kib() { # the master's and its children's PSS, summed, in KiB
  total=0
  for p in $master $(pgrep -P "$master"); do
    kb=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo $total
}

requests() { # REQUESTS look-ups of 8 customers each, over curl's keep-alive
  i=0
  body='{"inputs": {"ids": [1, 17, 4242, 99999, 150000, 7, 123456, 199999]}}'
  while [ $i -lt "$REQUESTS" ]; do
    printf 'url = "http://127.0.0.1:%s/dags/customer_score/run"\n-H "Content-Type: application/json"\n-d %s\n-o /dev/null\n' \
      "$PORT" "'$body'"
    i=$((i + 1))
  done > "$tmp/curl.cfg"
  curl -s -K "$tmp/curl.cfg"
}

"$B/cowdag" serve -c config/.reload-bench.json 2> "$tmp/log" &
master=$!
wait_log "worker 1 started" 1
wait_log "listening on" 1
requests
sleep 1.5 # one sampling interval: the workers' figures settle
before=$(pss_kib)
echo "| reload | total PSS before (MiB) | after the old generation left (MiB) | after / before |"
echo "|---|---|---|---|"
n=1
while [ $n -le "$RELOADS" ]; do
  kill -HUP $master
  wait_log "generation $((n + 1)) serving" 1
  wait_log "generation $n released" 1
  requests
  sleep 1.5
  after=$(pss_kib)
  awk -v n=$n -v b="$before" -v a="$after" \
    'BEGIN { printf "| %d | %.1f | %.1f | %.3f |\n", n, b / 1024, a / 1024, a / b }'
  before=$after
  n=$((n + 1))
done
kill -TERM $master
wait $master 2>/dev/null || true
echo
echo "(sh bench/reload_pss.sh $B; config/cowdag.json on port $PORT, $REQUESTS requests between reloads)"
