/* fuzz_gate_head: the check of a request head before libmicrohttpd sees it
 * (http/gate_head.c) — request line, header fields, sizes, Content-Length
 * and Transfer-Encoding framing (smuggling) — and the same framing rules fed
 * field by field (gate_head_field / gate_head_framing) as for a kept-alive
 * connection's later requests.
 * The first byte picks the limits; the input's first 8 bytes after it also
 * choose how the bytes arrive (a client sending its head in pieces).
 * Properties: the verdict does not depend on how the head arrived (whole
 * against in pieces, each call seeing everything received so far, as the
 * gate's MSG_PEEK does); a PASS gives a head length within the input that
 * ends with a blank line; a REFUSE carries a 4xx/5xx status, a code and a
 * message; once refused or passed, the verdict does not change with more
 * bytes. */
#include "fuzz.h"

#include "http/gate_head.h"

static enum gate_head_result run(const char *p, size_t n, const uint8_t *cuts, size_t ncuts,
                                 const gate_limits_t *lim, gate_head_t *h, gate_verdict_t *v)
{
    memset(h, 0, sizeof *h);
    memset(v, 0, sizeof *v);
    size_t have = 0, ci = 0;
    enum gate_head_result r = GATE_HEAD_MORE;
    while (have < n) {
        size_t step = ncuts ? (size_t)(cuts[ci++ % ncuts] % 97) + 1 : n;
        have = have + step > n ? n : have + step;
        r = gate_head_check(h, p, have, false, lim, v);
        if (r != GATE_HEAD_MORE)
            break;
    }
    if (r == GATE_HEAD_MORE)
        r = gate_head_check(h, p, n, true, lim, v); /* the client half-closed */
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t hdr[4] = {16384, 1024, 200, 65536};
    static const uint64_t body[4] = {1048576, 10, 0, UINT64_MAX / 2};
    gate_limits_t lim = {hdr[data[0] & 3], body[(data[0] >> 2) & 3]};
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    size_t ncuts = n > 8 ? 8 : 0;
    gate_head_t h1, h2;
    gate_verdict_t v1, v2;
    enum gate_head_result a = run(p, n, NULL, 0, &lim, &h1, &v1);
    enum gate_head_result b = run(p, n, data + 1, ncuts ? ncuts : 1, &lim, &h2, &v2);
    FUZZ_CHECK(a != GATE_HEAD_MORE && b != GATE_HEAD_MORE, "no verdict at the end of the input");
    FUZZ_CHECK(a == b, "verdict %d whole, %d in pieces", (int)a, (int)b);
    if (a == GATE_HEAD_PASS) {
        FUZZ_CHECK(h1.head_len == h2.head_len && h1.probe == h2.probe && h1.messages == h2.messages,
                   "heads differ");
        FUZZ_CHECK(h1.head_len >= 4 && h1.head_len <= n, "head of %zu bytes in %zu", h1.head_len, n);
        FUZZ_CHECK(p[h1.head_len - 1] == '\n', "head does not end with a line break");
    } else {
        /* the message may differ ("take 278 bytes" whole, "at least 211" when
         * refused early), and a head that is both too large and malformed
         * may be refused for its size before the rest arrives: otherwise the
         * status and code may not differ */
        bool sized = v1.status == 431 || v1.status == 414 || v2.status == 431 || v2.status == 414;
        FUZZ_CHECK(sized || (v1.status == v2.status && v1.code == v2.code),
                   "refusals differ: %u %s / %u %s", v1.status, v1.message, v2.status, v2.message);
        FUZZ_CHECK(v1.status >= 400 && v1.status <= 505 && v1.code != NULL && v1.message[0],
                   "refusal %u", v1.status);
        FUZZ_CHECK(memchr(v1.message, '\0', sizeof v1.message) != NULL, "unterminated message");
    }

    /* the kept-alive path: the same bytes as "name: value" lines */
    gate_head_t k;
    gate_verdict_t kv;
    memset(&k, 0, sizeof k);
    enum gate_head_result r = GATE_HEAD_MORE;
    for (size_t i = 0; i < n && r == GATE_HEAD_MORE;) {
        size_t j = i;
        while (j < n && p[j] != '\n')
            j++;
        const char *colon = memchr(p + i, ':', j - i);
        if (colon != NULL) {
            size_t nl = (size_t)(colon - (p + i));
            const char *val = colon + 1;
            size_t vl = (size_t)(p + j - val);
            r = gate_head_field(&k, p + i, nl, val, vl, &kv);
        }
        i = j + 1;
    }
    if (r == GATE_HEAD_MORE)
        r = gate_head_framing(&k, (data[0] & 16) != 0, &lim, &kv);
    if (r == GATE_HEAD_REFUSE)
        FUZZ_CHECK(kv.status >= 400 && kv.status <= 505 && kv.code != NULL && kv.message[0],
                   "kept-alive refusal %u", kv.status);
    return 0;
}
