/* fuzz_json: the strict JSON check every request body passes first
 * (core/json.c json_check), the top-level key finder, the string encoder and
 * the cache key's canonical form (cache/cachekey.c).
 * Properties: json_check's verdict does not depend on the flags beyond what
 * they add (strict valid => lax valid); a body json_check accepts strictly is
 * one cJSON parses (the daemon parses what the check let through); the
 * canonical form of a parsed body, parsed again, canonicalises to the same
 * bytes; json_append_string always yields a valid JSON string. */
#include "fuzz.h"

#include <cjson/cJSON.h>

#include "cache/cachekey.h"
#include "core/json.h"

static size_t max_depth(const char *s, size_t n)
{
    size_t d = 0, m = 0;
    bool str = false, esc = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                str = false;
        } else if (c == '"') {
            str = true;
        } else if (c == '[' || c == '{') {
            if (++d > m)
                m = d;
        } else if ((c == ']' || c == '}') && d > 0) {
            d--;
        }
    }
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    int obj0 = 0, obj1 = 0, obj3 = 0;
    json_error_t err;
    int lax = json_check(s, size, 0, &obj0, NULL);
    int text = json_check(s, size, JSON_CHECK_TEXT, &obj1, &err);
    int strict = json_check(s, size, JSON_CHECK_STRICT, &obj3, &err);
    FUZZ_CHECK(lax >= 0 && text >= 0 && strict >= 0, "out of memory");
    FUZZ_CHECK(!text || lax, "TEXT-valid but not valid");
    FUZZ_CHECK(!strict || text, "STRICT-valid but not TEXT-valid");
    FUZZ_CHECK(json_validate(s, size, &obj0) == lax, "json_validate differs from json_check");
    if (!strict)
        FUZZ_CHECK(err.off <= size && err.what != NULL, "error offset %zu of %zu", err.off, size);

    if (lax) { /* the finder's contract: the text is valid JSON */
        json_span_t spans[4];
        int nk = json_find_top_key(s, size, "model", spans, 4);
        FUZZ_CHECK((nk == -1) == !obj0, "finder and check disagree on an object");
        for (int i = 0; i < nk && i < 4; i++)
            FUZZ_CHECK(spans[i].off + spans[i].len <= size, "span past the end");
    }

    if (strict && max_depth(s, size) < 900) {
        cJSON *root = cJSON_ParseWithLengthOpts(s, size, NULL, 0);
        FUZZ_CHECK(root != NULL, "strictly valid JSON that cJSON refuses");
        buf_t a, b;
        buf_init(&a, 4 * size + 64);
        buf_init(&b, 4 * size + 64);
        if (cachekey_canonical(root, NULL, &a) == 0) {
            cJSON *again = cJSON_ParseWithLength(buf_ptr(&a), buf_len(&a));
            FUZZ_CHECK(again != NULL, "canonical form does not parse: %.*s", (int)buf_len(&a),
                       buf_ptr(&a));
            FUZZ_CHECK(cachekey_canonical(again, NULL, &b) == 0, "canonical form not canonical");
            FUZZ_CHECK(buf_len(&a) == buf_len(&b) && memcmp(buf_ptr(&a), buf_ptr(&b), buf_len(&a)) == 0,
                       "canonical form is not a fixed point");
            uint8_t k1[CACHEKEY_LEN], k2[CACHEKEY_LEN];
            if (cachekey_compute(root, "/chat/completions", "standard", "", k1) == 0) {
                FUZZ_CHECK(cachekey_compute(again, "/chat/completions", "standard", "", k2) == 0,
                           "key of the canonical form fails");
                FUZZ_CHECK(memcmp(k1, k2, sizeof k1) == 0, "key differs for the canonical form");
            }
            cJSON_Delete(again);
        }
        buf_free(&a);
        buf_free(&b);
        cJSON_Delete(root);
    }

    buf_t e;
    buf_init(&e, 6 * size + 8);
    FUZZ_CHECK(json_append_string(&e, s, size) == 0, "json_append_string failed");
    int is_obj = 1;
    FUZZ_CHECK(json_check(buf_ptr(&e), buf_len(&e), 0, &is_obj, NULL) == 1 && !is_obj,
               "json_append_string wrote invalid JSON");
    buf_free(&e);
    free(s);
    return 0;
}
