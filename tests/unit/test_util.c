/* Bounded buffers, JSON string escaping, and secret redaction in logs. */
#include "util/buf.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/text.h"
#include "util/timefmt.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void test_buf_bound(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 8);
    assert_int_equal(buf_puts(&b, "12345678"), 0);
    assert_int_equal(b.len, 8);
    assert_int_equal(buf_putc(&b, '9'), -1);
    assert_int_equal(buf_printf(&b, "%d", 1), -1);
    assert_string_equal(b.data, "12345678"); /* unchanged by the failed appends */
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "%s-%d", "ab", 42), 0);
    assert_string_equal(b.data, "ab-42");
    char *s = buf_detach(&b);
    assert_string_equal(s, "ab-42");
    assert_null(b.data);
    free(s);
    buf_free(&b);
}

static void test_json_escape(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 256);
    assert_int_equal(jtext_string(&b, "a\"b\\c\n\x01 Zo\xc3\xab"), 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001 Zo\xc3\xab\"");
    buf_free(&b);
}

static void test_iso8601(void **state)
{
    (void)state;
    char out[32];
    time_iso8601(1795991630.7, out);
    assert_string_equal(out, "2026-11-29T22:33:50Z");
}

static void test_log_redacts_secrets(void **state)
{
    (void)state;
    char path[] = "/tmp/crier-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    log_add_secret("s3cr3t-token-value");
    log_info("test", "leak_attempt", "detail", "auth failed for s3cr3t-token-value!", NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char text[1024] = {0};
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    assert_null(strstr(text, "s3cr3t"));
    assert_non_null(strstr(text, "[redacted]!"));
    assert_non_null(strstr(text, "\"event\":\"leak_attempt\""));
}

static void test_text_helpers(void **state)
{
    (void)state;
    assert_int_equal(text_hexval('0'), 0);
    assert_int_equal(text_hexval('9'), 9);
    assert_int_equal(text_hexval('a'), 10);
    assert_int_equal(text_hexval('F'), 15);
    assert_int_equal(text_hexval('g'), -1);
    assert_int_equal(text_hexval(0xC3), -1);

    char out[6];
    text_copy_utf8("abc", out, sizeof out);
    assert_string_equal(out, "abc");
    /* "abcZoë": the two bytes of ë do not fit after "abcZo" (5 of 6), so the
     * cut falls before the character, never inside it */
    text_copy_utf8("abcZo\xc3\xab", out, sizeof out);
    assert_string_equal(out, "abcZo");
    text_copy_utf8("ab\xc3\xab\xc3\xab", out, sizeof out);
    assert_string_equal(out, "ab\xc3\xab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_bound),    cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_iso8601),      cmocka_unit_test(test_log_redacts_secrets),
        cmocka_unit_test(test_text_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
