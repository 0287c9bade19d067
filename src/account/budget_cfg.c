/* budget_cfg: the `budgets:` section of the configuration (Redis URL and
 * timeout, key prefix, default output tokens), a model's `daily_cap_usd`,
 * and the names of the budget verdict codes. Runs at configuration load;
 * the counters themselves are in src/account/budget.c. */
#include "account/budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

void budget_cfg_init(budget_cfg_t *bc)
{
    memset(bc, 0, sizeof *bc);
    bc->redis_timeout_ms = 50;
    bc->key_prefix = xstrdup("llmrouter:budget:");
    bc->default_max_output_tokens = 512;
}

bool budget_cfg_parse(ywalk_t *c, yaml_node_t *map, budget_cfg_t *bc)
{
    const char *k;
    yaml_node_t *kn, *v;
    int nerr0 = c->nerr;
    if (yw_is_null(map))
        return true;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "budgets"))
        return false;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        uint32_t u;
        char what[64];
        snprintf(what, sizeof what, "budgets.%s", k);
        if (strcmp(k, "redis_url") == 0) {
            char *s = yw_str(c, v, what);
            free(bc->redis_url);
            bc->redis_url = NULL;
            if (s != NULL && s[0] != '\0') {
                rds_addr_t a;
                char err[160];
                if (rds_url_parse(s, &a, err, sizeof err) != 0)
                    yw_error(c, v, "%s: %s", what, err);
                bc->redis_url = s;
            } else {
                free(s);
            }
        } else if (strcmp(k, "redis_timeout_ms") == 0) {
            if (yw_u32(c, v, what, 1, 10000, &u))
                bc->redis_timeout_ms = u;
        } else if (strcmp(k, "key_prefix") == 0) {
            char *s = yw_str(c, v, what);
            if (s != NULL) {
                free(bc->key_prefix);
                bc->key_prefix = s;
            }
        } else if (strcmp(k, "default_max_output_tokens") == 0) {
            if (yw_u32(c, v, what, 1, 10000000, &u))
                bc->default_max_output_tokens = u;
        } else {
            yw_unknown_key(c, kn, "budgets",
                           "redis_url, redis_timeout_ms, key_prefix, default_max_output_tokens");
        }
    }
    return c->nerr == nerr0;
}

void budget_cfg_free(budget_cfg_t *bc)
{
    free(bc->redis_url);
    free(bc->key_prefix);
    bc->redis_url = NULL;
    bc->key_prefix = NULL;
}

bool budget_parse_model_cap(ywalk_t *c, yaml_node_t *v, const char *what, double *out)
{
    return yw_price(c, v, what, out);
}

const char *budget_code_name(enum budget_code code)
{
    switch (code) {
    case BUDGET_OK:
        return "ok";
    case BUDGET_RPM:
        return "rate_limit_rpm";
    case BUDGET_TPM:
        return "rate_limit_tpm";
    case BUDGET_DAILY:
        return "daily_budget_exceeded";
    case BUDGET_MONTHLY:
        return "monthly_budget_exceeded";
    default:
        return "unknown";
    }
}
