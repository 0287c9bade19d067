/* Benchmark of a group's choice (upstream/balance.h): what balance_route
 * adds to one request routed to a tier whose first entry is a group of 3
 * equivalent models, per strategy (weighted, least_outstanding, latency,
 * sticky: user), health bound as in the daemon (one breaker lock per
 * member). Not part of `make test`; `make bench` builds and runs it.
 *
 * Prints the median ns per balance_route over 7 repetitions of N calls.
 * bench_balance ITERATIONS TIER runs only that tier (for valgrind
 * --tool=callgrind: instructions per call = Ir of balance_route / N). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/util.h"
#include "route/router.h"
#include "upstream/balance.h"
#include "upstream/health.h"

static const char *YAML =
    "providers:\n  p: {type: openai, base_url: \"http://h/v1\"}\n"
    "models:\n  a: {provider: p}\n  b: {provider: p}\n  c: {provider: p}\n  d: {provider: p}\n"
    "tiers:\n"
    "  weighted:\n    - any: [{model: a, weight: 3}, b, c]\n    - d\n"
    "  least_outstanding:\n    - any: [a, b, c]\n      strategy: least_outstanding\n    - d\n"
    "  latency:\n    - any: [a, b, c]\n      strategy: latency\n    - d\n"
    "  sticky:\n    - any: [a, b, c]\n      sticky: user\n    - d\n"
    "  plain: [a, b, c, d]\n"
    "routing:\n  default_tier: plain\n";

static uint64_t run(const config_t *cfg, const char *tier, long n)
{
    route_t r;
    balance_in_t in = {.now_ms = 1000, .user = "user-1234"};
    uint64_t sink = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        router_resolve(cfg, tier, &r);
        in.rnd = (uint64_t)i * 0x9e3779b97f4a7c15ull;
        balance_route(cfg, &r, &in);
        sink += (uint64_t)r.chain[0];
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (sink == 1)
        puts("");
    return (uint64_t)((b.tv_sec - a.tv_sec) * 1000000000ll + (b.tv_nsec - a.tv_nsec));
}

static int cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    static const char *const tiers[] = {"plain", "weighted", "least_outstanding", "latency",
                                        "sticky"};
    char err[4096];
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    config_t *cfg = config_load_string("bench.yaml", YAML, strlen(YAML), err, sizeof err, NULL, 0);
    health_t *h;
    if (cfg == NULL || n <= 0) {
        fprintf(stderr, "%s\n", cfg == NULL ? err : "usage: bench_balance [ITERATIONS [TIER]]");
        return 1;
    }
    h = health_new(1);
    health_bind(h, cfg);
    for (size_t t = 0; t < sizeof tiers / sizeof *tiers; t++) {
        uint64_t ns[7];
        if (argc > 2 && strcmp(argv[2], tiers[t]) != 0)
            continue;
        for (int k = 0; k < 7; k++)
            ns[k] = run(cfg, tiers[t], n);
        qsort(ns, 7, sizeof *ns, cmp);
        printf("%-18s %7.1f ns per route (router_resolve%s)\n", tiers[t], (double)ns[3] / (double)n,
               strcmp(tiers[t], "plain") == 0 ? " only: no group" : " + balance_route");
    }
    config_unref(cfg);
    health_free(h);
    return 0;
}
