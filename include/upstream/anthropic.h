/* anthropic: the translation between the daemon's internal form — OpenAI
 * Chat Completions requests, answers and SSE streams — and Anthropic's
 * Messages API, for providers of `type: anthropic`.
 *
 *   request  Chat Completions body (parsed)  -> Messages body     (bytes)
 *   answer   Messages answer body (bytes)    -> chat.completion   (bytes)
 *   stream   Messages named events, one at a time -> chat.completion.chunk
 *            events (data-only SSE), incrementally, with bounded state
 *   error    Anthropic error body            -> OpenAI error body
 *
 * What is translated and what is refused is listed in docs/providers.md
 * ("Anthropic upstream"). Output goes into caller-provided capped buffers;
 * when a cap is reached nothing of the failed call stays in the buffer.
 * Pure functions and per-stream objects; any thread, a stream object
 * belongs to one request (not thread-safe). */
#ifndef LLMROUTER_ANTHROPIC_H
#define LLMROUTER_ANTHROPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/buf.h"

/* Return codes. */
enum {
    ANTHROPIC_OK = 0,
    ANTHROPIC_EINVAL = -1,  /* the input cannot be translated; see the err/why text */
    ANTHROPIC_ETOOBIG = -2, /* the output buffer's cap was reached (buffer unchanged) */
    ANTHROPIC_ENOMEM = -3,
};

/* What the wiring needs to talk to Anthropic: appended to the provider's
 * base_url (which includes /v1), and the version header sent with
 * `x-api-key: <key>` and `content-type: application/json`. */
#define ANTHROPIC_PATH_MESSAGES "/messages"
#define ANTHROPIC_VERSION "2023-06-01"
#define ANTHROPIC_HEADER_KEY "x-api-key"
#define ANTHROPIC_HEADER_VERSION "anthropic-version: " ANTHROPIC_VERSION

/* Longest response_format tool name kept (OpenAI's json_schema.name is <= 64). */
#define ANTHROPIC_NAME_MAX 64

/* Parameters of a request translation (all borrowed for the call). */
typedef struct anthropic_req_opts {
    const char *model;          /* upstream model name sent as "model" (required) */
    int64_t default_max_tokens; /* used when the client set neither max_completion_tokens
                                   nor max_tokens (Anthropic requires one); <= 0 means 4096 */
} anthropic_req_opts_t;

/* Facts about a translated request that the answer or stream translation
 * and the caller need. Plain data, copy freely. */
typedef struct anthropic_req_info {
    bool stream;              /* the client asked for a stream */
    bool include_usage;       /* stream_options.include_usage: send the usage chunk */
    bool temperature_clamped; /* temperature > 1 was sent as 1 (Anthropic's range is 0..1) */
    bool sampling_dropped;    /* temperature/top_p left out because thinking is on */
    bool max_tokens_defaulted;/* max_tokens came from default_max_tokens (or was raised
                                 above the thinking budget) */
    int64_t max_tokens;       /* the max_tokens sent */
    int64_t thinking_budget;  /* budget_tokens sent, 0 without thinking */
    /* response_format emulation: the answer is forced through a tool of this
     * name whose input becomes the message content (empty: no emulation) */
    char json_tool[ANTHROPIC_NAME_MAX + 1];
} anthropic_req_info_t;

/* Why a request could not be translated: a 400 for the client in OpenAI's
 * error shape, type invalid_request_error. */
typedef struct anthropic_err {
    char message[256];
    char param[96]; /* the offending field ("messages[2].tool_calls[0].function.arguments"), or "" */
} anthropic_err_t;

/* Translates the Chat Completions request `chat` (borrowed, a parsed
 * object) into a Messages request body appended to `out` (caller-owned,
 * capped). Fills *info (required). Returns ANTHROPIC_OK; ANTHROPIC_EINVAL
 * with *err filled (err may be NULL) for a request Anthropic cannot serve
 * as asked (invalid tool-call arguments, n > 1, logprobs, audio, ...);
 * ANTHROPIC_ETOOBIG / ANTHROPIC_ENOMEM. On failure `out` is as it was. */
int anthropic_request_from_chat(const cJSON *chat, const anthropic_req_opts_t *opts, buf_t *out,
                                anthropic_req_info_t *info, anthropic_err_t *err);

/* Token counts of an answer or stream, Anthropic's classes kept apart
 * (input excludes both cache classes). -1: not reported. */
typedef struct anthropic_usage {
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_read_tokens;
    int64_t cache_write_tokens; /* cache_creation_input_tokens */
} anthropic_usage_t;

/* OpenAI's prompt_tokens for u: input + cache read + cache write (unknown
 * classes count 0), or -1 when input_tokens is unknown. */
int64_t anthropic_prompt_tokens(const anthropic_usage_t *u);

/* Cost in USD of usage u at the given prices per million tokens: each input
 * class at its own price (cache reads at cached_input, cache writes at
 * cache_write), output at output. Unknown counts cost 0. */
double anthropic_cost(const anthropic_usage_t *u, double input_per_mtok, double output_per_mtok,
                      double cached_input_per_mtok, double cache_write_per_mtok);

/* Translates a complete 2xx Messages answer body[0..len) into a
 * chat.completion body appended to `out` (capped). info (borrowed, from the
 * request translation; may be NULL) undoes the response_format emulation.
 * created: the unix time to put in "created". *usage (may be NULL) gets the
 * counts. Returns ANTHROPIC_OK; ANTHROPIC_EINVAL when the body is not a
 * Messages answer (not JSON, an error object, no content array) with why
 * filled (static-length text, may be NULL); ANTHROPIC_ETOOBIG;
 * ANTHROPIC_ENOMEM. On failure `out` is as it was. */
int anthropic_answer_to_chat(const char *body, size_t len, const anthropic_req_info_t *info,
                             int64_t created, buf_t *out, anthropic_usage_t *usage, char *why,
                             size_t whylen);

/* OpenAI's finish_reason for an Anthropic stop_reason (NULL or unknown:
 * "stop"). Returns a static string. */
const char *anthropic_finish_reason(const char *stop_reason);

/* How an Anthropic error maps onto OpenAI's vocabulary. */
typedef struct anthropic_error_info {
    const char *type;    /* OpenAI error type (static) */
    const char *code;    /* Anthropic's error.type, e.g. "overloaded_error" (static) */
    bool fails_over;     /* another model of the chain should be tried (the
                            daemon's rule): 401, 403 (the provider's key), 408,
                            429, >= 500 including 529 overloaded_error */
} anthropic_error_info_t;

/* Translates an Anthropic error answer (HTTP `status`, body[0..len), which
 * may be anything: a proxy's HTML, empty) into an OpenAI error body
 * {"error":{"message","type","param":null,"code"}} appended to `out`.
 * Fills *info (may be NULL). The retry-after header is not in the body: the
 * caller keeps it as for any provider. Returns ANTHROPIC_OK or
 * ANTHROPIC_ETOOBIG (out unchanged). */
int anthropic_error_to_openai(int status, const char *body, size_t len, buf_t *out,
                              anthropic_error_info_t *info);

/* ---- streams ---------------------------------------------------------- */

/* Per-stream translation state: fixed size, no allocation after creation,
 * nothing kept per token. Opaque. */
typedef struct anthropic_stream anthropic_stream_t;

/* A new stream translator (caller frees with anthropic_stream_free). info
 * (borrowed for the call, copied; may be NULL) gives include_usage and the
 * response_format emulation; created is the "created" of every chunk.
 * Returns NULL when out of memory. */
anthropic_stream_t *anthropic_stream_new(const anthropic_req_info_t *info, int64_t created);

void anthropic_stream_free(anthropic_stream_t *s);

/* Feeds one complete SSE event of the upstream stream: its raw bytes
 * ev[0..len) ("event: <name>" and "data: <json>" lines, the blank line
 * optional), e.g. as delimited by sse_feed. Appends the translated chunks
 * ("data: {...}\n\n", "data: [DONE]\n\n" after message_stop) to `out`.
 * ping, comments and unknown events add nothing. An `error` event appends
 * OpenAI's stream error event `data: {"error":{...}}\n\n` and marks the
 * stream failed (see anthropic_stream_failed). Returns ANTHROPIC_OK;
 * ANTHROPIC_ETOOBIG when out lacks room — out and the state are then
 * unchanged, so the same event can be fed again once out has drained;
 * ANTHROPIC_EINVAL when the event is not valid Messages stream data (the
 * stream should be treated as broken); ANTHROPIC_ENOMEM. */
int anthropic_stream_event(anthropic_stream_t *s, const char *ev, size_t len, buf_t *out);

/* True once a content chunk (text, reasoning or a tool call) was appended:
 * before that, a failure may still fail over to the next model (the role
 * chunk alone does not count). */
bool anthropic_stream_started(const anthropic_stream_t *s);

/* True after an error event; *info (may be NULL) then says what kind. */
bool anthropic_stream_failed(const anthropic_stream_t *s, anthropic_error_info_t *info);

/* The counts seen so far (message_start's input and cache classes, the
 * latest cumulative output_tokens). */
void anthropic_stream_usage(const anthropic_stream_t *s, anthropic_usage_t *usage);

/* Call when the upstream stream ended. Returns true when it was complete
 * (message_stop translated, so a finish_reason and [DONE] were sent), false
 * for a cut stream or one that ended with an error: the caller ends the
 * client's stream with its error event. Appends nothing. */
bool anthropic_stream_finish(const anthropic_stream_t *s);

#endif
