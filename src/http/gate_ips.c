/* gate_ips: a chained hash table of addresses with an open-connection count;
 * an entry exists while its count is above zero, so the table holds at most
 * one entry per open connection. */
#include "http/gate_ips.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/util.h"

#define IPS_BUCKETS 4096 /* a power of two */

typedef struct ip_entry {
    unsigned char addr[16]; /* IPv6, or IPv4-mapped */
    unsigned count;
    struct ip_entry *next;
} ip_entry_t;

struct gate_ips {
    pthread_mutex_t mu;
    ip_entry_t *buckets[IPS_BUCKETS];
};

gate_ips_t *gate_ips_new(void)
{
    gate_ips_t *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void gate_ips_free(gate_ips_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < IPS_BUCKETS; i++) {
        ip_entry_t *e = t->buckets[i];
        while (e) {
            ip_entry_t *n = e->next;
            free(e);
            e = n;
        }
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* The 16-byte key of sa; false for other families. */
static bool key_of(const struct sockaddr *sa, unsigned char key[16])
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &s4->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static size_t bucket_of(const unsigned char key[16])
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (int i = 0; i < 16; i++) {
        h ^= key[i];
        h *= 1099511628211ULL;
    }
    return (size_t)(h & (IPS_BUCKETS - 1));
}

static ip_entry_t **find(gate_ips_t *t, const unsigned char key[16])
{
    ip_entry_t **pp = &t->buckets[bucket_of(key)];
    while (*pp && memcmp((*pp)->addr, key, 16) != 0)
        pp = &(*pp)->next;
    return pp;
}

bool gate_ips_take(gate_ips_t *t, const struct sockaddr *sa, unsigned max)
{
    unsigned char key[16];
    ip_entry_t **pp, *e;
    bool ok = true;
    if (!key_of(sa, key))
        return true;
    pthread_mutex_lock(&t->mu);
    pp = find(t, key);
    e = *pp;
    if (e == NULL) {
        e = xcalloc(1, sizeof *e);
        memcpy(e->addr, key, 16);
        *pp = e;
    }
    if (max > 0 && e->count >= max)
        ok = false;
    else
        e->count++;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void gate_ips_give(gate_ips_t *t, const struct sockaddr *sa)
{
    unsigned char key[16];
    ip_entry_t **pp, *e;
    if (!key_of(sa, key))
        return;
    pthread_mutex_lock(&t->mu);
    pp = find(t, key);
    e = *pp;
    if (e != NULL && e->count > 0 && --e->count == 0) {
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&t->mu);
}

unsigned gate_ips_count(gate_ips_t *t, const struct sockaddr *sa)
{
    unsigned char key[16];
    unsigned n = 0;
    if (!key_of(sa, key))
        return 0;
    pthread_mutex_lock(&t->mu);
    if (*find(t, key))
        n = (*find(t, key))->count;
    pthread_mutex_unlock(&t->mu);
    return n;
}
