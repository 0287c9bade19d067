/* server: libmicrohttpd glue. The access handler is called (1) once after
 * the headers, (2) per body piece, (3) once more when the body is complete,
 * and (4) again after every resume. State lives in req_t (con_cls); it is
 * freed in on_completed, the one place a request ends. */
#include "http/server.h"
#include "http/reply.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "http/apierror.h"
#include "http/auth.h"
#include "cache/cache.h"
#include "core/json.h"
#include "account/dashboard.h"
#include "upstream/health_view.h"
#include "core/log.h"
#include "account/observe.h"
#include "account/otel.h"
#include "route/rules.h"
#include "core/shard.h"
#include "upstream/upstream.h"
#include "upstream/call.h"
#include "core/util.h"
#include "http/cors.h"
#include "http/door.h"
#include "http/door_messages.h"
#include "http/door_wire.h"
#include "http/gate.h"
#include "http/pipeline.h"


/* ---- the request head and libmicrohttpd's connection pool ----
 * libmicrohttpd 0.9.75 keeps a request's whole head in its connection's
 * memory pool: the header lines in the read buffer (the names and values
 * it hands out point into it), one entry of up to 64 bytes per header
 * field, cookie and query argument taken from the pool's other end, and a
 * copy of the Cookie header. The response headers are written into what is
 * left only after the handler has answered, and when they do not fit the
 * connection is closed without a byte sent: with the former 8 KiB pool a
 * 7.6 KB head was routed, the provider paid, and the client got nothing.
 * So a head is measured by what it takes in the pool (gate_scan_head), refused
 * over server.max_header_bytes on the first handler call, before any work,
 * and the pool is that limit plus RESPONSE_ROOM: our response headers
 * (under 3 KiB: the routing and CORS headers, or a preflight's echoed list
 * of at most 2 KiB) and the chunks of a streamed answer.
 * Memory: libmicrohttpd zeroes half the pool when a request switches to
 * its answer and the whole pool between two requests of a kept-alive
 * connection, so every pool byte is resident; RESPONSE_ROOM stays small.
 * A new connection's first head is checked by the gate (http/gate.h) with
 * the same measure before libmicrohttpd reads it, so only a later request of
 * a kept-alive connection can be larger than the pool (libmicrohttpd then
 * answers with its own HTML 431; 0.9.75 has no hook to change that). */
#define FIELD_ENTRY_BYTES GATE_FIELD_ENTRY_BYTES
#define RESPONSE_ROOM 4096

static size_t pool_bytes(size_t max_header_bytes)
{
    return max_header_bytes + RESPONSE_ROOM;
}

/* An answer decided from the headers alone (health, models, 404, 405, 413):
 * an OpenAI error built from code/msg, or the raw JSON body given.
 * libmicrohttpd 0.9.75 closes the connection when a response is queued from
 * the first handler call (before the body), so it is prepared now and queued
 * once the body — empty, or discarded unread — has been consumed; only a body
 * we refuse to read (413 on Content-Length) is answered at once, closing. */
static enum MHD_Result early(req_t *req, unsigned status, const char *code, const char *msg,
                             const char *allow, const char *raw, size_t rawlen, bool close_now)
{
    struct MHD_Response *r;
    char *body = NULL;
    size_t len = rawlen;
    if (raw == NULL)
        body = apierror_body(msg, apierror_type_for_status(status), NULL, code, NULL, &len);
    if (req->door == DOOR_MESSAGES && status >= 400) {
        /* the Messages door answers every error in Anthropic's shape */
        buf_t b;
        buf_init(&b, len + 4096);
        if (dm_error_from_openai(status, body ? body : raw, len, req->id, &b) == 0) {
            free(body);
            body = buf_detach(&b, &len);
        } else {
            buf_free(&b);
        }
    }
    r = MHD_create_response_from_buffer(len, body ? body : (void *)raw,
                                        body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    reply_add_headers(req, r, "application/json");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    req->response = r;
    req->resp_status = status;
    if (close_now)
        return reply_queue_ready(req);
    req->state = RS_BODY;
    req->discard_body = true;
    return MHD_YES;
}

/* ---- routing of paths ---- */

static const char *conn_header(void *arg, const char *name)
{
    return MHD_lookup_connection_value(arg, MHD_HEADER_KIND, name);
}

static enum endpoint post_endpoint(req_t *req, const char *p)
{
    if (strncmp(p, "/router/explain", 15) == 0) {
        /* /router/explain[/chat/completions|/messages|/responses]: the
         * body of that door, routed as the door would */
        const char *d = p + 15;
        if (*d != '\0' && strcmp(d, "/chat/completions") != 0 &&
            (!doorwire_path(req, d) || req->door_count_tokens))
            return EP_NONE;
        req->explain_only = true;
        return EP_CHAT;
    }
    if (strcmp(p, "/chat/completions") == 0)
        return EP_CHAT;
    if (strcmp(p, "/completions") == 0)
        return EP_COMPLETIONS;
    if (strcmp(p, "/embeddings") == 0)
        return EP_EMBEDDINGS;
    if (req->door != DOOR_CHAT && doorwire_path(req, p))
        return EP_CHAT; /* translated into a chat request (http/door_wire.h) */
    return EP_NONE;
}

/* GET /v1/models/{id}: the entry of GET /v1/models for one name. */
static enum MHD_Result model_entry(req_t *req, const char *id)
{
    const config_t *cfg = req->cfg;
    int m = config_find_model(cfg, id);
    const char *owner = m >= 0 ? cfg->providers[cfg->models[m].provider].name : "llmrouter";
    enum MHD_Result ret;
    buf_t b;
    char num[32];
    if (m < 0 && config_find_tier(cfg, id) < 0 && !config_is_routable(cfg, id)) {
        char msg[200];
        snprintf(msg, sizeof msg, "The model '%.100s' does not exist.", id);
        return early(req, 404, "model_not_found", msg, NULL, NULL, 0, false);
    }
    buf_init(&b, strlen(id) * 6 + strlen(owner) * 6 + 128);
    buf_puts(&b, "{\"id\":");
    json_append_string(&b, id, strlen(id));
    snprintf(num, sizeof num, "%lld", (long long)cfg->loaded_at);
    buf_puts(&b, ",\"object\":\"model\",\"created\":");
    buf_append(&b, num, strlen(num));
    buf_puts(&b, ",\"owned_by\":");
    json_append_string(&b, owner, strlen(owner));
    buf_puts(&b, "}");
    ret = early(req, 200, NULL, NULL, NULL, buf_ptr(&b), buf_len(&b), false);
    buf_free(&b);
    return ret;
}

/* The methods a path answers ("GET, HEAD" or "POST"), NULL for unknown
 * paths; p is url without its /v1 prefix. */
static const char *path_methods(const char *url, const char *p)
{
    static const char *const get_paths[] = {"/healthz", "/readyz", "/router/stats", "/models"};
    static const char *const post_paths[] = {"/chat/completions", "/completions", "/embeddings",
                                             "/router/explain", "/router/explain/chat/completions",
                                             "/router/explain/messages", "/router/explain/responses",
                                             "/messages",
                                             "/messages/count_tokens", "/responses"};
    if (strcmp(url, "/metrics") == 0 || strcmp(url, "/dashboard") == 0 ||
        strncmp(p, "/models/", 8) == 0)
        return "GET, HEAD";
    for (size_t i = 0; i < sizeof get_paths / sizeof get_paths[0]; i++)
        if (strcmp(p, get_paths[i]) == 0)
            return "GET, HEAD";
    for (size_t i = 0; i < sizeof post_paths / sizeof post_paths[0]; i++)
        if (strcmp(p, post_paths[i]) == 0)
            return "POST";
    return NULL;
}

/* A CORS preflight: answered before authentication (a browser never sends
 * credentials with it) and never routed or counted. An origin not in
 * server.cors.origins gets 403 without CORS headers, so the browser stops. */
static enum MHD_Result preflight(req_t *req)
{
    const cfg_cors_t *c = &req->cfg->cors;
    char *allow;
    size_t len;
    char num[16];
    enum MHD_Result ret;
    if (!cors_origin_allowed(c, reply_header(req, "origin")))
        return early(req, 403, "cors_origin_not_allowed",
                     "This origin is not allowed to call the router (server.cors.origins).", NULL,
                     NULL, 0, false);
    allow = cors_allow_headers(c, reply_header(req, "access-control-request-headers"), &len);
    if (allow == NULL)
        return early(req, 400, "invalid_cors_preflight",
                     "Access-Control-Request-Headers is not a list of header names, or is longer "
                     "than 2048 bytes.",
                     NULL, NULL, 0, false);
    ret = early(req, 204, NULL, NULL, NULL, "", 0, false);
    if (req->response) {
        struct MHD_Response *r = req->response;
        MHD_del_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, "Vary", "Access-Control-Request-Method, Access-Control-Request-Headers");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", CORS_ALLOW_METHODS);
        if (len > 0)
            MHD_add_response_header(r, "Access-Control-Allow-Headers", allow);
        snprintf(num, sizeof num, "%u", c->max_age_s);
        MHD_add_response_header(r, "Access-Control-Max-Age", num);
    }
    free(allow);
    return ret;
}

static enum MHD_Result options(req_t *req, const char *url, const char *p)
{
    const char *allow = path_methods(url, p);
    char msg[200];
    if (req->cfg->cors.enabled && reply_header(req, "origin") != NULL &&
        reply_header(req, "access-control-request-method") != NULL)
        return preflight(req);
    if (allow == NULL) {
        snprintf(msg, sizeof msg, "Unknown request URL: OPTIONS %.100s.", url);
        return early(req, 404, "unknown_url", msg, NULL, NULL, 0, false);
    }
    snprintf(msg, sizeof msg, "Use %s for this path (OPTIONS is answered only to CORS preflight "
                              "requests, when server.cors is configured).", allow);
    return early(req, 405, "method_not_allowed", msg, allow, NULL, 0, false);
}

/* Refuses a head over server.max_header_bytes with 431 before anything
 * else runs. The answer closes the connection; a body that fits
 * max_body_bytes is read and dropped first, so that the close does not
 * reset the connection under the client's feet. */
static enum MHD_Result head_too_large(req_t *req, size_t bytes)
{
    const char *cl = reply_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t n = 0;
    bool close_now = cl != NULL && (util_parse_u64(cl, strlen(cl), &n) < 0 ||
                                    n > req->cfg->max_body_bytes);
    char msg[256];
    enum MHD_Result ret;
    snprintf(msg, sizeof msg,
             "The request headers take %zu bytes (names, values and %d bytes per field), more "
             "than the limit of %zu bytes (server.max_header_bytes).",
             bytes, FIELD_ENTRY_BYTES, req->cfg->max_header_bytes);
    ret = early(req, 431, "request_headers_too_large", msg, NULL, NULL, 0, false);
    if (req->response == NULL)
        return ret;
    MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONNECTION, "close");
    return close_now ? reply_queue_ready(req) : ret;
}

/* /dashboard, /v1/router/stats and /metrics show every key's spend: once
 * keys (or an admin key) are configured they need the admin key. Returns
 * true to go on; otherwise the 401 is prepared in *ret. The browser's
 * password prompt (WWW-Authenticate: Basic) lets the dashboard page open,
 * and its fetches of the stats then carry the same credentials; a key is
 * never taken from the URL, where it would reach logs and history. */
static bool admin_gate(req_t *req, bool metrics, enum MHD_Result *ret)
{
    const cfg_obs_t *o = &req->cfg->obs;
    const char *h;
    char *body;
    size_t len;
    if (!auth_admin_gated(req->cfg->auth, o->admin_key, o->metrics_token))
        return true;
    h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "authorization");
    if (auth_admin_check(req->cfg->auth, o->admin_key, o->metrics_token, metrics, h))
        return true;
    body = auth_admin_error_body(h == NULL, metrics, &len);
    *ret = early(req, 401, NULL, NULL, NULL, body, len, false);
    free(body);
    if (req->response)
        MHD_add_response_header(req->response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Basic realm=\"llmrouter admin\", charset=\"UTF-8\"");
    return false;
}

/* GET /readyz: whether every tier can serve (decided when the snapshot
 * loaded; the status code says only that), and the Redis clients' state. */
/* GET /readyz: whether every tier can serve — decided when the snapshot
 * loaded, and whether each has a model not cooling down now
 * (upstream/health.h) — and, in the body only, how the Redis clients are. */
static enum MHD_Result readyz(req_t *req)
{
    enum MHD_Result ret;
    unsigned st;
    buf_t b;
    buf_init(&b, (size_t)4 << 20);
    st = health_readyz(req->cfg, loop_now_ms(shard_loop(req->shard)), &b);
    if (buf_len(&b) >= 2 && buf_ptr(&b)[buf_len(&b) - 1] == '}') {
        b.w--; /* the object goes on: "redis":{...} */
        observe_redis_readyz(shard_observe(req->shard), &b);
        observe_quality_readyz(shard_observe(req->shard), &b);
        buf_puts(&b, "}");
    }
    ret = early(req, st, NULL, NULL, NULL, buf_ptr(&b), buf_len(&b), false);
    buf_free(&b);
    return ret;
}

/* SIGTERM: a new request during the grace period is refused before any
 * work (so it is safe to retry elsewhere), and its connection closed. */
static enum MHD_Result draining(req_t *req)
{
    enum MHD_Result ret = early(req, 503, "server_shutting_down",
                                "The server is shutting down; retry the request (another "
                                "instance will take it).",
                                NULL, NULL, 0, false);
    if (req->response)
        MHD_add_response_header(req->response, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return ret;
}

static enum MHD_Result on_first_call(req_t *req, const char *url, const char *method)
{
    const char *p = url;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    const char *cl;

    if (strncmp(p, "/v1/", 4) == 0)
        p += 3;
    if (strcmp(method, "OPTIONS") == 0)
        return options(req, url, p);
    if (strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0) {
        if (!get)
            return early(req, 405, "method_not_allowed", "Use GET for this path.", "GET, HEAD",
                         NULL, 0, false);
        if (strcmp(p, "/healthz") == 0)
            return early(req, 200, NULL, NULL, NULL, "{\"status\":\"ok\"}", 15, false);
        if (shard_stopping(req->shard)) /* SIGTERM: the balancer takes us out */
            return early(req, 503, NULL, NULL, NULL, "{\"status\":\"draining\"}", 21, false);
        return readyz(req);
    }
    if (strcmp(url, "/metrics") == 0 || strcmp(p, "/router/stats") == 0 ||
        strcmp(url, "/dashboard") == 0) {
        buf_t out;
        enum MHD_Result ret;
        if (!get)
            return early(req, 405, "method_not_allowed", "Use GET for this path.", "GET, HEAD",
                         NULL, 0, false);
        if (!admin_gate(req, url[1] == 'm', &ret))
            return ret;
        if (url[1] == 'd') {
            size_t len;
            const char *html = dashboard_html(&len);
            ret = early(req, 200, NULL, NULL, NULL, html, len, false);
            if (req->response) {
                MHD_del_response_header(req->response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                        "application/json");
                MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                        "text/html; charset=utf-8");
            }
            return ret;
        }
        buf_init(&out, (size_t)64 << 20);
        if (url[1] == 'm')
            observe_render_metrics(shard_observe(req->shard), &out);
        else
            observe_render_stats(shard_observe(req->shard), &out);
        ret = early(req, 200, NULL, NULL, NULL, buf_ptr(&out), buf_len(&out), false);
        if (url[1] == 'm' && req->response) {
            MHD_del_response_header(req->response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
            MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    "text/plain; version=0.0.4; charset=utf-8");
        }
        buf_free(&out);
        return ret;
    }
    if (auth_enabled(req->cfg->auth)) {
        const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "authorization");
        char bearer[600];
        const char *xk = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "x-api-key");
        if (h == NULL && xk != NULL && req->door == DOOR_MESSAGES) {
            /* Anthropic's SDKs send the key as x-api-key: the same proxy key */
            int n = snprintf(bearer, sizeof bearer, "Bearer %s", xk);
            h = n > 0 && (size_t)n < sizeof bearer ? bearer : "";
        }
        req->auth_key = auth_check(req->cfg->auth, h);
        if (req->auth_key == NULL) {
            size_t len;
            char *body = auth_error_body(h == NULL, &len);
            enum MHD_Result ret = early(req, 401, NULL, NULL, NULL, body, len, false);
            free(body);
            return ret;
        }
        req->key_name = req->auth_key->name;
    }
    if (strcmp(p, "/models") == 0) {
        if (!get)
            return early(req, 405, "method_not_allowed", "Use GET for /v1/models.", "GET, HEAD",
                         NULL, 0, false);
        return early(req, 200, NULL, NULL, NULL, req->cfg->models_json,
                     req->cfg->models_json_len, false);
    }
    if (strncmp(p, "/models/", 8) == 0) {
        if (!get)
            return early(req, 405, "method_not_allowed", "Use GET for /v1/models/{model}.",
                         "GET, HEAD", NULL, 0, false);
        return model_entry(req, p + 8);
    }
    req->ep = post_endpoint(req, p);
    if (req->ep == EP_NONE) {
        char msg[160];
        snprintf(msg, sizeof msg, "Unknown request URL: %s %.100s.", method, url);
        return early(req, 404, "unknown_url", msg, NULL, NULL, 0, false);
    }
    if (!post)
        return early(req, 405, "method_not_allowed", "Use POST for this path.", "POST", NULL, 0, false);
    if (shard_stopping(req->shard))
        return draining(req);
    cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        uint64_t n;
        if (util_parse_u64(cl, strlen(cl), &n) == 0 && n > req->cfg->max_body_bytes) {
            char msg[160];
            snprintf(msg, sizeof msg, "The request body (%llu bytes) is larger than the limit of %zu bytes.",
                     (unsigned long long)n, req->cfg->max_body_bytes);
            return early(req, 413, "request_too_large", msg, NULL, NULL, 0, true);
        }
    }
    /* size the body buffer once (still capped by max_body_bytes) */
    if (cl != NULL) {
        uint64_t n;
        if (util_parse_u64(cl, strlen(cl), &n) == 0 && n > 0)
            buf_reserve(&req->body, (size_t)n);
    }
    req->state = RS_BODY;
    return MHD_YES;
}

/* snprintf(dst, cap, "%s", src) without the format machinery: src cut to
 * cap - 1 bytes, NUL-terminated. */
static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    shard_t *sh = cls;
    req_t *req = *con_cls;

    if (req == NULL) {
        gate_scan_t hs;
        req = request_new(sh, conn, shard_config(sh));
        *con_cls = req;
        shard_link(sh, req);
        request_set_id(req, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-request-id"),
                       shard_random(sh));
        req->header = conn_header;
        req->header_arg = conn;
        copy_cut(req->method, sizeof req->method, method);
        copy_cut(req->path, sizeof req->path, url);
        {
            /* the door decides the shape of every error, the early ones too */
            const char *p = strncmp(url, "/v1/", 4) == 0 ? url + 3 : url;
            if (!doorwire_path(req, p) && strncmp(p, "/messages/", 10) == 0)
                req->door = DOOR_MESSAGES;
        }
        gate_scan_head(conn, method, url, version, req->cfg, &hs);
        gate_head_received(conn, hs.expect, req->door == DOOR_MESSAGES);
        if (hs.bytes > req->cfg->max_header_bytes)
            return head_too_large(req, hs.bytes);
        if (hs.refused) { /* answered at once, and closed: what follows is not a request */
            enum MHD_Result ret = early(req, hs.verdict.status, hs.verdict.code,
                                        hs.verdict.message, NULL, NULL, 0, false);
            if (req->response == NULL)
                return ret;
            MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONNECTION, "close");
            return reply_queue_ready(req);
        }
        return on_first_call(req, url, method);
    }
    if (req->client_gone && req->state != RS_READY)
        return MHD_NO; /* shutdown or hang-up: close instead of starting work */
    if (req->state == RS_BODY) {
        if (*upload_size > 0) {
            if (req->discard_body) {
                *upload_size = 0;
                return MHD_YES;
            }
            if (!req->too_large && buf_append(&req->body, upload, *upload_size) < 0) {
                req->too_large = true;
                buf_free(&req->body);
            }
            *upload_size = 0;
            return MHD_YES;
        }
        gate_body_received(conn);
        if (req->discard_body)
            return reply_queue_ready(req);
        pipeline_body_complete(req);
    }
    if (req->state == RS_READY)
        return reply_queue_ready(req);
    if (req->state == RS_UPSTREAM)
        reply_suspend(req);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    shard_t *sh = cls;
    req_t *req = *con_cls;
    gate_request_done(conn);
    if (req == NULL)
        return;
    if (req->watching)
        loop_io_del(shard_loop(sh), &req->client_io);
    loop_timer_stop(shard_loop(sh), &req->watch_timer);
    upstream_cancel(shard_upstream(sh), req);
    if (req->cls_call != NULL) { /* the client left (or shutdown) while classifying */
        upstream_call_cancel(shard_upstream(sh), req->cls_call);
        req->cls_call = NULL;
    }
    cache_cancel(req, shard_cache(sh));
    reply_settle_budget(req);
    shard_dequeue_unpause(sh, req);
    shard_unlink(sh, req);
    if (req->response)
        MHD_destroy_response(req->response);
    if (req->stream_failed)
        req->resp_status = 502; /* 200 went out, but the stream ended with an error event */
    if (req->ep != EP_NONE) {
        observe_request(shard_observe(sh), shard_id(sh), req);
        otel_request(shard_otel(sh), req); /* its spans, when observability.otlp is on */
        if (req->sampled)
            observe_sample(shard_observe(sh), req, buf_ptr(&req->body), buf_len(&req->body),
                           req->sample_resp, req->sample_resp ? strlen(req->sample_resp) : 0);
    }
    if (log_get_level() >= LOG_INFO && req->ep != EP_NONE) {
        const config_t *cfg = req->cfg;
        char tags[256] = "";
        if (req->route.n && req->route.rule >= 0) {
            const rule_action_t *a = rules_action(cfg->rules, (size_t)req->route.rule);
            size_t o = 0;
            for (size_t i = 0; i < a->n_tags && o < sizeof tags; i++) {
                int n = snprintf(tags + o, sizeof tags - o, "%s%s", i ? "," : " tags=", a->tags[i]);
                o += n > 0 ? (size_t)n : 0;
            }
        }
        log_info("%s %s %s %u rule=%s tier=%s model=%s attempts=%zu%s%s %.1fms%s", req->id,
                 req->method, req->path, req->resp_status,
                 req->route.n ? router_rule_name(cfg, &req->route) : "-",
                 req->route.n ? router_tier_name(cfg, &req->route) : "-",
                 req->model >= 0 ? cfg->models[req->model].name : "-", req->n_attempts,
                 req->stream ? " stream" : "", tags, (double)(util_now_us() - req->t_start_us) / 1000.0,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    }
    request_free(req);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_debug("http: %s", line);
}

struct MHD_Daemon *server_start(struct shard *shard, const config_t *cfg, struct gate_ips *ips,
                                struct gate **gatep, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    unsigned sslen;
    struct MHD_Daemon *d;
    /* no listening socket: the gate accepts and hands sound connections on */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO |
                     MHD_USE_NO_LISTEN_SOCKET;
    gate_t *g;
    char why[256];

    *gatep = NULL;
    if (util_resolve_listen(cfg->listen_host, cfg->listen_port, &ss, &sslen, err, errlen) < 0)
        return NULL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    g = gate_new(shard, cfg, ips);
    d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, shard, MHD_OPTION_EXTERNAL_LOGGER,
                         on_mhd_log, shard, MHD_OPTION_CONNECTION_LIMIT, gate_mhd_limit(g),
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool_bytes(cfg->max_header_bytes),
                         MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout_s,
                         MHD_OPTION_NOTIFY_CONNECTION, gate_on_connection, g,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, shard, MHD_OPTION_END);
    if (d == NULL) {
        snprintf(err, errlen, "cannot start the HTTP daemon");
        gate_free(g);
        return NULL;
    }
    if (gate_listen(g, d, (struct sockaddr *)&ss, sslen, why, sizeof why) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", cfg->listen_host, cfg->listen_port, why);
        MHD_stop_daemon(d);
        gate_free(g);
        return NULL;
    }
    *gatep = g;
    return d;
}
