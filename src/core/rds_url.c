/* rds_url: redis:// rediss:// unix:// URLs into an rds_addr_t (see
 * core/rds.h): host, port, database, user and password (percent-decoded),
 * socket path. No I/O but a name lookup of "localhost"; any thread. Kept apart from the client in
 * src/core/rds.c, which only ever receives a parsed address. */
#include "core/rds.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/util.h"


static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into out (cap bytes with the NUL). -1 on a bad
 * escape, an encoded NUL or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return -1;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

static int parse_db(const char *s, size_t n, unsigned *db)
{
    uint64_t v;
    if (n == 0) {
        *db = 0;
        return 0;
    }
    if (util_parse_u64(s, n, &v) < 0 || v > 2147483647u)
        return -1;
    *db = (unsigned)v;
    return 0;
}

/* host: an IP literal, or "localhost" resolved now. */
static int set_host(rds_addr_t *out, const char *h, size_t n, char *err, size_t errlen)
{
    char tmp[64];
    unsigned char bin[16];
    if (n == 0) {
        snprintf(err, errlen, "Redis URL: missing host");
        return -1;
    }
    if (n >= sizeof tmp) {
        snprintf(err, errlen, "Redis URL: host is too long");
        return -1;
    }
    memcpy(tmp, h, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET, tmp, bin) == 1 || inet_pton(AF_INET6, tmp, bin) == 1) {
        memcpy(out->host, tmp, n + 1);
        return 0;
    }
    if (strcasecmp(tmp, "localhost") == 0) {
        struct addrinfo hints, *res = NULL, *pick = NULL;
        int rc;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        rc = getaddrinfo("localhost", NULL, &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen, "Redis URL: cannot resolve localhost: %s", gai_strerror(rc));
            return -1;
        }
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET) {
                pick = ai;
                break;
            }
            if (ai->ai_family == AF_INET6 && pick == NULL)
                pick = ai;
        }
        rc = -1;
        if (pick && pick->ai_family == AF_INET)
            rc = inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)pick->ai_addr)->sin_addr,
                           out->host, sizeof out->host)
                     ? 0
                     : -1;
        else if (pick)
            rc = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)pick->ai_addr)->sin6_addr,
                           out->host, sizeof out->host)
                     ? 0
                     : -1;
        freeaddrinfo(res);
        if (rc < 0)
            snprintf(err, errlen, "Redis URL: localhost has no IPv4 or IPv6 address");
        return rc;
    }
    snprintf(err, errlen,
             "Redis URL: host \"%s\" must be an IP address or localhost (a name would be "
             "resolved with blocking DNS on every reconnect)",
             tmp);
    return -1;
}

static int parse_tcp(const char *s, rds_addr_t *out, char *err, size_t errlen)
{
    const char *at = strrchr(s, '@');
    const char *h, *hend, *p, *slash;
    uint64_t port = 6379;

    if (at != NULL) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        if (colon == NULL) {
            snprintf(err, errlen, "Redis URL: credentials must be [USER]:PASSWORD@ before the host");
            return -1;
        }
        if (pct_decode(s, (size_t)(colon - s), out->user, sizeof out->user) < 0) {
            snprintf(err, errlen, "Redis URL: bad or too long user name");
            return -1;
        }
        if (pct_decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password) <
            0) {
            snprintf(err, errlen, "Redis URL: bad %%-escape in the password, or longer than %zu bytes",
                     sizeof out->password - 1);
            return -1;
        }
        if (out->password[0] == '\0') {
            snprintf(err, errlen, "Redis URL: empty password after ':'");
            return -1;
        }
        s = at + 1;
    }
    if (*s == '[') {
        h = s + 1;
        hend = strchr(h, ']');
        if (hend == NULL) {
            snprintf(err, errlen, "Redis URL: missing ']' after an IPv6 address");
            return -1;
        }
        p = hend + 1;
    } else {
        h = s;
        hend = s + strcspn(s, ":/");
        p = hend;
    }
    if (set_host(out, h, (size_t)(hend - h), err, errlen) < 0)
        return -1;
    slash = strchr(p, '/');
    if (*p == ':') {
        size_t n = slash ? (size_t)(slash - p - 1) : strlen(p + 1);
        if (util_parse_u64(p + 1, n, &port) < 0 || port == 0 || port > 65535) {
            snprintf(err, errlen, "Redis URL: port must be 1-65535");
            return -1;
        }
    } else if (*p != '\0' && *p != '/') {
        snprintf(err, errlen, "Redis URL: unexpected text after the host");
        return -1;
    }
    out->port = (unsigned)port;
    if (slash && parse_db(slash + 1, strlen(slash + 1), &out->db) < 0) {
        snprintf(err, errlen, "Redis URL: database after '/' must be a number (e.g. /0)");
        return -1;
    }
    return 0;
}

static int parse_unix(const char *s, rds_addr_t *out, char *err, size_t errlen)
{
    const char *q = strchr(s, '?');
    size_t n = q ? (size_t)(q - s) : strlen(s);
    if (n == 0 || s[0] != '/') {
        snprintf(err, errlen, "Redis URL: unix:// needs an absolute path (unix:///run/redis.sock)");
        return -1;
    }
    if (n >= sizeof out->path) {
        snprintf(err, errlen, "Redis URL: unix socket path is too long");
        return -1;
    }
    memcpy(out->path, s, n);
    out->path[n] = '\0';
    out->is_unix = true;
    while (q != NULL) {
        const char *k = q + 1, *amp = strchr(k, '&'), *eq;
        size_t len = amp ? (size_t)(amp - k) : strlen(k);
        eq = memchr(k, '=', len);
        if (eq == NULL) {
            snprintf(err, errlen, "Redis URL: expected NAME=VALUE after '?' or '&'");
            return -1;
        }
        if ((size_t)(eq - k) == 2 && memcmp(k, "db", 2) == 0) {
            if (parse_db(eq + 1, len - 3, &out->db) < 0) {
                snprintf(err, errlen, "Redis URL: db= must be a number");
                return -1;
            }
        } else if ((size_t)(eq - k) == 8 && memcmp(k, "password", 8) == 0) {
            if (pct_decode(eq + 1, len - 9, out->password, sizeof out->password) < 0) {
                snprintf(err, errlen, "Redis URL: bad or too long password");
                return -1;
            }
        } else if ((size_t)(eq - k) == 4 && memcmp(k, "user", 4) == 0) {
            if (pct_decode(eq + 1, len - 5, out->user, sizeof out->user) < 0) {
                snprintf(err, errlen, "Redis URL: bad or too long user name");
                return -1;
            }
        } else {
            snprintf(err, errlen, "Redis URL: unknown parameter \"%.*s\" (db, user, password)",
                     (int)(eq - k), k);
            return -1;
        }
        q = amp;
    }
    return 0;
}

int rds_url_parse(const char *url, rds_addr_t *out, char *err, size_t errlen)
{
    int rc;
    memset(out, 0, sizeof *out);
    if (url == NULL || *url == '\0') {
        snprintf(err, errlen, "Redis URL is empty");
        return -1;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        rc = parse_tcp(url + 8, out, err, errlen);
    } else if (strncmp(url, "unix://", 7) == 0) {
        rc = parse_unix(url + 7, out, err, errlen);
    } else if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen, "Redis URL: TLS (rediss://) is not supported");
        rc = -1;
    } else {
        snprintf(err, errlen, "Redis URL must start with redis:// or unix://");
        rc = -1;
    }
    if (rc == 0 && out->user[0] != '\0' && out->password[0] == '\0') {
        snprintf(err, errlen, "Redis URL: a user name needs a password");
        rc = -1;
    }
    if (rc < 0) {
        /* never leave a half-parsed password behind */
        memset(out, 0, sizeof *out);
    }
    return rc;
}
