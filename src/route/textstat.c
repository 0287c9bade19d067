/* textstat: script counts, token estimate and language guess.
 *
 * ts_scan runs ASCII 32 and then eight bytes at a time (SWAR: the letters of
 * a word with no high bit are counted with a few arithmetic operations, no
 * branch per byte) and decodes everything else strictly, looking the code point's class
 * up in a two-level table for the BMP (a binary search of cp_ranges above it).
 *
 * ts_language's stop-word table maps a word, packed into a uint64_t as up to
 * eight Latin-1 bytes, to the set of languages whose list holds it: an
 * open-addressing hash table built from the readable per-language lists. A
 * word's leading ASCII letters are read eight bytes at once (the packing is a
 * little-endian load, lowercased), and the rest of a word that a digit or '_'
 * spoilt is skipped without packing.
 *
 * The BMP table, the word-character table and the stop-word table are derived
 * from the const tables in this file by tables_build, run once under
 * pthread_once by the first ts_scan or ts_language; nothing writes them
 * afterwards, so any thread may read them.
 *
 * One file past ~800 lines, on purpose: the scanner and the language guess
 * share the code-point classes, the word-character table, the Latin-1 fold
 * and the one-time table build; split, they would need a header exposing
 * all of those tables for about 270 lines of stop-word code. */
#include "route/textstat.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>

/* ---- code point classes ---- */

/* A non-ASCII code point's class: the script whose letter it is, or
 * CLS_NONE for punctuation, digits, symbols, combining marks without a script
 * of their own, unassigned and private-use code points. Latin letters beyond
 * Latin-1 have a class of their own because they cost more tokens; they are
 * counted as Latin letters. */
enum cls {
    CLS_NONE = TS_SCRIPT_NONE,
    CLS_LATIN = TS_SCRIPT_LATIN, /* Latin-1 letters (ª º À-ÿ but × ÷) */
    CLS_CYRILLIC = TS_SCRIPT_CYRILLIC,
    CLS_GREEK = TS_SCRIPT_GREEK,
    CLS_ARABIC = TS_SCRIPT_ARABIC,
    CLS_HEBREW = TS_SCRIPT_HEBREW,
    CLS_DEVANAGARI = TS_SCRIPT_DEVANAGARI,
    CLS_THAI = TS_SCRIPT_THAI,
    CLS_HAN = TS_SCRIPT_HAN,
    CLS_KANA = TS_SCRIPT_KANA,
    CLS_HANGUL = TS_SCRIPT_HANGUL,
    CLS_OTHER = TS_SCRIPT_OTHER,
    CLS_LATIN_EXT = TS_SCRIPT_COUNT, /* other Latin letters: ł ř ş ư ... */
    CLS_COUNT
};

/* A range of code points of one class. Code points in no range are letters
 * of TS_SCRIPT_OTHER. */
struct cp_range {
    uint32_t lo, hi;
    uint8_t cls;
};

#define R(lo, hi, c) {lo, hi, CLS_##c}

/* Sorted, non-overlapping. Gaps are TS_SCRIPT_OTHER letters (Armenian,
 * Georgian, the other Indic scripts, Ethiopic, ...). */
static const struct cp_range cp_ranges[] = {
    R(0x0080, 0x00A9, NONE), /* C1 controls, NBSP, ¡ ¢ £ ... © */
    R(0x00AA, 0x00AA, LATIN),
    R(0x00AB, 0x00B9, NONE),
    R(0x00BA, 0x00BA, LATIN),
    R(0x00BB, 0x00BF, NONE),
    R(0x00C0, 0x00D6, LATIN),
    R(0x00D7, 0x00D7, NONE), /* × */
    R(0x00D8, 0x00F6, LATIN),
    R(0x00F7, 0x00F7, NONE), /* ÷ */
    R(0x00F8, 0x00FF, LATIN),
    R(0x0100, 0x02AF, LATIN_EXT), /* Extended-A/B, IPA */
    R(0x02B0, 0x036F, NONE),  /* spacing modifiers, combining diacritics */
    R(0x0370, 0x0373, GREEK),
    R(0x0374, 0x0375, NONE),
    R(0x0376, 0x037D, GREEK),
    R(0x037E, 0x037E, NONE), /* Greek question mark */
    R(0x037F, 0x0383, GREEK),
    R(0x0384, 0x0385, NONE),
    R(0x0386, 0x0386, GREEK),
    R(0x0387, 0x0387, NONE), /* ano teleia */
    R(0x0388, 0x03F5, GREEK),
    R(0x03F6, 0x03F6, NONE),
    R(0x03F7, 0x03FF, GREEK),
    R(0x0400, 0x0481, CYRILLIC),
    R(0x0482, 0x0482, NONE),
    R(0x0483, 0x052F, CYRILLIC),
    R(0x0590, 0x0590, NONE),
    R(0x0591, 0x05BD, HEBREW), /* cantillation and vowel points */
    R(0x05BE, 0x05BE, NONE),   /* maqaf */
    R(0x05BF, 0x05BF, HEBREW),
    R(0x05C0, 0x05C0, NONE),
    R(0x05C1, 0x05C2, HEBREW),
    R(0x05C3, 0x05C3, NONE),
    R(0x05C4, 0x05C5, HEBREW),
    R(0x05C6, 0x05C6, NONE),
    R(0x05C7, 0x05F2, HEBREW),
    R(0x05F3, 0x05FF, NONE),
    R(0x0600, 0x060F, NONE), /* number signs, Arabic comma, ... */
    R(0x0610, 0x061A, ARABIC),
    R(0x061B, 0x061F, NONE), /* Arabic semicolon, question mark */
    R(0x0620, 0x065F, ARABIC),
    R(0x0660, 0x066D, NONE), /* Arabic-Indic digits, percent, ... */
    R(0x066E, 0x06D3, ARABIC),
    R(0x06D4, 0x06D4, NONE), /* Arabic full stop */
    R(0x06D5, 0x06DC, ARABIC),
    R(0x06DD, 0x06DE, NONE),
    R(0x06DF, 0x06E8, ARABIC),
    R(0x06E9, 0x06E9, NONE),
    R(0x06EA, 0x06EF, ARABIC),
    R(0x06F0, 0x06F9, NONE), /* extended Arabic-Indic digits */
    R(0x06FA, 0x06FC, ARABIC),
    R(0x06FD, 0x06FE, NONE),
    R(0x06FF, 0x06FF, ARABIC),
    R(0x0750, 0x077F, ARABIC),
    R(0x0870, 0x08FF, ARABIC),
    R(0x0900, 0x0963, DEVANAGARI),
    R(0x0964, 0x0970, NONE), /* dandas, digits, abbreviation sign */
    R(0x0971, 0x097F, DEVANAGARI),
    R(0x0E00, 0x0E3A, THAI),
    R(0x0E3B, 0x0E3F, NONE), /* baht sign */
    R(0x0E40, 0x0E4E, THAI),
    R(0x0E4F, 0x0E7F, NONE), /* fongman, Thai digits, ... */
    R(0x1100, 0x11FF, HANGUL), /* jamo */
    R(0x1AB0, 0x1AFF, NONE),
    R(0x1C80, 0x1C8F, CYRILLIC),
    R(0x1D00, 0x1DBF, LATIN_EXT), /* phonetic extensions */
    R(0x1DC0, 0x1DFF, NONE),
    R(0x1E00, 0x1EFF, LATIN_EXT), /* Latin Extended Additional (Vietnamese) */
    R(0x1F00, 0x1FFF, GREEK),
    R(0x2000, 0x2BFF, NONE), /* punctuation, super/subscripts, currency, arrows,
                                maths, box drawing, shapes, dingbats, ... */
    R(0x2C60, 0x2C7F, LATIN_EXT),
    R(0x2DE0, 0x2DFF, CYRILLIC),
    R(0x2E00, 0x3004, NONE), /* supplemental punctuation, CJK radicals,
                                ideographic space and punctuation */
    R(0x3005, 0x3007, HAN),  /* 々 〆 〇 */
    R(0x3008, 0x3020, NONE), /* CJK brackets */
    R(0x3021, 0x3029, HAN),  /* Hangzhou numerals */
    R(0x302A, 0x3040, NONE),
    R(0x3041, 0x3096, KANA), /* hiragana */
    R(0x3097, 0x3098, NONE),
    R(0x3099, 0x309F, KANA),
    R(0x30A0, 0x30A0, NONE),
    R(0x30A1, 0x30FA, KANA), /* katakana */
    R(0x30FB, 0x30FB, NONE), /* katakana middle dot */
    R(0x30FC, 0x30FF, KANA),
    R(0x3130, 0x318F, HANGUL), /* compatibility jamo */
    R(0x3190, 0x319F, NONE),
    R(0x31C0, 0x31EF, NONE),
    R(0x31F0, 0x31FF, KANA),
    R(0x3200, 0x33FF, NONE), /* enclosed and compatibility CJK */
    R(0x3400, 0x4DBF, HAN),
    R(0x4DC0, 0x4DFF, NONE),
    R(0x4E00, 0x9FFF, HAN),
    R(0xA640, 0xA69F, CYRILLIC),
    R(0xA700, 0xA71F, NONE),
    R(0xA720, 0xA7FF, LATIN_EXT),
    R(0xA8E0, 0xA8FF, DEVANAGARI),
    R(0xA960, 0xA97F, HANGUL),
    R(0xAB30, 0xAB6F, LATIN_EXT),
    R(0xAC00, 0xD7FF, HANGUL), /* syllables, jamo extended-B */
    R(0xE000, 0xF8FF, NONE),   /* private use */
    R(0xF900, 0xFAFF, HAN),    /* compatibility ideographs */
    R(0xFB00, 0xFB06, LATIN_EXT),  /* ligatures */
    R(0xFB07, 0xFB12, NONE),
    R(0xFB1D, 0xFB4F, HEBREW),
    R(0xFB50, 0xFDFF, ARABIC), /* presentation forms A */
    R(0xFE00, 0xFE6F, NONE),   /* variation selectors, vertical and small forms */
    R(0xFE70, 0xFEFE, ARABIC), /* presentation forms B */
    R(0xFEFF, 0xFF20, NONE),   /* BOM, fullwidth punctuation and digits */
    R(0xFF21, 0xFF3A, LATIN_EXT),
    R(0xFF3B, 0xFF40, NONE),
    R(0xFF41, 0xFF5A, LATIN_EXT),
    R(0xFF5B, 0xFF65, NONE),
    R(0xFF66, 0xFF9F, KANA), /* halfwidth katakana */
    R(0xFFA0, 0xFFDC, HANGUL),
    R(0xFFDD, 0xFFFF, NONE),
    R(0x1AFF0, 0x1B16F, KANA), /* kana supplement and extensions */
    R(0x1D000, 0x1DFFF, NONE), /* musical, mathematical alphanumerics */
    R(0x1EE00, 0x1EEFF, NONE),
    R(0x1F000, 0x1FFFF, NONE), /* emoji, pictographs, symbols */
    R(0x20000, 0x323AF, HAN),  /* extensions B-H, compatibility supplement */
    R(0x323B0, 0x10FFFF, NONE),
};

#undef R

/* milli-tokens per non-ASCII code point of each class */
static const uint16_t cls_cost[CLS_COUNT] = {
    [CLS_NONE] = TS_K_SYMBOL,
    [CLS_LATIN] = TS_K_LATIN,
    [CLS_CYRILLIC] = TS_K_CYRILLIC,
    [CLS_GREEK] = TS_K_GREEK,
    [CLS_ARABIC] = TS_K_ARABIC,
    [CLS_HEBREW] = TS_K_HEBREW,
    [CLS_DEVANAGARI] = TS_K_DEVANAGARI,
    [CLS_THAI] = TS_K_THAI,
    [CLS_HAN] = TS_K_HAN,
    [CLS_KANA] = TS_K_HAN,
    [CLS_HANGUL] = TS_K_HANGUL,
    [CLS_OTHER] = TS_K_OTHER,
    [CLS_LATIN_EXT] = TS_K_LATIN_EXT,
};

/* Class of any code point >= 0x80 by binary search: the range holding it,
 * or CLS_OTHER in the gaps. Used to build the tables below and for
 * code points above the BMP. */
static unsigned range_class(uint32_t cp)
{
    size_t a = 0, b = sizeof(cp_ranges) / sizeof(cp_ranges[0]);

    /* the last range with lo <= cp */
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (cp_ranges[m].lo <= cp)
            a = m + 1;
        else
            b = m;
    }
    if (a > 0 && cp <= cp_ranges[a - 1].hi)
        return cp_ranges[a - 1].cls;
    return CLS_OTHER;
}

/* Two-level table for the BMP, built once from cp_ranges: bmp_page[cp >> 8]
 * is the class of a page whose 256 code points all share one, else
 * PAGE_MIXED + the index of the page's row in bmp_block (PAGE_SEARCH if the
 * rows ran out, which only a much longer cp_ranges could cause). */
#define PAGE_MIXED 0x80
#define PAGE_SEARCH 0xFF
#define MAX_BLOCKS 32 /* 26 needed */

static uint8_t bmp_page[256];
static uint8_t bmp_block[MAX_BLOCKS][256];

/* ts_language's view of an ASCII byte: a lowercase letter, or one of these. */
enum { WC_SEP = 0, WC_SPOIL = 1, WC_HIGH = 2 };
static uint8_t word_class[256];
/* The lowercase of the Latin-1 letter U+0080 + index, or 0. */
static uint8_t latin1_lower[128];

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void sw_build(void);
static unsigned latin1_fold(uint32_t c);

static void tables_build(void)
{
    unsigned blocks = 0;

    for (uint32_t page = 0; page < 256; page++) {
        uint8_t row[256];
        bool uniform = true;
        for (uint32_t k = 0; k < 256; k++) {
            uint32_t cp = page << 8 | k;
            row[k] = cp < 0x80 ? CLS_LATIN : (uint8_t)range_class(cp);
            uniform = uniform && row[k] == row[0];
        }
        if (uniform) {
            bmp_page[page] = row[0];
        } else if (blocks < MAX_BLOCKS) {
            memcpy(bmp_block[blocks], row, sizeof(row));
            bmp_page[page] = (uint8_t)(PAGE_MIXED + blocks++);
        } else {
            bmp_page[page] = PAGE_SEARCH;
        }
    }
    for (unsigned c = 0; c < 256; c++) {
        if (c >= 0x80)
            word_class[c] = WC_HIGH;
        else if ((c | 0x20) - 'a' < 26)
            word_class[c] = (uint8_t)(c | 0x20);
        else if (c - '0' < 10 || c == '_')
            word_class[c] = WC_SPOIL; /* identifiers are not stop words */
        else
            word_class[c] = WC_SEP;
    }
    for (uint32_t cp = 0x80; cp < 0x100; cp++)
        latin1_lower[cp - 0x80] = (uint8_t)latin1_fold(cp);
    sw_build();
}

/* Class of a non-ASCII code point (cp >= 0x80). Needs tables_once. */
static unsigned cp_class(uint32_t cp)
{
    if (cp < 0x10000) {
        unsigned p = bmp_page[cp >> 8];
        if (p < PAGE_MIXED)
            return p;
        if (p != PAGE_SEARCH)
            return bmp_block[p - PAGE_MIXED][cp & 0xFF];
    }
    return range_class(cp);
}

/* ---- UTF-8 ---- */

/* Decodes one well-formed sequence (Unicode Table 3-7) starting with a
 * non-ASCII byte at s[0], with n >= 1 bytes available. Returns its length
 * and stores the code point, or returns 0 when s[0] does not start a
 * well-formed sequence (the caller then counts s[0] alone as invalid). */
static inline size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    size_t len;
    uint32_t v;

    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 (overlong), F5-FF */
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    v = (v << 6) | (s[1] & 0x3F);
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

/* ---- scan ---- */

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* ASCII letters among the 8 bytes of w, all of which are < 0x80. Folding with
 * 0x20 maps A-Z onto a-z and nothing else into 0x61..0x7A; the two additions
 * set a byte's high bit for >= 0x61 and for >= 0x7B without carries (every
 * byte stays below 0x100). */
static uint64_t swar_letter_flags(uint64_t w)
{
    uint64_t x = w | (ONES * 0x20);
    uint64_t ge_a = x + ONES * (0x80 - 0x61);
    uint64_t ge_brace = x + ONES * (0x80 - 0x7B);
    return (ge_a & ~ge_brace & HIGHS) >> 7; /* 1 in each letter's byte */
}

/* The sum of the bytes of m (at most 255). */
static unsigned byte_sum(uint64_t m)
{
    return (unsigned)((m * ONES) >> 56);
}

/* The high bit of each byte of w that is an ASCII letter (any byte). */
static uint64_t ascii_letter_bytes(uint64_t w)
{
    uint64_t x = (w & ~HIGHS) | (ONES * 0x20);
    uint64_t ge_a = x + ONES * (0x80 - 0x61);
    uint64_t ge_brace = x + ONES * (0x80 - 0x7B);
    return ge_a & ~ge_brace & ~w & HIGHS;
}

/* ts_language's eight-byte word start needs little-endian loads (its key
 * packs the first letter in the low byte) and __builtin_ctzll. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR_WORDS 1
#else
#define SWAR_WORDS 0
#endif

static int ascii_is_letter(unsigned c)
{
    return (c | 0x20) - 'a' < 26;
}

static uint32_t sat32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void ts_scan(const char *text, size_t len, ts_stats_t *out)
{
    const unsigned char *s = (const unsigned char *)text;
    /* per class of non-ASCII code point ([CLS_NONE]: not a letter);
     * the token cost is applied once at the end, not per code point */
    uint64_t count[CLS_COUNT] = {0};
    uint64_t ascii = 0, ascii_letters = 0, emoji = 0, invalid = 0;
    size_t i = 0;

    pthread_once(&tables_once, tables_build);
    while (i < len) {
        unsigned c = s[i];
        uint32_t cp;

        if (c < 0x80) {
            /* an ASCII run: 32 bytes at a time (one high-bit test and one
             * byte sum for four words), then 8, then the tail */
            while (len - i >= 32) {
                uint64_t w[4];
                memcpy(w, s + i, 32);
                if ((w[0] | w[1] | w[2] | w[3]) & HIGHS)
                    break;
                ascii_letters += byte_sum(swar_letter_flags(w[0]) + swar_letter_flags(w[1]) +
                                          swar_letter_flags(w[2]) + swar_letter_flags(w[3]));
                ascii += 32;
                i += 32;
            }
            while (len - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & HIGHS)
                    break;
                ascii_letters += byte_sum(swar_letter_flags(w));
                ascii += 8;
                i += 8;
            }
            while (i < len && s[i] < 0x80) {
                ascii_letters += (unsigned)ascii_is_letter(s[i]);
                ascii++;
                i++;
            }
            continue;
        }
        if (c >= 0xE0 && c <= 0xEF && len - i >= 3) {
            /* the common 3-byte case (CJK, punctuation) without branches on
             * each check: continuation bytes, overlong, surrogates */
            unsigned c1 = s[i + 1], c2 = s[i + 2];
            cp = (c & 0x0F) << 12 | (c1 & 0x3F) << 6 | (c2 & 0x3F);
            if (((c1 & 0xC0) == 0x80) & ((c2 & 0xC0) == 0x80) & (cp >= 0x800) &
                (cp - 0xD800 >= 0x800)) {
                count[cp_class(cp)]++;
                i += 3;
                continue;
            }
        } else if (c >= 0xC2 && c <= 0xDF && len - i >= 2 && (s[i + 1] & 0xC0) == 0x80) {
            cp = (c & 0x1F) << 6 | (s[i + 1] & 0x3F);
            count[cp_class(cp)]++;
            i += 2;
            continue;
        } else {
            size_t n = utf8_decode(s + i, len - i, &cp);
            if (n == 4) {
                unsigned cls = cp_class(cp);
                count[cls]++;
                emoji += cls == CLS_NONE;
                i += 4;
                continue;
            }
        }
        invalid++;
        i++;
    }

    out->bytes = sat32(len);
    {
        uint64_t cps = ascii + invalid, milli = ascii * TS_K_ASCII + invalid * TS_K_INVALID;
        for (int k = 0; k < CLS_COUNT; k++) {
            cps += count[k];
            milli += count[k] * cls_cost[k];
        }
        milli += emoji * (TS_K_EMOJI - TS_K_SYMBOL);
        out->codepoints = sat32(cps);
        out->tokens = sat32((milli + 999) / 1000);
    }
    count[CLS_LATIN] += ascii_letters + count[CLS_LATIN_EXT];
    count[CLS_OTHER] += invalid;
    out->letters[TS_SCRIPT_NONE] = 0;
    for (int k = 1; k < TS_SCRIPT_COUNT; k++)
        out->letters[k] = sat32(count[k]);
}

static uint32_t sat_add(uint32_t a, uint32_t b)
{
    return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

void ts_add(ts_stats_t *a, const ts_stats_t *b)
{
    a->bytes = sat_add(a->bytes, b->bytes);
    a->codepoints = sat_add(a->codepoints, b->codepoints);
    for (int k = 0; k < TS_SCRIPT_COUNT; k++)
        a->letters[k] = sat_add(a->letters[k], b->letters[k]);
    a->tokens = sat_add(a->tokens, b->tokens);
}

uint32_t ts_chat_overhead(unsigned messages)
{
    return sat32((uint64_t)messages * 3 + 3);
}

/* ---- scripts ---- */

enum ts_script ts_dominant_script(const ts_stats_t *st)
{
    const uint32_t *l = st->letters;
    uint64_t japanese = (uint64_t)l[TS_SCRIPT_HAN] + l[TS_SCRIPT_KANA];
    enum ts_script best = TS_SCRIPT_NONE;
    uint64_t best_n = 0;

    for (int k = TS_SCRIPT_LATIN; k < TS_SCRIPT_COUNT; k++) {
        uint64_t n = l[k];
        if (k == TS_SCRIPT_KANA)
            continue; /* competes inside the han entry */
        if (k == TS_SCRIPT_HAN)
            n = japanese;
        if (n > best_n) {
            best_n = n;
            best = (enum ts_script)k;
        }
    }
    if (best == TS_SCRIPT_HAN && l[TS_SCRIPT_KANA] > l[TS_SCRIPT_HAN])
        best = TS_SCRIPT_KANA;
    return best;
}

static const char *const script_names[TS_SCRIPT_COUNT] = {
    [TS_SCRIPT_NONE] = "none",
    [TS_SCRIPT_LATIN] = "latin",
    [TS_SCRIPT_CYRILLIC] = "cyrillic",
    [TS_SCRIPT_GREEK] = "greek",
    [TS_SCRIPT_ARABIC] = "arabic",
    [TS_SCRIPT_HEBREW] = "hebrew",
    [TS_SCRIPT_DEVANAGARI] = "devanagari",
    [TS_SCRIPT_THAI] = "thai",
    [TS_SCRIPT_HAN] = "han",
    [TS_SCRIPT_KANA] = "kana",
    [TS_SCRIPT_HANGUL] = "hangul",
    [TS_SCRIPT_OTHER] = "other",
};

const char *ts_script_name(enum ts_script s)
{
    if ((unsigned)s >= TS_SCRIPT_COUNT)
        return "none";
    return script_names[s];
}

int ts_script_parse(const char *name)
{
    if (name == NULL)
        return -1;
    if (strcasecmp(name, "cjk") == 0)
        return TS_SCRIPT_CJK;
    for (int k = 0; k < TS_SCRIPT_COUNT; k++)
        if (strcasecmp(name, script_names[k]) == 0)
            return k;
    return -1;
}

bool ts_script_matches(enum ts_script dominant, const char *name)
{
    int want = ts_script_parse(name);
    if (want == TS_SCRIPT_CJK)
        return dominant == TS_SCRIPT_HAN || dominant == TS_SCRIPT_KANA ||
               dominant == TS_SCRIPT_HANGUL;
    return want >= 0 && (int)dominant == want;
}

/* ---- Latin stop words ---- */

enum { LANG_EN, LANG_ES, LANG_FR, LANG_DE, LANG_PT, LANG_IT, LANG_COUNT };

static const char *const lang_codes[LANG_COUNT] = {"en", "es", "fr", "de", "pt", "it"};

/* Very frequent function words, lowercase, separated by single spaces; each
 * at most 8 letters, ASCII or Latin-1. A word may be in several lists; it then
 * counts for each of those languages with a share of the weight. Ambiguous
 * single letters are left out (English "a" and "I", the Romance "a"). */
static const char sw_en[] =
    "the and of to in is that it for you was with on as are be this have from or by not but "
    "what all were when we there can an which their if has will would they been do how its "
    "about should could these than then them my your our who does did into";
static const char sw_es[] =
    "el la los las de del que y en un una unos es se no por para con su sus al lo como más "
    "pero le ya este esta ha sí porque muy sin sobre también me hay donde cuando todo desde "
    "está son entre era fue ser hasta tiene nos ni qué cómo puede están";
static const char sw_fr[] =
    "le la les de des du un une et est en que qui dans pour pas sur au aux avec ce il elle ne "
    "se sont par plus ou son sa ses nous vous ils on mais cette été être fait comme tout leur "
    "où à qu même aussi ces je peut avoir très";
static const char sw_de[] =
    "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es "
    "an werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen "
    "zum war haben nur oder aber vor zur bis mehr durch wurde kann wenn ich wir diese dieser";
static const char sw_pt[] =
    "o os as de do da dos das que e em no na nos nas um uma para com não se por mais ao aos "
    "como mas foi ele ela seu sua ou quando muito já também só pelo pela até isso entre depois "
    "sem mesmo eu está são ser tem há você esse essa é à pode";
static const char sw_it[] =
    "il lo la gli le di da del della dei delle che e è un una uno in per con non si su al alla "
    "come ma più sono anche questo questa ha ci ne se perché nel nella dal dalla molto essere "
    "stato tra fra quando loro suo sua degli cosa può sul";

static const char *const sw_lists[LANG_COUNT] = {sw_en, sw_es, sw_fr, sw_de, sw_pt, sw_it};

/* Stop-word hash table: 1024 slots for the ~290 distinct words (load below
 * 0.3, so probes are short); key 0 marks an empty slot (no word packs to 0).
 * sw_share is what a hit adds to each of its languages' scores: 60 divided by
 * the number of languages (60 is divisible by 1 to 6). */
#define SW_BITS 10
#define SW_SLOTS (1u << SW_BITS)
#define SW_WEIGHT 60

static uint64_t sw_keys[SW_SLOTS];
static uint8_t sw_langs[SW_SLOTS]; /* bit per LANG_* */
static uint8_t sw_share[SW_SLOTS];

static unsigned sw_slot(uint64_t key)
{
    return (unsigned)((key * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - SW_BITS));
}

/* Lowercases a Latin-1 letter (code point <= 0xFF); 0 when c is not one. */
static unsigned latin1_fold(uint32_t c)
{
    if (c < 0x80)
        return (c | 0x20) - 'a' < 26 ? (c | 0x20) : 0;
    if (c < 0xC0 || c == 0xD7 || c == 0xF7 || c > 0xFF)
        return 0;
    return c <= 0xDE ? c + 0x20 : c;
}

/* Packs a UTF-8 list word of n bytes as latin_language does (first letter in
 * the low byte); 0 when it cannot be a word there. */
static uint64_t sw_pack(const char *w, size_t n)
{
    const unsigned char *s = (const unsigned char *)w;
    size_t i = 0;
    uint64_t key = 0;
    unsigned shift = 0;

    while (i < n) {
        uint32_t cp = s[i];
        size_t step = 1;
        if (cp >= 0x80) {
            step = utf8_decode(s + i, n - i, &cp);
            if (step == 0)
                return 0;
        }
        if (latin1_fold(cp) == 0 || shift >= 64)
            return 0;
        key |= (uint64_t)latin1_fold(cp) << shift;
        shift += 8;
        i += step;
    }
    return key;
}

static void sw_build(void)
{
    for (int lang = 0; lang < LANG_COUNT; lang++) {
        for (const char *w = sw_lists[lang]; *w != '\0';) {
            size_t n = strcspn(w, " ");
            uint64_t key = sw_pack(w, n);
            w += n + (w[n] == ' ');
            if (key == 0)
                continue; /* not packable: a list typo, ignored */
            unsigned h = sw_slot(key);
            while (sw_keys[h] != 0 && sw_keys[h] != key)
                h = (h + 1) & (SW_SLOTS - 1);
            sw_keys[h] = key;
            sw_langs[h] |= (uint8_t)(1u << lang);
        }
    }
    for (unsigned h = 0; h < SW_SLOTS; h++) {
        unsigned n = 0;
        for (int lang = 0; lang < LANG_COUNT; lang++)
            n += (sw_langs[h] >> lang) & 1u;
        sw_share[h] = n ? (uint8_t)(SW_WEIGHT / n) : 0;
    }
}

/* The slot holding key, or -1. */
static int sw_find(uint64_t key)
{
    for (unsigned h = sw_slot(key); sw_keys[h] != 0; h = (h + 1) & (SW_SLOTS - 1))
        if (sw_keys[h] == key)
            return (int)h;
    return -1;
}

/* Best and runner-up language by score (ties: the first listed). */
static void rank(const unsigned *score, int *best, int *second)
{
    int b = 0, s = 1;
    if (score[1] > score[0])
        b = 1, s = 0;
    for (int k = 2; k < LANG_COUNT; k++) {
        if (score[k] > score[b])
            s = b, b = k;
        else if (score[k] > score[s])
            s = k;
    }
    *best = b;
    *second = s;
}

/* Scores Latin-script text by stop words; see ts_language. Words are maximal
 * runs of letters, digits and '_'; a word counts only if it is all ASCII or
 * Latin-1 letters and at most 8 of them (no list word is longer). More than
 * 10% of words with other Latin letters (ł, ř, ş, ư...) mean another
 * language: "und". Stops early once the answer is clear: TS_LANG_CLEAR_HITS
 * hits for the leader with 3 times the runner-up's score. Needs tables_once. */
static const char *latin_language(const unsigned char *s, size_t len)
{
    unsigned score[LANG_COUNT] = {0}, hits[LANG_COUNT] = {0};
    unsigned words = 0, total_hits = 0, foreign_words = 0;
    size_t i = 0;
    int best, second;

    if (len > TS_LANG_MAX_BYTES)
        len = TS_LANG_MAX_BYTES;
    while (i < len && words < TS_LANG_MAX_WORDS) {
        unsigned t = word_class[s[i]];
        uint64_t key = 0;
        unsigned n = 0;
        bool spoilt = false, foreign = false;
        int slot;

        if (t == WC_SEP) {
            i++;
            continue;
        }
#if SWAR_WORDS
        if (t > WC_HIGH && len - i >= 8) {
            /* the ASCII letters the word starts with, eight bytes at once:
             * the key is their lowercase bytes, first letter lowest, as the
             * byte loop below packs them */
            uint64_t w, stop;
            memcpy(&w, s + i, 8);
            stop = ~ascii_letter_bytes(w) & HIGHS;
            if (stop != 0) {
                unsigned k = (unsigned)__builtin_ctzll(stop) >> 3; /* 1..7 */
                key = (w | ONES * 0x20) & ((UINT64_C(1) << (8 * k)) - 1);
                n = k;
                i += k;
                t = word_class[s[i]];
                if (t == WC_SEP) { /* the usual end of a word */
                    i++;
                    goto word_done;
                }
            }
        }
#endif
        /* one word: ends at a separator (consumed) or at len */
        for (;;) {
            if (t > WC_HIGH) {
                key |= (uint64_t)t << (8 * (n & 7));
                n++;
                i++;
            } else if (t == WC_SPOIL) {
                /* no stop word now: skip its other ASCII letters, digits
                 * and '_' at once */
                spoilt = true;
                do {
                    i++;
                    if (i >= len)
                        break;
                    t = word_class[s[i]];
                } while (t != WC_SEP && t != WC_HIGH);
                if (i >= len)
                    break;
                if (t == WC_SEP) { /* consumed, as below */
                    i++;
                    break;
                }
                continue;
            } else if (t == WC_HIGH) {
                uint32_t cp;
                size_t step;
                unsigned f;
                if (s[i] >= 0xC2 && s[i] <= 0xDF && len - i >= 2 && (s[i + 1] & 0xC0) == 0x80) {
                    cp = (s[i] & 0x1Fu) << 6 | (s[i + 1] & 0x3Fu); /* the usual case */
                    step = 2;
                } else {
                    step = utf8_decode(s + i, len - i, &cp);
                    if (step == 0) { /* invalid byte: a separator */
                        i++;
                        break;
                    }
                }
                i += step;
                f = cp < 0x100 ? latin1_lower[cp - 0x80] : 0;
                if (f != 0) {
                    key |= (uint64_t)f << (8 * (n & 7));
                    n++;
                } else {
                    unsigned cls = cp_class(cp);
                    if (cls == CLS_NONE)
                        break; /* non-ASCII punctuation or space */
                    spoilt = true; /* a letter no list word has */
                    foreign |= cls == CLS_LATIN_EXT;
                }
            } else {
                i++;
                break;
            }
            if (i >= len)
                break;
            t = word_class[s[i]];
        }
#if SWAR_WORDS
    word_done:
#endif
        words++;
        foreign_words += foreign;
        if (spoilt || n == 0 || n > 8)
            continue;
        slot = sw_find(key);
        if (slot < 0)
            continue;
        for (int k = 0; k < LANG_COUNT; k++) {
            if (sw_langs[slot] & (1u << k)) {
                score[k] += sw_share[slot];
                hits[k]++;
            }
        }
        total_hits++;
        if (total_hits % 8 == 0 && total_hits >= TS_LANG_CLEAR_HITS) {
            rank(score, &best, &second);
            if (hits[best] >= TS_LANG_CLEAR_HITS && score[best] >= 3 * score[second])
                break;
        }
    }

    rank(score, &best, &second);
    if (hits[best] < 2 || score[best] * 2 < score[second] * 3)
        return "und";
    /* Polish, Czech, Turkish, Vietnamese...: their short words hit the lists
     * by chance, but the six languages here hardly use Latin letters beyond
     * Latin-1 (French œ aside) */
    if (foreign_words * 10 > words)
        return "und";
    return lang_codes[best];
}

const char *ts_language(const char *text, size_t len, const ts_stats_t *st)
{
    const uint32_t *l = st->letters;

    switch (ts_dominant_script(st)) {
    case TS_SCRIPT_LATIN:
        if (text == NULL)
            return "und";
        pthread_once(&tables_once, tables_build);
        return latin_language((const unsigned char *)text, len);
    case TS_SCRIPT_CYRILLIC:
        return "ru";
    case TS_SCRIPT_GREEK:
        return "el";
    case TS_SCRIPT_ARABIC:
        return "ar";
    case TS_SCRIPT_HEBREW:
        return "he";
    case TS_SCRIPT_DEVANAGARI:
        return "hi";
    case TS_SCRIPT_THAI:
        return "th";
    case TS_SCRIPT_HAN:
    case TS_SCRIPT_KANA:
        /* kana at least 5% of han + kana */
        if ((uint64_t)l[TS_SCRIPT_KANA] * 20 >= (uint64_t)l[TS_SCRIPT_HAN] + l[TS_SCRIPT_KANA])
            return "ja";
        return "zh";
    case TS_SCRIPT_HANGUL:
        return "ko";
    default:
        return "und";
    }
}
