/* sse: line and event boundaries per the WHATWG event-stream grammar
 * (\n, \r\n or \r line ends; a blank line ends an event). */
#include "upstream/sse.h"

#include <stdint.h>
#include <string.h>

#include "core/buf.h"

void sse_init(sse_scan_t *s)
{
    memset(s, 0, sizeof *s);
}

/* ---- choices and their finish_reason ----
 *
 * A byte-level walk of each data event's JSON, fed from the same loop that
 * finds the event boundaries: no copy, no tree, no allocation. It tracks the
 * nesting depth and string state only, and looks at keys at two depths:
 * "choices" in the top-level object (depth 1) and "index" / "finish_reason"
 * in that array's element objects (depth 3). Anything it cannot follow (too
 * deep, unbalanced) ends the walk for the event; the stream is then judged
 * on what was seen, and an unfinished choice keeps it unfinished. */

enum { W_NONE, W_CHOICES, W_INDEX, W_FINISH };

static void choice_end(sse_choices_t *c)
{
    int64_t i = c->idx >= 0 ? c->idx : (int64_t)c->elem;
    uint64_t bit;
    if (i >= SSE_MAX_CHOICES) {
        c->overflow = true;
        return;
    }
    bit = (uint64_t)1 << (i % 64);
    c->seen[i / 64] |= bit;
    if (c->fin)
        c->done[i / 64] |= bit;
}

static bool key_is(const sse_choices_t *c, const char *k, uint8_t n)
{
    return c->key_len == n && memcmp(c->key, k, n) == 0;
}

static void string_end(sse_choices_t *c)
{
    if (c->in_key) {
        c->in_key = false;
        c->want = W_NONE;
        if (c->depth == 1 && key_is(c, "choices", 7))
            c->want = W_CHOICES;
        else if (c->depth == 3 && c->in_choices && key_is(c, "index", 5))
            c->want = W_INDEX;
        else if (c->depth == 3 && c->in_choices && key_is(c, "finish_reason", 13))
            c->want = W_FINISH;
        return;
    }
    if (c->want == W_FINISH && c->depth == 3 && c->str_len > 0)
        c->fin = true;
    c->want = W_NONE;
}

static void choices_byte(sse_choices_t *c, char ch)
{
    if (c->bad)
        return;
    if (c->in_str) {
        if (!c->esc && ch == '"') {
            c->in_str = false;
            string_end(c);
            return;
        }
        c->esc = !c->esc && ch == '\\';
        if (c->in_key) {
            /* an escape stays in the key, so an escaped key never matches */
            if (c->key_len < sizeof c->key)
                c->key[c->key_len] = ch;
            if (c->key_len <= sizeof c->key)
                c->key_len++;
        } else if (c->str_len < UINT32_MAX) {
            c->str_len++;
        }
        return;
    }
    switch (ch) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case ':':
        return;
    case '"':
        c->in_str = true;
        c->esc = false;
        c->in_key = c->key_next;
        c->key_next = false;
        c->key_len = 0;
        c->str_len = 0;
        return;
    case '{':
    case '[':
        if (c->depth >= 63) {
            c->bad = true;
            return;
        }
        c->depth++;
        if (ch == '{')
            c->obj_mask |= (uint64_t)1 << c->depth;
        else
            c->obj_mask &= ~((uint64_t)1 << c->depth);
        c->key_next = ch == '{';
        if (c->depth == 2 && ch == '[' && c->want == W_CHOICES) {
            c->in_choices = true;
            c->elem = 0;
        } else if (c->depth == 3 && c->in_choices && ch == '{') {
            c->idx = -1;
            c->fin = false;
        }
        c->want = W_NONE;
        return;
    case '}':
    case ']':
        if (c->depth == 0) {
            c->bad = true;
            return;
        }
        if (c->depth == 3 && c->in_choices && ch == '}')
            choice_end(c);
        else if (c->depth == 2 && c->in_choices)
            c->in_choices = false;
        c->depth--;
        c->want = W_NONE;
        c->key_next = false;
        return;
    case ',':
        if (c->obj_mask >> c->depth & 1)
            c->key_next = true;
        if (c->depth == 2 && c->in_choices)
            c->elem++;
        c->want = W_NONE;
        return;
    default:
        if (c->want == W_INDEX && c->depth == 3) {
            if (ch >= '0' && ch <= '9' && c->idx < SSE_MAX_CHOICES)
                c->idx = (c->idx < 0 ? 0 : c->idx * 10) + (ch - '0');
            else
                c->idx = SSE_MAX_CHOICES; /* negative, fractional or huge: not a choice we know */
        }
        return;
    }
}

/* Forgets the walk of one event (what it found is kept). */
static void choices_event_end(sse_choices_t *c)
{
    c->bad = c->in_str = c->esc = c->key_next = c->in_key = c->in_choices = false;
    c->depth = 0;
    c->obj_mask = 0;
    c->want = W_NONE;
}

bool sse_choices_finished(const sse_scan_t *s)
{
    const sse_choices_t *c = &s->ch;
    bool any = false;
    if (c->overflow)
        return false;
    for (size_t i = 0; i < SSE_MAX_CHOICES / 64; i++) {
        if (c->seen[i] != c->done[i])
            return false;
        any = any || c->seen[i] != 0;
    }
    return any;
}

bool sse_in_event(const sse_scan_t *s)
{
    return s->event_start != s->pos;
}

static void end_line(sse_scan_t *s, uint64_t line_len)
{
    if (s->head_len >= 5 && memcmp(s->head, "data:", 5) == 0) {
        const char *v = s->head + 5;
        uint64_t vlen = line_len - 5;
        bool first = !s->has_data;
        s->has_data = true;
        if (vlen > 0 && *v == ' ') {
            v++;
            vlen--;
        }
        /* only an event whose whole data is "[DONE]" ends the stream */
        s->is_done = first && vlen == 6 && s->head_len == line_len && memcmp(v, "[DONE]", 6) == 0;
    }
}

/* The first index in [from, n) holding '"', '\\', '\n' or '\r' (n if
 * none), eight bytes at a time. */
static size_t skip_plain(const char *p, size_t from, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = from;
    while (i + 8 <= n) {
        uint64_t w, a, b, c, d;
        memcpy(&w, p + i, 8);
        a = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        c = w ^ (ones * '\n');
        d = w ^ (ones * '\r');
        if ((((a - ones) & ~a) | ((b - ones) & ~b) | ((c - ones) & ~c) | ((d - ones) & ~d)) & highs)
            break;
        i += 8;
    }
    while (i < n && p[i] != '"' && p[i] != '\\' && p[i] != '\n' && p[i] != '\r')
        i++;
    return i;
}

size_t sse_feed(sse_scan_t *s, const char *p, size_t n, sse_event_t *ev, bool *got)
{
    *got = false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        uint64_t here = s->pos++;
        if (ch == '\n' && s->cr) {
            /* second half of a \r\n already counted as the line end */
            s->cr = false;
            s->line_start = s->pos;
            if (s->event_start == here)
                s->event_start = s->pos;
            continue;
        }
        s->cr = ch == '\r';
        if (ch == '\n' || ch == '\r') {
            uint64_t line_len = here - s->line_start;
            s->in_value = false;
            if (line_len == 0) {
                ev->start = s->event_start;
                ev->end = s->pos;
                ev->has_data = s->has_data;
                ev->is_done = s->is_done;
                s->has_data = s->is_done = false;
                s->line_start = s->pos;
                s->event_start = s->pos;
                s->head_len = 0;
                choices_event_end(&s->ch);
                *got = true;
                return i + 1;
            }
            end_line(s, line_len);
            s->line_start = s->pos;
            s->head_len = 0;
            continue;
        }
        if (s->head_len < sizeof s->head)
            s->head[s->head_len++] = ch;
        if (s->in_value) {
            /* the data's bytes; a line break between data lines is
             * whitespace to JSON, so nothing is fed for it */
            if (s->lead_sp) {
                s->lead_sp = false;
                if (ch == ' ')
                    continue;
            }
            choices_byte(&s->ch, ch);
            if (s->ch.in_str && !s->ch.in_key && !s->ch.esc && !s->ch.bad) {
                /* inside a value string (the content: most of the bytes):
                 * nothing but its end, an escape or a line end matters */
                size_t j = skip_plain(p, i + 1, n);
                if (j > i + 1) {
                    uint64_t k = j - (i + 1);
                    s->pos += k;
                    s->ch.str_len = s->ch.str_len + k > UINT32_MAX ? UINT32_MAX
                                                                   : (uint32_t)(s->ch.str_len + k);
                    s->head_len = sizeof s->head; /* a line with a string is never [DONE] */
                    i = j - 1;
                }
            }
        } else if (s->head_len == 5 && here - s->line_start == 4 &&
                   memcmp(s->head, "data:", 5) == 0) {
            s->in_value = true;
            s->lead_sp = true;
        }
    }
    return n;
}

char *sse_event_data(const char *p, size_t len)
{
    buf_t b;
    size_t i = 0;
    buf_init(&b, len + 1);
    while (i < len) {
        size_t e = i;
        while (e < len && p[e] != '\n' && p[e] != '\r')
            e++;
        if (e - i >= 5 && memcmp(p + i, "data:", 5) == 0) {
            size_t v = i + 5;
            if (v < e && p[v] == ' ')
                v++;
            if (buf_len(&b) > 0)
                buf_puts(&b, "\n");
            buf_append(&b, p + v, e - v);
        }
        i = e + 1;
    }
    buf_cstr(&b);
    return b.data;
}
