/* request: the state of one client request, from the first header to the
 * last byte, and the parsing/validation of its body. A request lives on one
 * shard (loop thread) for its whole life; all its memory is owned here and
 * freed in one place, request_free(), called when libmicrohttpd reports the
 * request completed. Not thread-safe: only its shard's thread touches it. */
#ifndef LLMROUTER_REQUEST_H
#define LLMROUTER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/json.h"
#include "core/loop.h"
#include "route/router.h"
#include "upstream/anthropic.h"
#include "upstream/health.h"
#include "upstream/owner.h"
#include "upstream/sse.h"

struct shard;
struct MHD_Connection;
struct MHD_Response;

enum endpoint { EP_NONE = 0, EP_CHAT, EP_COMPLETIONS, EP_EMBEDDINGS };

enum req_state {
    RS_BODY,      /* reading the request body */
    RS_UPSTREAM,  /* suspended, waiting for an upstream answer */
    RS_READY,     /* a response is prepared; queued at the next handler call */
    RS_RESPONDED, /* response queued (plain or streaming) */
};

typedef struct attempt {
    int model;      /* index into cfg->models */
    unsigned status; /* upstream HTTP status, 0 if none */
    unsigned char retry; /* 0: the model's first attempt; n: its n-th retry */
    char error[112]; /* why it failed, "" if it did not */
    uint64_t t0_us, t1_us; /* its transfer's start and end (util_now_us); equal for a skip */
} attempt_t;

/* Why an attempt was abandoned; also an error for the whole request. */
typedef struct req_error {
    unsigned status;
    const char *type;
    const char *code;
    const char *param;
    char message[512];
} req_error_t;

typedef struct req {
    struct shard *shard;
    struct MHD_Connection *conn;
    config_t *cfg; /* reference held for the request's life */
    struct req *prev, *next; /* shard's list of live requests */
    enum endpoint ep;
    enum req_state state;
    uint64_t t_start_us;
    char id[136]; /* x-request-id */
    char method[8];
    char path[64];

    /* request headers, for rules (set by the HTTP front end; may be NULL) */
    const char *(*header)(void *arg, const char *name);
    void *header_arg;
    bool explain_only; /* POST /v1/router/explain: route, answer why, call nobody */

    /* body */
    buf_t body;
    bool too_large;
    bool discard_body; /* the answer is already prepared (404, 405, health, models) */

    /* parsed from the body */
    bool stream;
    bool want_base64;   /* embeddings: encoding_format == "base64" */
    json_span_t model_span;
    json_span_t so_span;  /* stream_options value, len 0 if absent */
    size_t body_end;      /* offset of the body's closing '}' */
    route_t route;
    size_t next_link;   /* next index into route.chain to try */
    attempt_t *attempts; /* attempts_cap entries, grown by upstream_record */
    size_t n_attempts;
    size_t attempts_cap;
    int model;          /* model of the current/last attempt, -1 before any */
    struct cascade_run *casc; /* a cascade tier's steps (upstream/cascade.h), NULL otherwise */

    /* current upstream attempt (owned by upstream.c) */
    void *easy;         /* CURL * */
    upstream_owner_t up_owner; /* kind UPSTREAM_OWNER_REQ (0); easy's CURLOPT_PRIVATE */
    char *fwd_body;     /* body sent upstream: client body with "model" replaced */
    size_t fwd_len;
    unsigned up_status;
    bool up_headers_done;
    bool passthrough;   /* non-2xx the client must see as is (400, 404, 422, ...) */
    bool attempt_failed;
    char fail_reason[112];
    bool committed;     /* streaming: the first event went to the client */
    bool saw_done;      /* streaming: upstream sent data: [DONE] */
    bool up_done;       /* streaming: upstream finished (cleanly or not) */
    bool up_paused;     /* curl transfer paused by backpressure */
    unsigned up_sends;  /* times curl sent this attempt's request (only 1 is allowed) */
    int64_t up_retry_ms; /* this attempt's 429: its retry-after(-ms), in ms; -1 none */
    bool up_retry_exact; /* up_retry_ms came from retry-after-ms (which wins) */
    int64_t rl_retry_ms; /* smallest retry delay over the chain's 429s so far; -1 none */
    bool rl_answer;     /* the answer is the all-rate-limited 429 or all-busy 503: send retry-after */
    bool stream_failed; /* committed stream that ended with an error event */
    bool in_unpause;    /* queued on the shard's unpause list */
    struct req *unpause_next;
    uint64_t out_base;  /* absolute stream offset of out's read position (pre-commit) */
    sse_scan_t sse;
    buf_t out;          /* streaming: bytes waiting for the client; else the full response */
    char *tail;         /* streaming: final bytes after out drains (error event / [DONE]) */
    size_t tail_len, tail_off;
    loop_timer_t timer; /* first-byte timeout, then idle timeout; a retry's wait */
    uint64_t last_data_ms;

    /* ---- retries and the deadline (upstream/retry.h; set by
     * request_parse and upstream.c) ---- */
    uint32_t deadline_ms;  /* routing.deadline_ms or x-router-deadline-ms; 0 = none */
    uint64_t deadline_us;  /* when it passes (util_now_us clock); 0 = none */
    bool deadline_hit;     /* the deadline ended an attempt: no more attempts */
    bool timer_deadline;   /* timer is armed for the deadline, not for a timeout */
    unsigned char fail_kind; /* enum retry_kind of the current attempt's failure */
    unsigned char retry_n; /* retries of the current model so far */
    unsigned char retry_counted; /* of them, those counted against its `retries` */
    bool stale_free_used;  /* the current model had its free stale_connection retry */
    bool fresh_connect;    /* the next attempt opens a new connection */
    /* ---- admission (upstream/admit.h): circuit breakers, 429 cooldowns,
     * provider concurrency slots. Owned by admit.c. ---- */
    struct health_model *adm_model;   /* breaker of the attempt under way, until its outcome is reported */
    bool adm_probe;                   /* that attempt is its model's half-open probe */
    struct health_provider *adm_slot; /* the provider slot it holds, NULL */
    struct health_model *adm_lb;      /* counted outstanding on this model until the transfer ends */
    struct health_provider *adm_wait_p; /* queued for a slot of this provider, NULL */
    health_wait_t adm_wait;
    uint64_t adm_wait_since;          /* loop ms when it began waiting */
    bool adm_wait_deadline;           /* the wait ends with the request's deadline */
    uint64_t adm_waited_ms;           /* time spent waiting for slots, all attempts */
    int adm_cooling;                  /* the chain's skipped model whose cooldown ends first, -1 */
    uint64_t adm_cooling_left;
    bool adm_forcing;                 /* the next admission is the last resort: breaker bypassed */
    bool adm_forced;                  /* the last resort was taken */
    bool adm_busy;                    /* a model was skipped for its provider's max_inflight */

    /* client side */
    bool suspended;
    bool client_gone;
    bool watching;
    loop_io_t client_io;
    loop_timer_t watch_timer; /* arms client_io once the request waits a while */
    struct MHD_Response *response;
    unsigned resp_status;
    double cost_usd;    /* < 0 when unknown */

    /* accounting, filled as the request goes (usage of the answer, or an
     * estimate) and read at completion by metrics, the access log and
     * budgets */
    int64_t prompt_tokens;     /* -1 unknown */
    int64_t completion_tokens; /* -1 unknown */
    int64_t cached_tokens;     /* -1 unknown */
    bool cost_estimated;       /* tokens estimated, not reported by the provider */
    double baseline_usd;       /* what routing.baseline_model would have cost; < 0 unknown */
    uint64_t t_upstream_us;    /* first upstream attempt started, 0 if none */
    uint64_t t_first_byte_us;  /* answer headers (plain) / first event (stream), 0 if none */
    uint64_t t_end_us;         /* upstream finished, 0 if none */
    const char *key_name;      /* proxy key's name, "" when keys are off (borrowed from cfg) */
    const struct auth_key *auth_key;   /* the client's proxy key, NULL when keys are off */
    struct budget_op *budget_op;       /* pending budget admission (Redis) */
    bool budget_admitted;              /* budget_ticket must be settled */
    _Alignas(8) unsigned char budget_ticket[64]; /* budget_ticket_t, opaque here (budget.h) */
    uint64_t redis_deadline_ms; /* end of the request's Redis wait (redis.request_budget_ms), 0 until its first command */
    uint32_t est_prompt_tokens; /* estimate for the conversation (textstat) */
    int64_t max_output;         /* max_completion_tokens / max_tokens asked for, -1 if none */
    unsigned needs;             /* CAP_* the request uses (upstream/fit.h) */
    size_t fit_skips;           /* models of the chain skipped as unable to serve it */
    double score;               /* complexity score if a rule computed it, else -1 */
    /* experiments (route/experiment.h): the arm of the active experiment
     * that routed the request, -1 when it is in none; keyless: the
     * experiment's key was absent and the request id chose the arm */
    int exp_arm;
    bool exp_keyless;

    /* streamed usage: llmrouter asks every streaming provider for usage
     * (stream_options.include_usage), strips the usage-only chunk when the
     * client did not ask for it, and adds usage.cost when it did */
    bool inject_usage;    /* the forwarded body gets include_usage: true */
    bool usage_mode;      /* events are held until complete; usage chunk and [DONE] handled */
    size_t hold;          /* bytes at the end of out not released (incomplete event) */
    uint64_t shift;       /* bytes removed from the stream so far */
    uint64_t out_off;     /* stream offset (raw - shift) of out's read position */
    uint64_t last_ev_end; /* raw offset just past the last complete event */
    char *usage_event;    /* rewritten usage chunk, sent before [DONE] (client asked) */
    uint32_t data_events; /* data events seen, for an estimate when usage is missing */
    bool sampled;         /* kept for the quality sampler: bodies retained */
    bool judge_pick;      /* picked for observability.judge (implies sampled) */
    char *sample_resp;    /* the answer (assembled for streams), NUL-terminated */

    /* classifier routing (routing.classifier): request_parse says a rule
     * needs the label; server.c asks the model (or the decision cache) and
     * routes again with it, or falls back */
    int cls_state;              /* enum rule_label (route/rules.h): what the rules know */
    int cls_label;              /* RULE_LABEL_KNOWN: index into cfg->classifier.labels */
    int cls_result;             /* enum classifier_result (route/classifier.h) */
    char *cls_text;             /* the routed text to classify (malloc'd), NULL */
    size_t cls_len;
    struct upstream_call *cls_call; /* in flight, NULL otherwise */
    double cls_cost_usd;        /* the classifier call's cost; < 0 none or unknown */
    int64_t cls_prompt_tokens, cls_completion_tokens; /* -1 unknown */
    uint64_t cls_us;            /* how long asking took */
    char cls_error[112];        /* why the call failed, "" */
    uint64_t cls_key;           /* decision-cache key of cls_text */

    /* response cache (owned by cache.c) */
    enum { CACHE_X_BYPASS = 0, CACHE_X_MISS, CACHE_X_HIT } cache_x; /* x-cache */
    bool cache_lookup;    /* look the answer up before going upstream */
    bool cache_store;     /* store a complete answer */
    bool include_usage;   /* stream_options.include_usage */
    unsigned cache_ttl_s;
    int64_t cache_age_s;  /* on a hit */
    uint8_t cache_key[32];
    void *cache_op;       /* pending Redis lookup */
    struct completion_acc *acc; /* streamed answer being assembled for the cache */
    buf_t acc_buf;        /* bytes of the events not yet fed to acc */
    uint64_t acc_base;    /* absolute stream offset of acc_buf's first byte */

    /* ---- Anthropic upstream: the current attempt's provider is type:
     * anthropic (upstream/anthropic.h). Set by request_build_forward,
     * otherwise owned by upstream.c; freed by request_free. ---- */
    bool ant;                       /* this attempt speaks the Messages API */
    bool ant_refused;               /* a model of the chain could not take the request */
    req_error_t ant_err;            /* the latest refusal: the answer if no model could serve */
    char ant_param[96];             /* ant_err.param's text */
    anthropic_req_info_t ant_info;  /* facts of the request translation */
    anthropic_stream_t *ant_stream; /* stream translator of this attempt, or NULL */
    sse_scan_t ant_sse;             /* delimits the raw upstream events */
    buf_t ant_ev;                   /* raw bytes of the event being received */
    uint64_t ant_ev_base;           /* raw stream offset of ant_ev's first byte */
    uint64_t ant_pend_end;          /* > 0: raw end of a complete event not yet translated */
    buf_t ant_out;                  /* translated bytes not yet taken by the stream path */
    size_t ant_skip;                /* bytes of curl's next delivery already consumed */

    /* ---- provider quirks (upstream/quirks.h): this attempt's stream
     * filter, or NULL; freed by request_free ---- */
    struct quirk_stream *quirk_stream;

    /* ---- OpenTelemetry export (account/otel.h): what a span needs that
     * the request does not keep otherwise. Filled only when
     * observability.otlp is on (otel_note_*). ---- */
    uint64_t att_t0_us;         /* the current attempt's transfer started, 0 none */
    double otel_temperature;    /* the body's temperature, < 0 when absent */
    char otel_model[64];        /* the client's "model" (cut), "" unknown */
    char otel_resp_model[64];   /* the answer's "model", "" unknown */
    char otel_finish[64];       /* the answer's finish_reason(s), comma separated, "" unknown */

    /* ---- front doors (http/door.h, http/door_wire.h): a Messages or
     * Responses request is translated into a chat body once (req->body),
     * its own bytes kept in door_raw for pass-through; answers are
     * translated back where they leave (reply.c). Owned by door_wire.c,
     * freed by request_free. ---- */
    int door;                       /* enum door; DOOR_CHAT (0) for chat completions */
    bool door_count_tokens;         /* POST /v1/messages/count_tokens */
    bool door_translated;           /* req->body holds the translation (request_parse ran) */
    bool door_stream;               /* the door's request asked for a stream */
    bool door_native;               /* this attempt got the door's own body (pass-through) */
    unsigned door_dropped;          /* DM_DROP_* of the Messages translation */
    char door_unsupported[64];      /* a Messages block or tool with no chat equivalent */
    int64_t door_max_tokens;        /* Messages max_tokens, -1 when absent */
    buf_t door_raw;                 /* the client's own body */
    char *door_answer;              /* a pass-through plain answer, as the provider sent it */
    size_t door_answer_len;
    struct dm_stream *dm;           /* stream translators (one of them) */
    struct dr_stream *dr;
    sse_scan_t door_sse;            /* delimits the internal events in req->out / tail */
    buf_t door_in;                  /* bytes of the internal event being taken */
    buf_t door_out;                 /* translated bytes not yet taken by the client */
    size_t door_out_off;
    bool door_fin;                  /* the translator's end was written */
    bool door_refused;              /* Responses: only a native provider can take it */
    req_error_t door_refusal;       /* ... and this is the 400 for the others */
    bool door_native_done;          /* a native Responses stream sent its terminal event */
    /* a native Messages stream (an Anthropic model behind /v1/messages):
     * the provider's own events, passed to the client as they came, while
     * their translation into chat chunks (req->out) serves the commit, the
     * usage, the cache and the end's verdict (upstream/antwire.c) */
    buf_t door_rawq;                /* raw events not yet taken by the client */
    bool door_raw_error;            /* one of them was an `event: error` */
} req_t;

/* Allocates a request for conn on shard, holding a reference to cfg. */
req_t *request_new(struct shard *shard, struct MHD_Connection *conn, config_t *cfg);

/* Frees everything the request owns (the upstream must already be
 * cancelled). */
void request_free(req_t *req);

/* request_parse(): the rules need the classifier's label (req->cls_text is
 * what to ask about); call again once req->cls_state is RULE_LABEL_KNOWN or
 * RULE_LABEL_FALLBACK. */
#define REQUEST_NEED_LABEL 1

/* Parses and validates the body for req->ep, routes it (rules included) and
 * fills req's parsed fields. Returns 0, REQUEST_NEED_LABEL (never when
 * explaining: an explanation says the classifier would be asked, and does
 * not ask), or -1 with *err describing the 4xx answer. When explain is not NULL, a JSON object saying how the request was
 * routed (estimated tokens, script, language, every rule with whether it
 * matched and why, the decision) is appended to it. */
int request_parse(req_t *req, req_error_t *err, buf_t *explain);

/* The answer came from a model with no price from the configuration or
 * the price table (core/config_catalog.c): its cost is unknown, not zero. A
 * cache hit is free whatever model it names. */
static inline bool request_unpriced(const req_t *req)
{
    return req->model >= 0 && (size_t)req->model < req->cfg->n_models &&
           req->cfg->models[req->model].unpriced && req->cache_x != CACHE_X_HIT;
}

/* What the request cost: its answer's cost plus the classifier call's;
 * < 0 when neither is known, or when the answer's model is unpriced. */
static inline double request_cost_total(const req_t *req)
{
    if (request_unpriced(req))
        return -1;
    if (req->cls_cost_usd <= 0)
        return req->cost_usd;
    return (req->cost_usd > 0 ? req->cost_usd : 0) + req->cls_cost_usd;
}

/* How long the request may still wait for Redis (for rds_get's wait_ms):
 * the budget check and the cache lookup share redis.request_budget_ms,
 * counted from the first call. 0 when it is spent. */
static inline unsigned request_redis_wait_ms(req_t *req, uint64_t now_ms)
{
    if (req->redis_deadline_ms == 0)
        req->redis_deadline_ms = now_ms + req->cfg->redis.request_budget_ms;
    return req->redis_deadline_ms > now_ms ? (unsigned)(req->redis_deadline_ms - now_ms) : 0;
}

/* Builds req->fwd_body for model index m: the client's body with the value
 * of its top-level "model" replaced by the model's upstream name (and, for
 * streams, stream_options.include_usage set to true). For a model of a
 * type: anthropic provider, the body is the Messages translation of the
 * chat request (req->ant and req->ant_info set). Returns 0, or -1 when the
 * request cannot be sent to model m as asked (an Anthropic model and a
 * request the translation refuses, or an endpoint other than chat):
 * req->ant_err is then a 400 naming the field, fwd_body unchanged. */
int request_build_forward(req_t *req, int m);

/* Sets req->id from the client's x-request-id when it is safe to echo
 * (1-128 chars of [A-Za-z0-9._:-]), else generates one from rnd. */
void request_set_id(req_t *req, const char *client_id, uint64_t rnd);

#endif
