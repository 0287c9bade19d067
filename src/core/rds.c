/* rds: non-blocking Redis client on a loop_t, built on the hiredis 0.14
 * async API. See rds.h for the contract.
 *
 * hiredis 0.14 has no connect timeout, no command timeout and no timer hook,
 * so both are loop timers here. What 0.14 does on its own, and what this
 * file relies on (async.c of 0.14.1):
 *   - Any I/O error, EOF or failed connect makes hiredis free the context
 *     from inside redisAsyncHandleRead/Write: it calls every pending reply
 *     callback once with a NULL reply, then ev.cleanup, then onDisconnect
 *     (only if it had connected), then frees. A failed connect calls
 *     onConnect(REDIS_ERR) first.
 *   - redisAsyncFree from inside a reply callback (REDIS_IN_CALLBACK) only
 *     flags the context; hiredis frees it when the callback returns.
 *     onConnect runs WITHOUT that guard, so it must never free.
 *
 * Invariants:
 *   - At most one context (r->ac) at a time. ev_cleanup is the only place
 *     that forgets it; nothing touches a context after its cleanup.
 *   - A context is created only by the retry timer, never inside an I/O
 *     batch: the watcher r->io (embedded in r, reused for every context)
 *     was removed with the old socket before the batch that could still
 *     name it ended, so a stale event never reaches the new socket.
 *   - We free a context (connect timeout, stuck connection, failed
 *     AUTH/SELECT, rds_free) only from a timer callback, from rds_free, or
 *     from a reply callback (deferred by hiredis) — see conn_kill.
 *   - An op given to hiredis (op->in_hiredis) is freed only by its reply
 *     callback, which hiredis calls exactly once (reply or NULL). Its user
 *     callback runs at most once: op->done is set first, by whichever comes
 *     first of reply, timeout, cancel or deferred failure; a late reply
 *     then only frees the op.
 *   - state == CONN_UP implies a live context that accepts commands and
 *     whose server answered the handshake (AUTH, SELECT, PING); it is
 *     cleared before anything that can call a user callback while the
 *     context dies, so a callback that issues a new command fails fast.
 *     A TCP connect alone proves nothing: the kernel of a stopped
 *     (SIGSTOP) server still completes it from the listen backlog. The
 *     one exception is the first connection of a client (nothing is known
 *     yet): it is CONN_UP from its TCP connect, its commands queued behind
 *     the handshake; if the server does not answer, the connect timeout or
 *     the cooldown ends it like any stuck connection.
 *   - cooling is set only while no context exists and the retry timer
 *     holds the cooldown; the retry timer's callback clears it. */
#include "core/rds.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "core/log.h"
#include "core/util.h"

#define RDS_CONNECT_MIN_MS 200

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };
enum op_kind { OP_GET, OP_CMD };

struct rds_op {
    rds_t *r;
    enum op_kind kind;
    union {
        rds_get_cb get;
        rds_reply_cb reply;
    } cb;
    void *arg;
    loop_timer_t timer;          /* command timeout, armed while in hiredis */
    enum rds_status fail_status; /* for a queued (deferred) failure */
    bool done;                   /* user callback ran or was cancelled */
    bool in_hiredis;             /* hiredis holds it as privdata */
    bool queued;                 /* in r->failq */
    rds_op_t *next;              /* r->failq link */
};

struct rds {
    loop_t *loop;
    rds_addr_t addr;
    char desc[160]; /* address for logs, without credentials */
    unsigned timeout_ms;
    unsigned connect_timeout_ms;
    rds_policy_t pol;
    unsigned backoff_ms; /* upper bound of the next reconnect delay */
    uint64_t rng;        /* xorshift state for the reconnect jitter */

    redisAsyncContext *ac; /* NULL while down */
    enum conn_state state;
    bool established;   /* the current context's TCP connect succeeded */
    bool ever_ready;    /* some connection completed its handshake */
    bool down_logged;   /* the outage was logged once; the rest at debug */
    bool freeing;       /* inside rds_free: no user callbacks, no retry */
    bool cooling;       /* the retry timer holds a cooldown (no context) */
    const char *kill_reason;
    unsigned handshake_pending; /* AUTH/SELECT/PING replies still expected */
    unsigned timeouts_in_row;
    unsigned cb_depth; /* user callbacks running (rds_free guard) */

    loop_io_t io;
    uint32_t want; /* EPOLLIN/EPOLLOUT as hiredis asked */
    loop_timer_t conn_timer;  /* connect + handshake deadline */
    loop_timer_t retry_timer; /* next connect attempt */
    loop_timer_t fail_timer;  /* delivers queued failures */
    rds_op_t *failq;
    rds_op_t **failq_tail;

    size_t inflight; /* commands hiredis holds */
    rds_stats_t st;
};

/* ---- hiredis event adapter (model: hiredis adapters/ae.h) ---- */

static void ev_update(rds_t *r, uint32_t want)
{
    if (want == r->want)
        return;
    r->want = want;
    if (loop_io_set(r->loop, &r->io, want) < 0) {
        /* The context then stalls: the connect or command timers replace it. */
        log_warn("rds: cannot watch the socket of %s: %s", r->desc, strerror(errno));
    }
}

static void ev_add_read(void *p)
{
    rds_t *r = p;
    ev_update(r, r->want | EPOLLIN);
}

static void ev_del_read(void *p)
{
    rds_t *r = p;
    ev_update(r, r->want & ~(uint32_t)EPOLLIN);
}

static void ev_add_write(void *p)
{
    rds_t *r = p;
    ev_update(r, r->want | EPOLLOUT);
}

static void ev_del_write(void *p)
{
    rds_t *r = p;
    ev_update(r, r->want & ~(uint32_t)EPOLLOUT);
}

static uint64_t rng_next(rds_t *r)
{
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 0x2545F4914F6CDD1DULL;
}

/* The next connect attempt: after the cooldown when one just started,
 * else after a delay drawn from [b/2, b] ("equal jitter", so that the
 * clients of every thread and instance do not reconnect in step), b
 * doubling up to reconnect_max_ms. */
static void schedule_retry(rds_t *r)
{
    unsigned b = r->backoff_ms, d;
    if (r->cooling) {
        loop_timer_start(r->loop, &r->retry_timer, r->pol.cooldown_ms);
        return;
    }
    d = b / 2 + (unsigned)(rng_next(r) % (b - b / 2 + 1));
    loop_timer_start(r->loop, &r->retry_timer, d);
    r->backoff_ms = b >= r->pol.reconnect_max_ms / 2 ? r->pol.reconnect_max_ms : b * 2;
}

/* hiredis is freeing the context (it still exists during this call; its
 * pending reply callbacks have already run). The only place r->ac is
 * forgotten. */
static void ev_cleanup(void *p)
{
    rds_t *r = p;
    redisAsyncContext *ac = r->ac;
    const char *why;

    loop_io_del(r->loop, &r->io);
    r->want = 0;
    loop_timer_stop(r->loop, &r->conn_timer);
    r->state = CONN_DOWN;
    r->ac = NULL;
    r->handshake_pending = 0;
    if (r->freeing)
        return;
    why = r->kill_reason;
    if (why == NULL)
        why = ac != NULL && ac->c.errstr[0] ? ac->c.errstr : "connection closed";
    if (!r->down_logged)
        log_warn("rds: %s %s (%s); retrying in the background",
                 r->established ? "lost the connection to" : "cannot connect to", r->desc, why);
    else
        log_debug("rds: %s %s (%s)", r->established ? "lost the connection to" : "cannot connect to",
                  r->desc, why);
    r->down_logged = true;
    r->established = false;
    r->kill_reason = NULL;
    schedule_retry(r);
}

static void on_io(loop_t *loop, loop_io_t *io, uint32_t events)
{
    rds_t *r = io->arg;
    (void)loop;
    /* Errors and hang-ups go through the read path, where hiredis notices
     * them (a failed connect included) and frees the context. */
    if (r->ac != NULL && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        redisAsyncHandleRead(r->ac);
    if (r->ac != NULL && (events & EPOLLOUT) && (r->want & EPOLLOUT))
        redisAsyncHandleWrite(r->ac);
}

void rds_flush(rds_t *r)
{
    /* the same call the writable-socket handler makes, made early */
    if (r != NULL && r->ac != NULL && r->state == CONN_UP && (r->want & EPOLLOUT))
        redisAsyncHandleWrite(r->ac);
}

/* ---- connection ---- */

static void mark_down(rds_t *r)
{
    r->state = CONN_DOWN;
}

/* Frees the current context; its pending commands get RDS_DOWN. Call only
 * from a timer callback, rds_free, or a reply callback (hiredis then frees
 * once the callback returns) — never from onConnect. */
static void conn_kill(rds_t *r, const char *reason)
{
    redisAsyncContext *ac = r->ac;
    if (ac == NULL || (ac->c.flags & (REDIS_FREEING | REDIS_DISCONNECTING)))
        return; /* already on its way out */
    r->kill_reason = reason;
    mark_down(r);
    redisAsyncFree(ac);
}

static void conn_ready(rds_t *r)
{
    loop_timer_stop(r->loop, &r->conn_timer);
    r->state = CONN_UP;
    r->timeouts_in_row = 0;
    r->backoff_ms = r->pol.reconnect_min_ms;
    if (r->ever_ready)
        r->st.reconnects++;
    r->ever_ready = true;
    if (r->down_logged)
        log_info("rds: connected to %s", r->desc);
    else
        log_debug("rds: connected to %s", r->desc);
    r->down_logged = false;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rds_t *r = ac->data;
    if (status != REDIS_OK)
        return; /* hiredis frees the context next; ev_cleanup logs and retries */
    /* Up only once the handshake (at least a PING) is answered — except
     * the very first connection, which takes commands at once (queued
     * behind the handshake) so that the requests of a daemon that just
     * started do not miss Redis for a round trip: see the invariants. */
    r->established = true;
    if (!r->ever_ready)
        r->state = CONN_UP;
    if (r->handshake_pending == 0)
        conn_ready(r);
}

static void handshake_reply(redisAsyncContext *ac, redisReply *rep, const char *what)
{
    rds_t *r = ac->data;
    r->inflight--;
    if (rep == NULL) {
        mark_down(r); /* the context is going away */
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        /* The reply names the failure, never the password. */
        log_warn("rds: %s on %s failed: %.*s", what, r->desc,
                 (int)(rep->len > 200 ? 200 : rep->len), rep->str);
        r->down_logged = true;
        conn_kill(r, "the handshake (AUTH, SELECT or PING) failed");
        return;
    }
    if (r->handshake_pending > 0 && --r->handshake_pending == 0 && r->established)
        conn_ready(r);
}

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    handshake_reply(ac, reply, "AUTH");
}

static void on_select_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    handshake_reply(ac, reply, "SELECT");
}

static void on_ping_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    handshake_reply(ac, reply, "PING");
}

static void on_conn_timeout(loop_t *loop, loop_timer_t *t)
{
    rds_t *r = t->arg;
    (void)loop;
    conn_kill(r, r->established ? "connected, but no answer to the handshake in time"
                                : "connect timed out");
}

static int queue_handshake(rds_t *r, redisAsyncContext *ac)
{
    if (r->addr.password[0] != '\0') {
        const char *argv[3];
        size_t lens[3];
        int argc = 0;
        argv[argc] = "AUTH";
        lens[argc++] = 4;
        if (r->addr.user[0] != '\0') {
            argv[argc] = r->addr.user;
            lens[argc++] = strlen(r->addr.user);
        }
        argv[argc] = r->addr.password;
        lens[argc++] = strlen(r->addr.password);
        if (redisAsyncCommandArgv(ac, on_auth_reply, NULL, argc, argv, lens) != REDIS_OK)
            return -1;
        r->inflight++;
        r->handshake_pending++;
    }
    if (r->addr.db != 0) {
        char db[16];
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, 0};
        lens[1] = (size_t)snprintf(db, sizeof db, "%u", r->addr.db);
        if (redisAsyncCommandArgv(ac, on_select_reply, NULL, 2, argv, lens) != REDIS_OK)
            return -1;
        r->inflight++;
        r->handshake_pending++;
    }
    {
        /* the proof that the server answers, not only its kernel */
        const char *argv[1] = {"PING"};
        size_t lens[1] = {4};
        if (redisAsyncCommandArgv(ac, on_ping_reply, NULL, 1, argv, lens) != REDIS_OK)
            return -1;
        r->inflight++;
        r->handshake_pending++;
    }
    return 0;
}

/* Starts a connect attempt (retry timer only, see the invariants). */
static void conn_start(rds_t *r)
{
    redisAsyncContext *ac;

    if (r->addr.is_unix)
        ac = redisAsyncConnectUnix(r->addr.path);
    else
        ac = redisAsyncConnect(r->addr.host, (int)r->addr.port);
    if (ac == NULL || ac->err) {
        const char *why = ac ? ac->errstr : "out of memory";
        if (!r->down_logged)
            log_warn("rds: cannot connect to %s (%s); retrying in the background", r->desc, why);
        else
            log_debug("rds: cannot connect to %s (%s)", r->desc, why);
        r->down_logged = true;
        if (ac != NULL)
            redisAsyncFree(ac); /* nothing attached, nothing pending */
        schedule_retry(r);
        return;
    }
    (void)fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC);
    r->st.connect_attempts++;
    ac->data = r;
    r->ac = ac;
    r->state = CONN_CONNECTING;
    r->established = false;
    r->kill_reason = NULL;
    r->handshake_pending = 0;
    r->io.fd = ac->c.fd;
    r->want = 0;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    ac->ev.data = r;
    loop_timer_start(r->loop, &r->conn_timer, r->connect_timeout_ms);
    /* Watches for writability: the connect's completion. Cannot fail on a
     * new context (it refuses only a second callback). */
    (void)redisAsyncSetConnectCallback(ac, on_connect);
    /* Pipelined ahead of every command of this connection. */
    if (queue_handshake(r, ac) < 0)
        conn_kill(r, "cannot queue AUTH/SELECT");
}

static void on_retry(loop_t *loop, loop_timer_t *t)
{
    rds_t *r = t->arg;
    (void)loop;
    if (r->cooling) {
        r->cooling = false;
        log_info("rds: cooldown on %s over; reconnecting", r->desc);
    }
    if (r->ac == NULL)
        conn_start(r);
}

/* ---- commands ---- */

static void count(rds_t *r, enum rds_status st)
{
    switch (st) {
    case RDS_OK:
        r->st.ok++;
        break;
    case RDS_NIL:
        r->st.nil++;
        break;
    case RDS_ERROR:
        r->st.errors++;
        break;
    case RDS_TIMEOUT:
        r->st.timeouts++;
        break;
    case RDS_DOWN:
        r->st.down++;
        break;
    case RDS_SKIPPED:
        r->st.skipped++;
        break;
    }
}

/* Runs the user callback of op (op->done already set). */
static void deliver(rds_t *r, rds_op_t *op, enum rds_status st, redisReply *rep)
{
    count(r, st);
    r->cb_depth++;
    if (op->kind == OP_GET) {
        const char *val = NULL;
        size_t len = 0;
        if (st == RDS_OK && rep != NULL) {
            val = rep->str;
            len = rep->len;
        }
        op->cb.get(op->arg, st, val, len);
    } else {
        op->cb.reply(op->arg, st, rep);
    }
    r->cb_depth--;
}

static void on_fail_timer(loop_t *loop, loop_timer_t *t)
{
    rds_t *r = t->arg;
    rds_op_t *list = r->failq;
    (void)loop;
    /* Failures queued by the callbacks below wait for the next pass. */
    r->failq = NULL;
    r->failq_tail = &r->failq;
    while (list != NULL) {
        rds_op_t *op = list;
        list = op->next;
        if (!op->done) {
            op->done = true;
            deliver(r, op, op->fail_status, NULL);
        }
        free(op);
    }
}

/* Delivers st at the loop's next timer pass (never from the caller's
 * stack). */
static rds_op_t *fail_later(rds_t *r, rds_op_t *op, enum rds_status st)
{
    op->fail_status = st;
    op->queued = true;
    op->next = NULL;
    *r->failq_tail = op;
    r->failq_tail = &op->next;
    if (!loop_timer_armed(&r->fail_timer))
        loop_timer_start(r->loop, &r->fail_timer, 0);
    return op;
}

static enum rds_status reply_status(const rds_op_t *op, const redisReply *rep)
{
    if (rep == NULL)
        return RDS_DOWN;
    if (rep->type == REDIS_REPLY_ERROR)
        return RDS_ERROR;
    if (rep->type == REDIS_REPLY_NIL)
        return RDS_NIL;
    if (op->kind == OP_GET && rep->type != REDIS_REPLY_STRING)
        return RDS_ERROR;
    return RDS_OK;
}

static void on_op_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rds_op_t *op = priv;
    rds_t *r = op->r;
    redisReply *rep = reply;
    enum rds_status st;
    (void)ac;

    op->in_hiredis = false;
    r->inflight--;
    loop_timer_stop(r->loop, &op->timer);
    if (rep == NULL)
        mark_down(r); /* the context is dying: new commands must fail fast */
    else
        r->timeouts_in_row = 0;
    if (op->done || r->freeing) {
        free(op); /* timed out or cancelled earlier: the late reply is dropped */
        return;
    }
    op->done = true;
    st = reply_status(op, rep);
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        log_debug("rds: command failed on %s: %.*s", r->desc,
                  (int)(rep->len > 200 ? 200 : rep->len), rep->str);
    deliver(r, op, st, op->kind == OP_GET && st != RDS_OK ? NULL : rep);
    free(op);
}

static void on_op_timeout(loop_t *loop, loop_timer_t *t)
{
    rds_op_t *op = t->arg;
    rds_t *r = op->r;
    (void)loop;
    /* hiredis still holds op: on_op_reply frees it when the late reply
     * arrives or the context ends. */
    op->done = true;
    r->timeouts_in_row++;
    deliver(r, op, RDS_TIMEOUT, NULL);
    if (r->timeouts_in_row >= r->pol.cooldown_after && r->state == CONN_UP) {
        /* Stuck (a frozen or overloaded server): every request would wait
         * for its timeout. Stop trying for a while instead. */
        log_warn("rds: %u commands in a row timed out on %s; not using it for %u ms "
                 "(requests fall back at once), then reconnecting",
                 r->timeouts_in_row, r->desc, r->pol.cooldown_ms);
        r->down_logged = true;
        r->cooling = true;
        r->st.cooldowns++;
        conn_kill(r, "commands timed out");
    }
}

static rds_op_t *op_new(rds_t *r, enum op_kind kind, void *arg)
{
    rds_op_t *op = xcalloc(1, sizeof *op);
    op->r = r;
    op->kind = kind;
    op->arg = arg;
    op->timer.cb = on_op_timeout;
    op->timer.arg = op;
    return op;
}

static rds_op_t *submit(rds_t *r, rds_op_t *op, int argc, const char **argv, const size_t *lens,
                        unsigned wait_ms)
{
    uint64_t now, lag;
    if (wait_ms == 0)
        return fail_later(r, op, RDS_SKIPPED);
    if (r->state != CONN_UP)
        return fail_later(r, op, RDS_DOWN);
    if (r->inflight >= RDS_MAX_INFLIGHT)
        return fail_later(r, op, RDS_ERROR);
    if (redisAsyncCommandArgv(r->ac, on_op_reply, op, argc, argv, lens) != REDIS_OK)
        return fail_later(r, op, RDS_ERROR);
    op->in_hiredis = true;
    r->inflight++;
    /* The loop's clock is that of the iteration's start: count from now, so
     * the work done earlier in this iteration does not shorten the timeout. */
    now = util_now_ms();
    lag = now > loop_now_ms(r->loop) ? now - loop_now_ms(r->loop) : 0;
    loop_timer_start(r->loop, &op->timer, (wait_ms < r->timeout_ms ? wait_ms : r->timeout_ms) + lag);
    return op;
}

rds_op_t *rds_get(rds_t *r, const char *key, size_t klen, unsigned wait_ms, rds_get_cb cb,
                  void *arg)
{
    rds_op_t *op = op_new(r, OP_GET, arg);
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, klen};
    op->cb.get = cb;
    return submit(r, op, 2, argv, lens, wait_ms);
}

/* Commands that switch the connection into a push mode where replies no
 * longer match commands one to one. */
static bool is_push_mode_command(const char *name, size_t len)
{
    static const char *const bad[] = {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE",
                                      "PUNSUBSCRIBE", "MONITOR"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++)
        if (util_ieq(bad[i], name, len))
            return true;
    return false;
}

rds_op_t *rds_command_argv(rds_t *r, int argc, const char **argv, const size_t *argvlen,
                           unsigned wait_ms, rds_reply_cb cb, void *arg)
{
    rds_op_t *op = op_new(r, OP_CMD, arg);
    op->cb.reply = cb;
    if (argc < 1 || is_push_mode_command(argv[0], argvlen[0]))
        return fail_later(r, op, RDS_ERROR);
    return submit(r, op, argc, argv, argvlen, wait_ms);
}

void rds_cancel(rds_t *r, rds_op_t *op)
{
    if (op == NULL || op->done)
        return;
    op->done = true;
    loop_timer_stop(r->loop, &op->timer);
    /* Held by hiredis or by the failure queue: freed there, silently. */
    if (!op->in_hiredis && !op->queued)
        free(op);
}

static void on_set_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rds_t *r = priv;
    redisReply *rep = reply;
    (void)ac;
    r->inflight--;
    if (rep == NULL) {
        mark_down(r);
        if (!r->freeing)
            r->st.errors++;
        return;
    }
    r->timeouts_in_row = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        r->st.errors++;
        log_debug("rds: SET failed on %s: %.*s", r->desc, (int)(rep->len > 200 ? 200 : rep->len),
                  rep->str);
    }
}

void rds_set(rds_t *r, const char *key, size_t klen, const char *val, size_t vlen, unsigned ttl_s)
{
    char ttl[16];
    const char *argv[5] = {"SET", key, val, "EX", ttl};
    size_t lens[5] = {3, klen, vlen, 2, 0};
    int argc = 3;

    if (r->state != CONN_UP || r->inflight >= RDS_MAX_INFLIGHT ||
        sdslen(r->ac->c.obuf) >= RDS_MAX_UNSENT_BYTES) {
        r->st.dropped_writes++;
        return;
    }
    if (ttl_s > 0) {
        lens[4] = (size_t)snprintf(ttl, sizeof ttl, "%u", ttl_s);
        argc = 5;
    }
    if (redisAsyncCommandArgv(r->ac, on_set_reply, r, argc, argv, lens) != REDIS_OK) {
        r->st.dropped_writes++;
        return;
    }
    r->inflight++;
}

/* ---- lifetime ---- */

rds_t *rds_new(loop_t *loop, const rds_addr_t *addr, unsigned timeout_ms)
{
    rds_t *r;
    if (addr->is_unix ? addr->path[0] != '/' : (addr->host[0] == '\0' || addr->port == 0))
        return NULL;
    r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->addr = *addr;
    r->timeout_ms = timeout_ms ? timeout_ms : RDS_DEFAULT_TIMEOUT_MS;
    r->connect_timeout_ms =
        r->timeout_ms * 4 < RDS_CONNECT_MIN_MS ? RDS_CONNECT_MIN_MS : r->timeout_ms * 4;
    r->pol = RDS_POLICY_DEFAULT;
    r->backoff_ms = r->pol.reconnect_min_ms;
    util_random(&r->rng, sizeof r->rng);
    r->rng |= 1;
    if (addr->is_unix)
        snprintf(r->desc, sizeof r->desc, "redis at unix:%s db %u", addr->path, addr->db);
    else if (strchr(addr->host, ':'))
        snprintf(r->desc, sizeof r->desc, "redis at [%s]:%u db %u", addr->host, addr->port,
                 addr->db);
    else
        snprintf(r->desc, sizeof r->desc, "redis at %s:%u db %u", addr->host, addr->port, addr->db);
    r->io.fd = -1;
    r->io.cb = on_io;
    r->io.arg = r;
    r->conn_timer.cb = on_conn_timeout;
    r->conn_timer.arg = r;
    r->retry_timer.cb = on_retry;
    r->retry_timer.arg = r;
    r->fail_timer.cb = on_fail_timer;
    r->fail_timer.arg = r;
    r->failq_tail = &r->failq;
    /* Connect from the loop, not from the caller (which may be another
     * thread before the loop starts, or inside an I/O batch). */
    loop_timer_start(loop, &r->retry_timer, 0);
    return r;
}

void rds_free(rds_t *r)
{
    rds_op_t *op, *next;
    if (r == NULL)
        return;
    if (r->cb_depth > 0) {
        log_error("rds: rds_free called from inside an rds callback (use-after-free ahead)");
        abort();
    }
    r->freeing = true;
    loop_timer_stop(r->loop, &r->conn_timer);
    loop_timer_stop(r->loop, &r->retry_timer);
    loop_timer_stop(r->loop, &r->fail_timer);
    if (r->ac != NULL) {
        /* Reply callbacks run now with NULL and free their ops silently;
         * ev_cleanup removes the watcher. */
        mark_down(r);
        redisAsyncFree(r->ac);
    }
    for (op = r->failq; op != NULL; op = next) {
        next = op->next;
        free(op);
    }
    explicit_bzero(r->addr.password, sizeof r->addr.password);
    free(r);
}

void rds_set_policy(rds_t *r, const rds_policy_t *p)
{
    r->pol = *p;
    if (r->pol.cooldown_after < 1)
        r->pol.cooldown_after = 1;
    if (r->pol.reconnect_min_ms < 10)
        r->pol.reconnect_min_ms = 10;
    if (r->pol.reconnect_max_ms < r->pol.reconnect_min_ms)
        r->pol.reconnect_max_ms = r->pol.reconnect_min_ms;
    if (r->backoff_ms < r->pol.reconnect_min_ms)
        r->backoff_ms = r->pol.reconnect_min_ms;
    if (r->backoff_ms > r->pol.reconnect_max_ms)
        r->backoff_ms = r->pol.reconnect_max_ms;
}

enum rds_state rds_get_state(const rds_t *r)
{
    if (r->cooling)
        return RDS_STATE_COOLING;
    return r->state == CONN_UP ? RDS_STATE_UP : RDS_STATE_DOWN;
}

const char *rds_state_name(enum rds_state st)
{
    switch (st) {
    case RDS_STATE_UP:
        return "up";
    case RDS_STATE_COOLING:
        return "cooling";
    case RDS_STATE_DOWN:
        break;
    }
    return "down";
}

void rds_get_stats(const rds_t *r, rds_stats_t *out)
{
    *out = r->st;
    out->in_flight = r->inflight;
    out->connected = r->state == CONN_UP;
    out->state = rds_get_state(r);
}
