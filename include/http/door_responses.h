/* door_responses: the OpenAI Responses door (POST /v1/responses), stateless.
 * A Responses request is translated once into the daemon's internal form, a
 * Chat Completions body, so that the router, the rules, the cache and the
 * accounting see the same texts, tools and images as for a Chat Completions
 * client; the Chat Completions answer or SSE chunk stream is translated back
 * into a Response object or the Responses event sequence. Errors keep
 * OpenAI's shape on this door (http/apierror.h). What is translated and what
 * is not: docs/providers.md, "Front doors".
 *
 * Stateless: `store: true`, `previous_response_id`, `conversation`,
 * `background` and stored `prompt`s are refused with a 400 naming them.
 * `store` left out (OpenAI's default is true) is taken as false — the SDKs
 * send nothing — and a pass-through body gets "store":false added so the
 * provider keeps nothing either.
 *
 * For a provider marked `responses_api: true` the wiring forwards the
 * client's body with only "model" replaced (door_replace_model with
 * add_store_false) after dr_pass_through_check.
 *
 * Pure functions and a per-stream translator owned by one request on one
 * thread. Every output goes into a caller-provided capped buf_t. */
#ifndef LLMROUTER_DOOR_RESPONSES_H
#define LLMROUTER_DOOR_RESPONSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/door.h"
#include "http/request.h"

/* What dr_request_to_chat found, for the wiring. */
typedef struct dr_info {
    bool stream;       /* "stream": true */
    bool store_absent; /* no "store" key: taken as false (see above) */
} dr_info_t;

/* Translates the Responses request body[0..len) into a Chat Completions
 * body appended to out: instructions → a leading system message; input (a
 * string, or items: messages with input_text / input_image / input_file /
 * output_text parts, function_call items → one assistant message's
 * tool_calls, function_call_output → tool messages; reasoning items dropped);
 * function tools; tool_choice; parallel_tool_calls; text.format →
 * response_format; reasoning.effort → reasoning_effort; max_output_tokens →
 * max_completion_tokens; temperature, top_p, user, safety_identifier,
 * prompt_cache_key; stream (with stream_options.include_usage, which the
 * stream translator needs). Runs the strict body check first. Returns 0, or
 * -1 with a 400 in *err naming the field or the unsupported tool or item type
 * (413 when out's cap was reached). body is borrowed. */
int dr_request_to_chat(const char *body, size_t len, buf_t *out, dr_info_t *info,
                       req_error_t *err);

/* Whether a provider that speaks the Responses API natively can take the
 * request as is (with "model" replaced): the body passes the strict check, is
 * an object with a string "model" and "input", and asks for no server-side
 * state. Built-in tools, reasoning items and file ids are fine there. Returns
 * 0, or -1 with the 400 in *err. body is borrowed. */
int dr_pass_through_check(const char *body, size_t len, req_error_t *err);

/* Translates a non-streamed Chat Completions answer chat[0..len) into a
 * Response object appended to out: id "resp_" + id, created_at, model from
 * the answer (else `model`), status completed, or incomplete with
 * incomplete_details.reason max_output_tokens / content_filter; output items
 * reasoning (from reasoning_content, as a summary_text), message
 * (output_text), function_call (call_id, name, arguments); usage
 * input/output/total tokens with cached and reasoning details. Returns 0, -1
 * when the answer is not a Chat Completion (answer 502), -2 when out's cap
 * was reached. Strings borrowed. */
int dr_answer_from_chat(const char *chat, size_t len, const char *id, const char *model,
                        int64_t created_at, buf_t *out);

/* ---- streams ---- */

/* An incremental translator of one Chat Completions chunk stream into the
 * Responses event sequence. It holds the text of the open output item and
 * the finished items (response.completed repeats the whole output), up to
 * max_held bytes in all. Opaque. */
typedef struct dr_stream dr_stream_t;

#define DR_AGAIN (-2) /* out lacks room: nothing written, state unchanged */

/* A translator for the stream answering request `id` for `model` (copied, cut
 * to 127 bytes), created at created_at (unix seconds); max_held caps what it
 * keeps (say the daemon's max_response_bytes). Free with dr_stream_free. */
dr_stream_t *dr_stream_new(const char *id, const char *model, int64_t created_at,
                           size_t max_held);

/* Frees s and what it holds (NULL is fine). */
void dr_stream_free(dr_stream_t *s);

/* Feeds the data of one SSE data event of the internal stream (a chunk's
 * JSON, the daemon's {"error":...} event, or "[DONE]"), data[0..len), and
 * appends the Responses events it produces to out, each `event: <type>` +
 * `data: {...}` with a sequence_number one higher than the last:
 * response.created and response.in_progress first; per output item
 * response.output_item.added, then for a message response.content_part.added,
 * response.output_text.delta..., response.output_text.done,
 * response.content_part.done; for a function call
 * response.function_call_arguments.delta... and .done; for reasoning the
 * reasoning_summary_part / reasoning_summary_text events; then
 * response.output_item.done; at [DONE] response.completed (or
 * response.incomplete for a length or content_filter finish) with the whole
 * output and usage. An error chunk, or more than max_held bytes to keep,
 * becomes response.failed followed by an `error` event and ends the stream.
 * Events after the end are ignored; data that is not a JSON object is
 * skipped. Returns 0, or DR_AGAIN when out had not room for everything the
 * event produces: nothing was written and the state is as before; feed the
 * same event again once out has drained (if out is empty and it still does
 * not fit, end the stream with dr_stream_finish). data is borrowed. */
int dr_stream_feed(dr_stream_t *s, const char *data, size_t len, buf_t *out);

/* Ends the stream when the internal one ended. Complete ([DONE] fed, or a
 * finish_reason seen): the closing events not yet sent are appended and
 * *complete is set. Cut short: response.failed and an `error` event are
 * appended and *complete is false. Returns 0 or DR_AGAIN (as above). */
int dr_stream_finish(dr_stream_t *s, buf_t *out, bool *complete);

#endif
