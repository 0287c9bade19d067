/* Shared by test_door_messages.c and test_door_responses.c: runs the
 * conformance fixtures of a door. A fixture is a directory under
 * tests/unit/http/fixtures/<door>/ holding any of:
 *   request.json  + expected_chat.json   the request translation
 *   request.json  + expected_error.txt   a refused request: "<status> <code>"
 *   answer.json   + expected_answer.json the non-streamed answer translation
 *   stream.sse    + expected_stream.sse  the chunk stream translation; the
 *                                        file "cut" marks a stream expected
 *                                        to end incomplete
 * JSON is compared as JSON (cJSON_Compare), streams event by event (names
 * exactly, data as JSON). Each stream is also run with a tiny output buffer
 * that forces the "no room, try again" path and must give the same bytes.
 * DOOR_FIXTURES_UPDATE=1 rewrites the expected files from the output (review
 * the diff before committing). Run from the repository root. */
#ifndef DOOR_FIXTURE_H
#define DOOR_FIXTURE_H

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/json.h"
#include "http/request.h"
#include "upstream/sse.h"

/* What a door gives the runner. */
typedef struct door_ops {
    const char *dir; /* tests/unit/http/fixtures/<door> */
    /* request → chat: 0 or -1 with *err */
    int (*request)(const char *body, size_t len, buf_t *out, req_error_t *err);
    /* answer → door answer: 0 or negative */
    int (*answer)(const char *chat, size_t len, buf_t *out);
    /* stream: new, feed (0 or AGAIN), finish, free */
    void *(*s_new)(void);
    int (*s_feed)(void *s, const char *data, size_t len, buf_t *out);
    int (*s_finish)(void *s, buf_t *out, bool *complete);
    void (*s_free)(void *s);
    int again; /* the AGAIN code */
} door_ops_t;

static char *fx_read(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    FILE *f;
    char *data;
    long n;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return data;
}

static bool fx_exists(const char *dir, const char *name)
{
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static bool fx_update(void)
{
    const char *u = getenv("DOOR_FIXTURES_UPDATE");
    return u != NULL && u[0] == '1';
}

static void fx_write(const char *dir, const char *name, const char *data, size_t len)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Pretty-prints JSON text for an expected file (keeps fixtures reviewable). */
static void fx_write_json(const char *dir, const char *name, const char *data, size_t len)
{
    cJSON *v = cJSON_ParseWithLength(data, len);
    char *s;
    assert_non_null(v);
    s = cJSON_Print(v);
    fx_write(dir, name, s, strlen(s));
    free(s);
    cJSON_Delete(v);
}

static void fx_assert_json_equal(const char *where, const char *got, size_t got_len,
                                 const char *want, size_t want_len)
{
    cJSON *g = cJSON_ParseWithLength(got, got_len), *w = cJSON_ParseWithLength(want, want_len);
    if (g == NULL || w == NULL || !cJSON_Compare(g, w, true)) {
        fprintf(stderr, "%s: JSON differs\n--- got:\n%.*s\n--- want:\n%.*s\n", where,
                (int)got_len, got, (int)want_len, want);
        cJSON_Delete(g);
        cJSON_Delete(w);
        fail();
    }
    cJSON_Delete(g);
    cJSON_Delete(w);
}

typedef struct fx_event {
    char *name; /* NULL when the event has no event: line */
    char *data;
} fx_event_t;

/* Splits an SSE text into events with the daemon's scanner. */
static size_t fx_events(const char *text, size_t len, fx_event_t *ev, size_t max)
{
    sse_scan_t sc;
    size_t off = 0, n = 0;
    sse_init(&sc);
    while (off < len) {
        sse_event_t e;
        bool got = false;
        off += sse_feed(&sc, text + off, len - off, &e, &got);
        if (!got)
            break;
        assert_true(n < max);
        ev[n].data = sse_event_data(text + e.start, (size_t)(e.end - e.start));
        ev[n].name = NULL;
        if (strncmp(text + e.start, "event: ", 7) == 0) {
            const char *nl = memchr(text + e.start, '\n', (size_t)(e.end - e.start));
            assert_non_null(nl);
            ev[n].name = strndup(text + e.start + 7, (size_t)(nl - (text + e.start + 7)));
        }
        n++;
    }
    return n;
}

static void fx_events_free(fx_event_t *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ev[i].name);
        free(ev[i].data);
    }
}

#define FX_MAX_EVENTS 512

static void fx_assert_stream_equal(const char *where, const char *got, size_t got_len,
                                   const char *want, size_t want_len)
{
    static fx_event_t g[FX_MAX_EVENTS], w[FX_MAX_EVENTS];
    size_t ng = fx_events(got, got_len, g, FX_MAX_EVENTS);
    size_t nw = fx_events(want, want_len, w, FX_MAX_EVENTS);
    bool ok = ng == nw;
    for (size_t i = 0; ok && i < ng; i++) {
        cJSON *a = cJSON_Parse(g[i].data), *b = cJSON_Parse(w[i].data);
        ok = ((g[i].name == NULL && w[i].name == NULL) ||
              (g[i].name && w[i].name && strcmp(g[i].name, w[i].name) == 0)) &&
             a != NULL && b != NULL && cJSON_Compare(a, b, true);
        if (!ok)
            fprintf(stderr, "%s: event %zu differs: got %s %s / want %s %s\n", where, i,
                    g[i].name ? g[i].name : "-", g[i].data, w[i].name ? w[i].name : "-",
                    w[i].data);
        cJSON_Delete(a);
        cJSON_Delete(b);
    }
    if (!ok)
        fprintf(stderr, "%s: %zu events, expected %zu\n--- got:\n%.*s\n", where, ng, nw,
                (int)got_len, got);
    fx_events_free(g, ng);
    fx_events_free(w, nw);
    assert_true(ok);
}

/* Every event the translator writes is `event: <name>` + one `data:` line of
 * a JSON object whose "type" is the name. */
static void fx_assert_well_formed(const char *where, const char *text, size_t len)
{
    static fx_event_t ev[FX_MAX_EVENTS];
    size_t n = fx_events(text, len, ev, FX_MAX_EVENTS);
    for (size_t i = 0; i < n; i++) {
        cJSON *d = cJSON_Parse(ev[i].data);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "type");
        if (ev[i].name == NULL || !cJSON_IsString(t) || strcmp(t->valuestring, ev[i].name) != 0) {
            fprintf(stderr, "%s: event %zu malformed: %s\n", where, i, ev[i].data);
            fail();
        }
        cJSON_Delete(d);
    }
    fx_events_free(ev, n);
}

/* Runs the stream translator over the chunk stream `in`, with an output
 * buffer of cap bytes drained into *all whenever it reports no room (the cap
 * doubles when even an empty buffer is too small). */
static bool fx_run_stream(const door_ops_t *ops, const char *in, size_t in_len, size_t cap,
                          buf_t *all)
{
    sse_scan_t sc;
    size_t off = 0;
    buf_t out;
    bool complete = false;
    void *s = ops->s_new();
    int rc;
    sse_init(&sc);
    buf_init(&out, cap);
    while (off < in_len) {
        sse_event_t e;
        bool got = false;
        char *data;
        off += sse_feed(&sc, in + off, in_len - off, &e, &got);
        if (!got)
            break;
        if (!e.has_data)
            continue;
        data = sse_event_data(in + e.start, (size_t)(e.end - e.start));
        while ((rc = ops->s_feed(s, data, strlen(data), &out)) == ops->again) {
            if (buf_len(&out) == 0) {
                cap *= 2;
                buf_free(&out);
                buf_init(&out, cap);
            }
            assert_int_equal(buf_append(all, buf_ptr(&out), buf_len(&out)), 0);
            buf_reset(&out);
        }
        assert_int_equal(rc, 0);
        free(data);
    }
    while ((rc = ops->s_finish(s, &out, &complete)) == ops->again) {
        if (buf_len(&out) == 0) {
            cap *= 2;
            buf_free(&out);
            buf_init(&out, cap);
        }
        assert_int_equal(buf_append(all, buf_ptr(&out), buf_len(&out)), 0);
        buf_reset(&out);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(buf_append(all, buf_ptr(&out), buf_len(&out)), 0);
    buf_free(&out);
    ops->s_free(s);
    return complete;
}

static void fx_run_one(const door_ops_t *ops, const char *dir, unsigned *checks)
{
    char *in, *want;
    size_t in_len, want_len;
    bool upd = fx_update();

    in = fx_read(dir, "request.json", &in_len);
    if (in != NULL) {
        buf_t out;
        req_error_t err;
        int rc;
        memset(&err, 0, sizeof err);
        buf_init(&out, 1 << 22);
        rc = ops->request(in, in_len, &out, &err);
        if (fx_exists(dir, "expected_error.txt") || (upd && rc < 0)) {
            char got[128];
            snprintf(got, sizeof got, "%u %s\n", err.status, err.code ? err.code : "-");
            if (upd) {
                fx_write(dir, "expected_error.txt", got, strlen(got));
            } else {
                want = fx_read(dir, "expected_error.txt", &want_len);
                if (rc != -1 || strcmp(got, want) != 0) {
                    fprintf(stderr, "%s: got %d %s(%s), want %s", dir, rc, got, err.message, want);
                    fail();
                }
                free(want);
            }
        } else {
            if (rc != 0)
                fprintf(stderr, "%s: request refused: %u %s\n", dir, err.status, err.message);
            assert_int_equal(rc, 0);
            if (upd) {
                fx_write_json(dir, "expected_chat.json", buf_ptr(&out), buf_len(&out));
            } else {
                want = fx_read(dir, "expected_chat.json", &want_len);
                assert_non_null(want);
                fx_assert_json_equal(dir, buf_ptr(&out), buf_len(&out), want, want_len);
                free(want);
            }
            /* the translation is a body the daemon's strict pass accepts */
            {
                int is_object = 0;
                assert_int_equal(json_check(buf_ptr(&out), buf_len(&out), JSON_CHECK_STRICT,
                                            &is_object, NULL),
                                 1);
                assert_true(is_object);
            }
        }
        buf_free(&out);
        free(in);
        (*checks)++;
    }

    in = fx_read(dir, "answer.json", &in_len);
    if (in != NULL) {
        buf_t out;
        buf_init(&out, 1 << 22);
        assert_int_equal(ops->answer(in, in_len, &out), 0);
        if (upd) {
            fx_write_json(dir, "expected_answer.json", buf_ptr(&out), buf_len(&out));
        } else {
            want = fx_read(dir, "expected_answer.json", &want_len);
            assert_non_null(want);
            fx_assert_json_equal(dir, buf_ptr(&out), buf_len(&out), want, want_len);
            free(want);
        }
        buf_free(&out);
        free(in);
        (*checks)++;
    }

    in = fx_read(dir, "stream.sse", &in_len);
    if (in != NULL) {
        buf_t big, small;
        bool complete, complete_small;
        buf_init(&big, 1 << 22);
        buf_init(&small, 1 << 22);
        complete = fx_run_stream(ops, in, in_len, 1 << 20, &big);
        complete_small = fx_run_stream(ops, in, in_len, 64, &small);
        /* the no-room path changes nothing */
        assert_int_equal(buf_len(&big), buf_len(&small));
        assert_memory_equal(buf_ptr(&big), buf_ptr(&small), buf_len(&big));
        assert_int_equal(complete, complete_small);
        fx_assert_well_formed(dir, buf_ptr(&big), buf_len(&big));
        if (upd) {
            fx_write(dir, "expected_stream.sse", buf_ptr(&big), buf_len(&big));
        } else {
            want = fx_read(dir, "expected_stream.sse", &want_len);
            assert_non_null(want);
            fx_assert_stream_equal(dir, buf_ptr(&big), buf_len(&big), want, want_len);
            free(want);
            if (complete != !fx_exists(dir, "cut"))
                fprintf(stderr, "%s: complete=%d\n", dir, complete);
            assert_int_equal(complete, !fx_exists(dir, "cut"));
        }
        buf_free(&big);
        buf_free(&small);
        free(in);
        (*checks)++;
    }
}

/* Runs every fixture of a door; fails when there are none. */
static void fx_run_all(const door_ops_t *ops)
{
    DIR *d = opendir(ops->dir);
    struct dirent *de;
    unsigned fixtures = 0, checks = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char dir[512];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        snprintf(dir, sizeof dir, "%s/%s", ops->dir, de->d_name);
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        fx_run_one(ops, dir, &checks);
        fixtures++;
    }
    closedir(d);
    fprintf(stderr, "%s: %u fixtures, %u checks\n", ops->dir, fixtures, checks);
    assert_true(fixtures > 0);
}

#endif
