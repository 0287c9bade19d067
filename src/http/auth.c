/* auth: proxy keys (see include/auth.h). Only digests are stored; a secret
 * read from the environment is hashed at load and its copy wiped. */
#include "http/auth.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/apierror.h"
#include "core/util.h"

struct auth {
    auth_key_t *keys;
    size_t n;
};

#define AUTH_MAX_TOKEN 512 /* longer Authorization values never match */

static int sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return -1;
    return 0;
}

bool auth_ct_equal(const void *x, const void *y, size_t n)
{
    const volatile uint8_t *a = x, *b = y;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool parse_hex32(const char *s, uint8_t out[32])
{
    if (strlen(s) != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static void parse_key(ywalk_t *c, auth_key_t *k, yaml_node_t *kn, yaml_node_t *map)
{
    const char *f;
    yaml_node_t *fk, *v;
    bool have_env = false, have_hash = false;
    char what[160];
    snprintf(what, sizeof what, "keys.%s", k->name);
    if (!yw_expect(c, map, YAML_MAPPING_NODE, what))
        return;
    YW_MAP_FOREACH(c, map, f, fk, v)
    {
        uint32_t u;
        snprintf(what, sizeof what, "keys.%s.%s", k->name, f);
        if (strcmp(f, "key_env") == 0) {
            char *name = yw_str(c, v, what);
            const char *secret;
            if (name == NULL)
                continue;
            have_env = true;
            secret = getenv(name);
            if (secret == NULL || secret[0] == '\0') {
                yw_append_warning(c,
                                  "%s:%zu:%zu: warning: key \"%s\": environment variable %s is "
                                  "not set; this key is refused: set %s in the service's "
                                  "environment (e.g. /etc/llmrouter/llmrouter.env) and restart "
                                  "llmrouter (a reload keeps the environment the process "
                                  "started with)\n",
                                  c->file, v->start_mark.line + 1, v->start_mark.column + 1,
                                  k->name, name, name);
            } else if (sha256(secret, strlen(secret), k->sha256) == 0) {
                k->usable = true;
            } else {
                yw_error(c, v, "%s: SHA-256 failed", what);
            }
            free(name);
        } else if (strcmp(f, "key_sha256") == 0) {
            char *s = yw_str(c, v, what);
            if (s == NULL)
                continue;
            have_hash = true;
            if (parse_hex32(s, k->sha256))
                k->usable = true;
            else
                yw_error(c, v, "%s: expected 64 hexadecimal digits (sha256sum of the key)", what);
            free(s);
        } else if (strcmp(f, "daily_usd") == 0) {
            yw_price(c, v, what, &k->daily_usd);
        } else if (strcmp(f, "monthly_usd") == 0) {
            yw_price(c, v, what, &k->monthly_usd);
        } else if (strcmp(f, "rpm") == 0) {
            if (yw_u32(c, v, what, 0, 100000000, &u))
                k->rpm = u;
        } else if (strcmp(f, "tpm") == 0) {
            if (yw_u32(c, v, what, 0, 4000000000u, &u))
                k->tpm = u;
        } else if (strcmp(f, "admin") == 0) {
            yw_bool(c, v, what, &k->admin);
        } else {
            char where[160];
            snprintf(where, sizeof where, "keys.%s", k->name);
            yw_unknown_key(c, fk, where,
                           "key_env, key_sha256, daily_usd, monthly_usd, rpm, tpm, admin");
        }
    }
    if (have_env == have_hash)
        yw_error(c, kn, "keys.%s: give exactly one of key_env or key_sha256", k->name);
}

auth_t *auth_parse(ywalk_t *c, yaml_node_t *map)
{
    const char *name;
    yaml_node_t *kn, *v;
    int nerr0 = c->nerr;
    auth_t *a;
    size_t cap;
    if (yw_is_null(map))
        return xcalloc(1, sizeof(auth_t));
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "keys"))
        return NULL;
    a = xcalloc(1, sizeof *a);
    cap = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    a->keys = xcalloc(cap ? cap : 1, sizeof *a->keys);
    YW_MAP_FOREACH(c, map, name, kn, v)
    {
        auth_key_t *k = &a->keys[a->n++];
        k->name = xstrdup(name);
        parse_key(c, k, kn, v);
        for (size_t i = 0; k->usable && i + 1 < a->n; i++) {
            if (a->keys[i].usable && memcmp(a->keys[i].sha256, k->sha256, 32) == 0)
                yw_error(c, kn, "keys.%s: same secret as key \"%s\"", name, a->keys[i].name);
        }
    }
    if (c->nerr != nerr0) {
        auth_free(a);
        return NULL;
    }
    return a;
}

void auth_free(auth_t *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->keys[i].name);
    free(a->keys);
    free(a);
}

bool auth_enabled(const auth_t *a)
{
    return a != NULL && a->n > 0;
}

size_t auth_count(const auth_t *a)
{
    return a ? a->n : 0;
}

const auth_key_t *auth_key_at(const auth_t *a, size_t i)
{
    return a && i < a->n ? &a->keys[i] : NULL;
}

/* The credential after scheme ("Bearer", "Basic") in an Authorization
 * value, blanks trimmed: sets *tok and *len, false when the scheme differs or
 * the credential is empty or longer than max. */
static bool credential(const char *authorization, const char *scheme, size_t max,
                       const char **tok, size_t *len)
{
    size_t sl = strlen(scheme);
    const char *p = authorization, *end;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, scheme, sl) != 0 || (p[sl] != ' ' && p[sl] != '\t'))
        return false;
    p += sl;
    while (*p == ' ' || *p == '\t')
        p++;
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == p || (size_t)(end - p) > max)
        return false;
    *tok = p;
    *len = (size_t)(end - p);
    return true;
}

const auth_key_t *auth_check(const auth_t *a, const char *authorization)
{
    const char *p;
    size_t n;
    uint8_t d[32];
    const auth_key_t *found = NULL;
    if (a == NULL || authorization == NULL)
        return NULL;
    if (!credential(authorization, "Bearer", AUTH_MAX_TOKEN, &p, &n))
        return NULL;
    if (sha256(p, n, d) != 0)
        return NULL;
    /* every key is compared; the branch-free select keeps the first match */
    for (size_t i = 0; i < a->n; i++) {
        bool eq = auth_ct_equal(d, a->keys[i].sha256, 32) & a->keys[i].usable;
        uintptr_t take = (uintptr_t)0 - (uintptr_t)(eq & (found == NULL));
        found = (const auth_key_t *)(((uintptr_t)&a->keys[i] & take) |
                                     ((uintptr_t)found & ~take));
    }
    return found;
}

auth_secret_t *auth_secret_parse(ywalk_t *c, yaml_node_t *v, const char *what, bool from_env)
{
    auth_secret_t *s;
    char *str = yw_str(c, v, what);
    if (str == NULL)
        return NULL;
    s = xcalloc(1, sizeof *s);
    s->line = v->start_mark.line + 1;
    s->col = v->start_mark.column + 1;
    if (from_env) {
        const char *secret = getenv(str);
        if (secret == NULL || secret[0] == '\0') {
            yw_append_warning(c,
                              "%s:%zu:%zu: warning: %s: environment variable %s is not set; "
                              "nothing matches it: set %s in the service's environment (e.g. "
                              "/etc/llmrouter/llmrouter.env) and restart llmrouter\n",
                              c->file, v->start_mark.line + 1, v->start_mark.column + 1, what,
                              str, str);
        } else if (sha256(secret, strlen(secret), s->sha256) == 0) {
            s->usable = true;
        } else {
            yw_error(c, v, "%s: SHA-256 failed", what);
        }
    } else if (parse_hex32(str, s->sha256)) {
        s->usable = true;
    } else {
        yw_error(c, v, "%s: expected 64 hexadecimal digits (sha256sum of the secret)", what);
        free(s);
        s = NULL;
    }
    free(str);
    return s;
}

bool auth_admin_gated(const auth_t *keys, const auth_secret_t *admin,
                      const auth_secret_t *metrics)
{
    return auth_enabled(keys) || admin != NULL || metrics != NULL;
}

/* Basic credentials are base64("name:secret"); the secret is what counts.
 * Decodes into out (three quarters of b64len, plus 3 bytes) and points *sec at the
 * secret. */
static bool basic_secret(const char *b64, size_t b64len, uint8_t *out, const char **sec,
                         size_t *len)
{
    int n;
    size_t pad = 0;
    const uint8_t *colon;
    if (b64len % 4 != 0)
        return false;
    n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)b64len);
    if (n < 0)
        return false;
    while (pad < 2 && pad < b64len && b64[b64len - 1 - pad] == '=')
        pad++;
    if ((size_t)n < pad)
        return false;
    n -= (int)pad;
    colon = memchr(out, ':', (size_t)n);
    if (colon == NULL)
        return false;
    *sec = (const char *)colon + 1;
    *len = (size_t)n - (size_t)(colon + 1 - out);
    return *len > 0;
}

bool auth_admin_check(const auth_t *keys, const auth_secret_t *admin,
                      const auth_secret_t *metrics, bool metrics_endpoint,
                      const char *authorization)
{
    uint8_t d[32], decoded[(AUTH_MAX_TOKEN * 2) / 4 * 3 + 3];
    const char *tok;
    size_t n;
    bool ok = false, hashed = false;
    if (authorization == NULL)
        return false;
    if (credential(authorization, "Bearer", AUTH_MAX_TOKEN, &tok, &n)) {
        hashed = sha256(tok, n, d) == 0;
    } else if (credential(authorization, "Basic", AUTH_MAX_TOKEN * 2, &tok, &n)) {
        const char *sec;
        size_t sl;
        if (basic_secret(tok, n, decoded, &sec, &sl) && sl <= AUTH_MAX_TOKEN)
            hashed = sha256(sec, sl, d) == 0;
        OPENSSL_cleanse(decoded, sizeof decoded);
    }
    if (!hashed)
        return false;
    /* every candidate is compared; no early exit */
    if (admin != NULL)
        ok |= auth_ct_equal(d, admin->sha256, 32) & admin->usable;
    if (metrics != NULL && metrics_endpoint)
        ok |= auth_ct_equal(d, metrics->sha256, 32) & metrics->usable;
    for (size_t i = 0; keys != NULL && i < keys->n; i++)
        ok |= auth_ct_equal(d, keys->keys[i].sha256, 32) & keys->keys[i].usable &
              keys->keys[i].admin;
    return ok;
}

char *auth_admin_error_body(bool missing, bool metrics_endpoint, size_t *len)
{
    char msg[400];
    snprintf(msg, sizeof msg,
             "%s This endpoint needs the admin key (observability.admin_key_env, or a proxy key "
             "with admin: true)%s, in the Authorization header as \"Bearer KEY\".",
             missing ? "You didn't provide a key." : "Incorrect key provided.",
             metrics_endpoint ? " or the metrics token (observability.metrics_token_env)" : "");
    return apierror_body(msg, "invalid_request_error", NULL, "invalid_api_key", NULL, len);
}

bool auth_listen_is_loopback(const char *host)
{
    char buf[64];
    size_t n;
    struct in_addr a4;
    struct in6_addr a6;
    if (host == NULL)
        return false;
    n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, host, n);
    buf[n] = '\0';
    if (strcasecmp(buf, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, buf, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, buf, &a6) == 1) {
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        return memcmp(a6.s6_addr, v4mapped, 12) == 0 && a6.s6_addr[12] == 127;
    }
    return false;
}

char *auth_error_body(bool missing, size_t *len)
{
    const char *msg = missing ? "You didn't provide an API key. Provide it in the Authorization "
                                "header as \"Bearer YOUR_KEY\"."
                              : "Incorrect API key provided.";
    return apierror_body(msg, "invalid_request_error", NULL, "invalid_api_key", NULL, len);
}
