/* httpresp.h: the incremental HTTP/1.1 response parser shared by the
 * benchmark clients (tests/bench/openloop.c and streams.c): fed any slices
 * of the byte stream, it keeps a few dozen bytes of state and never buffers.
 * Header-only (static functions); libc only. */
#ifndef LLMROUTER_BENCH_HTTPRESP_H
#define LLMROUTER_BENCH_HTTPRESP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { HP_MORE, HP_DONE, HP_ERR };
enum {
    S_PROTO, S_CODE, S_REASON, S_LINE, S_NAME, S_VALUE, S_HEND,
    S_BODY_CL, S_BODY_EOF, S_CSIZE, S_CEXT, S_CDATA, S_CCR, S_CLF,
    S_TLINE, S_TSKIP, S_TEND, S_DONE
};
enum { H_OTHER, H_CL, H_TE, H_CONN };
#define NAME_MAX_LEN 20
#define NAME_LONG 0xff
#define MATCHED 0xff

struct hp {
    uint8_t st, hdr, nlen, match;
    uint8_t chunked, has_cl, close, any;
    int status, ndig;
    uint64_t cl, remain;
    char name[NAME_MAX_LEN];
};

typedef void (*hp_data_fn)(void *ctx, const char *d, size_t n);

static void hp_init(struct hp *p)
{
    memset(p, 0, sizeof *p);
}

/* Case-insensitive substring matcher for needles whose first letter occurs
 * once (so that restarting on a mismatch is exact). */
static void sub_match(uint8_t *m, const char *needle, unsigned char c)
{
    size_t len = strlen(needle);
    if (*m == MATCHED)
        return;
    c = (unsigned char)tolower(c);
    if (c == (unsigned char)needle[*m])
        (*m)++;
    else
        *m = c == (unsigned char)needle[0];
    if (*m == len)
        *m = MATCHED;
}

/* End of the header block: choose how the body is delimited. */
static int hp_headers_done(struct hp *p)
{
    if (p->status >= 100 && p->status < 200 && p->status != 101) {
        hp_init(p); /* interim answer: the real one follows */
        p->any = 1;
        return HP_MORE;
    }
    if (p->status == 204 || p->status == 304)
        return HP_DONE;
    if (p->chunked) {
        p->st = S_CSIZE;
        p->remain = 0;
        p->ndig = 0;
    } else if (p->has_cl) {
        if (p->cl == 0)
            return HP_DONE;
        p->st = S_BODY_CL;
        p->remain = p->cl;
    } else {
        p->st = S_BODY_EOF;
    }
    return HP_MORE;
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Feeds n bytes; body data is passed to fn. Returns HP_DONE when the
 * response ends (*used = bytes consumed), HP_MORE when it needs more,
 * HP_ERR on malformed input. */
static int hp_feed(struct hp *p, const char *b, size_t n, size_t *used, hp_data_fn fn, void *ctx)
{
    size_t i = 0;
    int r;

    if (n > 0)
        p->any = 1;
    while (i < n) {
        unsigned char c = (unsigned char)b[i];
        switch (p->st) {
        case S_BODY_CL:
        case S_CDATA: {
            size_t k = n - i;
            if (k > p->remain)
                k = (size_t)p->remain;
            fn(ctx, b + i, k);
            i += k;
            p->remain -= k;
            if (p->remain == 0) {
                if (p->st == S_BODY_CL) {
                    p->st = S_DONE;
                    *used = i;
                    return HP_DONE;
                }
                p->st = S_CCR;
            }
            continue;
        }
        case S_BODY_EOF:
            fn(ctx, b + i, n - i);
            i = n;
            continue;
        case S_PROTO:
            if (c == ' ' && p->ndig >= 5) {
                p->st = S_CODE;
                p->ndig = 0;
                p->status = 0;
            } else if (p->ndig < 5 && c != (unsigned char)"HTTP/"[p->ndig]) {
                return HP_ERR;
            } else if (c == '\n' || p->ndig > 16) {
                return HP_ERR;
            } else {
                p->ndig++;
            }
            break;
        case S_CODE:
            if (c >= '0' && c <= '9' && p->ndig < 3) {
                p->status = p->status * 10 + (c - '0');
                p->ndig++;
            } else if ((c == ' ' || c == '\r' || c == '\n') && p->ndig == 3) {
                p->st = c == '\n' ? S_LINE : S_REASON;
            } else {
                return HP_ERR;
            }
            break;
        case S_REASON:
            if (c == '\n')
                p->st = S_LINE;
            break;
        case S_LINE:
            if (c == '\r') {
                p->st = S_HEND;
            } else if (c == '\n') {
                goto headers_end;
            } else if (c == ' ' || c == '\t') {
                p->st = S_VALUE; /* obsolete line folding: continues the value */
            } else {
                p->nlen = 1;
                p->name[0] = (char)tolower(c);
                p->st = S_NAME;
            }
            break;
        case S_NAME:
            if (c == ':') {
                p->hdr = H_OTHER;
                if (p->nlen == 14 && memcmp(p->name, "content-length", 14) == 0) {
                    p->hdr = H_CL;
                    p->has_cl = 1;
                    p->cl = 0;
                } else if (p->nlen == 17 && memcmp(p->name, "transfer-encoding", 17) == 0) {
                    p->hdr = H_TE;
                } else if (p->nlen == 10 && memcmp(p->name, "connection", 10) == 0) {
                    p->hdr = H_CONN;
                }
                p->match = 0;
                p->st = S_VALUE;
            } else if (c == '\n') {
                return HP_ERR;
            } else if (p->nlen < NAME_MAX_LEN) {
                p->name[p->nlen++] = (char)tolower(c);
            } else {
                p->nlen = NAME_LONG;
            }
            break;
        case S_VALUE:
            if (c == '\n') {
                p->st = S_LINE;
            } else if (c == '\r' || c == ' ' || c == '\t') {
                /* skipped */
            } else if (p->hdr == H_CL) {
                if (c < '0' || c > '9' || p->cl > 1000000000000000ULL)
                    return HP_ERR;
                p->cl = p->cl * 10 + (uint64_t)(c - '0');
            } else if (p->hdr == H_TE) {
                sub_match(&p->match, "chunked", c);
                if (p->match == MATCHED)
                    p->chunked = 1;
            } else if (p->hdr == H_CONN) {
                sub_match(&p->match, "close", c);
                if (p->match == MATCHED)
                    p->close = 1;
            }
            break;
        case S_HEND:
            if (c != '\n')
                return HP_ERR;
        headers_end:
            r = hp_headers_done(p);
            if (r == HP_DONE) {
                p->st = S_DONE;
                *used = i + 1;
                return HP_DONE;
            }
            break;
        case S_CSIZE: {
            int v = hex_val(c);
            if (v >= 0) {
                if (++p->ndig > 15)
                    return HP_ERR;
                p->remain = p->remain * 16 + (uint64_t)v;
                break;
            }
            if (p->ndig == 0)
                return HP_ERR;
            if (c == '\n')
                goto size_line_end;
            if (c != ';' && c != ' ' && c != '\t' && c != '\r')
                return HP_ERR;
            p->st = S_CEXT;
            break;
        }
        case S_CEXT:
            if (c != '\n')
                break;
        size_line_end:
            p->st = p->remain == 0 ? S_TLINE : S_CDATA;
            break;
        case S_CCR:
            if (c == '\r') {
                p->st = S_CLF;
                break;
            }
            /* fall through */
        case S_CLF:
            if (c != '\n')
                return HP_ERR;
            p->st = S_CSIZE;
            p->remain = 0;
            p->ndig = 0;
            break;
        case S_TLINE:
            if (c == '\r') {
                p->st = S_TEND;
                break;
            }
            if (c != '\n') {
                p->st = S_TSKIP;
                break;
            }
            /* fall through */
        case S_TEND:
            if (c != '\n')
                return HP_ERR;
            p->st = S_DONE;
            *used = i + 1;
            return HP_DONE;
        case S_TSKIP:
            if (c == '\n')
                p->st = S_TLINE;
            break;
        default:
            return HP_ERR;
        }
        i++;
    }
    *used = i;
    return HP_MORE;
}

/* The peer closed the connection: complete only for a close-delimited body. */
static int hp_eof(const struct hp *p)
{
    return p->st == S_BODY_EOF ? HP_DONE : HP_ERR;
}

#endif
