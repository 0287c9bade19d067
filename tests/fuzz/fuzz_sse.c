/* fuzz_sse: the incremental SSE event scanner every streamed answer goes
 * through (upstream/sse.c), including its walk of each chunk's JSON for the
 * choices that finished.
 * Properties: the events found (their offsets, data and [DONE] flags), the
 * "inside an event" state and the finished-choices verdict do not depend on
 * how the bytes were split into reads (whole input against pieces of 1 to
 * 64 bytes chosen from the input); events are in order, do not overlap and
 * lie within the input. */
#include "fuzz.h"

#define MAX_EVENTS 4096

typedef struct run {
    size_t n;
    sse_event_t ev[MAX_EVENTS];
    bool in_event, finished;
} run_t;

static run_t g_a, g_b;

static void scan(const uint8_t *p, size_t n, const uint8_t *cuts, size_t ncuts, run_t *r)
{
    sse_scan_t sc;
    size_t off = 0, ci = 0;
    sse_init(&sc);
    r->n = 0;
    while (off < n) {
        size_t piece = n - off;
        if (ncuts > 0) {
            piece = (size_t)(cuts[ci++ % ncuts] & 63) + 1;
            if (piece > n - off)
                piece = n - off;
        }
        size_t done = 0;
        while (done < piece) {
            sse_event_t ev;
            bool got = false;
            size_t k = sse_feed(&sc, (const char *)p + off + done, piece - done, &ev, &got);
            FUZZ_CHECK(k <= piece - done, "consumed %zu of %zu", k, piece - done);
            done += k;
            if (got) {
                if (r->n < MAX_EVENTS)
                    r->ev[r->n] = ev;
                r->n++;
            } else {
                FUZZ_CHECK(done == piece, "stopped at %zu of %zu without an event", done, piece);
            }
        }
        off += piece;
    }
    r->in_event = sse_in_event(&sc);
    r->finished = sse_choices_finished(&sc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the first 8 bytes (when there are more) choose the pieces */
    size_t ncuts = size > 16 ? 8 : 0;
    const uint8_t *p = data + ncuts;
    size_t n = size - ncuts;
    scan(p, n, NULL, 0, &g_a);
    scan(p, n, data, ncuts ? ncuts : 1, &g_b);
    FUZZ_CHECK(g_a.n == g_b.n, "%zu events whole, %zu in pieces", g_a.n, g_b.n);
    FUZZ_CHECK(g_a.in_event == g_b.in_event, "in_event differs");
    FUZZ_CHECK(g_a.finished == g_b.finished, "choices_finished differs");
    uint64_t prev = 0;
    for (size_t i = 0; i < g_a.n && i < MAX_EVENTS; i++) {
        const sse_event_t *x = &g_a.ev[i], *y = &g_b.ev[i];
        FUZZ_CHECK(x->start == y->start && x->end == y->end && x->has_data == y->has_data &&
                       x->is_done == y->is_done,
                   "event %zu differs", i);
        FUZZ_CHECK(x->start >= prev && x->end > x->start && x->end <= n, "event %zu at %llu..%llu",
                   i, (unsigned long long)x->start, (unsigned long long)x->end);
        prev = x->end;
    }
    return 0;
}
