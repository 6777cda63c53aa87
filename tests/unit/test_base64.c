/* base64: RFC 4648 §10 vectors, MIME line wrapping, strict decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "util/base64.h"

#include <string.h>

static const struct {
    const char *plain;
    const char *encoded;
} b64_vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof b64_vectors / sizeof b64_vectors[0]; i++) {
        buf_t b;
        buf_init(&b, 1024);
        assert_int_equal(b64_encode(&b, b64_vectors[i].plain, strlen(b64_vectors[i].plain), 0), 0);
        assert_int_equal(b.len, strlen(b64_vectors[i].encoded));
        if (b.len)
            assert_string_equal(b.data, b64_vectors[i].encoded);
        buf_reset(&b);
        assert_int_equal(b64_decode(&b, b64_vectors[i].encoded, strlen(b64_vectors[i].encoded), 0),
                         0);
        assert_int_equal(b.len, strlen(b64_vectors[i].plain));
        assert_memory_equal(b.data, b64_vectors[i].plain, b.len);
        buf_free(&b);
    }
}

static void test_binary_roundtrip(void **state)
{
    (void)state;
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    buf_t e, d;
    buf_init(&e, 4096);
    buf_init(&d, 4096);
    assert_int_equal(b64_encode(&e, all, sizeof all, 76), 0);
    assert_int_equal(b64_decode(&d, e.data, e.len, 1), 0);
    assert_int_equal(d.len, sizeof all);
    assert_memory_equal(d.data, all, sizeof all);
    buf_free(&e);
    buf_free(&d);
}

static void test_wrapping(void **state)
{
    (void)state;
    unsigned char data[200];
    memset(data, 0xa5, sizeof data);
    buf_t b;
    buf_init(&b, 4096);
    assert_int_equal(b64_encode(&b, data, sizeof data, 76), 0);
    /* 200 bytes -> 268 characters -> lines of 76, 76, 76, 40, each CRLF. */
    assert_int_equal(b.len, 268 + 4 * 2);
    const char *p = b.data;
    int lines = 0;
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        assert_non_null(eol);
        assert_true(eol - p <= 76);
        assert_true(eol - p > 0);
        lines++;
        p = eol + 2;
    }
    assert_int_equal(lines, 4);
    /* An exact multiple of the line length ends with one CRLF, not two. */
    buf_reset(&b);
    assert_int_equal(b64_encode(&b, data, 57, 76), 0);
    assert_int_equal(b.len, 78);
    assert_string_equal(b.data + 76, "\r\n");
    buf_free(&b);
}

static void test_invalid_rejected(void **state)
{
    (void)state;
    static const char *bad[] = {
        "Zg=",          /* incomplete quantum */
        "Zg",           /* missing padding */
        "Z===",         /* padding too early */
        "Zg==Zg==",     /* data after padding */
        "Zm9v!",        /* not in the alphabet */
        "Zm 9v",        /* whitespace */
        "Zh==",         /* non-zero bits under the padding */
        "Zm=v",         /* data after a pad inside a quantum */
        "Zm9v\r\nYg==", /* newline without allow_newlines */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_t b;
        buf_init(&b, 1024);
        assert_int_equal(buf_puts(&b, "keep"), 0);
        assert_int_equal(b64_decode(&b, bad[i], strlen(bad[i]), 0), -1);
        /* A failed decode leaves what was there before. */
        assert_int_equal(b.len, 4);
        assert_string_equal(b.data, "keep");
        buf_free(&b);
    }
    buf_t b;
    buf_init(&b, 1024);
    assert_int_equal(b64_decode(&b, "Zm9v\r\nYg==", 10, 1), 0);
    assert_string_equal(b.data, "foob");
    buf_free(&b);
}

static void test_buffer_limit(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(b64_encode(&b, "foobarfoobar", 12, 0), -1);
    assert_int_equal(b.len, 0);
    assert_int_equal(b64_decode(&b, "Zm9vYmFyZm9vYmFy", 16, 0), -1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors), cmocka_unit_test(test_binary_roundtrip),
        cmocka_unit_test(test_wrapping),        cmocka_unit_test(test_invalid_rejected),
        cmocka_unit_test(test_buffer_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
