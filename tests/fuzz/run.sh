#!/bin/sh
# tests/fuzz/run.sh: runs each libFuzzer harness of `make fuzz` for a while
# and sums it up (README.md, "Tests").
#
#   sh tests/fuzz/run.sh BUILD SECONDS NAME...
#
# Each harness BUILD/bin/fuzz_NAME starts from its checked-in corpus
# (tests/fuzz/corpus/NAME/, read, never written) and a working copy in
# BUILD/corpus/NAME/ that keeps what it finds across runs, with
# tests/fuzz/NAME.dict when there is one, niced, for SECONDS of wall time.
# Its log goes to BUILD/logs/NAME.log; a crash, leak, hang (-timeout),
# out-of-memory or failed check leaves its reproducer in BUILD/crashes/NAME/
# and fails the run.  Inputs slower than 60 s (slow-unit-*, written there
# too) are listed, not counted: on a busy machine they are its load.  Printed per
# harness: executions, executions/s, corpus (inputs and size), coverage
# (cov: edges, ft: features) and crashes.  FUZZ_JOBS=N runs N harnesses at
# once (default 1).  To replay a reproducer:  BUILD/bin/fuzz_NAME FILE.
set -u
build=$1 seconds=$2
shift 2
mkdir -p "$build/logs"

run_one() {
    name=$1
    bin=$build/bin/fuzz_$name
    work=$build/corpus/$name crashes=$build/crashes/$name
    mkdir -p "$work" "$crashes"
    dict=""
    [ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
    # -timeout: an input that takes this long is a hang, reported as a
    # crash; generous, as the machine may be busy and the run is niced.
    nice -n 19 "$bin" -max_total_time="$seconds" -timeout=60 -report_slow_units=60 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$crashes/" $dict "$work" "tests/fuzz/corpus/$name" >"$build/logs/$name.log" 2>&1
    echo $? >"$build/logs/$name.status"
}

summarise() {
    name=$1
    log=$build/logs/$name.log
    status=$(cat "$build/logs/$name.status")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    # The corpus in memory at the end, seeds included: "corp: FILES/SIZE".
    corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\)\/\([0-9]*[a-zA-Z]*\).*/\1 \2/p')
    files=${corp% *} bytes=${corp#* }
    ncrash=$(find "$build/crashes/$name" -type f ! -name 'slow-unit-*' | wc -l)
    find "$build/crashes/$name" -type f -name 'slow-unit-*' | sed "s/^/fuzz: $name: slow input (not a crash): /" >&2
    printf '%-8s %12s %8s %7s %9s %6s %6s %7s\n' "$name" "${execs:-?}" "${rate:-?}" "$files" "$bytes" \
        "${cov:-?}" "${ft:-?}" "$ncrash"
    if [ "$status" -ne 0 ] || [ "$ncrash" -gt 0 ]; then
        echo "fuzz: $name failed (status $status); see $log" >&2
        find "$build/crashes/$name" -type f ! -name 'slow-unit-*' | sed 's/^/fuzz:   reproducer: /' >&2
        return 1
    fi
}

jobs=${FUZZ_JOBS:-1}
running=0
for name in "$@"; do
    echo "fuzz: $name for ${seconds}s (log $build/logs/$name.log)"
    run_one "$name" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

echo
printf '%-8s %12s %8s %7s %9s %6s %6s %7s\n' harness execs execs/s corpus size cov ft crashes
failed=0
for name in "$@"; do
    summarise "$name" || failed=1
done
exit $failed
