/* accesslog: the access log — one JSON object per line per finished request
 * (who, where it was routed, what it cost, how long it took, the failovers),
 * never containing prompts, answers or key values — and the quality
 * sampler, which writes a chosen fraction of request/answer pairs to a JSONL
 * file for offline evaluation.
 *
 * Thread rules: every function may be called from any thread. A line is
 * formatted into a local buffer and written with one write(2) (files are
 * opened O_APPEND, so lines of different shards never interleave).
 * accesslog_reopen / sampler_reopen (for log rotation on SIGHUP) may run
 * while shards write: a read-write lock keeps a writer from using a closed
 * descriptor. Open/close run when no other thread uses the object. */
#ifndef LLMROUTER_ACCESSLOG_H
#define LLMROUTER_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "http/request.h"

typedef struct accesslog accesslog_t;
typedef struct sampler sampler_t;

/* Longest access log line; a longer one (it cannot happen with the bounded
 * fields) is dropped. */
#define ACCESSLOG_MAX_LINE (64 * 1024)

/* Opens the access log: target "stdout" (fd 1), "off" (writes are no-ops)
 * or a file path (created 0640 if absent, appended to). Returns NULL with a
 * message in err when the file cannot be opened. Caller frees with
 * accesslog_close. */
accesslog_t *accesslog_open(const char *target, char *err, size_t errlen);

/* Appends req's line. Call once per finished request on its shard thread,
 * at completion (before request_free). cfg is req's snapshot; now_us is
 * util_now_us() at completion. NULL a is a no-op. */
void accesslog_write(accesslog_t *a, const config_t *cfg, const req_t *req, uint64_t now_us);

/* Formats req's line (with '\n') into out without writing it; for tests and
 * for callers that want the line elsewhere. Returns 0, or -1 if out's cap
 * was reached. */
int accesslog_format(const config_t *cfg, const req_t *req, uint64_t now_us, buf_t *out);

/* Reopens a file target at its path (after logrotate moved it); a no-op for
 * stdout/off. On failure the old file stays in use and -1 is returned. */
int accesslog_reopen(accesslog_t *a);

/* Closes the file and frees a. NULL is a no-op. */
void accesslog_close(accesslog_t *a);

/* Opens the sample file path (appended to) keeping a fraction rate (0..1)
 * of the requests. Returns NULL with a message in err when the file cannot
 * be opened. Caller frees with sampler_close. */
sampler_t *sampler_open(const char *path, double rate, char *err, size_t errlen);

/* Whether a request is sampled, decided at request start from rnd (64
 * uniformly random bits, e.g. util_random). NULL s -> false. The caller must
 * then keep the answer body for sampler_write. */
bool sampler_pick(const sampler_t *s, uint64_t rnd);

/* Writes one JSONL line {time, request_id, rule, tier, model, provider,
 * status, request, response, judge: null}: request and response embedded as JSON when
 * they are valid JSON (line breaks between tokens become spaces), else as
 * strings (e.g. a stream's raw events). Bodies are borrowed. NULL s is a
 * no-op. */
void sampler_write(sampler_t *s, const config_t *cfg, const req_t *req, const char *request_body,
                   size_t len, const char *response_body, size_t rlen);

/* A sample line's text up to (not including) its closing brace: the caller
 * appends `,"judge":...}` and the newline (judged samples are written when
 * the judge finishes, account/judge.h). Returns 0 or -1 (out's cap). */
int sampler_format(const config_t *cfg, const req_t *req, const char *request_body, size_t len,
                   const char *response_body, size_t rlen, buf_t *out);
/* Writes one complete line (with its newline) with one write(2). */
void sampler_write_line(sampler_t *s, const char *line, size_t n);

/* Reopens the sample file (log rotation). Returns 0 or -1 (old file kept). */
int sampler_reopen(sampler_t *s);

void sampler_close(sampler_t *s);

#endif
