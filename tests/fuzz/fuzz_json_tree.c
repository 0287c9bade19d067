/* fuzz_json_tree: the one-pass strict parse of request bodies
 * (core/json_tree.c) against the two passes it replaces, json_check
 * (JSON_CHECK_STRICT) then cJSON_ParseWithLength. The whole input is the
 * body. Properties: the same verdict and is_object; on refusal the same
 * json_error_t (offset, message, repeated key's span); on acceptance the
 * same tree node by node (types, keys, strings, valueint, valuedouble's
 * bits, head->prev links) and the same cJSON_PrintUnformatted text. */
#include "fuzz.h"

#include "json_tree_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    char why[512];
    int verdict;
    const char *res = jtd_compare(s, size, &verdict, why, sizeof why);
    FUZZ_CHECK(res == NULL, "%s", res);
    /* the same body without its first byte (the request harnesses' corpora
     * start with a control byte) */
    if (size > 0) {
        res = jtd_compare(s + 1, size - 1, &verdict, why, sizeof why);
        FUZZ_CHECK(res == NULL, "(from byte 1) %s", res);
    }
    free(s);
    return 0;
}
