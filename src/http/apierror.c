/* apierror: OpenAI-shaped error bodies. */
#include "http/apierror.h"

#include <string.h>

#include "core/buf.h"
#include "core/json.h"

char *apierror_body(const char *message, const char *type, const char *param, const char *code,
                    const char *extra_json, size_t *len)
{
    buf_t b;
    char *out;
    size_t cap = strlen(message) * 6 + (extra_json ? strlen(extra_json) : 0) + 512;
    buf_init(&b, cap);
    buf_puts(&b, "{\"error\":{\"message\":");
    json_append_string(&b, message, strlen(message));
    buf_puts(&b, ",\"type\":");
    json_append_string(&b, type, strlen(type));
    buf_puts(&b, ",\"param\":");
    if (param)
        json_append_string(&b, param, strlen(param));
    else
        buf_puts(&b, "null");
    buf_puts(&b, ",\"code\":");
    if (code)
        json_append_string(&b, code, strlen(code));
    else
        buf_puts(&b, "null");
    if (extra_json) {
        buf_puts(&b, ",");
        buf_append(&b, extra_json, strlen(extra_json));
    }
    buf_puts(&b, "}}");
    buf_cstr(&b);
    *len = buf_len(&b);
    out = b.data; /* r is 0: nothing was consumed */
    return out;
}

const char *apierror_type_for_status(unsigned status)
{
    switch (status) {
    case 400:
    case 404:
    case 405:
    case 413:
    case 422:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}
