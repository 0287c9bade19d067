/* openloop: fixed-rate, open-loop HTTP/1.1 latency client.
 *
 *   openloop -p PORT -P PATH -b BODY_FILE -r RATE -d SECONDS [-c CONNS]
 *            [-H 'Name: value']... [-w WARMUP_SECONDS] [-T TIMEOUT_SECONDS]
 *            [-q QUANTUM_US] [--ttfb] [-o RAW_LATENCIES_FILE]
 *
 * Request i is scheduled at start + i/RATE and sent at that instant whatever
 * happened to earlier requests; its latency is measured from the scheduled
 * instant, not from the moment it could actually be written. A server that
 * stalls is therefore charged for every request scheduled during the stall
 * ("coordinated omission" avoided), unlike closed-loop tools such as wrk.
 *
 * Connections: a pool of CONNS keep-alive connections (default 64) to
 * 127.0.0.1:PORT, one request in flight on each (no pipelining). When no
 * connection is idle at a scheduled instant a new one is opened, up to
 * 4 x CONNS; past that the request is counted "late" and queued, and is sent
 * as soon as a connection frees up (its latency still counts from its
 * scheduled instant). Waiting is done in epoll_wait on a timerfd armed at the
 * next scheduled instant: no busy polling. Each wake-up costs CPU (in a VM,
 * tens of microseconds); -q QUANTUM_US wakes only on multiples of QUANTUM
 * and sends everything due then, trading up to QUANTUM of added latency
 * (which shows in the figures, being measured from the scheduled instant)
 * for fewer wake-ups at high rates. Default 0: wake at each instant.
 *
 * Responses: status line, headers, then a Content-Length, chunked (SSE
 * streams) or close-delimited body; a response is complete at the end of its
 * body. --ttfb also records the time from the scheduled instant to the first
 * body byte (for chunked bodies the first byte of chunk data).
 *
 * Requests scheduled during the warm-up (default 1 s) are sent but left out
 * of the figures. After the last scheduled instant the client waits for
 * outstanding requests up to TIMEOUT (default 10 s); a request not answered
 * TIMEOUT seconds after its scheduled instant counts as a timeout.
 *
 * Output: one line per metric, then one final line of key=value pairs
 * (latencies in microseconds). Latency percentiles cover the 2xx answers of
 * the measured period; "send_lag" is the delay between a request's scheduled
 * instant and the moment the client wrote it while a connection was free:
 * if it is large the client itself could not keep up and the figures are
 * not trustworthy. -o writes one line per measured request:
 * "sched_us latency_us [ttfb_us]", sched_us relative to the end of the
 * warm-up, latency -1 for a request that failed.
 *
 * Exit status: 0 if no measured request failed, 1 otherwise, 2 on usage
 * errors.
 *
 * Standalone (libc, Linux epoll); not part of `make test`. Build:
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror \
 *      -o build/bench/openloop tests/bench/openloop.c -lm */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "httpresp.h"

/* ------------------------------------------------------------------------ */

enum { C_FREE, C_CONNECTING, C_IDLE, C_BUSY };
enum { E_STATUS, E_RESET, E_TIMEOUT, E_CONNECT, E_PARSE, E_N };

struct conn {
    int fd;
    uint8_t state, want_out, got_byte;
    int idle_pos;
    int64_t req; /* request in flight, -1 if none */
    size_t woff;
    uint64_t served;
    struct hp p;
};

static struct {
    int port, epfd, tfd, ttfb;
    double rate, dur, warm, timeout;
    int64_t quantum; /* ns; 0 = wake at every scheduled instant */
    char *req;
    size_t req_len;
    struct conn *conns;
    int cap, nopen, max_open, opened, *idle, nidle, *freeslots, nfree;
    int64_t t0, tmeas, total, m0;
    int64_t *pend; /* FIFO of late requests */
    int64_t pend_head, pend_tail;
    double *lat, *ttfb_v; /* per request, microseconds; <0 = none */
    float *lag;           /* per request send lag, microseconds; <0 = not sent */
    int64_t sent, late, completed, errs[E_N], warm_errs, inflight;
    int64_t last_send_ns, first_done_ns, last_done_ns;
    struct sockaddr_in sa;
} G;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t sched_ns(int64_t i)
{
    return G.t0 + (int64_t)((double)i * 1e9 / G.rate);
}

static void ep_set(struct conn *c, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u),
                             .data.u64 = (uint64_t)(c - G.conns)};
    if (c->want_out != out) {
        epoll_ctl(G.epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = (uint8_t)out;
    }
}

static void idle_remove(struct conn *c)
{
    int pos = c->idle_pos, last = G.idle[--G.nidle];
    G.idle[pos] = last;
    G.conns[last].idle_pos = pos;
    c->idle_pos = -1;
}

static void count_error(int64_t req, int kind)
{
    if (req >= G.m0)
        G.errs[kind]++;
    else
        G.warm_errs++;
}

static void close_conn(struct conn *c)
{
    if (c->state == C_IDLE)
        idle_remove(c);
    if (c->req >= 0) {
        G.inflight--;
        c->req = -1;
    }
    close(c->fd);
    c->fd = -1;
    c->state = C_FREE;
    G.freeslots[G.nfree++] = (int)(c - G.conns);
    G.nopen--;
}

/* The request on c failed: count it and drop the connection. */
static void fail_conn(struct conn *c, int kind)
{
    if (c->req >= 0)
        count_error(c->req, kind);
    close_conn(c);
}

static void try_write(struct conn *c)
{
    while (c->woff < G.req_len) {
        ssize_t n = send(c->fd, G.req + c->woff, G.req_len - c->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ep_set(c, 1);
                return;
            }
            if (errno == EINTR)
                continue;
            fail_conn(c, E_RESET);
            return;
        }
        c->woff += (size_t)n;
    }
    ep_set(c, 0);
}

/* Starts request i on connection c (connected, no request in flight). */
static void start_req(struct conn *c, int64_t i)
{
    int64_t t = now_ns();
    c->req = i;
    c->woff = 0;
    c->got_byte = 0;
    hp_init(&c->p);
    c->state = C_BUSY;
    G.inflight++;
    if (i >= G.m0) {
        G.sent++;
        G.last_send_ns = t;
    }
    try_write(c);
}

/* Opens a connection; with req >= 0 the request is sent once connected.
 * Returns the connection or NULL (request then counted as failed). */
static struct conn *open_conn(int64_t req)
{
    struct conn *c;
    int fd, one = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT};

    if (G.nfree == 0)
        return NULL;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (req >= 0)
            count_error(req, E_CONNECT);
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&G.sa, sizeof G.sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        if (req >= 0)
            count_error(req, E_CONNECT);
        return NULL;
    }
    c = &G.conns[G.freeslots[--G.nfree]];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->state = C_CONNECTING;
    c->want_out = 1;
    c->idle_pos = -1;
    c->req = req;
    if (req >= 0)
        G.inflight++;
    ev.data.u64 = (uint64_t)(c - G.conns);
    epoll_ctl(G.epfd, EPOLL_CTL_ADD, fd, &ev);
    G.nopen++;
    G.opened++;
    if (G.nopen > G.max_open)
        G.max_open = G.nopen;
    return c;
}

static void make_idle(struct conn *c)
{
    c->state = C_IDLE;
    c->req = -1;
    c->idle_pos = G.nidle;
    G.idle[G.nidle++] = (int)(c - G.conns);
}

/* c is connected and free: give it the oldest late request, or park it. */
static void release(struct conn *c)
{
    if (G.pend_head < G.pend_tail)
        start_req(c, G.pend[G.pend_head++]);
    else
        make_idle(c);
}

/* Request i is due (the client's own delay is recorded as its send lag). */
static void dispatch(int64_t i, int64_t now)
{
    G.lag[i] = (float)((double)(now - sched_ns(i)) / 1e3);
    if (G.nidle > 0) {
        struct conn *c = &G.conns[G.idle[G.nidle - 1]];
        idle_remove(c);
        start_req(c, i);
        return;
    }
    if (G.pend_head == G.pend_tail && G.nopen < G.cap) {
        open_conn(i); /* sent once connected; connect time counts as latency */
        return;
    }
    if (i >= G.m0)
        G.late++;
    G.pend[G.pend_tail++] = i;
}

/* Late requests wait for a connection; open new ones if below the cap. */
static void service_pending(void)
{
    while (G.pend_head < G.pend_tail) {
        if (G.nidle > 0) {
            struct conn *c = &G.conns[G.idle[G.nidle - 1]];
            idle_remove(c);
            start_req(c, G.pend[G.pend_head++]);
            continue;
        }
        if (G.nopen >= G.cap)
            return;
        open_conn(G.pend[G.pend_head++]);
    }
}

static void on_data(void *ctx, const char *d, size_t n)
{
    struct conn *c = ctx;
    (void)d;
    if (n > 0 && !c->got_byte) {
        c->got_byte = 1;
        if (G.ttfb)
            G.ttfb_v[c->req] = (double)(now_ns() - sched_ns(c->req)) / 1e3;
    }
}

static void response_done(struct conn *c, size_t extra)
{
    int64_t i = c->req, t = now_ns();
    int ok = c->p.status >= 200 && c->p.status < 300;

    if (ok) {
        G.lat[i] = (double)(t - sched_ns(i)) / 1e3;
        if (G.ttfb && !c->got_byte)
            G.ttfb_v[i] = G.lat[i]; /* empty body */
        if (i >= G.m0) {
            if (G.completed++ == 0)
                G.first_done_ns = t;
            G.last_done_ns = t;
        }
    } else {
        if (G.ttfb)
            G.ttfb_v[i] = -1;
        count_error(i, E_STATUS);
    }
    c->served++;
    if (extra > 0) { /* bytes nobody asked for: the answer is suspect */
        if (ok) {
            G.lat[i] = -1;
            if (i >= G.m0)
                G.completed--;
            count_error(i, E_PARSE);
        }
        close_conn(c);
        return;
    }
    G.inflight--;
    c->req = -1;
    /* Closed by the server, or answered before the request was fully
     * written (the rest of it would be read as a new request): retire. */
    if (c->p.close || c->p.st == S_BODY_EOF || c->woff < G.req_len) {
        close_conn(c);
        return;
    }
    release(c);
}

static void on_event(struct conn *c, uint32_t ev)
{
    static char buf[1 << 16];

    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
            fail_conn(c, E_CONNECT);
            return;
        }
        if (c->req >= 0) {
            G.inflight--; /* start_req counts it again */
            start_req(c, c->req);
        } else {
            ep_set(c, 0);
            release(c);
        }
        return;
    }
    if ((ev & EPOLLOUT) && c->state == C_BUSY && c->woff < G.req_len) {
        try_write(c);
        if (c->state == C_FREE)
            return;
    }
    if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        size_t used = 0;
        int r;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (c->state == C_IDLE) { /* closed (or spoke) while idle: retire it */
            close_conn(c);
            return;
        }
        if (n <= 0) {
            if (n == 0 && hp_eof(&c->p) == HP_DONE) {
                c->p.close = 1;
                response_done(c, 0);
            } else {
                fail_conn(c, E_RESET);
            }
            return;
        }
        r = hp_feed(&c->p, buf, (size_t)n, &used, on_data, c);
        if (r == HP_ERR) {
            fail_conn(c, E_PARSE);
            return;
        }
        if (r == HP_DONE)
            response_done(c, (size_t)n - used);
        return; /* level-triggered: come back for the rest */
    }
}

/* Requests outstanding (or queued) longer than the timeout. */
static void expire(int64_t now)
{
    int64_t lim = (int64_t)(G.timeout * 1e9);
    for (int k = 0; k < G.cap; k++) {
        struct conn *c = &G.conns[k];
        if (c->state != C_FREE && c->req >= 0 && now - sched_ns(c->req) > lim)
            fail_conn(c, E_TIMEOUT);
    }
    while (G.pend_head < G.pend_tail && now - sched_ns(G.pend[G.pend_head]) > lim)
        count_error(G.pend[G.pend_head++], E_TIMEOUT);
}

static void arm(int64_t t)
{
    struct itimerspec its = {{0, 0}, {(time_t)(t / 1000000000), (long)(t % 1000000000)}};
    timerfd_settime(G.tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p)
{
    size_t k;
    if (n == 0)
        return 0;
    k = (size_t)ceil(p / 100.0 * (double)n);
    return v[k == 0 ? 0 : k - 1];
}

struct pcts {
    size_t n;
    double p50, p90, p99, p999, max, mean;
};

static struct pcts summarize(double *v, size_t n)
{
    struct pcts s = {.n = n};
    double sum = 0;
    qsort(v, n, sizeof *v, cmp_d);
    for (size_t k = 0; k < n; k++)
        sum += v[k];
    s.p50 = pct(v, n, 50);
    s.p90 = pct(v, n, 90);
    s.p99 = pct(v, n, 99);
    s.p999 = pct(v, n, 99.9);
    s.max = n ? v[n - 1] : 0;
    s.mean = n ? sum / (double)n : 0;
    return s;
}

#define PROG "openloop"

/* A number option: the whole argument must parse, else usage error. */
static double num_arg(const char *s, int opt)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v)) {
        fprintf(stderr, "%s: bad number for -%c: %s\n", PROG, opt, s);
        exit(2);
    }
    return v;
}

static int int_arg(const char *s, int opt)
{
    double v = num_arg(s, opt);
    if (v < 0 || v > 1e9 || v != floor(v)) {
        fprintf(stderr, "%s: bad count for -%c: %s\n", PROG, opt, s);
        exit(2);
    }
    return (int)v;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: openloop -p PORT -P PATH -b BODY_FILE -r RATE -d SECONDS [-c CONNS]\n"
            "                [-H 'Name: value']... [-w WARMUP_SECONDS] [-T TIMEOUT_SECONDS]\n"
            "                [-q QUANTUM_US] [--ttfb] [-o RAW_LATENCIES_FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"ttfb", no_argument, NULL, 'F'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *path = NULL, *body_file = NULL, *raw = NULL;
    char *hdrs = NULL, *body = NULL;
    size_t hdrs_len = 0, body_len = 0, body_cap = 0;
    int conns = 64, opt, has_ct = 0, has_host = 0;
    struct epoll_event evs[256];
    struct rlimit rl;
    int64_t next = 0, end_ns = 0, last_expire = 0;
    FILE *f;

    G.rate = 0;
    G.dur = 0;
    G.warm = 1;
    G.timeout = 10;
    while ((opt = getopt_long(argc, argv, "p:P:b:r:d:c:H:w:T:q:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p': G.port = int_arg(optarg, opt); break;
        case 'P': path = optarg; break;
        case 'b': body_file = optarg; break;
        case 'r': G.rate = num_arg(optarg, opt); break;
        case 'd': G.dur = num_arg(optarg, opt); break;
        case 'c': conns = int_arg(optarg, opt); break;
        case 'w': G.warm = num_arg(optarg, opt); break;
        case 'T': G.timeout = num_arg(optarg, opt); break;
        case 'q': G.quantum = (int64_t)(num_arg(optarg, opt) * 1e3); break;
        case 'o': raw = optarg; break;
        case 'F': G.ttfb = 1; break;
        case 'H': {
            size_t l = strlen(optarg);
            if (strncasecmp(optarg, "content-type:", 13) == 0)
                has_ct = 1;
            if (strncasecmp(optarg, "host:", 5) == 0)
                has_host = 1;
            hdrs = realloc(hdrs, hdrs_len + l + 3);
            memcpy(hdrs + hdrs_len, optarg, l);
            memcpy(hdrs + hdrs_len + l, "\r\n", 3);
            hdrs_len += l + 2;
            break;
        }
        default: usage();
        }
    }
    if (G.port <= 0 || G.port > 65535 || path == NULL || body_file == NULL || G.rate <= 0 ||
        G.dur <= 0 || conns <= 0 || G.warm < 0 || G.timeout <= 0 || G.quantum < 0 || optind != argc)
        usage();

    f = fopen(body_file, "rb");
    if (f == NULL) {
        perror(body_file);
        return 2;
    }
    for (;;) {
        size_t n;
        if (body_len == body_cap) {
            body_cap = body_cap ? body_cap * 2 : 65536;
            body = realloc(body, body_cap);
        }
        n = fread(body + body_len, 1, body_cap - body_len, f);
        if (n == 0)
            break;
        body_len += n;
    }
    fclose(f);
    {
        size_t cap = strlen(path) + hdrs_len + body_len + 256;
        G.req = malloc(cap);
        G.req_len = (size_t)snprintf(G.req, cap, "POST %s HTTP/1.1\r\n", path);
        if (!has_host)
            G.req_len += (size_t)snprintf(G.req + G.req_len, cap - G.req_len,
                                          "Host: 127.0.0.1:%d\r\n", G.port);
        if (!has_ct)
            G.req_len += (size_t)snprintf(G.req + G.req_len, cap - G.req_len,
                                          "Content-Type: application/json\r\n");
        G.req_len += (size_t)snprintf(G.req + G.req_len, cap - G.req_len,
                                      "Content-Length: %zu\r\n", body_len);
        if (hdrs_len)
            memcpy(G.req + G.req_len, hdrs, hdrs_len);
        G.req_len += hdrs_len;
        memcpy(G.req + G.req_len, "\r\n", 2);
        G.req_len += 2;
        if (body_len)
            memcpy(G.req + G.req_len, body, body_len);
        G.req_len += body_len;
        free(body);
        free(hdrs);
    }

    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* timer wake-ups to the microsecond */
    G.cap = conns * 4;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)G.cap + 16) {
        fprintf(stderr, "openloop: RLIMIT_NOFILE %llu is too low for %d connections\n",
                (unsigned long long)rl.rlim_cur, G.cap);
        return 2;
    }
    G.total = (int64_t)ceil(G.rate * (G.warm + G.dur));
    G.m0 = (int64_t)ceil(G.rate * G.warm);
    if (G.m0 > G.total)
        G.m0 = G.total;
    G.conns = calloc((size_t)G.cap, sizeof *G.conns);
    G.idle = calloc((size_t)G.cap, sizeof *G.idle);
    G.freeslots = calloc((size_t)G.cap, sizeof *G.freeslots);
    G.pend = calloc((size_t)G.total + 1, sizeof *G.pend);
    G.lat = malloc((size_t)G.total * sizeof *G.lat + 1);
    G.ttfb_v = malloc((size_t)G.total * sizeof *G.ttfb_v + 1);
    G.lag = malloc((size_t)G.total * sizeof *G.lag + 1);
    if (!G.conns || !G.idle || !G.freeslots || !G.pend || !G.lat || !G.ttfb_v || !G.lag) {
        fprintf(stderr, "openloop: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < G.total; i++)
        G.lat[i] = G.ttfb_v[i] = -1, G.lag[i] = -1;
    for (int k = 0; k < G.cap; k++) {
        G.conns[k].fd = -1;
        G.conns[k].req = -1;
        G.freeslots[G.nfree++] = G.cap - 1 - k;
    }
    G.sa.sin_family = AF_INET;
    G.sa.sin_port = htons((unsigned short)G.port);
    G.sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    G.epfd = epoll_create1(EPOLL_CLOEXEC);
    G.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
        epoll_ctl(G.epfd, EPOLL_CTL_ADD, G.tfd, &ev);
    }

    /* Open the pool before the clock starts. */
    for (int k = 0; k < conns; k++)
        open_conn(-1);
    {
        int64_t deadline = now_ns() + 5000000000LL;
        while (G.nidle < G.nopen && now_ns() < deadline) {
            int n = epoll_wait(G.epfd, evs, 256, 100);
            for (int k = 0; k < n; k++)
                if (evs[k].data.u64 != UINT64_MAX)
                    on_event(&G.conns[evs[k].data.u64], evs[k].events);
        }
    }
    if (G.nidle == 0) {
        fprintf(stderr, "openloop: cannot connect to 127.0.0.1:%d\n", G.port);
        return 1;
    }
    if (G.nidle < conns)
        fprintf(stderr, "openloop: only %d of %d connections opened\n", G.nidle, conns);
    memset(G.errs, 0, sizeof G.errs);
    G.warm_errs = 0;

    G.t0 = now_ns() + 1000000; /* first request 1 ms from now */
    G.tmeas = sched_ns(G.m0);
    G.last_send_ns = G.first_done_ns = G.last_done_ns = G.tmeas;
    for (int64_t armed = -1;;) {
        int64_t now = now_ns();
        int n;

        while (next < G.total && sched_ns(next) <= now)
            dispatch(next++, now);
        service_pending();
        if (next == G.total) {
            if (end_ns == 0)
                end_ns = now;
            if ((G.inflight == 0 && G.pend_head == G.pend_tail) ||
                now - end_ns > (int64_t)(G.timeout * 1e9))
                break;
        } else {
            int64_t want = sched_ns(next);
            if (G.quantum > 0) /* wake only on quantum boundaries */
                want = G.t0 + (want - G.t0 + G.quantum - 1) / G.quantum * G.quantum;
            if (want != armed) {
                armed = want;
                arm(armed);
            }
        }
        if (now - last_expire > 100000000) {
            expire(now);
            last_expire = now;
        }
        n = epoll_wait(G.epfd, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u64 == UINT64_MAX) {
                uint64_t x;
                if (read(G.tfd, &x, sizeof x) < 0) { /* nothing: the clock is read anyway */
                }
                continue;
            }
            if (G.conns[evs[k].data.u64].state != C_FREE)
                on_event(&G.conns[evs[k].data.u64], evs[k].events);
        }
    }
    /* Whatever is still outstanding timed out. */
    for (int k = 0; k < G.cap; k++)
        if (G.conns[k].state != C_FREE && G.conns[k].req >= 0)
            fail_conn(&G.conns[k], E_TIMEOUT);
    while (G.pend_head < G.pend_tail)
        count_error(G.pend[G.pend_head++], E_TIMEOUT);

    /* Figures over the measured period. */
    {
        size_t nm = (size_t)(G.total - G.m0), nl = 0, nt = 0, ng = 0;
        double *l = malloc(nm * sizeof *l + 1), *t = malloc(nm * sizeof *t + 1),
               *g = malloc(nm * sizeof *g + 1);
        double span_s = (double)(G.last_send_ns - G.tmeas) / 1e9 + 1.0 / G.rate;
        double done_s = (double)(G.last_done_ns - G.first_done_ns) / 1e9;
        double sent_rate, done_rate;
        int64_t errs = 0;
        struct pcts L, TT, LG;

        for (int e = 0; e < E_N; e++)
            errs += G.errs[e];
        if (raw != NULL) {
            FILE *o = fopen(raw, "w");
            if (o == NULL) {
                perror(raw);
            } else {
                fprintf(o, G.ttfb ? "# sched_us latency_us ttfb_us\n" : "# sched_us latency_us\n");
                for (int64_t i = G.m0; i < G.total; i++) {
                    fprintf(o, "%.1f %.1f", (double)(sched_ns(i) - G.tmeas) / 1e3, G.lat[i]);
                    if (G.ttfb)
                        fprintf(o, " %.1f", G.lat[i] < 0 ? -1.0 : G.ttfb_v[i]);
                    fputc('\n', o);
                }
                fclose(o);
            }
        }
        for (int64_t i = G.m0; i < G.total; i++) {
            if (G.lat[i] >= 0) {
                l[nl++] = G.lat[i];
                if (G.ttfb && G.ttfb_v[i] >= 0)
                    t[nt++] = G.ttfb_v[i];
            }
            if (G.lag[i] >= 0)
                g[ng++] = G.lag[i];
        }
        L = summarize(l, nl);
        TT = summarize(t, nt);
        LG = summarize(g, ng);
        sent_rate = span_s > 0 ? (double)G.sent / span_s : 0;
        done_rate = done_s > 0 ? (double)(G.completed - 1) / done_s : 0;

        printf("target: %.0f req/s for %.3f s (+%.3f s warm-up) to 127.0.0.1:%d%s\n", G.rate,
               G.dur, G.warm, G.port, path);
        printf("connections: pool %d, opened %d, max open %d, cap %d\n", conns, G.opened,
               G.max_open, G.cap);
        printf("scheduled: %lld\n", (long long)nm);
        printf("sent: %lld (%.1f req/s), late (no free connection): %lld\n", (long long)G.sent,
               sent_rate, (long long)G.late);
        printf("completed: %lld (2xx, %.1f req/s)\n", (long long)G.completed, done_rate);
        printf("errors: %lld (status %lld, reset %lld, timeout %lld, connect %lld, parse %lld;"
               " warm-up %lld)\n",
               (long long)errs, (long long)G.errs[E_STATUS], (long long)G.errs[E_RESET],
               (long long)G.errs[E_TIMEOUT], (long long)G.errs[E_CONNECT],
               (long long)G.errs[E_PARSE], (long long)G.warm_errs);
        printf("latency_us: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  mean %.0f\n",
               L.p50, L.p90, L.p99, L.p999, L.max, L.mean);
        if (G.ttfb)
            printf("ttfb_us: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", TT.p50,
                   TT.p90, TT.p99, TT.p999, TT.max);
        printf("send_lag_us: p50 %.0f  p99 %.0f  max %.0f (client-side delay before writing)\n",
               LG.p50, LG.p99, LG.max);
        if (LG.p99 > 1000 && G.late == 0)
            printf("WARNING: the client fell behind its schedule (send lag p99 > 1 ms);"
                   " latencies include client delay\n");
        printf("rate=%.0f duration=%.3f conns=%d scheduled=%lld sent=%lld sent_rate=%.1f"
               " completed=%lld completed_rate=%.1f late=%lld errors=%lld err_status=%lld"
               " err_reset=%lld err_timeout=%lld err_connect=%lld err_parse=%lld"
               " p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f mean_us=%.0f",
               G.rate, G.dur, conns, (long long)nm, (long long)G.sent, sent_rate,
               (long long)G.completed, done_rate, (long long)G.late, (long long)errs,
               (long long)G.errs[E_STATUS], (long long)G.errs[E_RESET],
               (long long)G.errs[E_TIMEOUT], (long long)G.errs[E_CONNECT],
               (long long)G.errs[E_PARSE], L.p50, L.p90, L.p99, L.p999, L.max, L.mean);
        if (G.ttfb)
            printf(" ttfb_p50_us=%.0f ttfb_p90_us=%.0f ttfb_p99_us=%.0f ttfb_p999_us=%.0f"
                   " ttfb_max_us=%.0f",
                   TT.p50, TT.p90, TT.p99, TT.p999, TT.max);
        printf(" lag_p99_us=%.0f lag_max_us=%.0f max_open=%d\n", LG.p99, LG.max, G.max_open);
        free(l);
        free(t);
        free(g);
        return errs > 0 ? 1 : 0;
    }
}
