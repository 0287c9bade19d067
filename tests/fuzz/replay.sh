#!/bin/sh
# Replays every committed corpus input of each harness once (libFuzzer runs
# the files of a directory and exits): the regression test `make test` runs.
# Usage: replay.sh NAME...   (binaries in build/fuzz/bin/, corpora in
# tests/fuzz/corpus/NAME/). Prints "N passed, M failed" over the harnesses.
set -u
passed=0
failed=0
mkdir -p build/fuzz/replay
for name in "$@"; do
    dir=tests/fuzz/corpus/$name
    n=$(find "$dir" -type f 2>/dev/null | wc -l)
    if [ "$n" -eq 0 ]; then
        echo "fuzz-replay: $name: no corpus in $dir"
        failed=$((failed + 1))
        continue
    fi
    log=build/fuzz/replay/$name.log
    if build/fuzz/bin/"$name" -runs=0 -timeout=25 -rss_limit_mb=2048 "$dir" >"$log" 2>&1 &&
        grep -q "INITED\|Done [0-9]* runs\|executed" "$log"; then
        echo "fuzz-replay: $name: $n inputs, no finding"
        passed=$((passed + 1))
    else
        echo "fuzz-replay: $name: FAILED ($n inputs); the end of $log:"
        tail -40 "$log"
        failed=$((failed + 1))
    fi
done
echo "fuzz-replay: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
