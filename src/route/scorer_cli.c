/* scorer_cli: `llmrouter score` — the scorer's features and scores for JSON
 * lines on stdin. The training script (config/scorer/train.py) reads its
 * features from here so that training and serving cannot drift apart.
 * Main thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "http/request.h"
#include "route/prompt.h"
#include "route/scorer.h"

#define MAX_LINE (64u << 20)

static void usage(FILE *f)
{
    fprintf(f, "Usage: llmrouter score [--features] [--weights FILE] < requests.jsonl\n"
               "Reads one JSON object a line: a request body (\"messages\", \"prompt\" or\n"
               "\"input\") or {\"prompt\": \"...\"}; prints its complexity score (%%.6f), or\n"
               "with --features its feature vector in this order:\n  ");
    for (int i = 0; i < SCORER_N_FEATURES; i++)
        fprintf(f, "%s%s", scorer_feature_name(i), i + 1 < SCORER_N_FEATURES ? " " : "\n");
    fprintf(f, "--weights FILE scores with that weights file instead of the built-in one.\n");
}

/* Reads one line (without '\n') into b; 0 at the end of input, -1 if too long. */
static int read_line(FILE *in, buf_t *b)
{
    int ch;
    bool any = false;
    buf_reset(b);
    while ((ch = getc(in)) != EOF) {
        any = true;
        if (ch == '\n')
            return 1;
        if (buf_append(b, &(char){(char)ch}, 1) < 0)
            return -1;
    }
    return any ? 1 : 0;
}

int scorer_main(int argc, char **argv)
{
    bool features = false;
    const char *weights = NULL;
    scorer_t *own = NULL;
    const scorer_t *s;
    buf_t line;
    size_t lineno = 0;
    int rc = 0, r;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--features") == 0) {
            features = true;
        } else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) {
            weights = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "llmrouter score: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (weights != NULL) {
        char err[512];
        own = scorer_load(weights, err, sizeof err);
        if (own == NULL) {
            fprintf(stderr, "llmrouter score: %s\n", err);
            return 1;
        }
    }
    s = own ? own : scorer_builtin();
    buf_init(&line, MAX_LINE);
    while ((r = read_line(stdin, &line)) > 0) {
        cJSON *root;
        prompt_t p;
        double x[SCORER_N_FEATURES];
        enum endpoint ep = EP_CHAT;
        lineno++;
        root = cJSON_ParseWithLength(buf_ptr(&line), buf_len(&line));
        if (!cJSON_IsObject(root)) {
            fprintf(stderr, "llmrouter score: line %zu: not a JSON object\n", lineno);
            cJSON_Delete(root);
            rc = 1;
            break;
        }
        if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "messages"))) {
            if (cJSON_GetObjectItemCaseSensitive(root, "prompt") != NULL)
                ep = EP_COMPLETIONS;
            else if (cJSON_GetObjectItemCaseSensitive(root, "input") != NULL)
                ep = EP_EMBEDDINGS;
            else {
                fprintf(stderr, "llmrouter score: line %zu: expected \"messages\", \"prompt\" or "
                                "\"input\"\n",
                        lineno);
                cJSON_Delete(root);
                rc = 1;
                break;
            }
        }
        prompt_init(&p, root, ep);
        scorer_features(&p, x);
        if (features) {
            for (int i = 0; i < SCORER_N_FEATURES; i++)
                printf("%s%.17g", i ? " " : "", x[i]);
            printf("\n");
        } else {
            printf("%.6f\n", scorer_apply(s, x));
        }
        prompt_free(&p);
        cJSON_Delete(root);
    }
    if (r < 0) {
        fprintf(stderr, "llmrouter score: line %zu: longer than 64 MiB\n", lineno + 1);
        rc = 1;
    }
    buf_free(&line);
    scorer_free(own);
    return rc;
}
