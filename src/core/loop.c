/* loop: epoll + a binary min-heap of timers + an eventfd for cross-thread
 * wake-ups. The heap gives O(log n) arm/disarm for thousands of per-request
 * timers; expired timers are popped before their callback runs, so a callback
 * may re-arm or stop any timer, itself included. */
#include "core/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

#define LOOP_MAX_EVENTS 256

struct loop {
    int epfd;
    loop_io_t wake_io;
    void (*wake_cb)(loop_t *, void *);
    void *wake_arg;
    loop_timer_t **heap; /* 1-based; heap[0] unused */
    size_t heap_len;
    size_t heap_alloc;
    uint64_t now_ms;
    uint64_t pass; /* run_timers invocations */
    bool stop;
    loop_hook_cb hook;
    void *hook_arg;
};

static void on_wake(loop_t *loop, loop_io_t *io, uint32_t events)
{
    uint64_t v;
    (void)events;
    if (read(io->fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warn("loop: eventfd read failed: errno %d", errno);
    if (loop->wake_cb)
        loop->wake_cb(loop, loop->wake_arg);
}

loop_t *loop_new(void)
{
    loop_t *loop = xcalloc(1, sizeof *loop);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        goto fail;
    loop->wake_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_io.fd < 0)
        goto fail;
    loop->wake_io.cb = on_wake;
    if (loop_io_set(loop, &loop->wake_io, EPOLLIN) < 0)
        goto fail;
    loop->heap_alloc = 64;
    loop->heap = xcalloc(loop->heap_alloc, sizeof *loop->heap);
    loop->now_ms = util_now_ms();
    return loop;
fail:
    if (loop->wake_io.fd > 0)
        close(loop->wake_io.fd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    free(loop);
    return NULL;
}

void loop_free(loop_t *loop)
{
    if (loop == NULL)
        return;
    close(loop->wake_io.fd);
    close(loop->epfd);
    free(loop->heap);
    free(loop);
}

void loop_set_hook(loop_t *loop, loop_hook_cb cb, void *arg)
{
    loop->hook = cb;
    loop->hook_arg = arg;
}

void loop_set_wake_cb(loop_t *loop, void (*cb)(loop_t *, void *), void *arg)
{
    loop->wake_cb = cb;
    loop->wake_arg = arg;
}

int loop_io_set(loop_t *loop, loop_io_t *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    int op;
    if (events == 0) {
        loop_io_del(loop, io);
        return 0;
    }
    op = io->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0)
        return -1;
    io->events = events;
    return 0;
}

void loop_io_del(loop_t *loop, loop_io_t *io)
{
    if (io->events == 0)
        return;
    /* The fd may already be closed (then the kernel dropped it itself). */
    (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->events = 0;
}

/* ---- timer heap ---- */

static void heap_swap(loop_t *loop, size_t a, size_t b)
{
    loop_timer_t *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_idx = a;
    loop->heap[b]->heap_idx = b;
}

static void heap_up(loop_t *loop, size_t i)
{
    while (i > 1 && loop->heap[i / 2]->due_ms > loop->heap[i]->due_ms) {
        heap_swap(loop, i, i / 2);
        i /= 2;
    }
}

static void heap_down(loop_t *loop, size_t i)
{
    for (;;) {
        size_t l = 2 * i, r = l + 1, m = i;
        if (l <= loop->heap_len && loop->heap[l]->due_ms < loop->heap[m]->due_ms)
            m = l;
        if (r <= loop->heap_len && loop->heap[r]->due_ms < loop->heap[m]->due_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(loop, i, m);
        i = m;
    }
}

void loop_timer_stop(loop_t *loop, loop_timer_t *t)
{
    size_t i = t->heap_idx;
    if (i == 0)
        return;
    t->heap_idx = 0;
    if (i != loop->heap_len) {
        loop->heap[i] = loop->heap[loop->heap_len];
        loop->heap[i]->heap_idx = i;
        loop->heap_len--;
        heap_up(loop, i);
        heap_down(loop, i);
    } else {
        loop->heap_len--;
    }
}

void loop_timer_start(loop_t *loop, loop_timer_t *t, uint64_t after_ms)
{
    loop_timer_stop(loop, t);
    t->due_ms = loop->now_ms + after_ms;
    t->armed_pass = loop->pass;
    if (loop->heap_len + 1 >= loop->heap_alloc) {
        loop->heap_alloc *= 2;
        loop->heap = xrealloc(loop->heap, loop->heap_alloc * sizeof *loop->heap);
    }
    loop->heap[++loop->heap_len] = t;
    t->heap_idx = loop->heap_len;
    heap_up(loop, t->heap_idx);
}

uint64_t loop_now_ms(const loop_t *loop)
{
    return loop->now_ms;
}

static void run_timers(loop_t *loop)
{
    uint64_t pass = ++loop->pass;
    /* A timer (re)armed during this pass waits for the next one, so a
     * callback that re-arms itself with 0 ms cannot spin here. */
    while (loop->heap_len > 0 && loop->heap[1]->due_ms <= loop->now_ms &&
           loop->heap[1]->armed_pass != pass) {
        loop_timer_t *t = loop->heap[1];
        loop_timer_stop(loop, t);
        t->cb(loop, t);
    }
}

void loop_stop(loop_t *loop)
{
    loop->stop = true;
}

void loop_wakeup(loop_t *loop)
{
    uint64_t one = 1;
    if (write(loop->wake_io.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("loop: eventfd write failed: errno %d", errno);
}

void loop_run(loop_t *loop)
{
    struct epoll_event events[LOOP_MAX_EVENTS];
    bool pending = false;

    loop->stop = false;
    while (!loop->stop) {
        int64_t timeout = -1;
        int n;

        if (loop->hook)
            pending = loop->hook(loop, loop->hook_arg, &timeout);
        if (loop->stop)
            break;
        if (pending) {
            timeout = 0;
        } else if (loop->heap_len > 0) {
            uint64_t due = loop->heap[1]->due_ms;
            int64_t t = due > loop->now_ms ? (int64_t)(due - loop->now_ms) : 0;
            if (timeout < 0 || t < timeout)
                timeout = t;
        }
        if (timeout > 60000)
            timeout = 60000;
        n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, (int)timeout);
        loop->now_ms = util_now_ms();
        if (n < 0) {
            if (errno != EINTR)
                log_error("loop: epoll_wait failed: errno %d", errno);
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            loop_io_t *io = events[i].data.ptr;
            /* A callback earlier in this batch may have removed it; owners
             * defer freeing removed watchers to the hook (see loop.h). */
            if (io->events != 0)
                io->cb(loop, io, events[i].events);
        }
        run_timers(loop);
    }
}
