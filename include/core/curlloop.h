/* curlloop: a libcurl multi handle driven by a shard's event loop through
 * the multi_socket API — curl's sockets watched with epoll, its timeout on a
 * loop timer — for upstream.c (the providers, llmrouter's own calls) and
 * account/otel.c (the OTLP exporter's own multi). Shard thread only. */
#ifndef LLMROUTER_CURLLOOP_H
#define LLMROUTER_CURLLOOP_H

#include <curl/curl.h>

#include "core/loop.h"

struct curlloop_watch;

typedef struct curlloop {
    CURLM *multi;
    loop_t *loop;
    loop_timer_t timer;                /* curl's timeout */
    loop_timer_t reap;                 /* frees the watches removed meanwhile */
    struct curlloop_watch *dead;       /* removed during this batch of events */
    void (*done)(void *arg);           /* after every socket action: read the finished transfers */
    void *arg;
    const char *what;                  /* for the log: "upstream", "otlp" */
} curlloop_t;

/* Creates cl's multi handle (CURLMOPT_MAXCONNECTS maxconnects) on loop;
 * done(arg) runs after each socket action, from the loop (never from
 * inside libcurl), to read curl_multi_info_read. Returns 0, or -1 when
 * libcurl could not make a multi handle. */
int curlloop_init(curlloop_t *cl, loop_t *loop, long maxconnects, void (*done)(void *arg),
                  void *arg, const char *what);

/* Cleans the multi handle up (closing its pooled connections), stops the
 * timers, frees the watches. The easy handles must have been removed.
 * A cl that was never initialised (zeroed) is fine. */
void curlloop_fini(curlloop_t *cl);

#endif
