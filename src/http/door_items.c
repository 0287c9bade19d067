/* door_items: a bounded, expiring map from the output item ids the
 * Responses door minted to the items' JSON (see http/door_items.h).
 *
 * A ring of DOOR_ITEMS_MAX slots in insertion order (the oldest is evicted
 * first, also when the byte budget is exceeded) plus an open-addressing
 * index over the ring, rebuilt never: a slot's index entry is cleared when
 * the slot is reused (tombstones keep probe chains intact). One mutex;
 * lookups copy the item out, so nothing borrowed escapes the lock. */
#include "http/door_items.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "http/door.h"

#define INDEX_SLOTS (DOOR_ITEMS_MAX * 2) /* power of two, half full at most */
#define EMPTY 0u
#define TOMB 0xFFFFFFFFu

typedef struct item {
    char *id;
    char *json;
    size_t bytes;
    int64_t expires;
    uint32_t index_pos; /* where its index entry is */
} item_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static item_t ring[DOOR_ITEMS_MAX];
static uint32_t index_tab[INDEX_SLOTS]; /* ring slot + 1, EMPTY or TOMB */
static size_t head, count, bytes, tombs;

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int64_t now_s(void)
{
    return (int64_t)(util_now_us() / 1000000u);
}

/* The ring slot holding id, or -1. */
static long find(const char *id)
{
    uint32_t pos = hash_id(id) & (INDEX_SLOTS - 1);
    for (size_t probes = 0; probes < INDEX_SLOTS; probes++) {
        uint32_t e = index_tab[pos];
        if (e == EMPTY)
            return -1;
        if (e != TOMB && strcmp(ring[e - 1].id, id) == 0)
            return (long)(e - 1);
        pos = (pos + 1) & (INDEX_SLOTS - 1);
    }
    return -1;
}

static void drop_oldest(void)
{
    size_t tail = (head + DOOR_ITEMS_MAX - count) % DOOR_ITEMS_MAX;
    item_t *it = &ring[tail];
    index_tab[it->index_pos] = TOMB;
    tombs++;
    bytes -= it->bytes;
    free(it->id);
    free(it->json);
    memset(it, 0, sizeof *it);
    count--;
}

/* Tombstones only ever replace entries, so without a rebuild the index
 * would end up with no empty slot and every miss would probe it all. */
static void rebuild_index(void)
{
    memset(index_tab, 0, sizeof index_tab);
    tombs = 0;
    for (size_t k = 0; k < count; k++) {
        size_t slot = (head + DOOR_ITEMS_MAX - count + k) % DOOR_ITEMS_MAX;
        uint32_t pos = hash_id(ring[slot].id) & (INDEX_SLOTS - 1);
        while (index_tab[pos] != EMPTY)
            pos = (pos + 1) & (INDEX_SLOTS - 1);
        index_tab[pos] = (uint32_t)slot + 1;
        ring[slot].index_pos = pos;
    }
}

static void put(const char *id, char *json, int64_t now)
{
    size_t n = strlen(json);
    long old = find(id);
    uint32_t pos;
    item_t *it;
    if (old >= 0) { /* the same id again: keep the newest */
        item_t *o = &ring[old];
        bytes -= o->bytes;
        free(o->json);
        o->json = json;
        o->bytes = n;
        o->expires = now + DOOR_ITEMS_TTL_S;
        bytes += n;
        return;
    }
    if (n > DOOR_ITEMS_MAX_BYTES) {
        free(json);
        return;
    }
    while (count == DOOR_ITEMS_MAX || (count > 0 && bytes + n > DOOR_ITEMS_MAX_BYTES))
        drop_oldest();
    if (tombs > DOOR_ITEMS_MAX / 2)
        rebuild_index();
    pos = hash_id(id) & (INDEX_SLOTS - 1);
    while (index_tab[pos] != EMPTY && index_tab[pos] != TOMB)
        pos = (pos + 1) & (INDEX_SLOTS - 1);
    if (index_tab[pos] == TOMB)
        tombs--;
    it = &ring[head];
    it->id = xstrdup(id);
    it->json = json;
    it->bytes = n;
    it->expires = now + DOOR_ITEMS_TTL_S;
    it->index_pos = pos;
    index_tab[pos] = (uint32_t)head + 1;
    head = (head + 1) % DOOR_ITEMS_MAX;
    count++;
    bytes += n;
}

void door_items_put_output(const cJSON *out)
{
    const cJSON *it;
    int64_t now = now_s();
    pthread_mutex_lock(&lock);
    cJSON_ArrayForEach(it, out)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        char *json;
        if (!cJSON_IsString(id) || id->valuestring[0] == '\0')
            continue;
        json = cJSON_PrintUnformatted(it);
        if (json != NULL)
            put(id->valuestring, json, now);
    }
    pthread_mutex_unlock(&lock);
}

void door_items_put_response(const char *resp, size_t len)
{
    door_json_t parsed;
    const cJSON *root = door_json_parse(&parsed, resp, len);
    if (root != NULL)
        door_items_put_output(cJSON_GetObjectItemCaseSensitive(root, "output"));
    door_json_free(&parsed);
}

char *door_items_get(const char *id)
{
    char *copy = NULL;
    long slot;
    pthread_mutex_lock(&lock);
    slot = find(id);
    if (slot >= 0 && ring[slot].expires > now_s())
        copy = xstrdup(ring[slot].json);
    pthread_mutex_unlock(&lock);
    return copy;
}

void door_items_clear(void)
{
    pthread_mutex_lock(&lock);
    while (count > 0)
        drop_oldest();
    memset(index_tab, 0, sizeof index_tab);
    head = 0;
    tombs = 0;
    pthread_mutex_unlock(&lock);
}
