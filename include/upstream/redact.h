/* redact: keeps the providers' keys out of what llmrouter shows. A
 * provider may repeat the credential it was sent in an error ("Incorrect
 * API key provided: sk-..."), and its bytes reach clients (a passed-through
 * 4xx, a stream's error event, an attempt's error in a 502's message) and
 * the logs. Each such text goes through here: every occurrence of a
 * configured provider key is overwritten in place with '*' — same length,
 * so offsets into stream buffers stay valid and JSON stays valid. Keys
 * shorter than REDACT_MIN_KEY are left alone (they would garble text and
 * are no real credentials). Any thread: reads the immutable snapshot. */
#ifndef LLMROUTER_UPSTREAM_REDACT_H
#define LLMROUTER_UPSTREAM_REDACT_H

#include <stddef.h>

#include "core/config.h"

#define REDACT_MIN_KEY 8

/* The key provider p sends (from its prebuilt headers: Authorization:
 * Bearer, or x-api-key), borrowed from the snapshot; NULL when it has none.
 * *len gets its length. */
const char *redact_provider_key(const cfg_provider_t *p, size_t *len);

/* Masks every provider key of cfg in buf[0..len). Returns how many were
 * masked. */
size_t redact_keys(const config_t *cfg, char *buf, size_t len);

/* Same for p's key only (a stream comes from one provider). */
size_t redact_key_of(const cfg_provider_t *p, char *buf, size_t len);

#endif
