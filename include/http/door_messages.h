/* door_messages: the Anthropic Messages door (POST /v1/messages and
 * /v1/messages/count_tokens). An Anthropic-format request is translated once
 * into the daemon's internal form, a Chat Completions body, so that the
 * router, the rules, the cache and the accounting see the same texts, tools
 * and images as for a Chat Completions client; the Chat Completions answer,
 * its SSE chunk stream or its error is translated back into Anthropic's
 * format. What is translated and what is not: docs/providers.md, "Front
 * doors".
 *
 * When the model chosen is itself Anthropic, the wiring forwards the
 * client's bytes with only "model" replaced (door_replace_model in
 * http/door.h) instead of the translation: nothing is lost.
 *
 * Pure functions and a per-stream translator; a translator belongs to one
 * request on one thread. Every output goes into a caller-provided capped
 * buf_t (see core/buf.h: buf_init(b, 0) is a cap of 0 bytes). */
#ifndef LLMROUTER_DOOR_MESSAGES_H
#define LLMROUTER_DOOR_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/door.h"
#include "http/request.h"

/* What the translation of a request left behind (dm_info_t.dropped). */
enum {
    DM_DROP_CACHE_CONTROL = 1, /* cache_control markers (OpenAI caches by itself) */
    DM_DROP_THINKING = 2,      /* thinking / redacted_thinking blocks of the history */
    DM_DROP_TOP_K = 4,         /* top_k: no Chat Completions equivalent */
    DM_DROP_UNSUPPORTED = 8,   /* a block or tool type with no equivalent: see unsupported */
};

/* Flags of dm_request_to_chat. */
enum {
    /* a count_tokens body: max_tokens is not required, stream is ignored */
    DM_COUNT_TOKENS = 1,
};

/* What dm_request_to_chat found, for the wiring. */
typedef struct dm_info {
    bool stream;         /* "stream": true */
    int64_t max_tokens;  /* -1 when absent (count_tokens only) */
    unsigned dropped;    /* DM_DROP_* */
    char unsupported[64]; /* the first block or tool type that has no Chat
                            Completions equivalent ("document",
                            "web_search_20250305", ...), "" when none */
} dm_info_t;

/* Translates the Anthropic Messages request body[0..len) into a Chat
 * Completions body appended to out (model kept as the client wrote it; a
 * stream asks for stream_options.include_usage, which the stream translator
 * needs). Runs the strict body check first. Blocks and tool types without an
 * equivalent are left out and named in info->unsupported (the request can
 * still be routed and passed through to an Anthropic model; see
 * dm_check_translatable before sending the translation to another one).
 * Returns 0, or -1 with *err filled (a 400 naming the field, or 413-like
 * "request_too_large" 413 when out's cap was reached). body is borrowed; out
 * and info are the caller's. */
int dm_request_to_chat(const char *body, size_t len, unsigned flags, buf_t *out, dm_info_t *info,
                       req_error_t *err);

/* Whether the request can go as is to an Anthropic provider (with only
 * "model" replaced): true for every request dm_request_to_chat accepted —
 * the Messages API takes everything this door accepts, thinking signatures
 * and cache_control included. Kept as a function so the wiring has one
 * place to ask. */
bool dm_can_pass_through(const dm_info_t *info);

/* Whether the translation can be sent to a non-Anthropic model: 0, or -1
 * with a 400 in *err naming the block or tool type it cannot carry
 * (info->unsupported). Dropped thinking blocks, cache_control and top_k are
 * not errors (documented losses). */
int dm_check_translatable(const dm_info_t *info, req_error_t *err);

/* Answers POST /v1/messages/count_tokens from the router's estimate
 * (route/textstat.h over the translated conversation, plus the tools'
 * definitions): appends {"input_tokens":N} to out. It is an estimate, not
 * Anthropic's count (docs/token-estimate.md). Returns 0, or -1 with *err
 * filled. body is borrowed. */
int dm_count_tokens(const char *body, size_t len, buf_t *out, req_error_t *err);

/* Anthropic's error.type for an HTTP status: 400 invalid_request_error (and
 * other 4xx), 401 authentication_error, 402 billing_error, 403
 * permission_error, 404 not_found_error, 413 request_too_large, 429
 * rate_limit_error, 503 and 529 overloaded_error, 504 timeout_error, other
 * 5xx api_error. Static string. */
const char *dm_error_type_for_status(unsigned status);

/* Appends {"type":"error","error":{"type":T,"message":M},"request_id":R}
 * to out, T from status (dm_error_type_for_status); request_id may be NULL
 * (left out). Returns 0 or -1 when out's cap was reached. Strings borrowed. */
int dm_error_body(unsigned status, const char *message, const char *request_id, buf_t *out);

/* Appends the stream error event Anthropic ends a broken stream with:
 * `event: error` + {"type":"error","error":{"type":"api_error","message":M}}
 * and the blank line. Returns 0 or -1 (out's cap; nothing written). */
int dm_error_event(const char *message, buf_t *out);

/* The Anthropic error body for an OpenAI-shaped error body[0..len) with
 * HTTP status (the daemon's own errors, a provider's passed-through 4xx):
 * error.message is kept; when the body is not an OpenAI error, a generic
 * message naming the status is used. Returns 0 or -1 (out's cap). */
int dm_error_from_openai(unsigned status, const char *body, size_t len, const char *request_id,
                         buf_t *out);

/* Translates a non-streamed Chat Completions answer chat[0..len) into an
 * Anthropic message appended to out: id "msg_" + id, model from the answer
 * (else `model`), content blocks thinking (from reasoning_content), text,
 * tool_use (input parsed from the arguments), stop_reason from finish_reason,
 * usage (input_tokens without the cached and cache-write tokens, which go to
 * cache_read_input_tokens and cache_creation_input_tokens). Returns 0, -1
 * when the answer is not a Chat Completion (nothing useful written; answer
 * 502), -2 when out's cap was reached. Strings borrowed. */
int dm_answer_from_chat(const char *chat, size_t len, const char *id, const char *model,
                        buf_t *out);

/* ---- streams ---- */

/* An incremental translator of one Chat Completions chunk stream into
 * Anthropic's named events. Bounded state (no text is kept). Opaque. */
typedef struct dm_stream dm_stream_t;

/* Return codes of dm_stream_feed / dm_stream_finish besides 0. */
#define DM_AGAIN (-2) /* out lacks room: nothing written, state unchanged */

/* A translator for a stream answering the request `id` for `model` (both
 * copied, cut to 127 bytes); est_input_tokens goes into message_start's usage
 * (the real count follows in message_delta once the usage chunk arrived).
 * Free with dm_stream_free. */
dm_stream_t *dm_stream_new(const char *id, const char *model, uint32_t est_input_tokens);

/* Frees s (NULL is fine). */
void dm_stream_free(dm_stream_t *s);

/* Feeds the data of one SSE data event of the internal stream (the JSON of
 * a chunk, the daemon's {"error":...} event, or "[DONE]"), data[0..len), and
 * appends the Anthropic events it produces to out: message_start before the
 * first block, content_block_start/delta/stop per block (text_delta,
 * thinking_delta, input_json_delta; block indexes counted here, tool calls
 * by their own index), message_delta (stop_reason, usage) and message_stop
 * at [DONE]; an error chunk becomes `event: error` and ends the stream.
 * Events after the end are ignored; chunks that are not JSON objects are
 * skipped. Returns 0, or DM_AGAIN when out had not room for everything the
 * event produces: then nothing was written and the state is as before, so
 * the caller feeds the same event again once out has drained (if out is
 * empty and it still does not fit, end the stream with dm_stream_finish).
 * data is borrowed. */
int dm_stream_feed(dm_stream_t *s, const char *data, size_t len, buf_t *out);

/* Ends the stream when the internal one ended. If it was complete ([DONE]
 * fed, or every choice got a finish_reason), the closing events not yet sent
 * are appended and *complete is set; otherwise (a cut stream) the open block
 * is closed and an `event: error` (Anthropic's stream error shape, type
 * api_error) is appended instead of message_stop, and *complete is false.
 * An error already sent is not repeated. Returns 0 or DM_AGAIN (as above). */
int dm_stream_finish(dm_stream_t *s, buf_t *out, bool *complete);

/* Output tokens seen so far: the usage chunk's completion_tokens, else an
 * estimate over the deltas (for accounting a cut stream). */
uint32_t dm_stream_output_tokens(const dm_stream_t *s);

#endif
