/* door_items: the output items this router's Responses door answered with,
 * kept for a while so that a client's `item_reference` to one of them can
 * be resolved — the Vercel AI SDK sends earlier assistant output that way
 * by default (its `store` option). It is not the Responses API's
 * server-side state: only items this process minted, bounded (entries and
 * bytes, oldest evicted first) and expiring; a reference to anything else
 * still gets the 400. Process-wide, shared by the shards behind one mutex
 * (taken once per Responses answer and per resolved reference, never on
 * other requests); any thread. */
#ifndef LLMROUTER_HTTP_DOOR_ITEMS_H
#define LLMROUTER_HTTP_DOOR_ITEMS_H

#include <stddef.h>
#include <stdint.h>

#define DOOR_ITEMS_MAX 4096                 /* entries kept */
#define DOOR_ITEMS_MAX_BYTES (16u << 20)    /* bytes of item JSON kept */
#define DOOR_ITEMS_TTL_S 3600               /* seconds an item stays resolvable */

/* Keeps every item of the "output" array of a Response object
 * resp[0..len) (borrowed) that has a string "id". Malformed input is
 * ignored. */
void door_items_put_response(const char *resp, size_t len);

/* The same for an already parsed "output" array (borrowed). */
struct cJSON;
void door_items_put_output(const struct cJSON *output);

/* The item with this id as compact JSON (malloc'd, caller frees), or NULL
 * when unknown or expired. */
char *door_items_get(const char *id);

/* Forgets everything (tests, shutdown). */
void door_items_clear(void);

#endif
