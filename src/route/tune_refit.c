/* tune_refit: `llmrouter tune --refit` — the scorer's logistic weights
 * refitted on the team's judged traffic (see include/route/tune.h).
 *
 * Data: the cheap tier's samples whose request could be read (features
 * from route/scorer.h, the same code that serves); label 1 when the judge
 * scored the cheap answer below the bar (the prompt needed the strong
 * tier). Split: a request is held out when the hash of its id is 0 mod 4,
 * so the split is the same on every run. Fit: Newton's method on the mean
 * log-loss plus (l2 / n) * |w - w_old|^2 (the bias is not pulled), from
 * the old weights — with few samples the old weights stay, with many the
 * data decides. 30 iterations at most, each solving the 27 x 27 system by
 * Gaussian elimination with partial pivoting. */
#include "route/tune.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define NP (SCORER_N_FEATURES + 1) /* bias first */

static double sigmoid(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

static double predict(const double th[NP], const double *x)
{
    double z = th[0];
    for (int j = 0; j < SCORER_N_FEATURES; j++)
        z += th[j + 1] * x[j];
    return sigmoid(z);
}

/* Solves a x = b in place (b becomes x). Returns -1 when singular. */
static int solve(double a[NP][NP], double b[NP])
{
    for (int c = 0; c < NP; c++) {
        int piv = c;
        for (int r = c + 1; r < NP; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c]))
                piv = r;
        if (fabs(a[piv][c]) < 1e-14)
            return -1;
        if (piv != c) {
            for (int k = 0; k < NP; k++) {
                double t = a[c][k];
                a[c][k] = a[piv][k];
                a[piv][k] = t;
            }
            double t = b[c];
            b[c] = b[piv];
            b[piv] = t;
        }
        for (int r = c + 1; r < NP; r++) {
            double f = a[r][c] / a[c][c];
            for (int k = c; k < NP; k++)
                a[r][k] -= f * a[c][k];
            b[r] -= f * b[c];
        }
    }
    for (int c = NP - 1; c >= 0; c--) {
        for (int k = c + 1; k < NP; k++)
            b[c] -= a[c][k] * b[k];
        b[c] /= a[c][c];
    }
    return 0;
}

static void fit(const double *const *x, const int *y, size_t n, const double old[NP], double l2,
                double th[NP])
{
    memcpy(th, old, NP * sizeof *th);
    for (int it = 0; it < 30; it++) {
        double h[NP][NP] = {{0}}, g[NP] = {0}, step = 0;
        for (size_t i = 0; i < n; i++) {
            double p = predict(th, x[i]), w = p * (1 - p), r = p - (double)y[i];
            double xi[NP];
            xi[0] = 1;
            memcpy(xi + 1, x[i], SCORER_N_FEATURES * sizeof(double));
            for (int a = 0; a < NP; a++) {
                g[a] += r * xi[a];
                for (int b = 0; b <= a; b++)
                    h[a][b] += w * xi[a] * xi[b];
            }
        }
        for (int a = 0; a < NP; a++) {
            for (int b = 0; b <= a; b++)
                h[b][a] = h[a][b] = h[a][b] / (double)n;
            g[a] /= (double)n;
            h[a][a] += 1e-9; /* a feature no sample has stays where it is */
            if (a > 0) {
                h[a][a] += 2 * l2 / (double)n;
                g[a] += 2 * l2 / (double)n * (th[a] - old[a]);
            }
        }
        if (solve(h, g) < 0)
            break;
        for (int a = 0; a < NP; a++) {
            th[a] -= g[a];
            if (th[a] > 1000)
                th[a] = 1000;
            if (th[a] < -1000)
                th[a] = -1000;
            step += fabs(g[a]);
        }
        if (step < 1e-10)
            break;
    }
}

static int write_weights(const char *path, const double th[NP], const char *old, const char *cheap,
                         const tune_refit_result_t *r, double bar)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "# llmrouter complexity scorer weights - refitted by `llmrouter tune --refit` from "
               "judged traffic.\n");
    fprintf(f, "# Started from %s; fitted on %zu samples of tier %s (label: judged below %g), "
               "%zu of them below.\n",
            old, r->n_train, cheap, bar, r->pos_train);
    fprintf(f, "# Held-out AUC (%zu samples): old %.4f, refitted %.4f.\n", r->n_test, r->auc_old,
            r->auc_new);
    fprintf(f, "llmrouter-scorer 1\nbias %.6f\n", th[0]);
    for (int j = 0; j < SCORER_N_FEATURES; j++)
        fprintf(f, "%s %.6f\n", scorer_feature_name(j), th[j + 1]);
    if (fclose(f) != 0)
        return -1;
    return 0;
}

int tune_refit(const tune_sample_t *s, size_t n, const char *cheap, const tune_opts_t *o,
               const scorer_t *old, double l2, const char *out_path, tune_refit_result_t *res)
{
    const double **xtr = xcalloc(n ? n : 1, sizeof *xtr), **xte = xcalloc(n ? n : 1, sizeof *xte);
    int *ytr = xcalloc(n ? n : 1, sizeof *ytr), *yte = xcalloc(n ? n : 1, sizeof *yte);
    double *pold = xcalloc(n ? n : 1, sizeof *pold), *pnew = xcalloc(n ? n : 1, sizeof *pnew);
    double th0[NP], th[NP];
    int rc = -1;
    memset(res, 0, sizeof *res);
    res->auc_old = res->auc_new = NAN;
    for (size_t i = 0; i < n; i++) {
        int y;
        if (!s[i].has_x || strcmp(s[i].tier, cheap) != 0)
            continue;
        y = s[i].quality < o->bar;
        if (s[i].id_hash % 4 == 0) {
            xte[res->n_test] = s[i].x;
            yte[res->n_test++] = y;
            res->pos_test += (size_t)y;
        } else {
            xtr[res->n_train] = s[i].x;
            ytr[res->n_train++] = y;
            res->pos_train += (size_t)y;
        }
    }
    if (res->pos_train == 0 || res->pos_train == res->n_train || res->pos_test == 0 ||
        res->pos_test == res->n_test) {
        snprintf(res->why, sizeof res->why,
                 "too little data: tier %s has %zu samples to fit (%zu below the bar %g) and %zu "
                 "held out (%zu below); both parts need answers above and below the bar",
                 cheap, res->n_train, res->pos_train, o->bar, res->n_test, res->pos_test);
        goto out;
    }
    scorer_get_weights(old, &th0[0], th0 + 1);
    fit((const double *const *)xtr, ytr, res->n_train, th0, l2, th);
    for (size_t i = 0; i < res->n_test; i++) {
        pold[i] = predict(th0, xte[i]);
        pnew[i] = predict(th, xte[i]);
    }
    res->auc_old = tune_auc(pold, yte, res->n_test);
    res->auc_new = tune_auc(pnew, yte, res->n_test);
    if (write_weights(out_path, th, scorer_source(old), cheap, res, o->bar) < 0) {
        snprintf(res->why, sizeof res->why, "cannot write %s: %s", out_path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(xtr);
    free(xte);
    free(ytr);
    free(yte);
    free(pold);
    free(pnew);
    return rc;
}
