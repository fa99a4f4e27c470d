#!/bin/sh
# tests/run.sh: runs every test suite `make test` names, even after one
# fails, and sums cmocka's totals into one closing line (README, "Tests").
#
#   sh tests/run.sh OUTDIR SUITE...
#
# Each SUITE is one word: a test binary, optionally preceded by environment
# settings joined with '+' (COWDAG_GC_STRESS=1+build/tests/test_gc).  A
# suite's output goes to the terminal as it runs and to OUTDIR/NAME.log.
# The run ends with each failed test named as "FAILED suite: test" and, alone
# on the last line, "N passed, N failed" (", N skipped" when some were);
# the exit status is 1 if any test failed or any suite did not finish.

set -u
outdir=$1
shift
mkdir -p "$outdir"

passed=0 failed=0 skipped=0
failures=""

# The totals of one suite's output, from cmocka's summary block of each
# group ("[  PASSED  ] N test(s)." and the "[  FAILED  ] name" lines listed
# below "[  FAILED  ] N test(s), listed below:"): prints "P F S" and then
# one failed test name a line.
summarise() {
    awk '
        /^\[==========\] [0-9]+ test\(s\) run\./ { groups++; insum = 1; next }
        insum && /^\[  PASSED  \] [0-9]+ test\(s\)\./ { p += $4; next }
        insum && /^\[  SKIPPED \] [0-9]+ test\(s\), listed below:/ { s += $4; list = "skip"; next }
        insum && /^\[  FAILED  \] [0-9]+ test\(s\), listed below:/ { f += $4; list = "fail"; next }
        insum && list == "fail" && /^\[  FAILED  \] / { sub(/^\[  FAILED  \] /, ""); names[++n] = $0; next }
        insum && list == "skip" && /^\[  SKIPPED \] / { next }
        insum && /^$/ { list = "" }
        insum && /FAILED TEST\(S\)/ { insum = 0; list = "" }
        /^\[ RUN      \]/ { insum = 0; list = "" }
        END {
            print p + 0, f + 0, s + 0, groups + 0
            for (i = 1; i <= n; i++) print names[i]
        }'
}

for suite in "$@"; do
    bin=${suite##*+}
    case $suite in *+*) envs=$(printf '%s' "${suite%+*}" | tr '+' ' ') ;; *) envs="" ;; esac
    name=$(basename "$bin")
    # COWDAG= only says which binary; the label shows the settings that
    # change what a suite does.
    shown=$(printf '%s\n' $envs | grep -v '^COWDAG=' | tr '\n' ' ' | sed 's/ $//')
    label=$name
    [ -n "$shown" ] && label="$name ($shown)"
    log="$outdir/$(printf '%s' "$label" | tr -c 'A-Za-z0-9_.=-' '_').log"

    echo "== $label"
    start=$(date +%s)
    # The suite's status comes back through a file: a pipeline's own status
    # is tee's.
    { env $envs "$bin" 2>&1; echo $? >"$log.status"; } | tee "$log"
    status=$(cat "$log.status")
    rm -f "$log.status"
    took=$(($(date +%s) - start))

    summary=$(summarise <"$log")
    set -- $summary
    p=$1 f=$2 s=$3 groups=$4
    names=$(printf '%s\n' "$summary" | sed 1d)
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        # The suite stopped before cmocka could report a failure (a crash, a
        # signal, a failed group set-up): that is a failure of its own.
        f=1
        names="(the suite exited with status $status after $groups group(s); see above)"
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    if [ -n "$names" ]; then
        failures="$failures$(printf '%s\n' "$names" | sed "s|^|FAILED $label: |")
"
    fi
    echo "== $label: $p passed, $f failed, $s skipped in ${took}s"
done

echo
[ -n "$failures" ] && printf '%s' "$failures"
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ]
