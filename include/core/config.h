/* config: loads and validates the YAML configuration (libyaml) into an
 * immutable, reference-counted snapshot. Every error names the file, line and
 * column. A snapshot is shared read-only by all loop threads; it is swapped
 * on reload (SIGHUP) and freed when its last reference is dropped.
 * config_load/config_free may run on any thread; a snapshot is never mutated
 * after config_load returns. */
#ifndef LLMROUTER_CONFIG_H
#define LLMROUTER_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct curl_slist;
struct rules;
struct scorer;
struct auth;
struct auth_secret;
struct catalog;

/* The wire format a provider speaks: OpenAI's Chat Completions (any
 * OpenAI-compatible API), or Anthropic's Messages API, translated by
 * upstream/anthropic.h. */
enum provider_type { PROVIDER_OPENAI = 0, PROVIDER_ANTHROPIC };

/* providers.*: what each outcome of a failed attempt leads to, and the
 * retry timing (upstream/retry.h reads and fills it; keys in
 * core/config_upstream.c). */
typedef struct cfg_retry {
    uint8_t status[300];  /* enum retry_action for HTTP 300..599, at [status - 300] */
    uint8_t kind[8];      /* enum retry_action per enum retry_kind (fewer than 8) */
    uint32_t retries;     /* `retries` of the provider's models unless they set theirs */
    uint32_t backoff_ms;  /* retry_backoff_ms: the first retry's jitter window */
    uint32_t backoff_max_ms; /* retry_backoff_max_ms: the window's cap */
    uint32_t after_max_ms;   /* retry_after_max_ms: a longer Retry-After fails over */
} cfg_retry_t;
struct health_model;
struct health_provider;

/* A model's circuit breaker and cooldowns (upstream/health.h), from the
 * model's `circuit:`, else its provider's, else `routing.circuit:`, else
 * the built-in defaults — key by key (core/config_health.c). */
typedef struct cfg_circuit {
    bool enabled;                 /* false: never skipped, no 429 cooldown */
    uint32_t failures;            /* consecutive failures that open it; 0: off */
    double failure_ratio;         /* failed share of the window that opens it; 0: off */
    uint32_t min_requests;        /* attempts in the window before the ratio counts */
    uint32_t window_ms;           /* the ratio's rolling window */
    uint32_t cooldown_ms;         /* first open period */
    uint32_t max_cooldown_ms;     /* growth cap (doubling on repeated trips) */
    uint32_t retry_after_max_ms;  /* cap of a 429's cooldown; 0: 429s cool nothing */
    unsigned set;                 /* CIRCUIT_SET_* bits of the keys written here */
} cfg_circuit_t;

typedef struct cfg_provider {
    char *name;
    enum provider_type type;
    char *base_url;    /* without trailing '/' */
    char *api_key_env; /* NULL for keyless providers */
    bool key_missing;  /* api_key_env set but the variable is empty/unset */
    uint32_t connect_timeout_ms;
    uint32_t first_byte_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t timeout_ms;
    cfg_retry_t retry; /* retries and the failure policy */
    /* Egress proxy: the provider's `proxy`, else the environment's
     * https_proxy / http_proxy / all_proxy for its scheme (read once at
     * load, not per request), "" for none; no_proxy likewise. */
    char *proxy;
    char *no_proxy;
    /* type anthropic: the anthropic-version header's value (NULL: the
     * translation's ANTHROPIC_VERSION) */
    char *anthropic_version;
    /* type openai: the provider also serves POST {base_url}/responses, so a
     * request of the Responses door is passed to it as is */
    bool responses_api;
    /* circuit: defaults for the provider's models (only the keys in .set) */
    cfg_circuit_t circuit;
    /* Concurrency limit over all shards: 0 = none; over it a request waits
     * in its shard's queue (at most max_queue there) for queue_timeout_ms,
     * then fails over (upstream/admit.h). */
    uint32_t max_inflight;
    uint32_t max_queue;
    uint32_t queue_timeout_ms;
    /* its process-wide slot counter, bound by health_bind before the
     * snapshot is published; NULL when not bound (tools, tests) */
    struct health_provider *health;
    /* Prebuilt upstream request headers (Content-Type, Accept, no Expect,
     * and the key: Authorization: Bearer for openai, x-api-key plus
     * anthropic-version for anthropic). Read-only; shared by all threads. */
    struct curl_slist *headers;
    int line; /* where it was defined, for messages */
    /* preset: and the keys beside it (core/presets.h; core/config_presets.c) */
    char *preset;       /* the preset's name, NULL for none */
    unsigned quirks;    /* QUIRK_* bits: what the wire code normalises */
    char *auth_header;  /* the key's header (api-key); NULL: the type's default */
    char *auth_scheme;  /* its prefix ("Bearer"), "" for the bare key; NULL: the type's */
    char *query;        /* URL-encoded query without '?' (query:, api_version:), or NULL */
    bool deployments;   /* URL holds /deployments/{model's deployment} (azure) */
    char *resource;     /* azure: {resource} of the base URL */
    char *api_version;  /* azure: the api-version query parameter */
    struct curl_slist *extra_headers; /* headers: as "Name: value" lines, secrets inside */
} cfg_provider_t;

typedef struct cfg_model {
    char *name;     /* the name clients and tiers use */
    char *upstream; /* the model name sent to the provider */
    int provider;   /* index into providers */
    char *deployment; /* azure: its deployment (NULL: upstream) */
    double input_per_mtok;
    double output_per_mtok;
    double cached_input_per_mtok;
    double cache_write_per_mtok; /* Anthropic's cache-creation tokens; default input_per_mtok */
    int64_t default_max_tokens;  /* anthropic: max_tokens sent when the client set none */
    int tier; /* first tier listing it, -1 if none */
    double daily_cap_usd; /* 0 = no cap; over it the model is skipped until the UTC day ends */
    uint32_t retries;     /* retries of a failed attempt on this model (its provider's by default) */
    cfg_circuit_t circuit; /* resolved: model, provider, routing.circuit, built-in */
    /* its process-wide breaker state, bound by health_bind before the
     * snapshot is published (survives reloads: keyed by name); NULL when
     * not bound (tools, tests) */
    struct health_model *health;
    /* the price and capability table (core/catalog.h; core/config_catalog.c):
     * what the model took from its entry for the keys it does not set */
    char *catalog;              /* the entry's name, NULL: none */
    bool catalog_off;           /* catalog: none — never matched */
    unsigned price_set;         /* MODEL_PRICE_* keys the configuration set */
    bool unpriced;              /* priced by neither: cost unknown, not free */
    uint32_t context_window;    /* tokens in + out; 0: unknown (assumed to fit) */
    uint32_t max_output_tokens; /* 0: unknown */
    unsigned caps;              /* CAP_* (core/catalog.h) */
    bool caps_set;              /* false: no data, assumed able (upstream/fit.h) */
    int line;                   /* where it was defined (unpriced ones), for messages */
} cfg_model_t;

#define MODEL_PRICE_INPUT (1u << 0)
#define MODEL_PRICE_OUTPUT (1u << 1)
#define MODEL_PRICE_CACHED (1u << 2)
#define MODEL_PRICE_WRITE (1u << 3)

struct cascade_cfg;

/* A chain entry that is a group of equivalent models (`- any: [...]`, see
 * docs/routing.md "Load balancing"): its members sit in the tier's models
 * at [first, first + n), in the order written; upstream/balance.h puts them
 * in the order chosen for one request. */
#define CFG_GROUP_MAX 31
enum cfg_lb_strategy { CFG_LB_WEIGHTED = 0, CFG_LB_LEAST_OUTSTANDING, CFG_LB_LATENCY };
enum cfg_lb_sticky { CFG_LB_STICKY_NONE = 0, CFG_LB_STICKY_KEY, CFG_LB_STICKY_USER,
                     CFG_LB_STICKY_HEADER };
typedef struct cfg_group {
    size_t first, n;
    uint32_t weight[CFG_GROUP_MAX]; /* per member, >= 1 (default 1) */
    enum cfg_lb_strategy strategy;
    enum cfg_lb_sticky sticky;
    char *sticky_header; /* CFG_LB_STICKY_HEADER: the header's name */
} cfg_group_t;

typedef struct cfg_tier {
    char *name;
    int *models; /* indexes into models, in failover order */
    size_t n_models;
    /* cascade: true — the tier's checks (upstream/cascade.h), NULL for a
     * plain failover chain. A cascade tier's models are in price order
     * (input + output per mtok, cheapest first) unless `order: as_written`. */
    struct cascade_cfg *cascade;
    cfg_group_t *groups; /* n_groups groups of equivalent models, NULL when none */
    size_t n_groups;
} cfg_tier_t;

/* routing.classifier: a cheap model asked to label a request, for the
 * rules that say so (a `classify` condition or action; route/classifier.h).
 * enabled false when the section is absent. */
typedef struct cfg_classifier {
    bool enabled;
    int model;            /* index into models */
    char **labels;        /* NULL-terminated, in the order written */
    int *label_tier;      /* per label: index into tiers */
    size_t n_labels;
    unsigned timeout_ms;  /* the whole call; past it the rules fall back */
    char *prompt;         /* system prompt; NULL: the built-in one */
    unsigned max_tokens;  /* of the classifier's answer */
    size_t max_input_bytes; /* of the routed text sent to it */
    unsigned cache_entries; /* decision cache bound per shard; 0: off */
    unsigned cache_ttl_s;
    int line;             /* where it was defined, for messages */
} cfg_classifier_t;

enum cache_backend { CACHE_BACKEND_OFF = 0, CACHE_BACKEND_MEMORY, CACHE_BACKEND_REDIS };

typedef struct cfg_cache {
    enum cache_backend backend;
    unsigned ttl_s;            /* default TTL */
    size_t max_bytes;          /* memory backend bound */
    size_t max_entry_bytes;    /* larger answers are not stored */
    char *redis_url;
    unsigned redis_timeout_ms;
    char *key_prefix;
    bool per_key;              /* scope entries by proxy key */
    bool only_deterministic;   /* only explicit temperature 0 (or a seed), no logprobs */
    bool seed_is_deterministic; /* a seed makes a request deterministic */
} cfg_cache_t;

typedef struct cfg_obs {
    char *access_log;   /* "stdout", "off" or a path */
    double sample_rate; /* 0..1 */
    char *sample_file;
    /* observability.admin_key_* / metrics_token_* (see auth.h), owned; NULL
     * when not configured */
    struct auth_secret *admin_key;
    struct auth_secret *metrics_token;
    /* observability.otlp (core/config_otel.h), owned; NULL: no export */
    struct cfg_otlp *otlp;
    /* observability.judge / .alerts (core/config_quality.h), owned; NULL
     * when absent */
    struct cfg_judge *judge;
    struct cfg_alerts *alerts;
} cfg_obs_t;

/* redis: how every Redis client (the cache's and the budgets') behaves
 * when Redis fails (docs/operations.md, "Redis outages"). */
typedef struct cfg_redis {
    /* The most one request waits for Redis, the budget check and the cache
     * lookup together; each command is still bounded by its own
     * redis_timeout_ms. Resolved at load: the file's 0 (or absence) becomes
     * the larger of cache.redis_timeout_ms and budgets.redis_timeout_ms. */
    unsigned request_budget_ms;
    unsigned cooldown_after_timeouts; /* timeouts in a row that start a cooldown */
    unsigned cooldown_ms;             /* commands fail at once this long, then a reconnect */
    unsigned reconnect_max_ms;        /* cap of the reconnect backoff (from 100 ms, doubling, jittered) */
} cfg_redis_t;

/* server.cors: browser access from other origins. Off unless configured. */
typedef struct cfg_cors {
    bool enabled;
    bool any_origin;        /* origins: "*" */
    char **origins;         /* NULL-terminated origins; a "*." host = any subdomain */
    size_t n_origins;
    char **allow_headers;   /* NULL-terminated, lower case, '*' suffix = prefix; NULL: any */
    size_t n_allow_headers;
    unsigned max_age_s;     /* Access-Control-Max-Age of preflight answers */
    bool allow_credentials; /* Access-Control-Allow-Credentials: true (never with "*") */
} cfg_cors_t;

typedef struct config {
    atomic_uint refs;
    char *path;
    /* server */
    char *listen_host;
    uint16_t listen_port;
    unsigned threads; /* resolved: >= 1 */
    size_t max_body_bytes;
    size_t max_response_bytes;
    /* What a request head may take in libmicrohttpd's pool: the request
     * line, and per header field, cookie and query argument its text plus
     * 64 bytes. Over it: 431 before any work. Fixed at start: the
     * per-connection pool is sized from it (server.c). */
    size_t max_header_bytes;
    cfg_cors_t cors;
    unsigned max_connections;
    unsigned connection_timeout_s;
    /* The head of a request must arrive within this long of the connection's
     * accept (of the previous answer plus connection_timeout_s on a kept-alive
     * connection), and its body within this long of its head: 408, closed. */
    unsigned request_timeout_ms;
    unsigned max_connections_per_ip; /* open connections per client address, 0 = no limit */
    unsigned shutdown_grace_ms;
    int log_level;
    /* server.user / server.group: whom the process runs as once it listens
     * (NULL: it stays who it is); checked to exist at load, applied once at
     * start (core/privdrop.h) */
    char *run_user;
    char *run_group;
    /* the price and capability table (top-level catalog:, core/catalog.h),
     * owned; NULL when off or unreadable */
    struct catalog *catalog;
    /* catalogue */
    cfg_provider_t *providers;
    size_t n_providers;
    cfg_model_t *models;
    size_t n_models;
    cfg_tier_t *tiers;
    size_t n_tiers;
    /* routing */
    int default_tier;
    char **routable; /* client model names routed like "auto" */
    size_t n_routable;
    struct rules *rules; /* routing.rules, NULL when none */
    struct experiments *experiments; /* experiments: (route/experiment.h), NULL when none */
    cfg_classifier_t classifier; /* routing.classifier */
    struct scorer *scorer; /* routing.scorer.weights, NULL = the built-in weights */
    int baseline_model;  /* routing.baseline_model: what requests would cost without routing; -1 */
    bool allow_client_tier;
    /* routing.deadline_ms: the time a request may take until its answer
     * starts (0 = none); routing.max_deadline_ms caps x-router-deadline-ms */
    uint32_t deadline_ms;
    uint32_t max_deadline_ms;
    cfg_circuit_t circuit; /* routing.circuit: defaults of every model (keys in .set) */
    cfg_cache_t cache;
    cfg_redis_t redis;
    cfg_obs_t obs;
    struct auth *auth;            /* keys: proxy keys, NULL when none */
    bool allow_unauthenticated_public; /* server.allow_unauthenticated_public */
    void *budgets;                /* budgets: budget_cfg_t (see budget.h), owned */
    /* derived */
    char *models_json; /* body of GET /v1/models */
    size_t models_json_len;
    /* GET /readyz: every tier and every rule's explicit chain has a model
     * whose provider key is set; the body lists them (and what is missing) */
    bool ready;
    char *ready_json;
    size_t ready_json_len;
    int64_t loaded_at; /* unix seconds */
} config_t;

/* Loads and validates path. On success returns a snapshot with one
 * reference. On failure returns NULL and writes every error, one per line
 * ("FILE:LINE:COL: message"), to errbuf (always NUL-terminated).
 * Warnings (e.g. a provider key variable that is not set) are appended to
 * warnbuf when it is not NULL. */
config_t *config_load(const char *path, char *errbuf, size_t errlen, char *warnbuf,
                      size_t warnlen);

/* Same, from a string; name is used in messages. */
config_t *config_load_string(const char *name, const char *yaml, size_t len, char *errbuf,
                             size_t errlen, char *warnbuf, size_t warnlen);

/* Takes / drops a reference. The last config_unref frees the snapshot. */
config_t *config_ref(config_t *cfg);
void config_unref(config_t *cfg);

/* Lookups by name (exact match); -1 when absent. */
int config_find_model(const config_t *cfg, const char *name);
int config_find_tier(const config_t *cfg, const char *name);
bool config_is_routable(const config_t *cfg, const char *name);

/* The process-wide current snapshot (the only shared mutable thing):
 * config_publish takes over one reference of cfg and makes it current;
 * config_current returns a new reference to the current one (NULL before the
 * first publish); config_generation changes on every publish, so a loop can
 * cheaply notice a reload. Thread-safe. */
void config_publish(config_t *cfg);
config_t *config_current(void);
unsigned config_generation(void);

/* Writes a human-readable summary (for --check-config) to f. */
void config_print_summary(const config_t *cfg, void *file);

#endif
