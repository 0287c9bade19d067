/* Unit tests for src/report.c: a synthetic access log written to a temp file
 * (two tiers, a 502 with model "-", null numbers, malformed lines) and the
 * aggregates computed from it — counts, success rate, savings, exact p50/p95,
 * cache hit rate, time filters, --by key — plus the ISO 8601 parser, the
 * printed table and the command line's error exits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account/report.h"

#define EPS 1e-9

/* cmocka's assert_float_equal works in float; these are doubles */
#define assert_near(a, b)                                                                          \
    do {                                                                                           \
        double got_ = (a), want_ = (b);                                                            \
        if (!(fabs(got_ - want_) <= EPS))                                                          \
            fail_msg("%s = %.9g, expected %.9g", #a, got_, want_);                                 \
    } while (0)

static char log_path[64];

/* cheap/m-small: 20 requests at 01:01..01:20, total_ms 1..20, 18 ok, cache
 * 5 HIT / 10 MISS / 5 BYPASS, keys k2,k1 alternating; premium/m-big: 4 at
 * 03:00..03:03 (one with cost and total_ms null); premium/-: one 502; and
 * four malformed lines and a blank one. */
static int write_log(void **state)
{
    FILE *f;
    int fd;
    (void)state;
    snprintf(log_path, sizeof log_path, "/tmp/test_report_XXXXXX");
    fd = mkstemp(log_path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    for (int i = 1; i <= 20; i++)
        fprintf(f,
                "{\"time\":\"2026-11-28T01:%02d:00.000Z\",\"request_id\":\"r%d\",\"key\":\"k%d\","
                "\"method\":\"POST\",\"path\":\"/v1/chat/completions\",\"status\":%d,"
                "\"rule\":\"short\",\"tier\":\"cheap\",\"model\":\"m-small\",\"provider\":\"p\","
                "\"attempts\":1,\"stream\":false,\"cache\":\"%s\",\"prompt_tokens\":100,"
                "\"completion_tokens\":50,\"cached_tokens\":0,\"cost_usd\":0.001,"
                "\"baseline_cost_usd\":0.004,\"savings_usd\":0.003,\"cost_estimated\":false,"
                "\"total_ms\":%d,\"upstream_ms\":%d,\"ttfb_ms\":null,\"overhead_ms\":0.2,"
                "\"tags\":[],\"failovers\":[]}\n",
                i, i, i % 2 ? 2 : 1, i <= 18 ? 200 : 500,
                i <= 5 ? "HIT" : i <= 15 ? "MISS" : "BYPASS", i, i);
    fprintf(f, "this is not json\n");
    fprintf(f, "{\"time\":\"2026-11-28T02:00:00Z\",\"status\":\n");
    fprintf(f, "\n   \n");
    fprintf(f, "[1,2,3]\n");
    fprintf(f, "{\"status\":200} trailing\n");
    for (int i = 0; i < 4; i++)
        fprintf(f,
                "{\"time\":\"2026-11-28T03:%02d:00Z\",\"key\":\"k3\",\"status\":200,"
                "\"tier\":\"premium\",\"model\":\"m-big\",\"cache\":\"MISS\","
                "\"prompt_tokens\":1000,\"completion_tokens\":null,\"cost_usd\":%s,"
                "\"baseline_cost_usd\":0.01,\"total_ms\":%s,\"failovers\":[{\"from\":\"a\","
                "\"to\":\"m-big\",\"reason\":\"timeout\"}]}\n",
                i, i < 3 ? "0.01" : "null", i == 0 ? "100" : i == 1 ? "300" : i == 2 ? "200" : "null");
    fprintf(f, "{\"time\":\"2026-11-28T03:05:00Z\",\"key\":\"k3\",\"status\":502,\"tier\":\"premium\","
               "\"model\":\"-\",\"cache\":\"BYPASS\",\"prompt_tokens\":null,\"cost_usd\":null,"
               "\"baseline_cost_usd\":null,\"total_ms\":50}");
    /* no newline at the end: the last line still counts */
    assert_int_equal(fclose(f), 0);
    return 0;
}

static int remove_log(void **state)
{
    (void)state;
    unlink(log_path);
    return 0;
}

static report_t *compute(const report_opts_t *o)
{
    const char *paths[] = {log_path};
    report_t *r = report_compute(paths, 1, o, stderr);
    assert_non_null(r);
    return r;
}

static void test_parse_time(void **state)
{
    int64_t ms, ms2;
    (void)state;
    assert_int_equal(report_parse_time("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(report_parse_time("1970-01-02", &ms), 0);
    assert_int_equal(ms, 86400000);
    assert_int_equal(report_parse_time("1970-01-01T00:00:01.123456Z", &ms), 0);
    assert_int_equal(ms, 1123);
    assert_int_equal(report_parse_time("1970-01-01T00:01", &ms), 0);
    assert_int_equal(ms, 60000);
    assert_int_equal(report_parse_time("2026-11-28T04:00:00+01:00", &ms), 0);
    assert_int_equal(report_parse_time("2026-11-28T03:00:00Z", &ms2), 0);
    assert_true(ms == ms2);
    assert_int_equal(report_parse_time("2024-02-29T00:00:00Z", &ms), 0);
    assert_int_equal(report_parse_time("2026-02-29T00:00:00Z", &ms), -1);
    assert_int_equal(report_parse_time("2026-13-01", &ms), -1);
    assert_int_equal(report_parse_time("2026-11-28T25:00:00Z", &ms), -1);
    assert_int_equal(report_parse_time("2026-11-28T02:00:00Zjunk", &ms), -1);
    assert_int_equal(report_parse_time("yesterday", &ms), -1);
    assert_int_equal(report_parse_time("", &ms), -1);
}

static void test_aggregates(void **state)
{
    report_t *r = compute(NULL);
    const report_row_t *row;
    (void)state;

    assert_int_equal(r->malformed, 4);
    assert_int_equal(r->lines, 29);
    assert_int_equal(r->filtered, 0);
    assert_int_equal(r->n_rows, 3);

    row = &r->rows[0];
    assert_string_equal(row->name, "cheap");
    assert_string_equal(row->model, "m-small");
    assert_int_equal(row->requests, 20);
    assert_int_equal(row->succeeded, 18);
    assert_near(row->success_rate, 0.9);
    assert_int_equal(row->prompt_tokens, 2000);
    assert_int_equal(row->completion_tokens, 1000);
    assert_near(row->cost_usd, 0.02);
    assert_near(row->baseline_cost_usd, 0.08);
    assert_near(row->savings_pct, 75.0);
    assert_near(row->cost_per_success, 0.02 / 18);
    assert_int_equal(row->latency_count, 20);
    assert_near(row->p50_ms, 10);
    assert_near(row->p95_ms, 19);
    assert_int_equal(row->cache_hits, 5);
    assert_int_equal(row->cache_lookups, 15);
    assert_near(row->cache_hit_rate, 1.0 / 3);

    /* "-" sorts before "m-big" */
    row = &r->rows[1];
    assert_string_equal(row->name, "premium");
    assert_string_equal(row->model, "-");
    assert_int_equal(row->requests, 1);
    assert_int_equal(row->succeeded, 0);
    assert_near(row->success_rate, 0);
    assert_true(isnan(row->cost_per_success));
    assert_true(isnan(row->savings_pct));
    assert_true(isnan(row->cache_hit_rate));
    assert_near(row->p50_ms, 50);

    row = &r->rows[2];
    assert_string_equal(row->model, "m-big");
    assert_int_equal(row->requests, 4);
    assert_int_equal(row->succeeded, 4);
    assert_int_equal(row->prompt_tokens, 4000);
    assert_int_equal(row->completion_tokens, 0);
    assert_near(row->cost_usd, 0.03);
    assert_near(row->baseline_cost_usd, 0.04);
    /* the entry with an unknown cost is left out of the savings */
    assert_near(row->savings_pct, 0);
    assert_near(row->cost_per_success, 0.0075);
    assert_int_equal(row->latency_count, 3);
    assert_near(row->p50_ms, 200);
    assert_near(row->p95_ms, 300);
    assert_near(row->cache_hit_rate, 0);

    assert_int_equal(r->n_tiers, 2);
    assert_string_equal(r->tiers[0].name, "cheap");
    assert_null(r->tiers[0].model);
    assert_int_equal(r->tiers[0].requests, 20);
    assert_string_equal(r->tiers[1].name, "premium");
    assert_int_equal(r->tiers[1].requests, 5);
    assert_near(r->tiers[1].success_rate, 0.8);
    /* {50, 100, 200, 300} */
    assert_near(r->tiers[1].p50_ms, 100);
    assert_near(r->tiers[1].p95_ms, 300);

    assert_int_equal(r->total.requests, 25);
    assert_int_equal(r->total.succeeded, 22);
    assert_near(r->total.success_rate, 22.0 / 25);
    assert_near(r->total.cost_usd, 0.05);
    /* 1..20, 50, 100, 200, 300: ranks 12 and 23 */
    assert_int_equal(r->total.latency_count, 24);
    assert_near(r->total.p50_ms, 12);
    assert_near(r->total.p95_ms, 200);
    assert_near(r->total.cache_hit_rate, 5.0 / 19);
    report_free(r);
}

static void test_time_filter(void **state)
{
    report_opts_t o;
    report_t *r;
    (void)state;

    memset(&o, 0, sizeof o);
    o.has_since = o.has_until = true;
    assert_int_equal(report_parse_time("2026-11-28T01:10:00Z", &o.since_ms), 0);
    assert_int_equal(report_parse_time("2026-11-28T03:00:00Z", &o.until_ms), 0);
    r = compute(&o);
    /* minutes 10..20 of the cheap tier; --until is exclusive */
    assert_int_equal(r->total.requests, 11);
    assert_int_equal(r->filtered, 14);
    assert_int_equal(r->malformed, 4);
    assert_int_equal(r->n_rows, 1);
    assert_near(r->rows[0].p50_ms, 15);
    report_free(r);

    memset(&o, 0, sizeof o);
    o.has_since = true;
    assert_int_equal(report_parse_time("2026-11-28T04:00:00+01:00", &o.since_ms), 0);
    r = compute(&o);
    assert_int_equal(r->total.requests, 5);
    assert_int_equal(r->n_tiers, 1);
    assert_string_equal(r->tiers[0].name, "premium");
    report_free(r);
}

static void test_by_key(void **state)
{
    report_opts_t o;
    report_t *r;
    (void)state;

    memset(&o, 0, sizeof o);
    o.by_key = true;
    r = compute(&o);
    assert_int_equal(r->n_rows, 3);
    assert_string_equal(r->rows[0].name, "k1");
    assert_null(r->rows[0].model);
    assert_int_equal(r->rows[0].requests, 10);
    /* even i (2..20) -> k1; the 500s are i = 19 (k2) and 20 (k1) */
    assert_int_equal(r->rows[0].succeeded, 9);
    assert_string_equal(r->rows[1].name, "k2");
    assert_int_equal(r->rows[1].requests, 10);
    assert_string_equal(r->rows[2].name, "k3");
    assert_int_equal(r->rows[2].requests, 5);
    assert_int_equal(r->rows[2].succeeded, 4);
    /* tier totals are kept whatever the grouping */
    assert_int_equal(r->n_tiers, 2);
    assert_int_equal(r->total.requests, 25);
    report_free(r);
}

/* Many groups exercise the index growing and rehashing. */
static void test_many_groups_and_lines(void **state)
{
    report_t *r = report_new(NULL);
    char line[160];
    (void)state;
    for (int i = 0; i < 500; i++) {
        int n = snprintf(line, sizeof line,
                         "{\"tier\":\"t%d\",\"model\":\"m%d\",\"status\":200,\"total_ms\":%d}",
                         i % 7, i % 50, i);
        assert_int_equal(report_add_line(r, line, (size_t)n), 0);
    }
    assert_int_equal(report_add_line(r, "{\"a\":1}\0{}", 10), -1); /* embedded NUL */
    assert_int_equal(report_add_line(r, "", 0), 0);                 /* blank: ignored */
    report_finish(r);
    /* (i % 7, i % 50) repeats every 350 */
    assert_int_equal(r->n_rows, 350);
    assert_int_equal(r->n_tiers, 7);
    assert_int_equal(r->total.requests, 500);
    assert_int_equal(r->malformed, 1);
    assert_near(r->total.p50_ms, 249);
    assert_near(r->total.p95_ms, 474);
    for (size_t i = 1; i < r->n_rows; i++)
        assert_true(strcmp(r->rows[i - 1].name, r->rows[i].name) < 0 ||
                    (strcmp(r->rows[i - 1].name, r->rows[i].name) == 0 &&
                     strcmp(r->rows[i - 1].model, r->rows[i].model) < 0));
    report_free(r);
}

static char *table_of(const report_t *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    report_print_table(r, f);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void test_table(void **state)
{
    report_t *r = compute(NULL);
    char *text = table_of(r);
    static const char line_small[] = "{\"tier\":\"x\",\"model\":\"y\",\"status\":200,\"cost_usd\":1.5,"
                                     "\"baseline_cost_usd\":3}";
    (void)state;
    assert_non_null(strstr(text, "25 requests"));
    assert_non_null(strstr(text, "TIER"));
    assert_non_null(strstr(text, "MODEL"));
    assert_non_null(strstr(text, "cheap    m-small"));
    assert_non_null(strstr(text, "90.0%"));
    assert_non_null(strstr(text, "$0.020000"));
    assert_non_null(strstr(text, "75.0%"));
    assert_non_null(strstr(text, "33.3%"));
    assert_non_null(strstr(text, "\nTOTAL "));
    assert_non_null(strstr(text, "Per tier:"));
    free(text);
    report_free(r);

    /* >= $1: two decimals */
    r = report_new(NULL);
    assert_int_equal(report_add_line(r, line_small, strlen(line_small)), 0);
    report_finish(r);
    text = table_of(r);
    assert_non_null(strstr(text, "$1.50"));
    assert_non_null(strstr(text, "$3.00"));
    assert_non_null(strstr(text, "50.0%"));
    assert_null(strstr(text, "$1.500000"));
    free(text);
    report_free(r);
}

/* An empty log (or one filtered to nothing) still prints a table. */
static void test_empty(void **state)
{
    report_t *r = report_new(NULL);
    char *text;
    (void)state;
    report_finish(r);
    assert_int_equal(r->n_rows, 0);
    assert_int_equal(r->total.requests, 0);
    assert_true(isnan(r->total.success_rate));
    assert_true(isnan(r->total.p50_ms));
    text = table_of(r);
    assert_non_null(strstr(text, "0 requests"));
    assert_non_null(strstr(text, "TOTAL"));
    free(text);
    report_free(r);
}

static void test_main_errors(void **state)
{
    char *no_file[] = {"report", NULL};
    char *bad_time[] = {"report", "--since", "yesterday", log_path, NULL};
    char *bad_by[] = {"report", "--by", "colour", log_path, NULL};
    char *reversed[] = {"report", "--since", "2026-11-29", "--until", "2026-11-28", log_path, NULL};
    char *missing[] = {"report", "/nonexistent/access.log", NULL};
    (void)state;
    assert_int_equal(report_main(1, no_file), 2);
    assert_int_equal(report_main(4, bad_time), 2);
    assert_int_equal(report_main(4, bad_by), 2);
    assert_int_equal(report_main(6, reversed), 2);
    assert_int_equal(report_main(2, missing), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_aggregates),
        cmocka_unit_test(test_time_filter),
        cmocka_unit_test(test_by_key),
        cmocka_unit_test(test_many_groups_and_lines),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_main_errors),
    };
    return cmocka_run_group_tests(tests, write_log, remove_log);
}
