/* call: llmrouter's own non-streamed chat completions to one model, on the
 * shard's curl multi (see upstream/call.h).
 *
 * A call owns its easy handle, a copy of the body, a capped answer buffer
 * and a reference to the configuration snapshot. upstream.c's completion
 * loop hands a finished handle whose owner tag says "call" to
 * upstream_call_done; the callback runs from there (never from
 * upstream_call_start), after the handle has left the multi, so it may start
 * or cancel other calls. As for client transfers, libcurl may never re-send
 * a body on its own (CURLOPT_PREREQFUNCTION counts the sends): a second send
 * fails the call. */
#include "upstream/call.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/json_tree.h"
#include "core/log.h"
#include "core/presets.h"
#include "core/util.h"
#include "upstream/anthropic.h"
#include "upstream/owner.h"
#include "upstream/provider.h"

#define CALL_MAX_ANSWER (1024 * 1024)

struct upstream_call {
    upstream_owner_t owner; /* UPSTREAM_OWNER_CALL; CURLOPT_PRIVATE points here */
    upstream_t *up;
    config_t *cfg;
    int model;
    CURL *easy;
    char *body;
    size_t len;
    buf_t out;
    unsigned status;
    unsigned sends;
    bool too_big;
    bool ant;                      /* an Anthropic model: body and answer translated */
    bool raw;                      /* upstream_call_post: any 2xx is ok, no model */
    struct curl_slist *headers;    /* upstream_call_post's, owned */
    anthropic_req_info_t ant_info;
    uint64_t t0_us;
    upstream_call_cb cb;
    void *arg;
    struct upstream_call *prev, *next;
};

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    upstream_call_t *c = ud;
    size_t n = size * nmemb;
    if (n >= 12 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', n);
        uint64_t st;
        c->status = 0;
        if (sp != NULL && (size_t)(sp - p) + 4 <= n && util_parse_u64(sp + 1, 3, &st) == 0)
            c->status = (unsigned)st;
    }
    return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    upstream_call_t *c = ud;
    size_t n = size * nmemb;
    if (c->status >= 100 && c->status < 200)
        return n;
    if (buf_append(&c->out, p, n) < 0) {
        c->too_big = true;
        return 0; /* aborts the transfer */
    }
    return n;
}

/* Called by libcurl before every send of the request; a second one is a
 * re-send llmrouter did not decide on. */
static int on_prereq(void *ud, char *remote_ip, char *local_ip, int remote_port, int local_port)
{
    upstream_call_t *c = ud;
    (void)remote_ip;
    (void)local_ip;
    (void)remote_port;
    (void)local_port;
    return ++c->sends > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

static void unlink_call(upstream_call_t *c)
{
    upstream_call_t **head = upstream_calls(c->up);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void call_free(upstream_call_t *c)
{
    if (c->easy != NULL) {
        curl_multi_remove_handle(upstream_multi(c->up), c->easy);
        curl_easy_cleanup(c->easy);
    }
    buf_free(&c->out);
    free(c->body);
    curl_slist_free_all(c->headers);
    config_unref(c->cfg);
    free(c);
}

/* The Messages body of a call to Anthropic model m (the chat body
 * translated) into c->body. Returns 0, or -1 when it cannot be translated. */
static int call_translate(upstream_call_t *c, const config_t *cfg, int m, const char *body,
                          size_t len)
{
    anthropic_req_opts_t opts = {.model = cfg->models[m].upstream,
                                 .default_max_tokens = cfg->models[m].default_max_tokens};
    json_tree_t *tree;
    cJSON *chat = json_tree_read(body, len, &tree); /* read only */
    buf_t b;
    int rc;
    if (chat == NULL)
        return -1;
    buf_init(&b, len * 2 + 65536);
    rc = anthropic_request_from_chat(chat, &opts, &b, &c->ant_info, NULL);
    json_tree_drop(chat, tree);
    if (rc != ANTHROPIC_OK) {
        buf_free(&b);
        return -1;
    }
    c->ant = true;
    c->body = buf_detach(&b, &c->len);
    return 0;
}

/* Replaces a 2xx Anthropic answer in c->out by its chat.completion and
 * prices it with the cache classes apart. Returns 0, or -1 (why set). */
static int call_answer(upstream_call_t *c, double *cost, char *why, size_t whylen)
{
    const cfg_model_t *m = &c->cfg->models[c->model];
    anthropic_usage_t u;
    buf_t t;
    buf_init(&t, CALL_MAX_ANSWER);
    if (anthropic_answer_to_chat(buf_ptr(&c->out), buf_len(&c->out), &c->ant_info,
                                 (int64_t)time(NULL), &t, &u, why, whylen) != ANTHROPIC_OK) {
        if (why[0] == '\0')
            snprintf(why, whylen, "the translated answer is too large");
        buf_free(&t);
        return -1;
    }
    buf_free(&c->out);
    c->out = t;
    *cost = u.input_tokens >= 0 ? anthropic_cost(&u, m->input_per_mtok, m->output_per_mtok,
                                                 m->cached_input_per_mtok, m->cache_write_per_mtok)
                                : -1;
    return 0;
}

/* Sets the transfer's options (one POST of c->body, never re-sent: the
 * prerequest callback counts the sends), adds it to the shard's multi and
 * links the call in. Returns c, or NULL (c freed) when libcurl refused it. */
static upstream_call_t *submit(upstream_t *up, upstream_call_t *c, const char *url,
                               struct curl_slist *headers, const char *proxy,
                               const char *no_proxy, unsigned connect_ms, unsigned timeout_ms)
{
    CURL *e = c->easy;
    upstream_call_t **head;
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    if (proxy != NULL)
        curl_easy_setopt(e, CURLOPT_PROXY, proxy);
    curl_easy_setopt(e, CURLOPT_NOPROXY, no_proxy);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, c);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &c->owner);
    if (curl_multi_add_handle(upstream_multi(up), e) != CURLM_OK) {
        curl_easy_cleanup(e);
        c->easy = NULL;
        call_free(c);
        return NULL;
    }
    head = upstream_calls(up);
    c->next = *head;
    if (*head != NULL)
        (*head)->prev = c;
    *head = c;
    return c;
}

upstream_call_t *upstream_call_start(upstream_t *up, config_t *cfg, int m, const char *body,
                                     size_t len, unsigned timeout_ms, upstream_call_cb cb,
                                     void *arg)
{
    const cfg_provider_t *p;
    upstream_call_t *c;
    char url[2048];
    CURL *e;

    if (up == NULL || cfg == NULL || m < 0 || (size_t)m >= cfg->n_models || cb == NULL)
        return NULL;
    p = &cfg->providers[cfg->models[m].provider];
    if (p->key_missing)
        return NULL;
    if (presets_url(p, &cfg->models[m],
                    p->type == PROVIDER_ANTHROPIC ? ANTHROPIC_PATH_MESSAGES : "/chat/completions",
                    url, sizeof url) < 0)
        return NULL;
    e = curl_easy_init();
    if (e == NULL)
        return NULL;
    c = xcalloc(1, sizeof *c);
    if (p->type == PROVIDER_ANTHROPIC && call_translate(c, cfg, m, body, len) < 0) {
        curl_easy_cleanup(e);
        free(c);
        return NULL;
    }
    c->owner.kind = UPSTREAM_OWNER_CALL;
    c->up = up;
    c->cfg = config_ref(cfg);
    c->model = m;
    c->easy = e;
    if (!c->ant) {
        c->body = xmalloc(len + 1);
        memcpy(c->body, body, len);
        c->body[len] = '\0';
        c->len = len;
    }
    c->cb = cb;
    c->arg = arg;
    c->t0_us = util_now_us();
    buf_init(&c->out, CALL_MAX_ANSWER);

    return submit(up, c, url, p->headers, p->proxy, p->no_proxy,
                  p->connect_timeout_ms < timeout_ms ? p->connect_timeout_ms : timeout_ms,
                  timeout_ms);
}

void upstream_call_cancel(upstream_t *up, upstream_call_t *c)
{
    (void)up;
    if (c == NULL)
        return;
    unlink_call(c);
    call_free(c);
}

/* choices[0].message.content and finish_reason, copied into the result. */
static void read_choice(const char *body, size_t len, char **content, char **finish)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *ch, *msg, *v;
    *content = *finish = NULL;
    if (root == NULL)
        return;
    ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
    v = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(v))
        *content = xstrdup(v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
    if (cJSON_IsString(v))
        *finish = xstrdup(v->valuestring);
    cJSON_Delete(root);
}

void upstream_call_done(upstream_t *up, upstream_owner_t *owner, int curl_result)
{
    upstream_call_t *c = (upstream_call_t *)(void *)owner;
    CURLcode res = (CURLcode)curl_result;
    upstream_call_result_t r = {.cost_usd = -1, .prompt_tokens = -1, .completion_tokens = -1};
    provider_result_t pr = {.cost_usd = -1};
    char why[160] = "", *content = NULL, *finish = NULL;
    double ant_cost = -1;
    (void)up;

    unlink_call(c);
    curl_multi_remove_handle(upstream_multi(c->up), c->easy);
    curl_easy_cleanup(c->easy);
    c->easy = NULL;
    r.status = c->status;
    r.elapsed_us = util_now_us() - c->t0_us;
    if (c->too_big) {
        snprintf(why, sizeof why, "answer larger than %d bytes", CALL_MAX_ANSWER);
    } else if (c->sends > 1) {
        snprintf(why, sizeof why, "the connection closed before any response (not re-sent)");
    } else if (res != CURLE_OK) {
        snprintf(why, sizeof why, "%s", curl_easy_strerror(res));
    } else if (c->status < 200 || c->status > 299) {
        snprintf(why, sizeof why, "HTTP %u", c->status);
    } else if (c->raw) {
        r.ok = true;
    } else if (c->ant && call_answer(c, &ant_cost, why, sizeof why) < 0) {
        /* why is set */
    } else if (provider_check_answer(c->cfg, c->model, buf_ptr(&c->out), buf_len(&c->out), false,
                                     false, &pr, why, sizeof why) < 0) {
        /* why is set */
    } else {
        r.ok = true;
        r.cost_usd = c->ant && ant_cost >= 0 ? ant_cost : pr.cost_usd;
        r.prompt_tokens = pr.prompt_tokens;
        r.completion_tokens = pr.completion_tokens;
        read_choice(buf_ptr(&c->out), buf_len(&c->out), &content, &finish);
        r.content = content;
        r.finish_reason = finish;
    }
    free(pr.new_body);
    free(pr.compact);
    /* after call_answer, which may have replaced c->out */
    if (buf_len(&c->out) > 0) {
        r.body = buf_cstr(&c->out);
        r.len = buf_len(&c->out);
    }
    if (!r.ok) {
        r.error = why;
        log_debug("call to %s failed: %s", c->raw ? "a webhook" : c->cfg->models[c->model].name,
                  why);
    }
    c->cb(c->arg, &r);
    free(content);
    free(finish);
    call_free(c);
}

void upstream_call_cancel_all(upstream_t *up)
{
    upstream_call_t **head = upstream_calls(up);
    while (*head != NULL)
        upstream_call_cancel(up, *head);
}

size_t upstream_call_count(upstream_t *up)
{
    size_t n = 0;
    for (const upstream_call_t *c = *upstream_calls(up); c != NULL; c = c->next)
        n++;
    return n;
}

char *upstream_call_chat_body(const config_t *cfg, int m, const char *system, const char *user,
                              unsigned max_tokens, size_t *len)
{
    const char *name = cfg->models[m].upstream;
    buf_t b;
    char num[32];
    buf_init(&b, (size_t)1 << 30); /* sized by the caller's strings */
    buf_puts(&b, "{\"model\":");
    json_append_string(&b, name, strlen(name));
    buf_puts(&b, ",\"messages\":[");
    if (system != NULL) {
        buf_puts(&b, "{\"role\":\"system\",\"content\":");
        json_append_string(&b, system, strlen(system));
        buf_puts(&b, "},");
    }
    buf_puts(&b, "{\"role\":\"user\",\"content\":");
    json_append_string(&b, user, strlen(user));
    buf_puts(&b, "}],\"temperature\":0");
    if (max_tokens > 0) {
        snprintf(num, sizeof num, ",\"max_tokens\":%u", max_tokens);
        buf_puts(&b, num);
    }
    buf_puts(&b, ",\"stream\":false}");
    return buf_detach(&b, len);
}

/* A POST of llmrouter's own to a URL that is not a model (an alert
 * webhook); see upstream/call.h. */
upstream_call_t *upstream_call_post(upstream_t *up, const char *url, const char *const *headers,
                                    const char *body, size_t len, unsigned timeout_ms,
                                    upstream_call_cb cb, void *arg)
{
    upstream_call_t *c;
    CURL *e;
    if (up == NULL || url == NULL || cb == NULL)
        return NULL;
    e = curl_easy_init();
    if (e == NULL)
        return NULL;
    c = xcalloc(1, sizeof *c);
    c->owner.kind = UPSTREAM_OWNER_CALL;
    c->up = up;
    c->model = -1;
    c->raw = true;
    c->easy = e;
    c->body = xmalloc(len + 1);
    memcpy(c->body, body, len);
    c->body[len] = '\0';
    c->len = len;
    c->cb = cb;
    c->arg = arg;
    c->t0_us = util_now_us();
    buf_init(&c->out, 64 * 1024);
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:");
    for (size_t i = 0; headers != NULL && headers[i] != NULL && c->headers != NULL; i++)
        c->headers = curl_slist_append(c->headers, headers[i]);
    if (c->headers == NULL) {
        call_free(c);
        return NULL;
    }
    return submit(up, c, url, c->headers, NULL, "localhost,127.0.0.1,::1", timeout_ms, timeout_ms);
}
