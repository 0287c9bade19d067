/* report_quality: judged quality from samples files (see
 * include/account/report_quality.h). */
#include "account/report_quality.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"

#define MAX_LINE (64u << 20) /* a sample line embeds two bodies */

typedef struct qrow {
    char *name;
    uint64_t n;
    double sum;
} qrow_t;

typedef struct qdim {
    qrow_t *rows;
    size_t n;
} qdim_t;

typedef struct qrep {
    qdim_t dim[3]; /* tier, model, rule */
    uint64_t unjudged, errors, malformed;
    double spend;
} qrep_t;

static const char *const dim_name[3] = {"tier", "model", "rule"};
static const char *const dim_key[3] = {"tiers", "models", "rules"};

static void add(qdim_t *d, const char *name, int score)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->rows[i].name, name) == 0) {
            d->rows[i].n++;
            d->rows[i].sum += score;
            return;
        }
    d->rows = xrealloc(d->rows, (d->n + 1) * sizeof *d->rows);
    d->rows[d->n].name = xstrdup(name);
    d->rows[d->n].n = 1;
    d->rows[d->n].sum = score;
    d->n++;
}

static void add_line(qrep_t *r, const char *line, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(line, len);
    const cJSON *j, *s, *c;
    if (!cJSON_IsObject(o)) {
        r->malformed++;
        cJSON_Delete(o);
        return;
    }
    j = cJSON_GetObjectItemCaseSensitive(o, "judge");
    if (!cJSON_IsObject(j)) {
        r->unjudged++;
        cJSON_Delete(o);
        return;
    }
    c = cJSON_GetObjectItemCaseSensitive(j, "cost_usd");
    if (cJSON_IsNumber(c) && c->valuedouble > 0)
        r->spend += c->valuedouble;
    s = cJSON_GetObjectItemCaseSensitive(j, "score");
    if (!cJSON_IsNumber(s)) {
        r->errors++;
        cJSON_Delete(o);
        return;
    }
    for (int k = 0; k < 3; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, dim_name[k]);
        add(&r->dim[k], cJSON_IsString(v) ? v->valuestring : "-", (int)s->valuedouble);
    }
    cJSON_Delete(o);
}

static int read_file(qrep_t *r, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (f == NULL) {
        fprintf(stderr, "llmrouter report: %s: cannot open\n", path);
        return -1;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if (n == 0)
            continue;
        if ((size_t)n > MAX_LINE) {
            r->malformed++;
            continue;
        }
        add_line(r, line, (size_t)n);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return 0;
}

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const qrow_t *)a)->name, ((const qrow_t *)b)->name);
}

static void print_table(const qrep_t *r)
{
    uint64_t judged = 0;
    for (size_t i = 0; i < r->dim[0].n; i++)
        judged += r->dim[0].rows[i].n;
    printf("judged quality: %llu judged, %llu unjudged, %llu judge errors, judge spend $%.6f\n\n",
           (unsigned long long)judged, (unsigned long long)r->unjudged,
           (unsigned long long)r->errors, r->spend);
    printf("%-6s %-32s %8s %6s\n", "BY", "NAME", "JUDGED", "MEAN");
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < r->dim[k].n; i++) {
            const qrow_t *q = &r->dim[k].rows[i];
            printf("%-6s %-32s %8llu %6.2f\n", dim_name[k], q->name, (unsigned long long)q->n,
                   q->sum / (double)q->n);
        }
}

static void print_json(const qrep_t *r)
{
    cJSON *root = cJSON_CreateObject(), *q = cJSON_AddObjectToObject(root, "quality");
    char *text;
    for (int k = 0; k < 3; k++) {
        cJSON *d = cJSON_AddObjectToObject(q, dim_key[k]);
        for (size_t i = 0; i < r->dim[k].n; i++) {
            cJSON *o = cJSON_AddObjectToObject(d, r->dim[k].rows[i].name);
            cJSON_AddNumberToObject(o, "n", (double)r->dim[k].rows[i].n);
            cJSON_AddNumberToObject(o, "mean", r->dim[k].rows[i].sum / (double)r->dim[k].rows[i].n);
        }
    }
    cJSON_AddNumberToObject(q, "unjudged", (double)r->unjudged);
    cJSON_AddNumberToObject(q, "judge_errors", (double)r->errors);
    cJSON_AddNumberToObject(q, "judge_cost_usd", r->spend);
    text = cJSON_Print(root);
    if (text != NULL)
        printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(root);
}

int report_quality_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--samples") == 0)
            return 1;
    return 0;
}

int report_quality_main(int argc, char **argv)
{
    qrep_t r;
    bool json = false;
    size_t files = 0;
    int rc = 0;
    memset(&r, 0, sizeof r);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--samples") == 0)
            continue;
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "llmrouter report --samples: unknown option %s (only --json)\n",
                    argv[i]);
            return 2;
        }
        files++;
        if (read_file(&r, argv[i]) < 0)
            rc = 1;
    }
    if (files == 0) {
        fprintf(stderr, "Usage: llmrouter report [--json] --samples SAMPLES...\n");
        return 2;
    }
    if (rc == 0) {
        for (int k = 0; k < 3; k++)
            qsort(r.dim[k].rows, r.dim[k].n, sizeof *r.dim[k].rows, cmp_row);
        if (json)
            print_json(&r);
        else
            print_table(&r);
        if (r.malformed)
            fprintf(stderr, "llmrouter report: skipped %llu malformed line%s\n",
                    (unsigned long long)r.malformed, r.malformed == 1 ? "" : "s");
    }
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < r.dim[k].n; i++)
            free(r.dim[k].rows[i].name);
        free(r.dim[k].rows);
    }
    return rc;
}
