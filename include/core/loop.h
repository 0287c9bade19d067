/* loop: one epoll event loop per thread, with fd watchers, a timer heap and an
 * idle hook run once per iteration. Everything a shard does (libmicrohttpd,
 * libcurl, timers) is driven from here. A loop and its watchers/timers belong
 * to the thread that runs it; only loop_wakeup() may be called from another
 * thread. */
#ifndef LLMROUTER_LOOP_H
#define LLMROUTER_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct loop loop_t;
typedef struct loop_io loop_io_t;
typedef struct loop_timer loop_timer_t;

/* Called with the epoll event bits (EPOLLIN, EPOLLOUT, EPOLLERR, ...). */
typedef void (*loop_io_cb)(loop_t *loop, loop_io_t *io, uint32_t events);
typedef void (*loop_timer_cb)(loop_t *loop, loop_timer_t *t);
/* Runs once per iteration after I/O and timers; returns true when it left
 * work pending, so the next wait must not block. *timeout_ms may be lowered
 * to bound the next wait (-1 = no bound from this hook). */
typedef bool (*loop_hook_cb)(loop_t *loop, void *arg, int64_t *timeout_ms);

/* A watcher, embedded in the owner's struct. */
struct loop_io {
    int fd;
    loop_io_cb cb;
    void *arg;
    uint32_t events; /* current registration, 0 = not registered */
};

/* A timer, embedded in the owner's struct. */
struct loop_timer {
    uint64_t due_ms;
    size_t heap_idx; /* 0 = not armed; 1-based index otherwise */
    uint64_t armed_pass; /* private: timer pass during which it was armed */
    loop_timer_cb cb;
    void *arg;
};

/* Creates a loop; NULL on failure (errno set). */
loop_t *loop_new(void);
/* Frees the loop. Watchers and timers must already be removed. */
void loop_free(loop_t *loop);

void loop_set_hook(loop_t *loop, loop_hook_cb cb, void *arg);

/* Registers or updates io for the given events; events 0 removes it.
 * Returns 0 or -1 (errno set). */
int loop_io_set(loop_t *loop, loop_io_t *io, uint32_t events);
/* Removes io if registered (safe to call twice). An io removed while the
 * loop dispatches a batch of events may still be looked at by that batch:
 * keep its memory valid until the next hook call. */
void loop_io_del(loop_t *loop, loop_io_t *io);

/* Arms (or re-arms) t to fire at loop_now_ms() + after_ms. */
void loop_timer_start(loop_t *loop, loop_timer_t *t, uint64_t after_ms);
/* Disarms t if armed. */
void loop_timer_stop(loop_t *loop, loop_timer_t *t);
static inline bool loop_timer_armed(const loop_timer_t *t)
{
    return t->heap_idx != 0;
}

/* Cached monotonic time of the current iteration, in ms. */
uint64_t loop_now_ms(const loop_t *loop);

/* Runs until loop_stop() is called. */
void loop_run(loop_t *loop);
/* Makes loop_run return after the current iteration (loop thread only). */
void loop_stop(loop_t *loop);

/* Wakes the loop from any thread; the wake callback runs on the loop thread. */
void loop_wakeup(loop_t *loop);
void loop_set_wake_cb(loop_t *loop, void (*cb)(loop_t *, void *), void *arg);

#endif
