/* explain: the offline routing explanation (CLI). The JSON comes from
 * request_parse, the same code path the daemon uses for every request and
 * for POST /v1/router/explain; this file only reads the input and renders
 * the JSON as text. */
#include "route/explain.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "http/request.h"
#include "core/util.h"

static const char *lookup(void *arg, const char *name)
{
    const char *const *h = arg;
    size_t n = strlen(name);
    for (; h && *h; h++) {
        if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':') {
            const char *v = *h + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

static int read_all(const char *path, buf_t *b, FILE *err)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char chunk[65536];
    size_t n;
    if (f == NULL) {
        fprintf(err, "llmrouter: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_append(b, chunk, n) < 0) {
            fprintf(err, "llmrouter: %s: larger than server.max_body_bytes (%zu)\n", path, b->cap);
            if (f != stdin)
                fclose(f);
            return -1;
        }
    }
    if (f != stdin)
        fclose(f);
    return 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

static void render(const char *json, FILE *out)
{
    cJSON *root = cJSON_Parse(json), *tok, *rules, *rule, *dec, *chain, *m;
    int i = 0;
    if (root == NULL)
        return;
    tok = cJSON_GetObjectItemCaseSensitive(root, "estimated_tokens");
    fprintf(out, "request: model \"%s\" (%s)\n", str(root, "model"),
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "routed"))
                ? "routed by the rules"
                : "named explicitly: rules not consulted");
    fprintf(out, "estimated tokens: last user message %d, all user messages %d, system %d, "
                 "conversation %d\n",
            cJSON_GetObjectItemCaseSensitive(tok, "last_user")->valueint,
            cJSON_GetObjectItemCaseSensitive(tok, "user")->valueint,
            cJSON_GetObjectItemCaseSensitive(tok, "system")->valueint,
            cJSON_GetObjectItemCaseSensitive(tok, "conversation")->valueint);
    fprintf(out, "last user message: script %s, language %s\n", str(root, "script"),
            str(root, "language"));
    {
        const cJSON *cx = cJSON_GetObjectItemCaseSensitive(root, "complexity");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(cx, "score");
        if (cJSON_IsNumber(sc))
            fprintf(out, "complexity score: %.3f (%s; weights %s)%s%s\n", sc->valuedouble,
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cx, "used_by_rules"))
                        ? "used by the rules"
                        : "no rule asked for it",
                    str(cx, "weights"), str(cx, "top_features")[0] ? "; raised by " : "",
                    str(cx, "top_features"));
    }
    rules = cJSON_GetObjectItemCaseSensitive(root, "rules");
    dec = cJSON_GetObjectItemCaseSensitive(root, "decision");
    fprintf(out, "rules (%d, first match wins):\n", cJSON_GetArraySize(rules));
    cJSON_ArrayForEach(rule, rules)
    {
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(rule, "why"), *w;
        bool matched = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rule, "matched"));
        bool chosen = strcmp(str(rule, "rule"), str(dec, "rule")) == 0;
        fprintf(out, "  %2d. %-28s %s\n", ++i, str(rule, "rule"),
                chosen ? "MATCH (chosen)" : matched ? "match (an earlier rule decided)" : "no match");
        cJSON_ArrayForEach(w, why) fprintf(out, "        %s\n", w->valuestring);
    }
    fprintf(out, "decision: rule %s -> tier %s:", str(dec, "rule"), str(dec, "tier"));
    chain = cJSON_GetObjectItemCaseSensitive(dec, "chain");
    i = 0;
    cJSON_ArrayForEach(m, chain)
        fprintf(out, "%s %s (%s)", i++ ? " ->" : "", str(m, "model"), str(m, "provider"));
    fprintf(out, "\n");
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(dec, "arm")))
        fprintf(out, "experiment: %s, arm %s (x-router-arm)\n", str(dec, "experiment"),
                str(dec, "arm"));
    cJSON_Delete(root);
}

int explain_file(const config_t *cfg, const char *path, const char *const *headers, bool json,
                 FILE *out, FILE *err)
{
    req_t *req = request_new(NULL, NULL, (config_t *)cfg);
    req_error_t e = {0};
    buf_t result;
    int rc = 1;
    cJSON *probe;

    buf_init(&result, (size_t)1 << 30);
    if (read_all(path, &req->body, err) < 0)
        goto out;
    /* the endpoint follows from the body: messages, prompt or input */
    probe = cJSON_ParseWithLength(buf_ptr(&req->body), buf_len(&req->body));
    req->ep = EP_CHAT;
    if (probe && !cJSON_GetObjectItemCaseSensitive(probe, "messages")) {
        if (cJSON_GetObjectItemCaseSensitive(probe, "prompt"))
            req->ep = EP_COMPLETIONS;
        else if (cJSON_GetObjectItemCaseSensitive(probe, "input"))
            req->ep = EP_EMBEDDINGS;
    }
    cJSON_Delete(probe);
    req->header = lookup;
    req->header_arg = (void *)headers;
    if (request_parse(req, &e, &result) < 0) {
        fprintf(err, "llmrouter: the request would be rejected with HTTP %u: %s\n", e.status,
                e.message);
        goto out;
    }
    if (json)
        fprintf(out, "%s\n", buf_cstr(&result));
    else
        render(buf_cstr(&result), out);
    rc = 0;
out:
    buf_free(&result);
    request_free(req);
    return rc;
}
