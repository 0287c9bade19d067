/* yamlwalk: typed access to a libyaml document with positions in every
 * message. See include/yamlwalk.h. */
#include "core/yamlwalk.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"


/* Formats fmt, writes every recorded environment value in it as ${NAME}
 * (see yw_env_t), and appends the result to dst. */
static void vappend(const ywalk_t *c, char *dst, size_t len, size_t *use, const char *fmt,
                    va_list ap)
{
    char small[1024], *msg = small;
    va_list aq;
    int n;
    if (dst == NULL || len == 0 || *use + 1 >= len)
        return;
    va_copy(aq, ap);
    n = vsnprintf(small, sizeof small, fmt, aq);
    va_end(aq);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof small) {
        msg = xmalloc((size_t)n + 1);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
    }
    for (size_t i = 0; c != NULL && i < c->n_env; i++) {
        const char *v = c->env[i].value;
        size_t vl = strlen(v);
        char *hit;
        if (vl < YW_ENV_MIN_SECRET)
            continue;
        while ((hit = strstr(msg, v)) != NULL) {
            size_t pre = (size_t)(hit - msg), nl = strlen(c->env[i].name);
            size_t rest = strlen(hit + vl);
            char *out = xmalloc(pre + nl + 3 + rest + 1);
            memcpy(out, msg, pre);
            memcpy(out + pre, "${", 2);
            memcpy(out + pre + 2, c->env[i].name, nl);
            out[pre + 2 + nl] = '}';
            memcpy(out + pre + nl + 3, hit + vl, rest + 1);
            if (msg != small)
                free(msg);
            msg = out;
        }
    }
    n = snprintf(dst + *use, len - *use, "%s", msg);
    if (msg != small)
        free(msg);
    if (n < 0)
        return;
    *use += (size_t)n < len - *use ? (size_t)n : len - *use - 1;
}

static void append(const ywalk_t *c, char *dst, size_t len, size_t *use, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void append(const ywalk_t *c, char *dst, size_t len, size_t *use, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vappend(c, dst, len, use, fmt, ap);
    va_end(ap);
}

void yw_error(ywalk_t *c, const yaml_node_t *n,
                                                          const char *fmt, ...)
{
    va_list ap;
    c->nerr++;
    if (n)
        append(c, c->err, c->errlen, &c->erruse, "%s:%zu:%zu: ", c->file,
               n->start_mark.line + 1, n->start_mark.column + 1);
    else
        append(c, c->err, c->errlen, &c->erruse, "%s: ", c->file);
    va_start(ap, fmt);
    vappend(c, c->err, c->errlen, &c->erruse, fmt, ap);
    va_end(ap);
    append(c, c->err, c->errlen, &c->erruse, "\n");
}

yaml_node_t *yw_node(ywalk_t *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

const char *yw_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

bool yw_is_null(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0;
}

/* Records an expanded variable for the messages (see yw_env_t). A walker
 * with more distinct variables than YW_MAX_ENV refuses the document rather
 * than risk quoting an unrecorded value. */
static bool remember_env(ywalk_t *c, const char *name, const char *value)
{
    for (size_t i = 0; i < c->n_env; i++)
        if (strcmp(c->env[i].name, name) == 0) {
            c->env[i].value = value;
            return true;
        }
    if (c->n_env >= YW_MAX_ENV)
        return false;
    snprintf(c->env[c->n_env].name, sizeof c->env[c->n_env].name, "%s", name);
    c->env[c->n_env++].value = value;
    return true;
}

/* Expands ${NAME} and ${NAME:-default}; "$$" is a literal '$'. */
static char *expand_env(ywalk_t *c, const yaml_node_t *n, const char *s, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t o = 0, cap = len + 1;
    for (size_t i = 0; i < len;) {
        const char *val = NULL;
        size_t vlen = 0;
        if (s[i] == '$' && i + 1 < len && s[i + 1] == '$') {
            val = "$";
            vlen = 1;
            i += 2;
        } else if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            const char *end = memchr(s + i + 2, '}', len - i - 2);
            const char *name = s + i + 2, *def = NULL;
            size_t nlen, dlen = 0;
            char envname[256];
            if (end == NULL) {
                yw_error(c, n, "unterminated ${ in \"%.*s\"", (int)len, s);
                free(out);
                return NULL;
            }
            nlen = (size_t)(end - name);
            for (size_t k = 0; k + 1 < nlen; k++) {
                if (name[k] == ':' && name[k + 1] == '-') {
                    def = name + k + 2;
                    dlen = nlen - k - 2;
                    nlen = k;
                    break;
                }
            }
            if (nlen == 0 || nlen >= sizeof envname) {
                yw_error(c, n, "bad environment reference in \"%.*s\"", (int)len, s);
                free(out);
                return NULL;
            }
            memcpy(envname, name, nlen);
            envname[nlen] = '\0';
            val = getenv(envname);
            if (val != NULL && val[0] != '\0') {
                vlen = strlen(val);
                if (!remember_env(c, envname, val)) {
                    yw_error(c, n, "more than %d different environment variables are referenced "
                                   "(%s is one too many)",
                             YW_MAX_ENV, envname);
                    free(out);
                    return NULL;
                }
            } else if (def != NULL) {
                val = def;
                vlen = dlen;
            } else {
                yw_error(c, n, "environment variable %s is not set (write ${%s:-default} to give a default)",
                       envname, envname);
                free(out);
                return NULL;
            }
            i = (size_t)(end - s) + 1;
        } else {
            val = s + i;
            vlen = 1;
            i++;
        }
        if (o + vlen + 1 > cap) {
            cap = (o + vlen + 1) * 2;
            out = xrealloc(out, cap);
        }
        memcpy(out + o, val, vlen);
        o += vlen;
    }
    out[o] = '\0';
    return out;
}

/* Returns a newly allocated, env-expanded string, or NULL after an error. */
char *yw_str(ywalk_t *c, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        yw_error(c, n, "%s: expected a string, found %s", what, yw_kind(n));
        return NULL;
    }
    return expand_env(c, n, (const char *)n->data.scalar.value, n->data.scalar.length);
}

bool yw_u64(ywalk_t *c, const yaml_node_t *n, const char *what, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    char *s = yw_str(c, n, what), *end = NULL;
    unsigned long long v;
    bool ok = false;
    if (s == NULL)
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0)
        yw_error(c, n, "%s: expected a whole number, found \"%s\"", what, s);
    else if (v < min || v > max)
        yw_error(c, n, "%s: %llu is out of range (%llu..%llu)", what, v, (unsigned long long)min,
               (unsigned long long)max);
    else {
        *out = v;
        ok = true;
    }
    free(s);
    return ok;
}

bool yw_u32(ywalk_t *c, const yaml_node_t *n, const char *what, uint32_t min, uint32_t max,
                    uint32_t *out)
{
    uint64_t v;
    if (!yw_u64(c, n, what, min, max, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

bool yw_price(ywalk_t *c, const yaml_node_t *n, const char *what, double *out)
{
    char *s = yw_str(c, n, what), *end = NULL;
    double v;
    bool ok = false;
    if (s == NULL)
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < 0)
        yw_error(c, n, "%s: expected a non-negative number (USD per million tokens), found \"%s\"",
               what, s);
    else {
        *out = v;
        ok = true;
    }
    free(s);
    return ok;
}

bool yw_expect(ywalk_t *c, const yaml_node_t *n, yaml_node_type_t t, const char *what)
{
    static const char *names[] = {"nothing", "a string", "a list", "a mapping"};
    if (n->type == t)
        return true;
    yw_error(c, n, "%s: expected %s, found %s", what, names[t], yw_kind(n));
    return false;
}

bool yw_map_pair(ywalk_t *c, const yaml_node_t *map, yaml_node_pair_t *p, const char **kname,
                     yaml_node_t **knode, yaml_node_t **vnode)
{
    *knode = yw_node(c, p->key);
    *vnode = yw_node(c, p->value);
    if ((*knode)->type != YAML_SCALAR_NODE) {
        yw_error(c, *knode, "keys must be plain strings, found %s", yw_kind(*knode));
        return false;
    }
    *kname = (const char *)(*knode)->data.scalar.value;
    for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
        yaml_node_t *prev = yw_node(c, q->key);
        if (prev->type == YAML_SCALAR_NODE &&
            strcmp((const char *)prev->data.scalar.value, *kname) == 0) {
            yw_error(c, *knode, "duplicate key \"%s\" (first at line %zu)", *kname,
                   prev->start_mark.line + 1);
            return false;
        }
    }
    return true;
}

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

size_t yw_edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    /* three rolling rows: the transposition step looks two rows back */
    size_t rows[3][YW_EDIT_MAX + 1];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
    if (la > YW_EDIT_MAX || lb > YW_EDIT_MAX)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t *t;
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            size_t d = prev[j - 1] + cost;
            if (prev[j] + 1 < d)
                d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]) && pp[j - 2] + 1 < d)
                d = pp[j - 2] + 1;
            cur[j] = d;
        }
        t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *yw_suggest(const char *key, const char *list, size_t *len)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX, best_len = 0, klen = strlen(key);
    const char *p = list;
    while (*p) {
        const char *end;
        size_t n, d, longest;
        while (*p == ' ' || *p == ',')
            p++;
        end = p;
        while (*end && *end != ',' && *end != ' ')
            end++;
        n = (size_t)(end - p);
        if (n > 0) {
            d = yw_edit_distance(key, klen, p, n);
            longest = n > klen ? n : klen;
            /* close enough to be a typo: at most two edits, and at most
             * about a third of the word (so "ab" never suggests "rpm") */
            if (d <= 2 && d * 3 <= longest + 1 && d < best_d) {
                best = p;
                best_d = d;
                best_len = n;
            }
        }
        p = end;
    }
    if (best != NULL && len != NULL)
        *len = best_len;
    return best;
}

void yw_unknown_key(ywalk_t *c, const yaml_node_t *k, const char *where, const char *expected)
{
    const char *key = (const char *)k->data.scalar.value;
    size_t n = 0;
    const char *s = yw_suggest(key, expected, &n);
    if (s != NULL)
        yw_error(c, k, "unknown key \"%s\" in %s (expected one of: %s); did you mean \"%.*s\"?",
                 key, where, expected, (int)n, s);
    else
        yw_error(c, k, "unknown key \"%s\" in %s (expected one of: %s)", key, where, expected);
}


void yw_append_error(ywalk_t *c, const char *fmt, ...)
{
    va_list ap;
    c->nerr++;
    va_start(ap, fmt);
    vappend(c, c->err, c->errlen, &c->erruse, fmt, ap);
    va_end(ap);
}

void yw_append_warning(ywalk_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vappend(c, c->warn, c->warnlen, &c->warnuse, fmt, ap);
    va_end(ap);
}

bool yw_bool(ywalk_t *c, const yaml_node_t *n, const char *what, bool *out)
{
    static const char *yes[] = {"true", "yes", "on"}, *no[] = {"false", "no", "off"};
    char *s = yw_str(c, n, what);
    bool ok = false;
    if (s == NULL)
        return false;
    for (int i = 0; i < 3 && !ok; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = ok = true;
        } else if (strcmp(s, no[i]) == 0) {
            *out = false;
            ok = true;
        }
    }
    if (!ok)
        yw_error(c, n, "%s: expected true or false, found \"%s\"", what, s);
    free(s);
    return ok;
}

void yw_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

bool yw_strv(ywalk_t *c, const yaml_node_t *n, const char *what, char ***out, size_t *n_out)
{
    size_t cap, k = 0;
    char **v;
    if (n->type == YAML_SCALAR_NODE) {
        char *s = yw_str(c, n, what);
        if (s == NULL)
            return false;
        v = xcalloc(2, sizeof *v);
        v[0] = s;
        *out = v;
        *n_out = 1;
        return true;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        yw_error(c, n, "%s: expected a string or a list of strings, found %s", what, yw_kind(n));
        return false;
    }
    cap = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cap == 0) {
        yw_error(c, n, "%s: the list is empty", what);
        return false;
    }
    v = xcalloc(cap + 1, sizeof *v);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        char *s = yw_str(c, yw_node(c, *it), what);
        if (s == NULL) {
            yw_strv_free(v);
            return false;
        }
        v[k++] = s;
    }
    *out = v;
    *n_out = k;
    return true;
}
