/* json_tree: json_check's strict pass that also builds the cJSON tree (see
 * core/json_tree.h). The grammar, the order in which problems are found and
 * their messages are json_check's (core/json.c): a change to one must be
 * made to the other, and tests/fuzz/fuzz_json_tree.c compares the two (and
 * the tree with cJSON's) on every input.
 *
 * Memory: one block holds the tree header, a first slab of nodes and the
 * string area; more node slabs are chained when the first is used up. The
 * string area needs no growth: a string token of L bytes between its quotes
 * decodes to at most L bytes plus the NUL, one byte less than the token, so
 * all the keys and strings of s[0..n) fit in n bytes (n + 1 leaves room for
 * a number's NUL-terminated copy handed to strtod). */
#include "core/json_tree.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define JT_MAX_DEPTH 1000 /* json_check's (and cJSON's CJSON_NESTING_LIMIT) */
#define KEYS_INLINE 64

typedef struct jt_slab {
    struct jt_slab *next;
    cJSON nodes[];
} jt_slab_t;

/* A member of the top-level object: its raw key and its value's span. */
typedef struct jt_member {
    size_t key_off, key_len; /* quotes excluded */
    json_span_t value;
} jt_member_t;

#define MEMBERS_INLINE 24

struct json_tree {
    cJSON *root;
    jt_member_t *members; /* inline_members or a heap copy */
    size_t n_members, members_cap;
    jt_member_t inline_members[MEMBERS_INLINE];
    jt_slab_t *slabs;  /* node slabs after the first */
    cJSON *node, *end; /* free nodes of the current slab */
    size_t slab_len;   /* nodes in the current slab */
    char *str;         /* next free byte of the string area */
};

/* A key of an object still open (json_check's jkey_t, with its decoded
 * text at hand). */
typedef struct jt_key {
    size_t off;       /* first byte after the opening quote */
    size_t len;       /* raw length, quotes excluded */
    size_t dlen;      /* decoded length */
    uint64_t hash;    /* FNV-1a of the decoded bytes */
    const char *text; /* decoded, in the string area */
} jt_key_t;

typedef struct jt {
    const unsigned char *s;
    size_t n;
    json_error_t *err;
    json_tree_t *t;
    jt_key_t inline_keys[KEYS_INLINE];
    jt_key_t *keys;
    size_t nkeys, cap;
    bool oom;
} jt_t;

/* Byte classes inside a string (json.c's STR_CLASS). */
#define C16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
static const unsigned char STR_CLASS[256] = {
    C16(3), C16(3),
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20: '"' */
    C16(0), C16(0),
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, /* 0x50: '\\' */
    C16(0), C16(0),
    C16(4), C16(4), C16(4), C16(4), C16(4), C16(4), C16(4), C16(4),
};
#undef C16

static size_t ws(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* Records the first problem; returns 0 so callers can `return bad(...)`. */
static size_t bad(jt_t *jt, size_t off, const char *what)
{
    jt->err->off = off;
    jt->err->what = what;
    return 0;
}

static size_t oom(jt_t *jt, size_t off)
{
    jt->oom = true;
    return bad(jt, off, "out of memory");
}

static size_t unexpected(jt_t *jt, size_t i)
{
    if (i >= jt->n)
        return bad(jt, jt->n, "unexpected end of input");
    if (jt->s[i] < 0x20)
        return bad(jt, i, "control character outside a string");
    return bad(jt, i, "unexpected character");
}

/* ---- memory ---- */

static json_tree_t *tree_new(size_t n)
{
    size_t first = n / 32 + 16;
    json_tree_t *t;
    if (n > (SIZE_MAX - sizeof *t) / 2 - first * sizeof(cJSON))
        return NULL;
    t = malloc(sizeof *t + first * sizeof(cJSON) + n + 1);
    if (t == NULL)
        return NULL;
    t->root = NULL;
    t->members = t->inline_members;
    t->n_members = 0;
    t->members_cap = MEMBERS_INLINE;
    t->slabs = NULL;
    t->node = (cJSON *)(t + 1);
    t->end = t->node + first;
    t->slab_len = first;
    t->str = (char *)t->end;
    return t;
}

/* A node with every field zero, as cJSON_New_Item gives; NULL when memory
 * ran out. */
static cJSON *node_new(json_tree_t *t)
{
    cJSON *c;
    if (t->node == t->end) {
        size_t len = t->slab_len * 2;
        jt_slab_t *sl;
        if (len > (SIZE_MAX - sizeof *sl) / sizeof(cJSON))
            return NULL;
        sl = malloc(sizeof *sl + len * sizeof(cJSON));
        if (sl == NULL)
            return NULL;
        sl->next = t->slabs;
        t->slabs = sl;
        t->node = sl->nodes;
        t->end = sl->nodes + len;
        t->slab_len = len;
    }
    c = t->node++;
    c->next = c->prev = c->child = NULL;
    c->type = 0;
    c->valuestring = NULL;
    c->valueint = 0;
    c->valuedouble = 0;
    c->string = NULL;
    return c;
}

cJSON *json_tree_read(const char *s, size_t n, json_tree_t **t)
{
    int is_object = 0;
    if (json_tree_parse(s, n, t, &is_object, NULL) == 1)
        return json_tree_root(*t);
    *t = NULL;
    return cJSON_ParseWithLength(s, n);
}

void json_tree_drop(cJSON *root, json_tree_t *t)
{
    if (t != NULL)
        json_tree_free(t);
    else
        cJSON_Delete(root);
}

void json_tree_free(json_tree_t *t)
{
    jt_slab_t *sl, *next;
    if (t == NULL)
        return;
    if (t->members != t->inline_members)
        free(t->members);
    for (sl = t->slabs; sl != NULL; sl = next) {
        next = sl->next;
        free(sl);
    }
    free(t);
}

cJSON *json_tree_root(const json_tree_t *t)
{
    return t->root;
}

int json_tree_top_key(const json_tree_t *t, const char *s, const char *key, json_span_t *spans,
                      int max)
{
    size_t klen = strlen(key);
    int found = 0;
    if (t->root == NULL || t->root->type != cJSON_Object)
        return -1;
    for (size_t i = 0; i < t->n_members; i++) {
        const jt_member_t *m = &t->members[i];
        if (m->key_len == klen && memcmp(s + m->key_off, key, klen) == 0) {
            if (found < max)
                spans[found] = m->value;
            found++;
        }
    }
    return found;
}

/* Remembers a member of the top-level object (its value's span is filled
 * in when the value ends); false when memory ran out. */
static bool member_add(json_tree_t *t, size_t key_off, size_t key_len, size_t value_off)
{
    jt_member_t *m;
    if (t->n_members == t->members_cap) {
        size_t cap = t->members_cap * 2;
        m = t->members == t->inline_members ? malloc(cap * sizeof *m)
                                            : realloc(t->members, cap * sizeof *m);
        if (m == NULL)
            return false;
        if (t->members == t->inline_members)
            memcpy(m, t->inline_members, sizeof t->inline_members);
        t->members = m;
        t->members_cap = cap;
    }
    m = &t->members[t->n_members++];
    m->key_off = key_off;
    m->key_len = key_len;
    m->value = (json_span_t){value_off, 0};
    return true;
}

/* ---- strings ---- */

static long hex4(const unsigned char *s, size_t n, size_t i)
{
    long v = 0;
    if (n < 4 || i > n - 4)
        return -1;
    for (size_t k = i; k < i + 4; k++) {
        unsigned char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* Writes code point cp as UTF-8 at d; returns the byte after it. */
static char *put_utf8(char *d, long cp)
{
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xC0 | cp >> 6);
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xE0 | cp >> 12);
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (char)(0xF0 | cp >> 18);
        *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    }
    return d;
}

/* s[i] == '\\': decodes the escape to *d (advanced), with json_check's
 * strict checks; returns the offset past it, or 0. */
static size_t escape(jt_t *jt, size_t i, char **d)
{
    const unsigned char *s = jt->s;
    size_t n = jt->n;
    long u, lo;
    char c;
    if (i + 1 >= n)
        return bad(jt, n, "unexpected end of input in a string");
    switch (s[i + 1]) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u': c = 0; break;
    default:
        return bad(jt, i, "invalid escape sequence in a string");
    }
    if (c != 0) {
        *(*d)++ = c;
        return i + 2;
    }
    u = hex4(s, n, i + 2);
    if (u < 0)
        return bad(jt, i, "invalid \\u escape (four hex digits expected)");
    /* cJSON ends its C string at a NUL, so "a\u0000b" would be read as "a" */
    if (u == 0)
        return bad(jt, i, "\\u0000 in a string is not supported");
    if (u >= 0xDC00 && u <= 0xDFFF)
        return bad(jt, i, "unpaired UTF-16 surrogate escape in a string");
    if (u < 0xD800 || u > 0xDBFF) {
        *d = put_utf8(*d, u);
        return i + 6;
    }
    if (i + 7 >= n || s[i + 6] != '\\' || s[i + 7] != 'u' || (lo = hex4(s, n, i + 8)) < 0xDC00 ||
        lo > 0xDFFF)
        return bad(jt, i, "unpaired UTF-16 surrogate escape in a string");
    *d = put_utf8(*d, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
    return i + 12;
}

#if !defined(__SSE2__)
/* The mask of the bytes of w that end a plain run: '"', '\\', a control
 * byte or a non-ASCII one. The lowest set bit is exact (a borrow only
 * disturbs bytes above a true match), which is all the caller reads. */
static inline uint64_t special_bytes(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | w) & highs;
}
#endif

/* s[i] == '"': decodes the string into the string area; returns the offset
 * past the closing quote (with *out, *dlen set), or 0. Plain runs (most of
 * a prompt) are copied 16 bytes at a time (SSE2; 8 without it): the
 * area's write position stays at least one byte behind i, so a store of
 * bytes still inside the input never passes the area's end. */
static size_t string(jt_t *jt, size_t i, char **out, size_t *dlen)
{
    const unsigned char *s = jt->s;
    size_t n = jt->n, m;
    char *start = jt->t->str, *d = start;
    for (i++;;) {
#if defined(__SSE2__)
        while (i + 16 <= n) {
            /* signed bytes below 0x20: the control bytes and, being
             * negative, every non-ASCII one */
            __m128i w = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            __m128i sp = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(w, _mm_set1_epi8('"')),
                                                   _mm_cmpeq_epi8(w, _mm_set1_epi8('\\'))),
                                      _mm_cmplt_epi8(w, _mm_set1_epi8(0x20)));
            unsigned mask = (unsigned)_mm_movemask_epi8(sp);
            _mm_storeu_si128((__m128i *)(void *)d, w);
            if (mask != 0) {
                size_t k = (size_t)__builtin_ctz(mask);
                i += k;
                d += k;
                break;
            }
            i += 16;
            d += 16;
        }
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (i + 8 <= n) {
            uint64_t w, sp;
            memcpy(&w, s + i, 8);
            memcpy(d, &w, 8);
            sp = special_bytes(w);
            if (sp != 0) {
                size_t k = (size_t)__builtin_ctzll(sp) >> 3;
                i += k;
                d += k;
                break;
            }
            i += 8;
            d += 8;
        }
#endif
        while (i < n && STR_CLASS[s[i]] == 0)
            *d++ = (char)s[i++];
        if (i >= n)
            return bad(jt, n, "unexpected end of input in a string");
        switch (STR_CLASS[s[i]]) {
        case 1:
            *d = '\0';
            *out = start;
            *dlen = (size_t)(d - start);
            jt->t->str = d + 1;
            return i + 1;
        case 2:
            i = escape(jt, i, &d);
            if (i == 0)
                return 0;
            break;
        case 3:
            return bad(jt, i, "control character in a string (it must be escaped)");
        default:
            m = json_utf8_len(s + i, n - i);
            if (m == 0)
                return bad(jt, i, "invalid UTF-8 in a string");
            memcpy(d, s + i, m);
            d += m;
            i += m;
        }
    }
}

/* ---- keys and the duplicate check (json_check's) ---- */

/* s[i] should start "key" ':' in an object; returns the offset past the
 * colon, or 0. The decoded key goes to *key. */
static size_t key(jt_t *jt, size_t i, char **key_text)
{
    size_t e, dlen;
    jt_key_t *k;
    uint64_t h = 14695981039346656037ull;
    if (i >= jt->n || jt->s[i] != '"')
        return unexpected(jt, i);
    e = string(jt, i, key_text, &dlen);
    if (e == 0)
        return 0;
    if (jt->nkeys == jt->cap) {
        size_t cap = jt->cap * 2;
        jt_key_t *nk = jt->keys == jt->inline_keys ? malloc(cap * sizeof *nk)
                                                    : realloc(jt->keys, cap * sizeof *nk);
        if (nk == NULL)
            return oom(jt, i);
        if (jt->keys == jt->inline_keys)
            memcpy(nk, jt->inline_keys, sizeof jt->inline_keys);
        jt->keys = nk;
        jt->cap = cap;
    }
    for (size_t j = 0; j < dlen; j++)
        h = (h ^ (unsigned char)(*key_text)[j]) * 1099511628211ull;
    k = &jt->keys[jt->nkeys++];
    k->off = i + 1;
    k->len = e - i - 2;
    k->dlen = dlen;
    k->hash = h;
    k->text = *key_text;
    i = ws(jt->s, jt->n, e);
    if (i >= jt->n || jt->s[i] != ':')
        return unexpected(jt, i);
    return i + 1;
}

static bool key_equal(const jt_key_t *a, const jt_key_t *b)
{
    return a->hash == b->hash && a->dlen == b->dlen && memcmp(a->text, b->text, a->dlen) == 0;
}

static int key_order(const void *pa, const void *pb)
{
    const jt_key_t *a = pa, *b = pb;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    return a->off < b->off ? -1 : a->off > b->off;
}

static bool duplicate(jt_t *jt, const jt_key_t *k)
{
    jt->err->key = (json_span_t){k->off, k->len};
    bad(jt, k->off - 1, "duplicate key");
    return false;
}

/* json_check's close_object: the same pairs in the same order, so the same
 * repeated key is reported. */
static bool close_object(jt_t *jt, size_t mark)
{
    jt_key_t *k = jt->keys + mark;
    size_t cnt = jt->nkeys - mark;
    jt->nkeys = mark;
    if (cnt <= 16) {
        for (size_t b = 1; b < cnt; b++)
            for (size_t a = 0; a < b; a++)
                if (key_equal(&k[a], &k[b]))
                    return duplicate(jt, &k[b]);
        return true;
    }
    qsort(k, cnt, sizeof *k, key_order);
    for (size_t a = 0; a < cnt; a++)
        for (size_t b = a + 1; b < cnt && k[b].hash == k[a].hash; b++)
            if (key_equal(&k[a], &k[b]))
                return duplicate(jt, &k[b]);
    return true;
}

/* ---- numbers ---- */


/* The number token s[i..e) as cJSON's parse_number reads it: strtod of the
 * token (cJSON copies it, '.' as the locale's decimal point; the daemon
 * never leaves the C locale), valueint saturated. An integer of at most 15
 * digits is exact in a double, so it skips strtod. */
static void number(jt_t *jt, cJSON *c, size_t i, size_t e)
{
    const unsigned char *s = jt->s;
    size_t k = i + (s[i] == '-');
    double v;
    if (e - k <= 15) {
        uint64_t u = 0;
        while (k < e && s[k] >= '0' && s[k] <= '9')
            u = u * 10 + (uint64_t)(s[k++] - '0');
        if (k == e) {
            v = (double)u;
            if (s[i] == '-')
                v = -v;
            goto set;
        }
    }
    {
        /* a NUL-terminated copy in the string area's free part, which is
         * at least e - i + 1 bytes (see the top of this file) */
        char *tmp = jt->t->str;
        memcpy(tmp, s + i, e - i);
        tmp[e - i] = '\0';
        v = strtod(tmp, NULL);
    }
set:
    c->type = cJSON_Number;
    c->valuedouble = v;
    if (v >= INT_MAX)
        c->valueint = INT_MAX;
    else if (v <= (double)INT_MIN)
        c->valueint = INT_MIN;
    else
        c->valueint = (int)v;
}

/* ---- the pass ---- */

int json_tree_parse(const char *text, size_t n, json_tree_t **out, int *is_object,
                    json_error_t *err)
{
    jt_t state, *jt = &state;
    json_error_t scratch;
    const unsigned char *s = (const unsigned char *)text;
    cJSON *open[JT_MAX_DEPTH];    /* the open containers */
    size_t marks[JT_MAX_DEPTH];   /* jt->nkeys when that level opened */
    size_t depth = 0, i;
    char *pending = NULL; /* the key of the value about to be read */
    bool member_open = false; /* a top-level member's value is being read */
    int rc = 0;

    *out = NULL;
    if (err == NULL)
        err = &scratch;
    memset(err, 0, sizeof *err);
    jt->s = s;
    jt->n = n;
    jt->err = err;
    jt->keys = jt->inline_keys;
    jt->nkeys = 0;
    jt->cap = KEYS_INLINE;
    jt->oom = false;
    jt->t = tree_new(n);

    i = ws(s, n, 0);
    *is_object = i < n && s[i] == '{';
    if (jt->t == NULL) {
        oom(jt, 0);
        goto out;
    }
    for (;;) {
        unsigned char c;
        cJSON *v;
        /* a value at s[i] */
        i = ws(s, n, i);
        if (i >= n) {
            unexpected(jt, i);
            goto out;
        }
        c = s[i];
        v = node_new(jt->t);
        if (v == NULL) {
            oom(jt, i);
            goto out;
        }
        if (depth == 0) {
            jt->t->root = v;
        } else {
            cJSON *p = open[depth - 1], *head = p->child;
            if (head == NULL) {
                p->child = v;
                v->prev = v;
            } else {
                /* head->prev is the last child, as cJSON leaves it */
                head->prev->next = v;
                v->prev = head->prev;
                head->prev = v;
            }
            v->string = pending;
            pending = NULL;
            if (depth == 1 && open[0]->type == cJSON_Object) {
                const jt_key_t *k = &jt->keys[jt->nkeys - 1];
                if (!member_add(jt->t, k->off, k->len, i)) {
                    oom(jt, i);
                    goto out;
                }
                member_open = true;
            }
        }
        if (c == '{' || c == '[') {
            if (depth == JT_MAX_DEPTH) {
                bad(jt, i, "nesting deeper than 1000 levels");
                goto out;
            }
            v->type = c == '{' ? cJSON_Object : cJSON_Array;
            open[depth] = v;
            marks[depth] = jt->nkeys;
            depth++;
            i = ws(s, n, i + 1);
            if (i < n && s[i] == (c == '{' ? '}' : ']')) {
                depth--;
                i++;
                goto after_value;
            }
            if (c == '{' && (i = key(jt, i, &pending)) == 0)
                goto out;
            continue;
        }
        if (c == '"') {
            size_t dlen;
            i = string(jt, i, &v->valuestring, &dlen);
            if (i == 0)
                goto out;
            v->type = cJSON_String;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t e = json_number_end((const char *)s, n, i);
            if (e == 0) {
                bad(jt, i, "invalid number");
                goto out;
            }
            number(jt, v, i, e);
            i = e;
        } else if (n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
            v->type = cJSON_True;
            v->valueint = 1;
            i += 4;
        } else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
            v->type = cJSON_False;
            i += 5;
        } else if (n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
            v->type = cJSON_NULL;
            i += 4;
        } else {
            unexpected(jt, i);
            goto out;
        }
    after_value:
        for (;;) {
            if (member_open && depth == 1) {
                jt_member_t *m = &jt->t->members[jt->t->n_members - 1];
                m->value.len = i - m->value.off;
                member_open = false;
            }
            i = ws(s, n, i);
            if (depth == 0) {
                if (i == n)
                    rc = 1;
                else if (s[i] < 0x20)
                    unexpected(jt, i);
                else
                    bad(jt, i, "unexpected data after the JSON value");
                goto out;
            }
            if (i >= n) {
                unexpected(jt, i);
                goto out;
            }
            if (s[i] == ',') {
                i++;
                if (open[depth - 1]->type == cJSON_Object &&
                    (i = key(jt, ws(s, n, i), &pending)) == 0)
                    goto out;
                break; /* next value */
            }
            if (s[i] == '}' && open[depth - 1]->type == cJSON_Object) {
                if (!close_object(jt, marks[depth - 1]))
                    goto out;
                depth--;
                i++;
                continue;
            }
            if (s[i] == ']' && open[depth - 1]->type == cJSON_Array) {
                depth--;
                i++;
                continue;
            }
            unexpected(jt, i);
            goto out;
        }
    }
out:
    if (jt->oom)
        rc = -1;
    if (jt->keys != jt->inline_keys)
        free(jt->keys);
    if (rc == 1)
        *out = jt->t;
    else
        json_tree_free(jt->t);
    return rc;
}
