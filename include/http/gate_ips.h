/* gate_ips: open client connections per client address, across every shard,
 * for server.max_connections_per_ip. One table for the process, created
 * before the shards and freed after them; a mutex guards it, taken once when
 * a connection is accepted and once when it closes (never per request).
 * IPv4 and IPv4-mapped IPv6 addresses count as the same client. Any thread. */
#ifndef LLMROUTER_GATE_IPS_H
#define LLMROUTER_GATE_IPS_H

#include <stdbool.h>

struct sockaddr;
typedef struct gate_ips gate_ips_t;

gate_ips_t *gate_ips_new(void);
/* Every take must have been given back. NULL is fine. */
void gate_ips_free(gate_ips_t *t);

/* Counts one more connection from sa's address unless it has max open
 * already: true when counted (give it back with gate_ips_give). Addresses
 * other than IPv4 and IPv6 are never limited (true, and counted). */
bool gate_ips_take(gate_ips_t *t, const struct sockaddr *sa, unsigned max);
/* Gives back one connection counted by gate_ips_take. */
void gate_ips_give(gate_ips_t *t, const struct sockaddr *sa);
/* Open connections counted for sa's address (tests and diagnostics). */
unsigned gate_ips_count(gate_ips_t *t, const struct sockaddr *sa);

#endif
