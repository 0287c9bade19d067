/* gate: the door in front of libmicrohttpd. Each shard's gate owns its
 * listening socket (SO_REUSEPORT) and accepts connections itself; for a new
 * connection it peeks at the request head (MSG_PEEK: nothing is consumed)
 * until the head is complete and checked (http/gate_head.h), then hands the
 * socket to the shard's daemon (MHD_add_connection), which reads the same
 * bytes. A head that fails the check is answered by the gate in JSON (the
 * door's error shape) and the connection closed, so libmicrohttpd never
 * answers a first request with its own HTML pages.
 *
 * Limits, all of them the gate's:
 * - server.request_timeout_ms: the head must arrive within it of the accept
 *   (408 and close). For connections libmicrohttpd holds, server.c reports
 *   each request's head, body and end, and the gate keeps two deadlines: the
 *   body within request_timeout_ms of its head, and a kept-alive connection's
 *   next head within connection_timeout_s + request_timeout_ms of the last
 *   answer (libmicrohttpd's own timeout is one of idleness, which a client
 *   trickling bytes never reaches). On expiry the gate writes a 408 (unless a
 *   100 Continue may be on the wire) and shuts the socket down, which
 *   libmicrohttpd sees as the client closing.
 * - server.max_connections: the shard's share (max_connections / threads)
 *   counts connections being checked and connections libmicrohttpd holds.
 *   When it is taken, the oldest connection still sending its head is
 *   evicted (408) if it had a second; else GATE_PROBE_RESERVE more are
 *   accepted per shard for health checks: a reserve connection whose head
 *   is a GET of /healthz, /readyz or /metrics is handed on, any other gets
 *   503; over the reserve a connection gets a 503 at once and is closed.
 * - server.max_connections_per_ip (0 = off): open connections per client
 *   address across every shard (http/gate_ips.h); over it 429 at once.
 *
 * Refusals are written in one send and followed by a lingering close (our
 * side shut for writing, the client's bytes read and dropped for up to
 * GATE_LINGER_MS) so that the answer is not lost to a reset.
 * Everything here runs on the shard's thread. */
#ifndef LLMROUTER_GATE_H
#define LLMROUTER_GATE_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/config.h"
#include "http/gate_head.h"

/* Connections per shard over its share of max_connections, for probes. */
#define GATE_PROBE_RESERVE 32
/* How long a refused connection is read and dropped before it is closed. */
#define GATE_LINGER_MS 2000

typedef struct gate gate_t;
struct shard;
struct gate_ips;

/* Creates the gate of shard (nothing listens yet). ips is the process-wide
 * per-address table (borrowed; outlives the gate). */
gate_t *gate_new(struct shard *shard, const config_t *cfg, struct gate_ips *ips);

/* The connection limit the shard's daemon must have: its share of
 * max_connections plus the probe reserve. */
unsigned gate_mhd_limit(const gate_t *g);

/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback; cls is the gate. */
void gate_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code);

/* Binds sa with SO_REUSEPORT, listens, and from now on accepts on the
 * shard's loop and hands sound connections to d. 0, or -1 with a message. */
int gate_listen(gate_t *g, struct MHD_Daemon *d, const struct sockaddr *sa, socklen_t len,
                char *err, size_t errlen);

/* Stops accepting (a graceful stop): closes the listening socket.
 * Connections being checked go on. */
void gate_quiesce(gate_t *g);

/* Closes the connections the gate still holds and frees it. Call after
 * MHD_stop_daemon (whose close notifications come here) and before the
 * shard's loop is freed. NULL is fine. */
void gate_free(gate_t *g);

/* ---- requests libmicrohttpd parsed (server.c, first handler call) ---- */

typedef struct gate_scan {
    size_t bytes;           /* what the head takes in the pool, as the gate charges it */
    bool refused;           /* the framing is not sound: answer verdict, then close */
    bool expect;            /* an Expect field: 100 Continue may be written */
    gate_verdict_t verdict; /* when refused */
    gate_head_t _framing;
} gate_scan_t;

/* Measures a head libmicrohttpd parsed (the request line, and per header
 * field, cookie and query argument its text and GATE_FIELD_ENTRY_BYTES) and
 * checks its framing with the gate's rules: on a kept-alive connection the
 * gate did not see it, so a smuggling attempt or an unknown coding is
 * caught here (libmicrohttpd calls the handler for those; it answers bad
 * Content-Length values and heads over the pool itself, before). */
void gate_scan_head(struct MHD_Connection *conn, const char *method, const char *url,
                    const char *version, const config_t *cfg, gate_scan_t *out);

/* ---- deadlines of connections libmicrohttpd holds (server.c) ---- */

/* conn's request has its head: the wait for it ends and the body's deadline
 * starts. expect_continue: libmicrohttpd may write 100 Continue, so an
 * expired deadline closes without a 408. messages: the Messages door's
 * error shape for the 408. */
void gate_head_received(struct MHD_Connection *conn, bool expect_continue, bool messages);
/* conn's request body is complete. */
void gate_body_received(struct MHD_Connection *conn);
/* conn's request ended; if the connection stays open, its next head must
 * arrive within connection_timeout_s + request_timeout_ms. */
void gate_request_done(struct MHD_Connection *conn);

#endif
