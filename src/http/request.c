/* request: per-request state, body validation and the forwarded body.
 * The client's body is read once (core/json_tree.h: the strict check and
 * the cJSON tree in one pass) to validate it and read the few fields
 * routing needs; the tree is freed right away. The body sent
 * upstream is the client's bytes with only the "model" value spliced, so
 * every other field passes through untouched and nothing is re-serialised. */
#include "http/request.h"
#include "upstream/fit.h"
#include "account/otel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cache/cache.h"
#include "route/classifier.h"
#include "route/prompt.h"
#include "route/rules.h"
#include "route/scorer.h"
#include "core/util.h"
#include "route/experiment.h"
#include "upstream/balance.h"
#include "upstream/cascade.h"
#include "core/shard.h"
#include "upstream/retry.h"
#include "http/door_wire.h"
#include "upstream/quirks.h"
#include "core/json_tree.h"

req_t *request_new(struct shard *shard, struct MHD_Connection *conn, config_t *cfg)
{
    req_t *req = xcalloc(1, sizeof *req);
    req->shard = shard;
    req->conn = conn;
    req->cfg = config_ref(cfg);
    req->t_start_us = util_now_us();
    req->model = -1;
    router_init(&req->route);
    req->cost_usd = -1;
    req->prompt_tokens = req->completion_tokens = req->cached_tokens = -1;
    req->baseline_usd = -1;
    req->cls_label = -1;
    req->cls_cost_usd = -1;
    req->cls_prompt_tokens = req->cls_completion_tokens = -1;
    req->score = -1;
    req->exp_arm = -1;
    req->otel_temperature = -1;
    req->key_name = "";
    req->client_io.fd = -1;
    buf_init(&req->body, cfg->max_body_bytes);
    buf_init(&req->out, 0);
    buf_init(&req->acc_buf, 0);
    buf_init(&req->door_raw, 0);
    buf_init(&req->door_in, 0);
    buf_init(&req->door_out, 0);
    req->door_max_tokens = -1;
    return req;
}

void request_free(req_t *req)
{
    if (req == NULL)
        return;
    cache_req_free(req);
    free(req->attempts);
    cascade_run_free(req->casc);
    free(req->usage_event);
    free(req->sample_resp);
    free(req->cls_text);
    buf_free(&req->body);
    buf_free(&req->out);
    free(req->fwd_body);
    free(req->tail);
    anthropic_stream_free(req->ant_stream);
    doorwire_free(req);
    quirks_free(req);
    buf_free(&req->ant_ev);
    buf_free(&req->ant_out);
    config_unref(req->cfg);
    free(req);
}

void request_set_id(req_t *req, const char *client_id, uint64_t rnd)
{
    static const char hex[] = "0123456789abcdef";
    if (client_id != NULL) {
        size_t n = strlen(client_id);
        bool ok = n > 0 && n <= 128 && n < sizeof req->id;
        for (size_t i = 0; ok && i < n; i++) {
            char ch = client_id[i];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_' || ch == '.' || ch == ':';
        }
        if (ok) {
            memcpy(req->id, client_id, n + 1);
            return;
        }
    }
    memcpy(req->id, "req_", 4);
    for (int i = 0; i < 16; i++)
        req->id[4 + i] = hex[(rnd >> (60 - 4 * i)) & 15];
    req->id[20] = '\0';
}

static int fail(req_error_t *err, unsigned status, const char *code, const char *param,
                const char *fmt, const char *arg)
{
    err->status = status;
    err->type = "invalid_request_error";
    err->code = code;
    err->param = param;
    snprintf(err->message, sizeof err->message, fmt, arg ? arg : "");
    return -1;
}

/* The 400 for a body json_check refused: what is wrong and where, so a
 * client can find the byte (a repeated key is named, cut to 64 bytes). */
static int invalid_json(req_error_t *err, const char *text, const json_error_t *je)
{
    err->status = 400;
    err->type = "invalid_request_error";
    err->code = "invalid_json";
    err->param = NULL;
    if (je->key.len > 0 || strcmp(je->what, "duplicate key") == 0) {
        snprintf(err->message, sizeof err->message,
                 "The request body repeats the key \"%.*s\" in one object (byte %zu); "
                 "every key may appear only once.",
                 (int)(je->key.len > 64 ? 64 : je->key.len), text + je->key.off, je->off);
    } else if (strcmp(je->what, "unexpected character") == 0 ||
               strcmp(je->what, "control character outside a string") == 0) {
        /* these are reported at a byte of the body, never at its end */
        unsigned char at = (unsigned char)text[je->off];
        char shown[16];
        if (at >= 0x20 && at < 0x7f && at != '"' && at != '\\')
            snprintf(shown, sizeof shown, "'%c'", at);
        else
            snprintf(shown, sizeof shown, "0x%02X", at);
        snprintf(err->message, sizeof err->message,
                 "The request body is not valid JSON: %s %s at byte %zu.", je->what, shown,
                 je->off);
    } else {
        snprintf(err->message, sizeof err->message,
                 "The request body is not valid JSON: %s at byte %zu.", je->what, je->off);
    }
    return -1;
}

static int unknown_model(req_t *req, req_error_t *err, const char *model)
{
    const config_t *cfg = req->cfg;
    size_t o;
    int n = snprintf(err->message, sizeof err->message,
                     "The model '%.100s' does not exist. Known models: auto", model);
    o = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < cfg->n_tiers && o < sizeof err->message; i++) {
        n = snprintf(err->message + o, sizeof err->message - o, ", %s", cfg->tiers[i].name);
        o += n > 0 ? (size_t)n : 0;
    }
    for (size_t i = 0; i < cfg->n_models && o < sizeof err->message; i++) {
        n = snprintf(err->message + o, sizeof err->message - o, ", %s", cfg->models[i].name);
        o += n > 0 ? (size_t)n : 0;
    }
    if (o >= sizeof err->message)
        memcpy(err->message + sizeof err->message - 5, " ...", 5);
    err->status = 404;
    err->type = "invalid_request_error";
    err->code = "model_not_found";
    err->param = "model";
    return -1;
}

static int count_keys(const cJSON *obj, const char *key)
{
    int n = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        n += c->string != NULL && strcmp(c->string, key) == 0;
    return n;
}

static const char *header_of(const req_t *req, const char *name)
{
    return req->header ? req->header(req->header_arg, name) : NULL;
}

/* The explanation object: what the rules saw and what they decided. */
static void explain_finish(req_t *req, prompt_t *p, const char *model, const buf_t *rules,
                           bool label_needed, buf_t *out)
{
    const config_t *cfg = req->cfg;
    const route_t *r = &req->route;
    char num[64];
    buf_puts(out, "{\"model\":");
    json_append_string(out, model, strlen(model));
    buf_puts(out, ",\"routed\":");
    buf_puts(out, r->rule == ROUTE_RULE_EXPLICIT ? "false" : "true");
    buf_puts(out, ",\"estimated_tokens\":{");
    for (int sc = 0; sc < SCOPE_COUNT; sc++) {
        snprintf(num, sizeof num, "%s\"%s\":%u", sc ? "," : "", prompt_scope_name((enum scope)sc),
                 prompt_stats(p, (enum scope)sc)->tokens);
        buf_puts(out, num);
    }
    buf_puts(out, "},\"script\":");
    {
        const char *script = ts_script_name(ts_dominant_script(prompt_stats(p, SCOPE_LAST_USER)));
        json_append_string(out, script, strlen(script));
    }
    buf_puts(out, ",\"language\":");
    {
        const char *lang = prompt_language(p, SCOPE_LAST_USER);
        json_append_string(out, lang, strlen(lang));
    }
    /* the score is shown even when no rule needed it (then the rules did
     * not pay for it, and x-router-score stays off) */
    buf_puts(out, ",\"complexity\":{\"score\":");
    {
        const exp_arm_t *arm = experiment_arm_of(cfg, req->exp_arm, NULL);
        const scorer_t *sc = arm && arm->scorer ? arm->scorer
                             : cfg->scorer      ? cfg->scorer
                                                : scorer_builtin();
        buf_t top;
        snprintf(num, sizeof num, "%.3f", prompt_score(p, sc));
        buf_puts(out, num);
        buf_puts(out, ",\"used_by_rules\":");
        buf_puts(out, req->score >= 0 ? "true" : "false");
        buf_puts(out, ",\"weights\":");
        json_append_string(out, scorer_source(sc), strlen(scorer_source(sc)));
        buf_puts(out, ",\"top_features\":");
        buf_init(&top, 4096);
        scorer_top_features(sc, p->score_x, 5, &top);
        json_append_string(out, buf_ptr(&top), buf_len(&top));
        buf_free(&top);
        buf_puts(out, ",\"features\":{");
        for (int i = 0; i < SCORER_N_FEATURES; i++) {
            snprintf(num, sizeof num, "%s\"%s\":%.4g", i ? "," : "", scorer_feature_name(i),
                     p->score_x[i]);
            buf_puts(out, num);
        }
        buf_puts(out, "}}");
    }
    buf_puts(out, ",\"rules\":");
    buf_append(out, buf_ptr(rules), buf_len(rules));
    buf_puts(out, ",\"decision\":{\"rule\":");
    {
        const char *rule = router_rule_name(cfg, r), *tier = router_tier_name(cfg, r);
        json_append_string(out, rule, strlen(rule));
        buf_puts(out, ",\"tier\":");
        json_append_string(out, tier, strlen(tier));
    }
    {
        const experiment_t *e = NULL;
        const exp_arm_t *a = experiment_arm_of(cfg, req->exp_arm, &e);
        if (a != NULL) { /* the experiment arm whose policy routed it */
            buf_puts(out, ",\"experiment\":");
            json_append_string(out, e->name, strlen(e->name));
            buf_puts(out, ",\"arm\":");
            json_append_string(out, a->name, strlen(a->name));
        }
    }
    buf_puts(out, ",\"chain\":[");
    for (size_t i = 0; i < r->n; i++) {
        const cfg_model_t *m = &cfg->models[r->chain[i]];
        if (i)
            buf_puts(out, ",");
        buf_puts(out, "{\"model\":");
        json_append_string(out, m->name, strlen(m->name));
        buf_puts(out, ",\"provider\":");
        json_append_string(out, cfg->providers[m->provider].name,
                           strlen(cfg->providers[m->provider].name));
        buf_puts(out, "}");
    }
    buf_puts(out, "]");
    balance_explain(cfg, r, out);
    buf_puts(out, "}");
    /* the classifier is never asked when explaining: say whether it would
     * be (the decision above is then the one without its label) */
    if (req->cfg->classifier.enabled)
        buf_puts(out, label_needed ? ",\"classifier\":\"would_classify\""
                                   : ",\"classifier\":\"not_needed\"");
    buf_puts(out, "}");
}

/* Groups of equivalent models in the chain: their members in this
 * request's order (upstream/balance.h). */
static void balance_request(req_t *req, const cJSON *root)
{
    const cJSON *u;
    balance_in_t in;
    if (req->route.tier < 0 || req->cfg->tiers[req->route.tier].n_groups == 0)
        return; /* the common case: nothing to read, no clock */
    u = cJSON_GetObjectItemCaseSensitive(root, "user");
    in = (balance_in_t){.now_ms = util_now_ms(), .key_name = req->key_name,
                        .user = cJSON_IsString(u) ? u->valuestring : NULL,
                        .header = req->header, .header_arg = req->header_arg};
    if (req->shard != NULL)
        in.rnd = shard_random(req->shard);
    else
        util_random(&in.rnd, sizeof in.rnd);
    balance_route(req->cfg, &req->route, &in);
}

/* The active experiment's arm for a routed model (route/experiment.h),
 * written into ctx for the rules; -1 when there is none. */
static int experiment_arm(req_t *req, const cJSON *root, const char *model, rule_ctx_t *ctx)
{
    const experiments_t *x = req->cfg->experiments;
    const experiment_t *e;
    const char *key = NULL;
    const exp_arm_t *a;
    size_t arm;
    req->exp_keyless = false;
    if (x == NULL || x->active < 0 || !config_is_routable(req->cfg, model))
        return -1;
    e = &x->v[x->active];
    if (e->key == EXP_KEY_PROXY_KEY) {
        key = req->key_name;
    } else if (e->key == EXP_KEY_USER) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "user");
        key = cJSON_IsString(u) ? u->valuestring : NULL;
    } else {
        key = header_of(req, e->header);
    }
    if (key == NULL || key[0] == '\0') {
        /* no key: split by the request id (or as `keyless:` says), counted
         * as keyless */
        if (e->keyless_arm == EXP_KEYLESS_NONE)
            return -1;
        key = req->id;
        req->exp_keyless = true;
    }
    arm = req->exp_keyless && e->keyless_arm >= 0 ? (size_t)e->keyless_arm
                                                  : experiment_pick(e, key, strlen(key));
    a = &e->arms[arm];
    if (a->has_rules) {
        ctx->order = a->rules;
        ctx->n_order = a->n_rules;
    }
    ctx->band_lo = a->band_lo;
    ctx->band_hi = a->band_hi;
    ctx->scorer = a->scorer;
    return (int)arm;
}

int request_parse(req_t *req, req_error_t *err, buf_t *explain)
{
    const char *text;
    size_t len;
    json_tree_t *tree = NULL;
    cJSON *root, *model, *item;
    json_span_t spans[2];
    json_error_t jerr;
    int rc = -1, found;

    /* another door: its body becomes the chat body the rest reads (once;
     * the classifier's second pass finds it translated) */
    if (doorwire_request(req, err) < 0)
        return -1;
    text = buf_cstr(&req->body);
    len = buf_len(&req->body);

    if (len == 0)
        return fail(err, 400, "invalid_json", NULL,
                    "The request body is empty; expected a JSON object.%s", NULL);
    /* One strict pass that also builds the tree (core/json_tree.h): cJSON's
     * own parser tolerates what a provider's parser may read differently
     * (control bytes as whitespace, invalid UTF-8, duplicate keys it reads
     * first-wins where most read last-wins), so the body the router
     * understood and the body the provider gets could differ. Such a body
     * is refused, never forwarded. */
    {
        int is_object = 0, ok = json_tree_parse(text, len, &tree, &is_object, &jerr);
        if (ok < 0) {
            fail(err, 503, "server_overloaded", NULL,
                 "Out of memory while validating the request body; retry later.%s", NULL);
            err->type = "server_error";
            return -1;
        }
        if (ok == 0)
            return invalid_json(err, text, &jerr);
        if (!is_object) {
            json_tree_free(tree);
            return fail(err, 400, "invalid_json", NULL,
                        "The request body must be a JSON object.%s", NULL);
        }
    }
    root = json_tree_root(tree);
    model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model == NULL) {
        fail(err, 400, "missing_required_parameter", "model",
             "You must provide a model parameter.%s", NULL);
        goto out;
    }
    if (!cJSON_IsString(model) || model->valuestring[0] == '\0') {
        fail(err, 400, "invalid_type", "model", "'model' must be a non-empty string.%s", NULL);
        goto out;
    }
    item = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (item != NULL && !cJSON_IsBool(item) && !cJSON_IsNull(item)) {
        fail(err, 400, "invalid_type", "stream", "'stream' must be a boolean.%s", NULL);
        goto out;
    }
    req->stream = cJSON_IsTrue(item) && req->ep != EP_EMBEDDINGS;
    if (req->cfg->obs.otlp != NULL)
        otel_note_request(req, root); /* the client's model and temperature, for its span */

    switch (req->ep) {
    case EP_CHAT:
        item = cJSON_GetObjectItemCaseSensitive(root, "messages");
        if (item == NULL) {
            fail(err, 400, "missing_required_parameter", "messages",
                 "Missing required parameter: 'messages'.%s", NULL);
            goto out;
        }
        if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0) {
            fail(err, 400, "invalid_value", "messages",
                 "'messages' must be a non-empty array of message objects.%s", NULL);
            goto out;
        }
        for (cJSON *m = item->child; m != NULL; m = m->next) {
            cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
                fail(err, 400, "invalid_value", "messages",
                     "Each message must be an object with a string 'role'.%s", NULL);
                goto out;
            }
        }
        break;
    case EP_COMPLETIONS:
        if (cJSON_GetObjectItemCaseSensitive(root, "prompt") == NULL) {
            fail(err, 400, "missing_required_parameter", "prompt",
                 "Missing required parameter: 'prompt'.%s", NULL);
            goto out;
        }
        break;
    case EP_EMBEDDINGS:
        if (cJSON_GetObjectItemCaseSensitive(root, "input") == NULL) {
            fail(err, 400, "missing_required_parameter", "input",
                 "Missing required parameter: 'input'.%s", NULL);
            goto out;
        }
        item = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
        req->want_base64 = cJSON_IsString(item) && strcmp(item->valuestring, "base64") == 0;
        break;
    case EP_NONE:
        break;
    }

    found = json_tree_top_key(tree, text, "model", spans, 2);
    /* cJSON compares unescaped keys, the scanner raw ones: both must see
     * exactly one, or an escaped duplicate ("mod\u0065l") could smuggle a
     * second model past the router to the provider. */
    if (found != 1 || count_keys(root, "model") != 1) {
        fail(err, 400, "invalid_value", "model",
             "The request body must have exactly one 'model' key, written without escapes.%s",
             NULL);
        goto out;
    }
    req->model_span = spans[0];
    req->so_span.len = 0;
    if (json_tree_top_key(tree, text, "stream_options", spans, 2) == 1)
        req->so_span = spans[0];
    req->body_end = len;
    while (req->body_end > 0 && text[req->body_end - 1] != '}')
        req->body_end--;
    if (req->body_end > 0)
        req->body_end--;
    {
        prompt_t p;
        bool label_needed = false;
        rule_ctx_t ctx = {.model = model->valuestring, .key_name = req->key_name,
                          .header = req->header, .header_arg = req->header_arg,
                          .label_state = explain ? RULE_LABEL_EXPLAIN : (enum rule_label)req->cls_state,
                          .label = req->cls_label, .label_needed = &label_needed};
        buf_t rules_why;
        enum router_status st;
        int arm = experiment_arm(req, root, model->valuestring, &ctx);
        buf_init(&rules_why, (size_t)1 << 30);
        prompt_init(&p, root, req->ep);
        st = router_route(req->cfg, model->valuestring, &p, &ctx, header_of(req, "x-router-tier"),
                          &req->route, explain ? &rules_why : NULL);
        req->exp_arm = -1;
        if (st == ROUTER_OK && arm >= 0 && req->route.rule != ROUTE_RULE_CLIENT &&
            req->route.rule != ROUTE_RULE_EXPLICIT) {
            const experiments_t *x = req->cfg->experiments;
            req->exp_arm = arm;
            router_map_tier(req->cfg, &req->route, x->v[x->active].arms[arm].tier_map);
        }
        req->score = p.score_used ? p.score : -1;
        if (st == ROUTER_OK)
            balance_request(req, root);
        if (st == ROUTER_OK && explain)
            explain_finish(req, &p, model->valuestring, &rules_why, label_needed, explain);
        if (st == ROUTER_NEED_LABEL) {
            /* what the classifier is asked about: the last user message,
             * cut to max_input_bytes */
            const char *t;
            size_t n;
            prompt_text(&p, SCOPE_LAST_USER, &t, &n);
            n = classifier_input_len(t, n, req->cfg->classifier.max_input_bytes);
            free(req->cls_text);
            req->cls_text = xmalloc(n + 1);
            memcpy(req->cls_text, t, n);
            req->cls_text[n] = '\0';
            req->cls_len = n;
        }
        req->est_prompt_tokens = prompt_stats(&p, SCOPE_CONVERSATION)->tokens;
        req->max_output = p.max_output;
        req->needs = fit_needs(p.tools, p.images, p.audio, p.response_format);
        prompt_free(&p);
        buf_free(&rules_why);
        if (st == ROUTER_NEED_LABEL) {
            rc = REQUEST_NEED_LABEL;
            goto out;
        }
        if (st == ROUTER_UNKNOWN_MODEL) {
            unknown_model(req, err, model->valuestring);
            goto out;
        }
        if (st == ROUTER_UNKNOWN_TIER) {
            fail(err, 400, "unknown_tier", NULL,
                 "The x-router-tier header names no configured tier (%.100s).",
                 header_of(req, "x-router-tier"));
            goto out;
        }
    }
    if (retry_deadline_ms(header_of(req, "x-router-deadline-ms"), req->cfg->deadline_ms,
                          req->cfg->max_deadline_ms, &req->deadline_ms) < 0) {
        fail(err, 400, "invalid_value", NULL,
             "The x-router-deadline-ms header must be a whole number of milliseconds >= 1 "
             "(found \"%.40s\").",
             header_of(req, "x-router-deadline-ms"));
        goto out;
    }
    cache_prepare(req, root);
    /* ask streaming providers for usage, so streams have a cost too */
    req->inject_usage = req->stream && req->ep != EP_EMBEDDINGS && !req->include_usage;
    req->usage_mode = req->stream && req->ep != EP_EMBEDDINGS;
    rc = 0;
out:
    json_tree_free(tree);
    return rc;
}

/* The Messages body for Anthropic model m: the client's chat request
 * translated (parsed once per attempt: attempts on Anthropic models are
 * few, and the translation needs the tree). */
static int build_forward_anthropic(req_t *req, int m)
{
    req_error_t *err = &req->ant_err;
    const cfg_model_t *md = &req->cfg->models[m];
    anthropic_req_opts_t opts = {.model = md->upstream, .default_max_tokens = md->default_max_tokens};
    anthropic_err_t aerr = {{0}, {0}};
    json_tree_t *tree;
    cJSON *chat;
    buf_t b;
    int rc;

    memset(err, 0, sizeof *err);
    err->status = 400;
    err->type = "invalid_request_error";
    err->code = "unsupported_for_model";
    if (req->ep != EP_CHAT) {
        snprintf(err->message, sizeof err->message,
                 "Model %s is served by an Anthropic provider, which answers only "
                 "/v1/chat/completions requests.",
                 md->name);
        err->param = "model";
        return -1;
    }
    chat = json_tree_read(buf_ptr(&req->body), buf_len(&req->body), &tree); /* read only */
    if (chat == NULL) { /* request_parse parsed it already: out of memory */
        snprintf(err->message, sizeof err->message, "Out of memory translating the request.");
        return -1;
    }
    /* the translation grows a body by a small factor at most (tool
     * schemas are copied once, JSON strings re-escaped alike) */
    buf_init(&b, buf_len(&req->body) * 2 + 65536);
    rc = anthropic_request_from_chat(chat, &opts, &b, &req->ant_info, &aerr);
    json_tree_drop(chat, tree);
    if (rc != ANTHROPIC_OK) {
        buf_free(&b);
        if (rc == ANTHROPIC_EINVAL) {
            snprintf(err->message, sizeof err->message, "%s (model %s is served by Anthropic's "
                     "Messages API)", aerr.message, md->name);
            /* param must outlive the call: kept in the request */
            snprintf(req->ant_param, sizeof req->ant_param, "%s", aerr.param);
            err->param = req->ant_param[0] ? req->ant_param : NULL;
        } else {
            snprintf(err->message, sizeof err->message,
                     "The request is too large to be translated for model %s.", md->name);
        }
        return -1;
    }
    req->ant = true;
    free(req->fwd_body);
    req->fwd_len = buf_len(&b);
    req->fwd_body = buf_detach(&b, &req->fwd_len);
    return 0;
}

int request_build_forward(req_t *req, int m)
{
    const char *body = buf_ptr(&req->body);
    size_t len = buf_len(&req->body);
    const char *name = req->cfg->models[m].upstream;
    static const char usage_only[] = "{\"include_usage\":true}";
    char *so_new = NULL;
    buf_t b;
    size_t cap = len + strlen(name) * 6 + 64;
    struct edit {
        size_t off, len;
        const char *with;
        size_t with_len;
        bool quote; /* write `with` as a JSON string */
    } e[3];
    int ne = 0;

    req->ant = false;
    {
        int rc = doorwire_forward(req, m);
        if (rc < 0)
            return -1;
        if (rc > 0)
            return 0; /* the door's own body, model replaced */
    }
    if (req->cfg->providers[req->cfg->models[m].provider].type == PROVIDER_ANTHROPIC)
        return build_forward_anthropic(req, m);
    e[ne++] = (struct edit){req->model_span.off, req->model_span.len, name, strlen(name), true};
    if (req->inject_usage) {
        if (req->so_span.len > 0) {
            /* keep the client's other stream options */
            cJSON *so = cJSON_ParseWithLength(body + req->so_span.off, req->so_span.len);
            if (cJSON_IsObject(so)) {
                cJSON_DeleteItemFromObjectCaseSensitive(so, "include_usage");
                cJSON_AddTrueToObject(so, "include_usage");
                so_new = cJSON_PrintUnformatted(so);
            }
            cJSON_Delete(so);
            if (so_new == NULL)
                so_new = xstrdup(usage_only);
            e[ne++] = (struct edit){req->so_span.off, req->so_span.len, so_new, strlen(so_new), false};
        } else {
            e[ne++] = (struct edit){req->body_end, 0, ",\"stream_options\":{\"include_usage\":true}",
                                    sizeof ",\"stream_options\":{\"include_usage\":true}" - 1, false};
        }
        cap += 64 + (so_new ? strlen(so_new) : 0);
    }
    if (ne == 2 && e[1].off < e[0].off) {
        struct edit t = e[0];
        e[0] = e[1];
        e[1] = t;
    }
    buf_init(&b, cap);
    {
        size_t at = 0;
        for (int i = 0; i < ne; i++) {
            buf_append(&b, body + at, e[i].off - at);
            if (e[i].quote)
                json_append_string(&b, e[i].with, e[i].with_len);
            else
                buf_append(&b, e[i].with, e[i].with_len);
            at = e[i].off + e[i].len;
        }
        buf_append(&b, body + at, len - at);
    }
    free(so_new);
    free(req->fwd_body);
    req->fwd_len = buf_len(&b);
    req->fwd_body = b.data;
    return 0;
}
