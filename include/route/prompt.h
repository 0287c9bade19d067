/* prompt: the features of one request that routing rules look at, computed
 * lazily and at most once per request: the text of each scope (last user
 * message, all user messages, system prompt, whole conversation), its script
 * and token statistics, its language, its keyword hits; plus the request's
 * shape (tools, images, audio, response_format, stream, depth, requested
 * output tokens). Reads a parsed cJSON body it does not own. One prompt
 * belongs to one request on one thread. */
#ifndef LLMROUTER_PROMPT_H
#define LLMROUTER_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/keywords.h"
#include "http/request.h"
#include "route/scorer.h"
#include "route/textstat.h"

struct cJSON;

enum scope { SCOPE_LAST_USER = 0, SCOPE_USER, SCOPE_SYSTEM, SCOPE_CONVERSATION, SCOPE_COUNT };

/* One message's text (or one prompt/input string): features are computed
 * per piece, once, and scopes combine the pieces they cover — so a message
 * that belongs to several scopes is scanned once. */
typedef struct prompt_piece {
    const char *text; /* borrowed from the cJSON tree, or owned */
    size_t len;
    char *owned;
    unsigned char role; /* PIECE_* */
    bool have_stats, have_kw;
    ts_stats_t st;
    uint64_t *kw;
} prompt_piece_t;

typedef struct prompt_scope {
    bool have_text, have_stats, have_lang, have_kw;
    const char *text; /* borrowed from a piece, or owned_text */
    size_t len;
    char *owned_text;
    ts_stats_t st;
    const char *lang;
    uint64_t *kw; /* keyword hit bits, owned */
} prompt_scope_t;

typedef struct prompt {
    const struct cJSON *root; /* borrowed */
    enum endpoint ep;
    prompt_scope_t s[SCOPE_COUNT];
    prompt_piece_t *pieces; /* built on first use */
    size_t n_pieces;
    bool have_pieces;
    size_t kw_words; /* uint64_t words per keyword bitset */
    /* shape, filled by prompt_init */
    unsigned n_messages;
    unsigned n_system; /* system / developer messages among them */
    bool tools;
    bool images;
    bool audio;
    bool stream;
    const char *response_format; /* "text", "json_object", "json_schema", ... or NULL */
    int64_t max_output;          /* max_completion_tokens / max_tokens, -1 if absent */
    /* complexity score, computed by the first prompt_score */
    bool have_score;
    bool score_used; /* the rules needed it to decide (set by rules_eval) */
    double score;
    double score_x[SCORER_N_FEATURES];
} prompt_t;

/* Reads the shape of the request root (a validated body of endpoint ep). */
void prompt_init(prompt_t *p, const struct cJSON *root, enum endpoint ep);
/* Frees what the prompt allocated (not the cJSON tree). */
void prompt_free(prompt_t *p);

/* Text of a scope (may be empty, never NULL). Valid until prompt_free and
 * while the cJSON tree lives. */
void prompt_text(prompt_t *p, enum scope sc, const char **text, size_t *len);
/* Script counts and token estimate of a scope; for the conversation scope
 * the estimate includes the per-message chat overhead. */
const ts_stats_t *prompt_stats(prompt_t *p, enum scope sc);
/* Language code of a scope ("en", "zh", ..., "und"). */
const char *prompt_language(prompt_t *p, enum scope sc);
/* Keyword hit bits of a scope against ks (one scan, cached). */
const uint64_t *prompt_keywords(prompt_t *p, enum scope sc, const kwset_t *ks);

/* The complexity score of the request under scorer s (route/scorer.h),
 * computed once: later calls return the first result whatever s is (one
 * request is scored by one configuration). Its features stay in
 * p->score_x for explanations. */
double prompt_score(prompt_t *p, const scorer_t *s);

const char *prompt_scope_name(enum scope sc);
/* "last_user", "user", "system", "conversation"; -1 if unknown. */
int prompt_scope_parse(const char *name);

#endif
