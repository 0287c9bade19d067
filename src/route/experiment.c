/* experiment: the stable assignment of a key to an experiment's arm (see
 * include/route/experiment.h). */
#include "route/experiment.h"

#include <stdlib.h>

#include "core/config.h"
#include "route/scorer.h"

uint64_t experiment_hash(const char *name, const char *key, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    h ^= '\n';
    h *= 1099511628211ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ull;
    }
    /* fmix64 */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

size_t experiment_pick(const experiment_t *e, const char *key, size_t len)
{
    double u = (double)(experiment_hash(e->name, key, len) >> 11) * 0x1.0p-53;
    for (size_t i = 0; i < e->n_arms; i++)
        if (u < e->arms[i].upper)
            return i;
    return e->n_arms ? e->n_arms - 1 : 0;
}

void experiment_finish(experiment_t *e)
{
    double total = 0, run = 0;
    for (size_t i = 0; i < e->n_arms; i++)
        total += e->arms[i].weight;
    for (size_t i = 0; i < e->n_arms; i++) {
        run += e->arms[i].weight;
        e->arms[i].upper = total > 0 ? run / total : 1;
    }
    if (e->n_arms > 0)
        e->arms[e->n_arms - 1].upper = 1; /* no rounding gap at the top */
}

void experiments_free(experiments_t *x)
{
    if (x == NULL)
        return;
    for (size_t i = 0; i < x->n; i++) {
        experiment_t *e = &x->v[i];
        for (size_t j = 0; j < e->n_arms; j++) {
            exp_arm_t *a = &e->arms[j];
            free(a->name);
            free(a->rules);
            free(a->band_lo);
            free(a->band_hi);
            free(a->tier_map);
            scorer_free(a->scorer);
        }
        free(e->arms);
        free(e->name);
        free(e->header);
    }
    free(x->v);
    free(x);
}

const char *experiment_key_kind(enum exp_key k)
{
    switch (k) {
    case EXP_KEY_USER:
        return "user";
    case EXP_KEY_HEADER:
        return "header";
    case EXP_KEY_PROXY_KEY:
        break;
    }
    return "proxy_key";
}

const exp_arm_t *experiment_arm_of(const struct config *cfg, int arm, const experiment_t **exp)
{
    const experiments_t *x = cfg != NULL ? cfg->experiments : NULL;
    const experiment_t *e;
    if (x == NULL || x->active < 0 || arm < 0)
        return NULL;
    e = &x->v[x->active];
    if ((size_t)arm >= e->n_arms)
        return NULL;
    if (exp != NULL)
        *exp = e;
    return &e->arms[arm];
}
