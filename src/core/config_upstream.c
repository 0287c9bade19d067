/* config_upstream: the keys of providers.* and models.* that say what a
 * failed attempt leads to — retries, their backoff, the Retry-After cap,
 * and the failure policy lists (retry_on, failover_on, pass_through) —
 * walked into cfg_retry_t (upstream/retry.h interprets it). Called by
 * config_schema.c's provider and model walks only. */
#include "core/config_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "core/yamlwalk.h"
#include "upstream/retry.h"

#define LIST_MAX 64 /* entries of one policy list */

static const char *const list_names[3] = {"retry_on", "failover_on", "pass_through"};
static const enum retry_action list_actions[3] = {RETRY_ACT_RETRY, RETRY_ACT_FAILOVER,
                                                  RETRY_ACT_PASS};

#define KIND_WORDS "timeout, connect, reset, invalid_answer, stale_connection"

void config_provider_retry_init(cfg_provider_t *p)
{
    retry_policy_default(&p->retry);
}

bool config_provider_retry_key(ywalk_t *c, cfg_provider_t *p, const char *k, yaml_node_t *v,
                               const char *what, yaml_node_t *lists[3])
{
    cfg_retry_t *r = &p->retry;
    for (int i = 0; i < 3; i++)
        if (strcmp(k, list_names[i]) == 0) {
            if (v->type != YAML_SCALAR_NODE && !yw_expect(c, v, YAML_SEQUENCE_NODE, what))
                return true;
            lists[i] = v;
            return true;
        }
    if (strcmp(k, "retries") == 0)
        yw_u32(c, v, what, 0, RETRY_MAX_RETRIES, &r->retries);
    else if (strcmp(k, "retry_backoff_ms") == 0)
        yw_u32(c, v, what, 1, 600000, &r->backoff_ms);
    else if (strcmp(k, "retry_backoff_max_ms") == 0)
        yw_u32(c, v, what, 1, 600000, &r->backoff_max_ms);
    else if (strcmp(k, "retry_after_max_ms") == 0)
        yw_u32(c, v, what, 0, 600000, &r->after_max_ms);
    else
        return false;
    return true;
}

typedef struct item {
    enum retry_kind kind;
    unsigned lo, hi;
    int list; /* index into list_names */
    yaml_node_t *node;
} item_t;

/* The entries of one list (a scalar or a sequence of scalars) appended to
 * items; each bad one is reported at its own position. */
static void read_list(ywalk_t *c, yaml_node_t *v, int list, const char *where, item_t *items,
                      size_t *n)
{
    yaml_node_t *one[1] = {v};
    yaml_node_t **nodes = one;
    size_t cnt = 1;
    yaml_node_t *buf[LIST_MAX];
    if (v->type == YAML_SEQUENCE_NODE) {
        cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (cnt > LIST_MAX) {
            yw_error(c, v, "%s.%s: at most %d entries, found %zu", where, list_names[list],
                     LIST_MAX, cnt);
            return;
        }
        for (size_t i = 0; i < cnt; i++)
            buf[i] = yw_node(c, v->data.sequence.items.start[i]);
        nodes = buf;
    }
    for (size_t i = 0; i < cnt; i++) {
        char what[256];
        item_t it = {.list = list, .node = nodes[i]};
        char *s;
        snprintf(what, sizeof what, "%s.%s", where, list_names[list]);
        if (nodes[i] == NULL)
            continue;
        s = yw_str(c, nodes[i], what);
        if (s == NULL)
            continue;
        if (retry_parse_item(s, &it.kind, &it.lo, &it.hi) < 0) {
            size_t len = 0;
            const char *near = yw_suggest(s, KIND_WORDS, &len);
            yw_error(c, nodes[i],
                     "%s: \"%s\" is not an HTTP status (300-599), a status class (3xx, 4xx, 5xx) "
                     "or a failure kind (" KIND_WORDS ")%s%.*s%s",
                     what, s, near ? "; did you mean \"" : "", (int)len, near ? near : "",
                     near ? "\"?" : "");
        } else if (list == 2 && it.kind != RETRY_KIND_STATUS) {
            yw_error(c, nodes[i],
                     "%s: \"%s\" leaves no answer to pass through; pass_through takes HTTP "
                     "statuses and classes (use retry_on or failover_on)",
                     what, s);
        } else {
            items[(*n)++] = it;
        }
        free(s);
    }
}

static bool same_item(const item_t *a, const item_t *b)
{
    return a->kind == b->kind && (a->kind != RETRY_KIND_STATUS || (a->lo == b->lo && a->hi == b->hi));
}

void config_provider_retry_done(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map,
                                yaml_node_t *lists[3], const char *where)
{
    cfg_retry_t *r = &p->retry;
    item_t items[3 * LIST_MAX];
    size_t n = 0;
    if (r->backoff_ms > r->backoff_max_ms)
        yw_error(c, map, "%s: retry_backoff_ms (%u) is over retry_backoff_max_ms (%u)", where,
                 r->backoff_ms, r->backoff_max_ms);
    for (int i = 0; i < 3; i++)
        if (lists[i] != NULL)
            read_list(c, lists[i], i, where, items, &n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (same_item(&items[i], &items[j])) {
                const char *s = (const char *)items[i].node->data.scalar.value;
                if (items[i].list == items[j].list)
                    yw_error(c, items[i].node, "%s.%s: \"%s\" is listed twice", where,
                             list_names[items[i].list], s);
                else
                    yw_error(c, items[i].node, "%s.%s: \"%s\" is also listed in %s (line %zu)",
                             where, list_names[items[i].list], s, list_names[items[j].list],
                             items[j].node->start_mark.line + 1);
                break;
            }
    /* classes first, then single statuses: a code beats its class */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            const item_t *it = &items[i];
            uint8_t act = (uint8_t)list_actions[it->list];
            if (it->kind != RETRY_KIND_STATUS) {
                if (pass == 1)
                    r->kind[it->kind] = act;
                continue;
            }
            if ((it->lo != it->hi) != (pass == 0))
                continue;
            for (unsigned s = it->lo; s <= it->hi; s++)
                r->status[s - 300] = act;
        }
}

void config_model_retry_init(cfg_model_t *m)
{
    m->retries = UINT32_MAX; /* not set: the provider's */
}

bool config_model_retry_key(ywalk_t *c, cfg_model_t *m, const char *k, yaml_node_t *v,
                            const char *what)
{
    if (strcmp(k, "retries") != 0)
        return false;
    yw_u32(c, v, what, 0, RETRY_MAX_RETRIES, &m->retries);
    return true;
}

void config_model_retry_done(const config_t *cfg, cfg_model_t *m)
{
    if (m->retries == UINT32_MAX)
        m->retries = m->provider >= 0 ? cfg->providers[m->provider].retry.retries : 0;
}
