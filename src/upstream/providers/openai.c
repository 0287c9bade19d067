/* providers/openai: OpenAI-compatible answers. */
#include "upstream/provider.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "core/json.h"

double provider_cost(const cfg_model_t *m, double prompt, double completion, double cached)
{
    if (cached > prompt)
        cached = prompt;
    return ((prompt - cached) * m->input_per_mtok + cached * m->cached_input_per_mtok +
            completion * m->output_per_mtok) /
           1e6;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : 0;
}

static char *b64(const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    size_t i;
    if (out == NULL)
        return NULL;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* Replaces float-array embeddings with base64 little-endian float32.
 * Returns true when something was converted. */
static bool embeddings_to_base64(cJSON *root)
{
    cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data"), *item;
    bool changed = false;
    cJSON_ArrayForEach(item, data)
    {
        cJSON *emb = cJSON_GetObjectItemCaseSensitive(item, "embedding"), *x;
        size_t n = 0, i = 0;
        unsigned char *raw;
        char *enc;
        if (!cJSON_IsArray(emb))
            continue;
        n = (size_t)cJSON_GetArraySize(emb);
        raw = malloc(n * 4 + 1);
        if (raw == NULL)
            continue;
        cJSON_ArrayForEach(x, emb)
        {
            float f = (float)(cJSON_IsNumber(x) ? x->valuedouble : 0.0);
            uint32_t u;
            memcpy(&u, &f, 4);
            raw[i * 4] = (unsigned char)u;
            raw[i * 4 + 1] = (unsigned char)(u >> 8);
            raw[i * 4 + 2] = (unsigned char)(u >> 16);
            raw[i * 4 + 3] = (unsigned char)(u >> 24);
            i++;
        }
        enc = b64(raw, n * 4);
        free(raw);
        if (enc == NULL)
            continue;
        cJSON_ReplaceItemInObjectCaseSensitive(item, "embedding", cJSON_CreateString(enc));
        free(enc);
        changed = true;
    }
    return changed;
}

/* Every choice ended with stop or length; embeddings: a data list. */
static bool is_complete(const cJSON *root)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices"), *c;
    if (!cJSON_IsArray(choices))
        return cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "data"));
    if (cJSON_GetArraySize(choices) == 0)
        return false;
    cJSON_ArrayForEach(c, choices)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "finish_reason");
        if (!cJSON_IsString(f) || (strcmp(f->valuestring, "stop") != 0 &&
                                   strcmp(f->valuestring, "length") != 0))
            return false;
    }
    return true;
}

static void usage_cost(const cfg_model_t *m, const cJSON *usage, provider_result_t *out)
{
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    double prompt = num(usage, "prompt_tokens");
    double completion = num(usage, "completion_tokens");
    double cached = det ? num(det, "cached_tokens") : 0;
    if (cached == 0)
        cached = num(usage, "prompt_cache_hit_tokens"); /* DeepSeek */
    out->prompt_tokens = util_count_i64(prompt);
    out->completion_tokens = util_count_i64(completion);
    out->cached_tokens = util_count_i64(cached);
    out->cost_usd = provider_cost(m, (double)out->prompt_tokens, (double)out->completion_tokens,
                                  (double)out->cached_tokens);
}

/* The common case (nothing to rewrite, nothing to cache): validate without
 * building a tree, and parse only the usage object. */
static int check_fast(const config_t *cfg, int m, const char *body, size_t len,
                      provider_result_t *out, char *why, size_t whylen)
{
    int is_object = 0;
    json_span_t sp[2];
    if (!json_validate(body, len, &is_object) || !is_object) {
        snprintf(why, whylen, "invalid JSON in the answer");
        return -1;
    }
    if (json_find_top_key(body, len, "error", sp, 2) > 0 &&
        !(sp[0].len == 4 && memcmp(body + sp[0].off, "null", 4) == 0)) {
        snprintf(why, whylen, "error object in a 2xx answer");
        return -1;
    }
    if (json_find_top_key(body, len, "usage", sp, 2) == 1 && body[sp[0].off] == '{') {
        cJSON *usage = cJSON_ParseWithLength(body + sp[0].off, sp[0].len);
        if (usage != NULL)
            usage_cost(&cfg->models[m], usage, out);
        cJSON_Delete(usage);
    }
    return 0;
}

int provider_check_answer(const config_t *cfg, int m, const char *body, size_t len,
                          bool want_base64, bool want_compact, provider_result_t *out, char *why,
                          size_t whylen)
{
    cJSON *root, *usage, *err;
    memset(out, 0, sizeof *out);
    out->cost_usd = -1;
    out->prompt_tokens = out->completion_tokens = out->cached_tokens = -1;
    if (!want_base64 && !want_compact)
        return check_fast(cfg, m, body, len, out, why, whylen);
    root = cJSON_ParseWithLength(body, len);
    if (root == NULL || !cJSON_IsObject(root)) {
        snprintf(why, whylen, "invalid JSON in the answer");
        cJSON_Delete(root);
        return -1;
    }
    err = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (err != NULL && !cJSON_IsNull(err)) {
        snprintf(why, whylen, "error object in a 2xx answer");
        cJSON_Delete(root);
        return -1;
    }
    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage))
        usage_cost(&cfg->models[m], usage, out);
    if (want_base64 && embeddings_to_base64(root)) {
        out->new_body = cJSON_PrintUnformatted(root);
        out->new_len = out->new_body ? strlen(out->new_body) : 0;
    }
    out->complete = is_complete(root);
    if (want_compact && out->complete) {
        out->compact = cJSON_PrintUnformatted(root);
        out->compact_len = out->compact ? strlen(out->compact) : 0;
    }
    cJSON_Delete(root);
    return 0;
}
