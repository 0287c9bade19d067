/* dashboard: the built-in status page served at GET /dashboard — a single
 * self-contained HTML document (inline CSS and JavaScript, no external
 * scripts, styles or fonts) that polls GET /v1/router/stats every 2 s and
 * shows spend, baseline, savings, requests, cache hit rate, per-model and
 * per-tier rows. Pure data; any thread. */
#ifndef LLMROUTER_DASHBOARD_H
#define LLMROUTER_DASHBOARD_H

#include <stddef.h>

/* The page (static storage, never freed) and its length in *len (may be
 * NULL). Serve with "Content-Type: text/html; charset=utf-8". */
const char *dashboard_html(size_t *len);

#endif
