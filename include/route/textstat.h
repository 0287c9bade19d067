/* textstat: cheap statistics about a prompt's text for the rule engine —
 * letters per script, the dominant script, a language guess and an estimated
 * token count — without a tokenizer. One pass (ts_scan) gives the counts and
 * the estimate; ts_language needs a second pass over the text only when the
 * dominant script is Latin (stop words). Input is UTF-8 and may be invalid;
 * nothing is allocated and nothing is read past len. Any thread may call
 * these: the lookup tables are built once, by the first call, under
 * pthread_once, and are read-only afterwards.
 *
 * Token estimate, calibrated on cl100k_base (gpt-4, gpt-3.5-turbo) in
 * docs/token-estimate.md:
 *   tokens = ceil(ascii_bytes / 4 + sum over non-ASCII code points of k)
 * with k by class of code point (TS_K_* below, in thousandths of a token).
 * Against cl100k it is within about ±20% on the corpora measured (English
 * prose +18-22%, CJK +0-4%, Russian +4-10%). o200k_base (gpt-4o and later)
 * needs fewer tokens outside English: there the estimate runs 25-45% high
 * on CJK and Cyrillic and 2-3.5 times the count on Indic and other
 * scripts. An upper-leaning guess for routing and context checks, not a
 * count. */
#ifndef LLMROUTER_TEXTSTAT_H
#define LLMROUTER_TEXTSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ts_script {
    TS_SCRIPT_NONE = 0, /* no letters at all (ts_dominant_script only) */
    TS_SCRIPT_LATIN,
    TS_SCRIPT_CYRILLIC,
    TS_SCRIPT_GREEK,
    TS_SCRIPT_ARABIC,
    TS_SCRIPT_HEBREW,
    TS_SCRIPT_DEVANAGARI,
    TS_SCRIPT_THAI,
    TS_SCRIPT_HAN,
    TS_SCRIPT_KANA,   /* hiragana and katakana */
    TS_SCRIPT_HANGUL,
    TS_SCRIPT_OTHER,  /* letters of other scripts (their digits and punctuation
                         included), and invalid UTF-8 bytes */
    TS_SCRIPT_COUNT
};

/* What ts_script_parse returns for the alias "cjk" (han, kana or hangul). Not
 * a valid index into ts_stats.letters. */
#define TS_SCRIPT_CJK TS_SCRIPT_COUNT

/* Token cost per code point outside ASCII, in thousandths of a token
 * (ASCII costs 250: bytes / 4). Chosen from the measurements against
 * cl100k_base in docs/token-estimate.md. */
#define TS_K_ASCII 250
#define TS_K_LATIN 1000      /* Latin-1 letters: é ñ ü ß ... */
#define TS_K_LATIN_EXT 2000  /* other Latin letters: ł ř ş ư ... */
#define TS_K_CYRILLIC 500
#define TS_K_GREEK 1200
#define TS_K_ARABIC 900
#define TS_K_HEBREW 1000
#define TS_K_DEVANAGARI 1250
#define TS_K_THAI 1000
#define TS_K_HAN 1100        /* han and kana */
#define TS_K_HANGUL 1200
#define TS_K_OTHER 1750      /* letters of other scripts (Bengali, Tamil, Georgian...) */
#define TS_K_INVALID 1000    /* each byte of invalid UTF-8 */
#define TS_K_SYMBOL 1000     /* non-ASCII punctuation, digits and symbols */
#define TS_K_EMOJI 2500      /* symbols outside the BMP (4 UTF-8 bytes): emoji */

/* Words ts_language examines at most, and bytes it reads at most, so that
 * its cost stays bounded on huge prompts; it stops sooner once one language
 * has TS_LANG_CLEAR_HITS stop-word hits and 3 times the runner-up's score. */
#define TS_LANG_MAX_WORDS 2000
#define TS_LANG_MAX_BYTES (16 * 1024)
#define TS_LANG_CLEAR_HITS 48

typedef struct ts_stats {
    uint32_t bytes, codepoints;
    /* letter code points per script, ASCII letters included under Latin;
     * combining marks of a script count as its letters; digits, spaces,
     * punctuation and symbols are not counted. letters[TS_SCRIPT_NONE] is
     * always 0. */
    uint32_t letters[TS_SCRIPT_COUNT];
    uint32_t tokens; /* estimated tokens of this text (see above) */
} ts_stats_t;

/* One pass over text[0, len): fills *out (every field is overwritten).
 * Invalid UTF-8 (a byte that cannot start a sequence, a sequence cut short,
 * overlong forms, surrogates, code points above U+10FFFF) counts byte by byte:
 * each offending byte is one code point and one TS_SCRIPT_OTHER letter. Counts
 * saturate at UINT32_MAX. text may be NULL when len is 0. */
void ts_scan(const char *text, size_t len, ts_stats_t *out);

/* Adds b's counts into a, field by field (for accumulating the messages of a
 * request), saturating at UINT32_MAX. The token sum is the sum of the
 * per-text estimates; add ts_chat_overhead for the message framing. */
void ts_add(ts_stats_t *a, const ts_stats_t *b);

/* Tokens a chat request adds around its messages' text: 3 per message plus 3
 * to prime the reply (openai-cookbook rule for gpt-3.5-turbo-0613 and later,
 * gpt-4, gpt-4o). Saturates at UINT32_MAX. */
uint32_t ts_chat_overhead(unsigned messages);

/* The script with the most letters, TS_SCRIPT_NONE when there are none.
 * Han and kana compete together (Japanese mixes them): when han + kana beat
 * every other script, the larger of the two is returned (han on a tie).
 * Other ties go to the script listed first in enum ts_script. */
enum ts_script ts_dominant_script(const ts_stats_t *st);

/* "latin", "cyrillic", "greek", "arabic", "hebrew", "devanagari", "thai",
 * "han", "kana", "hangul", "other" or "none" (also for out-of-range values).
 * Static string. */
const char *ts_script_name(enum ts_script s);

/* Inverse of ts_script_name, ASCII case-insensitive (for config
 * validation): the enum value, TS_SCRIPT_CJK for "cjk", or -1 for an unknown
 * name or NULL. */
int ts_script_parse(const char *name);

/* Whether a dominant script satisfies a configured script name: equal to the
 * parsed name, or, for "cjk", any of han, kana and hangul. false for unknown
 * names and NULL. */
bool ts_script_matches(enum ts_script dominant, const char *name);

/* Language guess from the stats of ts_scan over the same text (text is
 * needed again only when the dominant script is Latin). Returns a static
 * string:
 *  - Han/kana: "ja" when kana are at least 5% of han + kana, else "zh";
 *    hangul dominant: "ko".
 *  - One language per script: "ru" for Cyrillic (Ukrainian, Bulgarian,
 *    Serbian... are not told apart), "ar" for Arabic (also Persian, Urdu),
 *    "hi" for Devanagari (also Marathi, Nepali), "el", "he", "th".
 *  - Latin: "en", "es", "fr", "de", "pt" or "it" by stop-word counts over the
 *    first TS_LANG_MAX_WORDS words (and TS_LANG_MAX_BYTES bytes, and no
 *    further than needed, see TS_LANG_CLEAR_HITS): the best language needs at
 *    least 2 stop-word hits and a score at least 1.5 times the runner-up's,
 *    where a word in several languages' lists counts for each of them divided
 *    by their number; and at most 10% of the words may hold Latin letters
 *    beyond Latin-1 (else it is Polish, Czech, Turkish, Vietnamese...).
 *  - Anything else, no letters, or too little evidence: "und".
 * text may be NULL when len is 0. */
const char *ts_language(const char *text, size_t len, const ts_stats_t *st);

#endif
