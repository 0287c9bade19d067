/* explain: `llmrouter --explain FILE.json` — routes a request body offline
 * (no provider is called) and prints why: the estimated tokens, script and
 * language, every rule with whether it matched and why, and the resulting
 * chain. Main thread only. */
#ifndef LLMROUTER_EXPLAIN_H
#define LLMROUTER_EXPLAIN_H

#include <stdbool.h>
#include <stdio.h>

#include "core/config.h"

/* Explains the request body in path ("-" = stdin) under cfg. headers is a
 * NULL-terminated list of "Name: value" strings the rules may look at.
 * Writes text (or the raw JSON when json is true) to out and errors to err.
 * Returns the process exit status (0 ok, 1 for a rejected request or an
 * unreadable file). */
int explain_file(const config_t *cfg, const char *path, const char *const *headers, bool json,
                 FILE *out, FILE *err);

#endif
