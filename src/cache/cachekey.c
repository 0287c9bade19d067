/* cachekey: canonical JSON + SHA-256 (OpenSSL libcrypto). */
#include "cache/cachekey.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "core/util.h"

static const char *const SKIP_FIELDS[] = {"model", "stream", "stream_options", "user", NULL};

static bool skipped(const char *name, const char *const *skip)
{
    for (; skip && *skip; skip++)
        if (strcmp(name, *skip) == 0)
            return true;
    return false;
}


/* Stable insertion sort by member name: objects are small, and duplicate
 * names (which JSON allows) must keep their input order. */
static void sort_members(const cJSON **m, size_t k)
{
    for (size_t i = 1; i < k; i++) {
        const cJSON *x = m[i];
        size_t j = i;
        while (j > 0 && strcmp(m[j - 1]->string, x->string) > 0) {
            m[j] = m[j - 1];
            j--;
        }
        m[j] = x;
    }
}

static int canon(const cJSON *v, const char *const *skip, buf_t *out, int depth)
{
    const cJSON *c;
    if (depth > 1000)
        return -1;
    if (cJSON_IsObject(v)) {
        size_t n = 0, k = 0;
        const cJSON **m;
        int rc = 0;
        for (c = v->child; c; c = c->next)
            n++;
        m = xmalloc((n ? n : 1) * sizeof *m);
        for (c = v->child; c; c = c->next)
            if (c->string && !(depth == 0 && skipped(c->string, skip)))
                m[k++] = c;
        sort_members(m, k);
        rc |= buf_puts(out, "{");
        for (size_t i = 0; i < k && rc == 0; i++) {
            if (i)
                rc |= buf_puts(out, ",");
            rc |= json_append_string(out, m[i]->string, strlen(m[i]->string));
            rc |= buf_puts(out, ":");
            rc |= canon(m[i], NULL, out, depth + 1);
        }
        free(m);
        return rc | buf_puts(out, "}");
    }
    if (cJSON_IsArray(v)) {
        int rc = buf_puts(out, "[");
        bool first = true;
        for (c = v->child; c && rc == 0; c = c->next) {
            if (!first)
                rc |= buf_puts(out, ",");
            first = false;
            rc |= canon(c, NULL, out, depth + 1);
        }
        return rc | buf_puts(out, "]");
    }
    if (cJSON_IsString(v))
        return json_append_string(out, v->valuestring, strlen(v->valuestring));
    if (cJSON_IsNumber(v)) {
        /* cJSON keeps a double: 1e400 and 1e401 both read as infinity, and
         * two integers above 2^53 can read as the same double, while a
         * provider may tell them apart (a seed is an int64). Such a body
         * gets no key — not cached — rather than another body's answer. */
        if (!isfinite(v->valuedouble) || fabs(v->valuedouble) >= 9007199254740992.0)
            return -1;
        return json_append_number(out, v->valuedouble);
    }
    if (cJSON_IsTrue(v))
        return buf_puts(out, "true");
    if (cJSON_IsFalse(v))
        return buf_puts(out, "false");
    return buf_puts(out, "null");
}

int cachekey_canonical(const cJSON *v, const char *const *skip, buf_t *out)
{
    return canon(v, skip, out, 0);
}

int cachekey_compute(const cJSON *root, const char *endpoint, const char *route, const char *scope,
                     uint8_t key[CACHEKEY_LEN])
{
    buf_t b;
    unsigned len = 0;
    int rc = -1;
    buf_init(&b, (size_t)1 << 30);
    /* length-prefixed header parts: no separator can be forged */
    for (int i = 0; i < 3; i++) {
        const char *part = i == 0 ? endpoint : i == 1 ? route : scope;
        char pre[24];
        snprintf(pre, sizeof pre, "%zu:", strlen(part));
        buf_puts(&b, pre);
        buf_puts(&b, part);
    }
    if (cachekey_canonical(root, SKIP_FIELDS, &b) == 0 &&
        EVP_Digest(buf_ptr(&b), buf_len(&b), key, &len, EVP_sha256(), NULL) == 1 &&
        len == CACHEKEY_LEN)
        rc = 0;
    buf_free(&b);
    return rc;
}

void cachekey_hex(const uint8_t key[CACHEKEY_LEN], char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < CACHEKEY_LEN; i++) {
        out[2 * i] = hex[key[i] >> 4];
        out[2 * i + 1] = hex[key[i] & 15];
    }
    out[2 * CACHEKEY_LEN] = '\0';
}
