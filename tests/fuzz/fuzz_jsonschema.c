/* fuzz_jsonschema: the JSON Schema subset the cascades' checks and the
 * json_schema answers are validated with (core/jsonschema.c): the input is
 * a schema, a NUL byte, then a document (both JSON).
 * Properties: no crash, hang or unbounded recursion on any schema ($ref
 * cycles included); the verdict is the same twice; a violation names a
 * path. */
#include "fuzz.h"

#include <cjson/cJSON.h>

#include "core/jsonschema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *a, *b;
    size_t alen, blen;
    fuzz_split2(data, size, 0, &a, &alen, &b, &blen);
    cJSON *schema = cJSON_ParseWithLength((const char *)a, alen);
    cJSON *doc = cJSON_ParseWithLength((const char *)b, blen);
    if (schema != NULL && doc != NULL) {
        char why[256] = "", why2[256] = "";
        bool ok = jsonschema_valid(schema, schema, doc, why, sizeof why);
        bool ok2 = jsonschema_valid(schema, schema, doc, why2, sizeof why2);
        FUZZ_CHECK(ok == ok2 && strcmp(why, why2) == 0, "verdicts differ");
        if (!ok)
            FUZZ_CHECK(why[0] != '\0', "a violation without a path");
        /* a schema is also a document: validate the schema against itself */
        (void)jsonschema_valid(schema, schema, schema, NULL, 0);
    }
    cJSON_Delete(schema);
    cJSON_Delete(doc);
    return 0;
}
