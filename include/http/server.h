/* server: the HTTP front end on libmicrohttpd, behind the gate
 * (http/gate.h). Routes paths, reads bodies under their cap, answers early
 * (health, models, 404/405/413/431, framing errors of later requests on a
 * kept-alive connection, CORS preflights, admin gate) and hands a routed request to the budget, the
 * cache and the upstream; answers go out through http/reply.h. One daemon
 * per shard; every function runs on that shard's thread. */
#ifndef LLMROUTER_SERVER_H
#define LLMROUTER_SERVER_H

#include <stddef.h>

#include "core/config.h"
#include "http/request.h"

struct MHD_Daemon;
struct shard;
struct gate;
struct gate_ips;

/* Starts a daemon in external-epoll mode without a listening socket of its
 * own, and the shard's gate (http/gate.h), which listens on cfg's address
 * with SO_REUSEPORT and hands it the connections whose first head is sound.
 * *gate gets the gate (the shard quiesces it on stop and frees it after
 * MHD_stop_daemon). ips: the process-wide per-address connection counts
 * (borrowed). Returns NULL with a message in err on failure. */
struct MHD_Daemon *server_start(struct shard *shard, const config_t *cfg, struct gate_ips *ips,
                                struct gate **gate, char *err, size_t errlen);

/* Answers go through http/reply.h. */

#endif
