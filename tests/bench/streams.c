/* streams: many concurrent slow streaming requests (SSE), to measure how a
 * proxy holds up with thousands of open streams (memory, fds, fairness).
 *
 *   streams -p PORT -P PATH -b BODY_FILE -n CONCURRENCY [-r RAMP_PER_SECOND]
 *           [-t TIMEOUT_SECONDS] [-H 'Name: value']...
 *
 * Opens CONCURRENCY connections to 127.0.0.1:PORT, RAMP per second (default
 * 2000, so that the server's listen backlog does not overflow), each sending
 * one POST of BODY_FILE (which should ask for "stream": true), and reads
 * each answer to its end. A stream succeeds when the status is 200, the
 * body is chunked and ends with a clean terminating chunk, and
 * "data: [DONE]" was seen in it. Failures are counted by reason: connect,
 * status (not 200), reset (connection reset or closed mid-answer), timeout
 * (not finished TIMEOUT seconds after its connect began; default 120),
 * no_done (clean end without [DONE]), not_chunked (200 not sent chunked:
 * e.g. llmrouter replaying a cached answer with Content-Length - identical
 * requests hit the cache, send -H 'Cache-Control: no-cache'), parse
 * (malformed HTTP). -H adds a request header.
 *
 * Timeline on stdout (flushed): when every connection is established
 * ("connected"), when every live stream has received its first complete
 * SSE event ("all N open" - printed as "OPEN <n>" too, n = streams open
 * at that moment, so that a driver can sample the server's memory while
 * they are all open; the client keeps going), then completion, a summary
 * and one final line of key=value pairs. Progress lines go to stderr once
 * a second.
 *
 * The descriptor limit is raised to the hard limit (and, as root, the hard
 * limit itself if it is too low); with too few descriptors the client says
 * so and exits with status 2. Memory: about 100 bytes per stream; responses
 * are read into one shared buffer and parsed incrementally (HTTP framing,
 * SSE event boundaries and the [DONE] marker across reads) with a few
 * dozen bytes of state per connection.
 *
 * Exit status 0 if every stream succeeded, 1 otherwise, 2 on usage errors.
 * Standalone (libc, Linux epoll); not part of `make test`. Build:
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror \
 *      -o build/bench/streams tests/bench/streams.c -lm */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpresp.h"


/* ------------------------------------------------------------------------ */

enum { C_NEW, C_CONNECTING, C_SENDING, C_READING, C_CLOSED };
enum { F_CONNECT, F_STATUS, F_RESET, F_TIMEOUT, F_NO_DONE, F_NOT_CHUNKED, F_PARSE, F_N };
static const char *const fail_names[F_N] = {"connect", "status",      "reset", "timeout",
                                            "no_done", "not_chunked", "parse"};
static const char DONE_MARK[] = "data: [DONE]";

struct sconn {
    int fd;
    uint8_t state;
    uint8_t first;   /* first complete SSE event received */
    uint8_t lf;      /* last non-CR data byte was LF */
    uint8_t dm;      /* bytes of DONE_MARK matched; sizeof - 1 = seen */
    uint8_t good;    /* finished successfully */
    uint32_t woff;   /* request bytes written */
    float first_ms;  /* connect start -> first event */
    float end_ms;    /* connect start -> end */
    int64_t start;   /* connect start, ns */
    struct hp p;
};

static struct {
    int n, port, epfd;
    double ramp, timeout;
    char *req;
    size_t req_len;
    struct sconn *c;
    struct sockaddr_in sa;
    int launched, connected, conn_failed, live, live_first, finished, ok, fails[F_N];
    int all_connected_printed, open_printed, open_at_print, peak_open;
    int64_t t0;
} G;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double since(int64_t t)
{
    return (double)(now_ns() - t) / 1e9;
}

/* Prints the timeline lines that became true. */
static void timeline(void)
{
    if (!G.all_connected_printed && G.launched == G.n && G.connected + G.conn_failed == G.n) {
        G.all_connected_printed = 1;
        printf("connected %d of %d in %.3f s (%d connect errors)\n", G.connected, G.n,
               since(G.t0), G.conn_failed);
        fflush(stdout);
    }
    if (!G.open_printed && G.launched == G.n && G.live == G.live_first &&
        G.connected + G.conn_failed == G.n) {
        G.open_printed = 1;
        if (G.live == G.n)
            printf("all %d open at %.3f s\n", G.n, since(G.t0));
        else
            printf("%d of %d open at %.3f s (%d finished or failed before the last one opened)\n",
                   G.live, G.n, since(G.t0), G.finished);
        printf("OPEN %d\n", G.live);
        G.open_at_print = G.live;
        fflush(stdout);
    }
}

static void finish(struct sconn *c, int fail)
{
    if (c->state == C_CLOSED)
        return;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->state == C_CONNECTING && fail == F_CONNECT) {
        G.conn_failed++;
    } else {
        G.live--;
        if (c->first)
            G.live_first--;
        G.finished++;
    }
    c->state = C_CLOSED;
    c->end_ms = (float)((double)(now_ns() - c->start) / 1e6);
    if (fail < 0)
        G.ok++, c->good = 1;
    else
        G.fails[fail]++;
}

static void launch(struct sconn *c)
{
    int one = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};

    G.launched++;
    c->start = now_ns();
    c->state = C_CONNECTING;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf(stderr, "streams: socket: %s\n", strerror(errno));
        finish(c, F_CONNECT);
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&G.sa, sizeof G.sa) < 0 && errno != EINPROGRESS) {
        if (G.conn_failed < 5)
            fprintf(stderr, "streams: connect: %s\n", strerror(errno));
        finish(c, F_CONNECT);
        return;
    }
    epoll_ctl(G.epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

/* SSE scan of body data: event boundaries (blank line) and the [DONE] mark. */
static void on_data(void *ctx, const char *d, size_t n)
{
    struct sconn *c = ctx;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (c->dm < sizeof DONE_MARK - 1) {
            if (ch == (unsigned char)DONE_MARK[c->dm])
                c->dm++;
            else
                c->dm = ch == (unsigned char)DONE_MARK[0];
        }
        if (ch == '\r')
            continue;
        if (ch == '\n' && c->lf && !c->first && c->p.status == 200) {
            c->first = 1;
            c->first_ms = (float)((double)(now_ns() - c->start) / 1e6);
            if (++G.live_first > G.peak_open)
                G.peak_open = G.live_first;
        }
        c->lf = ch == '\n';
    }
}

static void on_event(struct sconn *c, uint32_t ev)
{
    static char buf[1 << 16];

    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
            if (G.conn_failed < 5)
                fprintf(stderr, "streams: connect: %s\n", strerror(err ? err : ECONNREFUSED));
            finish(c, F_CONNECT);
            return;
        }
        G.connected++;
        G.live++;
        c->state = C_SENDING;
        ev = EPOLLOUT;
    }
    if (c->state == C_SENDING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        while (c->woff < G.req_len) {
            ssize_t n = send(c->fd, G.req + c->woff, G.req_len - c->woff, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (n < 0) {
                finish(c, F_RESET);
                return;
            }
            c->woff += (uint32_t)n;
        }
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(G.epfd, EPOLL_CTL_MOD, c->fd, &e);
        c->state = C_READING;
        return;
    }
    if (c->state != C_READING || !(ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        size_t used = 0;
        int r;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (n == 0 && hp_eof(&c->p) == HP_DONE) /* close-delimited body */
                finish(c, c->p.status != 200 ? F_STATUS : F_NOT_CHUNKED);
            else
                finish(c, c->p.any && c->p.status != 0 && c->p.status != 200 ? F_STATUS
                                                                               : F_RESET);
            return;
        }
        r = hp_feed(&c->p, buf, (size_t)n, &used, on_data, c);
        if (r == HP_ERR) {
            finish(c, F_PARSE);
        } else if (r == HP_DONE) {
            if (c->p.status != 200)
                finish(c, F_STATUS);
            else if (!c->p.chunked)
                finish(c, F_NOT_CHUNKED);
            else if (c->dm != sizeof DONE_MARK - 1)
                finish(c, F_NO_DONE);
            else if (used != (size_t)n)
                finish(c, F_PARSE); /* bytes after the end of the answer */
            else
                finish(c, -1);
        }
        return; /* level-triggered: come back for the rest */
    }
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static float pct(const float *v, size_t n, double p)
{
    size_t k;
    if (n == 0)
        return 0;
    k = (size_t)ceil(p / 100.0 * (double)n);
    return v[k == 0 ? 0 : k - 1];
}

#define PROG "streams"

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
    fprintf(stderr, "usage: streams -p PORT -P PATH -b BODY_FILE -n CONCURRENCY"
                    " [-r RAMP_PER_SECOND] [-t TIMEOUT_SECONDS] [-H 'Name: value']...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *path = NULL, *body_file = NULL;
    char *hdrs = NULL, *body = NULL;
    size_t hdrs_len = 0, body_len = 0, body_cap = 0;
    int opt, has_ct = 0, has_host = 0, fails = 0;
    struct epoll_event evs[1024];
    struct rlimit rl;
    rlim_t need;
    int64_t last_progress, last_expire = 0;
    FILE *f;

    G.ramp = 2000;
    G.timeout = 120;
    while ((opt = getopt(argc, argv, "p:P:b:n:r:t:H:h")) != -1) {
        switch (opt) {
        case 'p': G.port = int_arg(optarg, opt); break;
        case 'P': path = optarg; break;
        case 'b': body_file = optarg; break;
        case 'n': G.n = int_arg(optarg, opt); break;
        case 'r': G.ramp = num_arg(optarg, opt); break;
        case 't': G.timeout = num_arg(optarg, opt); break;
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
    if (G.port <= 0 || G.port > 65535 || path == NULL || body_file == NULL || G.n <= 0 ||
        G.ramp <= 0 || G.timeout <= 0 || optind != argc)
        usage();

    /* Descriptors: one per stream plus a few. */
    need = (rlim_t)G.n + 32;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("getrlimit");
        return 2;
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        struct rlimit want = {need, need}; /* works as root (CAP_SYS_RESOURCE) */
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        fprintf(stderr,
                "streams: %d streams need %llu file descriptors but RLIMIT_NOFILE is %llu"
                " (hard limit %llu).\n"
                "Raise it first, e.g. as root: ulimit -Hn %llu; ulimit -n %llu\n",
                G.n, (unsigned long long)need, (unsigned long long)rl.rlim_cur,
                (unsigned long long)rl.rlim_max, (unsigned long long)need,
                (unsigned long long)need);
        return 2;
    }

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
                                      "Accept: text/event-stream\r\nContent-Length: %zu\r\n",
                                      body_len);
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
    G.c = calloc((size_t)G.n, sizeof *G.c);
    if (G.c == NULL) {
        fprintf(stderr, "streams: out of memory\n");
        return 1;
    }
    for (int k = 0; k < G.n; k++)
        G.c[k].fd = -1;
    G.sa.sin_family = AF_INET;
    G.sa.sin_port = htons((unsigned short)G.port);
    G.sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    G.epfd = epoll_create1(EPOLL_CLOEXEC);

    printf("streams: %d to 127.0.0.1:%d%s, ramp %.0f/s, timeout %.0f s\n", G.n, G.port, path,
           G.ramp, G.timeout);
    fflush(stdout);
    G.t0 = last_progress = now_ns();
    while (G.finished + G.conn_failed < G.n) {
        int64_t now = now_ns();
        int tmo = 100, n;

        /* Launch the connections due by now. */
        while (G.launched < G.n && G.t0 + (int64_t)((double)G.launched * 1e9 / G.ramp) <= now)
            launch(&G.c[G.launched]);
        if (G.launched < G.n) {
            int64_t due = G.t0 + (int64_t)((double)G.launched * 1e9 / G.ramp);
            tmo = (int)((due - now + 999999) / 1000000);
            if (tmo > 100)
                tmo = 100;
        }
        if (now - last_expire > 100000000) { /* timeouts, every 100 ms */
            int64_t lim = (int64_t)(G.timeout * 1e9);
            last_expire = now;
            for (int k = 0; k < G.launched; k++)
                if (G.c[k].state != C_CLOSED && now - G.c[k].start > lim)
                    finish(&G.c[k], G.c[k].state == C_CONNECTING ? F_CONNECT : F_TIMEOUT);
        }
        if (now - last_progress >= 1000000000) {
            last_progress = now;
            fprintf(stderr,
                    "t=%.1fs launched %d connected %d streaming %d (first event %d) ok %d"
                    " failed %d\n",
                    since(G.t0), G.launched, G.connected, G.live, G.live_first, G.ok,
                    G.finished + G.conn_failed - G.ok);
        }
        timeline();
        n = epoll_wait(G.epfd, evs, 1024, tmo);
        for (int k = 0; k < n; k++)
            on_event(evs[k].data.ptr, evs[k].events);
        timeline();
    }

    {
        double total_s = since(G.t0);
        float *fe = malloc((size_t)G.n * sizeof *fe + 1), *du = malloc((size_t)G.n * sizeof *du + 1);
        size_t nfe = 0, ndu = 0;
        struct rusage ru;

        for (int k = 0; k < G.n; k++) {
            if (G.c[k].first)
                fe[nfe++] = G.c[k].first_ms;
        }
        for (int e = 0; e < F_N; e++)
            fails += G.fails[e];
        for (int k = 0; k < G.n; k++)
            if (G.c[k].good)
                du[ndu++] = G.c[k].end_ms;
        qsort(fe, nfe, sizeof *fe, cmp_f);
        qsort(du, ndu, sizeof *du, cmp_f);
        getrusage(RUSAGE_SELF, &ru);
        printf("completed at %.3f s\n", total_s);
        printf("succeeded: %d of %d\n", G.ok, G.n);
        printf("failed: %d (", fails);
        for (int e = 0; e < F_N; e++)
            printf("%s%s %d", e ? ", " : "", fail_names[e], G.fails[e]);
        printf(")\n");
        if (G.fails[F_NOT_CHUNKED] > 0)
            printf("note: 200 answers without chunked encoding - cache hits?"
                   " (try -H 'Cache-Control: no-cache')\n");
        printf("first_event_ms: p50 %.1f  p99 %.1f  max %.1f (from connect start)\n",
               pct(fe, nfe, 50), pct(fe, nfe, 99), nfe ? fe[nfe - 1] : 0);
        printf("stream_ms: p50 %.1f  p99 %.1f  max %.1f (successful streams)\n",
               pct(du, ndu, 50), pct(du, ndu, 99), ndu ? du[ndu - 1] : 0);
        printf("client: max RSS %ld KiB, cpu user %.2f s sys %.2f s\n", ru.ru_maxrss,
               (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
        printf("n=%d ok=%d failed=%d", G.n, G.ok, fails);
        for (int e = 0; e < F_N; e++)
            printf(" fail_%s=%d", fail_names[e], G.fails[e]);
        printf(" open_at_sample=%d peak_open=%d total_s=%.3f first_event_p50_ms=%.1f first_event_p99_ms=%.1f"
               " first_event_max_ms=%.1f stream_p50_ms=%.1f stream_p99_ms=%.1f"
               " stream_max_ms=%.1f client_rss_kb=%ld\n",
               G.open_at_print, G.peak_open, total_s, pct(fe, nfe, 50), pct(fe, nfe, 99),
               nfe ? fe[nfe - 1] : 0, pct(du, ndu, 50), pct(du, ndu, 99),
               ndu ? du[ndu - 1] : 0, ru.ru_maxrss);
        free(fe);
        free(du);
    }
    return fails > 0 ? 1 : 0;
}
