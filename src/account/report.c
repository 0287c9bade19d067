/* report: aggregates the JSON-lines access log offline. Each line is parsed
 * with cJSON and folded into three kinds of group — per tier and model (or
 * per key), per tier, and the total — found through small open-addressing
 * indexes so a log with many keys stays linear. Latencies are kept per group
 * in growable arrays and sorted once at the end, so p50/p95 are exact
 * (nearest rank), not estimated. */
#include "account/report.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "account/report_cascade.h"
#include "account/report_experiment.h"
#include "account/report_quality.h"
#include "core/util.h"

#define LABEL_MAX 40 /* widest label column in the table */

/* One log entry, as far as the report needs it. Strings are borrowed from
 * the cJSON tree. */
struct entry {
    const char *tier, *model, *key;
    double status;
    bool has_prompt, has_completion, has_cost, has_baseline, has_total;
    bool unpriced; /* "unpriced": true — the model had no price (core/config_catalog.c) */
    double prompt, completion, cost, baseline, total_ms;
    int cache; /* 0 = other/unknown, 1 = HIT, 2 = MISS */
};

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : "-";
}

static bool num_field(const cJSON *o, const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return false;
    *out = v->valuedouble;
    return true;
}

/* ---- time ---- */

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int report_parse_time(const char *s, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
    time_t t;

    if (s == NULL)
        return -1;
    if (digits(&s, 4, &y) < 0 || *s++ != '-' || digits(&s, 2, &mo) < 0 || *s++ != '-' ||
        digits(&s, 2, &d) < 0)
        return -1;
    if (*s == 'T' || *s == 't' || *s == ' ') {
        s++;
        if (digits(&s, 2, &h) < 0 || *s++ != ':' || digits(&s, 2, &mi) < 0)
            return -1;
        if (*s == ':') {
            s++;
            if (digits(&s, 2, &sec) < 0)
                return -1;
            if (*s == '.' || *s == ',') {
                int scale = 100;
                s++;
                if (*s < '0' || *s > '9')
                    return -1;
                for (; *s >= '0' && *s <= '9'; s++, scale /= 10)
                    frac += (*s - '0') * scale; /* digits past milliseconds add 0 */
            }
        }
    }
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1, oh, om;
        if (digits(&s, 2, &oh) < 0)
            return -1;
        if (*s == ':')
            s++;
        if (digits(&s, 2, &om) < 0 || oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 60 + om);
    }
    if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        sec > 60)
        return -1;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return -1;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *ms = ((int64_t)t - (int64_t)off * 60) * 1000 + frac;
    return 0;
}

static void format_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "%lld", (long long)ms);
}

/* ---- groups ---- */

static uint64_t hash2(const char *a, const char *b)
{
    uint64_t h = 14695981039346656037ull;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull; /* separator: "ab"+"c" != "a"+"bc" */
    for (; b && *b; b++)
        h = (h ^ (unsigned char)*b) * 1099511628211ull;
    return h;
}

static bool row_is(const report_row_t *row, const char *name, const char *model)
{
    if (strcmp(row->name, name) != 0)
        return false;
    if (row->model == NULL || model == NULL)
        return row->model == model;
    return strcmp(row->model, model) == 0;
}

static void slots_insert(size_t *slots, size_t cap, const report_row_t *rows, size_t idx)
{
    size_t i = (size_t)hash2(rows[idx].name, rows[idx].model) & (cap - 1);
    while (slots[i] != 0)
        i = (i + 1) & (cap - 1);
    slots[i] = idx + 1;
}

/* Finds or adds the group (name, model) in rows[0..*n). The returned pointer
 * is valid until the next call on the same array. */
static report_row_t *group(report_row_t **rows, size_t *n, size_t *cap, size_t **slots,
                           size_t *slots_cap, const char *name, const char *model)
{
    size_t i;
    report_row_t *row;

    if (*slots_cap > 0) {
        i = (size_t)hash2(name, model) & (*slots_cap - 1);
        for (; (*slots)[i] != 0; i = (i + 1) & (*slots_cap - 1)) {
            row = &(*rows)[(*slots)[i] - 1];
            if (row_is(row, name, model))
                return row;
        }
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *rows = xrealloc(*rows, *cap * sizeof **rows);
    }
    row = &(*rows)[*n];
    memset(row, 0, sizeof *row);
    row->name = xstrdup(name);
    row->model = model ? xstrdup(model) : NULL;
    (*n)++;
    /* keep the index at most half full */
    if (*n * 2 > *slots_cap) {
        free(*slots);
        *slots_cap = *slots_cap ? *slots_cap * 2 : 32;
        *slots = xcalloc(*slots_cap, sizeof **slots);
        for (size_t k = 0; k < *n; k++)
            slots_insert(*slots, *slots_cap, *rows, k);
    } else {
        slots_insert(*slots, *slots_cap, *rows, *n - 1);
    }
    return row;
}

static void row_add(report_row_t *row, const struct entry *e)
{
    row->requests++;
    row->unpriced += e->unpriced;
    if (e->status >= 200 && e->status < 300)
        row->succeeded++;
    if (e->has_prompt)
        row->prompt_tokens += (uint64_t)e->prompt;
    if (e->has_completion)
        row->completion_tokens += (uint64_t)e->completion;
    if (e->has_cost)
        row->cost_usd += e->cost;
    if (e->has_baseline)
        row->baseline_cost_usd += e->baseline;
    if (e->has_cost && e->has_baseline) {
        row->_pair_cost += e->cost;
        row->_pair_baseline += e->baseline;
    }
    if (e->cache == 1)
        row->cache_hits++;
    if (e->cache != 0)
        row->cache_lookups++;
    if (e->has_total) {
        if (row->latency_count == row->_lat_cap) {
            row->_lat_cap = row->_lat_cap ? row->_lat_cap * 2 : 16;
            row->_lat = xrealloc(row->_lat, row->_lat_cap * sizeof *row->_lat);
        }
        row->_lat[row->latency_count++] = e->total_ms;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p% of samples <= it. */
static double percentile(const double *sorted, size_t n, unsigned p)
{
    size_t rank = (p * n + 99) / 100;
    if (n == 0)
        return NAN;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void row_finish(report_row_t *row)
{
    row->success_rate = row->requests ? (double)row->succeeded / (double)row->requests : NAN;
    row->savings_pct = row->_pair_baseline > 0
                           ? 100.0 * (row->_pair_baseline - row->_pair_cost) / row->_pair_baseline
                           : NAN;
    row->cost_per_success = row->succeeded ? row->cost_usd / (double)row->succeeded : NAN;
    row->cache_hit_rate =
        row->cache_lookups ? (double)row->cache_hits / (double)row->cache_lookups : NAN;
    if (row->latency_count > 0)
        qsort(row->_lat, row->latency_count, sizeof *row->_lat, cmp_double);
    row->p50_ms = percentile(row->_lat, row->latency_count, 50);
    row->p95_ms = percentile(row->_lat, row->latency_count, 95);
    free(row->_lat);
    row->_lat = NULL;
    row->_lat_cap = 0;
}

static void row_clear(report_row_t *row)
{
    free(row->name);
    free(row->model);
    free(row->_lat);
}

static int cmp_row(const void *a, const void *b)
{
    const report_row_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0 || x->model == NULL || y->model == NULL)
        return c;
    return strcmp(x->model, y->model);
}

/* ---- building ---- */

report_t *report_new(const report_opts_t *opts)
{
    report_t *r = xcalloc(1, sizeof *r);
    if (opts)
        r->opts = *opts;
    r->total.name = xstrdup("TOTAL");
    r->cascade = report_cascade_new();
    return r;
}

void report_free(report_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_rows; i++)
        row_clear(&r->rows[i]);
    for (size_t i = 0; i < r->n_tiers; i++)
        row_clear(&r->tiers[i]);
    row_clear(&r->total);
    free(r->rows);
    free(r->tiers);
    free(r->_row_slots);
    free(r->_tier_slots);
    report_cascade_free(r->cascade);
    free(r);
}

/* line[len] must be '\0' (cJSON then rejects trailing garbage). */
static int add_cstr(report_t *r, const char *line, size_t len)
{
    struct entry e;
    const cJSON *v;
    cJSON *o;
    size_t i;
    int rc = 0;

    for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'); i++)
        ;
    if (i == len)
        return 0;
    r->lines++;
    o = cJSON_ParseWithLengthOpts(line, len + 1, NULL, 1);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        r->malformed++;
        return -1;
    }
    if (r->opts.has_since || r->opts.has_until) {
        int64_t t;
        v = cJSON_GetObjectItemCaseSensitive(o, "time");
        if (!cJSON_IsString(v) || report_parse_time(v->valuestring, &t) < 0 ||
            (r->opts.has_since && t < r->opts.since_ms) ||
            (r->opts.has_until && t >= r->opts.until_ms)) {
            r->filtered++;
            rc = 1;
            goto out;
        }
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "explain"))) {
        r->explain++;
        rc = 1;
        goto out;
    }
    memset(&e, 0, sizeof e);
    e.tier = str_field(o, "tier");
    e.model = str_field(o, "model");
    e.key = str_field(o, "key");
    if (!num_field(o, "status", &e.status))
        e.status = 0;
    e.has_prompt = num_field(o, "prompt_tokens", &e.prompt) && e.prompt >= 0;
    e.has_completion = num_field(o, "completion_tokens", &e.completion) && e.completion >= 0;
    e.has_cost = num_field(o, "cost_usd", &e.cost);
    e.has_baseline = num_field(o, "baseline_cost_usd", &e.baseline);
    e.has_total = num_field(o, "total_ms", &e.total_ms);
    e.unpriced = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "unpriced"));
    v = cJSON_GetObjectItemCaseSensitive(o, "cache");
    if (cJSON_IsString(v))
        e.cache = strcmp(v->valuestring, "HIT") == 0 ? 1 : strcmp(v->valuestring, "MISS") == 0 ? 2 : 0;

    row_add(group(&r->rows, &r->n_rows, &r->_rows_cap, &r->_row_slots, &r->_row_slots_cap,
                  r->opts.by_key ? e.key : e.tier, r->opts.by_key ? NULL : e.model),
            &e);
    row_add(group(&r->tiers, &r->n_tiers, &r->_tiers_cap, &r->_tier_slots, &r->_tier_slots_cap,
                  e.tier, NULL),
            &e);
    row_add(&r->total, &e);
    report_cascade_add(r->cascade, o);
out:
    cJSON_Delete(o);
    return rc;
}

int report_add_line(report_t *r, const char *line, size_t len)
{
    char *copy = xstrndup(line, len);
    int rc = -1;
    /* an embedded NUL ends the copy early: that is a malformed line, not a
     * shorter valid one */
    if (strlen(copy) == len) {
        rc = add_cstr(r, copy, len);
    } else {
        r->lines++;
        r->malformed++;
    }
    free(copy);
    return rc;
}

int report_add_stream(report_t *r, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;

    while ((n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (strlen(line) != len) {
            r->lines++;
            r->malformed++;
            continue;
        }
        add_cstr(r, line, len);
    }
    if (ferror(f))
        rc = -1;
    free(line);
    return rc;
}

void report_finish(report_t *r)
{
    if (r->n_rows > 0) /* qsort(NULL, 0) is undefined */
        qsort(r->rows, r->n_rows, sizeof *r->rows, cmp_row);
    if (r->n_tiers > 0)
        qsort(r->tiers, r->n_tiers, sizeof *r->tiers, cmp_row);
    /* the indexes point at the unsorted order; no more adds after this */
    free(r->_row_slots);
    free(r->_tier_slots);
    r->_row_slots = r->_tier_slots = NULL;
    r->_row_slots_cap = r->_tier_slots_cap = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        row_finish(&r->rows[i]);
    for (size_t i = 0; i < r->n_tiers; i++)
        row_finish(&r->tiers[i]);
    row_finish(&r->total);
    report_cascade_finish(r->cascade);
}

report_t *report_compute(const char *const *paths, size_t n_paths, const report_opts_t *opts,
                         FILE *err)
{
    report_t *r = report_new(opts);
    for (size_t i = 0; i < n_paths; i++) {
        bool is_stdin = strcmp(paths[i], "-") == 0;
        FILE *f = is_stdin ? stdin : fopen(paths[i], "r");
        int rc;
        if (f == NULL) {
            fprintf(err, "llmrouter report: %s: %s\n", paths[i], strerror(errno));
            goto fail;
        }
        rc = report_add_stream(r, f);
        if (!is_stdin)
            fclose(f);
        if (rc < 0) {
            fprintf(err, "llmrouter report: %s: read error\n", paths[i]);
            goto fail;
        }
    }
    report_finish(r);
    return r;
fail:
    report_free(r);
    return NULL;
}

/* ---- output ---- */

static void fmt_money(char *out, size_t n, double v)
{
    if (isnan(v))
        snprintf(out, n, "-");
    else
        snprintf(out, n, fabs(v) < 1.0 ? "$%.6f" : "$%.2f", v);
}

static void fmt_pct(char *out, size_t n, double frac_or_pct, double scale)
{
    if (isnan(frac_or_pct))
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%.1f%%", frac_or_pct * scale);
}

static void fmt_ms(char *out, size_t n, double v)
{
    if (isnan(v))
        snprintf(out, n, "-");
    else
        snprintf(out, n, v >= 100 ? "%.0f" : "%.1f", v);
}

enum { W_REQS = 8, W_OK = 7, W_TOK = 11, W_COST = 12, W_SAVE = 7, W_PER = 10, W_MS = 9, W_HIT = 6 };

static void print_head(FILE *out, const char *l1, int w1, const char *l2, int w2)
{
    fprintf(out, "%-*s", w1, l1);
    if (l2)
        fprintf(out, "  %-*s", w2, l2);
    fprintf(out, " %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s\n", W_REQS, "REQS", W_OK, "OK%",
            W_TOK, "PROMPT", W_TOK, "COMPLETION", W_COST, "COST", W_COST, "BASELINE", W_SAVE,
            "SAVED", W_PER, "COST/OK", W_MS, "P50_MS", W_MS, "P95_MS", W_HIT, "HIT%");
}

static void print_rule(FILE *out, int width)
{
    for (int i = 0; i < width; i++)
        fputc('-', out);
    fputc('\n', out);
}

static void print_row(FILE *out, const report_row_t *row, const char *l1, int w1, const char *l2,
                      int w2)
{
    char ok[16], cost[32], base[32], save[16], per[32], p50[24], p95[24], hit[16];
    fmt_pct(ok, sizeof ok, row->success_rate, 100);
    if (row->unpriced > 0 && row->unpriced == row->requests)
        snprintf(cost, sizeof cost, "unpriced"); /* not $0: unknown */
    else
        fmt_money(cost, sizeof cost, row->cost_usd);
    fmt_money(base, sizeof base, row->baseline_cost_usd);
    fmt_pct(save, sizeof save, row->savings_pct, 1);
    fmt_money(per, sizeof per, row->cost_per_success);
    fmt_ms(p50, sizeof p50, row->p50_ms);
    fmt_ms(p95, sizeof p95, row->p95_ms);
    fmt_pct(hit, sizeof hit, row->cache_hit_rate, 100);
    fprintf(out, "%-*.*s", w1, w1, l1);
    if (w2 > 0)
        fprintf(out, "  %-*.*s", w2, w2, l2 ? l2 : "");
    fprintf(out, " %*llu %*s %*llu %*llu %*s %*s %*s %*s %*s %*s %*s\n", W_REQS,
            (unsigned long long)row->requests, W_OK, ok, W_TOK,
            (unsigned long long)row->prompt_tokens, W_TOK,
            (unsigned long long)row->completion_tokens, W_COST, cost, W_COST, base, W_SAVE, save,
            W_PER, per, W_MS, p50, W_MS, p95, W_HIT, hit);
}

static int label_width(const report_row_t *rows, size_t n, bool model, const char *head)
{
    size_t w = strlen(head);
    for (size_t i = 0; i < n; i++) {
        const char *s = model ? rows[i].model : rows[i].name;
        if (s && strlen(s) > w)
            w = strlen(s);
    }
    if (!model && w < strlen("TOTAL"))
        w = strlen("TOTAL");
    return (int)(w > LABEL_MAX ? LABEL_MAX : w);
}

static int numeric_width(void)
{
    return 1 + W_REQS + 1 + W_OK + 2 * (1 + W_TOK) + 2 * (1 + W_COST) + 1 + W_SAVE + 1 + W_PER +
           2 * (1 + W_MS) + 1 + W_HIT;
}

void report_print_table(const report_t *r, FILE *out)
{
    const char *h1 = r->opts.by_key ? "KEY" : "TIER";
    int w1 = label_width(r->rows, r->n_rows, false, h1);
    int w2 = r->opts.by_key ? 0 : label_width(r->rows, r->n_rows, true, "MODEL");
    int width = w1 + (w2 ? 2 + w2 : 0) + numeric_width();
    int tw = label_width(r->tiers, r->n_tiers, false, "TIER");
    char since[32], until[32];

    fprintf(out, "%llu requests", (unsigned long long)r->total.requests);
    if (r->opts.has_since) {
        format_time(r->opts.since_ms, since, sizeof since);
        fprintf(out, " since %s", since);
    }
    if (r->opts.has_until) {
        format_time(r->opts.until_ms, until, sizeof until);
        fprintf(out, " until %s", until);
    }
    if (r->filtered)
        fprintf(out, " (%llu outside the time window)", (unsigned long long)r->filtered);
    if (r->explain)
        fprintf(out, " (%llu explain call%s not counted)", (unsigned long long)r->explain,
                r->explain == 1 ? "" : "s");
    fprintf(out, "\n\n");

    print_head(out, h1, w1, w2 ? "MODEL" : NULL, w2);
    print_rule(out, width);
    for (size_t i = 0; i < r->n_rows; i++)
        print_row(out, &r->rows[i], r->rows[i].name, w1, r->rows[i].model, w2);
    print_rule(out, width);
    print_row(out, &r->total, "TOTAL", w1, "", w2);
    if (r->total.unpriced > 0)
        fprintf(out, "unpriced: %llu answer%s from models without a price (configuration or price "
                     "table): their cost is unknown, left out of COST and SAVED\n",
                (unsigned long long)r->total.unpriced, r->total.unpriced == 1 ? "" : "s");

    fprintf(out, "\nPer tier:\n");
    print_head(out, "TIER", tw, NULL, 0);
    print_rule(out, tw + numeric_width());
    for (size_t i = 0; i < r->n_tiers; i++)
        print_row(out, &r->tiers[i], r->tiers[i].name, tw, NULL, 0);
    report_cascade_print_table(r->cascade, out);
}

static void json_num(cJSON *o, const char *name, double v)
{
    if (isnan(v))
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddNumberToObject(o, name, v);
}

static cJSON *row_json(const report_row_t *row, const char *name_key, bool model)
{
    cJSON *o = cJSON_CreateObject();
    if (name_key)
        cJSON_AddStringToObject(o, name_key, row->name);
    if (model)
        cJSON_AddStringToObject(o, "model", row->model ? row->model : "-");
    json_num(o, "requests", (double)row->requests);
    json_num(o, "succeeded", (double)row->succeeded);
    json_num(o, "success_rate", row->success_rate);
    json_num(o, "prompt_tokens", (double)row->prompt_tokens);
    json_num(o, "completion_tokens", (double)row->completion_tokens);
    json_num(o, "cost_usd", row->cost_usd);
    json_num(o, "baseline_cost_usd", row->baseline_cost_usd);
    json_num(o, "savings_pct", row->savings_pct);
    json_num(o, "cost_per_success_usd", row->cost_per_success);
    json_num(o, "p50_ms", row->p50_ms);
    json_num(o, "p95_ms", row->p95_ms);
    json_num(o, "cache_hits", (double)row->cache_hits);
    json_num(o, "cache_lookups", (double)row->cache_lookups);
    json_num(o, "cache_hit_rate", row->cache_hit_rate);
    json_num(o, "unpriced_requests", (double)row->unpriced);
    return o;
}

void report_print_json(const report_t *r, FILE *out)
{
    cJSON *root = cJSON_CreateObject(), *groups = cJSON_CreateArray(),
          *tiers = cJSON_CreateArray();
    char t[32], *text;

    if (root == NULL || groups == NULL || tiers == NULL) {
        fprintf(stderr, "llmrouter report: out of memory\n");
        abort();
    }
    cJSON_AddStringToObject(root, "group_by", r->opts.by_key ? "key" : "tier_model");
    if (r->opts.has_since) {
        format_time(r->opts.since_ms, t, sizeof t);
        cJSON_AddStringToObject(root, "since", t);
    }
    if (r->opts.has_until) {
        format_time(r->opts.until_ms, t, sizeof t);
        cJSON_AddStringToObject(root, "until", t);
    }
    json_num(root, "lines", (double)r->lines);
    json_num(root, "malformed_lines", (double)r->malformed);
    json_num(root, "filtered", (double)r->filtered);
    json_num(root, "explain_calls", (double)r->explain);
    for (size_t i = 0; i < r->n_rows; i++)
        cJSON_AddItemToArray(groups, row_json(&r->rows[i], r->opts.by_key ? "key" : "tier",
                                              !r->opts.by_key));
    cJSON_AddItemToObject(root, "groups", groups);
    cJSON_AddItemToObject(root, "total", row_json(&r->total, NULL, false));
    for (size_t i = 0; i < r->n_tiers; i++)
        cJSON_AddItemToArray(tiers, row_json(&r->tiers[i], "tier", false));
    cJSON_AddItemToObject(root, "tiers", tiers);
    report_cascade_json(r->cascade, root);
    text = cJSON_Print(root);
    if (text == NULL) {
        fprintf(stderr, "llmrouter report: out of memory\n");
        abort();
    }
    fprintf(out, "%s\n", text);
    cJSON_free(text);
    cJSON_Delete(root);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f, "Usage: llmrouter report [OPTIONS] ACCESS_LOG...\n"
               "Summarises the JSON-lines access log (- = stdin; several files are read in\n"
               "order, e.g. rotated logs) per tier and model: requests, success rate, tokens,\n"
               "cost against the baseline, p50/p95 latency and cache hit rate.\n"
               "\n"
               "      --since TIME   only entries at or after TIME (ISO 8601, UTC if no zone)\n"
               "      --until TIME   only entries before TIME\n"
               "      --by key       group by API key instead of tier and model\n"
               "      --json         print the same data as JSON\n"
               "      --experiment NAME [SAMPLES]  compare an experiment's arms (--experiment --help)\n"
               "      --samples SAMPLES...  judged quality of samples files instead\n"
               "                     (mean judge score per tier, model and rule)\n"
               "  -h, --help         print this help and exit\n");
}

int report_main(int argc, char **argv)
{
    static const struct option opts[] = {{"since", required_argument, NULL, 's'},
                                         {"until", required_argument, NULL, 'u'},
                                         {"by", required_argument, NULL, 'b'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    report_opts_t o;
    report_t *r;
    bool json = false;
    int c;

    for (int i = 1; i < argc; i++) /* an experiment's comparison is its own report */
        if (strcmp(argv[i], "--experiment") == 0 || strncmp(argv[i], "--experiment=", 13) == 0)
            return report_experiment_main(argc, argv);
    if (report_quality_wanted(argc, argv))
        return report_quality_main(argc, argv); /* --samples: judged quality */
    memset(&o, 0, sizeof o);
    optind = 0; /* GNU: full re-initialisation, so report_main can be called again */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
        case 'u': {
            int64_t *t = c == 's' ? &o.since_ms : &o.until_ms;
            if (report_parse_time(optarg, t) < 0) {
                fprintf(stderr, "llmrouter report: --%s: expected an ISO 8601 time, got \"%s\"\n",
                        c == 's' ? "since" : "until", optarg);
                return 2;
            }
            if (c == 's')
                o.has_since = true;
            else
                o.has_until = true;
            break;
        }
        case 'b':
            if (strcmp(optarg, "key") == 0) {
                o.by_key = true;
            } else if (strcmp(optarg, "tier") == 0 || strcmp(optarg, "model") == 0) {
                o.by_key = false;
            } else {
                fprintf(stderr, "llmrouter report: --by: expected \"key\" or \"tier\"\n");
                return 2;
            }
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
    if (optind >= argc) {
        fprintf(stderr, "llmrouter report: no access log given (use - for stdin)\n");
        usage(stderr);
        return 2;
    }
    if (o.has_since && o.has_until && o.since_ms >= o.until_ms) {
        fprintf(stderr, "llmrouter report: --since must be before --until\n");
        return 2;
    }
    r = report_compute((const char *const *)(argv + optind), (size_t)(argc - optind), &o, stderr);
    if (r == NULL)
        return 1;
    if (json)
        report_print_json(r, stdout);
    else
        report_print_table(r, stdout);
    if (r->malformed)
        fprintf(stderr, "llmrouter report: skipped %llu malformed line%s\n",
                (unsigned long long)r->malformed, r->malformed == 1 ? "" : "s");
    report_free(r);
    return 0;
}
