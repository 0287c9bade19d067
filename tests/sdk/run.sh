#!/usr/bin/env bash
# Runs the official OpenAI Node SDK tests against a running llmrouter.
# Needs LLMROUTER_URL and LLMROUTER_URL_NOV1 (and optionally SIM_STATS_URL)
# in the environment; see sdk.test.mjs.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/openai ]; then
    npm ci --no-audit --no-fund
fi
exec node sdk.test.mjs
