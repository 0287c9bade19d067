/* gate_stats: counts of the gate's own answers (see http/gate_stats.h). */
#include "http/gate_stats.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* The codes the gate and its head check answer with (http/gate.c,
 * http/gate_head.c); "other" catches a code added there and not here. */
static const char *const CODES[] = {
    "malformed_request",         "invalid_content_length",        "conflicting_content_length",
    "conflicting_framing",       "invalid_transfer_encoding",     "unsupported_transfer_encoding",
    "http_version_not_supported", "uri_too_long",                 "request_headers_too_large",
    "request_too_large",         "request_timeout",               "too_many_connections",
    "other",
};
#define N_CODES (sizeof CODES / sizeof CODES[0])

static const unsigned STATUSES[] = {400, 408, 413, 414, 429, 431, 501, 503, 505, 0};
#define N_STATUSES (sizeof STATUSES / sizeof STATUSES[0])

static _Atomic unsigned long long g_count[N_CODES][N_STATUSES];

static size_t code_index(const char *code)
{
    for (size_t i = 0; i + 1 < N_CODES; i++)
        if (code != NULL && strcmp(code, CODES[i]) == 0)
            return i;
    return N_CODES - 1;
}

void gate_stats_count(unsigned status, const char *code)
{
    size_t s = 0;
    while (s + 1 < N_STATUSES && STATUSES[s] != status)
        s++;
    atomic_fetch_add_explicit(&g_count[code_index(code)][s], 1, memory_order_relaxed);
}

unsigned long long gate_stats_get(const char *code)
{
    size_t c = code_index(code);
    unsigned long long n = 0;
    for (size_t s = 0; s < N_STATUSES; s++)
        n += atomic_load_explicit(&g_count[c][s], memory_order_relaxed);
    return n;
}

int gate_stats_render(buf_t *out)
{
    int rc = buf_puts(out, "# HELP llmrouter_http_refused_total Answers the HTTP edge gave on its "
                           "own before a request existed (malformed or smuggling heads, bad "
                           "lengths, unknown encodings, oversized heads, head and body deadlines, "
                           "full connection table, per-address limit), by error code and status\n"
                           "# TYPE llmrouter_http_refused_total counter\n");
    for (size_t c = 0; c < N_CODES; c++) {
        for (size_t s = 0; s < N_STATUSES; s++) {
            unsigned long long n = atomic_load_explicit(&g_count[c][s], memory_order_relaxed);
            char line[160];
            if (n == 0)
                continue;
            if (STATUSES[s] != 0)
                snprintf(line, sizeof line,
                         "llmrouter_http_refused_total{code=\"%s\",status=\"%u\"} %llu\n", CODES[c],
                         STATUSES[s], n);
            else
                snprintf(line, sizeof line,
                         "llmrouter_http_refused_total{code=\"%s\",status=\"other\"} %llu\n",
                         CODES[c], n);
            rc |= buf_puts(out, line);
        }
    }
    return rc;
}
