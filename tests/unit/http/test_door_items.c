/* Unit tests for src/http/door_items.c: the Responses door's bounded store
 * of the output items it answered with (for item_reference). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/door_items.h"

static void put_one(int i)
{
    char resp[256];
    snprintf(resp, sizeof resp,
             "{\"id\":\"resp_x\",\"output\":[{\"id\":\"msg_%d\",\"type\":\"message\",\"role\":"
             "\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"answer %d\"}]}]}",
             i, i);
    door_items_put_response(resp, strlen(resp));
}

static int has(int i)
{
    char id[32], *j;
    snprintf(id, sizeof id, "msg_%d", i);
    j = door_items_get(id);
    free(j);
    return j != NULL;
}

static void test_put_and_get(void **state)
{
    static const char resp[] =
        "{\"output\":[{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[]},"
        "{\"id\":\"msg_a\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
        "\"output_text\",\"text\":\"hi \\u00e9\"}]},"
        "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{}\"},"
        "{\"id\":\"fc_1\",\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"}]}";
    char *j;
    (void)state;
    door_items_clear();
    door_items_put_response(resp, strlen(resp));
    j = door_items_get("msg_a");
    assert_non_null(j);
    assert_non_null(strstr(j, "\"role\":\"assistant\""));
    assert_non_null(strstr(j, "output_text"));
    free(j);
    j = door_items_get("fc_1");
    assert_non_null(j);
    assert_non_null(strstr(j, "\"call_id\":\"c1\""));
    free(j);
    j = door_items_get("rs_1");
    assert_non_null(j);
    free(j);
    assert_null(door_items_get("msg_b"));
    assert_null(door_items_get(""));
    /* malformed input is ignored */
    door_items_put_response("{\"output\":[", 11);
    door_items_put_response("[]", 2);
    door_items_put_response("{\"output\":{\"id\":\"x\"}}", 21);
    assert_null(door_items_get("x"));
    door_items_clear();
    assert_null(door_items_get("msg_a"));
}

/* Bounded by entries: the oldest go first; lookups stay right after many
 * evictions (the index's tombstones are rebuilt away). */
static void test_bounded_and_oldest_first(void **state)
{
    (void)state;
    door_items_clear();
    for (int i = 0; i < DOOR_ITEMS_MAX + 100; i++)
        put_one(i);
    assert_false(has(0));
    assert_false(has(99));
    assert_true(has(100));
    assert_true(has(DOOR_ITEMS_MAX + 99));
    for (int i = DOOR_ITEMS_MAX + 100; i < 5 * DOOR_ITEMS_MAX; i++)
        put_one(i);
    assert_false(has(4 * DOOR_ITEMS_MAX - 1));
    assert_true(has(4 * DOOR_ITEMS_MAX));
    assert_true(has(5 * DOOR_ITEMS_MAX - 1));
    assert_false(has(5 * DOOR_ITEMS_MAX)); /* never put */
    /* the same id again keeps one entry with the newest content */
    put_one(7);
    put_one(7);
    assert_true(has(7));
    door_items_clear();
}

/* Bounded by bytes: one huge item evicts older ones, one over the whole
 * budget is not kept. */
static void test_bounded_by_bytes(void **state)
{
    size_t big = DOOR_ITEMS_MAX_BYTES / 2 + 1000;
    static const char head[] = "{\"output\":[{\"id\":\"big\",\"type\":\"message\",\"text\":\"";
    char *resp = malloc(big + 200);
    size_t h = sizeof head - 1;
    (void)state;
    door_items_clear();
    put_one(1);
    memcpy(resp, head, h);
    memset(resp + h, 'a', big);
    memcpy(resp + h + big, "\"}]}", 5);
    door_items_put_response(resp, strlen(resp));
    resp[19] = 'c'; /* "big" -> "bcg": a second half-budget item */
    door_items_put_response(resp, strlen(resp));
    {
        char *j = door_items_get("bcg");
        assert_non_null(j);
        free(j);
    }
    assert_null(door_items_get("big")); /* evicted for the second one */
    assert_false(has(1));
    free(resp);
    door_items_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_and_get),
        cmocka_unit_test(test_bounded_and_oldest_first),
        cmocka_unit_test(test_bounded_by_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
