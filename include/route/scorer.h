/* scorer: the local complexity scorer — a number in [0, 1] per request,
 * "how likely the cheap model falls short here", computed in-process from
 * the request's text in microseconds: a logistic model over a fixed list of
 * features (token counts, code, math, reasoning and constraint markers,
 * questions, sub-tasks, conversation depth, language, requested output,
 * system-prompt size). The features are computed here and only here: the
 * training script (config/scorer/train.py) reads them from
 * `llmrouter score --features`, so training and serving share one
 * implementation.
 *
 * Weights come from a small text file (config/scorer/weights.txt, compiled
 * into the binary as the default; routing.scorer.weights loads another).
 * A scorer_t is immutable once built: any thread may use it. The built-in
 * one is parsed once, under pthread_once, on first use. */
#ifndef LLMROUTER_ROUTE_SCORER_H
#define LLMROUTER_ROUTE_SCORER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/buf.h"

struct prompt;

/* The features, in the order of the weights file and of
 * `llmrouter score --features`. Each is scaled to about [0, 1] (logarithms
 * of counts, shares), so that one weight scale fits all. */
enum scorer_feature {
    SF_TOKENS,         /* log1p(estimated tokens of the last user message) / 8 */
    SF_CONTEXT_TOKENS, /* log1p(tokens of the rest of the conversation) / 8 */
    SF_SYSTEM_TOKENS,  /* log1p(tokens of the system / developer messages) / 8 */
    SF_DEPTH,          /* log1p(messages before the last, system ones not counted) / 3 */
    SF_CODE_FENCES,    /* ``` fences, log1p(n) / 2 */
    SF_CODE_LINES,     /* share of the non-empty lines that look like code */
    SF_CODE_WORDS,     /* programming vocabulary (function, python, array...), log1p / 3 */
    SF_DIGITS,         /* share of digits among the non-space bytes */
    SF_MATH_OPS,       /* = + * / ^ < > between operands, log1p(n) / 5 */
    SF_LATEX,          /* LaTeX commands (\frac ...) and $ delimiters, log1p(n) / 4 */
    SF_MATH_WORDS,     /* mathematical vocabulary (equation, integer, probability...), log1p / 3 */
    SF_NUMBERS,        /* runs of digits, log1p(n) / 5 */
    SF_UNITS,          /* a number followed by a unit (5 kg, 3 m/s, 20%...), log1p / 3 */
    SF_QUESTIONS,      /* '?' marks, log1p(n) / 3 */
    SF_SUBTASKS,       /* numbered or bulleted lines (not single-letter choices), log1p / 3 */
    SF_REASONING,      /* reasoning markers (why, explain, prove, derive...), log1p / 3 */
    SF_CONSTRAINTS,    /* constraint markers (must, exactly, at least...), log1p / 3 */
    SF_OUTPUT_LONG,    /* asks for a long answer (essay, in detail...), log1p / 2 */
    SF_OUTPUT_SHORT,   /* asks for a short answer (briefly, one word...), log1p / 2 */
    SF_FORMAT,         /* structured output: response_format json, or asks for json/table/csv */
    SF_MAX_OUTPUT,     /* log1p(max_tokens asked for) / 10, 0 when absent */
    SF_NON_ENGLISH,    /* 1 when the last user message's language is known and not English */
    SF_NON_LATIN,      /* 1 when its dominant script is neither Latin nor none */
    SF_WORD_LENGTH,    /* (mean word length in letters - 3) / 6, clamped to [0, 1] */
    SF_LONG_WORDS,     /* share of words of 10 letters or more */
    SF_NAMES,          /* share of capitalised words not at a sentence start */
    SCORER_N_FEATURES
};

typedef struct scorer scorer_t;

/* The weights compiled into the binary (config/scorer/weights.txt at build
 * time). Never NULL; not to be freed. */
const scorer_t *scorer_builtin(void);

/* Parses a weights file's text. name is used in messages. Returns NULL and
 * writes "NAME:LINE:COL: message" to err (always NUL-terminated) on any
 * problem: a missing or wrong header line, an unknown, repeated or missing
 * feature, a value that is not a finite number within [-1000, 1000].
 * Caller frees with scorer_free. */
scorer_t *scorer_parse(const char *name, const char *text, size_t len, char *err, size_t errlen);
/* Reads and parses path (at most 1 MiB). Same contract as scorer_parse. */
scorer_t *scorer_load(const char *path, char *err, size_t errlen);
void scorer_free(scorer_t *s);

/* Copies s's bias and weights (for `llmrouter tune --refit`). */
void scorer_get_weights(const scorer_t *s, double *bias, double w[SCORER_N_FEATURES]);

/* Where the weights came from: "built-in" or the file name (borrowed). */
const char *scorer_source(const scorer_t *s);

/* "tokens", "code_lines", ... (static), or NULL out of range. */
const char *scorer_feature_name(int f);

/* Computes the features of p into x. Reads p's texts and statistics
 * through prompt.c (which caches them); allocates nothing. The lexical
 * features (code, math, markers, questions, words) read at most the first
 * 4 KiB and the last 2 KiB of the last user message; the token counts cover
 * everything. */
void scorer_features(struct prompt *p, double x[SCORER_N_FEATURES]);

/* The score of a feature vector: 1 / (1 + exp(-(bias + w . x))), in [0, 1]. */
double scorer_apply(const scorer_t *s, const double x[SCORER_N_FEATURES]);

/* Appends to out (for explanations) the n features that raised the score
 * most, as "name +0.123" separated by ", " (w_i * x_i, largest first;
 * nothing when none is positive). */
void scorer_top_features(const scorer_t *s, const double x[SCORER_N_FEATURES], unsigned n,
                         buf_t *out);

/* `llmrouter score [--features] [--weights FILE]`: reads JSON lines from
 * stdin, each a request body (with "messages", or "prompt", or "input") or
 * an object {"prompt": "..."}, and prints per line the score (%.6f) or,
 * with --features, the feature vector (space-separated, %.17g). A line
 * that is not such an object prints "error: ..." on stderr and exits 1.
 * Returns the process exit status. */
int scorer_main(int argc, char **argv);

#endif
