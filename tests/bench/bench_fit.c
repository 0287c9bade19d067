/* Benchmark of the per-attempt capability check (upstream/fit.c): what
 * fit_check costs for a model with a context window, an output limit and
 * capabilities, on a request that fits and on one that does not (the
 * skip's message is formatted). Not part of `make test`; `make bench`
 * builds and runs it. Prints ns per check (median of 7 runs of N checks).
 *
 * bench_fit ITERATIONS runs only the fitting case (for valgrind
 * --tool=callgrind: instructions per check = Ir of fit_check / ITERATIONS). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/catalog.h"
#include "core/config.h"
#include "http/request.h"
#include "upstream/fit.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double run(const req_t *req, const cfg_model_t *m, long n, unsigned *sink)
{
    char why[112];
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        *sink += fit_check(req, m, why, sizeof why);
    return (now_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    cfg_model_t m = {.name = "gpt-4o-mini", .context_window = 128000, .max_output_tokens = 16384,
                     .caps = CAP_TOOLS | CAP_VISION | CAP_JSON_SCHEMA, .caps_set = true};
    static req_t req; /* large: not on the stack */
    unsigned sink = 0;
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000000;
    req.ep = EP_CHAT;
    req.est_prompt_tokens = 2000;
    req.max_output = 500;
    req.needs = CAP_TOOLS;
    if (argc > 1) {
        run(&req, &m, n, &sink);
        return sink == 0;
    }
    for (int c = 0; c < 2; c++) {
        double t[7];
        if (c == 1)
            req.needs = CAP_AUDIO; /* skipped: no_audio, message formatted */
        for (int r = 0; r < 7; r++)
            t[r] = run(&req, &m, n / 10, &sink);
        qsort(t, 7, sizeof *t, cmp);
        printf("fit_check %-8s %.1f ns\n", c == 0 ? "fits" : "skipped", t[3]);
    }
    return sink == 0 ? 1 : 0;
}
