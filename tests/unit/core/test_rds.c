/* Unit tests for src/rds.c against a real redis-server that each test
 * starts itself on a free loopback port (or a unix socket) and kills at the
 * end: URL parsing, hits, misses, binary values, TTL, a server that is not
 * there, one killed and restarted, one made slow with DEBUG SLEEP, cancel,
 * free with commands pending, the in-flight cap, AUTH/SELECT and the
 * generic command form. Every loop run has a deadline, so a broken client
 * fails instead of hanging. Without /usr/bin/redis-server the tests FAIL
 * with a message saying so (they never skip). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/rds.h"
#include "core/util.h"

#ifndef REDIS_SERVER /* -DREDIS_SERVER=... to try another build */
#define REDIS_SERVER "/usr/bin/redis-server"
#endif
#define MAX_SERVERS 4

/* ---- redis-server processes ---- */

typedef struct srv {
    pid_t pid;
    unsigned port;       /* 0 with a unix socket */
    char sock[108];      /* "" with TCP */
    const char *password; /* requirepass, or NULL */
} srv_t;

/* Servers live here, not on a test's stack, so that the teardown can kill
 * them after a failed assertion left the test early. */
static srv_t g_srv[MAX_SERVERS];
static size_t g_n_srv;

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

/* Redis 7 refuses DEBUG unless enabled; older servers reject the option. */
static int redis_major(void)
{
    static int major = -1;
    char line[256];
    FILE *p;
    if (major >= 0)
        return major;
    major = 0;
    p = popen(REDIS_SERVER " --version", "r");
    if (p == NULL)
        return major;
    if (fgets(line, sizeof line, p) != NULL) {
        const char *v = strstr(line, "v=");
        if (v != NULL)
            major = (int)strtol(v + 2, NULL, 10);
    }
    pclose(p);
    return major;
}

static void require_redis_server(void)
{
    if (access(REDIS_SERVER, X_OK) != 0)
        fail_msg("%s not found: the Redis client tests need a real server; install the "
                 "redis-server package (sh config/install-deps.sh)",
                 REDIS_SERVER);
}

static srv_t *srv_new(void)
{
    srv_t *s;
    assert_true(g_n_srv < MAX_SERVERS);
    s = &g_srv[g_n_srv++];
    memset(s, 0, sizeof *s);
    return s;
}

static bool srv_ping(const srv_t *s)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    redisContext *c = s->sock[0] ? redisConnectUnixWithTimeout(s->sock, tv)
                                 : redisConnectWithTimeout("127.0.0.1", (int)s->port, tv);
    redisReply *rep;
    bool ok = false;
    if (c == NULL)
        return false;
    if (c->err == 0) {
        rep = redisCommand(c, "PING");
        /* NOAUTH also proves the server is up */
        ok = rep != NULL && (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_ERROR);
        if (rep)
            freeReplyObject(rep);
    }
    redisFree(c);
    return ok;
}

/* Starts redis-server for s (s->port or s->sock, s->password set by the
 * caller; port 0 and no socket = pick a free port) and waits until it
 * answers. */
static void srv_start(srv_t *s)
{
    bool pick = s->port == 0 && s->sock[0] == '\0';
    require_redis_server();
    for (int attempt = 0; attempt < 5; attempt++) {
        char port[16];
        const char *argv[32];
        int argc = 0;
        uint64_t deadline;

        if (pick)
            s->port = free_port();
        snprintf(port, sizeof port, "%u", s->port);
        argv[argc++] = REDIS_SERVER;
        argv[argc++] = "--port";
        argv[argc++] = port;
        argv[argc++] = "--bind";
        argv[argc++] = "127.0.0.1";
        argv[argc++] = "--save";
        argv[argc++] = "";
        argv[argc++] = "--appendonly";
        argv[argc++] = "no";
        argv[argc++] = "--daemonize";
        argv[argc++] = "no";
        if (redis_major() >= 7) {
            argv[argc++] = "--enable-debug-command";
            argv[argc++] = "yes";
        }
        if (s->sock[0]) {
            argv[argc++] = "--unixsocket";
            argv[argc++] = s->sock;
            argv[argc++] = "--unixsocketperm";
            argv[argc++] = "700";
        }
        if (s->password) {
            argv[argc++] = "--requirepass";
            argv[argc++] = s->password;
        }
        argv[argc] = NULL;

        s->pid = fork();
        assert_true(s->pid >= 0);
        if (s->pid == 0) {
            int null = open("/dev/null", O_RDWR);
            if (null >= 0) {
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
                if (null > 2)
                    close(null);
            }
            /* a test that crashes must not leave its server behind */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1)
                _exit(127);
            execv(REDIS_SERVER, (char *const *)argv);
            _exit(127);
        }
        deadline = util_now_ms() + 5000;
        while (util_now_ms() < deadline) {
            int status;
            if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
                s->pid = 0;
                break; /* it exited: port taken? */
            }
            if (srv_ping(s))
                return;
            sleep_ms(10);
        }
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
        if (!pick)
            break;
    }
    fail_msg("redis-server did not start (port %u)", s->port);
}

static void srv_kill(srv_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->sock[0])
        unlink(s->sock);
}

/* Sends DEBUG SLEEP secs from a separate raw connection, without waiting
 * for the answer: the server stalls for that long. Returns the fd (close it
 * after the sleep). */
static int srv_debug_sleep(const srv_t *s, const char *secs)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char cmd[128];
    int n, fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    n = snprintf(cmd, sizeof cmd, "*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$%zu\r\n%s\r\n", strlen(secs),
                 secs);
    assert_int_equal(write(fd, cmd, (size_t)n), n);
    return fd;
}

/* Reads a key with a synchronous client (db and password as given). */
static redisReply *srv_get(const srv_t *s, unsigned db, const char *key)
{
    redisContext *c = redisConnect("127.0.0.1", (int)s->port);
    redisReply *rep;
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    if (s->password) {
        rep = redisCommand(c, "AUTH %s", s->password);
        assert_non_null(rep);
        freeReplyObject(rep);
    }
    rep = redisCommand(c, "SELECT %u", db);
    assert_non_null(rep);
    freeReplyObject(rep);
    rep = redisCommand(c, "GET %s", key);
    assert_non_null(rep);
    redisFree(c);
    return rep;
}

/* ---- driving the loop ---- */

typedef struct tctx tctx_t;
typedef bool (*pred_fn)(tctx_t *t);

struct tctx {
    loop_t *loop;
    rds_t *r;
    loop_timer_t deadline;
    bool deadline_hit;
    pred_fn until;
    void *pred_arg;
};

static bool hook(loop_t *loop, void *arg, int64_t *timeout_ms)
{
    tctx_t *t = arg;
    *timeout_ms = 5; /* re-check the predicate often */
    if (t->until && t->until(t))
        loop_stop(loop);
    return false;
}

static void on_deadline(loop_t *loop, loop_timer_t *tm)
{
    tctx_t *t = tm->arg;
    t->deadline_hit = true;
    loop_stop(loop);
}

/* Runs the loop until pred holds or max_ms passed; returns pred's value. */
static bool run_until(tctx_t *t, pred_fn pred, void *arg, unsigned max_ms)
{
    bool ok;
    t->until = pred;
    t->pred_arg = arg;
    t->deadline_hit = false;
    loop_timer_start(t->loop, &t->deadline, max_ms);
    loop_run(t->loop);
    loop_timer_stop(t->loop, &t->deadline);
    ok = pred ? pred(t) : true;
    t->until = NULL;
    return ok;
}

static void run_for(tctx_t *t, unsigned ms)
{
    run_until(t, NULL, NULL, ms);
}

static void ctx_init(tctx_t *t)
{
    memset(t, 0, sizeof *t);
    t->loop = loop_new();
    assert_non_null(t->loop);
    t->deadline.cb = on_deadline;
    t->deadline.arg = t;
    loop_set_hook(t->loop, hook, t);
}

static void ctx_done(tctx_t *t)
{
    rds_free(t->r);
    t->r = NULL;
    loop_free(t->loop);
    t->loop = NULL;
}

static bool is_connected(tctx_t *t)
{
    rds_stats_t st;
    rds_get_stats(t->r, &st);
    return st.connected;
}

static bool is_disconnected(tctx_t *t)
{
    return !is_connected(t);
}

static void connect_to(tctx_t *t, const char *url, unsigned timeout_ms)
{
    rds_addr_t addr;
    char err[256];
    assert_int_equal(rds_url_parse(url, &addr, err, sizeof err), 0);
    t->r = rds_new(t->loop, &addr, timeout_ms);
    assert_non_null(t->r);
}

/* Connected, and the handshake answered (a first connection takes
 * commands from its TCP connect on, with the handshake still in flight). */
static bool is_connected_idle(tctx_t *t)
{
    rds_stats_t st;
    rds_get_stats(t->r, &st);
    return st.connected && st.in_flight == 0;
}

static void connect_srv(tctx_t *t, const srv_t *s, unsigned timeout_ms)
{
    char url[160];
    snprintf(url, sizeof url, "redis://127.0.0.1:%u/0", s->port);
    connect_to(t, url, timeout_ms);
    assert_true(run_until(t, is_connected_idle, NULL, 3000));
}

/* ---- recording callbacks ---- */

static bool g_in_call; /* set around rds_get/rds_command_argv: a callback
                          must never run inside them */

typedef struct res {
    int calls;
    enum rds_status st;
    char val[256];
    size_t len;
    uint64_t issued_ms, done_ms;
    int reply_type; /* rds_command_argv: reply->type, -1 for NULL */
} res_t;

static void on_get(void *arg, enum rds_status st, const char *val, size_t len)
{
    res_t *r = arg;
    assert_false(g_in_call);
    r->calls++;
    r->st = st;
    r->done_ms = util_now_ms();
    if (st == RDS_OK) {
        assert_non_null(val);
        assert_true(len < sizeof r->val);
        memcpy(r->val, val, len);
        r->len = len;
    } else {
        assert_null(val);
        assert_int_equal(len, 0);
    }
}

static void on_reply(void *arg, enum rds_status st, struct redisReply *rep)
{
    res_t *r = arg;
    assert_false(g_in_call);
    r->calls++;
    r->st = st;
    r->done_ms = util_now_ms();
    r->reply_type = rep ? rep->type : -1;
    if (rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_ERROR ||
                rep->type == REDIS_REPLY_STATUS)) {
        size_t n = rep->len < sizeof r->val - 1 ? rep->len : sizeof r->val - 1;
        memcpy(r->val, rep->str, n);
        r->val[n] = '\0';
        r->len = n;
    }
}

static rds_op_t *start_get_within(tctx_t *t, const char *key, size_t klen, unsigned wait_ms,
                                  res_t *res)
{
    rds_op_t *op;
    memset(res, 0, sizeof *res);
    res->issued_ms = util_now_ms();
    g_in_call = true;
    op = rds_get(t->r, key, klen, wait_ms, on_get, res);
    g_in_call = false;
    assert_non_null(op);
    assert_int_equal(res->calls, 0);
    return op;
}

static rds_op_t *start_get(tctx_t *t, const char *key, size_t klen, res_t *res)
{
    rds_op_t *op;
    memset(res, 0, sizeof *res);
    res->issued_ms = util_now_ms();
    g_in_call = true;
    op = rds_get(t->r, key, klen, RDS_WAIT_ANY, on_get, res);
    g_in_call = false;
    assert_non_null(op);
    assert_int_equal(res->calls, 0);
    return op;
}

static bool res_called(tctx_t *t)
{
    return ((res_t *)t->pred_arg)->calls > 0;
}

static void get_wait(tctx_t *t, const char *key, size_t klen, res_t *res, unsigned max_ms)
{
    start_get(t, key, klen, res);
    assert_true(run_until(t, res_called, res, max_ms));
    assert_int_equal(res->calls, 1);
}

static void cmd_wait(tctx_t *t, int argc, const char **argv, const size_t *lens, res_t *res)
{
    rds_op_t *op;
    memset(res, 0, sizeof *res);
    g_in_call = true;
    op = rds_command_argv(t->r, argc, argv, lens, RDS_WAIT_ANY, on_reply, res);
    g_in_call = false;
    assert_non_null(op);
    assert_int_equal(res->calls, 0);
    assert_true(run_until(t, res_called, res, 2000));
    assert_int_equal(res->calls, 1);
}

static rds_stats_t stats(tctx_t *t)
{
    rds_stats_t st;
    rds_get_stats(t->r, &st);
    return st;
}

/* ---- setup/teardown ---- */

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < g_n_srv; i++)
        srv_kill(&g_srv[i]);
    g_n_srv = 0;
    g_in_call = false;
    return 0;
}

/* ---- tests ---- */

static void test_url_parse(void **state)
{
    rds_addr_t a;
    char err[256];
    (void)state;

    assert_int_equal(rds_url_parse("redis://127.0.0.1:6380", &a, err, sizeof err), 0);
    assert_false(a.is_unix);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6380);
    assert_int_equal(a.db, 0);
    assert_string_equal(a.password, "");

    assert_int_equal(rds_url_parse("redis://10.1.2.3:6379/5", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "10.1.2.3");
    assert_int_equal(a.db, 5);

    assert_int_equal(rds_url_parse("redis://127.0.0.1", &a, err, sizeof err), 0);
    assert_int_equal(a.port, 6379);
    assert_int_equal(rds_url_parse("redis://127.0.0.1/", &a, err, sizeof err), 0);
    assert_int_equal(a.db, 0);

    assert_int_equal(rds_url_parse("redis://:s3cr%40t:x@127.0.0.1:6379/2", &a, err, sizeof err),
                     0);
    assert_string_equal(a.password, "s3cr@t:x");
    assert_string_equal(a.user, "");
    assert_int_equal(a.db, 2);

    assert_int_equal(rds_url_parse("redis://app:pw@127.0.0.1:1/3", &a, err, sizeof err), 0);
    assert_string_equal(a.user, "app");
    assert_string_equal(a.password, "pw");
    assert_int_equal(a.port, 1);

    assert_int_equal(rds_url_parse("redis://[::1]:7000/1", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 7000);
    assert_int_equal(a.db, 1);

    assert_int_equal(rds_url_parse("redis://localhost:6379", &a, err, sizeof err), 0);
    assert_true(strcmp(a.host, "127.0.0.1") == 0 || strcmp(a.host, "::1") == 0);
    assert_int_equal(rds_url_parse("redis://LOCALHOST", &a, err, sizeof err), 0);

    assert_int_equal(rds_url_parse("unix:///run/redis/redis.sock", &a, err, sizeof err), 0);
    assert_true(a.is_unix);
    assert_string_equal(a.path, "/run/redis/redis.sock");
    assert_int_equal(a.db, 0);
    assert_int_equal(rds_url_parse("unix:///tmp/r.sock?db=7&password=p%26w", &a, err, sizeof err),
                     0);
    assert_string_equal(a.path, "/tmp/r.sock");
    assert_int_equal(a.db, 7);
    assert_string_equal(a.password, "p&w");

    /* invalid */
    static const char *const bad[] = {
        "",
        "127.0.0.1:6379",
        "http://127.0.0.1",
        "rediss://127.0.0.1:6379",
        "redis://",
        "redis://:6379",
        "redis://example.com:6379",
        "redis://127.0.0.1:0",
        "redis://127.0.0.1:65536",
        "redis://127.0.0.1:port",
        "redis://127.0.0.1:6379/x",
        "redis://127.0.0.1:6379/-1",
        "redis://127.0.0.1:6379/1/2",
        "redis://127.0.0.1x",
        "redis://[::1:6379",
        "redis://secret@127.0.0.1",
        "redis://:@127.0.0.1",
        "redis://:bad%zzpw@127.0.0.1",
        "redis://:nul%00pw@127.0.0.1",
        "redis://user:@127.0.0.1",
        "unix://",
        "unix://relative.sock",
        "unix:///tmp/r.sock?db=abc",
        "unix:///tmp/r.sock?db",
        "unix:///tmp/r.sock?foo=1",
        "unix:///tmp/r.sock?user=u",
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (rds_url_parse(bad[i], &a, err, sizeof err) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
        assert_string_equal(a.password, ""); /* nothing half-parsed left behind */
    }

    /* too long */
    {
        char url[600];
        memset(url, 0, sizeof url);
        memcpy(url, "redis://:", 9);
        memset(url + 9, 'p', 300);
        memcpy(url + 309, "@127.0.0.1", 10);
        assert_int_equal(rds_url_parse(url, &a, err, sizeof err), -1);
        memcpy(url, "unix:///", 8);
        memset(url + 8, 'd', 200);
        url[208] = '\0';
        assert_int_equal(rds_url_parse(url, &a, err, sizeof err), -1);
    }

    /* the password never appears in an error */
    assert_int_equal(rds_url_parse("redis://:hunter2@example.com:6379", &a, err, sizeof err), -1);
    assert_null(strstr(err, "hunter2"));
    assert_non_null(strstr(err, "example.com"));
    assert_int_equal(rds_url_parse("redis://:hunter2@127.0.0.1:99999", &a, err, sizeof err), -1);
    assert_null(strstr(err, "hunter2"));
}

static void test_set_then_get_hits(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 200);

    /* pipelined on one connection: the GET sees the SET */
    rds_set(t.r, "k1", 2, "hello", 5, 60);
    get_wait(&t, "k1", 2, &res, 2000);
    assert_int_equal(res.st, RDS_OK);
    assert_int_equal(res.len, 5);
    assert_memory_equal(res.val, "hello", 5);

    /* overwrite */
    rds_set(t.r, "k1", 2, "world!", 6, 60);
    get_wait(&t, "k1", 2, &res, 2000);
    assert_int_equal(res.st, RDS_OK);
    assert_int_equal(res.len, 6);
    assert_memory_equal(res.val, "world!", 6);

    /* the TTL was set */
    {
        redisContext *c = redisConnect("127.0.0.1", (int)s->port);
        redisReply *rep = redisCommand(c, "TTL k1");
        assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
        assert_true(rep->integer > 50 && rep->integer <= 60);
        freeReplyObject(rep);
        redisFree(c);
    }
    {
        rds_stats_t st = stats(&t);
        assert_int_equal(st.ok, 2);
        assert_int_equal(st.errors, 0);
        assert_int_equal(st.dropped_writes, 0);
        assert_int_equal(st.in_flight, 0);
        assert_true(st.connected);
    }
    ctx_done(&t);
    srv_kill(s);
}

static void test_get_missing_is_nil(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 200);
    get_wait(&t, "absent", 6, &res, 2000);
    assert_int_equal(res.st, RDS_NIL);
    assert_int_equal(stats(&t).nil, 1);

    /* a key of another type is an error, not a crash */
    {
        res_t r2;
        const char *argv[] = {"LPUSH", "list", "x"};
        size_t lens[] = {5, 4, 1};
        cmd_wait(&t, 3, argv, lens, &r2);
        assert_int_equal(r2.st, RDS_OK);
        get_wait(&t, "list", 4, &res, 2000);
        assert_int_equal(res.st, RDS_ERROR);
    }
    ctx_done(&t);
    srv_kill(s);
}

static void test_binary_value(void **state)
{
    static const char key[] = "bin\0key\r\n";
    static const char val[] = "a\0b\r\n$3\r\n\0\xff\x01z";
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 200);
    rds_set(t.r, key, sizeof key - 1, val, sizeof val - 1, 60);
    get_wait(&t, key, sizeof key - 1, &res, 2000);
    assert_int_equal(res.st, RDS_OK);
    assert_int_equal(res.len, sizeof val - 1);
    assert_memory_equal(res.val, val, sizeof val - 1);
    /* the key is binary too: its prefix is another key */
    get_wait(&t, "bin", 3, &res, 2000);
    assert_int_equal(res.st, RDS_NIL);
    /* empty value */
    rds_set(t.r, "empty", 5, "", 0, 60);
    get_wait(&t, "empty", 5, &res, 2000);
    assert_int_equal(res.st, RDS_OK);
    assert_int_equal(res.len, 0);
    ctx_done(&t);
    srv_kill(s);
}

static void test_ttl_expiry(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 200);
    rds_set(t.r, "short", 5, "v", 1, 1);
    get_wait(&t, "short", 5, &res, 2000);
    assert_int_equal(res.st, RDS_OK);
    run_for(&t, 1200);
    get_wait(&t, "short", 5, &res, 2000);
    assert_int_equal(res.st, RDS_NIL);
    ctx_done(&t);
    srv_kill(s);
}

static void test_command_argv(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 200);
    {
        const char *argv[] = {"INCRBYFLOAT", "budget", "1.5"};
        size_t lens[] = {11, 6, 3};
        cmd_wait(&t, 3, argv, lens, &res);
        assert_int_equal(res.st, RDS_OK);
        assert_int_equal(res.reply_type, REDIS_REPLY_STRING);
        assert_string_equal(res.val, "1.5");
    }
    {
        const char *argv[] = {"EVAL", "return redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])", "1",
                              "budget", "2"};
        size_t lens[5];
        for (int i = 0; i < 5; i++)
            lens[i] = strlen(argv[i]);
        cmd_wait(&t, 5, argv, lens, &res);
        assert_int_equal(res.st, RDS_OK);
        assert_string_equal(res.val, "3.5");
    }
    {
        /* the error reply is passed on: EVALSHA callers fall back to EVAL */
        const char *argv[] = {"EVALSHA", "0000000000000000000000000000000000000000", "0"};
        size_t lens[] = {7, 40, 1};
        cmd_wait(&t, 3, argv, lens, &res);
        assert_int_equal(res.st, RDS_ERROR);
        assert_int_equal(res.reply_type, REDIS_REPLY_ERROR);
        assert_memory_equal(res.val, "NOSCRIPT", 8);
    }
    {
        const char *argv[] = {"GET", "nothing"};
        size_t lens[] = {3, 7};
        cmd_wait(&t, 2, argv, lens, &res);
        assert_int_equal(res.st, RDS_NIL);
        assert_int_equal(res.reply_type, REDIS_REPLY_NIL);
    }
    {
        const char *argv[] = {"INCR", "counter"};
        size_t lens[] = {4, 7};
        cmd_wait(&t, 2, argv, lens, &res);
        assert_int_equal(res.st, RDS_OK);
        assert_int_equal(res.reply_type, REDIS_REPLY_INTEGER);
    }
    {
        /* commands that would break reply ordering are refused (deferred) */
        const char *argv[] = {"subscribe", "chan"};
        size_t lens[] = {9, 4};
        cmd_wait(&t, 2, argv, lens, &res);
        assert_int_equal(res.st, RDS_ERROR);
        assert_int_equal(res.reply_type, -1);
    }
    /* the connection still works */
    get_wait(&t, "nothing", 7, &res, 2000);
    assert_int_equal(res.st, RDS_NIL);
    ctx_done(&t);
    srv_kill(s);
}

static void test_server_not_running(void **state)
{
    tctx_t t;
    res_t res;
    char url[64];
    rds_stats_t st;
    (void)state;
    ctx_init(&t);
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", free_port()); /* nobody there */
    connect_to(&t, url, 500);

    /* fails fast: no wait for the 500 ms timeout, never inside rds_get */
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_DOWN);
    assert_true(res.done_ms - res.issued_ms < 100);

    /* several reconnect attempts fail quietly */
    run_for(&t, 400);
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_DOWN);
    assert_true(res.done_ms - res.issued_ms < 100);
    rds_set(t.r, "k", 1, "v", 1, 10);
    st = stats(&t);
    assert_false(st.connected);
    assert_int_equal(st.down, 2);
    assert_int_equal(st.dropped_writes, 1);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.in_flight, 0);
    ctx_done(&t);

    /* a unix socket that does not exist fails inside the connect call */
    ctx_init(&t);
    snprintf(url, sizeof url, "unix:///tmp/test_rds_absent_%d.sock", (int)getpid());
    connect_to(&t, url, 500);
    run_for(&t, 250);
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_DOWN);
    assert_true(res.done_ms - res.issued_ms < 100);
    assert_false(is_connected(&t));
    ctx_done(&t);
}

static void test_server_killed_then_restarted(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    int sleeper;
    rds_stats_t st;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 100);
    rds_set(t.r, "k", 1, "v1", 2, 60);
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_OK);

    /* a GET pending when the server dies */
    sleeper = srv_debug_sleep(s, "2");
    run_for(&t, 30);
    start_get(&t, "k", 1, &res);
    run_for(&t, 10);
    assert_int_equal(res.calls, 0);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    close(sleeper);
    assert_true(run_until(&t, res_called, &res, 2000));
    assert_int_equal(res.calls, 1);
    assert_true(res.st == RDS_DOWN || res.st == RDS_TIMEOUT);
    assert_true(res.done_ms - res.issued_ms <= 100 + 40);

    /* new commands fail fast while it is gone */
    assert_true(run_until(&t, is_disconnected, NULL, 1000));
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_DOWN);
    assert_true(res.done_ms - res.issued_ms < 50);
    rds_set(t.r, "k", 1, "lost", 4, 60);
    assert_int_equal(stats(&t).dropped_writes, 1);

    /* let a few reconnect attempts fail, then restart on the same port */
    run_for(&t, 350);
    assert_false(is_connected(&t));
    srv_start(s);
    assert_true(run_until(&t, is_connected, NULL, 4000));
    st = stats(&t);
    assert_int_equal(st.reconnects, 1);
    rds_set(t.r, "k", 1, "v2", 2, 60);
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_OK);
    assert_memory_equal(res.val, "v2", 2);
    ctx_done(&t);
    srv_kill(s);
}

static bool in_flight_zero(tctx_t *t)
{
    return stats(t).in_flight == 0;
}

static void test_slow_server_times_out(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    int sleeper;
    rds_stats_t st;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 50);
    rds_set(t.r, "k", 1, "v", 1, 60);
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_OK);

    sleeper = srv_debug_sleep(s, "0.3");
    run_for(&t, 30); /* the server is asleep now */
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_TIMEOUT);
    assert_true(res.done_ms - res.issued_ms >= 45);
    assert_true(res.done_ms - res.issued_ms <= 50 + 40);
    st = stats(&t);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.in_flight, 1); /* the late reply is still owed */

    /* the late reply arrives and is dropped: no second callback */
    assert_true(run_until(&t, in_flight_zero, NULL, 1000));
    run_for(&t, 20);
    assert_int_equal(res.calls, 1);
    st = stats(&t);
    assert_true(st.connected);
    assert_int_equal(st.reconnects, 0); /* one timeout does not reconnect */
    close(sleeper);

    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_OK);
    ctx_done(&t);
    srv_kill(s);
}

static void test_stuck_connection_is_replaced(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res[3], r4;
    int sleeper;
    uint64_t t0;
    rds_stats_t st;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 50);

    sleeper = srv_debug_sleep(s, "0.5");
    t0 = util_now_ms();
    run_for(&t, 30);
    for (int i = 0; i < 3; i++)
        start_get(&t, "k", 1, &res[i]);
    assert_true(run_until(&t, res_called, &res[2], 1000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].st, RDS_TIMEOUT);
    }
    /* three in a row: the connection was dropped... */
    st = stats(&t);
    assert_int_equal(st.timeouts, 3);
    assert_int_equal(st.in_flight, 0);
    /* ...and a new one is made in the background */
    assert_true(run_until(&t, is_connected, NULL, 3000));
    assert_int_equal(stats(&t).reconnects, 1);
    while (util_now_ms() < t0 + 600)
        run_for(&t, 20);
    close(sleeper);
    get_wait(&t, "k", 1, &r4, 2000);
    assert_int_equal(r4.st, RDS_NIL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i].calls, 1);
    ctx_done(&t);
    srv_kill(s);
}

/* The caller's wait bounds a command below the client's timeout; a wait of
 * 0 sends nothing. */
static void test_wait_bound(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    int sleeper;
    rds_stats_t st;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 400);

    start_get_within(&t, "k", 1, 0, &res);
    assert_true(run_until(&t, res_called, &res, 1000));
    assert_int_equal(res.st, RDS_SKIPPED);
    assert_true(res.done_ms - res.issued_ms < 50);
    st = stats(&t);
    assert_int_equal(st.skipped, 1);
    assert_int_equal(st.in_flight, 0); /* never sent */

    sleeper = srv_debug_sleep(s, "0.5");
    run_for(&t, 30);
    start_get_within(&t, "k", 1, 30, &res);
    assert_true(run_until(&t, res_called, &res, 2000));
    assert_int_equal(res.st, RDS_TIMEOUT);
    /* 30 ms, not the client's 400 (generous slack for a loaded machine) */
    assert_true(res.done_ms - res.issued_ms >= 25);
    assert_true(res.done_ms - res.issued_ms < 250);
    close(sleeper);
    assert_true(run_until(&t, in_flight_zero, NULL, 2000));
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_NIL);
    ctx_done(&t);
    srv_kill(s);
}

static bool is_cooling(tctx_t *t)
{
    return stats(t).state == RDS_STATE_COOLING;
}

/* A stopped (SIGSTOP) server: its kernel still accepts connections, but a
 * connection is not up until the server answers; commands fail at once
 * all along; reconnects back off. */
static void test_frozen_server_never_up(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    char url[64];
    rds_stats_t st;
    (void)state;
    srv_start(s);
    kill(s->pid, SIGSTOP);
    ctx_init(&t);
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", s->port);
    connect_to(&t, url, 50);
    run_for(&t, 1500);
    st = stats(&t);
    assert_false(st.connected);
    assert_int_equal(st.state, RDS_STATE_DOWN);
    /* connects time out after 200 ms; delays 50-100, 100-200, 200-400 ms... */
    assert_true(st.connect_attempts >= 2);
    assert_true(st.connect_attempts <= 6);
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_DOWN);
    assert_true(res.done_ms - res.issued_ms < 50);

    kill(s->pid, SIGCONT);
    assert_true(run_until(&t, is_connected, NULL, 8000));
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_NIL);
    ctx_done(&t);
    srv_kill(s);
}

/* Timeouts in a row start a cooldown: commands fail at once, no connect is
 * tried until it ends; then the client reconnects on its own. */
static void test_cooldown_after_timeouts(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res[2], r3;
    rds_policy_t pol = {.cooldown_after = 2, .cooldown_ms = 700, .reconnect_min_ms = 100,
                        .reconnect_max_ms = 400};
    rds_stats_t st;
    uint64_t attempts;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 50);
    rds_set_policy(t.r, &pol);
    assert_int_equal(stats(&t).state, RDS_STATE_UP);

    kill(s->pid, SIGSTOP);
    for (int i = 0; i < 2; i++)
        start_get(&t, "k", 1, &res[i]);
    assert_true(run_until(&t, res_called, &res[1], 2000));
    assert_int_equal(res[0].st, RDS_TIMEOUT);
    assert_int_equal(res[1].st, RDS_TIMEOUT);
    st = stats(&t);
    assert_int_equal(st.state, RDS_STATE_COOLING);
    assert_int_equal(st.cooldowns, 1);
    attempts = st.connect_attempts;

    /* cooling: at once, and nothing is tried */
    get_wait(&t, "k", 1, &r3, 2000);
    assert_int_equal(r3.st, RDS_DOWN);
    assert_true(r3.done_ms - r3.issued_ms < 50);
    run_for(&t, 300);
    assert_true(is_cooling(&t));
    assert_int_equal(stats(&t).connect_attempts, attempts);

    /* over: a reconnect is tried; the server is still stopped, so not up */
    run_for(&t, 700);
    st = stats(&t);
    assert_int_equal(st.state, RDS_STATE_DOWN);
    assert_true(st.connect_attempts > attempts);
    assert_int_equal(st.cooldowns, 1);

    kill(s->pid, SIGCONT);
    assert_true(run_until(&t, is_connected, NULL, 5000));
    get_wait(&t, "k", 1, &r3, 2000);
    assert_int_equal(r3.st, RDS_NIL);
    ctx_done(&t);
    srv_kill(s);
}

/* Nobody listening: the reconnect delay grows to reconnect_max_ms and no
 * further (each drawn from [d/2, d]). */
static void test_reconnect_backoff_capped(void **state)
{
    tctx_t t;
    char url[64];
    rds_policy_t pol = {.cooldown_after = 3, .cooldown_ms = 2000, .reconnect_min_ms = 100,
                        .reconnect_max_ms = 300};
    uint64_t n;
    (void)state;
    ctx_init(&t);
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", free_port());
    connect_to(&t, url, 50);
    rds_set_policy(t.r, &pol);
    run_for(&t, 3000);
    n = stats(&t).connect_attempts;
    /* at most 300 ms apart after the first ones: at least 3000/300 */
    assert_true(n >= 10);
    /* at least 50, 100, then 150 ms apart: no busy loop */
    assert_true(n <= 25);
    ctx_done(&t);

    /* the default cap (5 s): a few attempts only in 3 s */
    ctx_init(&t);
    connect_to(&t, url, 50);
    run_for(&t, 3000);
    n = stats(&t).connect_attempts;
    assert_true(n >= 3);
    assert_true(n <= 8);
    ctx_done(&t);
}

static void test_cancel(void **state)
{
    srv_t *s = srv_new();
    tctx_t t, dead;
    res_t res;
    rds_op_t *op;
    int sleeper;
    char url[64];
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 50);

    /* cancelled before the reply */
    op = start_get(&t, "k", 1, &res);
    rds_cancel(t.r, op);
    run_for(&t, 100);
    assert_int_equal(res.calls, 0);
    assert_int_equal(stats(&t).in_flight, 0);

    /* cancelled before its timeout: no timeout either */
    sleeper = srv_debug_sleep(s, "0.2");
    run_for(&t, 30);
    op = start_get(&t, "k", 1, &res);
    rds_cancel(t.r, op);
    run_for(&t, 300);
    assert_int_equal(res.calls, 0);
    assert_int_equal(stats(&t).timeouts, 0);
    assert_int_equal(stats(&t).in_flight, 0);
    close(sleeper);

    /* cancelled deferred failure */
    ctx_init(&dead);
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", free_port());
    connect_to(&dead, url, 50);
    op = start_get(&dead, "k", 1, &res);
    rds_cancel(dead.r, op);
    run_for(&dead, 50);
    assert_int_equal(res.calls, 0);
    ctx_done(&dead);

    rds_cancel(t.r, NULL); /* no-op */
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_NIL);
    ctx_done(&t);
    srv_kill(s);
}

static void test_free_with_pending(void **state)
{
    srv_t *s = srv_new();
    tctx_t t, dead;
    res_t res[5], qres;
    int sleeper;
    char url[64];
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 200);

    sleeper = srv_debug_sleep(s, "0.3");
    run_for(&t, 30);
    for (int i = 0; i < 5; i++)
        start_get(&t, "k", 1, &res[i]);
    rds_cancel(t.r, start_get(&t, "k", 1, &qres));
    rds_set(t.r, "a", 1, "b", 1, 10);
    {
        const char *argv[] = {"INCR", "n"};
        size_t lens[] = {4, 1};
        assert_non_null(rds_command_argv(t.r, 2, argv, lens, RDS_WAIT_ANY, on_reply, &qres));
    }
    run_for(&t, 10);
    assert_int_equal(stats(&t).in_flight, 8);
    rds_free(t.r);
    t.r = NULL;
    /* the loop runs on: no callback, no stale timer or watcher */
    run_for(&t, 400);
    for (int i = 0; i < 5; i++)
        assert_int_equal(res[i].calls, 0);
    assert_int_equal(qres.calls, 0);
    close(sleeper);
    ctx_done(&t);

    /* with a deferred failure queued, and before the loop ever ran */
    ctx_init(&dead);
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", free_port());
    connect_to(&dead, url, 50);
    start_get(&dead, "k", 1, &qres);
    rds_free(dead.r);
    dead.r = NULL;
    run_for(&dead, 50);
    assert_int_equal(qres.calls, 0);
    ctx_done(&dead);
    srv_kill(s);
}

typedef struct many {
    int calls;
    int by_status[4]; /* OK/NIL, ERROR, TIMEOUT, DOWN */
} many_t;

static void on_many(void *arg, enum rds_status st, const char *val, size_t len)
{
    many_t *m = arg;
    (void)val;
    (void)len;
    assert_false(g_in_call);
    m->calls++;
    m->by_status[st >= 0 ? 0 : -st]++;
}

static bool many_done(tctx_t *t)
{
    return ((many_t *)t->pred_arg)->calls >= RDS_MAX_INFLIGHT + 1;
}

static void test_in_flight_cap(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    many_t m = {0};
    int sleeper;
    rds_stats_t st;
    res_t res;
    (void)state;
    srv_start(s);
    ctx_init(&t);
    connect_srv(&t, s, 50);

    sleeper = srv_debug_sleep(s, "0.3");
    run_for(&t, 30);
    g_in_call = true;
    for (int i = 0; i < RDS_MAX_INFLIGHT + 1; i++)
        assert_non_null(rds_get(t.r, "k", 1, RDS_WAIT_ANY, on_many, &m));
    rds_set(t.r, "k", 1, "v", 1, 10); /* over the cap: dropped */
    g_in_call = false;
    st = stats(&t);
    assert_int_equal(st.in_flight, RDS_MAX_INFLIGHT);
    assert_int_equal(st.dropped_writes, 1);
    assert_true(run_until(&t, many_done, &m, 2000));
    run_for(&t, 20);
    /* every command answered exactly once: the extra one at once with an
     * error, the rest timed out or went down with the stuck connection */
    assert_int_equal(m.calls, RDS_MAX_INFLIGHT + 1);
    assert_int_equal(m.by_status[1], 1);
    assert_int_equal(m.by_status[2] + m.by_status[3], RDS_MAX_INFLIGHT);
    assert_true(m.by_status[2] >= 3);
    close(sleeper);

    /* and the client recovers */
    assert_true(run_until(&t, is_connected, NULL, 3000));
    run_for(&t, 300);
    get_wait(&t, "k", 1, &res, 2000);
    assert_int_equal(res.st, RDS_NIL);
    assert_int_equal(stats(&t).in_flight, 0);
    ctx_done(&t);
    srv_kill(s);
}

static void test_auth_and_select(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    char url[160];
    redisReply *rep;
    (void)state;
    s->password = "pa:ss@word";
    srv_start(s);
    ctx_init(&t);
    snprintf(url, sizeof url, "redis://:pa%%3Ass%%40word@127.0.0.1:%u/3", s->port);
    connect_to(&t, url, 200);
    assert_true(run_until(&t, is_connected, NULL, 3000));
    rds_set(t.r, "dbkey", 5, "in3", 3, 60);
    get_wait(&t, "dbkey", 5, &res, 2000);
    assert_int_equal(res.st, RDS_OK);
    assert_memory_equal(res.val, "in3", 3);
    /* it really is in db 3, not in db 0 */
    rep = srv_get(s, 3, "dbkey");
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    freeReplyObject(rep);
    rep = srv_get(s, 0, "dbkey");
    assert_int_equal(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);
    ctx_done(&t);
    srv_kill(s);
}

static void test_wrong_password_never_logged(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    char url[160], path[] = "/tmp/test_rds_log_XXXXXX", text[8192];
    int logfd, saved;
    ssize_t n;
    enum log_level old = log_get_level();
    (void)state;
    s->password = "right-one";
    srv_start(s);
    ctx_init(&t);

    logfd = mkstemp(path);
    assert_true(logfd >= 0);
    saved = dup(STDERR_FILENO);
    dup2(logfd, STDERR_FILENO);
    log_set_level(LOG_DEBUG);

    snprintf(url, sizeof url, "redis://:hunter2-wrong@127.0.0.1:%u/1", s->port);
    connect_to(&t, url, 100);
    run_for(&t, 600); /* several AUTH failures and retries */
    get_wait(&t, "k", 1, &res, 2000);
    assert_true(res.st == RDS_DOWN || res.st == RDS_ERROR);
    ctx_done(&t);

    log_set_level(old);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(logfd, text, sizeof text - 1, 0);
    close(logfd);
    unlink(path);
    assert_true(n > 0);
    text[n] = '\0';
    assert_non_null(strstr(text, "AUTH")); /* the failure is reported... */
    assert_null(strstr(text, "hunter2"));  /* ...without the secret */
    srv_kill(s);
}

static void test_unix_socket(void **state)
{
    srv_t *s = srv_new();
    tctx_t t;
    res_t res;
    char url[200];
    (void)state;
    snprintf(s->sock, sizeof s->sock, "/tmp/test_rds_%d.sock", (int)getpid());
    s->port = free_port(); /* also listens on TCP; the client uses the socket */
    srv_start(s);
    ctx_init(&t);
    snprintf(url, sizeof url, "unix://%s?db=2", s->sock);
    connect_to(&t, url, 200);
    assert_true(run_until(&t, is_connected, NULL, 3000));
    rds_set(t.r, "u", 1, "unix", 4, 60);
    get_wait(&t, "u", 1, &res, 2000);
    assert_int_equal(res.st, RDS_OK);
    assert_memory_equal(res.val, "unix", 4);
    {
        redisReply *rep = srv_get(s, 2, "u");
        assert_int_equal(rep->type, REDIS_REPLY_STRING);
        freeReplyObject(rep);
    }
    ctx_done(&t);
    srv_kill(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test_teardown(test_set_then_get_hits, teardown),
        cmocka_unit_test_teardown(test_get_missing_is_nil, teardown),
        cmocka_unit_test_teardown(test_binary_value, teardown),
        cmocka_unit_test_teardown(test_ttl_expiry, teardown),
        cmocka_unit_test_teardown(test_command_argv, teardown),
        cmocka_unit_test_teardown(test_server_not_running, teardown),
        cmocka_unit_test_teardown(test_server_killed_then_restarted, teardown),
        cmocka_unit_test_teardown(test_slow_server_times_out, teardown),
        cmocka_unit_test_teardown(test_stuck_connection_is_replaced, teardown),
        cmocka_unit_test_teardown(test_wait_bound, teardown),
        cmocka_unit_test_teardown(test_frozen_server_never_up, teardown),
        cmocka_unit_test_teardown(test_cooldown_after_timeouts, teardown),
        cmocka_unit_test_teardown(test_reconnect_backoff_capped, teardown),
        cmocka_unit_test_teardown(test_cancel, teardown),
        cmocka_unit_test_teardown(test_free_with_pending, teardown),
        cmocka_unit_test_teardown(test_in_flight_cap, teardown),
        cmocka_unit_test_teardown(test_auth_and_select, teardown),
        cmocka_unit_test_teardown(test_wrong_password_never_logged, teardown),
        cmocka_unit_test_teardown(test_unix_socket, teardown),
    };
    /* hiredis writes with write(2): a dead server must not kill the test */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
