/* cache: per-request policy and flow of the response cache. See cache.h
 * and docs/caching.md.
 *
 * Stored value: `{"created":T,"model":"NAME"}\n` + the compact answer. The
 * metadata line says when the answer was made (Age) and which configured
 * model made it (x-router-model on a hit). */
#include "cache/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "cache/completion.h"
#include "core/json.h"
#include "core/config.h"
#include "core/log.h"
#include "upstream/provider.h"
#include "core/rds.h"
#include "route/rules.h"
#include "http/reply.h"
#include "core/shard.h"
#include "upstream/sse.h"
#include "upstream/upstream.h"
#include "core/util.h"

static const char *header_of(const req_t *req, const char *name)
{
    return req->header ? req->header(req->header_arg, name) : NULL;
}

static bool has_token(const char *list, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (strncasecmp(p, token, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
                                               p[n] == ';' || p[n] == '='))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

/* Deterministic by the provider's own rules. OpenAI's default temperature
 * is 1 (so is Anthropic's): a request without one samples, and "invent a
 * random name" sent twice must not get the first name back. Deterministic
 * means an explicit temperature 0 (greedy decoding), or, when the
 * configuration counts it, a seed (the provider's documented way to ask for
 * reproducible sampling). top_p alone does not count; n does not matter
 * (n answers at temperature 0 or with a seed are as reproducible as one);
 * logprobs never are cached (a replay cannot reproduce them). */
static bool deterministic(const cJSON *root, bool seed_counts)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    if (lp && (cJSON_IsTrue(lp) || (cJSON_IsNumber(lp) && lp->valuedouble > 0)))
        return false;
    if (cJSON_IsNumber(t) && t->valuedouble == 0)
        return true;
    return seed_counts && cJSON_IsNumber(seed);
}

static const char *endpoint_path(enum endpoint ep)
{
    return ep == EP_CHAT ? "/chat/completions" : ep == EP_COMPLETIONS ? "/completions" : "/embeddings";
}

void cache_prepare(req_t *req, const cJSON *root)
{
    const config_t *cfg = req->cfg;
    const cfg_cache_t *cc = &cfg->cache;
    const char *h;
    const cJSON *so;
    char route[1024], scope[2 * CACHEKEY_LEN + 1];
    bool lookup = true, store = true;

    req->cache_x = CACHE_X_BYPASS;
    req->cache_lookup = req->cache_store = false;
    so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    req->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    if (cc->backend == CACHE_BACKEND_OFF || req->explain_only || req->ep == EP_NONE)
        return;
    req->cache_ttl_s = cc->ttl_s;
    if (req->route.rule >= 0) {
        const rule_action_t *a = rules_action(cfg->rules, (size_t)req->route.rule);
        if (a->cache == RULE_CACHE_OFF)
            return;
        if (a->cache == RULE_CACHE_TTL)
            req->cache_ttl_s = a->cache_ttl_s;
    }
    if (cc->only_deterministic && req->ep != EP_EMBEDDINGS &&
        !deterministic(root, cc->seed_is_deterministic))
        return;
    h = header_of(req, "x-router-cache");
    if (h && strcasecmp(h, "bypass") == 0) {
        lookup = store = false;
    } else if (h && strcasecmp(h, "refresh") == 0) {
        lookup = false;
    }
    h = header_of(req, "cache-control");
    if (has_token(h, "no-cache"))
        lookup = false;
    if (has_token(h, "no-store"))
        store = false;
    if (!lookup && !store)
        return;
    /* the route, not the client's model name: "auto" and a routable name
     * that land on the same tier share entries */
    if (req->route.tier >= 0) {
        snprintf(route, sizeof route, "tier:%s", cfg->tiers[req->route.tier].name);
    } else {
        size_t o = (size_t)snprintf(route, sizeof route, "chain:");
        for (size_t i = 0; i < req->route.n && o < sizeof route; i++) {
            int n = snprintf(route + o, sizeof route - o, "%s%s", i ? "," : "",
                             cfg->models[req->route.chain[i]].name);
            o += n > 0 ? (size_t)n : 0;
        }
    }
    /* cache.per_key: entries are scoped by the client's credential (a hash
     * of its bearer token, never the token), so tenants never share answers */
    scope[0] = '\0';
    if (cc->per_key) {
        const char *auth = header_of(req, "authorization");
        uint8_t d[CACHEKEY_LEN];
        unsigned dlen = 0;
        if (auth && EVP_Digest(auth, strlen(auth), d, &dlen, EVP_sha256(), NULL) == 1)
            cachekey_hex(d, scope);
    }
    if (cachekey_compute(root, endpoint_path(req->ep), route, scope, req->cache_key) < 0)
        return;
    req->cache_lookup = lookup;
    req->cache_store = store;
}

/* ---- hits ---- */

/* A hit costs nothing; it saves what the stored answer's tokens would have
 * cost on the baseline model. */
static void hit_accounting(req_t *req, const char *body, size_t len)
{
    json_span_t sp[2];
    cJSON *usage;
    req->cost_usd = 0;
    if (json_find_top_key(body, len, "usage", sp, 2) != 1)
        return;
    usage = cJSON_ParseWithLength(body + sp[0].off, sp[0].len);
    if (cJSON_IsObject(usage)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
        if (cJSON_IsNumber(pt) && cJSON_IsNumber(ct)) {
            req->prompt_tokens = util_count_i64(pt->valuedouble);
            req->completion_tokens = util_count_i64(ct->valuedouble);
            req->cached_tokens = 0;
            if (req->cfg->baseline_model >= 0)
                req->baseline_usd = provider_cost(&req->cfg->models[req->cfg->baseline_model],
                                                  pt->valuedouble, ct->valuedouble, 0);
        }
    }
    cJSON_Delete(usage);
}

/* Answers req from a stored value. shared: the value comes from Redis,
 * where another instance (or version, or anyone with access) may have put
 * it, so it must pass the rule cache_store applies; a memory entry passed
 * it in this process before it was stored. */
static bool serve(req_t *req, const char *value, size_t len, bool shared)
{
    const char *nl = memchr(value, '\n', len);
    cJSON *meta;
    const cJSON *m, *created;
    const char *body;
    size_t blen;
    if (nl == NULL)
        return false;
    meta = cJSON_ParseWithLength(value, (size_t)(nl - value));
    m = cJSON_GetObjectItemCaseSensitive(meta, "model");
    created = cJSON_GetObjectItemCaseSensitive(meta, "created");
    if (!cJSON_IsString(m) || !cJSON_IsNumber(created)) {
        cJSON_Delete(meta);
        return false;
    }
    body = nl + 1;
    blen = len - (size_t)(body - value);
    if (shared && !completion_storable(req->ep, body, blen)) {
        log_debug("request %s: cached value refused, treated as a miss", req->id);
        cJSON_Delete(meta);
        return false;
    }
    if (req->stream) {
        buf_t sse;
        buf_init(&sse, blen * 4 + 4096);
        if (completion_replay_sse(req->ep, body, blen, req->include_usage, &sse) < 0) {
            buf_free(&sse);
            cJSON_Delete(meta);
            return false;
        }
        req->model = config_find_model(req->cfg, m->valuestring);
        req->cache_age_s = (int64_t)time(NULL) - util_index_i64(created->valuedouble, 0);
        req->cache_x = CACHE_X_HIT;
        hit_accounting(req, body, blen);
        buf_cstr(&sse);
        reply_send(req, 200, sse.data, buf_len(&sse), "text/event-stream");
    } else {
        char *copy = xmalloc(blen + 1);
        memcpy(copy, body, blen);
        req->model = config_find_model(req->cfg, m->valuestring);
        req->cache_age_s = (int64_t)time(NULL) - util_index_i64(created->valuedouble, 0);
        req->cache_x = CACHE_X_HIT;
        hit_accounting(req, body, blen);
        reply_send(req, 200, copy, blen, NULL);
    }
    if (req->cache_age_s < 0)
        req->cache_age_s = 0;
    cJSON_Delete(meta);
    return true;
}

static void redis_key(const req_t *req, char *out, size_t cap, size_t *len)
{
    char hex[2 * CACHEKEY_LEN + 1];
    cachekey_hex(req->cache_key, hex);
    *len = (size_t)snprintf(out, cap, "%s%s", req->cfg->cache.key_prefix, hex);
    if (*len >= cap)
        *len = cap - 1;
}

static void on_redis_get(void *arg, enum rds_status st, const char *val, size_t len)
{
    req_t *req = arg;
    req->cache_op = NULL;
    if (st == RDS_OK && serve(req, val, len, true))
        return;
    if (st != RDS_OK && st != RDS_NIL)
        log_debug("request %s: cache lookup failed (%d), treated as a miss", req->id, (int)st);
    req->cache_x = CACHE_X_MISS;
    upstream_start(shard_upstream(req->shard), req);
}

bool cache_begin(req_t *req, const cache_ctx_t *cc)
{
    if (!req->cache_lookup)
        return false;
    req->cache_x = CACHE_X_MISS;
    if (req->cfg->cache.backend == CACHE_BACKEND_MEMORY && cc->mem) {
        mcache_entry_t *e = mcache_get(cc->mem, req->cache_key, util_now_ms());
        bool hit = e && serve(req, e->value, e->len, false);
        mcache_release(e);
        return hit;
    }
    if (req->cfg->cache.backend == CACHE_BACKEND_REDIS && cc->rds) {
        char key[512];
        size_t klen;
        redis_key(req, key, sizeof key, &klen);
        /* what is left of the request's Redis wait after the budget check */
        req->cache_op = rds_get(cc->rds, key, klen, request_redis_wait_ms(req, util_now_ms()),
                                on_redis_get, req);
        return req->cache_op != NULL;
    }
    return false;
}

void cache_cancel(req_t *req, const cache_ctx_t *cc)
{
    if (req->cache_op != NULL && cc->rds != NULL)
        rds_cancel(cc->rds, req->cache_op);
    req->cache_op = NULL;
}

/* ---- stores ---- */

void cache_store(req_t *req, const cache_ctx_t *cc, const char *body, size_t len)
{
    const cfg_cache_t *c = &req->cfg->cache;
    char meta[256];
    int mlen;
    buf_t v;
    if (!req->cache_store || req->model < 0 || len > c->max_entry_bytes)
        return;
    /* store only what a hit will serve: the same rule as the Redis read
     * side, and stricter than the SSE replay */
    if (!completion_storable(req->ep, body, len)) {
        log_debug("request %s: answer not stored (not a complete answer the cache can replay)",
                  req->id);
        return;
    }
    mlen = snprintf(meta, sizeof meta, "{\"created\":%lld,\"model\":", (long long)time(NULL));
    buf_init(&v, len + 512);
    buf_append(&v, meta, (size_t)mlen);
    json_append_string(&v, req->cfg->models[req->model].name,
                       strlen(req->cfg->models[req->model].name));
    buf_puts(&v, "}\n");
    buf_append(&v, body, len);
    if (c->backend == CACHE_BACKEND_MEMORY && cc->mem) {
        mcache_put(cc->mem, req->cache_key, buf_ptr(&v), buf_len(&v), req->cache_ttl_s,
                   (int64_t)time(NULL), util_now_ms());
    } else if (c->backend == CACHE_BACKEND_REDIS && cc->rds) {
        char key[512];
        size_t klen;
        redis_key(req, key, sizeof key, &klen);
        rds_set(cc->rds, key, klen, buf_ptr(&v), buf_len(&v), req->cache_ttl_s);
    }
    buf_free(&v);
}

/* ---- streamed answers ---- */

static void drop_acc(req_t *req)
{
    completion_acc_free(req->acc);
    req->acc = NULL;
    buf_free(&req->acc_buf);
}

void cache_stream_begin(req_t *req, uint64_t first, const char *bytes, size_t len)
{
    if ((!req->cache_store && !req->sampled) || req->ep == EP_EMBEDDINGS)
        return;
    req->acc = completion_acc_new(req->ep, req->cfg->cache.max_entry_bytes);
    buf_init(&req->acc_buf, req->cfg->cache.max_entry_bytes);
    req->acc_base = first;
    if (buf_append(&req->acc_buf, bytes, len) < 0)
        drop_acc(req);
}

void cache_stream_bytes(req_t *req, const char *bytes, size_t len)
{
    if (req->acc && buf_append(&req->acc_buf, bytes, len) < 0)
        drop_acc(req);
}

void cache_stream_event(req_t *req, uint64_t start, uint64_t end, bool is_done)
{
    if (req->acc == NULL || start < req->acc_base || end > req->acc_base + buf_len(&req->acc_buf))
        return;
    if (!is_done) {
        const char *p = buf_ptr(&req->acc_buf) + (start - req->acc_base);
        char *data = sse_event_data(p, (size_t)(end - start));
        if (data[0] != '\0' && completion_acc_event(req->acc, data, strlen(data)) < 0) {
            free(data);
            drop_acc(req);
            return;
        }
        free(data);
    }
    buf_consume(&req->acc_buf, (size_t)(end - req->acc_base));
    req->acc_base = end;
}

void cache_stream_end(req_t *req, const cache_ctx_t *cc)
{
    char *body;
    size_t len;
    if (req->acc == NULL)
        return;
    body = completion_acc_finish(req->acc, &len);
    if (body != NULL) {
        cache_store(req, cc, body, len);
        if (req->sampled && req->sample_resp == NULL)
            req->sample_resp = body; /* the quality sampler's copy of the answer */
        else
            free(body);
    }
    drop_acc(req);
}

void cache_req_free(req_t *req)
{
    drop_acc(req);
}
