/* sse: an incremental scanner of server-sent events that finds event
 * boundaries and recognises "data: [DONE]" without copying. Bytes are passed
 * through untouched by the caller; the scanner only reports where events end.
 * One scanner per stream; not thread-safe. */
#ifndef LLMROUTER_SSE_H
#define LLMROUTER_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sse_scan {
    uint64_t pos;         /* absolute offset of the next byte */
    uint64_t event_start; /* absolute offset of the current event's first line */
    uint64_t line_start;
    char head[16]; /* first bytes of the current line */
    unsigned head_len;
    bool cr;       /* previous byte was '\r' */
    bool has_data; /* current event has a data: line */
    bool is_done;  /* current event's data is [DONE] */
} sse_scan_t;

typedef struct sse_event {
    uint64_t start; /* absolute offset of the event's first byte */
    uint64_t end;   /* absolute offset just past its terminating blank line */
    bool has_data;  /* false for comment-only (keep-alive) events */
    bool is_done;   /* data: [DONE] */
} sse_event_t;

void sse_init(sse_scan_t *s);

/* Scans p[0..n). Stops right after the first event that completes in it and
 * fills *ev. Returns the number of bytes consumed; *got tells whether an
 * event completed. Call again with the rest. */
size_t sse_feed(sse_scan_t *s, const char *p, size_t n, sse_event_t *ev, bool *got);

/* The data of one event (its "data:" lines joined by '\n', one leading
 * space stripped each), from the event's bytes p[0..len). Returns a malloc'd,
 * NUL-terminated string the caller frees. */
char *sse_event_data(const char *p, size_t len);

#endif
