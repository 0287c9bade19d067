/* scorer: features of a request, the weights file and the logistic score.
 *
 * The lexical features come from one pass over the last user message: a
 * line loop (fences, list lines, code-like lines) around a byte loop (words,
 * digits, operators, LaTeX, '?'). Each ASCII word gets a key (its first 12
 * letters and its length, see word_hash) and is looked up, alone and with the word before it, in
 * one small open-addressing table of marker words and two-word phrases
 * built once under pthread_once; the table holds a bit set of categories
 * per entry. The byte loop dispatches on a byte-class table and runs over a
 * stack copy of the scanned window that ends with a '\n' sentinel, so that
 * its word and digit loops need no bound checks. Tokens, script and language
 * come from prompt.c / textstat.c, which cache them, so a rule set that also
 * reads them pays once. */
#include "route/scorer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "route/prompt.h"
#include "route/textstat.h"

struct scorer {
    double bias;
    double w[SCORER_N_FEATURES];
    char *source;
};

static const char *const feature_names[SCORER_N_FEATURES] = {
    "tokens",      "context_tokens", "system_tokens", "depth",       "code_fences",
    "code_lines",  "code_words",     "digits",        "math_ops",    "latex",
    "math_words",  "numbers",        "units",         "questions",   "subtasks",
    "reasoning",   "constraints",    "output_long",   "output_short", "format",
    "max_output",  "non_english",    "non_latin",     "word_length", "long_words",
    "names",
};

const char *scorer_feature_name(int f)
{
    return f >= 0 && f < SCORER_N_FEATURES ? feature_names[f] : NULL;
}

/* ---- marker words ---- */

enum {
    M_REASON = 1 << 0,
    M_CONSTRAINT = 1 << 1,
    M_LONG = 1 << 2,
    M_SHORT = 1 << 3,
    M_FORMAT = 1 << 4,
    M_CODE = 1 << 5,
    M_MATH = 1 << 6,
    M_UNIT = 1 << 7,
    M_CODE_START = 1 << 8, /* a word that starts a line of code */
    M_PAIR2 = 1 << 9,      /* the second word of a phrase: look up the pair */
    M_COUNTED = M_REASON | M_CONSTRAINT | M_LONG | M_SHORT | M_FORMAT | M_CODE | M_MATH,
};

static const struct marker {
    const char *text; /* one word, or two separated by one space */
    unsigned mask;
} markers[] = {
    /* reasoning */
    {"why", M_REASON}, {"explain", M_REASON}, {"explains", M_REASON}, {"explanation", M_REASON},
    {"prove", M_REASON | M_MATH}, {"proof", M_REASON | M_MATH}, {"derive", M_REASON},
    {"derivation", M_REASON}, {"justify", M_REASON}, {"reasoning", M_REASON},
    {"analyze", M_REASON}, {"analyse", M_REASON}, {"analysis", M_REASON}, {"compare", M_REASON},
    {"contrast", M_REASON}, {"evaluate", M_REASON}, {"infer", M_REASON}, {"deduce", M_REASON},
    {"conclude", M_REASON}, {"implies", M_REASON}, {"therefore", M_REASON}, {"hence", M_REASON},
    {"suppose", M_REASON}, {"assume", M_REASON}, {"assuming", M_REASON}, {"determine", M_REASON},
    {"calculate", M_REASON | M_MATH}, {"compute", M_REASON | M_MATH}, {"solve", M_REASON | M_MATH},
    {"estimate", M_REASON}, {"optimize", M_REASON | M_CODE}, {"optimise", M_REASON | M_CODE},
    {"design", M_REASON}, {"strategy", M_REASON}, {"tradeoffs", M_REASON},
    {"by step", M_REASON}, {"show that", M_REASON | M_MATH}, {"think carefully", M_REASON},
    {"what if", M_REASON},
    /* constraints */
    {"must", M_CONSTRAINT}, {"exactly", M_CONSTRAINT}, {"only", M_CONSTRAINT},
    {"without", M_CONSTRAINT}, {"ensure", M_CONSTRAINT}, {"never", M_CONSTRAINT},
    {"always", M_CONSTRAINT}, {"required", M_CONSTRAINT}, {"requirements", M_CONSTRAINT},
    {"constraint", M_CONSTRAINT}, {"constraints", M_CONSTRAINT}, {"strictly", M_CONSTRAINT},
    {"unless", M_CONSTRAINT}, {"except", M_CONSTRAINT}, {"at least", M_CONSTRAINT},
    {"at most", M_CONSTRAINT}, {"no more", M_CONSTRAINT}, {"do not", M_CONSTRAINT},
    {"must not", M_CONSTRAINT}, {"less than", M_CONSTRAINT | M_MATH},
    {"more than", M_CONSTRAINT}, {"greater than", M_CONSTRAINT | M_MATH},
    /* requested length */
    {"essay", M_LONG}, {"detailed", M_LONG}, {"comprehensive", M_LONG}, {"thorough", M_LONG},
    {"elaborate", M_LONG}, {"article", M_LONG}, {"report", M_LONG}, {"story", M_LONG},
    {"in detail", M_LONG}, {"write a", M_LONG},
    {"briefly", M_SHORT}, {"brief", M_SHORT}, {"concise", M_SHORT}, {"concisely", M_SHORT},
    {"summarize", M_SHORT}, {"summarise", M_SHORT}, {"tldr", M_SHORT}, {"one word", M_SHORT},
    {"one sentence", M_SHORT}, {"yes or", M_SHORT}, {"just the", M_SHORT},
    /* structured output */
    {"json", M_FORMAT}, {"yaml", M_FORMAT}, {"csv", M_FORMAT}, {"table", M_FORMAT},
    {"markdown", M_FORMAT}, {"xml", M_FORMAT}, {"bullet points", M_FORMAT},
    /* programming */
    {"function", M_CODE | M_CODE_START}, {"python", M_CODE}, {"code", M_CODE},
    {"program", M_CODE}, {"programming", M_CODE}, {"algorithm", M_CODE}, {"implement", M_CODE},
    {"implementation", M_CODE}, {"array", M_CODE}, {"arrays", M_CODE}, {"string", M_CODE},
    {"strings", M_CODE}, {"variable", M_CODE}, {"compile", M_CODE}, {"compiler", M_CODE},
    {"javascript", M_CODE}, {"java", M_CODE}, {"sql", M_CODE}, {"regex", M_CODE},
    {"api", M_CODE}, {"method", M_CODE}, {"recursion", M_CODE}, {"recursive", M_CODE},
    {"loop", M_CODE}, {"struct", M_CODE}, {"pointer", M_CODE}, {"debug", M_CODE},
    {"script", M_CODE}, {"bash", M_CODE}, {"html", M_CODE}, {"tuple", M_CODE},
    {"dictionary", M_CODE}, {"boolean", M_CODE},
    {"def", M_CODE | M_CODE_START}, {"class", M_CODE_START}, {"import", M_CODE_START},
    {"include", M_CODE_START}, {"return", M_CODE | M_CODE_START}, {"const", M_CODE_START},
    {"let", M_CODE_START}, {"var", M_CODE_START}, {"public", M_CODE_START},
    {"private", M_CODE_START}, {"static", M_CODE_START}, {"int", M_CODE_START},
    {"void", M_CODE_START}, {"select", M_CODE_START}, {"print", M_CODE_START},
    {"printf", M_CODE_START}, {"for", M_CODE_START}, {"while", M_CODE_START},
    {"if", M_CODE_START}, {"elif", M_CODE_START}, {"else", M_CODE_START},
    /* mathematics */
    {"equation", M_MATH}, {"equations", M_MATH}, {"integer", M_MATH}, {"integers", M_MATH},
    {"prime", M_MATH}, {"probability", M_MATH}, {"polynomial", M_MATH}, {"derivative", M_MATH},
    {"integral", M_MATH}, {"matrix", M_MATH}, {"vector", M_MATH}, {"sum", M_MATH},
    {"product", M_MATH}, {"remainder", M_MATH}, {"divisible", M_MATH}, {"fraction", M_MATH},
    {"ratio", M_MATH}, {"sqrt", M_MATH}, {"log", M_MATH}, {"theorem", M_MATH},
    {"lemma", M_MATH}, {"triangle", M_MATH}, {"circle", M_MATH}, {"area", M_MATH},
    {"volume", M_MATH}, {"radius", M_MATH}, {"angle", M_MATH}, {"roots", M_MATH},
    {"expression", M_MATH}, {"simplify", M_MATH}, {"digits", M_MATH}, {"multiply", M_MATH},
    {"divided", M_MATH}, {"percent", M_MATH}, {"average", M_MATH}, {"mean", M_MATH},
    /* units after a number */
    {"kg", M_UNIT}, {"g", M_UNIT}, {"mg", M_UNIT}, {"m", M_UNIT}, {"cm", M_UNIT},
    {"mm", M_UNIT}, {"km", M_UNIT}, {"s", M_UNIT}, {"ms", M_UNIT}, {"min", M_UNIT},
    {"h", M_UNIT}, {"mph", M_UNIT}, {"hz", M_UNIT}, {"khz", M_UNIT}, {"mhz", M_UNIT},
    {"ghz", M_UNIT}, {"mol", M_UNIT}, {"j", M_UNIT}, {"kj", M_UNIT}, {"n", M_UNIT},
    {"w", M_UNIT}, {"kw", M_UNIT}, {"v", M_UNIT}, {"k", M_UNIT}, {"l", M_UNIT},
    {"ml", M_UNIT}, {"lb", M_UNIT}, {"lbs", M_UNIT}, {"ft", M_UNIT}, {"ev", M_UNIT},
    {"pa", M_UNIT}, {"kpa", M_UNIT}, {"atm", M_UNIT}, {"meters", M_UNIT}, {"metres", M_UNIT},
    {"seconds", M_UNIT}, {"kilograms", M_UNIT}, {"grams", M_UNIT}, {"liters", M_UNIT},
    {"litres", M_UNIT}, {"volts", M_UNIT}, {"watts", M_UNIT}, {"joules", M_UNIT},
    {"newtons", M_UNIT}, {"ohms", M_UNIT}, {"miles", M_UNIT}, {"feet", M_UNIT},
    {"inches", M_UNIT}, {"degrees", M_UNIT},
};

#define TABLE_SIZE 1024 /* a power of two, over 3 times the markers */
#define PAIR_MIX 0x9e3779b97f4a7c15ull
#define WORD_LETTERS 12 /* letters a word key holds exactly (5 bits each) */

static struct slot {
    uint64_t key; /* 0 = empty */
    unsigned mask;
} table[TABLE_SIZE];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
/* ASCII letters -> 1..26 whatever their case, anything else -> 0 (built
 * with the table): one load both tests and folds a byte in the word loop */
static unsigned char letter[256];
/* Byte classes of the word loop (built with the table): ASCII letters are
 * 1..26 whatever their case (one load both tests and folds a byte), then
 * these. Everything else is 0 and goes through the punctuation switch. */
enum { BC_SPACE = 32, BC_DIGIT = 64 };
/* scan_line's state between tokens: a sentence starts, the last token was a
 * number (or "5%", "2^"). */
enum { ST_SENTENCE_START = 1, ST_PREV_NUMBER = 2 };
static unsigned char byte_class[256];


static uint64_t pair_key(uint64_t prev, uint64_t cur)
{
    return (prev * PAIR_MIX) ^ cur;
}

static size_t slot_of(uint64_t key)
{
    return (size_t)((key * PAIR_MIX) >> 54) & (TABLE_SIZE - 1); /* top 10 bits */
}

static void table_put(uint64_t key, unsigned mask)
{
    size_t i = slot_of(key);
    while (table[i].key != 0 && table[i].key != key)
        i = (i + 1) & (TABLE_SIZE - 1);
    table[i].key = key;
    table[i].mask |= mask;
}

static unsigned table_get(uint64_t key)
{
    size_t i = slot_of(key);
    while (table[i].key != 0) {
        if (table[i].key == key)
            return table[i].mask;
        i = (i + 1) & (TABLE_SIZE - 1);
    }
    return 0;
}

/* The key of a word, as the word loop of scan_line computes it: its first
 * WORD_LETTERS letters, 5 bits each, and its length (capped at 15) in the
 * top 4 bits — exact for words of up to 12 letters, prefix and length for
 * longer ones; never 0. Shifts and ors, no multiply chain per byte: this
 * loop is most of the scorer's cost. */
static uint64_t word_hash(const char *s, size_t n)
{
    uint64_t h = 0;
    for (size_t i = 0; i < n && i < WORD_LETTERS; i++)
        h = h << 5 | letter[(unsigned char)s[i]];
    return h | (uint64_t)(n < 15 ? n : 15) << 60;
}

static void table_build(void)
{
    for (int c = 'a'; c <= 'z'; c++)
        letter[c] = letter[c - 32] = (unsigned char)(c - 'a' + 1);
    memcpy(byte_class, letter, sizeof byte_class);
    byte_class[' '] = byte_class['\t'] = byte_class['\r'] = BC_SPACE;
    for (int c = '0'; c <= '9'; c++)
        byte_class[c] = BC_DIGIT;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(markers); i++) {
        const char *t = markers[i].text, *sp = strchr(t, ' ');
        if (sp == NULL) {
            table_put(word_hash(t, strlen(t)), markers[i].mask);
        } else {
            uint64_t second = word_hash(sp + 1, strlen(sp + 1));
            table_put(pair_key(word_hash(t, (size_t)(sp - t)), second), markers[i].mask);
            table_put(second, M_PAIR2);
        }
    }
}

/* ---- features ---- */

typedef struct counts {
    unsigned lines, code_lines, fences, subtasks;
    unsigned digits, nonspace, ops, latex, numbers, units, questions;
    unsigned words, letters, long_words, names;
    unsigned reason, constraint, out_long, out_short, format, code, math;
} counts_t;

static bool is_digit(unsigned char c)
{
    return (unsigned char)(c - '0') < 10;
}

/* A list line: "- x", "* x", "• x", "12. x", "3) x". A single letter and a
 * dot or parenthesis ("A. x", "(b) x") is a choice, not a sub-task: multiple
 * choice is a benchmark's template, not what makes a prompt hard. */
static bool list_line(const unsigned char *s, size_t n)
{
    size_t i = 0;
    if (n >= 2 && (s[0] == '-' || s[0] == '*') && s[1] == ' ')
        return true;
    if (n >= 4 && s[0] == 0xe2 && s[1] == 0x80 && s[2] == 0xa2)
        return true;
    while (i < n && i < 3 && is_digit(s[i]))
        i++;
    return i > 0 && i + 1 < n && (s[i] == '.' || s[i] == ')') && s[i + 1] == ' ';
}

/* Whether the line [i, end) starts with a word that starts code
 * (M_CODE_START) after nothing but spaces and '#' ("#include"). Asked at the
 * line's end, only when it decides, rather than noted for every word. */
static bool code_start(const unsigned char *s, size_t i, size_t end)
{
    size_t w;
    while (i < end && (byte_class[s[i]] == BC_SPACE || s[i] == '#'))
        i++;
    if (i == end || letter[s[i]] == 0)
        return false;
    w = i;
    while (i < end && letter[s[i]] != 0)
        i++;
    return (table_get(word_hash((const char *)s + w, i - w)) & M_CODE_START) != 0;
}

/* Scans one line [s, s + n) (no '\n') into c; in_fence is the fence state.
 * s[n] must be readable and a '\n' (scan_text's copy ends with one): the
 * trimmed line end is then followed by a space or that '\n', and the word
 * and digit loops need no bound check. Inlined into scan_text, so that the
 * counters stay in a local struct the text's bytes cannot alias. */
static inline void scan_line(const unsigned char *s, size_t n, bool *in_fence, counts_t *c)
{
    size_t i = 0, indent = 0, end = n;
    size_t start;
    bool punct = false, fence = false;
    /* ST_* bits, in one register: a capital at a line's start is no name */
    unsigned st = ST_SENTENCE_START;
    uint64_t prev = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) {
        indent += s[i] == '\t' ? 4 : 1;
        i++;
    }
    while (end > i && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\r'))
        end--;
    if (i == end)
        return;
    start = i;
    c->lines++;
    if (end - i >= 3 && s[i] == '`' && s[i + 1] == '`' && s[i + 2] == '`') {
        c->fences++;
        *in_fence = !*in_fence;
        fence = true;
    }
    if (list_line(s + i, end - i))
        c->subtasks++;
    while (i < end) {
        unsigned ch = s[i], k = byte_class[ch];
        if (k - 1 < 26) {
            /* a word: its key is word_hash's, built as the letters go by
             * (the shifted-out bits of a word over 12 letters are redone) */
            size_t w, len;
        word:
            w = i;
            uint64_t h = k;
            unsigned m, l;
            i++;
            for (;;) { /* s[end] stops it; letter[]'s 0 test is one op less */
                l = letter[s[i]];
                if (l == 0)
                    break;
                h = h << 5 | l;
                i++;
            }
            len = i - w;
            if (len > WORD_LETTERS)
                h = word_hash((const char *)s + w, len);
            else
                h |= (uint64_t)len << 60;
            m = table_get(h);
            if ((m & M_PAIR2) && prev != 0)
                m |= table_get(pair_key(prev, h)) & ~(unsigned)M_UNIT;
            c->words++;
            c->letters += (unsigned)len;
            c->long_words += len >= 10;
            if (!(st & ST_SENTENCE_START) && ch - 'A' < 26 && len > 1)
                c->names++;
            if (m != 0) { /* most words are no marker */
                if ((st & ST_PREV_NUMBER) && (m & M_UNIT))
                    c->units++;
                if (m & M_COUNTED) {
                    c->reason += (m & M_REASON) != 0;
                    c->constraint += (m & M_CONSTRAINT) != 0;
                    c->out_long += (m & M_LONG) != 0;
                    c->out_short += (m & M_SHORT) != 0;
                    c->format += (m & M_FORMAT) != 0;
                    c->code += (m & M_CODE) != 0;
                    c->math += (m & M_MATH) != 0;
                }
            }
            st = 0;
            prev = h;
            c->nonspace += (unsigned)len;
            /* the usual next word, after one space: no dispatch (a letter
             * after the space is before end, as s[end, n] holds none) */
            if (s[i] == ' ' && byte_class[s[i + 1]] - 1u < 26) {
                ch = s[++i];
                k = byte_class[ch];
                goto word;
            }
            continue;
        }
        if (k == BC_SPACE) {
            i++;
            continue;
        }
        if (k == BC_DIGIT) {
            /* digits, and '.' or ',' between digits */
            size_t d = i;
            unsigned seps = 0;
            c->numbers++;
            for (;;) {
                do
                    i++;
                while (is_digit(s[i])); /* s[end] stops it */
                if ((s[i] == '.' || s[i] == ',') && is_digit(s[i + 1])) { /* see above */
                    seps++;
                    i++;
                    continue;
                }
                break;
            }
            c->digits += (unsigned)(i - d) - seps;
            c->nonspace += (unsigned)(i - d);
            if (s[i] == '%') /* s[end] is no '%' */
                c->units++;
            st = ST_PREV_NUMBER;
            prev = 0;
            if (s[i] == ' ' && byte_class[s[i + 1]] - 1u < 26) { /* as after a word */
                ch = s[++i];
                k = byte_class[ch];
                goto word;
            }
            continue;
        }
        i++;
        c->nonspace++;
        switch (ch) {
        case '=':
        case '+':
        case '*':
        case '^':
        case '<':
        case '>':
        case '/':
            c->ops++;
            punct = true;
            break;
        case '\\':
            c->latex += i < end && letter[s[i]] != 0;
            break;
        case '$':
            c->latex++;
            break;
        case '?':
            c->questions++;
            st |= ST_SENTENCE_START;
            break;
        case '.':
        case '!':
        case ':':
            st |= ST_SENTENCE_START;
            break;
        case 0xef: /* full-width question mark U+FF1F */
            if (i + 1 < end && s[i] == 0xbc && s[i + 1] == 0x9f)
                c->questions++;
            break;
        case '(':
        case '{':
        case ';':
            punct = true;
            break;
        default:
            break;
        }
        if (ch != '\'' && ch != '-')
            prev = 0;
        if (ch != '%' && ch != '^')
            st &= ~(unsigned)ST_PREV_NUMBER;
    }
    if (fence)
        return; /* the fence line itself is not code */
    {
        unsigned char last = s[end - 1];
        if (*in_fence || last == ';' || last == '{' || last == '}' ||
            (punct && (indent >= 4 || code_start(s, start, end))))
            c->code_lines++;
    }
}

/* The lexical pass reads at most the first SCAN_HEAD and the last
 * SCAN_TAIL bytes of the last user message: its cost stays bounded on huge
 * prompts (a long document pasted before the question), and the question and
 * the instructions are usually at the start or the end. Length itself comes
 * from the token estimate, which counts everything. */
#define SCAN_HEAD 4096
#define SCAN_TAIL 2048

/* Scans n <= SCAN_HEAD + SCAN_TAIL bytes of t, line by line, from a copy
 * that ends with a '\n' sentinel (see scan_line). */
static void scan_text(const char *t, size_t n, bool *in_fence, counts_t *out)
{
    unsigned char copy[SCAN_HEAD + SCAN_TAIL + 1];
    counts_t c = *out;
    bool fenced = *in_fence;
    size_t at = 0;
    memcpy(copy, t, n);
    copy[n] = '\n';
    while (at < n) {
        const unsigned char *nl = memchr(copy + at, '\n', n + 1 - at);
        size_t e = (size_t)(nl - copy);
        scan_line(copy + at, e - at, &fenced, &c);
        at = e + 1;
    }
    *out = c;
    *in_fence = fenced;
}

static double lg(double v, double scale)
{
    return log1p(v) / scale;
}

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

void scorer_features(prompt_t *p, double x[SCORER_N_FEATURES])
{
    const char *t;
    size_t n;
    counts_t c = {0};
    bool in_fence = false;
    const ts_stats_t *last, *conv, *sys;
    double rest;
    enum ts_script script;

    pthread_once(&table_once, table_build);
    prompt_text(p, SCOPE_LAST_USER, &t, &n);
    if (n <= SCAN_HEAD + SCAN_TAIL) {
        scan_text(t, n, &in_fence, &c);
    } else {
        scan_text(t, SCAN_HEAD, &in_fence, &c);
        scan_text(t + n - SCAN_TAIL, SCAN_TAIL, &in_fence, &c);
    }
    last = prompt_stats(p, SCOPE_LAST_USER);
    conv = prompt_stats(p, SCOPE_CONVERSATION);
    sys = prompt_stats(p, SCOPE_SYSTEM);
    /* the rest of the conversation: its text, not the per-message framing
     * (which every single-message request has too) */
    rest = (double)conv->tokens - (double)last->tokens;
    if (p->ep == EP_CHAT)
        rest -= (double)ts_chat_overhead(p->n_messages);
    script = ts_dominant_script(last);

    x[SF_TOKENS] = lg(last->tokens, 8);
    x[SF_CONTEXT_TOKENS] = lg(rest > 0 ? rest : 0, 8);
    x[SF_SYSTEM_TOKENS] = lg(sys->tokens, 8);
    /* turns before the last one; a system prompt is not a turn */
    x[SF_DEPTH] = lg(p->n_messages > p->n_system + 1 ? p->n_messages - p->n_system - 1 : 0, 3);
    x[SF_CODE_FENCES] = lg(c.fences, 2);
    x[SF_CODE_LINES] = c.lines ? (double)c.code_lines / c.lines : 0;
    x[SF_CODE_WORDS] = lg(c.code, 3);
    x[SF_DIGITS] = c.nonspace ? (double)c.digits / c.nonspace : 0;
    x[SF_MATH_OPS] = lg(c.ops, 5);
    x[SF_LATEX] = lg(c.latex, 4);
    x[SF_MATH_WORDS] = lg(c.math, 3);
    x[SF_NUMBERS] = lg(c.numbers, 5);
    x[SF_UNITS] = lg(c.units, 3);
    x[SF_QUESTIONS] = lg(c.questions, 3);
    x[SF_SUBTASKS] = lg(c.subtasks, 3);
    x[SF_REASONING] = lg(c.reason, 3);
    x[SF_CONSTRAINTS] = lg(c.constraint, 3);
    x[SF_OUTPUT_LONG] = lg(c.out_long, 2);
    x[SF_OUTPUT_SHORT] = lg(c.out_short, 2);
    x[SF_FORMAT] = (p->response_format && strncmp(p->response_format, "json", 4) == 0) ? 1
                   : c.format                                                       ? 0.5
                                                                                    : 0;
    x[SF_MAX_OUTPUT] = p->max_output > 0 ? lg((double)p->max_output, 10) : 0;
    x[SF_NON_LATIN] = script != TS_SCRIPT_LATIN && script != TS_SCRIPT_NONE;
    if (script == TS_SCRIPT_LATIN) {
        const char *lang = prompt_language(p, SCOPE_LAST_USER);
        x[SF_NON_ENGLISH] = strcmp(lang, "en") != 0 && strcmp(lang, "und") != 0;
    } else {
        /* other scripts have one language each (textstat): not English */
        x[SF_NON_ENGLISH] = script != TS_SCRIPT_NONE;
    }
    x[SF_WORD_LENGTH] = c.words ? clamp01(((double)c.letters / c.words - 3) / 6) : 0;
    x[SF_LONG_WORDS] = c.words ? (double)c.long_words / c.words : 0;
    x[SF_NAMES] = c.words ? (double)c.names / c.words : 0;
}

double scorer_apply(const scorer_t *s, const double x[SCORER_N_FEATURES])
{
    double z = s->bias;
    for (int i = 0; i < SCORER_N_FEATURES; i++)
        z += s->w[i] * x[i];
    return 1.0 / (1.0 + exp(-z));
}

void scorer_top_features(const scorer_t *s, const double x[SCORER_N_FEATURES], unsigned n,
                         buf_t *out)
{
    bool used[SCORER_N_FEATURES] = {false};
    for (unsigned k = 0; k < n; k++) {
        int best = -1;
        double bv = 0;
        char item[64];
        for (int i = 0; i < SCORER_N_FEATURES; i++) {
            double v = s->w[i] * x[i];
            if (!used[i] && v > bv + 1e-12) {
                bv = v;
                best = i;
            }
        }
        if (best < 0)
            return;
        used[best] = true;
        snprintf(item, sizeof item, "%s%s +%.3f", k ? ", " : "", feature_names[best], bv);
        buf_puts(out, item);
    }
}

/* ---- weights file ---- */

#define HEADER "llmrouter-scorer 1"
#define MAX_WEIGHTS_FILE (1u << 20)

extern const char scorer_default_weights[];

void scorer_get_weights(const scorer_t *s, double *bias, double w[SCORER_N_FEATURES])
{
    *bias = s->bias;
    memcpy(w, s->w, sizeof s->w);
}

const char *scorer_source(const scorer_t *s)
{
    return s->source;
}

void scorer_free(scorer_t *s)
{
    if (s == NULL)
        return;
    free(s->source);
    free(s);
}

static size_t span(const char *s, size_t n, bool word)
{
    size_t i = 0;
    while (i < n && (word ? !(s[i] == ' ' || s[i] == '\t') : (s[i] == ' ' || s[i] == '\t')))
        i++;
    return i;
}

scorer_t *scorer_parse(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    scorer_t *s = xcalloc(1, sizeof *s);
    bool seen[SCORER_N_FEATURES] = {false}, seen_bias = false, seen_header = false;
    size_t at = 0, line = 0;
    err[0] = '\0';
#define BAD(col, ...)                                                                              \
    do {                                                                                           \
        int o_ = snprintf(err, errlen, "%s:%zu:%zu: ", name, line, (size_t)(col));                 \
        if (o_ >= 0 && (size_t)o_ < errlen)                                                        \
            snprintf(err + o_, errlen - (size_t)o_, __VA_ARGS__);                                  \
        goto fail;                                                                                 \
    } while (0)
    while (at < len) {
        const char *l = text + at, *nl = memchr(l, '\n', len - at);
        size_t n = nl ? (size_t)(nl - l) : len - at, i, kl, vs, vl;
        char key[64], val[64], *end;
        double v;
        int f = -1;
        at += n + 1;
        line++;
        if (n > 0 && l[n - 1] == '\r')
            n--;
        if (memchr(l, '\0', n) != NULL)
            BAD(1, "a NUL byte in the weights file");
        i = span(l, n, false);
        if (i == n || l[i] == '#')
            continue;
        if (!seen_header) {
            if (n - i < sizeof HEADER - 1 || memcmp(l + i, HEADER, sizeof HEADER - 1) != 0 ||
                span(l + i + sizeof HEADER - 1, n - i - (sizeof HEADER - 1), false) !=
                    n - i - (sizeof HEADER - 1))
                BAD(i + 1, "expected the header line \"" HEADER "\" (is this a weights file?)");
            seen_header = true;
            continue;
        }
        kl = span(l + i, n - i, true);
        vs = i + kl + span(l + i + kl, n - i - kl, false);
        vl = span(l + vs, n - vs, true);
        if (kl >= sizeof key)
            BAD(i + 1, "unknown name \"%.40s...\"", l + i);
        memcpy(key, l + i, kl);
        key[kl] = '\0';
        if (strcmp(key, "bias") != 0) {
            for (int k = 0; k < SCORER_N_FEATURES; k++)
                if (strcmp(key, feature_names[k]) == 0)
                    f = k;
            if (f < 0)
                BAD(i + 1, "unknown feature \"%s\" (this build knows %d features; see "
                           "`llmrouter score --features`)",
                    key, SCORER_N_FEATURES);
        }
        if ((f < 0 && seen_bias) || (f >= 0 && seen[f]))
            BAD(i + 1, "\"%s\" is given twice", key);
        if (vl == 0)
            BAD(vs + 1, "\"%s\" needs a value (expected NAME NUMBER)", key);
        if (vs + vl + span(l + vs + vl, n - vs - vl, false) != n)
            BAD(vs + vl + span(l + vs + vl, n - vs - vl, false) + 1,
                "unexpected text after the value (expected NAME NUMBER)");
        if (vl >= sizeof val)
            BAD(vs + 1, "\"%.40s\" is not a number", l + vs);
        memcpy(val, l + vs, vl);
        val[vl] = '\0';
        errno = 0;
        v = strtod(val, &end);
        if (end == val || *end != '\0' || errno != 0 || !isfinite(v) || v < -1000 || v > 1000)
            BAD(vs + 1, "\"%s\" is not a number in [-1000, 1000]", val);
        if (f < 0) {
            s->bias = v;
            seen_bias = true;
        } else {
            s->w[f] = v;
            seen[f] = true;
        }
    }
    if (!seen_header)
        BAD(1, "empty weights file (expected the header line \"" HEADER "\")");
    if (!seen_bias)
        BAD(1, "missing \"bias\"");
    for (int k = 0; k < SCORER_N_FEATURES; k++)
        if (!seen[k])
            BAD(1, "missing feature \"%s\" (every feature needs a weight, 0 to ignore it)",
                feature_names[k]);
#undef BAD
    s->source = xstrdup(name);
    return s;
fail:
    free(s);
    return NULL;
}

scorer_t *scorer_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text;
    size_t n;
    scorer_t *s;
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    text = xmalloc(MAX_WEIGHTS_FILE + 1);
    n = fread(text, 1, MAX_WEIGHTS_FILE + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        s = NULL;
    } else if (n > MAX_WEIGHTS_FILE) {
        snprintf(err, errlen, "%s: larger than 1 MiB; not a weights file", path);
        s = NULL;
    } else {
        s = scorer_parse(path, text, n, err, errlen);
    }
    fclose(f);
    free(text);
    return s;
}

static scorer_t *builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_init(void)
{
    char err[256];
    builtin = scorer_parse("built-in", scorer_default_weights, strlen(scorer_default_weights), err,
                           sizeof err);
    if (builtin == NULL) {
        /* the build embeds config/scorer/weights.txt, which a unit test
         * parses: reaching this is a build defect */
        fprintf(stderr, "llmrouter: the built-in scorer weights do not parse: %s\n", err);
        abort();
    }
}

const scorer_t *scorer_builtin(void)
{
    pthread_once(&builtin_once, builtin_init);
    return builtin;
}
