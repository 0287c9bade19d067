/* Unit tests for src/buf.c: the hard cap, consumption and compaction, and
 * NUL termination. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

static void test_init_allocates_nothing(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_room(&b), 100);
    buf_free(&b);
}

static void test_append_within_cap(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, "hello", 5), 0);
    assert_int_equal(buf_append(&b, " world", 6), 0);
    assert_int_equal(buf_len(&b), 11);
    assert_int_equal(buf_room(&b), 5);
    assert_memory_equal(buf_ptr(&b), "hello world", 11);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(buf_len(&b), 0);
}

static void test_append_exactly_to_cap(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_append(&b, "12345678", 8), 0);
    assert_int_equal(buf_len(&b), 8);
    assert_int_equal(buf_room(&b), 0);
    /* a zero-length append is fine even when full */
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_int_equal(buf_len(&b), 8);
    buf_free(&b);
}

static void test_append_past_cap_writes_nothing(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "abcdefg", 7), 0);
    /* 7 + 4 > 10: refused as a whole, nothing partial */
    assert_int_equal(buf_append(&b, "WXYZ", 4), -1);
    assert_int_equal(buf_len(&b), 7);
    assert_memory_equal(buf_ptr(&b), "abcdefg", 7);
    /* what still fits is accepted */
    assert_int_equal(buf_append(&b, "XYZ", 3), 0);
    assert_int_equal(buf_append(&b, "!", 1), -1);
    assert_int_equal(buf_len(&b), 10);
    assert_memory_equal(buf_ptr(&b), "abcdefgXYZ", 10);
    buf_free(&b);
}

static void test_append_larger_than_cap_on_empty(void **state)
{
    buf_t b;
    char big[64];
    (void)state;
    memset(big, 'x', sizeof big);
    buf_init(&b, 32);
    assert_int_equal(buf_append(&b, big, 33), -1);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_append(&b, big, 32), 0);
    assert_int_equal(buf_len(&b), 32);
    buf_free(&b);
}

static void test_zero_cap(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 0);
    assert_int_equal(buf_append(&b, "a", 1), -1);
    assert_int_equal(buf_len(&b), 0);
    assert_string_equal(buf_cstr(&b), "");
    buf_free(&b);
}

static void test_consume_reopens_room_and_compacts(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_append(&b, "abcdefgh", 8), 0);
    assert_int_equal(buf_append(&b, "i", 1), -1);
    buf_consume(&b, 3);
    assert_int_equal(buf_len(&b), 5);
    assert_int_equal(buf_room(&b), 3);
    assert_memory_equal(buf_ptr(&b), "defgh", 5);
    /* appending now needs the consumed prefix to be reclaimed */
    assert_int_equal(buf_append(&b, "XYZ", 3), 0);
    assert_int_equal(buf_len(&b), 8);
    assert_memory_equal(buf_ptr(&b), "defghXYZ", 8);
    assert_int_equal(buf_append(&b, "!", 1), -1);
    assert_memory_equal(buf_ptr(&b), "defghXYZ", 8);
    /* storage never exceeds cap + 1 */
    assert_true(b.alloc <= 9);
    buf_free(&b);
}

static void test_consume_all_rewinds(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 100);
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    buf_consume(&b, 3);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(b.r, 0);
    assert_int_equal(b.w, 0);
    assert_int_equal(buf_room(&b), 100);
    assert_int_equal(buf_append(&b, "xy", 2), 0);
    assert_memory_equal(buf_ptr(&b), "xy", 2);
    buf_free(&b);
}

/* A FIFO pattern with many small appends and consumes keeps the byte stream
 * intact through compactions and growth. */
static void test_fifo_stream_integrity(void **state)
{
    buf_t b;
    unsigned char in = 0, out = 0;
    unsigned seed = 12345;
    size_t total_in = 0, total_out = 0;
    (void)state;
    buf_init(&b, 3000);
    while (total_out < 200000) {
        unsigned char chunk[700];
        size_t n, k;
        seed = seed * 1103515245u + 12345u;
        n = (seed >> 8) % sizeof chunk;
        for (k = 0; k < n; k++)
            chunk[k] = (unsigned char)(in + k);
        if (buf_append(&b, chunk, n) == 0) {
            in = (unsigned char)(in + n);
            total_in += n;
        } else {
            assert_true(n > buf_room(&b));
        }
        assert_true(buf_len(&b) <= 3000);
        assert_true(b.alloc <= 3001);
        seed = seed * 1103515245u + 12345u;
        k = buf_len(&b) ? (seed >> 8) % (buf_len(&b) + 1) : 0;
        for (size_t j = 0; j < k; j++)
            assert_int_equal((unsigned char)buf_ptr(&b)[j], (unsigned char)(out + j));
        out = (unsigned char)(out + k);
        total_out += k;
        buf_consume(&b, k);
    }
    assert_int_equal(total_in - total_out, buf_len(&b));
    buf_free(&b);
}

static void test_large_growth(void **state)
{
    buf_t b;
    char piece[1000];
    const size_t cap = 1u << 20;
    size_t n = 0;
    (void)state;
    buf_init(&b, cap);
    for (;;) {
        for (size_t i = 0; i < sizeof piece; i++)
            piece[i] = (char)('a' + (n + i) % 26);
        if (buf_append(&b, piece, sizeof piece) < 0)
            break;
        n += sizeof piece;
    }
    assert_int_equal(n, cap / 1000 * 1000);
    assert_int_equal(buf_len(&b), n);
    assert_true(b.alloc <= cap + 1);
    for (size_t i = 0; i < n; i++)
        if (buf_ptr(&b)[i] != (char)('a' + i % 26))
            fail_msg("byte %zu differs", i);
    buf_free(&b);
}

static void test_cstr_terminates_without_counting(void **state)
{
    buf_t b;
    char *s;
    (void)state;
    buf_init(&b, 64);
    assert_int_equal(buf_append(&b, "hello", 5), 0);
    s = buf_cstr(&b);
    assert_string_equal(s, "hello");
    assert_int_equal(buf_len(&b), 5);
    /* after consume, the string starts at the read position */
    buf_consume(&b, 2);
    assert_string_equal(buf_cstr(&b), "llo");
    /* appending after cstr overwrites the NUL and continues the string */
    assert_int_equal(buf_append(&b, "!!", 2), 0);
    assert_string_equal(buf_cstr(&b), "llo!!");
    buf_free(&b);
}

static void test_cstr_on_full_buffer(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 4);
    assert_int_equal(buf_append(&b, "abcd", 4), 0);
    assert_string_equal(buf_cstr(&b), "abcd");
    assert_int_equal(buf_len(&b), 4);
    assert_int_equal(buf_room(&b), 0);
    /* full after a consume + refill: the NUL still fits */
    buf_consume(&b, 1);
    assert_int_equal(buf_append(&b, "e", 1), 0);
    assert_string_equal(buf_cstr(&b), "bcde");
    buf_free(&b);
}

static void test_cstr_on_fresh_buffer(void **state)
{
    buf_t b;
    char *s;
    (void)state;
    buf_init(&b, 10);
    s = buf_cstr(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(buf_len(&b), 0);
    buf_free(&b);
}

static void test_reset_keeps_storage(void **state)
{
    buf_t b;
    char *before;
    (void)state;
    buf_init(&b, 50);
    assert_int_equal(buf_append(&b, "some data", 9), 0);
    before = b.data;
    buf_reset(&b);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_room(&b), 50);
    assert_ptr_equal(b.data, before);
    assert_int_equal(buf_append(&b, "new", 3), 0);
    assert_string_equal(buf_cstr(&b), "new");
    buf_free(&b);
}

static void test_reuse_after_free(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 5);
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    buf_free(&b);
    buf_init(&b, 5);
    assert_int_equal(buf_append(&b, "vwxyz", 5), 0);
    assert_string_equal(buf_cstr(&b), "vwxyz");
    buf_free(&b);
}

static void test_puts(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_puts(&b, "abc"), 0);
    assert_int_equal(buf_puts(&b, ""), 0);
    assert_int_equal(buf_len(&b), 3);
    /* all or nothing, like buf_append */
    assert_int_equal(buf_puts(&b, "defghi"), -1);
    assert_int_equal(buf_len(&b), 3);
    assert_int_equal(buf_puts(&b, "defgh"), 0);
    assert_string_equal(buf_cstr(&b), "abcdefgh");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_allocates_nothing),
        cmocka_unit_test(test_append_within_cap),
        cmocka_unit_test(test_append_exactly_to_cap),
        cmocka_unit_test(test_append_past_cap_writes_nothing),
        cmocka_unit_test(test_append_larger_than_cap_on_empty),
        cmocka_unit_test(test_zero_cap),
        cmocka_unit_test(test_consume_reopens_room_and_compacts),
        cmocka_unit_test(test_consume_all_rewinds),
        cmocka_unit_test(test_fifo_stream_integrity),
        cmocka_unit_test(test_large_growth),
        cmocka_unit_test(test_cstr_terminates_without_counting),
        cmocka_unit_test(test_cstr_on_full_buffer),
        cmocka_unit_test(test_cstr_on_fresh_buffer),
        cmocka_unit_test(test_reset_keeps_storage),
        cmocka_unit_test(test_reuse_after_free),
        cmocka_unit_test(test_puts),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
