/* gate_head: the check of a request head before libmicrohttpd sees it. The
 * gate (http/gate.h) peeks at a new connection's first bytes and feeds them
 * here; a head that passes is one libmicrohttpd 0.9.75 parses without an
 * answer of its own (those are HTML pages, some written twice, and an unknown
 * Transfer-Encoding hangs the connection), and whose framing cannot hide a
 * second request (RFC 9112 §6.1, §6.3). Refusals carry the status, the error
 * code and the message the gate answers with, in the door's error shape.
 *
 * What is checked: the request line (a token method, one space, a target of
 * visible ASCII, one space, HTTP/1.x: HTTP/0.x and 2+ get 505, the HTTP/2
 * preface included; a TLS ClientHello gets 400); header lines (a token name
 * right before the colon, no obsolete line folding, no control characters,
 * no bare CR); the size as server.c measures it (text plus 64 bytes per
 * field, cookie and query argument: 431, or 414 for the request line alone);
 * Content-Length (digits only, equal when repeated, under max_body_bytes: 400
 * or 413); Transfer-Encoding (exactly "chunked": 400 when chunked is not the
 * final coding, 501 for other codings, 400 with HTTP/1.0); and both together
 * (400). Pure; any thread. */
#ifndef LLMROUTER_GATE_HEAD_H
#define LLMROUTER_GATE_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes a header field, cookie or query argument takes in libmicrohttpd's
 * pool besides its text (server.c charges the same). */
#define GATE_FIELD_ENTRY_BYTES 64

typedef struct gate_limits {
    size_t max_header_bytes; /* server.max_header_bytes */
    uint64_t max_body_bytes; /* server.max_body_bytes */
} gate_limits_t;

enum gate_head_result {
    GATE_HEAD_MORE = 0,   /* sound so far, incomplete: wait for more bytes */
    GATE_HEAD_PASS = 1,   /* a complete, sound head */
    GATE_HEAD_REFUSE = 2, /* refused: answer with the verdict, then close */
};

/* Resumable state of one connection's head: zero it before the first call
 * and pass it again with the same bytes and more. */
typedef struct gate_head {
    size_t _pos;     /* start of the first line not parsed yet */
    size_t _charged; /* what the parsed lines take by server.c's measure */
    uint64_t _cl;    /* Content-Length, when _have_cl */
    unsigned _lines; /* request line and header lines parsed */
    bool _have_cl, _cl_huge, _have_te, _te_exact, _te_final_chunked, _te_other, _te_twice;
    bool _http10;
    bool probe;    /* GET or HEAD of /healthz, /readyz (with or without /v1) or /metrics */
    bool messages; /* the target is the Messages door: errors in Anthropic's shape */
    size_t head_len; /* PASS: bytes of the head, its blank line included */
} gate_head_t;

typedef struct gate_verdict {
    unsigned status;   /* 400, 413, 414, 431, 501 or 505 */
    const char *code;  /* the OpenAI error code */
    char message[240]; /* for error.message */
} gate_verdict_t;

/* Checks buf[0..len): everything received so far on the connection (the head
 * and possibly body bytes after it). eof: the client will send no more (it
 * half-closed), so an incomplete head is refused. Refuses as soon as the
 * bytes so far cannot begin a sound head or exceed the limits. On REFUSE *v
 * is filled; h->messages tells the shape when the target was read. */
enum gate_head_result gate_head_check(gate_head_t *h, const char *buf, size_t len, bool eof,
                                      const gate_limits_t *lim, gate_verdict_t *v);

/* The same framing rules for a head libmicrohttpd parsed itself (a later
 * request of a kept-alive connection): feed it every header field,
 * duplicates included (name and value as libmicrohttpd hands them out), then
 * ask gate_head_framing. A REFUSE from either fills *v. */
enum gate_head_result gate_head_field(gate_head_t *h, const char *name, size_t nlen,
                                      const char *value, size_t vlen, gate_verdict_t *v);
enum gate_head_result gate_head_framing(gate_head_t *h, bool http10, const gate_limits_t *lim,
                                        gate_verdict_t *v);

#endif
