/* curlloop: a curl multi on the shard's loop (see core/curlloop.h).
 * A socket curl no longer needs is unwatched at once, but its watch is
 * freed only on the next loop turn (a zero-delay timer): libcurl may still
 * report events for it within the same batch. */
#include "core/curlloop.h"

#include <stdlib.h>
#include <sys/epoll.h>

#include "core/log.h"
#include "core/util.h"

typedef struct curlloop_watch {
    loop_io_t io; /* first: the loop hands back &io */
    curlloop_t *cl;
    struct curlloop_watch *next_dead;
} watch_t;

static void free_dead(curlloop_t *cl)
{
    while (cl->dead != NULL) {
        watch_t *w = cl->dead;
        cl->dead = w->next_dead;
        free(w);
    }
}

static void on_reap(loop_t *loop, loop_timer_t *t)
{
    (void)loop;
    free_dead(t->arg);
}

static void on_sock_io(loop_t *loop, loop_io_t *io, uint32_t events)
{
    watch_t *w = (watch_t *)io;
    curlloop_t *cl = w->cl;
    int flags = 0, running;
    (void)loop;
    if (events & EPOLLIN)
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(cl->multi, io->fd, flags, &running);
    cl->done(cl->arg);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    curlloop_t *cl = userp;
    watch_t *w = socketp;
    uint32_t ev = 0;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            loop_io_del(cl->loop, &w->io);
            curl_multi_assign(cl->multi, s, NULL);
            w->next_dead = cl->dead;
            cl->dead = w;
            if (!loop_timer_armed(&cl->reap))
                loop_timer_start(cl->loop, &cl->reap, 0);
        }
        return 0;
    }
    if (w == NULL) {
        w = xcalloc(1, sizeof *w);
        w->io.fd = s;
        w->io.cb = on_sock_io;
        w->cl = cl;
        curl_multi_assign(cl->multi, s, w);
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= EPOLLOUT;
    if (loop_io_set(cl->loop, &w->io, ev) < 0)
        log_warn("%s: cannot watch socket %d", cl->what, (int)s);
    return 0;
}

static void on_timer_fire(loop_t *loop, loop_timer_t *t)
{
    curlloop_t *cl = t->arg;
    int running;
    (void)loop;
    curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    cl->done(cl->arg);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    curlloop_t *cl = userp;
    (void)multi;
    if (timeout_ms < 0)
        loop_timer_stop(cl->loop, &cl->timer);
    else
        loop_timer_start(cl->loop, &cl->timer, (uint64_t)timeout_ms);
    return 0;
}

int curlloop_init(curlloop_t *cl, loop_t *loop, long maxconnects, void (*done)(void *arg),
                  void *arg, const char *what)
{
    cl->loop = loop;
    cl->done = done;
    cl->arg = arg;
    cl->what = what;
    cl->dead = NULL;
    cl->timer.cb = on_timer_fire;
    cl->timer.arg = cl;
    cl->reap.cb = on_reap;
    cl->reap.arg = cl;
    cl->multi = curl_multi_init();
    if (cl->multi == NULL)
        return -1;
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
    curl_multi_setopt(cl->multi, CURLMOPT_MAXCONNECTS, maxconnects);
    return 0;
}

void curlloop_fini(curlloop_t *cl)
{
    if (cl->multi != NULL)
        curl_multi_cleanup(cl->multi); /* closes pooled connections (REMOVE callbacks) */
    cl->multi = NULL;
    if (cl->loop != NULL) {
        loop_timer_stop(cl->loop, &cl->timer);
        loop_timer_stop(cl->loop, &cl->reap);
    }
    free_dead(cl);
}
