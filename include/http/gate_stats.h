/* gate_stats: process-wide counts of what the gate (http/gate.h) answered on
 * its own — a refused head, a head or body deadline, a full connection
 * table, a client address over its limit — for /metrics. These answers never
 * reach a request, so they are not in llmrouter_requests_total. Counters are
 * atomic: any thread counts, any thread reads. */
#ifndef LLMROUTER_GATE_STATS_H
#define LLMROUTER_GATE_STATS_H

#include "core/buf.h"

/* Counts one answer of the gate: its HTTP status and error code (one of
 * the gate's fixed codes; anything else is counted as "other"). */
void gate_stats_count(unsigned status, const char *code);

/* Appends the family llmrouter_http_refused_total{code,status} in the
 * Prometheus text format (HELP and TYPE always, a series per non-zero
 * count). Returns 0, or -1 when out's cap was reached. */
int gate_stats_render(buf_t *out);

/* The count of one code (all statuses), for tests and the stats JSON. */
unsigned long long gate_stats_get(const char *code);

#endif
