/* sse: line and event boundaries per the WHATWG event-stream grammar
 * (\n, \r\n or \r line ends; a blank line ends an event). */
#include "upstream/sse.h"

#include <string.h>

#include "core/buf.h"

void sse_init(sse_scan_t *s)
{
    memset(s, 0, sizeof *s);
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
            if (line_len == 0) {
                ev->start = s->event_start;
                ev->end = s->pos;
                ev->has_data = s->has_data;
                ev->is_done = s->is_done;
                s->has_data = s->is_done = false;
                s->line_start = s->pos;
                s->event_start = s->pos;
                s->head_len = 0;
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
