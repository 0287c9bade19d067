/* health_view: what upstream/health.h knows, shown — the Prometheus
 * families of /metrics, the "health" object of /v1/router/stats (read by
 * the dashboard) and the live part of /readyz. Reads the entries of the
 * given snapshot's models and providers (a model no longer configured is
 * not shown). Any thread; h and cfg borrowed. */
#ifndef LLMROUTER_UPSTREAM_HEALTH_VIEW_H
#define LLMROUTER_UPSTREAM_HEALTH_VIEW_H

#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "upstream/health.h"

/* Appends the llmrouter_circuit_* and llmrouter_provider_* families to
 * out. Returns 0, or -1 if out's cap was reached. */
int health_render_metrics(const config_t *cfg, uint64_t now_ms, buf_t *out);

/* Appends {"models":[...],"providers":[...]}: per model its circuit
 * state, cooldown left (and of it a 429's), the last open period, failures
 * in a row, trips, skips, probes, the last failure's reason; per
 * provider its slots in flight, limit, queued requests, queue timeouts and
 * full-queue skips. Returns 0 or -1 (cap). */
int health_stats_json(const config_t *cfg, uint64_t now_ms, buf_t *out);

/* GET /readyz: the snapshot's readiness (cfg->ready_json) plus the models
 * cooling down now ("cooling_down"); not ready (503) also when every usable
 * model of a tier, or of a rule's explicit chain, is cooling down. Writes
 * the body to out and returns the status (200 or 503). */
unsigned health_readyz(const config_t *cfg, uint64_t now_ms, buf_t *out);

#endif
