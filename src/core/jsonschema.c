/* jsonschema: validation of a JSON value against a JSON Schema, in the
 * subset OpenAI's structured outputs allow (see core/jsonschema.h). Pure;
 * any thread. Used by the cascade's schema check; usable by any door that
 * needs to check a structured answer. */
#include "core/jsonschema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define JSONSCHEMA_DEPTH 64 /* deeper schemas are not judged (accepted) */
/* Schemas whose check takes more steps are not judged either (accepted):
 * allOf/anyOf branches that $ref back to "#" multiply at every level, and a
 * client writes the schema. 100,000 steps take about 5 ms. */
#define JSONSCHEMA_STEPS 100000


typedef struct sv {
    const cJSON *root;
    char *why;
    size_t why_len;
    bool too_deep;
    unsigned long steps;
} sv_t;

static bool sv_fail(sv_t *s, const char *path, const char *what)
{
    if (s->why != NULL && s->why[0] == '\0')
        snprintf(s->why, s->why_len, "%s: %s", path[0] ? path : "(root)", what);
    return false;
}

/* Resolves a local $ref ("#", "#/$defs/x", "#/definitions/x", any JSON
 * pointer into the document); NULL when it does not resolve. */
static const cJSON *resolve_ref(const cJSON *root, const char *ref)
{
    const cJSON *cur = root;
    const char *p;
    if (ref[0] != '#')
        return NULL;
    p = ref + 1;
    while (*p == '/') {
        char tok[256];
        size_t o = 0;
        p++;
        while (*p && *p != '/' && o + 1 < sizeof tok) {
            if (p[0] == '~' && p[1] == '1') {
                tok[o++] = '/';
                p += 2;
            } else if (p[0] == '~' && p[1] == '0') {
                tok[o++] = '~';
                p += 2;
            } else {
                tok[o++] = *p++;
            }
        }
        tok[o] = '\0';
        if (cJSON_IsArray(cur)) {
            char *end;
            long i = strtol(tok, &end, 10);
            cur = (*end == '\0' && i >= 0) ? cJSON_GetArrayItem(cur, (int)i) : NULL;
        } else {
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        }
        if (cur == NULL)
            return NULL;
    }
    return *p == '\0' ? cur : NULL;
}

static bool type_is(const char *t, const cJSON *v)
{
    if (strcmp(t, "null") == 0)
        return cJSON_IsNull(v);
    if (strcmp(t, "boolean") == 0)
        return cJSON_IsBool(v);
    if (strcmp(t, "object") == 0)
        return cJSON_IsObject(v);
    if (strcmp(t, "array") == 0)
        return cJSON_IsArray(v);
    if (strcmp(t, "string") == 0)
        return cJSON_IsString(v);
    if (strcmp(t, "number") == 0)
        return cJSON_IsNumber(v);
    if (strcmp(t, "integer") == 0)
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
               floor(v->valuedouble) == v->valuedouble;
    return true; /* an unknown type name never rejects */
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static bool num_kw(const cJSON *schema, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(schema, k);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

static bool validate(sv_t *s, const cJSON *schema, const cJSON *v, const char *path, int depth);

static bool validate_object(sv_t *s, const cJSON *schema, const cJSON *v, const char *path,
                            int depth)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
    const cJSON *it;
    char sub[512];
    double lim;
    int n = cJSON_GetArraySize(v);
    cJSON_ArrayForEach(it, req)
    {
        if (cJSON_IsString(it) && cJSON_GetObjectItemCaseSensitive(v, it->valuestring) == NULL) {
            snprintf(sub, sizeof sub, "missing required property \"%.100s\"", it->valuestring);
            return sv_fail(s, path, sub);
        }
    }
    if (num_kw(schema, "minProperties", &lim) && n < lim)
        return sv_fail(s, path, "too few properties");
    if (num_kw(schema, "maxProperties", &lim) && n > lim)
        return sv_fail(s, path, "too many properties");
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *ps = cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, it->string)
                                                : NULL;
        snprintf(sub, sizeof sub, "%s.%.100s", path, it->string);
        if (ps != NULL) {
            if (!validate(s, ps, it, sub, depth + 1))
                return false;
        } else if (cJSON_IsFalse(addl)) {
            return sv_fail(s, sub, "additional property not allowed");
        } else if (cJSON_IsObject(addl) && !validate(s, addl, it, sub, depth + 1)) {
            return false;
        }
    }
    return true;
}

static bool validate_array(sv_t *s, const cJSON *schema, const cJSON *v, const char *path,
                           int depth)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(schema, "prefixItems");
    const cJSON *it;
    int i = 0, n_prefix = cJSON_IsArray(prefix) ? cJSON_GetArraySize(prefix) : 0;
    double lim;
    char sub[512];
    if (num_kw(schema, "minItems", &lim) && cJSON_GetArraySize(v) < lim)
        return sv_fail(s, path, "too few items");
    if (num_kw(schema, "maxItems", &lim) && cJSON_GetArraySize(v) > lim)
        return sv_fail(s, path, "too many items");
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *is = i < n_prefix ? cJSON_GetArrayItem(prefix, i) : items;
        snprintf(sub, sizeof sub, "%s[%d]", path, i);
        if (cJSON_IsFalse(is))
            return sv_fail(s, sub, "item not allowed");
        if (cJSON_IsObject(is) && !validate(s, is, it, sub, depth + 1))
            return false;
        i++;
    }
    return true;
}

static bool validate_scalar(sv_t *s, const cJSON *schema, const cJSON *v, const char *path)
{
    double lim;
    if (cJSON_IsString(v)) {
        size_t n = utf8_chars(v->valuestring);
        if (num_kw(schema, "minLength", &lim) && (double)n < lim)
            return sv_fail(s, path, "string too short");
        if (num_kw(schema, "maxLength", &lim) && (double)n > lim)
            return sv_fail(s, path, "string too long");
    } else if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (num_kw(schema, "minimum", &lim) && x < lim)
            return sv_fail(s, path, "below minimum");
        if (num_kw(schema, "maximum", &lim) && x > lim)
            return sv_fail(s, path, "above maximum");
        if (num_kw(schema, "exclusiveMinimum", &lim) && x <= lim)
            return sv_fail(s, path, "not above exclusiveMinimum");
        if (num_kw(schema, "exclusiveMaximum", &lim) && x >= lim)
            return sv_fail(s, path, "not below exclusiveMaximum");
        if (num_kw(schema, "multipleOf", &lim) && lim > 0) {
            double q = x / lim;
            if (fabs(q - round(q)) > 1e-9 * fmax(1, fabs(q)))
                return sv_fail(s, path, "not a multiple of multipleOf");
        }
    }
    return true;
}

/* How many schemas of the list v satisfies (stops at 2: enough for oneOf). */
static int count_matching(sv_t *s, const cJSON *list, const cJSON *v, const char *path, int depth)
{
    const cJSON *alt;
    int n = 0;
    char *why = s->why;
    s->why = NULL; /* a failing alternative is not the reason */
    cJSON_ArrayForEach(alt, list)
    {
        if (validate(s, alt, v, path, depth + 1) && ++n == 2)
            break;
    }
    s->why = why;
    return n;
}

static bool validate(sv_t *s, const cJSON *schema, const cJSON *v, const char *path, int depth)
{
    const cJSON *ref, *type, *en, *cn, *list;
    if (cJSON_IsTrue(schema) || !cJSON_IsObject(schema))
        return true;
    if (cJSON_IsFalse(schema))
        return sv_fail(s, path, "no value is allowed here");
    if (depth > JSONSCHEMA_DEPTH || ++s->steps > JSONSCHEMA_STEPS) {
        s->too_deep = true; /* not judged: accepted (see the header) */
        return true;
    }
    ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
    if (cJSON_IsString(ref)) {
        const cJSON *target = resolve_ref(s->root, ref->valuestring);
        if (target != NULL && !validate(s, target, v, path, depth + 1))
            return false; /* an unresolvable $ref never rejects */
    }
    type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(schema, "nullable")) && cJSON_IsNull(v))
        return true;
    if (cJSON_IsString(type) && !type_is(type->valuestring, v)) {
        char m[96];
        snprintf(m, sizeof m, "expected %.40s", type->valuestring);
        return sv_fail(s, path, m);
    }
    if (cJSON_IsArray(type)) {
        const cJSON *t;
        bool any = false;
        cJSON_ArrayForEach(t, type) any = any || (cJSON_IsString(t) && type_is(t->valuestring, v));
        if (!any)
            return sv_fail(s, path, "value of a type the schema does not allow");
    }
    en = cJSON_GetObjectItemCaseSensitive(schema, "enum");
    if (cJSON_IsArray(en)) {
        const cJSON *e;
        bool any = false;
        cJSON_ArrayForEach(e, en) any = any || cJSON_Compare(e, v, true);
        if (!any)
            return sv_fail(s, path, "not one of the enum values");
    }
    cn = cJSON_GetObjectItemCaseSensitive(schema, "const");
    if (cn != NULL && !cJSON_Compare(cn, v, true))
        return sv_fail(s, path, "not the const value");
    if ((list = cJSON_GetObjectItemCaseSensitive(schema, "anyOf")) != NULL && cJSON_IsArray(list) &&
        count_matching(s, list, v, path, depth) == 0)
        return sv_fail(s, path, "matches none of anyOf");
    if ((list = cJSON_GetObjectItemCaseSensitive(schema, "oneOf")) != NULL && cJSON_IsArray(list) &&
        count_matching(s, list, v, path, depth) != 1)
        return sv_fail(s, path, "does not match exactly one of oneOf");
    if ((list = cJSON_GetObjectItemCaseSensitive(schema, "allOf")) != NULL && cJSON_IsArray(list)) {
        const cJSON *alt;
        cJSON_ArrayForEach(alt, list) if (!validate(s, alt, v, path, depth + 1)) return false;
    }
    if ((list = cJSON_GetObjectItemCaseSensitive(schema, "not")) != NULL && cJSON_IsObject(list)) {
        char *why = s->why;
        bool m;
        s->why = NULL;
        m = validate(s, list, v, path, depth + 1);
        s->why = why;
        if (m)
            return sv_fail(s, path, "matches the schema under \"not\"");
    }
    if (cJSON_IsObject(v))
        return validate_object(s, schema, v, path, depth);
    if (cJSON_IsArray(v))
        return validate_array(s, schema, v, path, depth);
    return validate_scalar(s, schema, v, path);
}

bool jsonschema_valid(const cJSON *schema, const cJSON *root, const cJSON *value, char *why,
                          size_t why_len)
{
    sv_t s = {.root = root ? root : schema, .why = why, .why_len = why_len};
    if (why != NULL && why_len > 0)
        why[0] = '\0';
    return validate(&s, schema, value, "", 0);
}
