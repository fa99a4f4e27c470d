# bench/lib.sh: the server handling the benchmark scripts share, sourced
# by them (`. "$ROOT/bench/lib.sh"`).  They keep the master's pid in $srv
# and its stderr in $tmp/log, and name themselves in $BENCH for messages.

# The time, in seconds with a fraction, and the seconds since a time.
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }

# Every worker pid the log names, still alive and still ours, is killed:
# the master is gone (or was SIGKILLed) by the time this runs.
kill_orphans() {
  for w in $(sed -n 's/.*worker [0-9]* started, pid \([0-9]*\),.*/\1/p' "$tmp/log" 2>/dev/null); do
    if kill -0 "$w" 2>/dev/null && grep -q cowdag "/proc/$w/cmdline" 2>/dev/null; then
      echo "$BENCH: worker $w outlived its master, SIGKILL" >&2
      kill -KILL "$w" 2>/dev/null || true
    fi
  done
}

# Waits up to $1 tenths of a second for the master to exit; 0 when it did.
wait_exit() {
  i=0
  while kill -0 "$srv" 2>/dev/null && [ $i -lt "$1" ]; do sleep 0.1; i=$((i + 1)); done
  ! kill -0 "$srv" 2>/dev/null
}

# SIGTERM to the master and up to $1 tenths of a second (default 150) for
# its graceful stop, SIGKILL after; then no worker of it is left.
stop_server() {
  if kill -TERM "$srv" 2>/dev/null && ! wait_exit "${1:-150}"; then
    echo "$BENCH: master $srv did not stop, SIGKILL" >&2
    kill -KILL "$srv" 2>/dev/null || true
  fi
  wait "$srv" 2>/dev/null || true
  kill_orphans
  srv=""
}
