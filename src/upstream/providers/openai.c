/* providers/openai: OpenAI-compatible answers. */
#include "upstream/provider.h"

#include <locale.h>
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

static void usage_cost_of(const cfg_model_t *m, double prompt, double completion, double cached,
                          provider_result_t *out)
{
    out->prompt_tokens = util_count_i64(prompt);
    out->completion_tokens = util_count_i64(completion);
    out->cached_tokens = util_count_i64(cached);
    out->cost_usd = provider_cost(m, (double)out->prompt_tokens, (double)out->completion_tokens,
                                  (double)out->cached_tokens);
}

static void usage_cost(const cfg_model_t *m, const cJSON *usage, provider_result_t *out)
{
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    double prompt = num(usage, "prompt_tokens");
    double completion = num(usage, "completion_tokens");
    double cached = det ? num(det, "cached_tokens") : 0;
    if (cached == 0)
        cached = num(usage, "prompt_cache_hit_tokens"); /* DeepSeek */
    usage_cost_of(m, prompt, completion, cached, out);
}

/* ---- the usage object of a validated answer, read without a tree ----
 *
 * What cJSON 1.7.15 (cJSON_ParseWithLength on the object, then
 * cJSON_GetObjectItemCaseSensitive) gives usage_cost, from one pass over the
 * object's bytes: the first member of each name, keys compared decoded up to
 * their first NUL (strcmp on cJSON's copy), a number's value as cJSON's
 * strtod of it, anything else 0. The text is valid JSON (json_validate), so
 * only what cJSON refuses in valid JSON needs looking for: an escaped low
 * surrogate alone or a high one without its low half, more than
 * CJSON_NESTING_LIMIT (1000) levels. Either fails cJSON's whole parse: no
 * usage at all. tests/unit/upstream/test_provider.c checks this against the
 * installed cJSON on generated answers. */

#define USAGE_NESTING_LIMIT 1000

typedef struct uscan {
    const char *s;
    size_t n;
    bool check; /* look for what cJSON refuses (else only walk) */
    bool bad;   /* cJSON would not parse the object */
} uscan_t;

static size_t us_ws(const uscan_t *u, size_t i)
{
    while (i < u->n && (unsigned char)u->s[i] <= 32)
        i++;
    return i;
}

static unsigned us_hex4(const char *p)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* s[i] is the opening quote of a string; returns the index past its closing
 * quote. Sets bad on the surrogate escapes cJSON refuses
 * (utf16_literal_to_utf8). */
static size_t us_string(uscan_t *u, size_t i)
{
    const char *s = u->s;
    i++;
    while (i < u->n) {
        char c = s[i];
        if (c == '"')
            return i + 1;
        if (c != '\\') {
            i++;
            continue;
        }
        if (s[i + 1] != 'u') {
            i += 2;
            continue;
        }
        {
            unsigned cp = us_hex4(s + i + 2);
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                u->bad = true;
            } else if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 12 > u->n || s[i + 6] != '\\' || s[i + 7] != 'u') {
                    u->bad = true;
                } else {
                    unsigned lo = us_hex4(s + i + 8);
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        u->bad = true;
                    else
                        i += 6;
                }
            }
            i += 6;
        }
    }
    return i;
}

/* s[i] is the opening quote of a string; returns the index past its closing
 * quote (one memchr per quote instead of a look at every byte). */
static size_t us_string_end(const uscan_t *u, size_t i)
{
    size_t first = i + 1;
    i = first;
    for (;;) {
        const char *q = memchr(u->s + i, '"', u->n - i);
        size_t j, bs = 0;
        if (q == NULL)
            return u->n;
        j = (size_t)(q - u->s);
        while (j - bs > first && u->s[j - 1 - bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            return j + 1;
        i = j + 1;
    }
}

static bool us_numchar(char c)
{
    return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e' || c == 'E' || c == '.';
}

/* s[i] starts a number; returns the index past it and, when v is not NULL,
 * its value as cJSON reads it (parse_number: the number's bytes copied with
 * '.' as the locale's decimal point, then strtod; Debian's 1.7.15 copies
 * numbers of any length since its CVE-2023-26819 patch). */
static size_t us_number(uscan_t *u, size_t i, double *v)
{
    size_t e = i;
    bool plain = true;
    while (e < u->n && us_numchar(u->s[e])) {
        plain = plain && u->s[e] >= '0' && u->s[e] <= '9';
        e++;
    }
    if (v == NULL)
        return e;
    if (plain && e - i <= 15) {
        /* below 2^53: the exact integer, which strtod rounds to itself */
        double d = 0;
        for (size_t k = i; k < e; k++)
            d = d * 10 + (u->s[k] - '0');
        *v = d;
    } else {
        char small[64], *tmp = e - i < sizeof small ? small : xmalloc(e - i + 1);
        char dp = localeconv()->decimal_point[0];
        memcpy(tmp, u->s + i, e - i);
        tmp[e - i] = '\0';
        for (size_t k = 0; k < e - i; k++)
            if (tmp[k] == '.')
                tmp[k] = dp;
        *v = strtod(tmp, NULL);
        if (tmp != small)
            free(tmp);
    }
    return e;
}

/* s[i] starts a value at nesting level `level` (containers above it);
 * returns the index past it. */
static size_t us_skip(uscan_t *u, size_t i, int level)
{
    int depth = 0;
    do {
        char c = u->s[i];
        if (c == '"') {
            i = u->check ? us_string(u, i) : us_string_end(u, i);
        } else if (c == '{' || c == '[') {
            if (level + depth >= USAGE_NESTING_LIMIT)
                u->bad = true;
            depth++;
            i++;
        } else if (c == '}' || c == ']') {
            depth--;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            i = us_number(u, i, NULL);
        } else if (c >= 'a' && c <= 'z') {
            while (i < u->n && u->s[i] >= 'a' && u->s[i] <= 'z')
                i++; /* true, false, null */
        } else {
            i++; /* ',' and ':' inside a container */
        }
        if (depth > 0)
            i = us_ws(u, i);
    } while (depth > 0 && i < u->n);
    return i;
}

/* The key whose quoted text is s[a..b) decoded as cJSON stores it, up to its
 * first NUL, into k (at most cap bytes; longer returns cap + 1, which
 * matches no name here). Non-ASCII code points become 0x80: they match no
 * name either. */
static size_t us_key(const char *s, size_t a, size_t b, char *k, size_t cap)
{
    size_t n = 0;
    for (size_t i = a + 1; i + 1 < b;) {
        char c = s[i];
        if (n == cap)
            return cap + 1;
        if (c != '\\') {
            k[n++] = c;
            i++;
            continue;
        }
        c = s[i + 1];
        if (c == 'u') {
            unsigned cp = us_hex4(s + i + 2);
            if (cp == 0)
                return n; /* cJSON's copy ends here for strcmp */
            k[n++] = cp < 0x80 ? (char)cp : (char)0x80;
            i += (cp >= 0xD800 && cp <= 0xDBFF) ? 12 : 6;
            continue;
        }
        k[n++] = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r'
               : c == 't' ? '\t' : c;
        i += 2;
    }
    return n;
}

enum { U_PROMPT, U_COMPLETION, U_DETAILS, U_HIT, U_CACHED, U_N };
static const char *const us_names[U_N] = {"prompt_tokens", "completion_tokens",
                                          "prompt_tokens_details", "prompt_cache_hit_tokens",
                                          "cached_tokens"};
static const size_t us_lens[U_N] = {13, 17, 21, 23, 13};

typedef struct usage_vals {
    double v[U_N];
    bool seen[U_N];
} usage_vals_t;

/* s[i] is the '{' of an object at nesting level `level`; reads the first
 * member named names[first..last] of each into uv (numbers; the details
 * object's cached_tokens). Returns the index past the object. */
static size_t us_object(uscan_t *u, size_t i, int level, int first, int last, usage_vals_t *uv)
{
    const char *s = u->s;
    if (level >= USAGE_NESTING_LIMIT)
        u->bad = true;
    i = us_ws(u, i + 1);
    while (i < u->n && s[i] != '}') {
        size_t ka = i, kb;
        char key[32];
        size_t klen;
        int which = -1;
        if (s[i] == ',') {
            i = us_ws(u, i + 1);
            continue;
        }
        kb = us_string(u, i);
        klen = memchr(s + ka + 1, '\\', kb - ka - 2) == NULL
                   ? (kb - ka - 2 <= sizeof key ? (memcpy(key, s + ka + 1, kb - ka - 2), kb - ka - 2)
                                                : sizeof key + 1)
                   : us_key(s, ka, kb, key, sizeof key);
        for (int w = first; w <= last; w++)
            if (us_lens[w] == klen && memcmp(us_names[w], key, klen) == 0)
                which = w;
        i = us_ws(u, us_ws(u, kb) + 1); /* past ':' */
        if (which >= 0 && !uv->seen[which]) {
            uv->seen[which] = true;
            if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
                i = us_ws(u, us_number(u, i, &uv->v[which]));
                continue;
            }
            if (which == U_DETAILS && s[i] == '{') {
                i = us_ws(u, us_object(u, i, level + 1, U_CACHED, U_CACHED, uv));
                continue;
            }
        }
        i = us_skip(u, i, level + 1);
        i = us_ws(u, i);
    }
    return i + 1;
}

/* How many top-level members of the validated object s[0..n) are named
 * "error" and "usage", and the first one's value of each: what two calls of
 * json_find_top_key give (raw key bytes compared, no unescaping), in one
 * pass; the first usage member, when an object, is read on the way
 * (us_object: what cJSON would have given usage_cost). */
typedef struct top_keys {
    json_span_t err, usage;
    int n_err, n_usage;
    usage_vals_t uv;
    bool usage_bad; /* cJSON would not have parsed the first usage object */
} top_keys_t;

static void top_keys(const char *s, size_t n, top_keys_t *t)
{
    uscan_t u = {.s = s, .n = n};
    size_t i = us_ws(&u, us_ws(&u, 0) + 1); /* past '{' */
    memset(t, 0, sizeof *t);
    while (i < n && s[i] != '}') {
        size_t ka = i, kb, vs, ve;
        if (s[i] == ',') {
            i = us_ws(&u, i + 1);
            continue;
        }
        kb = us_string_end(&u, i);
        vs = us_ws(&u, us_ws(&u, kb) + 1); /* past ':' */
        if (kb - ka == 7 && memcmp(s + ka + 1, "usage", 5) == 0 && t->n_usage++ == 0) {
            if (s[vs] == '{') {
                uscan_t uu = {.s = s, .n = n, .check = true};
                ve = us_object(&uu, vs, 0, U_PROMPT, U_HIT, &t->uv);
                t->usage_bad = uu.bad;
            } else {
                ve = us_skip(&u, vs, 1);
            }
            t->usage = (json_span_t){.off = vs, .len = ve - vs};
        } else {
            ve = us_skip(&u, vs, 1);
            if (kb - ka == 7 && memcmp(s + ka + 1, "error", 5) == 0 && t->n_err++ == 0)
                t->err = (json_span_t){.off = vs, .len = ve - vs};
        }
        i = us_ws(&u, ve);
    }
}

/* top_keys from the top-level members json_validate_top recorded (all of
 * them: n <= the array's size), without scanning the text again. */
static void top_keys_of(const char *s, size_t n, const json_member_t *mem, size_t count,
                        top_keys_t *t)
{
    memset(t, 0, sizeof *t);
    for (size_t k = 0; k < count; k++) {
        const json_member_t *e = &mem[k];
        if (e->key.len != 7)
            continue;
        if (memcmp(s + e->key.off + 1, "usage", 5) == 0 && t->n_usage++ == 0) {
            t->usage = e->value;
            if (s[e->value.off] == '{') {
                uscan_t uu = {.s = s, .n = n, .check = true};
                us_object(&uu, e->value.off, 0, U_PROMPT, U_HIT, &t->uv);
                t->usage_bad = uu.bad;
            }
        } else if (memcmp(s + e->key.off + 1, "error", 5) == 0 && t->n_err++ == 0) {
            t->err = e->value;
        }
    }
}

/* usage_cost's result from the values of a usage object (top_keys). */
static void usage_cost_vals(const cfg_model_t *m, const usage_vals_t *uv, provider_result_t *out)
{
    /* num(): a number above 0, else 0 */
    double prompt = uv->v[U_PROMPT] > 0 ? uv->v[U_PROMPT] : 0;
    double completion = uv->v[U_COMPLETION] > 0 ? uv->v[U_COMPLETION] : 0;
    double cached = uv->v[U_CACHED] > 0 ? uv->v[U_CACHED] : 0;
    if (cached == 0)
        cached = uv->v[U_HIT] > 0 ? uv->v[U_HIT] : 0; /* DeepSeek */
    usage_cost_of(m, prompt, completion, cached, out);
}

/* Top-level members of an answer check_fast takes from the validator's
 * pass (a chat completion has about 8). */
#define CHECK_MEMBERS 32

/* The common case (nothing to rewrite, nothing to cache): validate without
 * building a tree, noting the top-level members on the way, and parse only
 * the usage object. */
static int check_fast(const config_t *cfg, int m, const char *body, size_t len,
                      provider_result_t *out, char *why, size_t whylen)
{
    int is_object = 0;
    top_keys_t tk;
    json_member_t mem[CHECK_MEMBERS];
    size_t count;
    if (!json_validate_top(body, len, &is_object, mem, CHECK_MEMBERS, &count) || !is_object) {
        snprintf(why, whylen, "invalid JSON in the answer");
        return -1;
    }
    if (count <= CHECK_MEMBERS)
        top_keys_of(body, len, mem, count, &tk);
    else
        top_keys(body, len, &tk); /* more members than recorded: scan */
    if (tk.n_err > 0 && !(tk.err.len == 4 && memcmp(body + tk.err.off, "null", 4) == 0)) {
        snprintf(why, whylen, "error object in a 2xx answer");
        return -1;
    }
    if (tk.n_usage == 1 && body[tk.usage.off] == '{' && !tk.usage_bad)
        usage_cost_vals(&cfg->models[m], &tk.uv, out);
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
