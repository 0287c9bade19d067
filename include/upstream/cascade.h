/* cascade: cheapest-first tiers. A tier marked `cascade: true` answers a
 * non-streamed chat completion with its cheapest model first; the answer is
 * accepted when it passes the tier's checks (non-empty, finish_reason stop,
 * valid JSON / valid against the requested json_schema, no refusal,
 * optional regexes, optional judge model), else the next model is tried.
 * This module holds the checks' configuration (parsed from the tier's
 * `checks:` mapping), the checks themselves on a complete answer (pure
 * functions, any thread), a compact JSON-Schema validator, and the
 * per-request record of the steps (shard thread of the request). The
 * escalation itself lives in upstream.c. See docs/routing.md "Cascades". */
#ifndef LLMROUTER_UPSTREAM_CASCADE_H
#define LLMROUTER_UPSTREAM_CASCADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "core/config.h"
#include "core/yamlwalk.h"

struct cJSON;
struct req;

/* Why an answer was not accepted (the "reason" of a verdict). */
enum cascade_reason {
    CASCADE_OK = 0,
    CASCADE_EMPTY,       /* no content and no tool call */
    CASCADE_LENGTH,      /* finish_reason is not stop (length, content_filter, ...) */
    CASCADE_JSON,        /* JSON was requested and the content is not JSON */
    CASCADE_SCHEMA,      /* the content does not match the requested json_schema */
    CASCADE_REFUSAL,     /* a refusal phrase, or the message's refusal field */
    CASCADE_REGEX,       /* must_match did not match, or must_not_match did */
    CASCADE_JUDGE,       /* the judge's score is below the threshold */
    CASCADE_JUDGE_ERROR, /* the judge failed, timed out or answered no score */
    CASCADE_N_REASONS
};

/* What became of one step. */
enum cascade_verdict {
    CASCADE_ACCEPTED = 0, /* passed the checks: this answer was returned */
    CASCADE_REJECTED,     /* failed a check: escalated to the next model */
    CASCADE_FAILED,       /* provider error or skipped model: failed over */
    CASCADE_FINAL,        /* last model, failed a check, returned anyway */
    CASCADE_N_VERDICTS
};

/* "empty", "length", ... ("ok" for CASCADE_OK). Static strings. */
const char *cascade_reason_name(enum cascade_reason r);
/* "accepted", "rejected", "failed", "final". Static strings. */
const char *cascade_verdict_name(enum cascade_verdict v);

/* ---- configuration (one per cascade tier, owned by the tier) ---- */

typedef struct cascade_cfg cascade_cfg_t;

/* Parses a cascade tier's `checks:` mapping (v may be NULL: the defaults)
 * for the tier `where` ("tiers.NAME"). Models must be parsed already (the
 * judge names one). Errors (unknown keys, invalid regexes, a judge threshold
 * outside [0, 1], an unknown judge model) are recorded in c with their
 * position. Returns the configuration (never NULL); free with
 * cascade_cfg_free. */
cascade_cfg_t *cascade_cfg_parse(ywalk_t *c, const config_t *cfg, const yaml_node_t *v,
                                 const char *where);
void cascade_cfg_free(cascade_cfg_t *cc);
/* The judge model (index into cfg->models) or -1 when there is no judge. */
int cascade_cfg_judge_model(const cascade_cfg_t *cc);
double cascade_cfg_judge_threshold(const cascade_cfg_t *cc);
unsigned cascade_cfg_judge_timeout_ms(const cascade_cfg_t *cc);

/* ---- the checks ---- */

/* What the request asked for that the checks need: parsed once from the
 * client's body. */
typedef struct cascade_ask {
    bool want_json;              /* response_format json_object or json_schema */
    struct cJSON *schema;        /* json_schema.schema (owned), NULL if none */
    char *question;              /* the last user message's text (owned, capped), for the judge */
} cascade_ask_t;

/* Fills ask from the client's chat body[0..len) (valid JSON). */
void cascade_ask_init(cascade_ask_t *ask, const char *body, size_t len);
void cascade_ask_free(cascade_ask_t *ask);

/* Runs the local checks (everything but the judge) of cc on a complete chat
 * completion answer[0..len) (already known to be a JSON object, not an
 * error), on every choice. Returns CASCADE_OK or the first failing reason;
 * detail (may be NULL) gets a short human-readable explanation. When the
 * answer passes and content is not NULL, *content is set to choice 0's
 * content (malloc'd, caller frees; NULL when it has none) for the judge. */
enum cascade_reason cascade_check(const cascade_cfg_t *cc, const cascade_ask_t *ask,
                                  const char *answer, size_t len, char **content, char *detail,
                                  size_t detail_len);

/* The judge: the request body for judging answer to question (malloc'd,
 * *len set; caller frees), and the score read from the judge's content: a
 * number in [0, 1] at the start of the reply (a "N/10" or a number in
 * (1, 10] is scaled by 1/10), or -1 when there is none. */
char *cascade_judge_body(const config_t *cfg, const cascade_cfg_t *cc, const char *question,
                         const char *answer, size_t *len);
double cascade_judge_score(const char *content);

/* ---- the steps of one request (owned by the request, shard thread) ---- */

typedef struct cascade_step {
    int model;                   /* index into cfg->models */
    enum cascade_verdict verdict;
    enum cascade_reason reason;  /* CASCADE_OK unless rejected / final */
    double cost_usd;             /* this attempt's cost (estimated when the answer had no usage) */
    double judge_score;          /* -1 when not judged */
    double judge_usd;            /* the judge's cost, 0 when none or unknown */
} cascade_step_t;

typedef struct cascade_run {
    const cascade_cfg_t *cfg;    /* the tier's (borrowed from the request's snapshot) */
    cascade_ask_t ask;
    cascade_step_t steps[32];
    size_t n_steps;
    double prior_usd;            /* cost of the attempts not returned, judges included */
    int64_t prior_tokens;        /* their tokens (for the budget's token limits) */
    double direct_usd;           /* the last model of the chain for the returned answer's tokens; < 0 */
    /* the last rejected answer, returned when every later model fails */
    char *kept;
    size_t kept_len;
    int kept_model;
    size_t kept_step;
    double kept_cost;
    int64_t kept_tokens, kept_prompt, kept_completion, kept_cached;
    bool judge_step_open;        /* the last step waits for (or just got) the judge's verdict */
    void *judge;                 /* upstream_call_t * in flight, NULL */
    /* the answer waiting for the judge (owned) */
    char *pending_compact, *pending_new;
    size_t pending_compact_len, pending_new_len;
    double pending_cost;
    int64_t pending_prompt, pending_completion, pending_cached;
} cascade_run_t;

/* Whether req (routed, parsed) runs as a cascade: a non-streamed chat
 * completion routed to a cascade tier through the rules, the default tier,
 * x-router-tier or the tier's name (a client naming a model gets that
 * model, with the tier as failover). */
bool cascade_applies(const struct req *req);

/* A new run for req's tier (the caller stores it in req->casc). */
cascade_run_t *cascade_run_new(const struct req *req);
/* Frees run and what it owns; a judge call must be cancelled first. NULL ok. */
void cascade_run_free(cascade_run_t *run);
/* Appends a step (at most 32). Returns it, or NULL when full. */
cascade_step_t *cascade_add_step(cascade_run_t *run, int model, enum cascade_verdict v,
                                 enum cascade_reason r, double cost_usd);

/* Writes the x-router-cascade value ("cheap:rejected(length),mid:accepted")
 * into out (always NUL-terminated). Returns the length, 0 when no step. */
size_t cascade_header(const config_t *cfg, const cascade_run_t *run, char *out, size_t n);

#endif
