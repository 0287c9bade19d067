/* sse: an incremental scanner of server-sent events that finds event
 * boundaries and recognises "data: [DONE]" without copying. Bytes are passed
 * through untouched by the caller; the scanner only reports where events end.
 * While it scans, it also follows the JSON of every data event closely
 * enough to know which choice indexes the stream has shown and which of them
 * received a non-null finish_reason (see sse_choices_finished): a stream may
 * only be completed with a synthesised [DONE] when all of them did.
 * One scanner per stream; not thread-safe. */
#ifndef LLMROUTER_SSE_H
#define LLMROUTER_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Choice indexes followed; a stream showing a higher one is never "finished"
 * (OpenAI caps n at 128). */
#define SSE_MAX_CHOICES 128

/* Which choices of a chat or legacy completions stream were seen and which
 * finished: the top-level "choices" array of each data event, its element
 * objects' own "index" (the element's position when absent) and
 * "finish_reason" (finished when it is a non-empty string). Keys nested
 * deeper (tool_calls' "index", strings that contain the words) do not count.
 * Internal state of sse_scan_t; read it through sse_choices_finished. */
typedef struct sse_choices {
    uint64_t seen[SSE_MAX_CHOICES / 64];
    uint64_t done[SSE_MAX_CHOICES / 64];
    bool overflow;   /* an index >= SSE_MAX_CHOICES was seen */
    /* per event: a byte-level walk of the data's JSON */
    bool bad;        /* not JSON we can follow: ignore the rest of the event */
    bool in_str, esc, key_next, in_key;
    uint8_t depth;       /* nesting depth, 1 = the top-level object */
    uint64_t obj_mask;   /* bit d: the container at depth d is an object */
    uint8_t want;        /* what the current value at the choice's depth means */
    bool in_choices;     /* the array at depth 2 is the top-level "choices" */
    char key[16];
    uint8_t key_len;     /* > sizeof key: too long to be one of ours */
    uint32_t elem;       /* position of the current element in "choices" */
    int64_t idx;         /* the current choice's "index", -1 until read */
    uint32_t str_len;    /* length of the string value being read */
    bool fin;            /* the current choice has a non-null finish_reason */
} sse_choices_t;

typedef struct sse_scan {
    uint64_t pos;         /* absolute offset of the next byte */
    uint64_t event_start; /* absolute offset of the current event's first line */
    uint64_t line_start;
    char head[16]; /* first bytes of the current line */
    unsigned head_len;
    bool cr;       /* previous byte was '\r' */
    bool has_data; /* current event has a data: line */
    bool is_done;  /* current event's data is [DONE] */
    bool in_value; /* inside the value of a data: line */
    bool lead_sp;  /* that value's first byte may be the one space to skip */
    sse_choices_t ch;
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

/* True when the bytes scanned so far end inside an event (a partial line, or
 * lines without the blank line that ends the event). */
bool sse_in_event(const sse_scan_t *s);

/* True when the stream scanned so far showed at least one choice and every
 * choice it showed received a non-null finish_reason. */
bool sse_choices_finished(const sse_scan_t *s);

/* The data of one event (its "data:" lines joined by '\n', one leading
 * space stripped each), from the event's bytes p[0..len). Returns a malloc'd,
 * NUL-terminated string the caller frees. */
char *sse_event_data(const char *p, size_t len);

#endif
