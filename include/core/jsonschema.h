/* jsonschema: does a JSON value match a JSON Schema (the structured-outputs
 * subset)? Pure functions over cJSON trees; any thread. */
#ifndef LLMROUTER_CORE_JSONSCHEMA_H
#define LLMROUTER_CORE_JSONSCHEMA_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* Whether value matches schema, in the subset documented in docs/routing.md
 * (type with nullable forms, properties, required, additionalProperties,
 * items, prefixItems, enum, const, minimum/maximum and their exclusive
 * forms, multipleOf, minLength/maxLength, minItems/maxItems,
 * minProperties/maxProperties, anyOf, oneOf, allOf, not, $ref into the same
 * document). A schema nested deeper than 64 levels, or whose check would
 * take more than 100,000 steps (branches that $ref back into themselves),
 * is not judged: the value is accepted. Keywords outside the subset (pattern, format, ...) are
 * ignored: they never reject. root is the schema document $ref resolves
 * against. On failure why (may be NULL) gets the path of the first
 * violation. */
bool jsonschema_valid(const struct cJSON *schema, const struct cJSON *root,
                      const struct cJSON *value, char *why, size_t why_len);

#endif
