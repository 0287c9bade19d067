/* tune: threshold proposals and rule flags from judged samples (see
 * include/route/tune.h for the estimate); the command line. */
#include "route/tune.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "http/request.h"
#include "route/experiment.h"
#include "route/prompt.h"

#define MAX_BUCKETS 200

/* ---- the estimate ---- */

typedef struct bucket {
    size_t n, na, nb;
    double qa, qb, ca, cb;
} bucket_t;

int tune_propose(const tune_sample_t *s, size_t n, const char *cheap, const char *strong,
                 const tune_opts_t *o, tune_proposal_t *out)
{
    bucket_t b[MAX_BUCKETS];
    size_t k = (size_t)ceil(1.0 / o->bucket - 1e-9), total = 0;
    double q0 = 0, c0 = 0, best_c = INFINITY, best_q = -INFINITY;
    long best = -1;
    memset(out, 0, sizeof *out);
    if (k < 1 || k > MAX_BUCKETS) {
        snprintf(out->why, sizeof out->why, "bucket width %g: expected 1 to %d buckets", o->bucket,
                 MAX_BUCKETS);
        return -1;
    }
    memset(b, 0, k * sizeof *b);
    for (size_t i = 0; i < n; i++) {
        const tune_sample_t *x = &s[i];
        bool a = strcmp(x->tier, cheap) == 0;
        size_t j;
        if ((!a && strcmp(x->tier, strong) != 0) || !isfinite(x->score) || !isfinite(x->quality) ||
            !isfinite(x->cost))
            continue;
        j = (size_t)(x->score / o->bucket);
        if (x->score < 0)
            j = 0;
        if (j >= k)
            j = k - 1;
        b[j].n++;
        if (a) {
            b[j].na++;
            b[j].qa += x->quality;
            b[j].ca += x->cost;
        } else {
            b[j].nb++;
            b[j].qb += x->quality;
            b[j].cb += x->cost;
        }
        q0 += x->quality;
        c0 += x->cost;
        total++;
    }
    out->n_samples = total;
    if (total == 0) {
        snprintf(out->why, sizeof out->why, "no judged sample of %s or %s with a score and a cost",
                 cheap, strong);
        return -1;
    }
    out->base_quality = q0 / (double)total;
    out->base_cost = c0 / (double)total;
    /* threshold t = e * bucket: buckets below e -> cheap, the others -> strong */
    for (size_t e = 0; e <= k; e++) {
        double q = 0, c = 0;
        size_t support = SIZE_MAX;
        bool ok = true;
        for (size_t j = 0; j < k && ok; j++) {
            size_t m = j < e ? b[j].na : b[j].nb;
            if (b[j].n == 0)
                continue;
            if (m < o->min_samples) {
                ok = false;
                if (best < 0)
                    snprintf(out->why, sizeof out->why,
                             "too few samples: %zu of %s in scores [%.2f, %.2f) (need %zu; run an "
                             "experiment or a cascade to get both tiers there)",
                             m, j < e ? cheap : strong, (double)j * o->bucket,
                             (double)(j + 1) * o->bucket, o->min_samples);
                break;
            }
            q += (double)b[j].n * (j < e ? b[j].qa / (double)b[j].na : b[j].qb / (double)b[j].nb);
            c += (double)b[j].n * (j < e ? b[j].ca / (double)b[j].na : b[j].cb / (double)b[j].nb);
            if (m < support)
                support = m;
        }
        if (!ok)
            continue;
        q /= (double)total;
        c /= (double)total;
        if (o->max_quality) {
            if (c > out->base_cost * (1 + 1e-9) + 1e-15)
                continue;
            if (q > best_q + 1e-12 || (fabs(q - best_q) <= 1e-12 && c < best_c)) {
                best = (long)e, best_q = q, best_c = c, out->support_min = support;
            }
        } else {
            if (q < out->base_quality - 1e-9)
                continue;
            if (c < best_c - 1e-15 || (fabs(c - best_c) <= 1e-15 && q > best_q)) {
                best = (long)e, best_q = q, best_c = c, out->support_min = support;
            }
        }
    }
    if (best < 0) {
        if (out->why[0] == '\0')
            snprintf(out->why, sizeof out->why, "no threshold does as well as the current traffic "
                                                "on %s", o->max_quality ? "cost" : "quality");
        return 0;
    }
    out->found = true;
    out->threshold = (double)best * o->bucket;
    out->quality = best_q;
    out->cost = best_c;
    out->why[0] = '\0';
    return 0;
}

double tune_auc(const double *p, const int *y, size_t n)
{
    double pos = 0, neg = 0, wins = 0;
    for (size_t i = 0; i < n; i++)
        if (y[i])
            pos += 1;
        else
            neg += 1;
    if (pos == 0 || neg == 0)
        return NAN;
    /* O(n^2) is fine for the few thousand samples a team judges */
    for (size_t i = 0; i < n; i++) {
        if (!y[i])
            continue;
        for (size_t j = 0; j < n; j++) {
            if (y[j])
                continue;
            wins += p[i] > p[j] ? 1 : p[i] == p[j] ? 0.5 : 0;
        }
    }
    return wins / (pos * neg);
}

/* ---- input ---- */

typedef struct logcost {
    char *id;
    double cost;
} logcost_t;

static int cmp_logcost(const void *a, const void *b)
{
    return strcmp(((const logcost_t *)a)->id, ((const logcost_t *)b)->id);
}

typedef struct input {
    logcost_t *costs;
    size_t n_costs, cap_costs;
    tune_sample_t *v;
    size_t n, cap;
    size_t lines, malformed, unjudged, failed;
} input_t;

static int read_lines(const char *path, input_t *in, const scorer_t *sc,
                      int (*fn)(input_t *, cJSON *, const scorer_t *))
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    if (f == NULL) {
        fprintf(stderr, "llmrouter tune: cannot open %s\n", path);
        return -1;
    }
    while ((got = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)got;
        cJSON *o;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue;
        in->lines++;
        o = cJSON_ParseWithLength(line, len);
        if (!cJSON_IsObject(o))
            in->malformed++;
        else
            fn(in, o, sc);
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return 0;
}

static int add_log(input_t *in, cJSON *o, const scorer_t *sc)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "request_id");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cost_usd");
    (void)sc;
    if (!cJSON_IsString(id) || !cJSON_IsNumber(c) || !isfinite(c->valuedouble))
        return 1;
    if (in->n_costs == in->cap_costs) {
        in->cap_costs = in->cap_costs ? 2 * in->cap_costs : 256;
        in->costs = xrealloc(in->costs, in->cap_costs * sizeof *in->costs);
    }
    in->costs[in->n_costs++] = (logcost_t){xstrdup(id->valuestring), c->valuedouble};
    return 0;
}

static double cost_of(const input_t *in, const char *id)
{
    logcost_t key = {(char *)id, 0};
    const logcost_t *c = bsearch(&key, in->costs, in->n_costs, sizeof key, cmp_logcost);
    return c ? c->cost : NAN;
}

static int add_sample(input_t *in, cJSON *o, const scorer_t *sc)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "request_id");
    const cJSON *tier = cJSON_GetObjectItemCaseSensitive(o, "tier");
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(o, "rule");
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(o, "score");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
    const cJSON *judge = cJSON_GetObjectItemCaseSensitive(o, "judge");
    const cJSON *q = cJSON_IsObject(judge) ? cJSON_GetObjectItemCaseSensitive(judge, "score") : NULL;
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(o, "request");
    tune_sample_t *s;
    if (!cJSON_IsString(id) || !cJSON_IsString(tier))
        return 1;
    if (cJSON_IsNumber(status) && (status->valuedouble < 200 || status->valuedouble >= 300)) {
        in->failed++;
        return 1;
    }
    if (!cJSON_IsNumber(q) || !isfinite(q->valuedouble)) {
        in->unjudged++;
        return 1;
    }
    if (in->n == in->cap) {
        in->cap = in->cap ? 2 * in->cap : 256;
        in->v = xrealloc(in->v, in->cap * sizeof *in->v);
    }
    s = &in->v[in->n++];
    memset(s, 0, sizeof *s);
    s->tier = xstrdup(tier->valuestring);
    s->rule = xstrdup(cJSON_IsString(rule) ? rule->valuestring : "-");
    s->quality = q->valuedouble;
    s->cost = cost_of(in, id->valuestring);
    s->id_hash = experiment_hash("tune", id->valuestring, strlen(id->valuestring));
    s->score = cJSON_IsNumber(score) ? score->valuedouble : NAN;
    if (cJSON_IsObject(req) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(req, "messages"))) {
        prompt_t p;
        prompt_init(&p, req, EP_CHAT);
        scorer_features(&p, s->x);
        prompt_free(&p);
        s->has_x = true;
        if (!isfinite(s->score)) /* no rule computed it: the weights in use */
            s->score = scorer_apply(sc, s->x);
    }
    return 0;
}

static void input_free(input_t *in)
{
    for (size_t i = 0; i < in->n_costs; i++)
        free(in->costs[i].id);
    for (size_t i = 0; i < in->n; i++) {
        free(in->v[i].tier);
        free(in->v[i].rule);
    }
    free(in->costs);
    free(in->v);
}

/* ---- the tier pairs and rules ---- */

typedef struct group {
    const char *name;
    size_t n;
    double q, c;
    size_t n_cost;
} group_t;

static size_t groups(const input_t *in, bool by_rule, group_t *g, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *name = by_rule ? in->v[i].rule : in->v[i].tier;
        size_t j;
        for (j = 0; j < n; j++)
            if (strcmp(g[j].name, name) == 0)
                break;
        if (j == n) {
            if (n == cap)
                continue;
            g[n++] = (group_t){name, 0, 0, 0, 0};
        }
        g[j].n++;
        g[j].q += in->v[i].quality;
        if (isfinite(in->v[i].cost)) {
            g[j].c += in->v[i].cost;
            g[j].n_cost++;
        }
    }
    return n;
}

static int cmp_cost(const void *a, const void *b)
{
    const group_t *x = a, *y = b;
    double cx = x->n_cost ? x->c / (double)x->n_cost : INFINITY;
    double cy = y->n_cost ? y->c / (double)y->n_cost : INFINITY;
    return cx < cy ? -1 : cx > cy;
}

/* The rule that sends traffic to strong: the most frequent named rule of
 * strong's samples, or NULL. */
static const char *strong_rule(const input_t *in, const char *strong)
{
    group_t g[64];
    size_t n = 0, best = SIZE_MAX;
    for (size_t i = 0; i < in->n; i++) {
        const char *r = in->v[i].rule;
        size_t j;
        if (strcmp(in->v[i].tier, strong) != 0 || strcmp(r, "default") == 0 ||
            strcmp(r, "explicit") == 0 || strcmp(r, "client-tier") == 0 || strcmp(r, "-") == 0)
            continue;
        for (j = 0; j < n; j++)
            if (strcmp(g[j].name, r) == 0)
                break;
        if (j == n && n < 64)
            g[n++] = (group_t){r, 0, 0, 0, 0};
        if (j < n)
            g[j].n++;
    }
    for (size_t j = 0; j < n; j++)
        if (best == SIZE_MAX || g[j].n > g[best].n)
            best = j;
    return best == SIZE_MAX ? NULL : g[best].name;
}

static void print_pair(const input_t *in, const char *cheap, const char *strong,
                       const tune_proposal_t *p, bool json, cJSON *arr)
{
    const char *rule = strong_rule(in, strong);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "cheap", cheap);
        cJSON_AddStringToObject(o, "strong", strong);
        cJSON_AddNumberToObject(o, "samples", (double)p->n_samples);
        cJSON_AddBoolToObject(o, "found", p->found);
        if (rule)
            cJSON_AddStringToObject(o, "rule", rule);
        else
            cJSON_AddNullToObject(o, "rule");
        if (p->n_samples > 0) {
            cJSON_AddNumberToObject(o, "base_cost", p->base_cost);
            cJSON_AddNumberToObject(o, "base_quality", p->base_quality);
        }
        if (p->found) {
            cJSON_AddNumberToObject(o, "threshold", p->threshold);
            cJSON_AddNumberToObject(o, "cost", p->cost);
            cJSON_AddNumberToObject(o, "quality", p->quality);
            cJSON_AddNumberToObject(o, "cost_change", p->cost - p->base_cost);
            cJSON_AddNumberToObject(o, "quality_change", p->quality - p->base_quality);
            cJSON_AddNumberToObject(o, "support_min", (double)p->support_min);
        } else {
            cJSON_AddStringToObject(o, "why", p->why);
        }
        cJSON_AddItemToArray(arr, o);
        return;
    }
    printf("# %s -> %s: %zu judged samples with a score and a cost\n", cheap, strong,
           p->n_samples);
    if (!p->found) {
        printf("#   no proposal: %s\n", p->why);
        return;
    }
    printf("#   as routed:  cost per request %.8f USD, judged quality %.3f (every arm of an "
           "experiment included)\n",
           p->base_cost, p->base_quality);
    printf("#   proposed:   cost per request %.8f USD (%+.1f%%), judged quality %.3f (%+.3f)\n",
           p->cost, p->base_cost > 0 ? 100 * (p->cost - p->base_cost) / p->base_cost : 0.0,
           p->quality, p->quality - p->base_quality);
    printf("#   each bucket mean used rests on at least %zu samples\n", p->support_min);
    if (fabs(p->cost - p->base_cost) <= 1e-12 && fabs(p->quality - p->base_quality) <= 1e-9)
        printf("#   no gain expected: this is what the traffic already does\n");
    printf("routing:\n  rules:\n    - name: %s\n      when: {complexity: {min: %.2f}}\n"
           "      tier: %s\n",
           rule ? rule : "hard-prompts  # your rule that sends hard prompts to this tier",
           p->threshold, strong);
}

static void flag_rules(const input_t *in, const tune_opts_t *o, bool json, cJSON *root)
{
    group_t g[256];
    size_t n = groups(in, true, g, 256);
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        double q = g[i].q / (double)g[i].n;
        if (g[i].n < o->min_samples || q >= o->bar)
            continue;
        if (json) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "rule", g[i].name);
            cJSON_AddNumberToObject(x, "samples", (double)g[i].n);
            cJSON_AddNumberToObject(x, "quality", q);
            cJSON_AddItemToArray(arr, x);
        } else {
            if (!any)
                printf("# rules whose judged quality is below the bar %g:\n", o->bar);
            printf("#   %s: %.3f over %zu samples: send it to a stronger tier, or narrow it\n",
                   g[i].name, q, g[i].n);
        }
        any = true;
    }
    if (json)
        cJSON_AddItemToObject(root, "flagged_rules", arr);
}

static void print_refit(const tune_refit_result_t *r, int rc, const char *cheap, const char *path,
                        const char *old, bool json, cJSON *root)
{
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", rc == 0);
        cJSON_AddStringToObject(o, "cheap", cheap);
        cJSON_AddStringToObject(o, "old_weights", old);
        cJSON_AddNumberToObject(o, "train", (double)r->n_train);
        cJSON_AddNumberToObject(o, "held_out", (double)r->n_test);
        cJSON_AddNumberToObject(o, "train_below_bar", (double)r->pos_train);
        cJSON_AddNumberToObject(o, "held_out_below_bar", (double)r->pos_test);
        if (rc == 0) {
            cJSON_AddStringToObject(o, "weights", path);
            if (isfinite(r->auc_old) && isfinite(r->auc_new)) {
                cJSON_AddNumberToObject(o, "auc_old", r->auc_old);
                cJSON_AddNumberToObject(o, "auc_new", r->auc_new);
            }
        } else {
            cJSON_AddStringToObject(o, "why", r->why);
        }
        cJSON_AddItemToObject(root, "refit", o);
        return;
    }
    if (rc < 0) {
        printf("# refit: %s\n", r->why);
        return;
    }
    printf("# refit on %s's judged answers (label: below the bar): %zu to fit (%zu below), %zu "
           "held out (%zu below)\n",
           cheap, r->n_train, r->pos_train, r->n_test, r->pos_test);
    printf("#   held-out AUC: %s weights %.3f -> refitted %.3f (%+.3f)\n", old, r->auc_old,
           r->auc_new, r->auc_new - r->auc_old);
    printf("#   wrote %s; compare it live with an experiment arm:\n", path);
    printf("#   experiments: [{name: weights, key: user, arms: [{name: control}, "
           "{name: refit, weights: %s}]}]\n",
           path);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: llmrouter tune [OPTIONS] ACCESS_LOG SAMPLES\n"
            "Proposes, per tier pair (cheapest first), the complexity threshold that would\n"
            "have minimised cost at the judged quality of the traffic (or maximised quality\n"
            "at its cost), and flags rules judged below the bar. Prints YAML; never edits\n"
            "a configuration.\n"
            "      --objective cost|quality  minimise cost (default) or maximise quality\n"
            "      --tiers CHEAP,STRONG      only this pair\n"
            "      --bucket W                score bucket width (default 0.05)\n"
            "      --min-samples N           per bucket and tier (default 5)\n"
            "      --bar Q                   quality bar of a good answer (default 7)\n"
            "      --refit                   refit the scorer's weights (label: the cheap\n"
            "                                tier's answer judged below the bar)\n"
            "      --weights FILE            the weights in use (default: built-in)\n"
            "      --out FILE                the refitted weights (default: beside FILE as\n"
            "                                NAME.refit.txt, or ./weights.refit.txt)\n"
            "      --l2 L                    pull towards the old weights (default 1)\n"
            "      --json                    JSON instead of text\n");
}

static char *default_out(const char *weights)
{
    char *out;
    size_t n;
    if (weights == NULL)
        return xstrdup("weights.refit.txt");
    n = strlen(weights);
    if (n > 4 && strcmp(weights + n - 4, ".txt") == 0)
        n -= 4;
    out = xmalloc(n + 16);
    snprintf(out, n + 16, "%.*s.refit.txt", (int)n, weights);
    return out;
}

int tune_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"objective", required_argument, NULL, 'o'}, {"tiers", required_argument, NULL, 't'},
        {"bucket", required_argument, NULL, 'b'},    {"min-samples", required_argument, NULL, 'm'},
        {"bar", required_argument, NULL, 'q'},       {"refit", no_argument, NULL, 'r'},
        {"weights", required_argument, NULL, 'w'},   {"out", required_argument, NULL, 'O'},
        {"l2", required_argument, NULL, 'l'},        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    tune_opts_t o = {.bucket = 0.05, .min_samples = 5, .bar = 7};
    const char *tiers = NULL, *weights = NULL, *out_path = NULL;
    bool refit = false, json = false;
    double l2 = 1;
    scorer_t *own = NULL;
    const scorer_t *sc;
    input_t in;
    int c, rc = 0;
    cJSON *root = NULL, *arr = NULL;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'o':
            if (strcmp(optarg, "cost") != 0 && strcmp(optarg, "quality") != 0) {
                fprintf(stderr, "llmrouter tune: --objective: expected cost or quality\n");
                return 2;
            }
            o.max_quality = optarg[0] == 'q';
            break;
        case 't':
            tiers = optarg;
            break;
        case 'b':
            o.bucket = strtod(optarg, &end);
            if (end == optarg || *end || !(o.bucket >= 0.005 && o.bucket <= 0.5)) {
                fprintf(stderr, "llmrouter tune: --bucket: expected 0.005 to 0.5\n");
                return 2;
            }
            break;
        case 'm': {
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > 1000000) {
                fprintf(stderr, "llmrouter tune: --min-samples: expected 1 or more\n");
                return 2;
            }
            o.min_samples = (size_t)v;
            break;
        }
        case 'q':
            o.bar = strtod(optarg, &end);
            if (end == optarg || *end || !isfinite(o.bar)) {
                fprintf(stderr, "llmrouter tune: --bar: expected a number\n");
                return 2;
            }
            break;
        case 'l':
            l2 = strtod(optarg, &end);
            if (end == optarg || *end || !(l2 >= 0 && l2 < 1e6)) {
                fprintf(stderr, "llmrouter tune: --l2: expected a number >= 0\n");
                return 2;
            }
            break;
        case 'r':
            refit = true;
            break;
        case 'w':
            weights = optarg;
            break;
        case 'O':
            out_path = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    if (weights != NULL) {
        char err[600];
        own = scorer_load(weights, err, sizeof err);
        if (own == NULL) {
            fprintf(stderr, "llmrouter tune: %s\n", err);
            return 1;
        }
    }
    sc = own ? own : scorer_builtin();
    memset(&in, 0, sizeof in);
    if (read_lines(argv[optind], &in, sc, add_log) < 0) {
        rc = 1;
        goto out;
    }
    if (in.n_costs > 1)
        qsort(in.costs, in.n_costs, sizeof *in.costs, cmp_logcost);
    if (read_lines(argv[optind + 1], &in, sc, add_sample) < 0) {
        rc = 1;
        goto out;
    }
    if (in.n == 0) {
        fprintf(stderr, "llmrouter tune: no judged sample in %s (%zu without a judge score)\n",
                argv[optind + 1], in.unjudged);
        rc = 1;
        goto out;
    }
    if (json) {
        root = cJSON_CreateObject();
        arr = cJSON_CreateArray();
        cJSON_AddNumberToObject(root, "judged_samples", (double)in.n);
        cJSON_AddStringToObject(root, "objective", o.max_quality ? "quality" : "cost");
    } else {
        printf("# llmrouter tune: %zu judged samples; objective: %s; buckets of %g, at least "
               "%zu samples each\n",
               in.n, o.max_quality ? "maximise quality at the current cost"
                                   : "minimise cost at the current quality",
               o.bucket, o.min_samples);
    }
    {
        group_t g[64];
        size_t ng;
        char cheap[128] = "", strong[128] = "";
        bool any_found = false;
        if (tiers != NULL) {
            const char *comma = strchr(tiers, ',');
            if (comma == NULL || comma == tiers || comma[1] == '\0' ||
                (size_t)(comma - tiers) >= sizeof cheap || strlen(comma + 1) >= sizeof strong) {
                fprintf(stderr, "llmrouter tune: --tiers: expected CHEAP,STRONG\n");
                rc = 2;
                goto out;
            }
            memcpy(cheap, tiers, (size_t)(comma - tiers));
            snprintf(strong, sizeof strong, "%s", comma + 1);
            g[0] = (group_t){cheap, 0, 0, 0, 0};
            g[1] = (group_t){strong, 0, 0, 0, 0};
            ng = 2;
        } else {
            ng = groups(&in, false, g, 64);
            qsort(g, ng, sizeof *g, cmp_cost);
        }
        for (size_t i = 0; i + 1 < ng; i++) {
            tune_proposal_t p;
            tune_propose(in.v, in.n, g[i].name, g[i + 1].name, &o, &p);
            print_pair(&in, g[i].name, g[i + 1].name, &p, json, arr);
            any_found |= p.found;
        }
        if (ng < 2) {
            fprintf(stderr, "llmrouter tune: the samples hold one tier (%s): nothing to compare\n",
                    ng ? g[0].name : "-");
            rc = 1;
        }
        if (json)
            cJSON_AddItemToObject(root, "pairs", arr);
        flag_rules(&in, &o, json, root);
        if (!any_found && rc == 0)
            rc = 1;
        if (refit) {
            const char *ch = ng ? g[0].name : "";
            char *path = out_path ? xstrdup(out_path) : default_out(weights);
            tune_refit_result_t res;
            int r = tune_refit(in.v, in.n, ch, &o, sc, l2, path, &res);
            print_refit(&res, r, ch, path, scorer_source(sc), json, root);
            rc = r < 0 ? 1 : rc == 2 ? 2 : 0;
            free(path);
        }
    }
    if (json) {
        char *t = cJSON_PrintUnformatted(root);
        if (t) {
            printf("%s\n", t);
            cJSON_free(t);
        }
    }
out:
    cJSON_Delete(root);
    input_free(&in);
    scorer_free(own);
    return rc;
}
