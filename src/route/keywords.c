/* keywords: Aho-Corasick over a reduced alphabet, compiled to a dense DFA.
 *
 * Building: kwset_add inserts the case-folded keyword into a byte trie
 * (first-child / next-sibling lists, so adding stays cheap and duplicates are
 * found by walking the trie). kwset_compile then
 *   1. maps bytes to classes: every distinct byte that occurs in a keyword
 *      gets its own class, A-Z share the class of a-z, everything else is
 *      class 0 ("other", which always leads back towards the root);
 *   2. computes failure links breadth-first, and for each state the first
 *      keyword on its output chain (its own keyword, else the first one
 *      reachable through failure links) — the dictionary-suffix link, stored
 *      per keyword as `next`, so reporting never walks failure links;
 *   3. numbers the states so that all states with an output come last, and
 *      fills the table delta[state][class] with the failure transitions
 *      already resolved (the row of a state without a child for a class is a
 *      copy of its failure state's entry).
 *
 * Table layout: row r holds `classes` transitions plus one extra slot with the
 * first keyword id of the state's output chain. Transitions are stored
 * pre-multiplied (the offset of the target row), so the scan loop is
 *     s = delta[s + class[byte]];  if (s >= first_out) report(...)
 * with no multiplication and no extra load per byte. Invariant: root is row 0
 * and has no output; rows at offsets >= first_out are exactly the states whose
 * output chain is non-empty.
 *
 * Word-boundary checks run only when an output fires.
 *
 * Scanning: one DFA walk is bound by the latency of its dependent loads, not
 * by bandwidth, so a text of INTERLEAVE_MIN bytes or more is cut into STREAMS
 * slices walked in the same loop, each slice after the first starting
 * maxlen - 1 bytes early so that matches across a cut are still seen. */
#include "route/keywords.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define NONE UINT32_MAX
#define NO_KW (-1)

/* Flags per keyword: its first / last byte is an ASCII word character, so a
 * match needs a non-word neighbour on that side. */
#define KW_LEFT 1u
#define KW_RIGHT 2u

/* Number of interleaved DFA walks in kwset_scan (its loop is written out for
 * exactly four) and the text length from which it interleaves. */
#define STREAMS 4
#define INTERLEAVE_MIN 128

/* Trie node, only alive between kwset_new and kwset_compile. */
typedef struct node {
    uint32_t child;   /* first child, or NONE */
    uint32_t sibling; /* next sibling, or NONE */
    int32_t kw;       /* keyword ending here, or NO_KW */
    int32_t kw2;      /* substring (no-boundary) keyword ending here, or NO_KW */
    uint8_t byte;     /* folded byte on the edge from the parent */
} node_t;

/* What the scan needs per keyword. */
typedef struct kwinfo {
    int32_t next;  /* next keyword on the output chain (a proper suffix), or NO_KW */
    uint16_t len;  /* bytes */
    uint8_t flags; /* KW_LEFT | KW_RIGHT */
} kwinfo_t;

struct kwset {
    /* building */
    node_t *nodes;
    size_t nnodes, nodes_alloc;
    int compiled;

    /* per keyword, indexed by id */
    kwinfo_t *kw;
    size_t nkw, kw_alloc;
    size_t maxlen; /* longest keyword, bytes */

    /* compiled */
    uint8_t cls[256];   /* byte -> class */
    size_t nclasses;    /* including class 0 */
    size_t stride;      /* nclasses + 1 (the output slot) */
    size_t nstates;
    uint32_t first_out; /* offset of the first state with an output */
    uint32_t *delta;    /* nstates * stride entries */
};

static int is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static unsigned char fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static uint32_t new_node(kwset_t *ks, uint8_t byte)
{
    node_t *n;
    if (ks->nnodes == ks->nodes_alloc) {
        ks->nodes_alloc *= 2;
        ks->nodes = xrealloc(ks->nodes, ks->nodes_alloc * sizeof *ks->nodes);
    }
    n = &ks->nodes[ks->nnodes];
    n->child = NONE;
    n->sibling = NONE;
    n->kw = NO_KW;
    n->kw2 = NO_KW;
    n->byte = byte;
    return (uint32_t)ks->nnodes++;
}

static uint32_t find_child(const kwset_t *ks, uint32_t parent, uint8_t byte)
{
    uint32_t c;
    for (c = ks->nodes[parent].child; c != NONE; c = ks->nodes[c].sibling)
        if (ks->nodes[c].byte == byte)
            return c;
    return NONE;
}

kwset_t *kwset_new(void)
{
    kwset_t *ks = xcalloc(1, sizeof *ks);
    ks->nodes_alloc = 64;
    ks->nodes = xmalloc(ks->nodes_alloc * sizeof *ks->nodes);
    new_node(ks, 0); /* root */
    ks->kw_alloc = 16;
    ks->kw = xmalloc(ks->kw_alloc * sizeof *ks->kw);
    return ks;
}

void kwset_free(kwset_t *ks)
{
    if (ks == NULL)
        return;
    free(ks->nodes);
    free(ks->kw);
    free(ks->delta);
    free(ks);
}

static int add(kwset_t *ks, const char *kw, size_t len, bool substring)
{
    const unsigned char *p = (const unsigned char *)kw;
    uint32_t cur = 0;
    size_t i;
    kwinfo_t *info;
    int32_t *slot;

    if (ks->compiled || kw == NULL || len == 0 || len > KWSET_MAX_KEYWORD)
        return -1;
    for (i = 0; i < len; i++) {
        uint8_t b = fold(p[i]);
        uint32_t next = find_child(ks, cur, b);
        if (next == NONE) {
            next = new_node(ks, b);
            /* prepend: sibling order does not matter */
            ks->nodes[next].sibling = ks->nodes[cur].child;
            ks->nodes[cur].child = next;
        }
        cur = next;
    }
    slot = substring ? &ks->nodes[cur].kw2 : &ks->nodes[cur].kw;
    if (*slot != NO_KW)
        return *slot;

    if (ks->nkw == ks->kw_alloc) {
        ks->kw_alloc *= 2;
        ks->kw = xrealloc(ks->kw, ks->kw_alloc * sizeof *ks->kw);
    }
    info = &ks->kw[ks->nkw];
    info->next = NO_KW;
    info->len = (uint16_t)len;
    info->flags = substring ? 0u
                            : (uint8_t)((is_word(p[0]) ? KW_LEFT : 0u) |
                                        (is_word(p[len - 1]) ? KW_RIGHT : 0u));
    *slot = (int32_t)ks->nkw;
    if (len > ks->maxlen)
        ks->maxlen = len;
    return (int)ks->nkw++;
}

int kwset_add(kwset_t *ks, const char *kw, size_t len)
{
    return add(ks, kw, len, false);
}

int kwset_add_substring(kwset_t *ks, const char *s, size_t len)
{
    return add(ks, s, len, true);
}

/* Step 1: one class per distinct (folded) byte on a trie edge. */
static void build_classes(kwset_t *ks)
{
    uint8_t used[256] = {0};
    size_t i;
    unsigned c;

    for (i = 1; i < ks->nnodes; i++)
        used[ks->nodes[i].byte] = 1;
    memset(ks->cls, 0, sizeof ks->cls);
    ks->nclasses = 1;
    for (c = 0; c < 256; c++)
        if (used[c])
            ks->cls[c] = (uint8_t)ks->nclasses++;
    for (c = 'A'; c <= 'Z'; c++)
        ks->cls[c] = ks->cls[fold((unsigned char)c)];
}

int kwset_compile(kwset_t *ks)
{
    size_t n = ks->nnodes, stride, head, tail, i, n0;
    uint32_t *order = NULL, *fail = NULL, *perm = NULL, *delta = NULL;
    int32_t *first_kw = NULL;
    int rc = -1;

    if (ks->compiled)
        return 0;
    build_classes(ks);
    stride = ks->nclasses + 1;
    if (n > KWSET_MAX_TABLE_BYTES / sizeof(uint32_t) / stride)
        goto out;
    delta = malloc(n * stride * sizeof *delta);
    if (delta == NULL)
        goto out;

    /* Step 2: breadth-first failure links and output chains. A state's
     * failure target is shallower, hence already visited and complete. */
    order = xmalloc(n * sizeof *order);
    fail = xmalloc(n * sizeof *fail);
    first_kw = xmalloc(n * sizeof *first_kw);
    order[0] = 0;
    fail[0] = 0;
    first_kw[0] = NO_KW;
    head = 0;
    tail = 1;
    while (head < tail) {
        uint32_t u = order[head++], v;
        for (v = ks->nodes[u].child; v != NONE; v = ks->nodes[v].sibling) {
            uint8_t b = ks->nodes[v].byte;
            uint32_t f = 0;
            if (u != 0) {
                uint32_t g = fail[u];
                for (;;) {
                    uint32_t w = find_child(ks, g, b);
                    if (w != NONE) {
                        f = w;
                        break;
                    }
                    if (g == 0)
                        break;
                    g = fail[g];
                }
            }
            fail[v] = f;
            first_kw[v] = first_kw[f];
            /* the state's own keywords (word and substring form) head its chain */
            if (ks->nodes[v].kw2 != NO_KW) {
                ks->kw[ks->nodes[v].kw2].next = first_kw[v];
                first_kw[v] = ks->nodes[v].kw2;
            }
            if (ks->nodes[v].kw != NO_KW) {
                ks->kw[ks->nodes[v].kw].next = first_kw[v];
                first_kw[v] = ks->nodes[v].kw;
            }
            order[tail++] = v;
        }
    }

    /* Step 3: states without output first (root stays 0), then the rest. */
    perm = xmalloc(n * sizeof *perm);
    n0 = 0;
    for (i = 0; i < n; i++)
        if (first_kw[order[i]] == NO_KW)
            perm[order[i]] = (uint32_t)n0++;
    {
        size_t k = n0;
        for (i = 0; i < n; i++)
            if (first_kw[order[i]] != NO_KW)
                perm[order[i]] = (uint32_t)k++;
    }
    for (i = 0; i < n; i++) {
        uint32_t u = order[i], v;
        uint32_t *row = delta + (size_t)perm[u] * stride;
        if (u == 0)
            memset(row, 0, ks->nclasses * sizeof *row);
        else
            memcpy(row, delta + (size_t)perm[fail[u]] * stride, ks->nclasses * sizeof *row);
        for (v = ks->nodes[u].child; v != NONE; v = ks->nodes[v].sibling)
            row[ks->cls[ks->nodes[v].byte]] = (uint32_t)((size_t)perm[v] * stride);
        row[ks->nclasses] = first_kw[u] == NO_KW ? NONE : (uint32_t)first_kw[u];
    }

    ks->stride = stride;
    ks->nstates = n;
    ks->first_out = (uint32_t)(n0 * stride);
    ks->delta = delta;
    delta = NULL;
    ks->compiled = 1;
    /* the trie is not needed any more */
    free(ks->nodes);
    ks->nodes = NULL;
    ks->nnodes = ks->nodes_alloc = 0;
    rc = 0;
out:
    free(delta);
    free(order);
    free(fail);
    free(first_kw);
    free(perm);
    return rc;
}

size_t kwset_count(const kwset_t *ks)
{
    return ks->nkw;
}

void kwset_stats(const kwset_t *ks, kwset_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->keywords = ks->nkw;
    st->total_bytes = sizeof *ks + ks->kw_alloc * sizeof *ks->kw + ks->nodes_alloc * sizeof *ks->nodes;
    if (!ks->compiled)
        return;
    st->states = ks->nstates;
    st->classes = ks->nclasses;
    st->table_bytes = ks->nstates * ks->stride * sizeof *ks->delta;
    st->total_bytes += st->table_bytes;
}

/* An output fired with the match ending at text[end]: walk the output chain
 * (keywords only, never plain failure links) and record those not seen yet
 * whose boundaries hold. Kept out of line so the scan loop stays small. */
static __attribute__((noinline)) size_t report(const kwset_t *ks, const unsigned char *text, size_t len,
                                               size_t end, uint32_t id, uint64_t *hits)
{
    size_t found = 0;
    int32_t k;

    for (k = (int32_t)id; k != NO_KW; k = ks->kw[k].next) {
        const kwinfo_t *info = &ks->kw[k];
        uint64_t bit = (uint64_t)1 << ((uint32_t)k & 63u);
        uint64_t *word = &hits[(uint32_t)k >> 6];
        if (*word & bit)
            continue;
        if ((info->flags & KW_LEFT) && end + 1 > info->len && is_word(text[end - info->len]))
            continue;
        if ((info->flags & KW_RIGHT) && end + 1 < len && is_word(text[end + 1]))
            continue;
        *word |= bit;
        found++;
    }
    return found;
}

/* Runs the DFA over text[from..to) from state *sp, reporting every output. */
static size_t run(const kwset_t *ks, const unsigned char *text, size_t len, size_t from, size_t to,
                  uint32_t *sp, uint64_t *hits)
{
    const uint32_t *delta = ks->delta;
    const uint8_t *cls = ks->cls;
    const uint32_t first_out = ks->first_out;
    size_t found = 0, i;
    uint32_t s = *sp;

    for (i = from; i < to; i++) {
        s = delta[s + cls[text[i]]];
        if (__builtin_expect(s >= first_out, 0))
            found += report(ks, text, len, i, delta[s + ks->nclasses], hits);
    }
    *sp = s;
    return found;
}

size_t kwset_scan(const kwset_t *ks, const char *text, size_t len, uint64_t *hits)
{
    const unsigned char *p = (const unsigned char *)text;
    const uint32_t *delta = ks->delta;
    const uint8_t *cls = ks->cls;
    const uint32_t first_out = ks->first_out;
    const size_t out_slot = ks->nclasses;
    const size_t warm = ks->maxlen - 1;
    const unsigned char *q0, *q1, *q2, *q3;
    uint32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t found = 0, step, i;

    if (!ks->compiled || ks->nkw == 0)
        return 0;
    step = len / STREAMS;
    if (len < INTERLEAVE_MIN || step < 2 * warm + 1)
        return run(ks, p, len, 0, len, &s0, hits);

    /* Stream k covers [k*step, (k+1)*step) (the last one up to len) and
     * starts `warm` bytes early: a match ending in its range is at most maxlen
     * bytes long, so it starts inside what the stream has read, and the
     * stream's state then has it on its output chain. Outputs during the
     * warm-up are real matches too, already seen by the previous stream; the
     * hit bitset makes reporting them twice harmless, and the warm-up is short
     * (step >= 2 * warm + 1). */
    q0 = p;
    q1 = p + step - warm;
    q2 = q1 + step;
    q3 = q2 + step;
    for (i = 0; i < step; i++) {
        s0 = delta[s0 + cls[q0[i]]];
        s1 = delta[s1 + cls[q1[i]]];
        s2 = delta[s2 + cls[q2[i]]];
        s3 = delta[s3 + cls[q3[i]]];
        /* one rarely taken branch for all four streams */
        if (__builtin_expect((s0 >= first_out) | (s1 >= first_out) | (s2 >= first_out) | (s3 >= first_out),
                             0)) {
            if (s0 >= first_out)
                found += report(ks, p, len, i, delta[s0 + out_slot], hits);
            if (s1 >= first_out)
                found += report(ks, p, len, (size_t)(q1 - p) + i, delta[s1 + out_slot], hits);
            if (s2 >= first_out)
                found += report(ks, p, len, (size_t)(q2 - p) + i, delta[s2 + out_slot], hits);
            if (s3 >= first_out)
                found += report(ks, p, len, (size_t)(q3 - p) + i, delta[s3 + out_slot], hits);
        }
    }
    /* each of streams 1..3 has its last `warm` bytes left, the last stream
     * also the remainder of len / STREAMS */
    found += run(ks, p, len, 2 * step - warm, 2 * step, &s1, hits);
    found += run(ks, p, len, 3 * step - warm, 3 * step, &s2, hits);
    found += run(ks, p, len, 4 * step - warm, len, &s3, hits);
    return found;
}
