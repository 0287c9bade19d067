/* Unit tests for src/loop.c: the timer heap (order, stop, re-arm), fd
 * watchers and cross-thread wake-ups. Every test arms a watchdog timer that
 * stops the loop, so a broken loop fails instead of hanging. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/util.h"

#define WATCHDOG_MS 5000

typedef struct rec {
    int order[512];
    size_t n;
    int watchdog_fired;
    int stop_after; /* stop the loop when n reaches this (0 = never) */
} rec_t;

typedef struct ttimer {
    loop_timer_t t;
    int id;
    rec_t *rec;
    int rearm_left; /* re-arm itself this many more times */
    uint64_t rearm_ms;
} ttimer_t;

static void on_timer(loop_t *loop, loop_timer_t *t)
{
    ttimer_t *tt = t->arg;
    assert_false(loop_timer_armed(t)); /* popped before the callback */
    assert_true(loop_now_ms(loop) >= t->due_ms);
    if (tt->rec->n < sizeof tt->rec->order / sizeof tt->rec->order[0])
        tt->rec->order[tt->rec->n++] = tt->id;
    if (tt->rearm_left > 0) {
        tt->rearm_left--;
        loop_timer_start(loop, t, tt->rearm_ms);
    }
    if (tt->rec->stop_after > 0 && (int)tt->rec->n >= tt->rec->stop_after)
        loop_stop(loop);
}

static void on_watchdog(loop_t *loop, loop_timer_t *t)
{
    rec_t *rec = t->arg;
    rec->watchdog_fired = 1;
    loop_stop(loop);
}

static void tt_init(ttimer_t *tt, int id, rec_t *rec)
{
    memset(tt, 0, sizeof *tt);
    tt->t.cb = on_timer;
    tt->t.arg = tt;
    tt->id = id;
    tt->rec = rec;
}

static void arm_watchdog(loop_t *loop, loop_timer_t *wd, rec_t *rec)
{
    memset(wd, 0, sizeof *wd);
    wd->cb = on_watchdog;
    wd->arg = rec;
    loop_timer_start(loop, wd, WATCHDOG_MS);
}

static void test_timers_fire_in_due_order(void **state)
{
    uint64_t t0 = util_now_ms(); /* <= the loop's clock at creation */
    loop_t *loop = loop_new();
    loop_timer_t wd;
    rec_t rec = {.stop_after = 4};
    ttimer_t t[4];
    static const uint64_t after[4] = {40, 10, 30, 20};
    (void)state;
    assert_non_null(loop);
    arm_watchdog(loop, &wd, &rec);
    for (int i = 0; i < 4; i++) {
        tt_init(&t[i], i, &rec);
        loop_timer_start(loop, &t[i].t, after[i]);
        assert_true(loop_timer_armed(&t[i].t));
    }
    loop_run(loop);
    assert_false(rec.watchdog_fired);
    assert_int_equal(rec.n, 4);
    assert_int_equal(rec.order[0], 1);
    assert_int_equal(rec.order[1], 3);
    assert_int_equal(rec.order[2], 2);
    assert_int_equal(rec.order[3], 0);
    /* not early: the last one was due 40 ms after arming */
    assert_true(util_now_ms() - t0 >= 40);
    for (int i = 0; i < 4; i++)
        assert_false(loop_timer_armed(&t[i].t));
    loop_timer_stop(loop, &wd);
    loop_free(loop);
}

/* Many timers (past the heap's initial size), armed in scrambled order, some
 * stopped from the middle of the heap: the rest fire in due order. */
static void test_many_timers_heap_order(void **state)
{
    enum { N = 150 };
    loop_t *loop = loop_new();
    loop_timer_t wd;
    rec_t *rec = calloc(1, sizeof *rec);
    ttimer_t *t = calloc(N, sizeof *t);
    int expect = 0;
    (void)state;
    assert_non_null(loop);
    assert_non_null(rec);
    assert_non_null(t);
    arm_watchdog(loop, &wd, rec);
    for (int i = 0; i < N; i++) {
        int k = (i * 67) % N; /* 67 is prime to 150: a permutation */
        tt_init(&t[k], k, rec);
        loop_timer_start(loop, &t[k].t, (uint64_t)k / 2 + 1);
    }
    for (int k = 0; k < N; k += 3)
        loop_timer_stop(loop, &t[k].t);
    rec->stop_after = N - (N + 2) / 3;
    loop_run(loop);
    assert_false(rec->watchdog_fired);
    assert_int_equal(rec->n, (size_t)rec->stop_after);
    for (size_t i = 0; i < rec->n; i++) {
        int id = rec->order[i];
        assert_true(id % 3 != 0); /* stopped ones never fire */
        if (i > 0)
            assert_true(id / 2 >= rec->order[i - 1] / 2); /* by due time */
        expect++;
    }
    assert_int_equal(expect, rec->stop_after);
    loop_timer_stop(loop, &wd);
    loop_free(loop);
    free(t);
    free(rec);
}

/* Random arm / re-arm / stop operations: exactly the timers left armed fire,
 * each once, in due order (checks the heap after arbitrary removals). */
typedef struct rnd_timer {
    loop_timer_t t;
    int fired;
    uint64_t fired_due;
    struct rnd_state *st;
} rnd_timer_t;

typedef struct rnd_state {
    uint64_t last_due;
    int in_order;
    int fired;
    int expected;
} rnd_state_t;

static void on_rnd_timer(loop_t *loop, loop_timer_t *t)
{
    rnd_timer_t *r = t->arg;
    r->fired++;
    r->fired_due = t->due_ms;
    if (t->due_ms < r->st->last_due)
        r->st->in_order = 0;
    r->st->last_due = t->due_ms;
    if (++r->st->fired == r->st->expected)
        loop_stop(loop);
}

static void test_random_operations_keep_heap_order(void **state)
{
    enum { N = 300 };
    loop_t *loop = loop_new();
    loop_timer_t wd;
    rec_t rec = {0};
    rnd_timer_t *t = calloc(N, sizeof *t);
    rnd_state_t st = {.in_order = 1};
    unsigned seed = 2024;
    (void)state;
    assert_non_null(t);
    for (int i = 0; i < N; i++) {
        t[i].t.cb = on_rnd_timer;
        t[i].t.arg = &t[i];
        t[i].st = &st;
    }
    for (int op = 0; op < 5000; op++) {
        int i;
        seed = seed * 1103515245u + 12345u;
        i = (int)((seed >> 8) % N);
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 8) % 3 == 0)
            loop_timer_stop(loop, &t[i].t);
        else
            loop_timer_start(loop, &t[i].t, 1 + (seed >> 12) % 80);
    }
    for (int i = 0; i < N; i++)
        st.expected += loop_timer_armed(&t[i].t);
    assert_true(st.expected > N / 3);
    arm_watchdog(loop, &wd, &rec);
    loop_run(loop);
    assert_false(rec.watchdog_fired);
    assert_int_equal(st.fired, st.expected);
    assert_true(st.in_order);
    for (int i = 0; i < N; i++)
        assert_true(t[i].fired <= 1);
    loop_timer_stop(loop, &wd);
    loop_free(loop);
    free(t);
}

static void test_stopped_timer_does_not_fire(void **state)
{
    loop_t *loop = loop_new();
    loop_timer_t wd;
    rec_t rec = {.stop_after = 1};
    ttimer_t a, b;
    (void)state;
    arm_watchdog(loop, &wd, &rec);
    tt_init(&a, 1, &rec);
    tt_init(&b, 2, &rec);
    loop_timer_start(loop, &a.t, 5);
    loop_timer_start(loop, &b.t, 30);
    loop_timer_stop(loop, &a.t);
    assert_false(loop_timer_armed(&a.t));
    loop_timer_stop(loop, &a.t); /* twice is harmless */
    loop_run(loop);
    assert_false(rec.watchdog_fired);
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.order[0], 2);
    loop_timer_stop(loop, &wd);
    loop_free(loop);
}

static void test_rearm_moves_the_timer(void **state)
{
    uint64_t t0 = util_now_ms(); /* <= the loop's clock at creation */
    loop_t *loop = loop_new();
    loop_timer_t wd;
    rec_t rec = {.stop_after = 2};
    ttimer_t a, b;
    (void)state;
    arm_watchdog(loop, &wd, &rec);
    tt_init(&a, 1, &rec);
    tt_init(&b, 2, &rec);
    /* a: 2000 ms, then re-armed to 5 ms (fires once, early) */
    loop_timer_start(loop, &a.t, 2000);
    loop_timer_start(loop, &b.t, 40);
    loop_timer_start(loop, &a.t, 5);
    /* b: 40 ms, then re-armed later to 60 */
    loop_timer_start(loop, &b.t, 60);
    loop_run(loop);
    assert_false(rec.watchdog_fired);
    assert_int_equal(rec.n, 2);
    assert_int_equal(rec.order[0], 1);
    assert_int_equal(rec.order[1], 2);
    assert_true(util_now_ms() - t0 < 1500);
    assert_true(util_now_ms() - t0 >= 60);
    loop_timer_stop(loop, &wd);
    loop_free(loop);
}

static void test_timer_rearms_itself_from_callback(void **state)
{
    uint64_t t0 = util_now_ms(); /* <= the loop's clock at creation */
    loop_t *loop = loop_new();
    loop_timer_t wd;
    rec_t rec = {.stop_after = 4};
    ttimer_t a;
    (void)state;
    arm_watchdog(loop, &wd, &rec);
    tt_init(&a, 7, &rec);
    a.rearm_left = 3;
    a.rearm_ms = 10;
    loop_timer_start(loop, &a.t, 10);
    loop_run(loop);
    assert_false(rec.watchdog_fired);
    assert_int_equal(rec.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rec.order[i], 7);
    assert_true(util_now_ms() - t0 >= 40);
    assert_false(loop_timer_armed(&a.t));
    loop_timer_stop(loop, &wd);
    loop_free(loop);
}

typedef struct stopper {
    loop_timer_t t;
    int fired;
} stopper_t;

static void on_stop_timer(loop_t *loop, loop_timer_t *t)
{
    stopper_t *s = t->arg;
    s->fired++;
    loop_stop(loop);
}

static void test_timer_callback_stops_loop(void **state)
{
    loop_t *loop = loop_new();
    loop_timer_t wd;
    rec_t rec = {0};
    stopper_t s = {.t = {.cb = on_stop_timer}};
    ttimer_t later;
    (void)state;
    s.t.arg = &s;
    arm_watchdog(loop, &wd, &rec);
    tt_init(&later, 9, &rec);
    loop_timer_start(loop, &s.t, 5);
    loop_timer_start(loop, &later.t, 1000);
    loop_run(loop);
    assert_int_equal(s.fired, 1);
    assert_false(rec.watchdog_fired);
    assert_int_equal(rec.n, 0); /* returned before the later timer */
    assert_true(loop_timer_armed(&later.t));
    /* the loop can run again */
    loop_timer_start(loop, &s.t, 1);
    loop_run(loop);
    assert_int_equal(s.fired, 2);
    loop_timer_stop(loop, &later.t);
    loop_timer_stop(loop, &wd);
    loop_free(loop);
}

/* ---- fd watchers ---- */

typedef struct pipe_test {
    loop_io_t io;
    loop_timer_t writer;
    int fds[2];
    char got[16];
    ssize_t n;
    uint32_t events;
    int calls;
} pipe_test_t;

static void on_readable(loop_t *loop, loop_io_t *io, uint32_t events)
{
    pipe_test_t *p = io->arg;
    p->calls++;
    p->events = events;
    p->n = read(io->fd, p->got, sizeof p->got);
    loop_stop(loop);
}

static void on_write_timer(loop_t *loop, loop_timer_t *t)
{
    pipe_test_t *p = t->arg;
    (void)loop;
    assert_int_equal(write(p->fds[1], "ping", 4), 4);
}

static void test_fd_watcher_fires_when_written(void **state)
{
    loop_t *loop = loop_new();
    loop_timer_t wd;
    rec_t rec = {0};
    pipe_test_t p;
    (void)state;
    memset(&p, 0, sizeof p);
    assert_int_equal(pipe(p.fds), 0);
    p.io.fd = p.fds[0];
    p.io.cb = on_readable;
    p.io.arg = &p;
    assert_int_equal(loop_io_set(loop, &p.io, EPOLLIN), 0);
    assert_int_equal(p.io.events, EPOLLIN);
    p.writer.cb = on_write_timer;
    p.writer.arg = &p;
    loop_timer_start(loop, &p.writer, 10);
    arm_watchdog(loop, &wd, &rec);
    loop_run(loop);
    assert_false(rec.watchdog_fired);
    assert_int_equal(p.calls, 1);
    assert_true(p.events & EPOLLIN);
    assert_int_equal(p.n, 4);
    assert_memory_equal(p.got, "ping", 4);

    /* removed: writing again does not call it */
    loop_io_del(loop, &p.io);
    assert_int_equal(p.io.events, 0);
    loop_io_del(loop, &p.io); /* twice is harmless */
    assert_int_equal(write(p.fds[1], "x", 1), 1);
    {
        stopper_t s = {.t = {.cb = on_stop_timer}};
        s.t.arg = &s;
        loop_timer_start(loop, &s.t, 30);
        loop_run(loop);
        assert_int_equal(s.fired, 1);
    }
    assert_int_equal(p.calls, 1);

    /* events 0 also removes; re-adding works (data still pending) */
    assert_int_equal(loop_io_set(loop, &p.io, EPOLLIN), 0);
    assert_int_equal(loop_io_set(loop, &p.io, 0), 0);
    assert_int_equal(p.io.events, 0);
    assert_int_equal(loop_io_set(loop, &p.io, EPOLLIN), 0);
    loop_run(loop);
    assert_false(rec.watchdog_fired);
    assert_int_equal(p.calls, 2);
    assert_int_equal(p.n, 1);
    loop_io_del(loop, &p.io);
    close(p.fds[0]);
    close(p.fds[1]);
    loop_timer_stop(loop, &wd);
    loop_free(loop);
}

static void test_io_set_bad_fd_fails(void **state)
{
    loop_t *loop = loop_new();
    loop_io_t io = {.fd = -1, .cb = on_readable};
    (void)state;
    assert_int_equal(loop_io_set(loop, &io, EPOLLIN), -1);
    assert_int_equal(io.events, 0);
    loop_free(loop);
}

/* ---- cross-thread wake-up ---- */

typedef struct wake_test {
    loop_t *loop;
    int wakes;
    pthread_t self;
    int on_loop_thread;
} wake_test_t;

static void on_wake(loop_t *loop, void *arg)
{
    wake_test_t *w = arg;
    w->wakes++;
    w->on_loop_thread = pthread_equal(pthread_self(), w->self);
    loop_stop(loop);
}

static void *waker(void *arg)
{
    wake_test_t *w = arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    loop_wakeup(w->loop);
    return NULL;
}

static void test_wakeup_from_another_thread(void **state)
{
    wake_test_t w = {0};
    loop_timer_t wd;
    rec_t rec = {0};
    pthread_t th;
    (void)state;
    w.loop = loop_new();
    w.self = pthread_self();
    loop_set_wake_cb(w.loop, on_wake, &w);
    arm_watchdog(w.loop, &wd, &rec);
    assert_int_equal(pthread_create(&th, NULL, waker, &w), 0);
    loop_run(w.loop); /* blocks: no timer but the watchdog is due */
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_false(rec.watchdog_fired);
    assert_int_equal(w.wakes, 1);
    assert_true(w.on_loop_thread);

    /* wake-ups before the loop runs are not lost; several coalesce */
    loop_wakeup(w.loop);
    loop_wakeup(w.loop);
    loop_run(w.loop);
    assert_false(rec.watchdog_fired);
    assert_int_equal(w.wakes, 2);
    loop_timer_stop(w.loop, &wd);
    loop_free(w.loop);
}

/* ---- hook ---- */

typedef struct hook_test {
    int calls;
    int pending_left;
} hook_test_t;

static bool on_hook(loop_t *loop, void *arg, int64_t *timeout_ms)
{
    hook_test_t *h = arg;
    (void)timeout_ms;
    h->calls++;
    if (h->pending_left > 0) {
        h->pending_left--;
        return true; /* more work: do not block */
    }
    loop_stop(loop);
    return false;
}

static void test_hook_runs_every_iteration(void **state)
{
    loop_t *loop = loop_new();
    loop_timer_t wd;
    rec_t rec = {0};
    hook_test_t h = {.pending_left = 5};
    uint64_t t0;
    (void)state;
    loop_set_hook(loop, on_hook, &h);
    arm_watchdog(loop, &wd, &rec);
    t0 = util_now_ms();
    loop_run(loop);
    /* pending work made the waits non-blocking */
    assert_true(util_now_ms() - t0 < 1000);
    assert_false(rec.watchdog_fired);
    assert_int_equal(h.calls, 6);
    loop_timer_stop(loop, &wd);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_due_order),
        cmocka_unit_test(test_many_timers_heap_order),
        cmocka_unit_test(test_random_operations_keep_heap_order),
        cmocka_unit_test(test_stopped_timer_does_not_fire),
        cmocka_unit_test(test_rearm_moves_the_timer),
        cmocka_unit_test(test_timer_rearms_itself_from_callback),
        cmocka_unit_test(test_timer_callback_stops_loop),
        cmocka_unit_test(test_fd_watcher_fires_when_written),
        cmocka_unit_test(test_io_set_bad_fd_fails),
        cmocka_unit_test(test_wakeup_from_another_thread),
        cmocka_unit_test(test_hook_runs_every_iteration),
    };
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
