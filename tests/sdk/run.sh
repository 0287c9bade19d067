#!/usr/bin/env bash
# Runs the official SDK client tests against llmrouter.
#
# sdk.test.mjs and tools.test.mjs run against the
# daemon this script is started with (`make sdk`: tests/with_daemon.py with
# tests/integration/llmrouter-test.yaml; it needs LLMROUTER_URL and
# LLMROUTER_URL_NOV1, optionally SIM_STATS_URL). The door and
# Anthropic-upstream files need Anthropic-type models, so each starts its own
# daemon and simulator with tests/sdk/llmrouter-sdk.yaml through
# tests/with_daemon.py ($LLMROUTER_BIN is honoured, so an ASan run covers
# them too):
#   anthropic.test.mjs  openai SDK chat with tools over an Anthropic upstream
#   doors.test.mjs      /v1/responses and /v1/messages through openai,
#                       @anthropic-ai/sdk, the Vercel AI SDK, @openai/agents
# Each file prints its own "N passed, M failed"; a "# <suite>: ..." line per
# file follows, and the last line adds them all up.
set -uo pipefail
# a relative $LLMROUTER_BIN (build/asan/llmrouter) is relative to where this
# script was started (the repository root under `make sdk`), not tests/sdk
if [ -n "${LLMROUTER_BIN:-}" ] && [ "${LLMROUTER_BIN#/}" = "$LLMROUTER_BIN" ]; then
    export LLMROUTER_BIN="$PWD/$LLMROUTER_BIN"
fi
cd "$(dirname "$0")"
for m in openai zod @anthropic-ai/sdk ai @ai-sdk/openai @openai/agents; do
    if [ ! -d "node_modules/$m" ]; then
        npm ci --no-audit --no-fund || exit 1
        break
    fi
done
PY=${PYTHON:-python3}
rc=0
passed=0
failed=0
summary=()
run_one() { # name, command...
    local name=$1 out line
    shift
    out=$(mktemp)
    "$@" | tee "$out"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    rm -f "$out"
    if [ -z "$line" ]; then
        echo "# $name printed no summary line" >&2
        rc=1
        failed=$((failed + 1))
        summary+=("# $name: no summary line (counted as 1 failed)")
        return
    fi
    set -- $line
    passed=$((passed + $1))
    failed=$((failed + $3))
    summary+=("# $name: $line")
}
run_one sdk node sdk.test.mjs
run_one tools node tools.test.mjs
# with_daemon.py runs its command from the repository root
run_one anthropic "$PY" ../with_daemon.py --config "$PWD/llmrouter-sdk.yaml" -- node tests/sdk/anthropic.test.mjs
run_one doors "$PY" ../with_daemon.py --config "$PWD/llmrouter-sdk.yaml" -- node tests/sdk/doors.test.mjs
printf '%s\n' "${summary[@]}"
echo "sdk: $passed passed, $failed failed"
exit $rc
