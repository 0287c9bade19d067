/* server: the HTTP front end on libmicrohttpd. Routes paths, reads bodies
 * under their cap, answers early (health, models, 404/405/413/431, CORS
 * preflights, admin gate) and hands a routed request to the budget, the
 * cache and the upstream; answers go out through http/reply.h. One daemon
 * per shard; every function runs on that shard's thread. */
#ifndef LLMROUTER_SERVER_H
#define LLMROUTER_SERVER_H

#include <stddef.h>

#include "core/config.h"
#include "http/request.h"

struct MHD_Daemon;
struct shard;

/* Starts a daemon in external-epoll mode on cfg's listen address with
 * SO_REUSEPORT. Returns NULL with a message in err on failure. */
struct MHD_Daemon *server_start(struct shard *shard, const config_t *cfg, char *err,
                                size_t errlen);

/* Answers go through http/reply.h. */

#endif
