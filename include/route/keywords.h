/* keywords: many keywords, one pass. A keyword set is an Aho-Corasick
 * automaton compiled into a dense DFA, so testing a prompt against hundreds of
 * keywords costs one table lookup per byte of text, whatever the number of
 * keywords.
 *
 * Life cycle: kwset_new, kwset_add (any number), kwset_compile, then
 * kwset_scan. Building (new/add/compile/free) belongs to one thread, normally
 * the one loading the configuration. After kwset_compile the set is immutable
 * and kwset_scan, kwset_count and kwset_stats may be called from any number of
 * threads at once.
 *
 * Matching semantics:
 *  - Case: ASCII letters are folded (A-Z == a-z) in keywords and text. Every
 *    other byte matches only itself: there is no Unicode case folding, so
 *    "É" does not match "é" and "ΣΟΦΙΑ" does not match "σοφια".
 *  - Word boundaries: a word character is an ASCII byte in [A-Za-z0-9_].
 *    If a keyword's first byte is a word character, the text byte just before
 *    the match must not be one (or the match starts the text); likewise for
 *    its last byte and the text byte just after. Edges that are not word
 *    characters need no boundary. So "prove" matches in "please prove it" and
 *    "Prove:" but not in "improve" or "proven"; "c++" matches in "c++11" but
 *    not in "abc++"; "證明" matches inside "請證明這個"; "ok證明" needs a
 *    boundary before the "o" only. Bytes >= 0x80 are never word characters,
 *    so "prove" also matches in "éprove" (the byte before is a UTF-8
 *    continuation byte).
 *  - Multi-word keywords ("step by step") are matched literally, byte for byte
 *    (after case folding): one space matches one space only.
 *  - Overlapping and nested matches all count: in "step by step" both "step"
 *    and "step by step" are found.
 *  - The text is bytes: invalid UTF-8 and NUL bytes are scanned like any
 *    other byte, never rejected.
 */
#ifndef LLMROUTER_KEYWORDS_H
#define LLMROUTER_KEYWORDS_H

#include <stddef.h>
#include <stdint.h>

/* Longest keyword accepted by kwset_add, in bytes. */
#define KWSET_MAX_KEYWORD 256

/* kwset_compile fails rather than build a transition table larger than this
 * (states x (classes + 1) x 4 bytes). Realistic sets are far below it: 500
 * English keywords and phrases (a few CJK) need about 0.8 MiB. */
#define KWSET_MAX_TABLE_BYTES ((size_t)64 << 20)

typedef struct kwset kwset_t;

/* Sizes of a compiled set, for logs and metrics. */
typedef struct kwset_stats {
    size_t keywords;    /* distinct keywords (== kwset_count) */
    size_t states;      /* DFA states, root included */
    size_t classes;     /* byte classes, the "other" class included */
    size_t table_bytes; /* the transition table */
    size_t total_bytes; /* everything the set holds after compile */
} kwset_stats_t;

/* Creates an empty set (aborts on out-of-memory). Caller frees with
 * kwset_free. */
kwset_t *kwset_new(void);

/* Frees the set and everything it holds. NULL is a no-op. */
void kwset_free(kwset_t *ks);

/* Adds the keyword kw[0..len) (UTF-8; borrowed, copied into the set).
 * Returns its id: ids are 0, 1, 2, ... in order of addition, and a keyword
 * equal to an earlier one after ASCII case folding ("Prove" after "prove")
 * returns the earlier id without adding anything. Returns -1 if the keyword
 * is empty, longer than KWSET_MAX_KEYWORD bytes, or the set is already
 * compiled. */
int kwset_add(kwset_t *ks, const char *kw, size_t len);

/* Adds a literal that matches anywhere, without word boundaries (ASCII
 * case-insensitive like keywords), and returns its id; the same bytes added
 * with kwset_add get a different id. The rule engine uses these as
 * prefilters for regular expressions. Only before kwset_compile. */
int kwset_add_substring(kwset_t *ks, const char *s, size_t len);

/* Builds the automaton. Returns 0, or -1 if the transition table would exceed
 * KWSET_MAX_TABLE_BYTES or cannot be allocated (the set then stays
 * uncompiled and scans find nothing). A set with no keywords compiles fine.
 * Calling it again on a compiled set returns 0 and does nothing. */
int kwset_compile(kwset_t *ks);

/* Number of distinct keywords added (the highest id + 1). */
size_t kwset_count(const kwset_t *ks);

/* Fills *st with the sizes of a compiled set (states, classes and bytes are 0
 * before kwset_compile). */
void kwset_stats(const kwset_t *ks, kwset_stats_t *st);

/* Scans text[0..len) once (text is borrowed; it may be NULL when len is 0)
 * and sets bit (id % 64) of hits[id / 64] for every keyword found. hits is an
 * array of (kwset_count + 63) / 64 words that the caller zeroed. Returns the
 * number of bits this call set, i.e. the number of distinct keywords found.
 * Finds nothing on a set that is not compiled. */
size_t kwset_scan(const kwset_t *ks, const char *text, size_t len, uint64_t *hits);

#endif
