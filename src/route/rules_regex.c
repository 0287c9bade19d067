/* rules_regex: the `regex` conditions of the rule language — patterns
 * compiled once with PCRE2 (UTF, UCP, JIT when available), errors at the
 * list item, and each pattern's literal prefilter: for every top-level
 * alternative, a literal every match must contain, registered with the
 * keyword automaton so that a regex whose literals are absent from the text
 * is never run. Called by rules_parse.c at configuration load. */
#include "route/rules_tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static pcre2_code *compile_re(ywalk_t *c, const yaml_node_t *n, const char *what, const char *pat)
{
    int errcode;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_CASELESS,
                                   &errcode,
                                   &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        yw_error(c, n, "%s: invalid regular expression /%s/: %s at offset %zu", what, pat,
                 (const char *)msg, (size_t)off);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return re;
}

/* The longest run of ASCII characters that every match of pat must contain,
 * copied to out (NUL-terminated); 0 when there is none of at least 3 bytes or
 * the pattern is beyond this conservative reading (top-level alternation,
 * option settings other than (?i)/(?-i)/(?:, \Q...\E). A run ends at
 * anything that is not a plain character: classes, groups, escapes of
 * letters or digits, anchors, dots; a character made optional by ?, * or {
 * is dropped. The keyword automaton matches it ASCII-case-insensitively,
 * a superset of what the regex needs — except that caseless Unicode
 * matching also lets 'k' match U+212A and 's' U+017F, which the caller
 * handles through *has_ks. */
static size_t regex_literal(const char *pat, char *out, size_t cap, bool *has_ks)
{
    char run[257];
    size_t n = 0, best = 0;
    int depth = 0;
    const char *p = pat;
    *has_ks = false;
    if (strncmp(p, "(?i)", 4) == 0)
        p += 4;
    else if (strncmp(p, "(?-i)", 5) == 0)
        p += 5;
#define FLUSH()                                                                                    \
    do {                                                                                           \
        if (n > best && n < cap) {                                                                 \
            memcpy(out, run, n);                                                                   \
            out[n] = '\0';                                                                         \
            best = n;                                                                              \
        }                                                                                          \
        n = 0;                                                                                     \
    } while (0)
    for (; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '(' && p[1] == '?' && p[2] != ':')
            return 0; /* options, lookarounds, named groups: do not guess */
        if (ch == '\\' && p[1] == 'Q')
            return 0;
        if (depth > 0) {
            if (ch == '\\' && p[1])
                p++;
            else if (ch == '(')
                depth++;
            else if (ch == ')')
                depth--;
            else if (ch == '[') {
                for (p++; *p && *p != ']'; p++) {
                    if (*p == '[')
                        return 0;
                    if (*p == '\\' && p[1])
                        p++;
                }
                if (!*p)
                    return 0;
            }
            continue;
        }
        switch (ch) {
        case '|':
            return 0;
        case '(':
            FLUSH();
            depth++;
            continue;
        case '[':
            FLUSH();
            p++;
            if (*p == '^')
                p++;
            if (*p == ']')
                p++;
            for (; *p && *p != ']'; p++) {
                if (*p == '[')
                    return 0; /* POSIX classes [:alpha:] and the like */
                if (*p == '\\' && p[1])
                    p++;
            }
            if (!*p)
                return 0;
            continue;
        case '?':
        case '*':
        case '{':
            if (n > 0)
                n--; /* the last character is optional */
            FLUSH();
            if (ch == '{')
                while (p[1] && *p != '}')
                    p++;
            continue;
        case '+':
            FLUSH();
            continue;
        case '.':
        case '^':
        case '$':
        case ')':
            FLUSH();
            continue;
        case '\\':
            if (p[1] == '\0')
                return 0;
            p++;
            ch = (unsigned char)*p;
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
                /* one-letter escapes (classes, anchors, control characters)
                 * end the run; longer ones (\x41, \101, \cA, \pL, \g1,
                 * \k<n>, \N{...}, \o{...}) could stand for text: give up */
                if (strchr("bBsSwWdDhHvVRAzZGKntrfea", ch) == NULL)
                    return 0;
                FLUSH();
                continue;
            }
            break; /* an escaped punctuation character is itself */
        default:
            break;
        }
        if (ch >= 0x80 || ch < 0x20) {
            FLUSH();
            continue;
        }
        if (n < sizeof run - 1)
            run[n++] = (char)ch;
    }
    FLUSH();
#undef FLUSH
    if (best < 3)
        return 0;
    for (size_t i = 0; i < best; i++)
        if (out[i] == 'k' || out[i] == 'K' || out[i] == 's' || out[i] == 'S')
            *has_ks = true;
    return best;
}

/* Splits pat at its top-level '|' and gives every alternative its required
 * literal; the regex gets a prefilter only if every alternative has one. */
void rules_regex_prefilter(rules_t *rs, cond_t *k, size_t j)
{
    const char *pat = k->strs[j], *start = pat, *p;
    int depth = 0;
    unsigned n = 0;
    int ids[REGEX_MAX_ALTS];
    bool ks_any = false;
    for (p = pat;; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == '[') { /* skip a class */
            for (p++; *p && *p != ']'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (!*p)
                return;
            continue;
        }
        if (*p == '(')
            depth++;
        else if (*p == ')')
            depth--;
        if (*p == '\0' || (*p == '|' && depth == 0)) {
            char alt[1024], lit[257];
            size_t len = (size_t)(p - start), ln;
            bool ks;
            if (len >= sizeof alt || n == REGEX_MAX_ALTS)
                return;
            memcpy(alt, start, len);
            alt[len] = '\0';
            ln = regex_literal(alt, lit, sizeof lit, &ks);
            if (ln == 0)
                return; /* an alternative without a literal: always run */
            ids[n] = kwset_add_substring(rs->kw, lit, ln);
            if (ids[n++] < 0)
                return;
            ks_any = ks_any || ks;
            if (*p == '\0')
                break;
            start = p + 1;
        }
    }
    memcpy(k->lit[j], ids, n * sizeof *ids);
    k->n_lit[j] = (unsigned char)n;
    k->lit_ks[j] = ks_any;
}

/* n is the pattern's node, or the list holding the patterns in order. */
bool rules_compile_res(ywalk_t *c, const yaml_node_t *n, const char *what, cond_t *k)
{
    bool ok = true;
    k->re = xcalloc(k->n_strs, sizeof *k->re);
    for (size_t i = 0; i < k->n_strs; i++) {
        const yaml_node_t *at = n;
        if (n->type == YAML_SEQUENCE_NODE && (size_t)(n->data.sequence.items.top -
                                                      n->data.sequence.items.start) > i)
            at = yw_node(c, n->data.sequence.items.start[i]);
        k->re[i] = compile_re(c, at, what, k->strs[i]);
        ok = ok && k->re[i] != NULL;
    }
    return ok;
}
