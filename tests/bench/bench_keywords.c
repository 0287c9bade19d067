/* Benchmark for src/keywords.c: one-pass keyword scanning of prompts.
 * Not part of `make test`. Build and run from the repository root:
 *
 *   mkdir -p build && cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude tests/bench/bench_keywords.c \
 *       src/keywords.c src/util.c -o build/bench_keywords && ./build/bench_keywords
 *
 * Builds sets of 10, 100 and 500 keywords (English words and phrases of the
 * kind routing rules use, a few CJK), scans generated English-like texts of
 * 400 B, 8 KB and 80 KB, and prints the median over several repetitions of
 * ns per scan and ns per byte (each repetition scans about 4 MB in total and
 * zeroes the hit bitset before each scan, as a caller would). For contrast it
 * also times the naive approach on the same inputs: memmem once per keyword
 * over a lower-cased copy (without boundary checks, so it does less work
 * than kwset_scan). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/keywords.h"
#include "core/util.h"

static const char *const WORDS[] = {
    "prove", "theorem", "lemma", "proof", "integral", "derivative", "equation", "matrix", "eigenvalue",
    "probability", "statistics", "regression", "algorithm", "complexity", "recursion", "debug", "refactor",
    "compile", "segfault", "stacktrace", "exception", "python", "javascript", "typescript", "rust", "golang",
    "kotlin", "swift", "haskell", "sql", "database", "kubernetes", "docker", "terraform", "ansible", "nginx",
    "linux", "bash", "regex", "json", "yaml", "api", "endpoint", "latency", "throughput", "benchmark",
    "optimize", "translate", "translation", "summarize", "summary", "essay", "poem", "story", "novel",
    "screenplay", "lyrics", "haiku", "sonnet", "email", "letter", "resume", "legal", "contract", "lawsuit",
    "diagnosis", "symptom", "medication", "dosage", "tax", "invoice", "budget", "forecast", "revenue",
    "marketing", "seo", "tweet", "slogan", "brainstorm", "outline", "critique", "review", "grammar",
    "spelling", "rewrite", "paraphrase", "simplify", "explain", "analyze", "compare", "evaluate", "classify",
    "extract", "chemistry", "physics", "biology", "quantum", "relativity", "thermodynamics", "genome",
    "protein", "molecule", "reaction", "calculus", "algebra", "geometry", "topology", "combinatorics",
    "graph", "heap", "hashmap", "mutex", "deadlock", "thread", "async", "await", "promise", "callback",
    "closure", "lambda", "pointer", "malloc", "vulnerability", "exploit", "encryption", "hash", "signature",
    "certificate", "oauth", "jwt", "password", "login", "session", "cookie", "cache", "cdn", "dns", "tcp",
    "udp", "http", "websocket", "grpc", "protobuf", "graphql", "microservice", "monolith", "architecture",
    "singleton", "observer", "pytest", "jest", "mock", "fixture", "pipeline", "deploy", "rollback",
    "migration", "schema", "index", "query", "join", "transaction", "c++", "c#", ".net", "node.js", "react",
    "vue", "angular", "django", "flask", "spring", "laravel", "pandas", "numpy", "pytorch", "tensorflow",
    "transformer", "embedding", "tokenizer", "gradient", "backpropagation", "overfitting", "dataset",
    "classifier", "clustering", "neural", "inference", "finetune", "prompt", "jailbreak", "ignore",
    "roleplay", "character", "fantasy", "dragon", "wizard", "recipe", "ingredient", "calorie", "workout",
    "nutrition", "travel", "itinerary", "hotel", "flight", "visa", "mortgage", "loan", "interest", "stock",
    "crypto", "bitcoin", "ethereum", "blockchain", "wallet", "portfolio", "dividend", "inflation",
    "recession", "election", "policy", "history", "philosophy", "ethics", "psychology", "sociology",
    "economics", "literature", "shakespeare", "homework", "exam", "quiz", "tutor", "lecture", "syllabus",
    "thesis", "dissertation", "citation", "bibliography", "abstract", "hypothesis", "experiment", "urgent",
    "asap", "confidential", "privacy", "gdpr", "hipaa", "compliance", "audit", "incident", "outage",
    "postmortem", "kpi", "okr", "roadmap", "sprint", "standup", "retrospective", "jira", "excel", "formula",
    "spreadsheet", "pivot", "chart", "dashboard", "powerpoint", "slide", "presentation", "speech", "toast",
    "eulogy", "wedding", "birthday", "apology", "complaint", "negotiation", "salary", "interview", "hiring",
};

static const char *const PHRASES[] = {
    "step by step", "think carefully", "chain of thought", "show your work", "explain like i'm five",
    "in simple terms", "pros and cons", "best practices", "code review", "unit test", "integration test",
    "race condition", "memory leak", "buffer overflow", "design pattern", "time complexity",
    "big o notation", "machine learning", "deep learning", "large language model", "cover letter",
    "business plan", "privacy policy", "terms of service", "user story", "root cause", "load balancer",
    "rate limit", "linear algebra", "differential equation", "prime number", "dynamic programming",
    "binary search", "linked list", "hash table", "shortest path", "sorting algorithm", "pull request",
    "merge conflict", "stack overflow",
};

static const char *const CJK[] = {
    "\xe8\xad\x89\xe6\x98\x8e", /* 證明 */
    "\xe7\xbf\xbb\xe8\xaf\x91", /* 翻译 */
    "\xe4\xbb\xa3\xe7\xa0\x81", /* 代码 */
    "\xe8\xa7\xa3\xe9\x87\x8a", /* 解释 */
    "\xe6\x95\xb0\xe5\xad\xa6", /* 数学 */
    "\xe6\x91\x98\xe8\xa6\x81", /* 摘要 */
    "\xe3\x83\x97\xe3\x83\xad\xe3\x82\xb0\xe3\x83\xa9\xe3\x83\xa0", /* プログラム */
    "\xec\xbd\x94\xeb\x93\x9c", /* 코드 */
};

static const char *const VERBS[] = {"write", "explain", "fix", "translate", "summarize",
                                    "optimize", "review", "debug", "refactor", "generate"};
static const char *const OBJECTS[] = {"function", "class",  "query",  "test",    "email",
                                      "essay",    "poem",   "script", "regex",   "proof",
                                      "paragraph", "report", "program", "module", "story",
                                      "docstring", "readme", "migration", "dockerfile", "bug"};

/* Filler for the texts: frequent English words that are not keywords. */
static const char *const COMMON[] = {
    "the", "of", "and", "to", "a", "in", "is", "it", "that", "for", "you", "with", "on", "this", "be",
    "are", "as", "can", "i", "have", "not", "or", "from", "my", "we", "an", "by", "what", "all", "would",
    "there", "their", "will", "if", "about", "which", "when", "so", "do", "how", "some", "me", "could",
    "them", "other", "than", "then", "now", "only", "its", "also", "after", "use", "two", "first", "way",
    "even", "want", "because", "any", "these", "give", "most", "us", "people", "time", "year", "good",
    "new", "should", "need", "make", "like", "work", "please", "thanks", "here", "something", "really",
    "improve", "proven", "testing", "stories", "queries", "reviewing", "hashing", "caching",
};

#define MAX_SET 500

static uint64_t rng = 0x243F6A8885A308D3ULL;

static uint32_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 32);
}

/* All 500 keywords, shuffled with a fixed seed so that the first 10 and the
 * first 100 are a mix of words, phrases and CJK too. */
static size_t all_keywords(char **out)
{
    size_t n = 0, i, j;
    for (i = 0; i < UTIL_ARRAY_LEN(WORDS); i++)
        out[n++] = xstrdup(WORDS[i]);
    for (i = 0; i < UTIL_ARRAY_LEN(PHRASES); i++)
        out[n++] = xstrdup(PHRASES[i]);
    for (i = 0; i < UTIL_ARRAY_LEN(CJK); i++)
        out[n++] = xstrdup(CJK[i]);
    for (i = 0; i < UTIL_ARRAY_LEN(VERBS) && n < MAX_SET; i++)
        for (j = 0; j < UTIL_ARRAY_LEN(OBJECTS) && n < MAX_SET; j++) {
            char p[64];
            snprintf(p, sizeof p, "%s a %s", VERBS[i], OBJECTS[j]);
            out[n++] = xstrdup(p);
        }
    for (i = n - 1; i > 0; i--) {
        size_t k = rnd() % (i + 1);
        char *t = out[i];
        out[i] = out[k];
        out[k] = t;
    }
    /* a CJK keyword among the first ten */
    for (i = 0; i < n; i++)
        if ((unsigned char)out[i][0] >= 0x80) {
            char *t = out[3];
            out[3] = out[i];
            out[i] = t;
            break;
        }
    return n;
}

/* English-like text: sentences of mostly common words, some domain words
 * (which are keywords, or near misses), punctuation and line breaks. */
static char *make_text(size_t len)
{
    char *t = xmalloc(len + 64);
    size_t n = 0;
    int start = 1;
    while (n < len) {
        const char *w;
        uint32_t r = rnd() % 100;
        size_t wl;
        if (r < 80)
            w = COMMON[rnd() % UTIL_ARRAY_LEN(COMMON)];
        else if (r < 97)
            w = WORDS[rnd() % UTIL_ARRAY_LEN(WORDS)];
        else if (r < 99)
            w = PHRASES[rnd() % UTIL_ARRAY_LEN(PHRASES)];
        else
            w = CJK[rnd() % UTIL_ARRAY_LEN(CJK)];
        wl = strlen(w);
        if (n + wl + 2 > len + 62)
            break;
        memcpy(t + n, w, wl);
        if (start && w[0] >= 'a' && w[0] <= 'z')
            t[n] = (char)(w[0] - 32);
        n += wl;
        start = 0;
        r = rnd() % 100;
        if (r < 8) {
            t[n++] = '.';
            start = 1;
        } else if (r < 12) {
            t[n++] = ',';
        } else if (r < 13) {
            t[n++] = '?';
            start = 1;
        }
        t[n++] = (r < 9 && rnd() % 4 == 0) ? '\n' : ' ';
    }
    return t; /* exactly len bytes are scanned; the rest is slack */
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define REPS 11
#define BYTES_PER_REP ((size_t)4 << 20)

static volatile size_t sink;

/* Median ns per scan of kwset_scan. */
static double time_kwset(const kwset_t *ks, const char *text, size_t len, size_t *found)
{
    uint64_t hits[(MAX_SET + 63) / 64];
    size_t words = (kwset_count(ks) + 63) / 64, iters = BYTES_PER_REP / len, r, i;
    double t[REPS];
    if (iters == 0)
        iters = 1;
    for (r = 0; r < REPS; r++) {
        double t0 = now_ns();
        for (i = 0; i < iters; i++) {
            memset(hits, 0, words * sizeof hits[0]);
            *found = kwset_scan(ks, text, len, hits);
            sink += *found;
        }
        t[r] = (now_ns() - t0) / (double)iters;
    }
    qsort(t, REPS, sizeof t[0], cmp_double);
    return t[REPS / 2];
}

/* Median ns per scan of the naive way: lower-case once, memmem per keyword. */
static double time_naive(char **kws, size_t nk, const char *text, size_t len)
{
    char *low = xmalloc(len);
    size_t iters = BYTES_PER_REP / len / (nk / 10 + 1), r, i, k, j;
    double t[5];
    if (iters == 0)
        iters = 1;
    for (r = 0; r < 5; r++) {
        double t0 = now_ns();
        for (i = 0; i < iters; i++) {
            size_t found = 0;
            for (j = 0; j < len; j++)
                low[j] = (char)((text[j] >= 'A' && text[j] <= 'Z') ? text[j] + 32 : text[j]);
            for (k = 0; k < nk; k++)
                found += memmem(low, len, kws[k], strlen(kws[k])) != NULL;
            sink += found;
        }
        t[r] = (now_ns() - t0) / (double)iters;
    }
    free(low);
    qsort(t, 5, sizeof t[0], cmp_double);
    return t[2];
}

int main(void)
{
    static const size_t set_sizes[] = {10, 100, 500};
    static const size_t text_sizes[] = {400, 8 * 1024, 80 * 1024};
    char *kws[MAX_SET + 8];
    char *texts[3];
    size_t nk = all_keywords(kws), s, t, i;

    if (nk < MAX_SET) {
        fprintf(stderr, "only %zu keywords\n", nk);
        return 1;
    }
    for (t = 0; t < 3; t++)
        texts[t] = make_text(text_sizes[t]);

    printf("%-5s %-8s %7s %8s %8s %10s %12s %9s %14s\n", "kws", "text", "states", "classes", "table",
           "found", "ns/scan", "ns/byte", "naive ns/byte");
    for (s = 0; s < 3; s++) {
        kwset_t *ks = kwset_new();
        kwset_stats_t st;
        for (i = 0; i < set_sizes[s]; i++)
            if (kwset_add(ks, kws[i], strlen(kws[i])) < 0) {
                fprintf(stderr, "kwset_add(%s) failed\n", kws[i]);
                return 1;
            }
        if (kwset_compile(ks) != 0) {
            fprintf(stderr, "kwset_compile failed\n");
            return 1;
        }
        kwset_stats(ks, &st);
        for (t = 0; t < 3; t++) {
            size_t found = 0;
            double ns = time_kwset(ks, texts[t], text_sizes[t], &found);
            double naive = time_naive(kws, set_sizes[s], texts[t], text_sizes[t]);
            printf("%-5zu %-8zu %7zu %8zu %7.0fK %10zu %12.0f %9.3f %14.3f\n", set_sizes[s], text_sizes[t],
                   st.states, st.classes, (double)st.table_bytes / 1024.0, found, ns,
                   ns / (double)text_sizes[t], naive / (double)text_sizes[t]);
        }
        printf("      %zu keywords: %zu states x %zu classes (+1 output slot) x 4 B = %zu B table, "
               "%zu B in all\n",
               st.keywords, st.states, st.classes, st.table_bytes, st.total_bytes);
        kwset_free(ks);
    }
    for (i = 0; i < nk; i++)
        free(kws[i]);
    for (t = 0; t < 3; t++)
        free(texts[t]);
    return 0;
}
