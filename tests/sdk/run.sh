#!/usr/bin/env bash
# Runs the official OpenAI Node SDK tests against a running llmrouter.
# Needs LLMROUTER_URL and LLMROUTER_URL_NOV1 (and optionally SIM_STATS_URL)
# in the environment; see sdk.test.mjs and tools.test.mjs. Each file prints
# its own "N passed, M failed"; the last line adds them up.
set -uo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/openai ] || [ ! -d node_modules/zod ]; then
    npm ci --no-audit --no-fund || exit 1
fi
rc=0
passed=0
failed=0
for t in sdk.test.mjs tools.test.mjs; do
    out=$(mktemp)
    node "$t" | tee "$out"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    rm -f "$out"
    if [ -z "$line" ]; then
        echo "# $t printed no summary line" >&2
        rc=1
        failed=$((failed + 1))
        continue
    fi
    set -- $line
    passed=$((passed + $1))
    failed=$((failed + $3))
done
echo "sdk: $passed passed, $failed failed"
exit $rc
