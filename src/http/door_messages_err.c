/* door_messages_err: Anthropic's error shape on the Messages door — the
 * error.type of a status, error bodies, the stream's error event (see
 * http/door_messages.h). */
#include "http/door_messages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http/door.h"

const char *dm_error_type_for_status(unsigned status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 402:
        return "billing_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    case 504:
        return "timeout_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

int dm_error_body(unsigned status, const char *message, const char *request_id, buf_t *out)
{
    door_w_t w = {out, 0};
    size_t start = buf_len(out);
    door_w_raw(&w, "{\"type\":\"error\",\"error\":{\"type\":");
    door_w_str(&w, dm_error_type_for_status(status));
    door_w_raw(&w, ",\"message\":");
    door_w_str(&w, message ? message : "");
    door_w_raw(&w, "}");
    if (request_id != NULL) {
        door_w_raw(&w, ",\"request_id\":");
        door_w_str(&w, request_id);
    }
    door_w_raw(&w, "}");
    if (w.err)
        out->w = out->r + start;
    return w.err;
}

int dm_error_from_openai(unsigned status, const char *body, size_t len, const char *request_id,
                         buf_t *out)
{
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *msg = door_str_of(e, "message");
    char generic[64];
    int rc;
    if (msg == NULL) {
        /* a provider's error body of some other shape (or none): the status
         * says what there is to say; its bytes are not echoed */
        snprintf(generic, sizeof generic, "The request failed with HTTP status %u.", status);
        msg = generic;
    }
    rc = dm_error_body(status, msg, request_id, out);
    cJSON_Delete(root);
    return rc;
}

int dm_error_event(const char *message, buf_t *out)
{
    door_w_t w = {out, 0};
    size_t start = buf_len(out);
    door_w_raw(&w, "event: error\ndata: ");
    if (dm_error_body(500, message, NULL, out) < 0)
        w.err = -1;
    door_w_raw(&w, "\n\n");
    if (w.err)
        out->w = out->r + start;
    return w.err;
}
