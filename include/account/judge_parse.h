/* judge_parse: the pure text side of judging a sampled answer — the prompt
 * sent to the judge model (the question and the answer, each truncated),
 * the judge's answer read as a score 1..10 and a one-line reason, and the
 * hard failure a sampled answer shows (error, refusal, truncation, invalid
 * JSON where JSON was asked). No I/O, no state: any thread. */
#ifndef LLMROUTER_JUDGE_PARSE_H
#define LLMROUTER_JUDGE_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* The built-in rubric (system prompt of the judge). Static. */
const char *judge_default_rubric(void);

/* The judge's user message for a request body (Chat Completions JSON) and
 * its answer (a chat.completion JSON): "Question:\n...\n\nAnswer:\n...",
 * each part cut at max_bytes (on a UTF-8 boundary, "[truncated]" added).
 * NULL when there is no answer text to judge. malloc'd; the caller frees. */
char *judge_prompt(const char *req, size_t len, const char *resp, size_t rlen, size_t max_bytes);

/* Reads a judge's answer: a JSON object {"score": N, "reason": "..."}
 * (alone, fenced or inside text), or "Score: N" / "N/10" followed by a
 * reason. N must be a number from 1 to 10 (rounded to the nearest whole
 * number). reason (one line, at most rlen-1 bytes, valid UTF-8) may be
 * empty. Returns 0, or -1 when no score can be read. */
int judge_parse_score(const char *text, int *score, char *reason, size_t rlen);

/* What went wrong with a sampled answer, if anything. */
enum judge_failure {
    JUDGE_FAIL_NONE = 0,
    JUDGE_FAIL_ERROR,      /* no answer: status >= 500 (the chain failed) */
    JUDGE_FAIL_REFUSAL,    /* finish_reason content_filter, or a refusal field */
    JUDGE_FAIL_TRUNCATED,  /* finish_reason length */
    JUDGE_FAIL_JSON,       /* response_format asked JSON and the content is not */
    JUDGE_FAIL_N
};
/* "error", "refusal", "truncated", "invalid_json" ("none" for NONE). */
const char *judge_failure_name(enum judge_failure f);
/* The failure of a finished request: its status, the request body and the
 * answer (resp may be NULL). A 4xx is the client's fault: NONE. */
enum judge_failure judge_answer_failure(unsigned status, const char *req, size_t len,
                                        const char *resp, size_t rlen);

#endif
