/* report_experiment: `llmrouter report --experiment NAME ACCESS_LOG
 * [SAMPLES]` — compares the arms of an A/B experiment (route/experiment.h)
 * from the access log (the lines whose "experiment" is NAME) and, when
 * given, the samples file (their judged quality, "judge":{"score"}): per
 * arm requests, success rate, cost per request and per successful request,
 * latency p50/p95, cache hit rate and judged quality, each with a 95%
 * confidence interval (account/stats_ci.h), and each other arm's
 * difference from the control arm with its p-value (significant below
 * 0.05). A text table or --json. Offline CLI: main thread only. */
#ifndef LLMROUTER_ACCOUNT_REPORT_EXPERIMENT_H
#define LLMROUTER_ACCOUNT_REPORT_EXPERIMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "account/stats_ci.h"

/* One arm's figures, as the report collects them. */
typedef struct xarm {
    char *name;
    size_t requests, succeeded, keyless;
    size_t lookups, hits;      /* cache HIT or MISS / HIT */
    stats_moments_t cost;      /* cost_usd of the requests with a known cost */
    stats_ratio_t per_success; /* (cost or 0, 1 if 2xx) per request */
    double *lat;               /* total_ms, sorted by xreport_finish */
    size_t n_lat, cap_lat;
    stats_moments_t judge;     /* judge scores of the arm's samples */
    size_t samples;            /* sample lines of the arm */
} xarm_t;

typedef struct xreport {
    char *experiment;
    xarm_t *arms;
    size_t n_arms, cap_arms;
    size_t lines, malformed, other; /* other: lines of no or another experiment */
} xreport_t;

xreport_t *xreport_new(const char *experiment);
void xreport_free(xreport_t *r);
/* One access-log line / one samples line (need not be NUL-terminated).
 * Returns 0 when counted, 1 when not of the experiment, -1 when malformed. */
int xreport_add_log(xreport_t *r, const char *line, size_t len);
int xreport_add_sample(xreport_t *r, const char *line, size_t len);
/* Sorts the arms by name and their latencies; call once before printing. */
void xreport_finish(xreport_t *r);
/* The control arm: `control` when given and present, else an arm named
 * "control", else the first by name; -1 with no arms. */
int xreport_control(const xreport_t *r, const char *control);
void xreport_print_table(const xreport_t *r, int control, FILE *out);
void xreport_print_json(const xreport_t *r, int control, FILE *out);

/* `llmrouter report --experiment NAME [--control ARM] [--json] ACCESS_LOG
 * [SAMPLES]`; argv[0] is "report". Returns the exit status (0, 1 when a
 * file cannot be read, 2 on a usage error). */
int report_experiment_main(int argc, char **argv);

#endif
