/* redact: provider keys out of provider text (see redact.h). */
#include "upstream/redact.h"

#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "upstream/anthropic.h"

static const char BEARER[] = "Authorization: Bearer ";
static const char XKEY[] = ANTHROPIC_HEADER_KEY ": ";

const char *redact_provider_key(const cfg_provider_t *p, size_t *len)
{
    for (const struct curl_slist *h = p->headers; h != NULL; h = h->next) {
        const char *v = NULL;
        size_t hn = p->auth_header ? strlen(p->auth_header) : 0;
        if (strncmp(h->data, BEARER, sizeof BEARER - 1) == 0)
            v = h->data + sizeof BEARER - 1;
        else if (strncmp(h->data, XKEY, sizeof XKEY - 1) == 0)
            v = h->data + sizeof XKEY - 1;
        else if (hn > 0 && strncasecmp(h->data, p->auth_header, hn) == 0 && h->data[hn] == ':') {
            /* a preset's header (api-key: KEY, or NAME: SCHEME KEY) */
            size_t sn = p->auth_scheme ? strlen(p->auth_scheme) : 0;
            v = h->data + hn + 1;
            v += *v == ' ';
            if (sn > 0 && strncmp(v, p->auth_scheme, sn) == 0 && v[sn] == ' ')
                v += sn + 1;
        }
        if (v != NULL && v[0] != '\0') {
            *len = strlen(v);
            return v;
        }
    }
    *len = 0;
    return NULL;
}

static size_t mask(char *buf, size_t len, const char *key, size_t klen)
{
    size_t n = 0;
    char *p = buf, *end = buf + len;
    if (key == NULL || klen < REDACT_MIN_KEY || len < klen)
        return 0;
    while (p < end) {
        char *hit = memmem(p, (size_t)(end - p), key, klen);
        if (hit == NULL)
            break;
        memset(hit, '*', klen);
        p = hit + klen;
        n++;
    }
    return n;
}

size_t redact_key_of(const cfg_provider_t *p, char *buf, size_t len)
{
    size_t klen, n;
    const char *key = redact_provider_key(p, &klen);
    n = mask(buf, len, key, klen);
    /* headers: values may be secrets too (${VAR}) */
    for (const struct curl_slist *h = p->extra_headers; h != NULL; h = h->next) {
        const char *v = strchr(h->data, ':');
        if (v == NULL)
            continue;
        v += 1 + (v[1] == ' ');
        n += mask(buf, len, v, strlen(v));
    }
    return n;
}

size_t redact_keys(const config_t *cfg, char *buf, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_providers; i++)
        n += redact_key_of(&cfg->providers[i], buf, len);
    return n;
}
