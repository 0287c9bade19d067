/* metrics_store: what the per-shard counters (src/account/metrics.c) and
 * their readers — the Prometheus exposition and the stats JSON
 * (src/account/metrics_render.c) — share: the families, the histogram and
 * the merged view of one series over all shards. Private to those two files.
 * Readers hold every shard's lock (metrics_lock_all) while they use merged
 * series, whose keys point into the shards' own series. */
#ifndef LLMROUTER_ACCOUNT_METRICS_STORE_H
#define LLMROUTER_ACCOUNT_METRICS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "account/metrics.h"

#define MAX_LABELS 5

enum family {
    F_REQUESTS,
    F_ERRORS,
    F_STREAMS,
    F_CACHE,
    F_PROMPT_TOKENS,
    F_COMPLETION_TOKENS,
    F_CACHED_TOKENS,
    F_COST,
    F_BASELINE,
    F_SAVINGS,
    F_ESTIMATED,
    F_ATTEMPTS,
    F_FAILOVERS,
    F_RETRIES,
    F_DURATION,
    F_UPSTREAM,
    F_TTFB,
    F_OVERHEAD,
    F_EXPLAIN,
    F_CASCADE_STEPS,
    F_CASCADE_COST,
    F_CASCADE_DIRECT,
    F_CLASSIFIER_CALLS,
    F_CLASSIFIER_COST,
    F_SCORE_SUM,
    F_SCORE_COUNT,
    F_DOOR_REQUESTS,
    F_EXP_REQUESTS,
    F_EXP_COST,
    F_EXP_KEYLESS,
    F_GROUP_PICKS,
    F_UNPRICED,
    F_COUNT
};

typedef struct family_def {
    const char *name;
    const char *help;
    bool histogram;
    int n_labels;
    const char *labels[MAX_LABELS];
} family_def_t;

/* name, help, kind and label names of every family, indexed by enum family */
extern const family_def_t metrics_families[F_COUNT];

typedef struct hist {
    uint64_t b[METRICS_N_BUCKETS + 1]; /* per bucket, the last is +Inf */
    double sum;
    uint64_t count;
} hist_t;

typedef struct merged {
    const char *key;
    size_t klen;
    double value;
    hist_t h;
} merged_t;

/* The series of family fam over all shards (whose locks the caller holds),
 * merged by key and sorted. Returns the count; *out is freed by the caller
 * (keys point into the shards' series). */
size_t metrics_collect(metrics_t *const *shards, size_t n, int fam, merged_t **out);

/* Lock / unlock every shard's series (in a fixed order). */
void metrics_lock_all(metrics_t *const *shards, size_t n);
void metrics_unlock_all(metrics_t *const *shards, size_t n);

/* Label value idx of a series key ("-" past the end). */
const char *metrics_key_label(const char *key, size_t klen, int idx);

#endif
