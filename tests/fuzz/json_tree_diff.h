/* json_tree_diff.h: the differential check of core/json_tree.c against what
 * it replaces, json_check(JSON_CHECK_STRICT) followed by cJSON's parser:
 * the same verdict, the same error struct on refusal, and on acceptance a
 * tree equal node by node (type, key, string, valueint, the bits of
 * valuedouble, the links cJSON leaves: head->prev is the last child) and
 * printed alike. Shared by tests/fuzz/fuzz_json_tree.c and
 * tests/unit/core/test_json_tree.c. */
#ifndef LLMROUTER_JSON_TREE_DIFF_H
#define LLMROUTER_JSON_TREE_DIFF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "core/json_tree.h"

static inline const char *jtd_nodes(const cJSON *a, const cJSON *b, char *why, size_t whylen)
{
    for (; a != NULL && b != NULL; a = a->next, b = b->next) {
        const char *w;
        if (a->type != b->type)
            w = "type";
        else if ((a->string == NULL) != (b->string == NULL) ||
                 (a->string != NULL && strcmp(a->string, b->string) != 0))
            w = "key";
        else if ((a->valuestring == NULL) != (b->valuestring == NULL) ||
                 (a->valuestring != NULL && strcmp(a->valuestring, b->valuestring) != 0))
            w = "valuestring";
        else if (a->valueint != b->valueint)
            w = "valueint";
        else if (memcmp(&a->valuedouble, &b->valuedouble, sizeof a->valuedouble) != 0)
            w = "valuedouble";
        else if ((a->child == NULL) != (b->child == NULL))
            w = "child";
        else if (a->child != NULL && (a->child->prev == NULL) != (b->child->prev == NULL))
            w = "head->prev";
        else
            w = NULL;
        if (w == NULL && a->child != NULL) {
            const cJSON *la = a->child, *lb = b->child;
            while (la->next != NULL)
                la = la->next;
            while (lb->next != NULL)
                lb = lb->next;
            if ((a->child->prev == la) != (b->child->prev == lb))
                w = "head->prev is not the last child";
            else if (jtd_nodes(a->child, b->child, why, whylen) != NULL)
                return why;
        }
        if (w != NULL) {
            snprintf(why, whylen, "%s differs at key \"%.40s\" (valuestring \"%.40s\" / \"%.40s\")",
                     w, a->string ? a->string : "", a->valuestring ? a->valuestring : "",
                     b->valuestring ? b->valuestring : "");
            return why;
        }
    }
    if (a != NULL || b != NULL) {
        snprintf(why, whylen, "a list of children differs in length");
        return why;
    }
    return NULL;
}

/* json_tree_top_key against json_find_top_key for key. */
static inline const char *jtd_top_key(const json_tree_t *t, const char *s, size_t n,
                                      const char *key, char *why, size_t whylen)
{
    json_span_t a[4], b[4];
    int na = json_find_top_key(s, n, key, a, 4), nb = json_tree_top_key(t, s, key, b, 4);
    if (na != nb) {
        snprintf(why, whylen, "top key \"%.40s\": %d found by the scanner, %d by the tree", key,
                 na, nb);
        return why;
    }
    for (int i = 0; i < na && i < 4; i++)
        if (a[i].off != b[i].off || a[i].len != b[i].len) {
            snprintf(why, whylen, "top key \"%.40s\" #%d: span %zu+%zu vs %zu+%zu", key, i,
                     a[i].off, a[i].len, b[i].off, b[i].len);
            return why;
        }
    return NULL;
}

/* NULL when json_tree_parse agrees with json_check + cJSON on s[0..n),
 * else what differs (in why). *verdict gets json_check's answer. */
static inline const char *jtd_compare(const char *s, size_t n, int *verdict, char *why,
                                      size_t whylen)
{
    json_error_t e1, e2;
    int o1 = 0, o2 = 0, r1, r2;
    json_tree_t *t = NULL;
    const char *res = NULL;
    r1 = json_check(s, n, JSON_CHECK_STRICT, &o1, &e1);
    r2 = json_tree_parse(s, n, &t, &o2, &e2);
    *verdict = r1;
    if (r1 != r2) {
        snprintf(why, whylen, "verdict %d (json_check) vs %d (json_tree) [%s at %zu / %s at %zu]",
                 r1, r2, r1 == 1 ? "-" : e1.what, e1.off, r2 == 1 ? "-" : e2.what, e2.off);
        res = why;
    } else if (o1 != o2) {
        snprintf(why, whylen, "is_object %d vs %d", o1, o2);
        res = why;
    } else if (r1 == 1 && t == NULL) {
        snprintf(why, whylen, "accepted without a tree");
        res = why;
    } else if (r1 != 1 && t != NULL) {
        snprintf(why, whylen, "refused with a tree");
        res = why;
    } else if (r1 == 0) {
        if (e1.off != e2.off || strcmp(e1.what, e2.what) != 0 || e1.key.off != e2.key.off ||
            e1.key.len != e2.key.len) {
            snprintf(why, whylen, "error \"%s\" at %zu key %zu+%zu vs \"%s\" at %zu key %zu+%zu",
                     e1.what, e1.off, e1.key.off, e1.key.len, e2.what, e2.off, e2.key.off,
                     e2.key.len);
            res = why;
        }
    } else if (r1 == 1) {
        cJSON *c = cJSON_ParseWithLength(s, n);
        if (c == NULL) {
            snprintf(why, whylen, "cJSON refuses what both accept");
            res = why;
        } else {
            static const char *const keys[] = {"model", "stream_options", "messages", "a", "x",
                                               "stream", ""};
            res = jtd_nodes(c, json_tree_root(t), why, whylen);
            for (size_t k = 0; res == NULL && k < sizeof keys / sizeof keys[0]; k++)
                res = jtd_top_key(t, s, n, keys[k], why, whylen);
            /* every key of the top level, as decoded (escaped ones then match
             * neither scanner, which compare raw) */
            if (res == NULL && cJSON_IsObject(c))
                for (const cJSON *m = c->child; res == NULL && m != NULL; m = m->next)
                    res = jtd_top_key(t, s, n, m->string, why, whylen);
            if (res == NULL) {
                char *pa = cJSON_PrintUnformatted(c), *pb = cJSON_PrintUnformatted(json_tree_root(t));
                if (pa == NULL || pb == NULL || strcmp(pa, pb) != 0) {
                    snprintf(why, whylen, "printed trees differ: %.60s / %.60s", pa ? pa : "(null)",
                             pb ? pb : "(null)");
                    res = why;
                }
                cJSON_free(pa);
                cJSON_free(pb);
            }
            cJSON_Delete(c);
        }
    }
    json_tree_free(t);
    return res;
}

#endif
