/* fuzz_rules: the rule engine with rules the input writes. The input is a
 * list of rules (YAML, under routing.rules of a fixed configuration with
 * three tiers), a NUL byte, then a prompt: when the rules load, the prompt
 * is routed as the last user message of a chat request (and, as a second
 * request, inside a system + user conversation with a tool), through
 * request_parse as the daemon does (rule_parse, rules_regex' PCRE2 with its
 * limits, keywords, languages and scripts, the scorer), with an explanation.
 * Properties: a rule set that loads routes every prompt to a tier or chain
 * of the configuration, or refuses the request with a 4xx; an explanation
 * is a JSON object. */
#include "fuzz.h"

#include <cjson/cJSON.h>

#include "core/json.h"
#include "http/request.h"
#include "route/rules.h"

static const char BASE[] =
    "providers:\n"
    "  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
    "models:\n"
    "  small: {provider: p}\n"
    "  mid: {provider: p}\n"
    "  big: {provider: p}\n"
    "tiers:\n"
    "  budget: [small, mid]\n"
    "  standard: [mid, big]\n"
    "  premium: [big]\n"
    "routing:\n"
    "  default_tier: standard\n"
    "  classifier: {model: small, labels: {easy: budget, hard: premium}}\n"
    "  rules:\n";

static const char *headers(void *arg, const char *name)
{
    (void)arg;
    if (strcmp(name, "x-app") == 0)
        return "fuzz";
    return NULL;
}

static void route_one(config_t *cfg, const char *body, size_t len)
{
    req_t *req = request_new(NULL, NULL, cfg);
    req->ep = EP_CHAT;
    req->header = headers;
    if (buf_append(&req->body, body, len) != 0) {
        request_free(req);
        return;
    }
    req_error_t err;
    memset(&err, 0, sizeof err);
    buf_t ex;
    buf_init(&ex, 1 << 20);
    int rc = request_parse(req, &err, &ex);
    FUZZ_CHECK(rc != REQUEST_NEED_LABEL, "an explanation asked for the label");
    if (rc == 0) {
        FUZZ_CHECK(req->route.n > 0, "an empty chain");
        for (size_t i = 0; i < req->route.n; i++)
            FUZZ_CHECK(req->route.chain[i] >= 0 && (size_t)req->route.chain[i] < cfg->n_models,
                       "chain names model %d", req->route.chain[i]);
        int obj = 0;
        FUZZ_CHECK(json_check(buf_ptr(&ex), buf_len(&ex), JSON_CHECK_TEXT, &obj, NULL) == 1 && obj,
                   "explanation is not a JSON object: %.*s", (int)buf_len(&ex), buf_ptr(&ex));
    } else {
        FUZZ_CHECK(err.status >= 400 && err.status < 500 && err.message[0], "bad refusal");
    }
    /* the label path, as the daemon takes it */
    req_t *r2 = request_new(NULL, NULL, cfg);
    r2->ep = EP_CHAT;
    r2->header = headers;
    if (buf_append(&r2->body, body, len) == 0) {
        memset(&err, 0, sizeof err);
        rc = request_parse(r2, &err, NULL);
        if (rc == REQUEST_NEED_LABEL) {
            r2->cls_state = RULE_LABEL_KNOWN;
            r2->cls_label = (int)(len % 2);
            rc = request_parse(r2, &err, NULL);
            FUZZ_CHECK(rc == 0 || rc == -1, "label asked twice");
        }
    }
    request_free(r2);
    buf_free(&ex);
    request_free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *rules, *prompt;
    size_t rlen, plen;
    fuzz_split2(data, size, 0, &rules, &rlen, &prompt, &plen);
    size_t ylen = sizeof BASE - 1 + rlen;
    char *yaml = malloc(ylen + 1);
    memcpy(yaml, BASE, sizeof BASE - 1);
    memcpy(yaml + sizeof BASE - 1, rules, rlen);
    yaml[ylen] = '\0';
    static char err[8192];
    config_t *cfg = config_load_string("rules.yaml", yaml, ylen, err, sizeof err, NULL, 0);
    free(yaml);
    if (cfg == NULL)
        return 0;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", "auto");
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    char *text = fuzz_dup(prompt, plen);
    cJSON_AddItemToObject(m, "content", cJSON_CreateString(text));
    cJSON_AddItemToArray(msgs, m);
    char *body = cJSON_PrintUnformatted(root);
    if (body != NULL)
        route_one(cfg, body, strlen(body));
    free(body);
    /* the same text in a longer conversation with a system prompt and a tool */
    cJSON *sys = cJSON_CreateObject();
    cJSON_AddStringToObject(sys, "role", "system");
    cJSON_AddItemToObject(sys, "content", cJSON_CreateString(text));
    cJSON_InsertItemInArray(msgs, 0, sys);
    cJSON_AddItemToObject(root, "tools", cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"));
    cJSON_AddBoolToObject(root, "stream", plen % 3 == 0);
    body = cJSON_PrintUnformatted(root);
    if (body != NULL)
        route_one(cfg, body, strlen(body));
    free(body);
    free(text);
    cJSON_Delete(root);
    config_unref(cfg);
    return 0;
}
