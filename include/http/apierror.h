/* apierror: builds error bodies in OpenAI's shape,
 * {"error":{"message":...,"type":...,"param":...,"code":...}}, with all four
 * keys present (param and code may be null). Pure; any thread. */
#ifndef LLMROUTER_APIERROR_H
#define LLMROUTER_APIERROR_H

#include <stddef.h>

/* Returns a malloc'd NUL-terminated body (caller frees); *len gets its
 * length. param and code may be NULL (rendered as JSON null). extra_json, if
 * not NULL, is raw JSON members appended inside "error" (e.g.
 * "\"attempts\":[...]"). */
char *apierror_body(const char *message, const char *type, const char *param, const char *code,
                    const char *extra_json, size_t *len);

/* The OpenAI error "type" conventionally used for an HTTP status. */
const char *apierror_type_for_status(unsigned status);

#endif
