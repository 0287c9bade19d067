/* gate: accept, peek, check, hand on (see http/gate.h).
 *
 * A connection the gate holds is in one of two phases: CHECK (its head is
 * peeked at on every arrival of bytes, edge-triggered since nothing is
 * consumed) or LINGER (refused: answered, shut for writing, its bytes read
 * and dropped until the client closes or GATE_LINGER_MS pass). Handed on it
 * becomes LIVE: libmicrohttpd owns the socket and the gate keeps only its
 * deadline timer and its place in the counts, until libmicrohttpd reports
 * the connection closed.
 *
 * Cost on the accept path: one recv(MSG_PEEK) right after accept4 (a client
 * usually sends its request with the handshake's last ACK, so the head is
 * there), and two fcntl(F_GETFL/F_GETFD) in MHD_add_connection; a head that
 * is not there yet adds two epoll_ctl calls. Nothing on the path of later
 * requests of a kept-alive connection but timer-heap operations. */
#include "http/gate.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/shard.h"
#include "core/util.h"
#include "http/apierror.h"
#include "http/door_messages.h"
#include "http/gate_head.h"
#include "http/gate_ips.h"
#include "http/gate_stats.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100 /* after EMFILE/ENFILE: let connections close */
/* A full table evicts its oldest connection still sending its head, when
 * that one has had this long (or half of request_timeout_ms, if shorter):
 * sound clients send a head in milliseconds, so the oldest is the likeliest
 * to be a slow attacker; a younger table is a burst, which the reserve and
 * 503s handle. */
#define EVICT_AGE_MS 1000

enum gc_phase { GC_CHECK, GC_LINGER, GC_LIVE };
enum gc_wait { GW_NONE, GW_HEAD, GW_BODY }; /* the deadline of a LIVE connection */

typedef struct gate_conn gate_conn_t;

typedef struct conn_list {
    gate_conn_t *head, *tail; /* oldest first */
} conn_list_t;

struct gate_conn {
    gate_t *g;
    int fd;
    enum gc_phase phase;
    enum gc_wait wait;
    bool reserve;    /* accepted over the shard's share: only a probe may pass */
    bool ip_counted; /* counted in the per-address table */
    bool no_408;     /* LIVE: 100 Continue may be on the wire */
    bool messages;   /* LIVE: the current request is the Messages door's */
    loop_io_t io;
    loop_timer_t timer;
    gate_head_t head;
    size_t dropped;      /* LINGER: bytes read and dropped */
    uint64_t accepted_ms;
    conn_list_t *list;   /* the gate's CHECK or LINGER list, NULL once LIVE */
    gate_conn_t *prev, *next;
    socklen_t addr_len;
    struct sockaddr_storage addr;
};

struct gate {
    struct shard *shard;
    loop_t *loop;
    struct MHD_Daemon *mhd;
    gate_ips_t *ips;
    int lfd;
    loop_io_t lio;
    loop_timer_t resume; /* accepting again after EMFILE */
    unsigned share;      /* the shard's share of max_connections */
    unsigned n_live;     /* connections libmicrohttpd holds */
    unsigned n_held;     /* CHECK and LINGER connections within the share */
    unsigned n_reserve;  /* CHECK and LINGER connections of the reserve */
    conn_list_t checking, lingering;
    gate_conn_t *handing; /* the connection MHD_add_connection is adding */
    bool handed;          /* ... and libmicrohttpd took it */
    uint64_t warned_ms;
    /* refusals since the last warning, logged at most every 10 s */
    unsigned n_full, n_per_ip, n_evicted, n_timeouts;
    uint64_t told_ms;
    char *peek;
    size_t peek_cap;
};

static const char *reason(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* Writes a complete error answer on fd in one non-blocking send: the
 * OpenAI shape, or Anthropic's for the Messages door. Best effort: the
 * socket buffer of a new connection always has room for it. */
static void answer(gate_t *g, int fd, unsigned status, const char *code, const char *msg,
                   bool messages, const char *extra_headers)
{
    static const char hex[] = "0123456789abcdef";
    char id[24], head[512];
    uint64_t rnd = shard_random(g->shard);
    size_t len;
    char *body = apierror_body(msg, apierror_type_for_status(status), NULL, code, NULL, &len);
    buf_t out;
    int n;
    gate_stats_count(status, code);
    memcpy(id, "req_", 4);
    for (int i = 0; i < 16; i++)
        id[4 + i] = hex[(rnd >> (60 - 4 * i)) & 15];
    id[20] = '\0';
    buf_init(&out, len + 8192);
    if (messages && dm_error_from_openai(status, body, len, id, &out) == 0) {
        free(body);
        body = buf_detach(&out, &len);
    }
    buf_free(&out);
    n = snprintf(head, sizeof head,
                 "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\nx-request-id: %s\r\n%s\r\n",
                 status, reason(status), len, id, extra_headers ? extra_headers : "");
    if (n > 0 && (size_t)n < sizeof head) {
        struct iovec iov[2] = {{head, (size_t)n}, {body, len}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            log_debug("http: could not write a %u to a client: errno %d", status, errno);
    }
    free(body);
}

static void list_add(conn_list_t *l, gate_conn_t *c)
{
    c->list = l;
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static void list_del(gate_conn_t *c)
{
    conn_list_t *l = c->list;
    if (l == NULL)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    c->list = NULL;
}

/* How the limits are doing, for the log: once every 10 s at most, and only
 * when something was refused. */
static void tell(gate_t *g)
{
    uint64_t now = loop_now_ms(g->loop);
    if (now - g->told_ms < 10000)
        return;
    g->told_ms = now;
    log_warn("http: thread %u, last 10 s: %u connections refused with the table full "
             "(server.max_connections), %u over server.max_connections_per_ip, %u slow heads "
             "evicted, %u heads or bodies past server.request_timeout_ms",
             shard_id(g->shard), g->n_full, g->n_per_ip, g->n_evicted, g->n_timeouts);
    g->n_full = g->n_per_ip = g->n_evicted = g->n_timeouts = 0;
}

static void unlink_held(gate_t *g, gate_conn_t *c)
{
    list_del(c);
    if (c->reserve)
        g->n_reserve--;
    else
        g->n_held--;
}

static void give_ip(gate_t *g, gate_conn_t *c)
{
    if (c->ip_counted)
        gate_ips_give(g->ips, (struct sockaddr *)&c->addr);
    c->ip_counted = false;
}

/* Closes a CHECK or LINGER connection and frees it. */
static void drop(gate_conn_t *c)
{
    gate_t *g = c->g;
    loop_io_del(g->loop, &c->io);
    loop_timer_stop(g->loop, &c->timer);
    close(c->fd);
    unlink_held(g, c);
    give_ip(g, c);
    free(c);
}

static int watch(gate_conn_t *c)
{
    if (c->io.events != 0)
        return 0;
    return loop_io_set(c->g->loop, &c->io, EPOLLIN | EPOLLRDHUP | EPOLLET);
}

/* LINGER: reads and drops what the client still sends. */
static void drain(gate_conn_t *c)
{
    gate_t *g = c->g;
    for (;;) {
        ssize_t n = recv(c->fd, g->peek, g->peek_cap, 0);
        if (n > 0) {
            c->dropped += (size_t)n;
            if (c->dropped > (size_t)64 << 20) {
                drop(c);
                return;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        drop(c); /* the client closed (or reset): done */
        return;
    }
}

/* Answers a held connection and closes it after lingering. */
static void refuse(gate_conn_t *c, unsigned status, const char *code, const char *msg,
                   const char *extra_headers)
{
    gate_t *g = c->g;
    answer(g, c->fd, status, code, msg, c->head.messages, extra_headers);
    shutdown(c->fd, SHUT_WR);
    c->phase = GC_LINGER;
    list_del(c);
    list_add(&g->lingering, c);
    if (watch(c) < 0) {
        drop(c);
        return;
    }
    loop_timer_start(g->loop, &c->timer, GATE_LINGER_MS);
    drain(c);
}

static void hand_on(gate_conn_t *c)
{
    gate_t *g = c->g;
    enum MHD_Result ok;
    loop_io_del(g->loop, &c->io);
    loop_timer_stop(g->loop, &c->timer);
    unlink_held(g, c);
    c->reserve = false;
    g->handing = c;
    g->handed = false;
    ok = MHD_add_connection(g->mhd, c->fd, (struct sockaddr *)&c->addr, c->addr_len);
    g->handing = NULL;
    if (!g->handed) {
        /* refused (its connection limit, out of memory): it closed the socket */
        log_debug("http: libmicrohttpd refused a connection: errno %d", errno);
        give_ip(g, c);
        free(c);
    }
    /* taken but failed at once: its close notification freed c */
    (void)ok;
}

static gate_limits_t limits_of(const config_t *cfg)
{
    gate_limits_t lim = {cfg->max_header_bytes, cfg->max_body_bytes};
    return lim;
}

/* CHECK: peeks at what arrived; hands on, refuses, or waits for more. */
static void check(gate_conn_t *c, uint32_t events)
{
    gate_t *g = c->g;
    const config_t *cfg = shard_config(g->shard);
    gate_limits_t lim = limits_of(cfg);
    gate_verdict_t v;
    bool eof = (events & (EPOLLRDHUP | EPOLLHUP)) != 0;
    ssize_t n = recv(c->fd, g->peek, g->peek_cap, MSG_PEEK);
    enum gate_head_result r;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        drop(c); /* gone before a byte, or reset */
        return;
    }
    if (n < 0) {
        if (eof) {
            drop(c);
            return;
        }
        r = GATE_HEAD_MORE;
    } else {
        r = gate_head_check(&c->head, g->peek, (size_t)n, eof, &lim, &v);
    }
    if (r == GATE_HEAD_PASS) {
        if (c->reserve && !c->head.probe) {
            g->n_full++;
            tell(g);
            refuse(c, 503, "too_many_connections",
                   "The router has no free connection (server.max_connections); retry shortly.",
                   "Retry-After: 1\r\n");
        } else {
            hand_on(c);
        }
        return;
    }
    if (r == GATE_HEAD_REFUSE) {
        refuse(c, v.status, v.code, v.message, NULL);
        return;
    }
    if (watch(c) < 0) {
        drop(c);
        return;
    }
    if (!loop_timer_armed(&c->timer))
        loop_timer_start(g->loop, &c->timer, cfg->request_timeout_ms);
}

static void on_conn_io(loop_t *loop, loop_io_t *io, uint32_t events)
{
    gate_conn_t *c = io->arg;
    (void)loop;
    if (c->phase == GC_CHECK)
        check(c, events);
    else
        drain(c);
}

static void on_conn_timer(loop_t *loop, loop_timer_t *t)
{
    gate_conn_t *c = t->arg;
    const config_t *cfg = shard_config(c->g->shard);
    char msg[200];
    (void)loop;
    switch (c->phase) {
    case GC_CHECK:
        c->g->n_timeouts++;
        tell(c->g);
        snprintf(msg, sizeof msg,
                 "The request head did not arrive within %u ms (server.request_timeout_ms).",
                 cfg->request_timeout_ms);
        refuse(c, 408, "request_timeout", msg, NULL);
        break;
    case GC_LINGER:
        drop(c);
        break;
    case GC_LIVE:
        c->g->n_timeouts++;
        tell(c->g);
        /* libmicrohttpd holds it: write the 408 behind its back (nothing of
         * its own is being written now), then shut the socket down; it sees
         * the client close and ends the connection itself. */
        if (!c->no_408) {
            if (c->wait == GW_BODY)
                snprintf(msg, sizeof msg,
                         "The request body did not arrive within %u ms "
                         "(server.request_timeout_ms).",
                         cfg->request_timeout_ms);
            else
                snprintf(msg, sizeof msg,
                         "The next request did not arrive within %u s + %u ms "
                         "(server.connection_timeout_s + server.request_timeout_ms).",
                         cfg->connection_timeout_s, cfg->request_timeout_ms);
            answer(c->g, c->fd, 408, "request_timeout", msg, c->wait == GW_BODY && c->messages,
                   NULL);
        }
        c->wait = GW_NONE;
        shutdown(c->fd, SHUT_RDWR);
        break;
    }
}

/* The table is full: evicts the oldest connection still sending its head if
 * it had EVICT_AGE_MS. True when one was evicted. */
static bool evict(gate_t *g, const config_t *cfg)
{
    gate_conn_t *old = g->checking.head;
    uint64_t age = EVICT_AGE_MS < cfg->request_timeout_ms / 2 ? EVICT_AGE_MS
                                                              : cfg->request_timeout_ms / 2;
    if (old == NULL || loop_now_ms(g->loop) - old->accepted_ms < age)
        return false;
    answer(g, old->fd, 408, "request_timeout",
           "The request head did not arrive in time, and the connection table is full "
           "(server.max_connections).",
           old->head.messages, NULL);
    drop(old);
    g->n_evicted++;
    tell(g);
    return true;
}

static void admit(gate_t *g, int fd, const struct sockaddr_storage *ss, socklen_t sl)
{
    const config_t *cfg = shard_config(g->shard);
    bool over = g->n_live + g->n_held >= g->share;
    bool counted = false;
    gate_conn_t *c;
    if (over && evict(g, cfg))
        over = g->n_live + g->n_held >= g->share;
    if (over && g->n_reserve >= GATE_PROBE_RESERVE) {
        g->n_full++;
        tell(g);
        answer(g, fd, 503, "too_many_connections",
               "The router has no free connection (server.max_connections); retry shortly.",
               false, "Retry-After: 1\r\n");
        close(fd);
        return;
    }
    if (cfg->max_connections_per_ip > 0) {
        char msg[200];
        if (!gate_ips_take(g->ips, (const struct sockaddr *)ss, cfg->max_connections_per_ip)) {
            g->n_per_ip++;
            tell(g);
            snprintf(msg, sizeof msg,
                     "This client address has %u connections open, the limit "
                     "(server.max_connections_per_ip).",
                     cfg->max_connections_per_ip);
            answer(g, fd, 429, "too_many_connections", msg, false, "Retry-After: 1\r\n");
            close(fd);
            return;
        }
        counted = true;
    }
    c = xcalloc(1, sizeof *c);
    c->g = g;
    c->fd = fd;
    c->phase = GC_CHECK;
    c->reserve = over;
    c->ip_counted = counted;
    c->io.fd = fd;
    c->io.cb = on_conn_io;
    c->io.arg = c;
    c->timer.cb = on_conn_timer;
    c->timer.arg = c;
    c->addr_len = sl <= sizeof c->addr ? sl : sizeof c->addr;
    memcpy(&c->addr, ss, c->addr_len);
    c->accepted_ms = loop_now_ms(g->loop);
    list_add(&g->checking, c);
    if (over)
        g->n_reserve++;
    else
        g->n_held++;
    check(c, 0);
}

static void on_resume(loop_t *loop, loop_timer_t *t)
{
    gate_t *g = t->arg;
    if (g->lfd >= 0 && loop_io_set(loop, &g->lio, EPOLLIN) < 0)
        log_error("http: cannot watch the listening socket again: errno %d", errno);
}

static void on_listen(loop_t *loop, loop_io_t *io, uint32_t events)
{
    gate_t *g = io->arg;
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH && g->lfd >= 0; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(g->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(g, fd, &ss, sl);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* the listener stays readable: stop watching it for a moment */
            if (loop_now_ms(loop) - g->warned_ms >= 10000) {
                log_warn("http: cannot accept connections: %s (raise the open files limit, or "
                         "lower server.max_connections)",
                         strerror(errno));
                g->warned_ms = loop_now_ms(loop);
            }
            loop_io_del(loop, &g->lio);
            loop_timer_start(loop, &g->resume, ACCEPT_PAUSE_MS);
        }
        return;
    }
}

gate_t *gate_new(struct shard *shard, const config_t *cfg, struct gate_ips *ips)
{
    gate_t *g = xcalloc(1, sizeof *g);
    g->shard = shard;
    g->loop = shard_loop(shard);
    g->ips = ips;
    g->lfd = -1;
    g->share = cfg->max_connections / cfg->threads;
    if (g->share == 0)
        g->share = 1;
    g->resume.cb = on_resume;
    g->resume.arg = g;
    /* a head that passes fits (its wire bytes are at most what it is
     * charged); one byte more tells a head over the limit */
    g->peek_cap = cfg->max_header_bytes + 2;
    g->peek = xmalloc(g->peek_cap);
    return g;
}

unsigned gate_mhd_limit(const gate_t *g)
{
    return g->share + GATE_PROBE_RESERVE;
}

int gate_listen(gate_t *g, struct MHD_Daemon *d, const struct sockaddr *sa, socklen_t len,
                char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    g->mhd = d;
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (sa->sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail;
    if (bind(fd, sa, len) < 0 || listen(fd, 1024) < 0)
        goto fail;
    g->lfd = fd;
    g->lio.fd = fd;
    g->lio.cb = on_listen;
    g->lio.arg = g;
    if (loop_io_set(g->loop, &g->lio, EPOLLIN) < 0) {
        g->lfd = -1;
        goto fail;
    }
    return 0;
fail:
    snprintf(err, errlen, "%s", strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

void gate_quiesce(gate_t *g)
{
    if (g->lfd < 0)
        return;
    loop_io_del(g->loop, &g->lio);
    loop_timer_stop(g->loop, &g->resume);
    close(g->lfd);
    g->lfd = -1;
}

void gate_free(gate_t *g)
{
    if (g == NULL)
        return;
    gate_quiesce(g);
    while (g->checking.head)
        drop(g->checking.head);
    while (g->lingering.head)
        drop(g->lingering.head);
    free(g->peek);
    free(g);
}

void gate_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code)
{
    gate_t *g = cls;
    gate_conn_t *c;
    (void)conn;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        c = g->handing;
        *socket_context = c;
        if (c == NULL)
            return;
        c->phase = GC_LIVE;
        c->wait = GW_NONE;
        g->handed = true;
        g->n_live++;
        return;
    }
    c = *socket_context;
    if (c == NULL)
        return;
    loop_timer_stop(g->loop, &c->timer);
    g->n_live--;
    give_ip(g, c);
    free(c);
    *socket_context = NULL;
}

static gate_conn_t *live_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void gate_head_received(struct MHD_Connection *conn, bool expect_continue, bool messages)
{
    gate_conn_t *c = live_of(conn);
    if (c == NULL)
        return;
    c->wait = GW_BODY;
    c->no_408 = expect_continue;
    c->messages = messages;
    loop_timer_start(c->g->loop, &c->timer, shard_config(c->g->shard)->request_timeout_ms);
}

void gate_body_received(struct MHD_Connection *conn)
{
    gate_conn_t *c = live_of(conn);
    if (c == NULL || c->wait != GW_BODY)
        return;
    c->wait = GW_NONE;
    loop_timer_stop(c->g->loop, &c->timer);
}

void gate_request_done(struct MHD_Connection *conn)
{
    gate_conn_t *c = live_of(conn);
    const config_t *cfg;
    if (c == NULL)
        return;
    cfg = shard_config(c->g->shard);
    c->wait = GW_HEAD;
    c->no_408 = false;
    c->messages = false;
    loop_timer_start(c->g->loop, &c->timer,
                     (uint64_t)cfg->connection_timeout_s * 1000 + cfg->request_timeout_ms);
}

static enum MHD_Result scan_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    gate_scan_t *hs = cls;
    /* "name: value\r\n" (or "&name=value") and its entry */
    hs->bytes += key_size + value_size + 4 + GATE_FIELD_ENTRY_BYTES;
    if (kind == MHD_HEADER_KIND && !hs->refused) {
        hs->refused = gate_head_field(&hs->_framing, key, key_size, value, value_size,
                                      &hs->verdict) == GATE_HEAD_REFUSE;
        if (key_size == 6 && util_ieq("expect", key, 6))
            hs->expect = true;
    }
    return MHD_YES;
}

void gate_scan_head(struct MHD_Connection *conn, const char *method, const char *url,
                    const char *version, const config_t *cfg, gate_scan_t *out)
{
    gate_limits_t lim = limits_of(cfg);
    memset(out, 0, sizeof *out);
    out->bytes = strlen(method) + strlen(url) + 14; /* " HTTP/1.1\r\n", final CRLF */
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND,
                                scan_field, out);
    if (!out->refused)
        out->refused = gate_head_framing(&out->_framing, strcmp(version, "HTTP/1.0") == 0, &lim,
                                         &out->verdict) == GATE_HEAD_REFUSE;
}
