/* Unit tests for src/budget.c. Local mode, with an injected clock: rpm, tpm,
 * daily and monthly rejections (codes, Retry-After, x-should-retry),
 * reservation and settle arithmetic, threads racing for one budget that
 * cannot overrun it, free models never refused, per-model caps and their
 * daily rollover, the configuration section. Redis mode against a real
 * redis-server started here on a free loopback port: two budget_t sharing
 * one budget, settle through Redis, a model cap seen by another instance,
 * Redis killed (local fallback, counted, no crash), cancel. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "account/budget.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/rds.h"
#include "core/util.h"

#ifndef REDIS_SERVER
#define REDIS_SERVER "/usr/bin/redis-server"
#endif

/* ---- clock ---- */

static int64_t g_now;

static int64_t test_clock(void *arg)
{
    (void)arg;
    return g_now;
}

/* 2024-02-28 12:00:30 UTC */
#define T_FEB28 1709121630LL

static budget_t *new_local(void)
{
    budget_cfg_t bc;
    budget_t *b;
    char err[128];
    budget_cfg_init(&bc);
    b = budget_new(&bc, test_clock, NULL, err, sizeof err);
    budget_cfg_free(&bc);
    assert_non_null(b);
    assert_null(budget_redis_addr(b));
    return b;
}

static auth_key_t mkkey(const char *name)
{
    auth_key_t k;
    memset(&k, 0, sizeof k);
    k.name = (char *)name;
    k.usable = true;
    return k;
}

static budget_verdict_t admit(budget_t *b, const auth_key_t *k, double usd, uint32_t tok)
{
    budget_verdict_t v;
    assert_int_equal(budget_admit(b, NULL, RDS_WAIT_ANY, k, usd, tok, &v, NULL, NULL, NULL), 0);
    return v;
}

/* ---- local mode ---- */

static void test_rpm(void **state)
{
    budget_t *b = new_local();
    auth_key_t k = mkkey("rpm-key");
    budget_verdict_t v;
    budget_stats_t st;
    (void)state;
    k.rpm = 3;
    g_now = T_FEB28; /* 30 s into the minute */
    for (int i = 0; i < 3; i++) {
        v = admit(b, &k, 0, 10);
        assert_int_equal(v.code, BUDGET_OK);
        assert_true(v.ticket.active);
    }
    v = admit(b, &k, 0, 10);
    assert_int_equal(v.code, BUDGET_RPM);
    assert_int_equal(v.retry_after_s, 30);
    assert_true(v.should_retry);
    assert_false(v.ticket.active);
    assert_string_equal(budget_code_name(v.code), "rate_limit_rpm");
    g_now += 29;
    v = admit(b, &k, 0, 10);
    assert_int_equal(v.code, BUDGET_RPM);
    assert_int_equal(v.retry_after_s, 1);
    g_now += 1; /* next minute */
    v = admit(b, &k, 0, 10);
    assert_int_equal(v.code, BUDGET_OK);
    budget_get_stats(b, &st);
    assert_int_equal(st.admitted, 4);
    assert_int_equal(st.rejected[BUDGET_RPM], 2);
    assert_int_equal(st.redis_fallbacks, 0);
    budget_free(b);
}

static void test_tpm_and_settle_tokens(void **state)
{
    budget_t *b = new_local();
    auth_key_t k = mkkey("tpm-key");
    budget_verdict_t v1, v2;
    (void)state;
    k.tpm = 1000;
    g_now = T_FEB28 + 10; /* 40 s into the minute */
    v1 = admit(b, &k, 0, 600);
    assert_int_equal(v1.code, BUDGET_OK);
    v2 = admit(b, &k, 0, 600);
    assert_int_equal(v2.code, BUDGET_TPM);
    assert_int_equal(v2.retry_after_s, 20);
    assert_true(v2.should_retry);
    /* the first used fewer tokens than reserved */
    budget_settle(b, NULL, &k, &v1.ticket, 0, 100);
    assert_false(v1.ticket.active);
    budget_settle(b, NULL, &k, &v1.ticket, 0, 100); /* second settle: no-op */
    v2 = admit(b, &k, 0, 600);
    assert_int_equal(v2.code, BUDGET_OK);
    /* a request larger than the limit passes in an empty window only */
    g_now += 20;
    v1 = admit(b, &k, 0, 5000);
    assert_int_equal(v1.code, BUDGET_OK);
    v1 = admit(b, &k, 0, 1);
    assert_int_equal(v1.code, BUDGET_TPM);
    budget_free(b);
}

static void test_daily_reserve_settle(void **state)
{
    budget_t *b = new_local();
    auth_key_t k = mkkey("daily-key");
    budget_verdict_t held[10], v;
    int n = 0;
    (void)state;
    k.daily_usd = 1.0;
    g_now = T_FEB28;
    for (;;) {
        v = admit(b, &k, 0.3, 0);
        if (v.code != BUDGET_OK)
            break;
        assert_true(n < 10);
        held[n++] = v;
    }
    assert_int_equal(n, 3); /* 0.9 reserved; 1.2 would overrun */
    assert_int_equal(v.code, BUDGET_DAILY);
    assert_false(v.should_retry);
    assert_int_equal(v.retry_after_s, 86400 - (T_FEB28 % 86400)); /* 11:59:30 to midnight */
    assert_string_equal(budget_code_name(v.code), "daily_budget_exceeded");
    /* free models are never refused by a USD budget */
    v = admit(b, &k, 0, 0);
    assert_int_equal(v.code, BUDGET_OK);
    /* actual lower than reserved gives the difference back */
    budget_settle(b, NULL, &k, &held[0].ticket, 0.05, 0); /* 0.65 now */
    v = admit(b, &k, 0.3, 0);                           /* 0.95 */
    assert_int_equal(v.code, BUDGET_OK);
    v = admit(b, &k, 0.3, 0);
    assert_int_equal(v.code, BUDGET_DAILY);
    /* actual higher than reserved counts in full */
    budget_settle(b, NULL, &k, &held[1].ticket, 0.35, 0); /* 1.0 */
    v = admit(b, &k, 0.01, 0);
    assert_int_equal(v.code, BUDGET_DAILY);
    /* unknown actual: the reservation stands */
    budget_settle(b, NULL, &k, &held[2].ticket, -1, 0);
    v = admit(b, &k, 0.01, 0);
    assert_int_equal(v.code, BUDGET_DAILY);
    /* next UTC day */
    g_now = (T_FEB28 / 86400 + 1) * 86400;
    v = admit(b, &k, 0.3, 0);
    assert_int_equal(v.code, BUDGET_OK);
    /* settling yesterday's ticket does not touch today's counter */
    budget_settle(b, NULL, &k, &held[0].ticket, 0, 0); /* inactive already */
    budget_free(b);
}

static void test_monthly(void **state)
{
    budget_t *b = new_local();
    auth_key_t k = mkkey("monthly-key");
    budget_verdict_t v;
    (void)state;
    k.monthly_usd = 2.0;
    g_now = T_FEB28;
    v = admit(b, &k, 1.5, 0);
    assert_int_equal(v.code, BUDGET_OK);
    budget_settle(b, NULL, &k, &v.ticket, 1.5, 0);
    g_now += 86400; /* Feb 29 (2024 is a leap year): same month */
    v = admit(b, &k, 1.0, 0);
    assert_int_equal(v.code, BUDGET_MONTHLY);
    assert_false(v.should_retry);
    /* 2024-03-01 00:00:00 UTC is 1709251200 */
    assert_int_equal(v.retry_after_s, 1709251200LL - g_now);
    assert_string_equal(budget_code_name(v.code), "monthly_budget_exceeded");
    g_now = 1709251200LL;
    v = admit(b, &k, 1.0, 0);
    assert_int_equal(v.code, BUDGET_OK);
    budget_free(b);
}

static void test_order_and_unlimited(void **state)
{
    budget_t *b = new_local();
    auth_key_t k = mkkey("all");
    auth_key_t none = mkkey("none");
    budget_verdict_t v;
    (void)state;
    k.rpm = 1;
    k.daily_usd = 0.1;
    g_now = T_FEB28;
    v = admit(b, &k, 1.0, 0); /* over the budget */
    assert_int_equal(v.code, BUDGET_DAILY);
    v = admit(b, &k, 0.05, 0);
    assert_int_equal(v.code, BUDGET_OK);
    v = admit(b, &k, 0.05, 0); /* rpm is checked first */
    assert_int_equal(v.code, BUDGET_RPM);
    /* no limits / no key: admitted, nothing to settle */
    for (int i = 0; i < 100; i++) {
        v = admit(b, &none, 100, 1000000);
        assert_int_equal(v.code, BUDGET_OK);
        assert_false(v.ticket.active);
        v = admit(b, NULL, 100, 1000000);
        assert_int_equal(v.code, BUDGET_OK);
        assert_false(v.ticket.active);
    }
    budget_free(b);
}

typedef struct racer {
    budget_t *b;
    const auth_key_t *k;
    int admitted;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    for (;;) {
        budget_verdict_t v;
        budget_admit(r->b, NULL, RDS_WAIT_ANY, r->k, 0.001, 1, &v, NULL, NULL, NULL);
        if (v.code != BUDGET_OK)
            break;
        r->admitted++;
    }
    return NULL;
}

static void test_threads_cannot_overrun(void **state)
{
    budget_t *b = new_local();
    auth_key_t k = mkkey("shared");
    pthread_t th[8];
    racer_t rc[8];
    int total = 0;
    (void)state;
    k.daily_usd = 5.0;
    g_now = T_FEB28;
    for (int i = 0; i < 8; i++) {
        rc[i] = (racer_t){.b = b, .k = &k};
        assert_int_equal(pthread_create(&th[i], NULL, race, &rc[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += rc[i].admitted;
    }
    assert_int_equal(total, 5000); /* exactly the budget, never more */
    budget_free(b);
}

static void test_model_cap(void **state)
{
    budget_t *b = new_local();
    budget_stats_t st;
    (void)state;
    g_now = T_FEB28;
    assert_true(budget_model_allowed(b, "m1", 1.0));
    budget_model_spent(b, NULL, "m1", 1.0, 0.6);
    assert_true(budget_model_allowed(b, "m1", 1.0));
    budget_model_spent(b, NULL, "m1", 1.0, 0.5);
    assert_false(budget_model_allowed(b, "m1", 1.0));
    assert_true(budget_model_allowed(b, "m2", 1.0));
    assert_true(budget_model_allowed(b, "m1", 0)); /* no cap */
    budget_model_spent(b, NULL, "m3", 0, 50);    /* no cap: not counted */
    assert_true(budget_model_allowed(b, "m3", 0.01));
    g_now = (T_FEB28 / 86400 + 1) * 86400; /* midnight UTC */
    assert_true(budget_model_allowed(b, "m1", 1.0));
    budget_get_stats(b, &st);
    assert_int_equal(st.model_skips, 1);
    budget_free(b);
}

static void test_estimate_and_error_body(void **state)
{
    budget_t *b = new_local();
    cfg_model_t m = {.name = (char *)"m", .input_per_mtok = 2.0, .output_per_mtok = 8.0};
    auth_key_t k = mkkey("team-a");
    budget_verdict_t v = {.code = BUDGET_RPM, .retry_after_s = 12};
    size_t len;
    char *body;
    (void)state;
    /* 1000 prompt tokens at $2/M + 512 default output at $8/M */
    assert_true(fabs(budget_estimate_usd(b, &m, 1000, 0) - (0.002 + 512 * 8e-6)) < 1e-12);
    assert_true(fabs(budget_estimate_usd(b, &m, 1000, 100) - (0.002 + 0.0008)) < 1e-12);
    assert_int_equal(budget_default_max_output_tokens(b), 512);
    k.rpm = 60;
    body = budget_error_body(&v, &k, &len);
    assert_int_equal(strlen(body), len);
    assert_non_null(strstr(body, "\"code\":\"rate_limit_rpm\""));
    assert_non_null(strstr(body, "\"param\":null"));
    assert_non_null(strstr(body, "team-a"));
    free(body);
    v.code = BUDGET_DAILY;
    body = budget_error_body(&v, &k, &len);
    assert_non_null(strstr(body, "\"code\":\"daily_budget_exceeded\""));
    assert_non_null(strstr(body, "\"type\":\"insufficient_quota\""));
    free(body);
    budget_free(b);
}

/* ---- configuration ---- */

typedef struct ydoc {
    yaml_document_t doc;
    char err[1024];
    ywalk_t c;
} ydoc_t;

static yaml_node_t *yload(ydoc_t *d, const char *yaml)
{
    yaml_parser_t p;
    memset(d, 0, sizeof *d);
    assert_true(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, strlen(yaml));
    assert_true(yaml_parser_load(&p, &d->doc));
    yaml_parser_delete(&p);
    d->c.file = "t.yaml";
    d->c.doc = &d->doc;
    d->c.err = d->err;
    d->c.errlen = sizeof d->err;
    return yaml_document_get_root_node(&d->doc);
}

static void test_cfg_parse(void **state)
{
    ydoc_t d;
    budget_cfg_t bc;
    double cap = -1;
    (void)state;
    budget_cfg_init(&bc);
    assert_true(budget_cfg_parse(&d.c, yload(&d, "redis_url: \"redis://127.0.0.1:6390/2\"\n"
                                                 "key_prefix: \"x:\"\n"
                                                 "default_max_output_tokens: 1024\n"
                                                 "redis_timeout_ms: 80\n"),
                                 &bc));
    assert_string_equal(bc.redis_url, "redis://127.0.0.1:6390/2");
    assert_string_equal(bc.key_prefix, "x:");
    assert_int_equal(bc.default_max_output_tokens, 1024);
    assert_int_equal(bc.redis_timeout_ms, 80);
    {
        char err[128];
        budget_t *b = budget_new(&bc, NULL, NULL, err, sizeof err);
        assert_non_null(b);
        assert_non_null(budget_redis_addr(b));
        assert_int_equal(budget_redis_addr(b)->port, 6390);
        assert_int_equal(budget_redis_addr(b)->db, 2);
        assert_int_equal(budget_redis_timeout_ms(b), 80);
        budget_free(b); /* never connected: nothing pending */
    }
    budget_cfg_free(&bc);
    yaml_document_delete(&d.doc);

    budget_cfg_init(&bc);
    assert_false(budget_cfg_parse(&d.c, yload(&d, "redis_url: \"redis://db.example:6379\"\n"
                                                  "bogus: 1\n"),
                                  &bc));
    assert_int_equal(d.c.nerr, 2);
    assert_non_null(strstr(d.err, "bogus"));
    budget_cfg_free(&bc);
    yaml_document_delete(&d.doc);

    assert_true(budget_parse_model_cap(&d.c, yload(&d, "2.5\n"), "models.m.daily_cap_usd", &cap));
    assert_true(cap == 2.5);
    yaml_document_delete(&d.doc);
    assert_false(budget_parse_model_cap(&d.c, yload(&d, "-1\n"), "models.m.daily_cap_usd", &cap));
    yaml_document_delete(&d.doc);
}

/* ---- Redis mode ---- */

static pid_t g_srv_pid;
static unsigned g_srv_port;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static unsigned free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static redisReply *srv_cmd(const char *fmt, ...)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", (int)g_srv_port, tv);
    redisReply *rep = NULL;
    va_list ap;
    if (c == NULL)
        return NULL;
    if (c->err == 0) {
        va_start(ap, fmt);
        rep = redisvCommand(c, fmt, ap);
        va_end(ap);
    }
    redisFree(c);
    return rep;
}

/* Starts redis-server on port (0: a free one) and waits until it answers. */
static void srv_start_on(unsigned port0)
{
    if (access(REDIS_SERVER, X_OK) != 0)
        fail_msg("%s not found: the Redis budget tests need a real server; install the "
                 "redis-server package (sh config/install-deps.sh)",
                 REDIS_SERVER);
    for (int attempt = 0; attempt < 5; attempt++) {
        char port[16];
        uint64_t deadline;
        g_srv_port = port0 ? port0 : free_port();
        snprintf(port, sizeof port, "%u", g_srv_port);
        g_srv_pid = fork();
        assert_true(g_srv_pid >= 0);
        if (g_srv_pid == 0) {
            int null = open("/dev/null", O_RDWR);
            if (null >= 0) {
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
            }
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            execl(REDIS_SERVER, REDIS_SERVER, "--port", port, "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", (char *)NULL);
            _exit(127);
        }
        deadline = util_now_ms() + 5000;
        while (util_now_ms() < deadline) {
            redisReply *rep;
            if (waitpid(g_srv_pid, NULL, WNOHANG) == g_srv_pid) {
                g_srv_pid = 0;
                break;
            }
            rep = srv_cmd("PING");
            if (rep != NULL) {
                freeReplyObject(rep);
                return;
            }
            sleep_ms(10);
        }
        if (g_srv_pid > 0) {
            kill(g_srv_pid, SIGKILL);
            waitpid(g_srv_pid, NULL, 0);
            g_srv_pid = 0;
        }
    }
    fail_msg("redis-server did not start");
}

static void srv_start(void)
{
    srv_start_on(0);
}

static void srv_kill(void)
{
    if (g_srv_pid > 0) {
        kill(g_srv_pid, SIGKILL);
        waitpid(g_srv_pid, NULL, 0);
        g_srv_pid = 0;
    }
}

static int teardown(void **state)
{
    (void)state;
    srv_kill();
    return 0;
}

/* a loop with one rds_t per budget instance */
typedef struct rctx {
    loop_t *loop;
    loop_timer_t deadline;
    bool (*until)(void *);
    void *arg;
} rctx_t;

static bool hook(loop_t *loop, void *arg, int64_t *timeout_ms)
{
    rctx_t *t = arg;
    *timeout_ms = 5;
    if (t->until && t->until(t->arg))
        loop_stop(loop);
    return false;
}

static void on_deadline(loop_t *loop, loop_timer_t *tm)
{
    (void)tm;
    loop_stop(loop);
}

static bool run_until(rctx_t *t, bool (*pred)(void *), void *arg, unsigned max_ms)
{
    t->until = pred;
    t->arg = arg;
    loop_timer_start(t->loop, &t->deadline, max_ms);
    loop_run(t->loop);
    loop_timer_stop(t->loop, &t->deadline);
    t->until = NULL;
    return pred ? pred(arg) : true;
}

static void rctx_init(rctx_t *t)
{
    memset(t, 0, sizeof *t);
    t->loop = loop_new();
    assert_non_null(t->loop);
    t->deadline.cb = on_deadline;
    t->deadline.arg = t;
    loop_set_hook(t->loop, hook, t);
}

static budget_t *new_redis(const char *prefix)
{
    budget_cfg_t bc;
    budget_t *b;
    char err[128], url[64];
    budget_cfg_init(&bc);
    snprintf(url, sizeof url, "redis://127.0.0.1:%u/0", g_srv_port);
    bc.redis_url = xstrdup(url);
    if (prefix) {
        free(bc.key_prefix);
        bc.key_prefix = xstrdup(prefix);
    }
    bc.redis_timeout_ms = 200;
    b = budget_new(&bc, test_clock, NULL, err, sizeof err);
    budget_cfg_free(&bc);
    assert_non_null(b);
    return b;
}

static bool connected(void *arg)
{
    rds_stats_t st;
    rds_get_stats(arg, &st);
    return st.connected;
}

static rds_t *connect_rds(rctx_t *t, budget_t *b)
{
    rds_t *r = rds_new(t->loop, budget_redis_addr(b), budget_redis_timeout_ms(b));
    assert_non_null(r);
    assert_true(run_until(t, connected, r, 3000));
    return r;
}

static bool g_in_call;

typedef struct ares {
    int calls;
    budget_verdict_t v;
} ares_t;

static void on_admit(void *arg, const budget_verdict_t *v)
{
    ares_t *a = arg;
    assert_false(g_in_call);
    a->calls++;
    a->v = *v;
}

static bool ares_called(void *arg)
{
    return ((ares_t *)arg)->calls > 0;
}

static budget_verdict_t radmit(rctx_t *t, budget_t *b, rds_t *r, const auth_key_t *k, double usd,
                               uint32_t tok)
{
    ares_t a = {0};
    budget_verdict_t v;
    budget_op_t *op = NULL;
    int rc;
    g_in_call = true;
    rc = budget_admit(b, r, RDS_WAIT_ANY, k, usd, tok, &v, on_admit, &a, &op);
    g_in_call = false;
    assert_int_equal(rc, BUDGET_PENDING);
    assert_non_null(op);
    assert_int_equal(a.calls, 0);
    assert_true(run_until(t, ares_called, &a, 3000));
    assert_int_equal(a.calls, 1);
    return a.v;
}

/* Runs the loop until fire-and-forget commands are answered. */
static bool no_redis_pending(void *arg)
{
    rds_stats_t st;
    rds_get_stats(arg, &st);
    return st.in_flight == 0;
}

static void drain(rctx_t *t, rds_t *r)
{
    sleep_ms(1);
    assert_true(run_until(t, no_redis_pending, r, 3000));
    run_until(t, NULL, NULL, 20);
}

static void test_redis_shared_budget(void **state)
{
    rctx_t t;
    budget_t *b1, *b2;
    rds_t *r1, *r2;
    auth_key_t k = mkkey("team");
    budget_verdict_t held[8], v;
    int n = 0;
    budget_stats_t st1, st2;
    (void)state;
    srv_start();
    rctx_init(&t);
    g_now = T_FEB28;
    b1 = new_redis(NULL);
    b2 = new_redis(NULL);
    r1 = connect_rds(&t, b1);
    r2 = connect_rds(&t, b2);
    k.daily_usd = 1.0;
    /* alternate instances: one budget for both */
    for (int i = 0;; i++) {
        v = i % 2 ? radmit(&t, b2, r2, &k, 0.3, 10) : radmit(&t, b1, r1, &k, 0.3, 10);
        if (v.code != BUDGET_OK)
            break;
        assert_true(v.ticket.redis);
        assert_true(n < 8);
        held[n++] = v;
    }
    assert_int_equal(n, 3);
    assert_int_equal(v.code, BUDGET_DAILY);
    assert_false(v.should_retry);
    assert_int_equal(v.retry_after_s, 86400 - T_FEB28 % 86400);
    {
        redisReply *rep = srv_cmd("GET llmrouter:budget:key:team:day:20240228");
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_STRING);
        assert_string_equal(rep->str, "900000000");
        freeReplyObject(rep);
        rep = srv_cmd("TTL llmrouter:budget:key:team:month:202402");
        assert_non_null(rep);
        assert_true(rep->integer > 0);
        freeReplyObject(rep);
    }
    /* instance 1 settles lower: instance 2 may spend the difference */
    budget_settle(b1, r1, &k, &held[0].ticket, 0.0, 5);
    drain(&t, r1);
    v = radmit(&t, b2, r2, &k, 0.3, 10);
    assert_int_equal(v.code, BUDGET_OK);
    v = radmit(&t, b1, r1, &k, 0.3, 10);
    assert_int_equal(v.code, BUDGET_DAILY);

    /* rpm across both */
    {
        auth_key_t q = mkkey("rpm");
        q.rpm = 2;
        assert_int_equal(radmit(&t, b1, r1, &q, 0, 1).code, BUDGET_OK);
        assert_int_equal(radmit(&t, b2, r2, &q, 0, 1).code, BUDGET_OK);
        v = radmit(&t, b1, r1, &q, 0, 1);
        assert_int_equal(v.code, BUDGET_RPM);
        assert_int_equal(v.retry_after_s, 30);
        assert_true(v.should_retry);
        g_now += 30;
        assert_int_equal(radmit(&t, b2, r2, &q, 0, 1).code, BUDGET_OK);
    }

    /* a model cap reached through instance 1 is seen by instance 2 when it
     * settles on that model */
    budget_model_spent(b1, r1, "m", 1.0, 0.7);
    drain(&t, r1);
    assert_true(budget_model_allowed(b2, "m", 1.0));
    budget_model_spent(b2, r2, "m", 1.0, 0.4);
    drain(&t, r2);
    assert_false(budget_model_allowed(b2, "m", 1.0));
    budget_model_spent(b1, r1, "m", 1.0, 0.0);
    drain(&t, r1);
    assert_false(budget_model_allowed(b1, "m", 1.0));

    budget_get_stats(b1, &st1);
    budget_get_stats(b2, &st2);
    assert_int_equal(st1.redis_fallbacks + st2.redis_fallbacks, 0);
    assert_false(st1.redis_down);
    assert_true(st1.redis_ok > 0);

    /* cancel: the callback never runs */
    {
        ares_t a = {0};
        budget_op_t *op;
        assert_int_equal(budget_admit(b1, r1, RDS_WAIT_ANY, &k, 0.1, 1, &v, on_admit, &a, &op), BUDGET_PENDING);
        budget_cancel(b1, op);
        run_until(&t, NULL, NULL, 50);
        assert_int_equal(a.calls, 0);
    }
    /* a key without limits needs no round trip */
    {
        auth_key_t free_key = mkkey("free");
        assert_int_equal(budget_admit(b1, r1, RDS_WAIT_ANY, &free_key, 1, 1, &v, on_admit, NULL, NULL), 0);
        assert_int_equal(v.code, BUDGET_OK);
    }
    drain(&t, r1);
    drain(&t, r2);
    rds_free(r1);
    rds_free(r2);
    budget_free(b1);
    budget_free(b2);
    loop_free(t.loop);
    srv_kill();
}

/* The request's Redis wait: 0 left decides locally at once, without
 * sending anything, and is not an outage; a short wait bounds the
 * admission below the client's timeout. */
static void test_redis_wait_bound(void **state)
{
    rctx_t t;
    budget_t *b;
    rds_t *r;
    auth_key_t k = mkkey("wb");
    budget_verdict_t v;
    budget_stats_t st;
    rds_stats_t rs;
    ares_t a = {0};
    budget_op_t *op = NULL;
    uint64_t t0;
    (void)state;
    srv_start();
    rctx_init(&t);
    g_now = T_FEB28;
    b = new_redis("wb:");
    r = connect_rds(&t, b);
    assert_true(run_until(&t, no_redis_pending, r, 3000));
    k.rpm = 100;
    assert_int_equal(budget_admit(b, r, 0, &k, 0, 1, &v, on_admit, &a, &op), BUDGET_PENDING);
    t0 = util_now_ms();
    assert_true(run_until(&t, ares_called, &a, 3000));
    assert_true(util_now_ms() - t0 < 100);
    assert_int_equal(a.v.code, BUDGET_OK);
    assert_false(a.v.ticket.redis); /* decided locally */
    rds_get_stats(r, &rs);
    assert_int_equal(rs.skipped, 1);
    budget_get_stats(b, &st);
    assert_false(st.redis_down); /* a spent wait is no outage */
    assert_int_equal(st.redis_outages, 0);
    assert_int_equal(st.redis_fallbacks, 1);
    /* a stopped server: the admission ends after the 30 ms asked for, not
     * the client's 200 */
    kill(g_srv_pid, SIGSTOP);
    memset(&a, 0, sizeof a);
    assert_int_equal(budget_admit(b, r, 30, &k, 0, 1, &v, on_admit, &a, &op), BUDGET_PENDING);
    t0 = util_now_ms();
    assert_true(run_until(&t, ares_called, &a, 3000));
    assert_true(util_now_ms() - t0 >= 25);
    assert_true(util_now_ms() - t0 < 180);
    assert_int_equal(a.v.code, BUDGET_OK);
    assert_false(a.v.ticket.redis);
    kill(g_srv_pid, SIGCONT);
    rds_free(r);
    budget_free(b);
    loop_free(t.loop);
    srv_kill();
}

static void test_redis_killed_falls_back(void **state)
{
    rctx_t t;
    budget_t *b;
    rds_t *r;
    auth_key_t k = mkkey("fb");
    budget_verdict_t v;
    budget_stats_t st;
    (void)state;
    srv_start();
    rctx_init(&t);
    g_now = T_FEB28;
    b = new_redis("fb:");
    r = connect_rds(&t, b);
    k.rpm = 3;
    v = radmit(&t, b, r, &k, 0, 1);
    assert_int_equal(v.code, BUDGET_OK);
    assert_true(v.ticket.redis);
    srv_kill();
    /* the admissions Redis granted are mirrored locally: 2 left */
    v = radmit(&t, b, r, &k, 0, 1);
    assert_int_equal(v.code, BUDGET_OK);
    assert_false(v.ticket.redis);
    budget_settle(b, r, &k, &v.ticket, 0, 1); /* local only, no crash */
    v = radmit(&t, b, r, &k, 0, 1);
    assert_int_equal(v.code, BUDGET_OK);
    v = radmit(&t, b, r, &k, 0, 1);
    assert_int_equal(v.code, BUDGET_RPM);
    budget_model_spent(b, r, "m", 1.0, 2.0);
    run_until(&t, NULL, NULL, 300);
    assert_false(budget_model_allowed(b, "m", 1.0));
    budget_get_stats(b, &st);
    assert_true(st.redis_down);
    assert_int_equal(st.redis_outages, 1); /* logged once */
    assert_true(st.redis_fallbacks >= 3);
    assert_int_equal(st.rejected[BUDGET_RPM], 1);
    /* Redis back (same port): shared counting resumes */
    srv_start_on(g_srv_port);
    {
        uint64_t deadline = util_now_ms() + 5000;
        for (;;) {
            v = radmit(&t, b, r, &k, 0, 1);
            if (v.ticket.redis || v.code == BUDGET_OK || util_now_ms() > deadline)
                break;
            run_until(&t, NULL, NULL, 100);
        }
        /* new server, empty counters: admitted through Redis */
        g_now += 60;
        deadline = util_now_ms() + 5000;
        do {
            v = radmit(&t, b, r, &k, 0, 1);
            if (!v.ticket.redis)
                run_until(&t, NULL, NULL, 100);
        } while (!v.ticket.redis && util_now_ms() < deadline);
        assert_true(v.ticket.redis);
    }
    budget_get_stats(b, &st);
    assert_false(st.redis_down);
    rds_free(r); /* pending operations, if any, are freed by budget_free */
    budget_free(b);
    loop_free(t.loop);
    srv_kill();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpm),
        cmocka_unit_test(test_tpm_and_settle_tokens),
        cmocka_unit_test(test_daily_reserve_settle),
        cmocka_unit_test(test_monthly),
        cmocka_unit_test(test_order_and_unlimited),
        cmocka_unit_test(test_threads_cannot_overrun),
        cmocka_unit_test(test_model_cap),
        cmocka_unit_test(test_estimate_and_error_body),
        cmocka_unit_test(test_cfg_parse),
        cmocka_unit_test_teardown(test_redis_shared_budget, teardown),
        cmocka_unit_test_teardown(test_redis_wait_bound, teardown),
        cmocka_unit_test_teardown(test_redis_killed_falls_back, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
