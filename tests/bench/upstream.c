/* upstream: a fake OpenAI-compatible provider for benchmarks. One thread,
 * epoll (edge-triggered connections, level-triggered listener), a binary
 * heap of stream timers; libc only.
 *
 *   upstream [-p PORT] [-b BIND_ADDR]      (defaults: 0 = any free port,
 *                                           127.0.0.1)
 *
 * Prints "LISTENING <port>" on stdout once bound. SIGTERM/SIGINT: print the
 * stats to stderr and exit 0; SIGUSR1: print the stats.
 *
 * POST to any path ending in /chat/completions (query string ignored) is
 * answered according to the first path segment:
 *   /plain/...            (or no known prefix) one chat.completion JSON
 *   /stream/...           SSE, 20 chat.completion.chunk events + [DONE],
 *                         all written at once
 *   /paced/...            the same events, one every 10 ms
 *   /slow/<seconds>/...   <seconds>+1 events (at least 2), one per second
 *                         (role, content..., finish), [DONE] with the last
 * POST to any path ending in /messages: one Anthropic Messages answer (a
 * "message" with one text block, end_turn, usage), for a `type: anthropic`
 * provider; plain only (no stream modes).
 * Other paths: 404; other methods on a chat path: 405; malformed: 400.
 * Request bodies (Content-Length or chunked) are read and discarded.
 *
 * Every response byte is precomputed at start; a connection holds only
 * small state plus an input buffer while a request is partial and an output
 * buffer while the kernel refuses data. Streams sent as chunked transfer
 * encoding, so HTTP/1.0 clients are not supported for streamed modes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
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

#define RBUF_SIZE 65536
#define MAX_HEADER 65536
#define MAX_LINE 4096
#define MAX_IN (1u << 20)
#define MAX_OUT (8u << 20)
#define MAX_EVENTS 1024
#define PACED_NS 10000000ull
#define SLOW_NS 1000000000ull
#define N_CONTENT 18
#define N_EVENTS (N_CONTENT + 2)

#define RESP_ID "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
#define RESP_CREATED "1741570283"
#define RESP_MODEL "gpt-4o-mini-2024-07-18"
#define RESP_FP "fp_06737a9306"

enum { PS_HEAD, PS_BODY_CL, PS_CHUNK_SIZE, PS_CHUNK_DATA, PS_CHUNK_CRLF,
       PS_TRAILER };
enum { M_PLAIN, M_STREAM, M_PACED, M_SLOW, M_404, M_405, M_400, M_431,
       M_ANT, M_COUNT };

struct blob {
    char *p;
    size_t n;
};

struct conn {
    int fd;
    int heap_idx;           /* -1 when no timer is pending */
    uint8_t pstate;         /* request parser state (PS_*) */
    uint8_t req_mode;       /* M_* of the request being read */
    uint8_t req_close;      /* that request wants Connection: close */
    uint8_t close_after;    /* close once the output is flushed */
    uint8_t stream_active;  /* a stream is running (counted in stats) */
    uint8_t final_queued;   /* its last bytes are queued */
    uint8_t read_blocked;   /* unread data may sit in the socket */
    uint32_t req_secs;      /* /slow/<secs>/ */
    uint32_t ev_idx, ev_total;
    uint32_t in_len, in_cap;
    uint32_t out_off, out_end, out_cap;
    char *in, *out;
    uint64_t body_left;
    uint64_t start_ns, interval_ns, deadline;
};

static struct {
    unsigned long long requests, plain, errors, started, completed, aborted,
        conns_total, conns_open, accept_fail;
} st;

static int epfd = -1, lfd = -1, spare_fd = -1;
static char listener_tag;
static char rbuf[RBUF_SIZE];
static uint64_t g_now;
static volatile sig_atomic_t got_term, got_usr1;

static struct conn **heap;
static size_t heap_n, heap_cap;

/* Precomputed responses; [x][1] variants carry Connection: close. */
static struct blob r_plain[2], r_ant[2], r_stream_all[2], r_head_role[2], r_err[M_COUNT][2];
static struct blob f_content[N_CONTENT], f_finish_done;
static const char r_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

static const char *const content_words[N_CONTENT] = {
    "Hello", "! This", " is a", " canned", " reply", " from the",
    " benchmark", " upstream", " server.", " It streams", " a few",
    " words", " per event", " so the", " router", " can be", " measured",
    " quickly.",
};

/* ---------------------------------------------------------------- utils */

static void die(const char *what)
{
    fprintf(stderr, "upstream: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct blob bprintf(const char *fmt, ...)
{
    struct blob b;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&b.p, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fputs("upstream: out of memory\n", stderr);
        exit(1);
    }
    b.n = (size_t)n;
    return b;
}

static struct blob bcat(struct blob a, struct blob b)
{
    struct blob r;
    r.n = a.n + b.n;
    r.p = malloc(r.n + 1);
    if (r.p == NULL) {
        fputs("upstream: out of memory\n", stderr);
        exit(1);
    }
    memcpy(r.p, a.p, a.n);
    memcpy(r.p + a.n, b.p, b.n);
    r.p[r.n] = '\0';
    return r;
}

static int ci_contains(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(s + i, needle, k) == 0)
            return 1;
    return 0;
}

static void print_stats(void)
{
    fprintf(stderr,
            "upstream stats: requests=%llu plain=%llu errors=%llu "
            "streams_started=%llu streams_completed=%llu "
            "streams_aborted=%llu streams_active=%llu conns_open=%llu "
            "conns_total=%llu accept_fail=%llu\n",
            st.requests, st.plain, st.errors, st.started, st.completed,
            st.aborted, st.started - st.completed - st.aborted,
            st.conns_open, st.conns_total, st.accept_fail);
}

/* ------------------------------------------------------- canned answers */

static struct blob sse_frame(const char *choice)
{
    struct blob payload = bprintf(
        "data: {\"id\":\"" RESP_ID "\",\"object\":\"chat.completion.chunk\","
        "\"created\":" RESP_CREATED ",\"model\":\"" RESP_MODEL "\","
        "\"service_tier\":\"default\",\"system_fingerprint\":\"" RESP_FP "\","
        "\"choices\":[%s]}\n\n", choice);
    struct blob f = bprintf("%zx\r\n%s\r\n", payload.n, payload.p);
    free(payload.p);
    return f;
}

static struct blob json_response(const char *status, const char *body,
                                 int close_conn)
{
    return bprintf("HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: %s\r\n\r\n%s",
                   status, strlen(body), close_conn ? "close" : "keep-alive",
                   body);
}

static void build_responses(void)
{
    char text[1024] = "";
    for (int i = 0; i < N_CONTENT; i++)
        strcat(text, content_words[i]);

    struct blob body = bprintf(
        "{\"id\":\"" RESP_ID "\",\"object\":\"chat.completion\","
        "\"created\":" RESP_CREATED ",\"model\":\"" RESP_MODEL "\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
        "\"content\":\"%s\",\"refusal\":null},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":19,"
        "\"completion_tokens\":29,\"total_tokens\":48,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":0,"
        "\"audio_tokens\":0,\"accepted_prediction_tokens\":0,"
        "\"rejected_prediction_tokens\":0}},\"service_tier\":\"default\","
        "\"system_fingerprint\":\"" RESP_FP "\"}", text);

    struct blob ant = bprintf(
        "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\","
        "\"role\":\"assistant\",\"model\":\"claude-3-5-haiku-20241022\","
        "\"content\":[{\"type\":\"text\",\"text\":\"%s\"}],"
        "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
        "\"usage\":{\"input_tokens\":19,\"output_tokens\":29}}", text);

    struct blob role = sse_frame(
        "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
        "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}");
    for (int i = 0; i < N_CONTENT; i++) {
        char choice[256];
        snprintf(choice, sizeof choice,
                 "{\"index\":0,\"delta\":{\"content\":\"%s\"},"
                 "\"logprobs\":null,\"finish_reason\":null}",
                 content_words[i]);
        f_content[i] = sse_frame(choice);
    }
    struct blob finish = sse_frame(
        "{\"index\":0,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}");
    struct blob done = bprintf("e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
    f_finish_done = bcat(finish, done);

    static const struct { int mode; const char *status, *body; } errs[] = {
        { M_404, "404 Not Found",
          "{\"error\":{\"message\":\"Unknown request URL. Please check the "
          "URL for typos.\",\"type\":\"invalid_request_error\","
          "\"param\":null,\"code\":\"unknown_url\"}}" },
        { M_405, "405 Method Not Allowed",
          "{\"error\":{\"message\":\"Method not allowed; use POST.\","
          "\"type\":\"invalid_request_error\",\"param\":null,"
          "\"code\":\"method_not_allowed\"}}" },
        { M_400, "400 Bad Request",
          "{\"error\":{\"message\":\"Bad request.\","
          "\"type\":\"invalid_request_error\",\"param\":null,"
          "\"code\":null}}" },
        { M_431, "431 Request Header Fields Too Large",
          "{\"error\":{\"message\":\"Request header fields too large.\","
          "\"type\":\"invalid_request_error\",\"param\":null,"
          "\"code\":null}}" },
    };

    for (int cl = 0; cl < 2; cl++) {
        r_plain[cl] = json_response("200 OK", body.p, cl);
        r_ant[cl] = json_response("200 OK", ant.p, cl);
        for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
            r_err[errs[i].mode][cl] =
                json_response(errs[i].status, errs[i].body, cl);
        struct blob hdr = bprintf(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
            "Connection: %s\r\n\r\n", cl ? "close" : "keep-alive");
        r_head_role[cl] = bcat(hdr, role);
        struct blob all = r_head_role[cl];
        for (int i = 0; i < N_CONTENT; i++) {
            struct blob next = bcat(all, f_content[i]);
            if (all.p != r_head_role[cl].p)
                free(all.p);
            all = next;
        }
        r_stream_all[cl] = bcat(all, f_finish_done);
        free(all.p);
        free(hdr.p);
    }
    free(body.p);
    free(ant.p);
    free(role.p);
    free(finish.p);
    free(done.p);
}

/* ----------------------------------------------------------- timer heap */

static void heap_set(size_t i, struct conn *c)
{
    heap[i] = c;
    c->heap_idx = (int)i;
}

static void heap_up(size_t i)
{
    struct conn *c = heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (heap[p]->deadline <= c->deadline)
            break;
        heap_set(i, heap[p]);
        i = p;
    }
    heap_set(i, c);
}

static void heap_down(size_t i)
{
    struct conn *c = heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = c->deadline;
        if (l < heap_n && heap[l]->deadline < best) {
            m = l;
            best = heap[l]->deadline;
        }
        if (l + 1 < heap_n && heap[l + 1]->deadline < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(i, heap[m]);
        i = m;
    }
    heap_set(i, c);
}

static int heap_push(struct conn *c)
{
    if (heap_n == heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 1024;
        struct conn **h = realloc(heap, cap * sizeof *h);
        if (h == NULL)
            return -1;
        heap = h;
        heap_cap = cap;
    }
    heap[heap_n] = c;
    c->heap_idx = (int)heap_n;
    heap_up(heap_n++);
    return 0;
}

static void heap_remove(struct conn *c)
{
    size_t i = (size_t)c->heap_idx, last = --heap_n;
    c->heap_idx = -1;
    if (i != last) {
        struct conn *m = heap[last];
        heap_set(i, m);
        heap_up(i);
        if ((size_t)m->heap_idx == i)
            heap_down(i);
    }
}

/* ----------------------------------------------------------- connection */

static int out_pending(const struct conn *c)
{
    return c->out_end != c->out_off;
}

static int blocked(const struct conn *c)
{
    return c->stream_active || out_pending(c);
}

static void conn_close(struct conn *c)
{
    if (c->heap_idx >= 0)
        heap_remove(c);
    if (c->stream_active)
        st.aborted++;
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
    st.conns_open--;
}

static int out_append(struct conn *c, const char *p, size_t n)
{
    size_t pending = c->out_end - c->out_off;
    if (pending + n > MAX_OUT)
        return -1;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, pending);
        c->out_off = 0;
        c->out_end = (uint32_t)pending;
    }
    if (pending + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < pending + n)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (o == NULL)
            return -1;
        c->out = o;
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_end, p, n);
    c->out_end += (uint32_t)n;
    return 0;
}

/* Sends or queues; -1 means the connection is dead. */
static int conn_send(struct conn *c, const char *p, size_t n)
{
    if (out_pending(c))
        return out_append(c, p, n);
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return out_append(c, p, n);
        } else {
            return -1;
        }
    }
    return 0;
}

static int conn_flush(struct conn *c)
{
    while (out_pending(c)) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_end - c->out_off,
                         MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (uint32_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_end = c->out_cap = 0;
    return 0;
}

static void check_stream_done(struct conn *c)
{
    if (c->stream_active && c->final_queued && !out_pending(c)) {
        c->stream_active = 0;
        c->final_queued = 0;
        st.completed++;
    }
}

static int in_append(struct conn *c, const char *p, size_t n)
{
    if (c->in_len + n > MAX_IN)
        return -1;
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 1024;
        while (cap < c->in_len + n)
            cap *= 2;
        char *b = realloc(c->in, cap);
        if (b == NULL)
            return -1;
        c->in = b;
        c->in_cap = (uint32_t)cap;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += (uint32_t)n;
    return 0;
}

static void in_consume(struct conn *c, size_t used)
{
    if (used >= c->in_len) {
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
    } else if (used > 0) {
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= (uint32_t)used;
    }
}

/* ------------------------------------------------------------- requests */

/* Answers the request just read. -1: the connection is dead. */
static int dispatch(struct conn *c)
{
    int cl = c->req_close;
    int rc;
    st.requests++;
    c->pstate = PS_HEAD;
    if (cl)
        c->close_after = 1;
    switch (c->req_mode) {
    case M_PLAIN:
        st.plain++;
        return conn_send(c, r_plain[cl].p, r_plain[cl].n);
    case M_ANT:
        st.plain++;
        return conn_send(c, r_ant[cl].p, r_ant[cl].n);
    case M_STREAM:
        st.started++;
        c->stream_active = 1;
        c->final_queued = 1;
        rc = conn_send(c, r_stream_all[cl].p, r_stream_all[cl].n);
        check_stream_done(c);
        return rc;
    case M_PACED:
    case M_SLOW:
        st.started++;
        c->stream_active = 1;
        c->final_queued = 0;
        c->ev_idx = 1;
        if (c->req_mode == M_PACED) {
            c->ev_total = N_EVENTS;
            c->interval_ns = PACED_NS;
        } else {
            c->ev_total = c->req_secs + 1 < 2 ? 2 : c->req_secs + 1;
            c->interval_ns = SLOW_NS;
        }
        c->start_ns = g_now;
        if (conn_send(c, r_head_role[cl].p, r_head_role[cl].n) < 0)
            return -1;
        c->deadline = c->start_ns + c->interval_ns;
        return heap_push(c);
    default:
        st.errors++;
        return conn_send(c, r_err[c->req_mode][cl].p, r_err[c->req_mode][cl].n);
    }
}

static int bad_request(struct conn *c, int mode)
{
    c->req_mode = (uint8_t)mode;
    c->req_close = 1;
    return dispatch(c);
}

static int has_prefix(const char *p, size_t n, const char *pre)
{
    size_t k = strlen(pre);
    return n >= k && memcmp(p, pre, k) == 0;
}

static void classify(struct conn *c, const char *m, size_t mlen,
                     const char *path, size_t plen)
{
    static const char suffix[] = "/chat/completions";
    const size_t sl = sizeof suffix - 1;
    const char *q = memchr(path, '?', plen);
    if (q != NULL)
        plen = (size_t)(q - path);
    static const char ant_suffix[] = "/messages";
    const size_t al = sizeof ant_suffix - 1;
    int ant = plen >= al && memcmp(path + plen - al, ant_suffix, al) == 0;
    if (!ant && (plen < sl || memcmp(path + plen - sl, suffix, sl) != 0)) {
        c->req_mode = M_404;
        return;
    }
    if (mlen != 4 || memcmp(m, "POST", 4) != 0) {
        c->req_mode = M_405;
        return;
    }
    c->req_mode = M_PLAIN;
    if (ant) {
        c->req_mode = M_ANT;
        return;
    }
    if (has_prefix(path, plen, "/stream/")) {
        c->req_mode = M_STREAM;
    } else if (has_prefix(path, plen, "/paced/")) {
        c->req_mode = M_PACED;
    } else if (has_prefix(path, plen, "/slow/")) {
        size_t i = 6;
        uint32_t secs = 0;
        while (i < plen && i < 6 + 9 && path[i] >= '0' && path[i] <= '9')
            secs = secs * 10 + (uint32_t)(path[i++] - '0');
        if (i == 6 || i >= plen || path[i] != '/') {
            c->req_mode = M_400;
            return;
        }
        c->req_mode = M_SLOW;
        c->req_secs = secs;
    }
}

/* Parses a request head (without the blank line). -1: connection dead. */
static int parse_head(struct conn *c, const char *h, size_t hl)
{
    const char *end = h + hl;
    const char *le = memmem(h, hl, "\r\n", 2);
    if (le == NULL)
        le = end;
    const char *sp1 = memchr(h, ' ', (size_t)(le - h));
    if (sp1 == NULL)
        return bad_request(c, M_400);
    const char *path = sp1 + 1;
    const char *sp2 = memchr(path, ' ', (size_t)(le - path));
    if (sp2 == NULL)
        return bad_request(c, M_400);
    const char *ver = sp2 + 1;
    size_t vlen = (size_t)(le - ver);
    if (vlen != 8 || memcmp(ver, "HTTP/1.", 7) != 0)
        return bad_request(c, M_400);
    int http10 = ver[7] == '0';
    int keep = !http10, chunked = 0, expect = 0;
    uint64_t clen = 0;

    const char *line = le < end ? le + 2 : end;
    while (line < end) {
        const char *nl = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (nl == NULL)
            nl = end;
        const char *colon = memchr(line, ':', (size_t)(nl - line));
        if (colon != NULL) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1, *ve = nl;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t vl = (size_t)(ve - v);
            if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
                if (vl == 0 || vl > 18)
                    return bad_request(c, M_400);
                clen = 0;
                for (size_t i = 0; i < vl; i++) {
                    if (v[i] < '0' || v[i] > '9')
                        return bad_request(c, M_400);
                    clen = clen * 10 + (uint64_t)(v[i] - '0');
                }
            } else if (nlen == 17 &&
                       strncasecmp(line, "transfer-encoding", 17) == 0) {
                if (ci_contains(v, vl, "chunked"))
                    chunked = 1;
            } else if (nlen == 10 &&
                       strncasecmp(line, "connection", 10) == 0) {
                if (ci_contains(v, vl, "close"))
                    keep = 0;
                else if (ci_contains(v, vl, "keep-alive"))
                    keep = 1;
            } else if (nlen == 6 && strncasecmp(line, "expect", 6) == 0) {
                if (ci_contains(v, vl, "100-continue"))
                    expect = 1;
            }
        }
        line = nl < end ? nl + 2 : end;
    }

    classify(c, h, (size_t)(sp1 - h), path, (size_t)(sp2 - path));
    c->req_close = (uint8_t)!keep;
    if (chunked) {
        c->pstate = PS_CHUNK_SIZE;
    } else if (clen > 0) {
        c->pstate = PS_BODY_CL;
        c->body_left = clen;
    } else {
        return dispatch(c);
    }
    if (expect && !http10)
        return conn_send(c, r_continue, sizeof r_continue - 1);
    return 0;
}

/* Consumes complete requests from d; returns bytes consumed (the rest is
 * kept by the caller) or -1 when the connection is dead. Stops while a
 * stream runs or output is pending, so pipelined requests wait. */
static long process(struct conn *c, const char *d, size_t len)
{
    size_t pos = 0;
    if (d == NULL)
        return 0;
    while (pos < len && !blocked(c) && !c->close_after) {
        const char *p = d + pos;
        size_t avail = len - pos;
        switch (c->pstate) {
        case PS_HEAD: {
            const char *e = memmem(p, avail, "\r\n\r\n", 4);
            if (e == NULL) {
                if (avail > MAX_HEADER)
                    return bad_request(c, M_431) < 0 ? -1 : (long)len;
                return (long)pos;
            }
            size_t hl = (size_t)(e - p);
            pos += hl + 4;
            if (parse_head(c, p, hl) < 0)
                return -1;
            break;
        }
        case PS_BODY_CL:
        case PS_CHUNK_DATA: {
            size_t take = avail < c->body_left ? avail : (size_t)c->body_left;
            pos += take;
            c->body_left -= take;
            if (c->body_left == 0) {
                if (c->pstate == PS_CHUNK_DATA)
                    c->pstate = PS_CHUNK_CRLF;
                else if (dispatch(c) < 0)
                    return -1;
            }
            break;
        }
        case PS_CHUNK_CRLF:
            if (avail < 2)
                return (long)pos;
            if (p[0] != '\r' || p[1] != '\n')
                return bad_request(c, M_400) < 0 ? -1 : (long)len;
            pos += 2;
            c->pstate = PS_CHUNK_SIZE;
            break;
        case PS_CHUNK_SIZE:
        case PS_TRAILER: {
            const char *e = memmem(p, avail, "\r\n", 2);
            if (e == NULL) {
                if (avail > MAX_LINE)
                    return bad_request(c, M_400) < 0 ? -1 : (long)len;
                return (long)pos;
            }
            size_t ll = (size_t)(e - p);
            pos += ll + 2;
            if (c->pstate == PS_TRAILER) {
                if (ll == 0 && dispatch(c) < 0)
                    return -1;
                break;
            }
            uint64_t sz = 0;
            size_t i = 0;
            for (; i < ll && i < 15; i++) {
                char ch = p[i];
                int v;
                if (ch >= '0' && ch <= '9')
                    v = ch - '0';
                else if (ch >= 'a' && ch <= 'f')
                    v = ch - 'a' + 10;
                else if (ch >= 'A' && ch <= 'F')
                    v = ch - 'A' + 10;
                else
                    break;
                sz = sz * 16 + (uint64_t)v;
            }
            if (i == 0 || (i < ll && p[i] != ';' && p[i] != ' ' &&
                           p[i] != '\t'))
                return bad_request(c, M_400) < 0 ? -1 : (long)len;
            if (sz == 0) {
                c->pstate = PS_TRAILER;
            } else {
                c->pstate = PS_CHUNK_DATA;
                c->body_left = sz;
            }
            break;
        }
        }
    }
    return (long)pos;
}

/* Handles buffered input, then reads until EAGAIN or until a response
 * blocks further requests. -1: close the connection. */
static int conn_pump(struct conn *c)
{
    int drained = 0;
    for (;;) {
        if (c->in_len > 0 && !blocked(c) && !c->close_after) {
            long used = process(c, c->in, c->in_len);
            if (used < 0)
                return -1;
            in_consume(c, (size_t)used);
        }
        if (c->close_after)
            return blocked(c) ? 0 : -1;
        if (blocked(c)) {
            c->read_blocked = (uint8_t)!drained;
            return 0;
        }
        if (drained) {
            c->read_blocked = 0;
            return 0;
        }
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n > 0) {
            /* A short read emptied the socket; new data re-arms the edge. */
            if ((size_t)n < sizeof rbuf)
                drained = 1;
            if (c->in_len > 0) {
                if (in_append(c, rbuf, (size_t)n) < 0)
                    return -1;
                continue;
            }
            long used = process(c, rbuf, (size_t)n);
            if (used < 0)
                return -1;
            if ((size_t)used < (size_t)n &&
                in_append(c, rbuf + used, (size_t)n - (size_t)used) < 0)
                return -1;
            continue;
        }
        if (n == 0)
            return -1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->read_blocked = 0;
            return 0;
        }
        return -1;
    }
}

/* After output drained or a stream ended: continue with queued requests. */
static int conn_resume(struct conn *c)
{
    if (blocked(c))
        return 0;
    if (c->close_after)
        return -1;
    if (c->in_len > 0 || c->read_blocked)
        return conn_pump(c);
    return 0;
}

static void timer_fire(struct conn *c)
{
    const struct blob *f = c->ev_idx + 1 >= c->ev_total
                               ? &f_finish_done
                               : &f_content[(c->ev_idx - 1) % N_CONTENT];
    if (conn_send(c, f->p, f->n) < 0) {
        conn_close(c);
        return;
    }
    c->ev_idx++;
    if (c->ev_idx >= c->ev_total) {
        c->final_queued = 1;
        check_stream_done(c);
        if (conn_resume(c) < 0)
            conn_close(c);
        return;
    }
    c->deadline = c->start_ns + (uint64_t)c->ev_idx * c->interval_ns;
    if (heap_push(c) < 0)
        conn_close(c);
}

static void conn_event(struct conn *c, uint32_t ev)
{
    if (ev & (EPOLLERR | EPOLLHUP)) {
        conn_close(c);
        return;
    }
    if ((ev & EPOLLOUT) && out_pending(c)) {
        if (conn_flush(c) < 0) {
            conn_close(c);
            return;
        }
        if (!out_pending(c)) {
            check_stream_done(c);
            if (conn_resume(c) < 0) {
                conn_close(c);
                return;
            }
        }
    }
    if (ev & (EPOLLIN | EPOLLRDHUP)) {
        if (blocked(c)) {
            c->read_blocked = 1;
        } else if (conn_pump(c) < 0) {
            conn_close(c);
            return;
        }
    }
    if (ev & EPOLLRDHUP) {
        /* Peer finished sending: a running stream is abandoned; a plain
         * answer still queued is flushed first. */
        if (c->stream_active || !out_pending(c))
            conn_close(c);
        else
            c->close_after = 1;
    }
}

static void do_accept(void)
{
    for (int i = 0; i < 1024; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: take one off the queue and drop it so
                 * the level-triggered listener does not spin. */
                st.accept_fail++;
                if (st.accept_fail == 1)
                    fprintf(stderr, "upstream: accept: %s (raise ulimit -n)\n",
                            strerror(errno));
                if (spare_fd >= 0) {
                    close(spare_fd);
                    int x = accept(lfd, NULL, NULL);
                    if (x >= 0)
                        close(x);
                    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                }
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->heap_idx = -1;
        struct epoll_event e = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP |
                                           EPOLLET,
                                 .data.ptr = c };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
            close(fd);
            free(c);
            continue;
        }
        st.conns_total++;
        st.conns_open++;
    }
}

/* ------------------------------------------------------------------ main */

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        got_usr1 = 1;
    else
        got_term = 1;
}

static void usage(void)
{
    fputs("usage: upstream [-p PORT] [-b BIND_ADDR]\n", stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *port = "0", *bind_addr = "127.0.0.1";
    int opt;
    while ((opt = getopt(argc, argv, "p:b:h")) != -1) {
        if (opt == 'p')
            port = optarg;
        else if (opt == 'b')
            bind_addr = optarg;
        else
            usage();
    }
    if (optind != argc)
        usage();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    signal(SIGPIPE, SIG_IGN);
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGUSR1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    build_responses();

    struct addrinfo hints, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(bind_addr, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "upstream: %s:%s: %s\n", bind_addr, port,
                gai_strerror(gai));
        return 1;
    }
    lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("bind");
    freeaddrinfo(ai);
    if (listen(lfd, 4096) < 0)
        die("listen");
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0)
        die("getsockname");
    int bound = ss.ss_family == AF_INET6
                    ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    struct epoll_event le = { .events = EPOLLIN, .data.ptr = &listener_tag };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &le) < 0)
        die("epoll_ctl");
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    printf("LISTENING %d\n", bound);
    fflush(stdout);

    static struct epoll_event evs[MAX_EVENTS];
    g_now = now_ns();
    while (!got_term) {
        if (got_usr1) {
            got_usr1 = 0;
            print_stats();
        }
        int timeout = -1;
        if (heap_n > 0) {
            uint64_t d = heap[0]->deadline;
            if (d <= g_now) {
                timeout = 0;
            } else {
                uint64_t ms = (d - g_now + 999999) / 1000000;
                timeout = ms > INT_MAX ? INT_MAX : (int)ms;
            }
        }
        int n = epoll_pwait(epfd, evs, MAX_EVENTS, timeout, &waitmask);
        if (n < 0 && errno != EINTR)
            die("epoll_pwait");
        g_now = now_ns();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listener_tag)
                do_accept();
            else
                conn_event(evs[i].data.ptr, evs[i].events);
        }
        while (heap_n > 0 && heap[0]->deadline <= g_now) {
            struct conn *c = heap[0];
            heap_remove(c);
            timer_fire(c);
        }
    }
    print_stats();
    return 0;
}
