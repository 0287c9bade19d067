/* report: `llmrouter report ACCESS_LOG...` — reads the JSON-lines access log
 * (one object per request, see docs/report.md) and aggregates it per tier
 * and model (or per API key): requests, success rate, tokens, cost against
 * the baseline, exact p50/p95 latency and cache hit rate, with a TOTAL row
 * and totals per tier. Prints a fixed-width table or the same data as JSON.
 * An offline CLI tool: main thread only, no daemon state involved. */
#ifndef LLMROUTER_REPORT_H
#define LLMROUTER_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct report_opts {
    bool by_key;     /* group by "key" instead of tier and model */
    bool has_since;  /* keep only entries with time >= since_ms */
    bool has_until;  /* keep only entries with time < until_ms */
    int64_t since_ms; /* Unix time in milliseconds (report_parse_time) */
    int64_t until_ms;
} report_opts_t;

/* One aggregated group. Sums only count the values that are known (not null
 * or missing) in the log; the derived figures are NAN when undefined (no
 * requests, no baseline, no cache lookups, no latencies). */
typedef struct report_row {
    char *name;  /* tier, or key under by_key; "TOTAL" for the total row */
    char *model; /* model for tier/model groups, NULL otherwise */
    uint64_t requests;
    uint64_t succeeded; /* status 2xx */
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    double cost_usd;
    double baseline_cost_usd;
    uint64_t cache_hits;
    uint64_t cache_lookups; /* cache HIT or MISS; BYPASS does not count */
    uint64_t unpriced;      /* answers of a model with no price: cost unknown, left out */
    uint64_t latency_count; /* entries with a known total_ms */
    /* filled by report_finish */
    double success_rate;     /* succeeded / requests, 0..1 */
    double savings_pct;      /* 100 * (baseline - cost) / baseline, over entries with both known */
    double cost_per_success; /* cost_usd / succeeded */
    double p50_ms, p95_ms;   /* nearest-rank percentiles of total_ms */
    double cache_hit_rate;   /* cache_hits / cache_lookups, 0..1 */
    /* private */
    double _pair_cost, _pair_baseline;
    double *_lat;
    size_t _lat_cap;
} report_row_t;

typedef struct report {
    report_opts_t opts;
    report_row_t *rows; /* groups; sorted by name then model after report_finish */
    size_t n_rows;
    report_row_t *tiers; /* totals per tier, sorted by name */
    size_t n_tiers;
    report_row_t total;
    uint64_t lines;     /* non-empty lines read */
    uint64_t malformed; /* lines that are not a JSON object */
    uint64_t filtered;  /* valid entries outside --since/--until */
    uint64_t explain;   /* POST /v1/router/explain calls: not requests, not in any row */
    struct report_cascade *cascade; /* the cascade tiers' steps (report_cascade.h) */
    /* private */
    size_t _rows_cap, _tiers_cap;
    size_t *_row_slots, *_tier_slots; /* open-addressing index + 1, 0 = empty */
    size_t _row_slots_cap, _tier_slots_cap;
} report_t;

/* Parses an ISO 8601 UTC time "YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM]"
 * (no zone means UTC) into Unix milliseconds. Returns 0, or -1 if invalid. */
int report_parse_time(const char *s, int64_t *ms);

/* Creates an empty report (opts is copied; NULL = no filter, tier/model).
 * Caller frees with report_free. Aborts on out-of-memory. */
report_t *report_new(const report_opts_t *opts);

/* Adds one log line (len bytes, need not be NUL-terminated). Blank lines are
 * ignored. Returns 0 when counted, 1 when outside the time filter (or without
 * a parseable time while a filter is set) or an explain call (counted apart
 * in r->explain), -1 when malformed (counted). */
int report_add_line(report_t *r, const char *line, size_t len);

/* Adds every line of f. Returns 0, or -1 on a read error. */
int report_add_stream(report_t *r, FILE *f);

/* Sorts the groups and computes the derived figures; call once after the
 * last report_add_*. Frees the latency samples. */
void report_finish(report_t *r);

/* Reads every file of paths ("-" = stdin), in order, into a finished report.
 * Returns it (caller frees with report_free), or NULL after writing a message
 * to err when a file cannot be opened or read. */
report_t *report_compute(const char *const *paths, size_t n_paths, const report_opts_t *opts,
                         FILE *err);

/* Prints a finished report as a fixed-width table / as JSON to out. */
void report_print_table(const report_t *r, FILE *out);
void report_print_json(const report_t *r, FILE *out);

/* Frees the report and everything it owns; NULL is allowed. */
void report_free(report_t *r);

/* Entry point of `llmrouter report [--since T] [--until T] [--by key]
 * [--json] FILE...`; argv[0] is "report". Writes the report to stdout and
 * "skipped N malformed lines" to stderr. Returns the process exit status:
 * 0, 1 when a file cannot be read, 2 on a usage error. */
int report_main(int argc, char **argv);

#endif
