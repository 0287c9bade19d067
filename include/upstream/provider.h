/* provider: wire formats of upstream providers. For now one dialect,
 * OpenAI-compatible: checks a complete (non-streamed) answer, reads its usage
 * into a cost, and converts embeddings to base64 when the client asked for
 * it and the provider ignored it. Pure functions; any thread. */
#ifndef LLMROUTER_PROVIDER_H
#define LLMROUTER_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

typedef struct provider_result {
    double cost_usd;   /* < 0 when the answer carries no usage */
    int64_t prompt_tokens, completion_tokens, cached_tokens; /* -1 without usage */
    char *new_body;    /* malloc'd replacement body, or NULL to send the original */
    size_t new_len;
    bool complete;     /* every choice finished with "stop" or "length" (embeddings: has data) */
    char *compact;     /* with want_compact and complete: the answer as compact JSON (malloc'd) */
    size_t compact_len;
} provider_result_t;

/* Checks a 2xx answer of model m. want_base64: the client asked for
 * base64 embeddings. want_compact: the caller may cache it (see compact). Returns 0, or -1 when the body is not a JSON object
 * (or is an error object), in which case the attempt counts as failed and
 * why is written to why. */
int provider_check_answer(const config_t *cfg, int m, const char *body, size_t len,
                          bool want_base64, bool want_compact, provider_result_t *out, char *why,
                          size_t whylen);

/* Cost in USD of the given usage on model m. */
double provider_cost(const cfg_model_t *m, double prompt, double completion, double cached);

#endif
