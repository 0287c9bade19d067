/* completion: conversions between the two shapes of one completion answer, so
 * the response cache can keep a single canonical form — the complete,
 * non-streamed completion object (compact JSON) of /chat/completions
 * ("chat.completion") or of legacy /completions ("text_completion").
 *
 * - Assembly: a streamed answer is fed event by event into an accumulator
 *   that builds the equivalent non-streamed object, or gives up as soon as
 *   the stream cannot be stored (only complete successful answers are
 *   cached: every choice finished with "stop" or "length").
 * - Replay: a stored object is turned back into a well-formed SSE stream
 *   following the OpenAI streaming contract ("Rules for llmrouter": data-only
 *   events, constant id/created/model, role once per choice, tool-call
 *   fragments in the canonical order, a finish_reason on every choice's last
 *   chunk, optional usage chunk, then "data: [DONE]").
 *
 * Fields that cannot be carried faithfully make either direction refuse
 * (never a silently different answer): non-null logprobs, audio,
 * function_call, non-empty annotations, non-"function" tool calls. Other
 * unknown fields are dropped (per-choice extras such as Azure's
 * content_filter_results, non-standard deltas such as reasoning_content);
 * system_fingerprint and service_tier are kept.
 *
 * An accumulator belongs to one stream on one loop thread (not thread-safe);
 * completion_replay_sse is a pure function any thread may call. */
#ifndef LLMROUTER_COMPLETION_H
#define LLMROUTER_COMPLETION_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "http/request.h" /* enum endpoint */

/* Most choices (n) and tool calls per choice either direction handles;
 * beyond them the answer is not cached. */
#define COMPLETION_MAX_CHOICES 128
#define COMPLETION_MAX_TOOL_CALLS 128

/* Replay splits content, refusal and legacy text into pieces of at most this
 * many bytes, always at a UTF-8 character boundary. */
#define COMPLETION_REPLAY_PIECE 64

typedef struct completion_acc completion_acc_t;

/* Creates an accumulator for a stream of endpoint ep (EP_CHAT or
 * EP_COMPLETIONS; anything else returns NULL). max_bytes caps the assembled
 * text (content, refusal, legacy text, tool-call ids, names and arguments,
 * summed over all choices); past it the accumulator gives up. Caller frees
 * with completion_acc_free. */
completion_acc_t *completion_acc_new(enum endpoint ep, size_t max_bytes);

/* Feeds the payload of one `data:` event (one JSON chunk, not "[DONE]");
 * data is borrowed for the call only. Chunks whose "object" is present but
 * is not this endpoint's chunk type (e.g. Azure's prompt-filter events with
 * "object": "") are skipped, as the OpenAI Python SDK does. Returns 0, or -1
 * once the stream is unusable for caching: invalid JSON or not an object, a
 * non-null "error" member, a mistyped field, a choice or tool-call fragment
 * without a valid "index", non-null logprobs, a non-"function" tool call, a
 * role other than "assistant", an audio or function_call delta, more than
 * COMPLETION_MAX_CHOICES choices or COMPLETION_MAX_TOOL_CALLS tool calls, or
 * the max_bytes cap exceeded. After -1 every further call returns
 * -1 and does nothing. */
int completion_acc_event(completion_acc_t *a, const char *data, size_t len);

/* Builds the assembled completion as compact JSON: malloc'd and
 * NUL-terminated, the caller frees it with free(); *len is set to its length
 * (NUL excluded). Returns NULL when the stream cannot be stored: an earlier
 * -1, no accepted chunk, no choice, no id/model/created, a choice without a
 * finish_reason or with one other than "stop" or "length" (tool_calls,
 * content_filter, ... are not cached), or a tool call without id or name.
 * The accumulator is left unchanged (finish may be called again).
 *
 * Chat output: {"id","object":"chat.completion","created","model",
 * ["system_fingerprint",]["service_tier",]"choices":[{"index","message":
 * {"role":"assistant","content","refusal"[,"tool_calls"]},"logprobs":null,
 * "finish_reason"}...]["usage"]} with choices sorted by index. content is
 * null when nothing was streamed, or when it is empty and the message has
 * tool calls or a refusal (what a non-streamed answer carries there); refusal
 * is null unless non-empty. Legacy output: "text_completion" objects whose
 * choices are {"text","index","logprobs":null,"finish_reason"}. */
char *completion_acc_finish(completion_acc_t *a, size_t *len);

/* Frees the accumulator and everything it holds; NULL is allowed. */
void completion_acc_free(completion_acc_t *a);

/* Appends to out (borrowed) the SSE stream equivalent to the stored
 * completion body[0..len) (borrowed) of endpoint ep: for each choice in
 * stored order, a first chunk (chat: delta {"role":"assistant","content":""};
 * legacy: text ""), then the content, refusal and legacy text in pieces of
 * at most COMPLETION_REPLAY_PIECE bytes, then each tool call as a first
 * fragment {index, id, type:"function", function:{name, arguments:""}} and,
 * when the arguments are not empty, one fragment {index, function:
 * {arguments}}, then a last chunk (chat: delta {}) carrying the stored
 * finish_reason; then "data: [DONE]\n\n".
 *
 * include_usage: the client asked stream_options.include_usage; every chunk
 * above then carries "usage": null and, when the stored body has a usage
 * object, one chunk with "choices": [] and that usage precedes [DONE]. When
 * nothing is stored there is no honest usage to report, so that chunk is
 * omitted (the OpenAI contract allows it to be missing) rather than invented
 * as zeros.
 *
 * Returns 0, or -1 with out unchanged when body is not a completion of ep's
 * kind that can be replayed faithfully (see the header comment) or when out's
 * cap would be exceeded. */
int completion_replay_sse(enum endpoint ep, const char *body, size_t len, bool include_usage,
                          buf_t *out);

/* Whether body[0..len) (borrowed) may be stored in the response cache for
 * endpoint ep — the one rule for both sides of the cache: the store path
 * (plain answers and assembled streams) stores only what passes, and a hit
 * read from a shared store (Redis) is served only if it passes, so nothing
 * is stored that a replay refuses. It passes when it is valid UTF-8 JSON
 * text and, for EP_CHAT and EP_COMPLETIONS, a completion
 * completion_replay_sse accepts (an object of the endpoint's kind with id,
 * model, an integer "created" a double holds exactly, usage counts that are
 * non-negative integers, and at least one choice, each with its message or
 * text) whose every choice finished with "stop" or "length"; for
 * EP_EMBEDDINGS, a "list" with a model and a non-empty data array of objects
 * with an index and a non-empty embedding (finite numbers, or a base64
 * string). Pure; any thread. */
bool completion_storable(enum endpoint ep, const char *body, size_t len);

#endif
