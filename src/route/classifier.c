/* classifier: prompt, label parsing and the per-shard decision cache of
 * classifier routing (see route/classifier.h). */
#include "route/classifier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"

#define WAYS 4       /* entries per set: an insert looks at these only */
#define LABEL_MAX 32 /* config_schema.c refuses longer labels */

typedef struct entry {
    uint64_t key;
    uint64_t expires_ms; /* 0: empty */
    char label[LABEL_MAX + 1];
} entry_t;

struct classifier_cache {
    size_t n_sets;
    entry_t *e; /* n_sets * WAYS */
};

const char *classifier_result_name(enum classifier_result r)
{
    switch (r) {
    case CLASSIFIER_OK:
        return "ok";
    case CLASSIFIER_CACHED:
        return "cache_hit";
    case CLASSIFIER_TIMEOUT:
        return "timeout";
    case CLASSIFIER_ERROR:
        return "error";
    case CLASSIFIER_GARBAGE:
        return "garbage";
    case CLASSIFIER_NONE:
        break;
    }
    return "none";
}

static void put_labels(buf_t *b, const cfg_classifier_t *cl)
{
    for (size_t i = 0; i < cl->n_labels; i++) {
        if (i)
            buf_puts(b, ", ");
        buf_puts(b, cl->labels[i]);
    }
}

char *classifier_system_prompt(const cfg_classifier_t *cl)
{
    buf_t b;
    /* the prompt is at most 8192 bytes and 32 labels of 32 (config_schema.c) */
    buf_init(&b, (size_t)1 << 20);
    if (cl->prompt == NULL) {
        /* compact: the answer is read as one word, and every prompt token
         * is paid on every classified request */
        buf_puts(&b, "You label requests for a model router. Reply with exactly one of these "
                     "labels and nothing else: ");
        put_labels(&b, cl);
        buf_puts(&b, ".");
    } else {
        const char *p = cl->prompt, *hit;
        while ((hit = strstr(p, "{labels}")) != NULL) {
            buf_append(&b, p, (size_t)(hit - p));
            put_labels(&b, cl);
            p = hit + 8;
        }
        buf_puts(&b, p);
    }
    buf_cstr(&b);
    return b.data;
}

size_t classifier_input_len(const char *text, size_t len, size_t max)
{
    if (len <= max)
        return len;
    /* back off continuation bytes: never send half a character */
    while (max > 0 && ((unsigned char)text[max] & 0xC0) == 0x80)
        max--;
    return max;
}

static bool trim_char(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '"' || ch == '\'' ||
           ch == '`';
}

int classifier_parse_label(const cfg_classifier_t *cl, const char *content)
{
    char word[LABEL_MAX + 2];
    size_t a = 0, b, n;
    if (content == NULL)
        return -1;
    b = strlen(content);
    while (a < b && trim_char(content[a]))
        a++;
    while (b > a && trim_char(content[b - 1]))
        b--;
    if (b > a && content[b - 1] == '.')
        b--;
    while (b > a && trim_char(content[b - 1]))
        b--;
    n = b - a;
    if (n == 0 || n > LABEL_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = content[a + i];
        word[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    word[n] = '\0';
    for (size_t i = 0; i < cl->n_labels; i++)
        if (strcmp(cl->labels[i], word) == 0)
            return (int)i;
    return -1;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t classifier_key(const char *model, const char *system, const char *text, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    /* lengths between the parts: ("ab","c") and ("a","bc") differ */
    size_t ml = strlen(model), sl = strlen(system);
    h = fnv(h, (const char *)&ml, sizeof ml);
    h = fnv(h, model, ml);
    h = fnv(h, (const char *)&sl, sizeof sl);
    h = fnv(h, system, sl);
    h = fnv(h, (const char *)&len, sizeof len);
    return fnv(h, text, len);
}

classifier_cache_t *classifier_cache_new(size_t entries)
{
    classifier_cache_t *c;
    if (entries == 0)
        return NULL;
    c = xcalloc(1, sizeof *c);
    c->n_sets = (entries + WAYS - 1) / WAYS;
    c->e = xcalloc(c->n_sets * WAYS, sizeof *c->e);
    return c;
}

void classifier_cache_free(classifier_cache_t *c)
{
    if (c == NULL)
        return;
    free(c->e);
    free(c);
}

size_t classifier_cache_capacity(const classifier_cache_t *c)
{
    return c ? c->n_sets * WAYS : 0;
}

classifier_cache_t *classifier_cache_sized(classifier_cache_t **slot, size_t entries)
{
    size_t want = (entries + WAYS - 1) / WAYS * WAYS;
    if (classifier_cache_capacity(*slot) != want) {
        classifier_cache_free(*slot);
        *slot = classifier_cache_new(entries);
    }
    return *slot;
}

static entry_t *set_of(classifier_cache_t *c, uint64_t key)
{
    /* the high bits pick the set: FNV's low bits mix less */
    return &c->e[(size_t)((key >> 17) % c->n_sets) * WAYS];
}

int classifier_cache_get(classifier_cache_t *c, const cfg_classifier_t *cl, uint64_t key,
                         uint64_t now_ms)
{
    entry_t *s;
    if (c == NULL)
        return -1;
    s = set_of(c, key);
    for (int i = 0; i < WAYS; i++) {
        if (s[i].expires_ms == 0 || s[i].key != key)
            continue;
        if (s[i].expires_ms <= now_ms) {
            s[i].expires_ms = 0;
            return -1;
        }
        for (size_t l = 0; l < cl->n_labels; l++)
            if (strcmp(cl->labels[l], s[i].label) == 0)
                return (int)l;
        return -1;
    }
    return -1;
}

void classifier_cache_put(classifier_cache_t *c, uint64_t key, const char *label,
                          uint64_t expires_ms)
{
    entry_t *s, *victim;
    size_t n = strlen(label);
    if (c == NULL || n > LABEL_MAX || expires_ms == 0)
        return;
    s = set_of(c, key);
    victim = &s[0];
    for (int i = 0; i < WAYS; i++) {
        if (s[i].expires_ms != 0 && s[i].key == key) {
            victim = &s[i]; /* refresh */
            break;
        }
        if (s[i].expires_ms < victim->expires_ms)
            victim = &s[i]; /* empty (0) or soonest to expire */
    }
    victim->key = key;
    victim->expires_ms = expires_ms;
    memcpy(victim->label, label, n + 1);
}
