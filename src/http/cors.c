/* cors: origin matching and the preflight's allowed headers. Origins are
 * compared as browsers send them (RFC 6454 serialisation: scheme://host[:port],
 * no path); the matcher accepts only such values, so whatever it allows is
 * safe to echo in a response header. */
#include "http/cors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_host_char(char ch)
{
    return is_alpha(ch) || is_digit(ch) || ch == '-' || ch == '.';
}

/* RFC 7230 tchar: what a header name is made of. */
static bool is_tchar(char ch)
{
    return is_alpha(ch) || is_digit(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Length of "scheme://" at s, or 0. */
static size_t scheme_len(const char *s)
{
    size_t i = 0;
    if (!is_alpha(s[0]))
        return 0;
    while (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    return strncmp(s + i, "://", 3) == 0 ? i + 3 : 0;
}

/* Whether s is "host[:port]" with a DNS name, an IPv4 address or a
 * bracketed IPv6 address, and nothing else. */
static bool valid_authority(const char *s)
{
    size_t i = 0;
    if (s[0] == '[') {
        for (i = 1; s[i] != ']'; i++)
            if (!(is_digit(s[i]) || (lower(s[i]) >= 'a' && lower(s[i]) <= 'f') || s[i] == ':' ||
                  s[i] == '.'))
                return false;
        if (i == 1)
            return false;
        i++;
    } else {
        while (is_host_char(s[i]))
            i++;
        if (i == 0 || s[0] == '.' || s[i - 1] == '.')
            return false;
    }
    if (s[i] == ':') {
        size_t d = 0;
        for (i++; is_digit(s[i]); i++)
            d++;
        if (d == 0 || d > 5)
            return false;
    }
    return s[i] == '\0';
}

int cors_check_origin_pattern(const char *s, char *why, size_t whylen)
{
    size_t n = scheme_len(s);
    const char *auth = s + n;
    if (strlen(s) > CORS_MAX_ORIGIN) {
        snprintf(why, whylen, "longer than %d characters", CORS_MAX_ORIGIN);
        return -1;
    }
    if (n == 0) {
        snprintf(why, whylen, "expected scheme://host[:port], e.g. \"https://app.example.com\"");
        return -1;
    }
    if (strncmp(auth, "*.", 2) == 0)
        auth += 2;
    if (strchr(auth, '/') != NULL) {
        snprintf(why, whylen, "an origin has no path, not even a trailing \"/\"");
        return -1;
    }
    if (!valid_authority(auth)) {
        snprintf(why, whylen, "expected scheme://host[:port] or scheme://*.domain[:port]");
        return -1;
    }
    return 0;
}

int cors_check_header_pattern(const char *s, char *why, size_t whylen)
{
    size_t n = strlen(s);
    size_t end = n > 0 && s[n - 1] == '*' ? n - 1 : n;
    if (n == 0 || n > 128) {
        snprintf(why, whylen, "a header name must be 1 to 128 characters");
        return -1;
    }
    for (size_t i = 0; i < end; i++) {
        if (!is_tchar(s[i]) || s[i] == '*') {
            snprintf(why, whylen, "not a header name (a trailing '*' matches any suffix)");
            return -1;
        }
    }
    return 0;
}

/* origin against one configured entry (both already known to be origins,
 * except that origin is client-supplied and checked as we go). */
static bool origin_matches(const char *pattern, const char *origin)
{
    size_t sn = scheme_len(pattern);
    const char *suffix;
    size_t olen, slen;
    if (strncmp(pattern + sn, "*.", 2) != 0)
        return strcasecmp(pattern, origin) == 0;
    /* A "*." host: same scheme, then at least one label, then
     * ".domain" exactly; the labels are host characters only. */
    if (strncasecmp(pattern, origin, sn) != 0)
        return false;
    suffix = pattern + sn + 1; /* ".domain[:port]" */
    slen = strlen(suffix);
    olen = strlen(origin + sn);
    if (olen <= slen || strcasecmp(origin + sn + olen - slen, suffix) != 0)
        return false;
    for (size_t i = 0; i < olen - slen; i++)
        if (!is_host_char(origin[sn + i]))
            return false;
    return origin[sn] != '.';
}

bool cors_origin_allowed(const cfg_cors_t *c, const char *origin)
{
    size_t n;
    if (c == NULL || !c->enabled || origin == NULL)
        return false;
    n = strlen(origin);
    if (n == 0 || n > CORS_MAX_ORIGIN)
        return false;
    /* Even for "*", echo only values shaped like an origin. */
    if (scheme_len(origin) == 0 || !valid_authority(origin + scheme_len(origin)))
        return false;
    if (c->any_origin)
        return true;
    for (size_t i = 0; i < c->n_origins; i++)
        if (origin_matches(c->origins[i], origin))
            return true;
    return false;
}

static bool header_allowed(const cfg_cors_t *c, const char *name, size_t len)
{
    if (c->allow_headers == NULL)
        return true;
    for (size_t i = 0; i < c->n_allow_headers; i++) {
        const char *p = c->allow_headers[i];
        size_t pl = strlen(p);
        if (pl > 0 && p[pl - 1] == '*') {
            if (len >= pl - 1 && strncasecmp(p, name, pl - 1) == 0)
                return true;
        } else if (pl == len && strncasecmp(p, name, len) == 0) {
            return true;
        }
    }
    return false;
}

char *cors_allow_headers(const cfg_cors_t *c, const char *requested, size_t *len)
{
    size_t n = requested ? strlen(requested) : 0;
    size_t o = 0, i = 0;
    char *out;
    if (n > CORS_MAX_REQUEST_HEADERS)
        return NULL;
    out = xmalloc(2 * n + 1); /* ", " may replace a bare "," */
    while (i < n) {
        size_t start, end;
        while (i < n && (requested[i] == ' ' || requested[i] == '\t'))
            i++;
        start = i;
        while (i < n && is_tchar(requested[i]))
            i++;
        end = i;
        while (i < n && (requested[i] == ' ' || requested[i] == '\t'))
            i++;
        if (i < n && requested[i] != ',')
            goto bad; /* a character no header name has */
        i++;          /* the comma */
        if (end == start)
            continue; /* empty element: "a, , b" is allowed by the list syntax */
        if (header_allowed(c, requested + start, end - start)) {
            if (o > 0) {
                out[o++] = ',';
                out[o++] = ' ';
            }
            for (size_t k = start; k < end; k++)
                out[o++] = lower(requested[k]);
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
bad:
    free(out);
    return NULL;
}
