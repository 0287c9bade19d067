/* balance: per-request order of a group's members (see
 * include/upstream/balance.h). At most CFG_GROUP_MAX members; every sort
 * here is an insertion sort over a handful of entries. */
#include "upstream/balance.h"

#include <math.h>
#include <string.h>

#include "core/json.h"
#include "upstream/health.h"

/* latency: 1 request in 20 is ordered by weight, so that a slow member
 * gets measured again */
#define LATENCY_EXPLORE 20

uint64_t balance_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void balance_weighted_order(const uint32_t *w, size_t n, uint64_t *rng, size_t *order)
{
    uint64_t total = 0;
    bool used[CFG_GROUP_MAX] = {false};
    for (size_t i = 0; i < n; i++)
        total += w[i];
    for (size_t k = 0; k < n; k++) {
        uint64_t x = total ? balance_rand(rng) % total : 0;
        size_t pick = n;
        for (size_t i = 0; i < n; i++) {
            if (used[i])
                continue;
            pick = i;
            if (x < w[i])
                break;
            x -= w[i];
        }
        used[pick] = true;
        total -= w[pick];
        order[k] = pick;
    }
}

static uint64_t hash64(const char *a, size_t alen, const char *b)
{
    uint64_t h = 0xcbf29ce484222325ull, s;
    for (size_t i = 0; i < alen; i++)
        h = (h ^ (unsigned char)a[i]) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull; /* separator: ("ab","c") != ("a","bc") */
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 0x100000001b3ull;
    s = h;
    return balance_rand(&s);
}

void balance_rendezvous_order(const char *key, size_t klen, const char *const *names,
                              const uint32_t *w, size_t n, size_t *order)
{
    double score[CFG_GROUP_MAX];
    for (size_t i = 0; i < n; i++) {
        /* u in (0, 1); -ln(u) / w is exponential with rate w: the smallest
         * wins with probability w / sum(w) */
        double u = ((double)(hash64(key, klen, names[i]) >> 11) + 0.5) * 0x1.0p-53;
        score[i] = -log(u) / (double)w[i];
        order[i] = i;
    }
    for (size_t i = 1; i < n; i++) {
        size_t o = order[i], j = i;
        for (; j > 0 && score[order[j - 1]] > score[o]; j--)
            order[j] = order[j - 1];
        order[j] = o;
    }
}

/* Stable insertion sort of order[0..n) by key[], ascending. */
static void sort_by(size_t *order, size_t n, const uint64_t *key)
{
    for (size_t i = 1; i < n; i++) {
        size_t o = order[i], j = i;
        for (; j > 0 && key[order[j - 1]] > key[o]; j--)
            order[j] = order[j - 1];
        order[j] = o;
    }
}

static const char *sticky_key(const cfg_group_t *g, const balance_in_t *in)
{
    const char *k = NULL;
    if (g->sticky == CFG_LB_STICKY_KEY)
        k = in->key_name;
    else if (g->sticky == CFG_LB_STICKY_USER)
        k = in->user;
    else if (g->sticky == CFG_LB_STICKY_HEADER && in->header != NULL)
        k = in->header(in->header_arg, g->sticky_header);
    return k != NULL && k[0] != '\0' ? k : NULL;
}

static void order_group(const config_t *cfg, const cfg_tier_t *t, const cfg_group_t *g,
                        route_t *r, const balance_in_t *in, uint64_t *rng)
{
    size_t pos[CFG_GROUP_MAX], n = 0, order[CFG_GROUP_MAX], out[CFG_GROUP_MAX], k = 0;
    int mem[CFG_GROUP_MAX];
    uint32_t w[CFG_GROUP_MAX];
    health_lb_view_t view[CFG_GROUP_MAX];
    const char *key = g->sticky != CFG_LB_STICKY_NONE ? sticky_key(g, in) : NULL;

    for (size_t i = r->pinned ? 1 : 0; i < r->n && n < CFG_GROUP_MAX; i++)
        for (size_t j = 0; j < g->n; j++)
            if (r->chain[i] == t->models[g->first + j]) {
                pos[n] = i;
                mem[n] = r->chain[i];
                w[n] = g->weight[j];
                n++;
                break;
            }
    if (n < 2)
        return;
    for (size_t i = 0; i < n; i++) {
        const cfg_model_t *m = &cfg->models[mem[i]];
        health_lb_view(m->health, &m->circuit, in->now_ms, &view[i]);
    }
    if (key != NULL) {
        const char *names[CFG_GROUP_MAX];
        for (size_t i = 0; i < n; i++)
            names[i] = cfg->models[mem[i]].name;
        balance_rendezvous_order(key, strlen(key), names, w, n, order);
    } else {
        uint64_t sk[CFG_GROUP_MAX];
        balance_weighted_order(w, n, rng, order);
        if (g->strategy == CFG_LB_LEAST_OUTSTANDING) {
            /* fewest attempts under way per unit of weight; the random
             * order above breaks ties (scaled: (inflight + 1) / weight) */
            for (size_t i = 0; i < n; i++)
                sk[i] = ((uint64_t)view[i].inflight + 1) * 1000000u / w[i];
            sort_by(order, n, sk);
        } else if (g->strategy == CFG_LB_LATENCY && balance_rand(rng) % LATENCY_EXPLORE != 0) {
            /* lowest EWMA first; a member without a sample (0) is tried
             * first, which is how each gets measured */
            for (size_t i = 0; i < n; i++)
                sk[i] = view[i].ewma_us;
            sort_by(order, n, sk);
        }
    }
    /* the healthy in that order, then the cooling ones (still the chain's
     * last resort, as admit.c decides) */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if (view[order[i]].usable == (pass == 0))
                out[k++] = order[i];
    for (size_t i = 0; i < n; i++)
        r->chain[pos[i]] = mem[out[i]];
}

void balance_route(const config_t *cfg, route_t *r, const balance_in_t *in)
{
    const cfg_tier_t *t;
    uint64_t rng;
    if (r->tier < 0 || (size_t)r->tier >= cfg->n_tiers)
        return;
    t = &cfg->tiers[r->tier];
    rng = in->rnd;
    for (size_t g = 0; g < t->n_groups; g++)
        order_group(cfg, t, &t->groups[g], r, in, &rng);
}

int balance_group_pick(const config_t *cfg, const route_t *r, size_t gi)
{
    const cfg_tier_t *t;
    const cfg_group_t *g;
    if (r->tier < 0 || (size_t)r->tier >= cfg->n_tiers || gi >= cfg->tiers[r->tier].n_groups)
        return -1;
    t = &cfg->tiers[r->tier];
    g = &t->groups[gi];
    for (size_t i = r->pinned ? 1 : 0; i < r->n; i++)
        for (size_t j = 0; j < g->n; j++)
            if (r->chain[i] == t->models[g->first + j])
                return r->chain[i];
    return -1;
}

const char *balance_strategy_name(enum cfg_lb_strategy s)
{
    switch (s) {
    case CFG_LB_LEAST_OUTSTANDING:
        return "least_outstanding";
    case CFG_LB_LATENCY:
        return "latency";
    default:
        return "weighted";
    }
}

static void put_str(buf_t *out, const char *s)
{
    json_append_string(out, s, strlen(s));
}

void balance_explain(const config_t *cfg, const route_t *r, buf_t *out)
{
    const cfg_tier_t *t;
    static const char *const sticky[] = {"none", "key", "user", "header"};
    if (r->tier < 0 || (size_t)r->tier >= cfg->n_tiers || cfg->tiers[r->tier].n_groups == 0)
        return;
    t = &cfg->tiers[r->tier];
    buf_puts(out, ",\"groups\":[");
    for (size_t gi = 0; gi < t->n_groups; gi++) {
        const cfg_group_t *g = &t->groups[gi];
        int pick = balance_group_pick(cfg, r, gi);
        bool first = true;
        buf_puts(out, gi ? ",{\"strategy\":" : "{\"strategy\":");
        put_str(out, balance_strategy_name(g->strategy));
        buf_puts(out, ",\"sticky\":");
        put_str(out, sticky[g->sticky]);
        buf_puts(out, ",\"order\":[");
        for (size_t i = r->pinned ? 1 : 0; i < r->n; i++)
            for (size_t j = 0; j < g->n; j++)
                if (r->chain[i] == t->models[g->first + j]) {
                    if (!first)
                        buf_puts(out, ",");
                    first = false;
                    put_str(out, cfg->models[r->chain[i]].name);
                }
        buf_puts(out, "],\"picked\":");
        if (pick >= 0)
            put_str(out, cfg->models[pick].name);
        else
            buf_puts(out, "null");
        buf_puts(out, "}");
    }
    buf_puts(out, "]");
}
