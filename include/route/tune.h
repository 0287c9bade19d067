/* tune: `llmrouter tune ACCESS_LOG SAMPLES` — proposes, from the team's own
 * judged traffic, the complexity threshold between two tiers that would
 * have minimised cost at the current judged quality (or maximised quality
 * at the current cost), flags rules whose answers are judged below the
 * quality bar, and with --refit refits the scorer's weights on that traffic
 * (src/route/tune_refit.c). It prints a YAML change; it never edits a
 * configuration. Offline CLI: main thread only.
 *
 * How the quality of the other tier is estimated (docs/quality.md,
 * "Tuning"): the complexity scores of the samples of both tiers are cut
 * into buckets of width `bucket` (0.05 by default); in each bucket, each
 * tier's judged quality and cost are the means of that tier's samples in
 * the bucket. A threshold t routes a bucket below t to the cheap tier and
 * the others to the strong one; its expected quality and cost are the
 * bucket means of the tier it picks, weighted by how many samples (of
 * both tiers) fell in each bucket. A threshold is only considered when
 * every non-empty bucket has at least `min_samples` samples of the tier the
 * threshold gives it; near the current threshold such data comes from
 * experiments and cascade escalations (both tiers answered similar
 * prompts). With too few samples the tool says which buckets lack them
 * instead of guessing. The baseline is what the judged traffic got: its
 * mean quality and mean cost per request. */
#ifndef LLMROUTER_ROUTE_TUNE_H
#define LLMROUTER_ROUTE_TUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/scorer.h"

/* One judged sample, joined with its access-log line (cost). */
typedef struct tune_sample {
    char *tier, *rule;
    double score;   /* complexity score; NAN unknown */
    double quality; /* the judge's score */
    double cost;    /* cost_usd from the access log; NAN unknown */
    bool has_x;     /* x holds the request's scorer features */
    double x[SCORER_N_FEATURES];
    uint64_t id_hash; /* of the request id: the held-out split of --refit */
} tune_sample_t;

typedef struct tune_opts {
    double bucket;      /* score bucket width, (0, 0.5] */
    size_t min_samples; /* per bucket and tier */
    bool max_quality;   /* objective: maximise quality at no more cost */
    double bar;         /* quality bar: a judged answer below it failed */
} tune_opts_t;

/* The proposal for one tier pair. */
typedef struct tune_proposal {
    bool found;
    double threshold;        /* complexity >= threshold -> strong */
    double base_cost, base_quality; /* what the judged traffic got */
    double cost, quality;    /* expected with the threshold */
    size_t n_samples;        /* samples of the pair with score, quality and cost */
    size_t support_min;      /* fewest samples behind a used bucket mean */
    char why[256];           /* when not found: what is missing */
} tune_proposal_t;

/* Evaluates every bucket edge as a threshold between cheap and strong on
 * s[0..n) and fills out (see the comment at the top). Returns 0, or -1
 * when the pair has no usable sample (out->why says so). */
int tune_propose(const tune_sample_t *s, size_t n, const char *cheap, const char *strong,
                 const tune_opts_t *o, tune_proposal_t *out);

/* Area under the ROC curve of scores p[i] for labels y[i] (ties count
 * half; Mann-Whitney). NAN when one class is empty. */
double tune_auc(const double *p, const int *y, size_t n);

/* What --refit did. */
typedef struct tune_refit_result {
    size_t n_train, n_test;   /* cheap-tier samples with features, by the split */
    size_t pos_train, pos_test; /* of them judged below the bar */
    double auc_old, auc_new;  /* on the held-out samples; NAN when undefined */
    char why[256];            /* when it failed */
} tune_refit_result_t;

/* --refit (tune_refit.c): fits the scorer's logistic weights on the cheap
 * tier's samples with features (label: quality below o->bar), starting
 * from old and pulled towards it (L2 weight l2 on the difference), on the
 * samples whose id_hash % 4 != 0; measures the AUC of old and new weights
 * on the others (held out). Writes the new weights file to out_path.
 * Returns 0, or -1 with too little data or a write error (res->why). */
int tune_refit(const tune_sample_t *s, size_t n, const char *cheap, const tune_opts_t *o,
               const scorer_t *old, double l2, const char *out_path, tune_refit_result_t *res);

/* `llmrouter tune [--objective cost|quality] [--bucket W] [--min-samples N]
 * [--bar Q] [--tiers CHEAP,STRONG] [--refit [--weights FILE] [--out FILE]]
 * [--json] ACCESS_LOG SAMPLES`; argv[0] is "tune". Returns the exit
 * status: 0, 1 when a file cannot be read or nothing can be proposed, 2
 * on a usage error. */
int tune_main(int argc, char **argv);

#endif
