/* report_experiment: one experiment's arms compared, from the access log
 * and the samples file (see include/account/report_experiment.h). */
#include "account/report_experiment.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"

xreport_t *xreport_new(const char *experiment)
{
    xreport_t *r = xcalloc(1, sizeof *r);
    r->experiment = xstrdup(experiment);
    return r;
}

void xreport_free(xreport_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_arms; i++) {
        free(r->arms[i].name);
        free(r->arms[i].lat);
    }
    free(r->arms);
    free(r->experiment);
    free(r);
}

static xarm_t *arm_get(xreport_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_arms; i++)
        if (strcmp(r->arms[i].name, name) == 0)
            return &r->arms[i];
    if (r->n_arms == r->cap_arms) {
        r->cap_arms = r->cap_arms ? 2 * r->cap_arms : 4;
        r->arms = xrealloc(r->arms, r->cap_arms * sizeof *r->arms);
    }
    xarm_t *a = &r->arms[r->n_arms++];
    memset(a, 0, sizeof *a);
    a->name = xstrdup(name);
    return a;
}

/* The line's object when it belongs to the experiment (its arm in *arm),
 * else NULL with *rc set (1 other, -1 malformed). */
static cJSON *parse_line(xreport_t *r, const char *line, size_t len, const char **arm, int *rc)
{
    cJSON *o, *e, *a;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    *rc = 1;
    if (len == 0)
        return NULL;
    r->lines++;
    o = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        r->malformed++;
        *rc = -1;
        return NULL;
    }
    e = cJSON_GetObjectItemCaseSensitive(o, "experiment");
    a = cJSON_GetObjectItemCaseSensitive(o, "arm");
    if (!cJSON_IsString(e) || strcmp(e->valuestring, r->experiment) != 0 || !cJSON_IsString(a) ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "explain"))) {
        cJSON_Delete(o);
        r->other++;
        return NULL;
    }
    *arm = a->valuestring;
    *rc = 0;
    return o;
}

static bool num(const cJSON *o, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return false;
    *out = v->valuedouble;
    return true;
}

int xreport_add_log(xreport_t *r, const char *line, size_t len)
{
    const char *arm;
    int rc;
    cJSON *o = parse_line(r, line, len, &arm, &rc);
    double status = 0, cost, ms;
    const cJSON *cache;
    xarm_t *a;
    bool ok;
    if (o == NULL)
        return rc;
    a = arm_get(r, arm);
    a->requests++;
    num(o, "status", &status);
    ok = status >= 200 && status < 300;
    a->succeeded += ok;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "arm_keyless")))
        a->keyless++;
    if (num(o, "cost_usd", &cost)) {
        stats_moments_add(&a->cost, cost);
    } else {
        cost = 0; /* unknown: nothing known was spent */
    }
    stats_ratio_add(&a->per_success, cost, ok ? 1 : 0);
    if (num(o, "total_ms", &ms)) {
        if (a->n_lat == a->cap_lat) {
            a->cap_lat = a->cap_lat ? 2 * a->cap_lat : 64;
            a->lat = xrealloc(a->lat, a->cap_lat * sizeof *a->lat);
        }
        a->lat[a->n_lat++] = ms;
    }
    cache = cJSON_GetObjectItemCaseSensitive(o, "cache");
    if (cJSON_IsString(cache)) {
        bool hit = strcmp(cache->valuestring, "HIT") == 0;
        if (hit || strcmp(cache->valuestring, "MISS") == 0) {
            a->lookups++;
            a->hits += hit;
        }
    }
    cJSON_Delete(o);
    return 0;
}

int xreport_add_sample(xreport_t *r, const char *line, size_t len)
{
    const char *arm;
    int rc;
    cJSON *o = parse_line(r, line, len, &arm, &rc);
    const cJSON *j;
    double score;
    xarm_t *a;
    if (o == NULL)
        return rc;
    a = arm_get(r, arm);
    a->samples++;
    j = cJSON_GetObjectItemCaseSensitive(o, "judge");
    if (cJSON_IsObject(j) && num(j, "score", &score))
        stats_moments_add(&a->judge, score);
    cJSON_Delete(o);
    return 0;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static int cmp_arm(const void *x, const void *y)
{
    return strcmp(((const xarm_t *)x)->name, ((const xarm_t *)y)->name);
}

void xreport_finish(xreport_t *r)
{
    if (r->n_arms > 1)
        qsort(r->arms, r->n_arms, sizeof *r->arms, cmp_arm);
    for (size_t i = 0; i < r->n_arms; i++)
        if (r->arms[i].n_lat > 1)
            qsort(r->arms[i].lat, r->arms[i].n_lat, sizeof(double), cmp_double);
}

int xreport_control(const xreport_t *r, const char *control)
{
    for (size_t i = 0; control != NULL && i < r->n_arms; i++)
        if (strcmp(r->arms[i].name, control) == 0)
            return (int)i;
    for (size_t i = 0; i < r->n_arms; i++)
        if (strcmp(r->arms[i].name, "control") == 0)
            return (int)i;
    return r->n_arms > 0 ? 0 : -1;
}

/* ---- figures ---- */

enum { X_SUCCESS, X_COST, X_COST_OK, X_P50, X_P95, X_CACHE, X_QUALITY, X_N };
static const char *const fig_names[X_N] = {"success_rate",   "cost_per_request",
                                           "cost_per_success", "latency_p50_ms",
                                           "latency_p95_ms", "cache_hit_rate",
                                           "quality"};

static void figures(const xarm_t *a, stats_est_t f[X_N], double *se_cost_ok)
{
    f[X_SUCCESS] = stats_wilson(a->succeeded, a->requests, STATS_Z95);
    f[X_COST] = stats_mean_ci(&a->cost);
    f[X_COST_OK] = stats_ratio_ci(&a->per_success, se_cost_ok);
    f[X_COST_OK].n = a->succeeded;
    f[X_P50] = stats_quantile_ci(a->lat, a->n_lat, 0.50);
    f[X_P95] = stats_quantile_ci(a->lat, a->n_lat, 0.95);
    f[X_CACHE] = stats_wilson(a->hits, a->lookups, STATS_Z95);
    f[X_QUALITY] = stats_mean_ci(&a->judge);
}

/* p-values of arm b against control a, per figure (NAN: no test). */
static void versus(const xarm_t *a, const xarm_t *b, double p[X_N])
{
    stats_est_t fa[X_N], fb[X_N];
    double sa, sb;
    figures(a, fa, &sa);
    figures(b, fb, &sb);
    for (int i = 0; i < X_N; i++)
        p[i] = NAN;
    p[X_SUCCESS] = stats_two_prop_p(a->succeeded, a->requests, b->succeeded, b->requests);
    p[X_COST] = stats_welch_p(&a->cost, &b->cost, NULL, NULL);
    p[X_COST_OK] = stats_z_p(fa[X_COST_OK].value, sa, fb[X_COST_OK].value, sb);
    p[X_CACHE] = stats_two_prop_p(a->hits, a->lookups, b->hits, b->lookups);
    p[X_QUALITY] = stats_welch_p(&a->judge, &b->judge, NULL, NULL);
}

/* ---- output ---- */

static void json_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *est_json(const stats_est_t *e)
{
    cJSON *o = cJSON_CreateObject();
    json_num(o, "value", e->value);
    json_num(o, "lo", e->lo);
    json_num(o, "hi", e->hi);
    cJSON_AddNumberToObject(o, "n", (double)e->n);
    return o;
}

void xreport_print_json(const xreport_t *r, int control, FILE *out)
{
    cJSON *root = cJSON_CreateObject(), *arms = cJSON_CreateArray();
    char *text;
    cJSON_AddStringToObject(root, "experiment", r->experiment);
    if (control >= 0)
        cJSON_AddStringToObject(root, "control", r->arms[control].name);
    else
        cJSON_AddNullToObject(root, "control");
    for (size_t i = 0; i < r->n_arms; i++) {
        const xarm_t *a = &r->arms[i];
        cJSON *o = cJSON_CreateObject();
        stats_est_t f[X_N];
        double se;
        figures(a, f, &se);
        cJSON_AddStringToObject(o, "arm", a->name);
        cJSON_AddNumberToObject(o, "requests", (double)a->requests);
        cJSON_AddNumberToObject(o, "succeeded", (double)a->succeeded);
        cJSON_AddNumberToObject(o, "keyless", (double)a->keyless);
        cJSON_AddNumberToObject(o, "cost_usd", a->per_success.sc);
        cJSON_AddNumberToObject(o, "samples", (double)a->samples);
        for (int k = 0; k < X_N; k++)
            cJSON_AddItemToObject(o, fig_names[k], est_json(&f[k]));
        if (control >= 0 && (size_t)control != i) {
            double p[X_N];
            cJSON *vs = cJSON_CreateObject(), *sig = cJSON_CreateArray();
            versus(&r->arms[control], a, p);
            for (int k = 0; k < X_N; k++) {
                if (k == X_P50 || k == X_P95)
                    continue; /* percentiles: intervals only */
                char name[64];
                snprintf(name, sizeof name, "%s_p", fig_names[k]);
                json_num(vs, name, p[k]);
                if (p[k] < 0.05)
                    cJSON_AddItemToArray(sig, cJSON_CreateString(fig_names[k]));
            }
            cJSON_AddItemToObject(vs, "significant", sig);
            cJSON_AddItemToObject(o, "vs_control", vs);
        }
        cJSON_AddItemToArray(arms, o);
    }
    cJSON_AddItemToObject(root, "arms", arms);
    cJSON_AddStringToObject(root, "methods",
                            "95% intervals: Wilson (rates), Student t (means), delta method (cost "
                            "per success), order statistics (percentiles); tests: two-proportion "
                            "z, Welch t, z on the delta-method difference; significant: p < 0.05");
    text = cJSON_PrintUnformatted(root);
    if (text) {
        fprintf(out, "%s\n", text);
        cJSON_free(text);
    }
    cJSON_Delete(root);
}

static void fmt_est(char *out, size_t n, const stats_est_t *e, double scale, const char *fmt)
{
    char v[24], lo[24], hi[24];
    if (!isfinite(e->value)) {
        snprintf(out, n, "-");
        return;
    }
    snprintf(v, sizeof v, fmt, e->value * scale);
    if (!isfinite(e->lo)) {
        snprintf(out, n, "%s", v);
        return;
    }
    snprintf(lo, sizeof lo, fmt, e->lo * scale);
    snprintf(hi, sizeof hi, fmt, e->hi * scale);
    snprintf(out, n, "%s [%s, %s]", v, lo, hi);
}

void xreport_print_table(const xreport_t *r, int control, FILE *out)
{
    static const char *const heads[X_N] = {"success %", "cost/req $", "cost/success $",
                                           "p50 ms",    "p95 ms",     "cache hit %",
                                           "quality"};
    static const double scale[X_N] = {100, 1, 1, 1, 1, 100, 1};
    static const char *const fmt[X_N] = {"%.1f", "%.6f", "%.6f", "%.1f", "%.1f", "%.1f", "%.2f"};
    fprintf(out, "experiment %s: %zu arm%s (95%% confidence intervals in brackets)\n",
            r->experiment, r->n_arms, r->n_arms == 1 ? "" : "s");
    fprintf(out, "%-16s %8s %8s", "arm", "requests", "samples");
    for (int k = 0; k < X_N; k++)
        fprintf(out, "  %-26s", heads[k]);
    fprintf(out, "\n");
    for (size_t i = 0; i < r->n_arms; i++) {
        const xarm_t *a = &r->arms[i];
        stats_est_t f[X_N];
        double se;
        figures(a, f, &se);
        fprintf(out, "%-16.16s %8zu %8zu", a->name, a->requests, a->samples);
        for (int k = 0; k < X_N; k++) {
            char cell[128];
            fmt_est(cell, sizeof cell, &f[k], scale[k], fmt[k]);
            fprintf(out, "  %-26s", cell);
        }
        fprintf(out, "\n");
    }
    if (control < 0 || r->n_arms < 2)
        return;
    fprintf(out, "\nagainst the control arm %s (p-value; * significant, p < 0.05):\n",
            r->arms[control].name);
    for (size_t i = 0; i < r->n_arms; i++) {
        double p[X_N];
        if ((size_t)control == i)
            continue;
        versus(&r->arms[control], &r->arms[i], p);
        fprintf(out, "  %s:", r->arms[i].name);
        for (int k = 0; k < X_N; k++) {
            if (k == X_P50 || k == X_P95)
                continue;
            if (isfinite(p[k]))
                fprintf(out, " %s %.4f%s", fig_names[k], p[k], p[k] < 0.05 ? "*" : "");
            else
                fprintf(out, " %s -", fig_names[k]);
        }
        fprintf(out, "\n");
    }
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: llmrouter report --experiment NAME [--control ARM] [--json] ACCESS_LOG "
            "[SAMPLES]\n"
            "Compares the arms of experiment NAME: requests, success rate, cost per request\n"
            "and per successful request, p50/p95 latency, cache hit rate and (from the\n"
            "samples file's \"judge\" scores) judged quality, with 95%% confidence intervals,\n"
            "and each arm against the control arm (ARM, else \"control\", else the first by\n"
            "name) with p-values.\n");
}

static int read_file(xreport_t *r, const char *path, bool samples)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (f == NULL) {
        fprintf(stderr, "llmrouter report: cannot open %s\n", path);
        return -1;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (samples)
            xreport_add_sample(r, line, (size_t)n);
        else
            xreport_add_log(r, line, (size_t)n);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return 0;
}

int report_experiment_main(int argc, char **argv)
{
    static const struct option opts[] = {{"experiment", required_argument, NULL, 'e'},
                                         {"control", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *name = NULL, *control = NULL;
    bool json = false;
    xreport_t *r;
    int c, rc = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            name = optarg;
            break;
        case 'c':
            control = optarg;
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
    if (name == NULL || optind >= argc || argc - optind > 2) {
        usage(stderr);
        return 2;
    }
    r = xreport_new(name);
    if (read_file(r, argv[optind], false) < 0 ||
        (argc - optind == 2 && read_file(r, argv[optind + 1], true) < 0)) {
        xreport_free(r);
        return 1;
    }
    xreport_finish(r);
    if (r->n_arms == 0) {
        fprintf(stderr, "llmrouter report: no line of experiment \"%s\" in %s\n", name,
                argv[optind]);
        rc = 1;
    } else if (json) {
        xreport_print_json(r, xreport_control(r, control), stdout);
    } else {
        xreport_print_table(r, xreport_control(r, control), stdout);
    }
    if (r->malformed)
        fprintf(stderr, "llmrouter report: skipped %zu malformed line%s\n", r->malformed,
                r->malformed == 1 ? "" : "s");
    xreport_free(r);
    return rc;
}
