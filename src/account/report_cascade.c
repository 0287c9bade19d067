/* report_cascade: see include/account/report_cascade.h. Groups are found by
 * a linear search: their number is bounded by the cascade tiers and their
 * models in the configurations that wrote the log. */
#include "account/report_cascade.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"

enum { V_ACCEPTED, V_REJECTED, V_FAILED, V_FINAL, V_N };
static const char *const VERDICTS[V_N] = {"accepted", "rejected", "failed", "final"};

typedef struct cstep {
    char *model;
    size_t first_pos; /* smallest position in the chain it was seen at: the table's order */
    uint64_t tried, v[V_N];
} cstep_t;

typedef struct ctier {
    char *name;
    uint64_t requests, priced; /* priced: entries with both costs known */
    double cost_usd, direct_usd;
    cstep_t *steps;
    size_t n_steps, cap;
} ctier_t;

struct report_cascade {
    ctier_t *tiers;
    size_t n, cap;
};

report_cascade_t *report_cascade_new(void)
{
    return xcalloc(1, sizeof(report_cascade_t));
}

void report_cascade_free(report_cascade_t *rc)
{
    if (rc == NULL)
        return;
    for (size_t i = 0; i < rc->n; i++) {
        for (size_t j = 0; j < rc->tiers[i].n_steps; j++)
            free(rc->tiers[i].steps[j].model);
        free(rc->tiers[i].steps);
        free(rc->tiers[i].name);
    }
    free(rc->tiers);
    free(rc);
}

static ctier_t *tier_of(report_cascade_t *rc, const char *name)
{
    for (size_t i = 0; i < rc->n; i++)
        if (strcmp(rc->tiers[i].name, name) == 0)
            return &rc->tiers[i];
    if (rc->n == rc->cap) {
        rc->cap = rc->cap ? rc->cap * 2 : 8;
        rc->tiers = xrealloc(rc->tiers, rc->cap * sizeof *rc->tiers);
    }
    memset(&rc->tiers[rc->n], 0, sizeof rc->tiers[rc->n]);
    rc->tiers[rc->n].name = xstrdup(name);
    return &rc->tiers[rc->n++];
}

static cstep_t *step_of(ctier_t *t, const char *model, size_t pos)
{
    for (size_t i = 0; i < t->n_steps; i++) {
        if (strcmp(t->steps[i].model, model) == 0) {
            if (pos < t->steps[i].first_pos)
                t->steps[i].first_pos = pos;
            return &t->steps[i];
        }
    }
    if (t->n_steps == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4;
        t->steps = xrealloc(t->steps, t->cap * sizeof *t->steps);
    }
    memset(&t->steps[t->n_steps], 0, sizeof t->steps[t->n_steps]);
    t->steps[t->n_steps].model = xstrdup(model);
    t->steps[t->n_steps].first_pos = pos;
    return &t->steps[t->n_steps++];
}

void report_cascade_add(report_cascade_t *rc, const cJSON *entry)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(entry, "cascade");
    const cJSON *tier = cJSON_GetObjectItemCaseSensitive(entry, "tier");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(c, "steps");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(entry, "cost_usd");
    const cJSON *direct = cJSON_GetObjectItemCaseSensitive(c, "direct_cost_usd");
    const cJSON *s;
    ctier_t *t;
    size_t pos = 0;
    if (!cJSON_IsObject(c) || !cJSON_IsString(tier) || !cJSON_IsArray(steps))
        return;
    t = tier_of(rc, tier->valuestring);
    t->requests++;
    if (cJSON_IsNumber(cost) && cJSON_IsNumber(direct) && isfinite(cost->valuedouble) &&
        isfinite(direct->valuedouble)) {
        t->priced++;
        t->cost_usd += cost->valuedouble;
        t->direct_usd += direct->valuedouble;
    }
    cJSON_ArrayForEach(s, steps)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(s, "model");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "verdict");
        cstep_t *st;
        if (!cJSON_IsString(m))
            continue;
        st = step_of(t, m->valuestring, pos++);
        st->tried++;
        for (int k = 0; k < V_N && cJSON_IsString(v); k++)
            if (strcmp(v->valuestring, VERDICTS[k]) == 0)
                st->v[k]++;
    }
}

static int cmp_step(const void *a, const void *b)
{
    const cstep_t *x = a, *y = b;
    return x->first_pos < y->first_pos ? -1 : x->first_pos > y->first_pos;
}

static int cmp_tier(const void *a, const void *b)
{
    return strcmp(((const ctier_t *)a)->name, ((const ctier_t *)b)->name);
}

void report_cascade_finish(report_cascade_t *w)
{
    if (w->n > 1)
        qsort(w->tiers, w->n, sizeof *w->tiers, cmp_tier);
    for (size_t i = 0; i < w->n; i++)
        if (w->tiers[i].n_steps > 1)
            qsort(w->tiers[i].steps, w->tiers[i].n_steps, sizeof *w->tiers[i].steps, cmp_step);
}

void report_cascade_print_table(const report_cascade_t *rc, FILE *out)
{
    int tw = 4, mw = 5;
    if (rc == NULL || rc->n == 0)
        return;
    for (size_t i = 0; i < rc->n; i++) {
        int l = (int)strlen(rc->tiers[i].name);
        tw = l > tw ? (l > 40 ? 40 : l) : tw;
        for (size_t j = 0; j < rc->tiers[i].n_steps; j++) {
            l = (int)strlen(rc->tiers[i].steps[j].model);
            mw = l > mw ? (l > 40 ? 40 : l) : mw;
        }
    }
    fprintf(out, "\nCascades (steps in chain order; ACCEPT%% = accepted / tried):\n");
    fprintf(out, "%-*s  %-*s  %8s  %8s  %8s  %8s  %8s  %8s\n", tw, "TIER", mw, "MODEL", "TRIED",
            "ACCEPTED", "REJECTED", "FAILED", "FINAL", "ACCEPT%");
    for (size_t i = 0; i < rc->n; i++) {
        const ctier_t *t = &rc->tiers[i];
        for (size_t j = 0; j < t->n_steps; j++) {
            const cstep_t *s = &t->steps[j];
            fprintf(out, "%-*.*s  %-*.*s  %8llu  %8llu  %8llu  %8llu  %8llu  %7.1f%%\n", tw, tw,
                    j == 0 ? t->name : "", mw, mw, s->model, (unsigned long long)s->tried,
                    (unsigned long long)s->v[V_ACCEPTED], (unsigned long long)s->v[V_REJECTED],
                    (unsigned long long)s->v[V_FAILED], (unsigned long long)s->v[V_FINAL],
                    s->tried ? 100.0 * (double)s->v[V_ACCEPTED] / (double)s->tried : 0.0);
        }
        if (t->priced > 0)
            fprintf(out,
                    "%-*s  %llu requests: $%.6f, against $%.6f straight to the last model (%+.1f%%)\n",
                    tw, "", (unsigned long long)t->requests, t->cost_usd, t->direct_usd,
                    t->direct_usd > 0 ? 100.0 * (t->cost_usd - t->direct_usd) / t->direct_usd : 0.0);
    }
}

void report_cascade_json(const report_cascade_t *rc, cJSON *root)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "cascades");
    if (rc == NULL || arr == NULL)
        return;
    for (size_t i = 0; i < rc->n; i++) {
        const ctier_t *t = &rc->tiers[i];
        cJSON *o = cJSON_CreateObject(), *steps = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "tier", t->name);
        cJSON_AddNumberToObject(o, "requests", (double)t->requests);
        cJSON_AddNumberToObject(o, "cost_usd", t->cost_usd);
        cJSON_AddNumberToObject(o, "direct_cost_usd", t->direct_usd);
        if (t->direct_usd > 0)
            cJSON_AddNumberToObject(o, "savings_pct",
                                    100.0 * (t->direct_usd - t->cost_usd) / t->direct_usd);
        else
            cJSON_AddNullToObject(o, "savings_pct");
        for (size_t j = 0; j < t->n_steps; j++) {
            const cstep_t *s = &t->steps[j];
            cJSON *so = cJSON_CreateObject();
            cJSON_AddStringToObject(so, "model", s->model);
            cJSON_AddNumberToObject(so, "tried", (double)s->tried);
            for (int k = 0; k < V_N; k++)
                cJSON_AddNumberToObject(so, VERDICTS[k], (double)s->v[k]);
            cJSON_AddNumberToObject(so, "accept_rate",
                                    s->tried ? (double)s->v[V_ACCEPTED] / (double)s->tried : 0);
            cJSON_AddItemToArray(steps, so);
        }
        cJSON_AddItemToObject(o, "steps", steps);
        cJSON_AddItemToArray(arr, o);
    }
}
