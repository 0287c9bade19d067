/* gate_head: a line-by-line check of a request head as it arrives. Each call
 * resumes at the first line not parsed yet; an incomplete last line is only
 * scanned for bytes that can never be sound, so a head trickled a byte at a
 * time costs one short scan per byte, not a re-parse of the whole head.
 *
 * The rules are stricter than libmicrohttpd 0.9.75's parser wherever it
 * would answer on its own or read the framing differently from us: it takes
 * the first of two Content-Lengths, reads "Transfer-Encoding: chunked " (a
 * trailing space) as an unknown coding and then waits for the connection to
 * close, keeps trailing whitespace in values, accepts spaces inside the
 * target and skips repeated spaces in the request line. */
#include "http/gate_head.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"

/* RFC 9110 tchar: what methods, field names and codings are made of
 * (ALPHA, DIGIT and !#$%&'*+-.^_`|~), one bit per byte value. */
static const uint32_t TCHAR[8] = {0, 0x03ff6cfa, 0xc7fffffe, 0x57ffffff, 0, 0, 0, 0};

static bool is_tchar(unsigned char c)
{
    return (TCHAR[c >> 5] >> (c & 31)) & 1;
}

static enum gate_head_result refuse(gate_verdict_t *v, unsigned status, const char *code,
                                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum gate_head_result refuse(gate_verdict_t *v, unsigned status, const char *code,
                                    const char *fmt, ...)
{
    va_list ap;
    v->status = status;
    v->code = code;
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof v->message, fmt, ap);
    va_end(ap);
    return GATE_HEAD_REFUSE;
}

static enum gate_head_result malformed(gate_verdict_t *v, const char *what)
{
    return refuse(v, 400, "malformed_request", "The request is not valid HTTP/1.1: %s.", what);
}

/* bytes: what the head takes (complete), or at least takes (not yet). */
static enum gate_head_result too_large(const gate_head_t *h, size_t bytes, bool complete,
                                       const gate_limits_t *lim, gate_verdict_t *v)
{
    if (h->_lines == 0)
        return refuse(v, 414, "uri_too_long",
                      "The request line is longer than the limit of %zu bytes "
                      "(server.max_header_bytes).",
                      lim->max_header_bytes);
    /* as server.c words it, so that both refusals read alike */
    return refuse(v, 431, "request_headers_too_large",
                  "The request headers take %s%zu bytes (names, values and %d bytes per field), "
                  "more than the limit of %zu bytes (server.max_header_bytes).",
                  complete ? "" : "at least ", bytes, GATE_FIELD_ENTRY_BYTES,
                  lim->max_header_bytes);
}

static bool path_is(const unsigned char *p, size_t n, const char *s)
{
    size_t sl = strlen(s);
    return n == sl && memcmp(p, s, sl) == 0;
}

/* What a query string's arguments take in libmicrohttpd's pool besides
 * their text: per non-empty '&'-separated argument, an entry and the
 * terminators of its key and value. */
static size_t charge_arg_entries(const unsigned char *q, size_t n)
{
    size_t total = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || q[i] == '&') {
            if (i > start)
                total += 4 + GATE_FIELD_ENTRY_BYTES;
            start = i + 1;
        }
    }
    return total;
}

/* What a Cookie value takes as libmicrohttpd's cookie entries. */
static size_t charge_cookies(const unsigned char *c, size_t n)
{
    size_t total = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || c[i] == ';' || c[i] == ',') {
            while (start < i && c[start] == ' ')
                start++;
            if (i > start)
                total += i - start - (memchr(c + start, '=', i - start) ? 1 : 0) + 4 +
                         GATE_FIELD_ENTRY_BYTES;
            start = i + 1;
        }
    }
    return total;
}

static enum gate_head_result request_line(gate_head_t *h, const unsigned char *l, size_t n,
                                          const gate_limits_t *lim, gate_verdict_t *v)
{
    size_t i = 0, t0, t1, plen;
    const unsigned char *ver, *path;
    unsigned major, minor;
    if (n == 0) { /* an empty line before the request line is tolerated */
        h->_charged += 2;
        return GATE_HEAD_MORE;
    }
    while (i < n && is_tchar(l[i]))
        i++;
    if (i == 0 || i == n || l[i] != ' ')
        return malformed(v, "the request line is not METHOD SP TARGET SP HTTP-VERSION");
    t0 = t1 = i + 1;
    while (t1 < n && l[t1] > 0x20 && l[t1] < 0x7f)
        t1++;
    if (t1 == t0)
        return malformed(v, "the request target is empty or starts with a space");
    if (t1 == n)
        return malformed(v, "the request line has no HTTP version (HTTP/0.9 is not supported)");
    if (l[t1] != ' ')
        return malformed(v, "the request target holds a control or non-ASCII character");
    ver = l + t1 + 1;
    if (n - (t1 + 1) != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' ||
        ver[6] != '.' || ver[7] < '0' || ver[7] > '9')
        return malformed(v, "the request line does not end with one space and HTTP/1.1");
    major = (unsigned)(ver[5] - '0');
    minor = (unsigned)(ver[7] - '0');
    if (major == 2 && i == 3 && memcmp(l, "PRI", 3) == 0)
        return refuse(v, 505, "http_version_not_supported",
                      "HTTP/2 with prior knowledge (h2c) is not supported; use HTTP/1.1.");
    if (major != 1)
        return refuse(v, 505, "http_version_not_supported",
                      "HTTP/%u.%u is not supported; use HTTP/1.1.", major, minor);
    h->_http10 = minor == 0;
    path = l + t0;
    plen = t1 - t0;
    /* as server.c's head_size: the method, the target and 14, and an entry
     * per query argument. The whole target is charged as it came (its '?',
     * '&' and empty arguments are in libmicrohttpd's read buffer too), so a
     * line is always charged at least its length on the wire: what
     * partial() relies on to refuse a line that is still arriving. */
    h->_charged += i + plen + 14;
    {
        const unsigned char *q = memchr(path, '?', plen);
        if (q != NULL) {
            h->_charged += charge_arg_entries(q + 1, (size_t)(path + plen - (q + 1)));
            plen = (size_t)(q - path);
        }
    }
    h->probe = (path_is(l, i, "GET") || path_is(l, i, "HEAD")) &&
               (path_is(path, plen, "/healthz") || path_is(path, plen, "/readyz") ||
                path_is(path, plen, "/v1/healthz") || path_is(path, plen, "/v1/readyz") ||
                path_is(path, plen, "/metrics"));
    {
        const unsigned char *p = path;
        size_t pn = plen;
        if (pn >= 4 && memcmp(p, "/v1/", 4) == 0) {
            p += 3;
            pn -= 3;
        }
        h->messages = path_is(p, pn, "/messages") || (pn > 10 && memcmp(p, "/messages/", 10) == 0);
    }
    if (n + 2 > lim->max_header_bytes)
        return too_large(h, h->_charged, false, lim, v); /* the line itself: a 414 */
    h->_lines = 1; /* past it, what its arguments take: a 431 */
    return h->_charged > lim->max_header_bytes ? too_large(h, h->_charged, false, lim, v)
                                               : GATE_HEAD_MORE;
}

static enum gate_head_result content_length(gate_head_t *h, const unsigned char *val, size_t n,
                                            gate_verdict_t *v)
{
    uint64_t x = 0;
    bool huge = false;
    if (n == 0)
        return refuse(v, 400, "invalid_content_length", "Content-Length is empty.");
    for (size_t i = 0; i < n; i++) {
        if (val[i] < '0' || val[i] > '9')
            return refuse(v, 400, "invalid_content_length",
                          "Content-Length must be one decimal number of bytes, found \"%.*s\".",
                          (int)(n > 40 ? 40 : n), (const char *)val);
        if (x > (UINT64_MAX >> 1) / 10)
            huge = true;
        else
            x = x * 10 + (uint64_t)(val[i] - '0');
    }
    if (h->_have_cl && (huge != h->_cl_huge || x != h->_cl))
        return refuse(v, 400, "conflicting_content_length",
                      "The request has two different Content-Length values.");
    h->_have_cl = true;
    h->_cl_huge = huge;
    h->_cl = x;
    return GATE_HEAD_MORE;
}

/* Transfer-Encoding: a list of codings; several fields make one list. */
static enum gate_head_result transfer_encoding(gate_head_t *h, const unsigned char *val, size_t n,
                                               gate_verdict_t *v)
{
    size_t i = 0;
    h->_te_exact = !h->_have_te && n == 7 && util_ieq("chunked", (const char *)val, 7);
    if (h->_have_te)
        h->_te_twice = true; /* libmicrohttpd reads the first field only */
    h->_have_te = true;
    while (i <= n) {
        size_t s, e;
        while (i < n && (val[i] == ' ' || val[i] == '\t'))
            i++;
        s = i;
        while (i < n && val[i] != ',')
            i++;
        e = i;
        while (e > s && (val[e - 1] == ' ' || val[e - 1] == '\t'))
            e--;
        if (e > s) {
            bool chunked = e - s == 7 && util_ieq("chunked", (const char *)val + s, 7);
            if (chunked && h->_te_final_chunked)
                h->_te_twice = true;
            if (!chunked) {
                for (size_t k = s; k < e; k++)
                    if (!is_tchar(val[k]) && val[k] != ';' && val[k] != '=' && val[k] != ' ' &&
                        val[k] != '"')
                        return refuse(v, 400, "invalid_transfer_encoding",
                                      "Transfer-Encoding is not a list of codings.");
                h->_te_other = true;
            }
            h->_te_final_chunked = chunked;
        }
        i++;
    }
    return GATE_HEAD_MORE;
}

/* The blank line: the head is complete; its framing decides. */
static enum gate_head_result finish(gate_head_t *h, const gate_limits_t *lim, gate_verdict_t *v)
{
    if (h->_charged > lim->max_header_bytes)
        return too_large(h, h->_charged, true, lim, v);
    if (h->_have_te) {
        if (h->_have_cl)
            return refuse(v, 400, "conflicting_framing",
                          "The request has both Content-Length and Transfer-Encoding; send one "
                          "(RFC 9112 section 6.1).");
        if (h->_http10)
            return refuse(v, 400, "invalid_transfer_encoding",
                          "An HTTP/1.0 request cannot use Transfer-Encoding.");
        if (!h->_te_final_chunked)
            return refuse(v, 400, "invalid_transfer_encoding",
                          "Transfer-Encoding must end with chunked (RFC 9112 section 6.3).");
        if (h->_te_other)
            return refuse(v, 501, "unsupported_transfer_encoding",
                          "Only the chunked transfer coding is supported.");
        if (h->_te_twice || !h->_te_exact)
            return refuse(v, 400, "invalid_transfer_encoding",
                          "Transfer-Encoding must be one field with the value chunked.");
    }
    /* a length over max_body_bytes is the request's 413 (server.c: in the
     * access log and /metrics like every answered request); only one past
     * what libmicrohttpd can read is refused here */
    if (h->_have_cl && (h->_cl_huge || h->_cl > (uint64_t)INT64_MAX))
        return refuse(v, 413, "request_too_large",
                      "The request body (Content-Length over 2^63 bytes) is larger than the "
                      "limit of %llu bytes.",
                      (unsigned long long)lim->max_body_bytes);
    return GATE_HEAD_PASS;
}

static enum gate_head_result header_line(gate_head_t *h, const unsigned char *l, size_t n,
                                         const gate_limits_t *lim, gate_verdict_t *v)
{
    size_t i = 0, vs, vn;
    enum gate_head_result rc = GATE_HEAD_MORE;
    if (n == 0)
        return finish(h, lim, v);
    if (l[0] == ' ' || l[0] == '\t')
        return malformed(v, "obsolete line folding (a header line starting with a space)");
    while (i < n && is_tchar(l[i]))
        i++;
    if (i == n)
        return malformed(v, "a header line has no colon");
    if (l[i] != ':') {
        if (l[i] == ' ' || l[i] == '\t')
            return malformed(v, "whitespace between a header field name and its colon");
        return malformed(v, "a header field name holds a character that is not allowed");
    }
    if (i == 0)
        return malformed(v, "a header field has an empty name");
    vs = i + 1;
    while (vs < n && (l[vs] == ' ' || l[vs] == '\t'))
        vs++;
    for (size_t k = vs; k < n; k++) /* DEL passes, as libmicrohttpd lets it */
        if (l[k] != '\t' && l[k] < 0x20)
            return malformed(v, "a header value holds a control character");
    vn = n - vs;
    h->_charged += i + vn + 4 + GATE_FIELD_ENTRY_BYTES;
    if (i == 6 && util_ieq("cookie", (const char *)l, 6))
        h->_charged += charge_cookies(l + vs, vn);
    else if (i == 14 && util_ieq("content-length", (const char *)l, 14))
        rc = content_length(h, l + vs, vn, v);
    else if (i == 17 && util_ieq("transfer-encoding", (const char *)l, 17))
        rc = transfer_encoding(h, l + vs, vn, v);
    h->_lines++;
    (void)lim; /* the size is judged at the blank line, or when bytes keep coming */
    return rc;
}

/* An incomplete last line: refuses what can never become sound. */
static enum gate_head_result partial(const gate_head_t *h, const unsigned char *l, size_t n,
                                     bool eof, const gate_limits_t *lim, gate_verdict_t *v)
{
    /* a line of n >= 2 bytes is charged more than n (what a line is charged
     * is at least its wire length); one byte may be the blank line's CR */
    if (h->_charged > lim->max_header_bytes || (n >= 2 && h->_charged + n > lim->max_header_bytes))
        return too_large(h, h->_charged + n, false, lim, v);
    if (h->_lines > 0 && n > 0 && (l[0] == ' ' || l[0] == '\t'))
        return malformed(v, "obsolete line folding (a header line starting with a space)");
    for (size_t k = 0; k < n; k++) {
        unsigned char c = l[k];
        if (c == '\r' && k + 1 == n)
            break; /* its LF may come next */
        if (c == '\r')
            return malformed(v, "a CR not followed by LF");
        if (h->_lines == 0 ? c < 0x20 || c >= 0x7f : c < 0x20 && c != '\t')
            return malformed(v, "a control character in the request head");
    }
    if (eof)
        return malformed(v, "the connection was closed before the end of the request head");
    return GATE_HEAD_MORE;
}

enum gate_head_result gate_head_check(gate_head_t *h, const char *buf, size_t len, bool eof,
                                      const gate_limits_t *lim, gate_verdict_t *v)
{
    const unsigned char *b = (const unsigned char *)buf;
    while (h->_pos < len) {
        size_t start = h->_pos, end, cend;
        const unsigned char *nl = memchr(b + start, '\n', len - start);
        enum gate_head_result rc;
        if (h->_lines == 0 && b[start] == 0x16) /* a TLS record: a ClientHello */
            return refuse(v, 400, "malformed_request",
                          "This port speaks plain HTTP, not TLS: use http://, or put a TLS "
                          "terminator in front of llmrouter.");
        if (nl == NULL)
            return partial(h, b + start, len - start, eof, lim, v);
        end = (size_t)(nl - b);
        cend = end > start && b[end - 1] == '\r' ? end - 1 : end;
        if (memchr(b + start, '\r', cend - start) != NULL)
            return malformed(v, "a CR not followed by LF");
        h->_pos = end + 1;
        if (h->_lines == 0)
            rc = request_line(h, b + start, cend - start, lim, v);
        else
            rc = header_line(h, b + start, cend - start, lim, v);
        if (rc == GATE_HEAD_PASS)
            h->head_len = h->_pos;
        if (rc != GATE_HEAD_MORE)
            return rc;
    }
    if (h->_charged > lim->max_header_bytes) /* complete lines only, so far */
        return too_large(h, h->_charged, false, lim, v);
    if (eof)
        return malformed(v, "the connection was closed before the end of the request head");
    return GATE_HEAD_MORE;
}

enum gate_head_result gate_head_field(gate_head_t *h, const char *name, size_t nlen,
                                      const char *value, size_t vlen, gate_verdict_t *v)
{
    const unsigned char *val = (const unsigned char *)value;
    if (nlen == 14 && util_ieq("content-length", name, 14))
        return content_length(h, val, vlen, v);
    if (nlen == 17 && util_ieq("transfer-encoding", name, 17))
        return transfer_encoding(h, val, vlen, v);
    return GATE_HEAD_MORE;
}

enum gate_head_result gate_head_framing(gate_head_t *h, bool http10, const gate_limits_t *lim,
                                        gate_verdict_t *v)
{
    h->_http10 = http10;
    return finish(h, lim, v);
}
