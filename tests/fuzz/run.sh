#!/bin/sh
# Runs each harness for SECONDS with libFuzzer, JOBS at a time (niced: the
# machine is shared), starting from the committed corpus and the harness's
# dictionary. New inputs go to build/fuzz/work/NAME (merge the useful ones
# into tests/fuzz/corpus/NAME with -merge=1, see README.md), findings to
# build/fuzz/findings/. Prints each harness's executions and a closing
# "N passed, M failed" line (a finding fails its harness).
# Usage: run.sh SECONDS JOBS NAME...
set -u
secs=$1
jobs=$2
shift 2
mkdir -p build/fuzz/work build/fuzz/findings build/fuzz/logs
one() {
    name=$1
    mkdir -p build/fuzz/work/"$name"
    dict=""
    [ -f tests/fuzz/dict/"$name".dict ] && dict="-dict=tests/fuzz/dict/$name.dict"
    # shellcheck disable=SC2086
    nice -n 10 build/fuzz/bin/"$name" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 $dict \
        -artifact_prefix=build/fuzz/findings/"$name"- \
        build/fuzz/work/"$name" tests/fuzz/corpus/"$name" >build/fuzz/logs/"$name".log 2>&1
    echo $? >build/fuzz/logs/"$name".rc
}
running=0
for name in "$@"; do
    one "$name" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait
passed=0
failed=0
for name in "$@"; do
    log=build/fuzz/logs/$name.log
    rc=$(cat build/fuzz/logs/"$name".rc 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $name: ${execs:-?} executions in ${secs} s, ${cov:-cov: ?}, no finding"
        passed=$((passed + 1))
    else
        echo "fuzz: $name: FINDING (exit $rc) after ${execs:-?} executions; see $log and build/fuzz/findings/"
        grep -m3 "ERROR\|fuzz: property\|SUMMARY" "$log"
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
