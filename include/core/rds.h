/* rds: a non-blocking Redis client for one event loop (hiredis 0.14 async
 * API on a loop_t adapter). Used by the response cache and the budget
 * counters. Redis must never be the reason a request fails or is slow, so:
 * every command is bounded by a short timeout (and by what the caller can
 * still wait, see rds_get), every failure reaches the caller as a status
 * (the cache treats it as a miss, budgets decide locally), and the client
 * reconnects on its own in the background while new commands fail fast.
 * A reconnection counts as up only once the server answered its handshake
 * (AUTH, SELECT and a PING): a frozen server whose kernel still accepts
 * TCP connections is not up. (A client's first connection takes commands
 * from its TCP connect on, queued behind the handshake, so that a daemon
 * that just started does not miss Redis for a round trip.) Reconnects back off exponentially with jitter
 * (rds_policy_t); after several commands in a row time out the client
 * drops the connection and cools down: every command fails at once for
 * cooldown_ms, then it reconnects. Memory is bounded: at most
 * RDS_MAX_INFLIGHT commands are held by the connection.
 *
 * Thread rules: an rds_t belongs to the thread that runs its loop; every
 * function here must be called on that thread (rds_new and rds_url_parse
 * may also run before the loop starts). hiredis writes with write(2), so the
 * process must ignore SIGPIPE (main.c does). Invariants and the hiredis
 * 0.14 behaviour they rely on: the comment at the top of src/rds.c. */
#ifndef LLMROUTER_RDS_H
#define LLMROUTER_RDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

typedef struct rds rds_t;       /* one client (one connection) per loop thread */
typedef struct rds_op rds_op_t; /* a pending command, see rds_get */
struct redisReply;              /* hiredis/hiredis.h */

/* Commands held by one connection at most (sent, or queued to be sent, and
 * not yet answered — a command that timed out stays counted until its late
 * reply or the end of the connection). Beyond it a GET fails fast with
 * RDS_ERROR and a SET is dropped. */
#define RDS_MAX_INFLIGHT 1000
/* A SET is also dropped when this many bytes are already waiting to be
 * written to the socket. */
#define RDS_MAX_UNSENT_BYTES (16u << 20)
/* Timeout used when rds_new is given 0. */
#define RDS_DEFAULT_TIMEOUT_MS 50
/* wait_ms of a caller that accepts the client's own timeout. */
#define RDS_WAIT_ANY UINT32_MAX

enum rds_status {
    RDS_OK = 0,       /* a value (GET) or a non-error reply (rds_command_argv) */
    RDS_NIL = 1,      /* key absent (nil reply) */
    RDS_ERROR = -1,   /* error reply, unexpected reply type, or too many in flight */
    RDS_TIMEOUT = -2, /* no reply within the timeout; the late reply is ignored */
    RDS_DOWN = -3,    /* not connected (or cooling down), or the connection died before the reply */
    RDS_SKIPPED = -4, /* not sent: the caller's wait_ms was 0 */
};

/* What the client does now, for metrics and /readyz. */
enum rds_state {
    RDS_STATE_UP = 0,      /* connected and answering: commands are sent */
    RDS_STATE_DOWN = 1,    /* not connected (connecting, or waiting to retry): commands fail at once */
    RDS_STATE_COOLING = 2, /* commands timed out in a row: not tried until the cooldown ends */
};

/* How the client reacts to failures. Plain data, copied by rds_set_policy. */
typedef struct rds_policy {
    unsigned cooldown_after;   /* this many command timeouts in a row (no reply in between) start a cooldown; >= 1 */
    unsigned cooldown_ms;      /* how long commands fail at once before a reconnect is tried */
    unsigned reconnect_min_ms; /* first reconnect delay; doubles up to reconnect_max_ms */
    unsigned reconnect_max_ms; /* cap of the reconnect delay (each delay is drawn from [d/2, d]) */
} rds_policy_t;

/* The policy a new client starts with: 3 timeouts, 2000 ms cooldown,
 * reconnects from 100 ms to 5000 ms. */
#define RDS_POLICY_DEFAULT ((rds_policy_t){3, 2000, 100, 5000})

/* Where the server is. Filled by rds_url_parse; plain data, copied by rds_new. */
typedef struct rds_addr {
    bool is_unix;       /* unix socket at path; otherwise TCP to host:port */
    char host[64];      /* numeric IPv4/IPv6 address (no DNS at connect time) */
    unsigned port;
    char path[108];     /* unix socket path (sizeof sun_path) */
    unsigned db;        /* SELECTed after each connect when not 0 */
    char user[64];      /* ACL user name for AUTH ("" = none; Redis 6+) */
    char password[256]; /* AUTH after each connect when not ""; never logged */
} rds_addr_t;

/* Parses a server URL into *out (no I/O except resolving "localhost"):
 *   redis://HOST[:PORT][/DB]                HOST an IP literal ([::1] for IPv6)
 *                                           or "localhost"; PORT default 6379
 *   redis://[USER]:PASSWORD@HOST[:PORT][/DB]  PASSWORD may be %-encoded
 *   unix:///path/to.sock[?db=N][&password=P]
 * Other host names are refused: hiredis would resolve them with a blocking
 * getaddrinfo on every reconnect. Returns 0, or -1 with a message in err
 * (which never contains the password). */
int rds_url_parse(const char *url, rds_addr_t *out, char *err, size_t errlen);

/* Creates a client on loop and starts connecting at the loop's next timer
 * pass (never blocks). timeout_ms bounds every command (0 =
 * RDS_DEFAULT_TIMEOUT_MS); connects (TCP and handshake) are bounded by
 * 4 × timeout_ms, at least 200 ms. addr is copied. The policy is
 * RDS_POLICY_DEFAULT until rds_set_policy. Returns NULL only if the address
 * is unusable. The caller frees the client with rds_free. */
rds_t *rds_new(loop_t *loop, const rds_addr_t *addr, unsigned timeout_ms);

/* Replaces the failure policy (copied; out-of-range values are clamped:
 * cooldown_after >= 1, reconnect_min_ms >= 10, reconnect_max_ms >=
 * reconnect_min_ms). Takes effect from the next failure. */
void rds_set_policy(rds_t *r, const rds_policy_t *p);

/* Closes the connection and frees everything; callbacks of pending
 * commands are NOT called and their handles become invalid. NULL is a no-op.
 * Must not be called from inside an rds callback, nor while the loop
 * dispatches I/O events (the client's watcher might still be in that batch,
 * see loop_io_del): call it from the loop hook, from a timer, or after
 * loop_run returned. */
void rds_free(rds_t *r);

/* Called exactly once per command unless cancelled. val/reply are borrowed
 * for the duration of the call. */
typedef void (*rds_get_cb)(void *arg, enum rds_status st, const char *val, size_t len);
typedef void (*rds_reply_cb)(void *arg, enum rds_status st, struct redisReply *reply);

/* GET key (binary-safe, klen bytes; copied). wait_ms is the longest the
 * caller will wait: the command times out after the smaller of wait_ms and
 * the client's timeout (RDS_WAIT_ANY: the client's); wait_ms 0 sends
 * nothing and fails with RDS_SKIPPED. cb(arg, st, val, len) runs exactly
 * once, never from inside rds_get itself, at the latest that long after
 * this call (a failure known at once — not connected, cooling down, too
 * many in flight, skipped — is delivered at the loop's next timer pass).
 * val is NULL unless st is RDS_OK. Never returns NULL; the handle is valid
 * until cb ran or rds_cancel was called. */
rds_op_t *rds_get(rds_t *r, const char *key, size_t klen, unsigned wait_ms, rds_get_cb cb,
                  void *arg);

/* Any command, as argc binary-safe arguments (copied). Same wait_ms,
 * timeout and exactly-once rules as rds_get. cb gets RDS_OK with the reply
 * (a non-nil, non-error reply of any type), RDS_NIL with the nil reply,
 * RDS_ERROR with the error reply (reply->str, e.g. "NOSCRIPT ..."), or
 * RDS_ERROR / RDS_TIMEOUT / RDS_DOWN / RDS_SKIPPED with reply NULL. Never
 * returns NULL. */
rds_op_t *rds_command_argv(rds_t *r, int argc, const char **argv, const size_t *argvlen,
                           unsigned wait_ms, rds_reply_cb cb, void *arg);

/* Cancels a pending command: its callback is never called. op must be a
 * handle whose callback has not run yet; NULL is a no-op. The command may
 * still reach the server (a GET is harmless). */
void rds_cancel(rds_t *r, rds_op_t *op);

/* SET key value EX ttl_s (ttl_s 0 = no expiry), fire and forget: errors are
 * only counted. Dropped (and counted in dropped_writes) when not connected,
 * when RDS_MAX_INFLIGHT commands are in flight, or when
 * RDS_MAX_UNSENT_BYTES are waiting to be sent. key and val are copied. */
void rds_set(rds_t *r, const char *key, size_t klen, const char *val, size_t vlen, unsigned ttl_s);

/* Counters for metrics and tests. Each command whose callback runs counts
 * once in ok, nil, errors, timeouts, down or skipped; failed SETs count in
 * errors. */
typedef struct rds_stats {
    uint64_t ok, nil, errors, timeouts, down, skipped;
    uint64_t reconnects;       /* connections that became up, after the first one */
    uint64_t connect_attempts; /* connections tried (the first one included) */
    uint64_t cooldowns;        /* cooldowns started */
    uint64_t dropped_writes;   /* SETs never sent */
    uint64_t in_flight;        /* commands held by the connection now */
    bool connected;            /* commands are accepted now (state == RDS_STATE_UP) */
    enum rds_state state;
} rds_stats_t;

void rds_get_stats(const rds_t *r, rds_stats_t *out);

/* The state alone (cheap; for a caller that polls it often). */
enum rds_state rds_get_state(const rds_t *r);

/* "up", "down" or "cooling". */
const char *rds_state_name(enum rds_state st);

/* Writes queued commands now (non-blocking) instead of at the next
 * writable-socket event: the shard calls it before sending answers, so that
 * a budget settle reaches Redis before the client can send its next request.
 * Loop thread, outside rds callbacks. NULL is a no-op. */
void rds_flush(rds_t *r);

#endif
