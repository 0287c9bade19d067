/* main: command line, configuration, signals and the shard threads.
 * The main thread only waits for signals: SIGHUP reloads the configuration
 * (published as a new snapshot the shards adopt), SIGINT/SIGTERM stop the
 * shards gracefully. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/auth.h"
#include "http/gate_ips.h"
#include "account/budget.h"
#include "core/config.h"
#include "core/catalog.h"
#include "route/explain.h"
#include "core/log.h"
#include "cache/memcache.h"
#include "account/observe.h"
#include "account/report.h"
#include "route/scorer.h"
#include "route/tune.h"
#include "core/notify.h"
#include "core/privdrop.h"
#include "core/shard.h"
#include "core/util.h"
#include "core/version.h"
#include "upstream/health.h"

#ifndef LLMROUTER_DEFAULT_CONFIG
#define LLMROUTER_DEFAULT_CONFIG "config/llmrouter.yaml"
#endif

#define MAX_SHARDS 256

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: llmrouter [OPTIONS]\n"
            "An OpenAI-compatible proxy that routes each request to the cheapest fitting model,\n"
            "with failover down a chain of providers.\n"
            "\n"
            "  -c, --config FILE    configuration file (default: %s)\n"
            "  -l, --listen ADDR    listen on HOST:PORT instead of server.listen\n"
            "  -t, --threads N      event-loop threads instead of server.threads\n"
            "      --check-config   validate the configuration, print a summary and exit\n"
            "      --explain FILE   route the request body in FILE (- = stdin) without calling\n"
            "                       any provider and print why; --json prints it as JSON;\n"
            "                       --header 'Name: value' adds a request header (repeatable)\n"
            "  -V, --version        print the version and exit\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "\n"
            "       llmrouter report ACCESS_LOG...   summarise an access log (report --help)\n"
            "       llmrouter score [--features]    complexity scores of JSON lines (score --help)\n"
            "       llmrouter tune ACCESS_LOG SAMPLES  thresholds and weights from judged traffic (tune --help)\n"
            "       llmrouter models [--json] [-c CONFIG]  the price and capability table (models --help)\n"
            "\n"
            "Signals: SIGHUP reloads the configuration; SIGINT/SIGTERM stop gracefully.\n"
            "Documentation: README.md and docs/ in the source tree.\n",
            LLMROUTER_DEFAULT_CONFIG);
}

static config_t *load(const char *path, bool quiet_warnings)
{
    char err[8192], warn[4096];
    config_t *cfg = config_load(path, err, sizeof err, warn, sizeof warn);
    if (cfg == NULL) {
        fprintf(stderr, "%s", err);
        return NULL;
    }
    if (warn[0] && !quiet_warnings)
        fprintf(stderr, "%s", warn);
    return cfg;
}

static int override_listen(config_t *cfg, const char *addr)
{
    char yaml[512], err[512];
    config_t *tmp;
    /* Reuse the config parser's address syntax through a tiny document. */
    snprintf(yaml, sizeof yaml,
             "server: {listen: \"%s\"}\nproviders: {p: {type: openai, base_url: \"http://x\"}}\n"
             "models: {m: {provider: p}}\ntiers: {t: [m]}\nrouting: {default_tier: t}\n",
             addr);
    tmp = config_load_string("--listen", yaml, strlen(yaml), err, sizeof err, NULL, 0);
    if (tmp == NULL) {
        fprintf(stderr, "llmrouter: --listen: expected HOST:PORT, got \"%s\"\n", addr);
        return -1;
    }
    free(cfg->listen_host);
    cfg->listen_host = xstrdup(tmp->listen_host);
    cfg->listen_port = tmp->listen_port;
    config_unref(tmp);
    return 0;
}

/* SO_REUSEPORT would let us silently share a port with another running
 * instance; a plain bind first tells "address in use" apart. */
static int probe_listen(const config_t *cfg)
{
    struct sockaddr_storage ss;
    unsigned len;
    char err[256];
    int fd, rc, one = 1;
    if (util_resolve_listen(cfg->listen_host, cfg->listen_port, &ss, &len, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    rc = bind(fd, (struct sockaddr *)&ss, len);
    if (rc < 0)
        log_error("cannot listen on %s:%u: %s", cfg->listen_host, cfg->listen_port,
                  strerror(errno));
    close(fd);
    return rc < 0 ? -1 : 0;
}

/* Port 0 asks for an ephemeral port, but every shard binds its own
 * SO_REUSEPORT socket and would get a port of its own. So one socket takes
 * the port first, with SO_REUSEPORT so the shards' sockets can join it, and
 * cfg->listen_port becomes that port (before the snapshot is published).
 * Returns the holding socket, which the caller closes once the shards
 * listen, or -1. */
static int reserve_ephemeral_port(config_t *cfg)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    unsigned len;
    char err[256];
    int fd, one = 1;
    if (util_resolve_listen(cfg->listen_host, 0, &ss, &len, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("cannot listen on %s:0: %s", cfg->listen_host, strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        log_error("cannot listen on %s:0: %s", cfg->listen_host, strerror(errno));
        close(fd);
        return -1;
    }
    cfg->listen_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* The default path is relative, so a daemon started from another directory
 * does not find it; say so rather than only "No such file". */
static bool default_config_missing(const char *path)
{
    char cwd[1024];
    if (access(path, F_OK) == 0 || errno != ENOENT)
        return false;
    if (path[0] == '/') {
        fprintf(stderr,
                "llmrouter: %s: no such file (the default configuration path); give the "
                "configuration file with -c FILE\n",
                path);
        return true;
    }
    if (getcwd(cwd, sizeof cwd) == NULL)
        snprintf(cwd, sizeof cwd, "unknown");
    fprintf(stderr,
            "llmrouter: %s: no such file; the default configuration path is relative to the "
            "current directory (%s): give the configuration file with -c FILE, e.g. "
            "llmrouter -c /etc/llmrouter/llmrouter.yaml\n",
            path, cwd);
    return true;
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the open-file limit: %s", strerror(errno));
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'}, {"check-config", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {"explain", required_argument, NULL, 'E'}, {"json", no_argument, NULL, 'J'},
        {"header", required_argument, NULL, 'H'}, {NULL, 0, NULL, 0}};
    const char *explain = NULL;
    const char *headers[65] = {0};
    size_t n_headers = 0;
    bool json = false;
    const char *path = LLMROUTER_DEFAULT_CONFIG, *listen = NULL;
    bool path_given = false;
    uint16_t conf_port; /* as configured: 0 = ephemeral */
    int port_holder = -1;
    long threads = -1;
    bool check = false;
    mcache_t *mem = NULL;
    budget_t *budget = NULL;
    observe_t *obs = NULL;
    health_t *health = NULL;
    gate_ips_t *ips = NULL; /* server.max_connections_per_ip, across the shards */
    shard_t *shards[MAX_SHARDS];
    unsigned n_shards = 0;
    config_t *cfg;
    sigset_t set;
    int c, rc = 1;

    if (argc > 1 && strcmp(argv[1], "report") == 0)
        return report_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "score") == 0)
        return scorer_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "tune") == 0)
        return tune_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "models") == 0)
        return catalog_main(argc - 1, argv + 1);
    while ((c = getopt_long(argc, argv, "c:l:t:VhE:JH:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            path_given = true;
            break;
        case 'l':
            listen = optarg;
            break;
        case 't': {
            char *end;
            threads = strtol(optarg, &end, 10);
            if (*end != '\0' || threads < 1 || threads > MAX_SHARDS) {
                fprintf(stderr, "llmrouter: --threads: expected 1..%d\n", MAX_SHARDS);
                return 2;
            }
            break;
        }
        case 'C':
            check = true;
            break;
        case 'E':
            explain = optarg;
            break;
        case 'J':
            json = true;
            break;
        case 'H':
            if (n_headers + 1 >= UTIL_ARRAY_LEN(headers) || strchr(optarg, ':') == NULL) {
                fprintf(stderr, "llmrouter: --header: expected 'Name: value' (at most 64)\n");
                return 2;
            }
            headers[n_headers++] = optarg;
            break;
        case 'V':
            printf("llmrouter %s (libcurl %s)\n", LLMROUTER_VERSION, curl_version_info(CURLVERSION_NOW)->version);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "llmrouter: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "llmrouter: libcurl failed to initialise\n");
        return 1;
    }
    if (!path_given && default_config_missing(path))
        goto out;
    cfg = load(path, false);
    if (cfg == NULL)
        goto out;
    if (listen && override_listen(cfg, listen) < 0)
        goto out_cfg;
    if (threads > 0)
        cfg->threads = (unsigned)threads;
    if (check) {
        config_print_summary(cfg, stdout);
        rc = 0;
        goto out_cfg;
    }
    if (explain) {
        rc = explain_file(cfg, explain, headers, json, stdout, stderr);
        goto out_cfg;
    }
    log_set_level((enum log_level)cfg->log_level);
    if (!auth_enabled(cfg->auth) && !cfg->allow_unauthenticated_public &&
        !auth_listen_is_loopback(cfg->listen_host)) {
        log_error("no proxy keys are configured, so llmrouter listens on loopback only: "
                  "configure keys, or set server.allow_unauthenticated_public: true to listen "
                  "on %s without them",
                  cfg->listen_host);
        goto out_cfg;
    }
    raise_fd_limit();
    conf_port = cfg->listen_port;
    if (conf_port == 0) {
        port_holder = reserve_ephemeral_port(cfg);
        if (port_holder < 0)
            goto out_cfg;
    } else if (probe_listen(cfg) < 0) {
        goto out_cfg;
    }

    /* Signals are handled by this thread only; SIGPIPE is ignored (sockets
     * use MSG_NOSIGNAL, but a stray write must never kill the daemon). */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    /* breakers and provider slots: process-wide, kept across reloads */
    health = health_new(cfg->threads < MAX_SHARDS ? cfg->threads : MAX_SHARDS);
    health_bind(health, cfg);
    config_publish(config_ref(cfg));
    /* one store for every thread, so a repeat lands on a hit whichever
     * thread accepts it; its size is fixed at start */
    if (cfg->cache.backend == CACHE_BACKEND_MEMORY)
        mem = mcache_new(cfg->cache.max_bytes);
    {
        char err[512];
        obs = observe_new(cfg, cfg->threads < MAX_SHARDS ? cfg->threads : MAX_SHARDS, mem, err,
                          sizeof err);
        if (obs == NULL) {
            log_error("%s", err);
            goto stop;
        }
    }
    {
        char err[256];
        budget = budget_new(cfg->budgets, NULL, NULL, err, sizeof err);
        if (budget == NULL) {
            log_error("%s", err);
            goto stop;
        }
        observe_set_budget(obs, budget);
    }
    ips = gate_ips_new();
    for (unsigned i = 0; i < cfg->threads && i < MAX_SHARDS; i++) {
        char err[256];
        shard_t *s = shard_new(i, cfg, mem, obs, budget, health, ips, err, sizeof err);
        if (s == NULL) {
            log_error("%s", err);
            goto stop;
        }
        shards[n_shards++] = s;
    }
    if (port_holder >= 0) {
        close(port_holder); /* every shard listens on the port now */
        port_holder = -1;
    }
    /* server.user: every socket is bound and every log file open; no
     * thread runs yet */
    {
        char err[512];
        if (privdrop_apply(cfg->run_user, cfg->run_group, err, sizeof err) < 0) {
            log_error("%s", err);
            goto stop;
        }
        if (cfg->run_user != NULL)
            log_info("running as user %s (uid %u, gid %u)", cfg->run_user, (unsigned)getuid(),
                     (unsigned)getgid());
        else if (geteuid() == 0)
            log_warn("running as root: set server.user (e.g. nobody, or a dedicated user) to "
                     "drop root once the sockets are bound");
    }
    for (unsigned i = 0; i < n_shards; i++) {
        if (shard_start(shards[i]) < 0) {
            log_error("cannot start thread %u", i);
            goto stop;
        }
    }
    log_info("llmrouter %s listening on %s:%u with %u thread%s (config %s)", LLMROUTER_VERSION,
             cfg->listen_host, cfg->listen_port, n_shards, n_shards == 1 ? "" : "s", path);
    if (conf_port == 0) /* whatever the log level: the port is only known now */
        fprintf(stderr, "llmrouter: listening on %s:%u (port 0 asked for: chosen by the system)\n",
                cfg->listen_host, cfg->listen_port);
    /* systemd Type=notify: ready once every shard listens */
    if (notify_sendf("READY=1\nSTATUS=listening on %s:%u", cfg->listen_host, cfg->listen_port) < 0)
        log_warn("cannot notify the service manager at $NOTIFY_SOCKET");
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            config_t *next;
            notify_sendf("RELOADING=1\nMONOTONIC_USEC=%" PRIu64, util_now_us());
            next = load(path, false);
            observe_reopen(obs); /* log rotation */
            observe_reloaded(obs, next != NULL);
            if (next == NULL) {
                log_error("reload failed; keeping the running configuration");
                notify_send("READY=1\nSTATUS=reload failed; running the previous configuration");
                continue;
            }
            if (next->max_header_bytes != cfg->max_header_bytes) {
                /* the HTTP connection pools were sized for the first value */
                log_warn("reload: server.max_header_bytes takes effect only on restart");
                next->max_header_bytes = cfg->max_header_bytes;
            }
            /* the command line still wins over the file */
            if (listen)
                override_listen(next, listen);
            if (threads > 0)
                next->threads = (unsigned)threads;
            if (strcmp(next->listen_host, cfg->listen_host) != 0 ||
                next->listen_port != conf_port || next->threads != cfg->threads)
                log_warn("reload: server.listen and server.threads take effect only on restart");
            if (!same_str(next->run_user, cfg->run_user) ||
                !same_str(next->run_group, cfg->run_group))
                log_warn("reload: server.user and server.group take effect only on restart");
            /* the sockets stay where they are; the snapshot says so */
            free(next->listen_host);
            next->listen_host = xstrdup(cfg->listen_host);
            next->listen_port = cfg->listen_port;
            next->threads = cfg->threads;
            log_set_level((enum log_level)next->log_level);
            health_bind(health, next);
            config_publish(next);
            log_info("configuration reloaded from %s", path);
            notify_sendf("READY=1\nSTATUS=listening on %s:%u", cfg->listen_host, cfg->listen_port);
            continue;
        }
        log_info("received signal %d, shutting down", sig);
        notify_send("STOPPING=1\nSTATUS=shutting down");
        break;
    }
    rc = 0;
stop:
    if (port_holder >= 0)
        close(port_holder);
    for (unsigned i = 0; i < n_shards; i++)
        shard_stop(shards[i]);
    /* every shard stopped before any is freed: a slot released on one
     * wakes the loops of the others (upstream/health.h) */
    for (unsigned i = 0; i < n_shards; i++)
        shard_join(shards[i]);
    for (unsigned i = 0; i < n_shards; i++)
        shard_free(shards[i]);
    config_publish(NULL);
    budget_free(budget); /* after every shard's Redis client */
    observe_free(obs);
    health_free(health);
    mcache_free(mem);
    gate_ips_free(ips); /* after every shard */
out_cfg:
    config_unref(cfg);
out:
    curl_global_cleanup();
    return rc;
}
