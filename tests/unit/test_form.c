/* form: x-www-form-urlencoded parsing, its refusals and its limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "webhook/form.h"

#include <stdint.h>
#include <string.h>

/* Parses a C string; returns form_parse's result. */
static int parse(form_pairs_t *f, const char *body, const form_limits_t *lim, char *err,
                 size_t errlen)
{
    return form_parse(f, body, strlen(body), lim, err, errlen);
}

static void expect_refused(const char *body, const form_limits_t *lim)
{
    form_pairs_t f;
    char err[128] = "";
    assert_int_equal(parse(&f, body, lim, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(f.count, 0);
    assert_null(f.pairs);
    form_free(&f);
}

static void expect_pair(const form_pairs_t *f, size_t i, const char *key, const char *value)
{
    assert_true(i < f->count);
    assert_string_equal(f->pairs[i].key, key);
    assert_int_equal(f->pairs[i].key_len, strlen(key));
    assert_string_equal(f->pairs[i].value, value);
    assert_int_equal(f->pairs[i].value_len, strlen(value));
}

static void test_empty_body(void **state)
{
    (void)state;
    form_pairs_t f;
    char err[128];
    assert_int_equal(form_parse(&f, NULL, 0, NULL, err, sizeof err), 0);
    assert_int_equal(f.count, 0);
    form_free(&f);
    assert_int_equal(parse(&f, "", NULL, err, sizeof err), 0);
    assert_int_equal(f.count, 0);
    form_free(&f);
    /* Only separators: nothing but empty segments. */
    assert_int_equal(parse(&f, "&&&", NULL, err, sizeof err), 0);
    assert_int_equal(f.count, 0);
    assert_null(form_get(&f, ""));
    form_free(&f);
}

static void test_blank_values_and_keys(void **state)
{
    (void)state;
    form_pairs_t f;
    char err[128];
    assert_int_equal(parse(&f, "a=&b", NULL, err, sizeof err), 0);
    assert_int_equal(f.count, 2);
    expect_pair(&f, 0, "a", "");
    expect_pair(&f, 1, "b", "");
    form_free(&f);

    assert_int_equal(parse(&f, "a=1&&b=2&", NULL, err, sizeof err), 0);
    assert_int_equal(f.count, 2);
    expect_pair(&f, 0, "a", "1");
    expect_pair(&f, 1, "b", "2");
    form_free(&f);

    /* Only the first '=' separates; an empty key is still a field. */
    assert_int_equal(parse(&f, "=x&k=v=w&=", NULL, err, sizeof err), 0);
    assert_int_equal(f.count, 3);
    expect_pair(&f, 0, "", "x");
    expect_pair(&f, 1, "k", "v=w");
    expect_pair(&f, 2, "", "");
    form_free(&f);
}

static void test_plus_and_percent(void **state)
{
    (void)state;
    form_pairs_t f;
    char err[128];
    assert_int_equal(parse(&f,
                           "ToCity=SOUTH+RICHMOND+HILL&From=%2B19177674492&a+b=%2b%2B+&pct=100%25",
                           NULL, err, sizeof err),
                     0);
    assert_int_equal(f.count, 4);
    expect_pair(&f, 0, "ToCity", "SOUTH RICHMOND HILL");
    expect_pair(&f, 1, "From", "+19177674492");
    expect_pair(&f, 2, "a b", "++ ");
    expect_pair(&f, 3, "pct", "100%");
    assert_string_equal(form_get(&f, "a b"), "++ ");
    assert_null(form_get(&f, "a+b"));
    form_free(&f);
}

static void test_invalid_escapes_refused(void **state)
{
    (void)state;
    expect_refused("a=%zz", NULL);
    expect_refused("%zz=1", NULL);
    expect_refused("a=%4G", NULL);
    expect_refused("a=%G4", NULL);
    expect_refused("a=%4", NULL);
    expect_refused("a=%", NULL);
    expect_refused("%", NULL);
    expect_refused("a=1&b=%2", NULL);
    /* A truncated escape must not borrow the separator or the next field. */
    expect_refused("a=%4&b=1", NULL);
    expect_refused("a=%&=1", NULL);
}

static void test_nul_refused(void **state)
{
    (void)state;
    /* Decision: NUL is refused, encoded or raw, in keys and values, because
     * keys and values are used as C strings downstream. */
    expect_refused("a=%00", NULL);
    expect_refused("%00=1", NULL);
    expect_refused("a=x%00y", NULL);
    form_pairs_t f;
    char err[128];
    static const char raw[] = "a=x\0y";
    assert_int_equal(form_parse(&f, raw, sizeof raw - 1, NULL, err, sizeof err), -1);
    form_free(&f);
}

static void test_utf8(void **state)
{
    (void)state;
    form_pairs_t f;
    char err[128];
    /* "été 😀" percent-encoded (upper and lower case hex) and raw. */
    assert_int_equal(
        parse(&f, "Body=%C3%A9t%c3%a9+%F0%9F%98%80&raw=\xc3\xa9", NULL, err, sizeof err), 0);
    assert_int_equal(f.count, 2);
    expect_pair(&f, 0, "Body", "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80");
    expect_pair(&f, 1, "raw", "\xc3\xa9");
    form_free(&f);

    expect_refused("a=%C3", NULL);             /* truncated sequence */
    expect_refused("a=%C0%AF", NULL);          /* overlong '/' */
    expect_refused("a=%ED%A0%80", NULL);       /* UTF-16 surrogate */
    expect_refused("a=%F4%90%80%80", NULL);    /* past U+10FFFF */
    expect_refused("a=%FF", NULL);             /* never valid */
    expect_refused("a=\xff", NULL);            /* raw invalid byte */
    expect_refused("%C3%28=1", NULL);          /* invalid in a key too */
    expect_refused("a=%F0%9F%98&b=%80", NULL); /* a sequence cannot span fields */
}

static void test_duplicates_kept_in_order(void **state)
{
    (void)state;
    form_pairs_t f;
    char err[128];
    assert_int_equal(parse(&f, "Sid=CA123&Digits=5678&SidAccount=AC123&Digits=1234&Digits=1234",
                           NULL, err, sizeof err),
                     0);
    assert_int_equal(f.count, 5);
    expect_pair(&f, 0, "Sid", "CA123");
    expect_pair(&f, 1, "Digits", "5678");
    expect_pair(&f, 2, "SidAccount", "AC123");
    expect_pair(&f, 3, "Digits", "1234");
    expect_pair(&f, 4, "Digits", "1234");
    assert_string_equal(form_get(&f, "Digits"), "5678");
    assert_string_equal(form_get(&f, "Sid"), "CA123");
    assert_null(form_get(&f, "digits"));
    form_free(&f);
}

static void test_limits(void **state)
{
    (void)state;
    form_pairs_t f;
    char err[128];
    form_limits_t lim = {.max_body = 16, .max_pairs = 3, .max_key = 2, .max_value = 3};

    /* Pair count: empty segments do not count. */
    assert_int_equal(parse(&f, "a=1&&b=2&c=3&", &lim, err, sizeof err), 0);
    assert_int_equal(f.count, 3);
    form_free(&f);
    expect_refused("a&b&c&d", &lim);

    /* Body size is counted in encoded bytes. */
    assert_int_equal(parse(&f, "ab=123&cd=456&ef", &lim, err, sizeof err), 0); /* 16 bytes */
    assert_int_equal(f.count, 3);
    form_free(&f);
    expect_refused("ab=123&cd=456&efg", &lim); /* 17 bytes */

    /* Key and value sizes are counted in decoded bytes. */
    assert_int_equal(parse(&f, "%41%42=%2B%2B%2B", &lim, err, sizeof err), 0);
    expect_pair(&f, 0, "AB", "+++");
    form_free(&f);
    expect_refused("abc=1", &lim);
    expect_refused("a=1234", &lim);
    expect_refused("a=++++", &lim);

    /* The defaults: 256 fields pass, 257 do not. */
    char body[2048];
    size_t n = 0;
    for (int i = 0; i < 257; i++) {
        body[n++] = 'k';
        body[n++] = '&';
    }
    assert_int_equal(form_parse(&f, body, n - 2, NULL, err, sizeof err), 0);
    assert_int_equal(f.count, 256);
    form_free(&f);
    assert_int_equal(form_parse(&f, body, n, NULL, err, sizeof err), -1);
    form_free(&f);

    /* Default body limit: 64 KiB passes, one byte more does not. */
    static char big[65537];
    memset(big, 'v', sizeof big);
    big[0] = 'a';
    big[1] = '=';
    form_limits_t wide = FORM_LIMITS_DEFAULT;
    wide.max_value = sizeof big;
    assert_int_equal(form_parse(&f, big, 65536, &wide, err, sizeof err), 0);
    assert_int_equal(f.pairs[0].value_len, 65534);
    form_free(&f);
    assert_int_equal(form_parse(&f, big, 65537, &wide, err, sizeof err), -1);
    form_free(&f);
}

static void test_error_text_has_no_input(void **state)
{
    (void)state;
    form_pairs_t f;
    char err[256] = "";
    assert_int_equal(parse(&f, "From=%2B15551234567&Body=secret%zzwords", NULL, err, sizeof err),
                     -1);
    assert_null(strstr(err, "secret"));
    assert_null(strstr(err, "15551234567"));
    assert_non_null(strstr(err, "pair 2"));
    form_free(&f);
    /* NULL err is allowed. */
    assert_int_equal(parse(&f, "a=%zz", NULL, NULL, 0), -1);
    form_free(&f);
}

static void test_status_callback_body(void **state)
{
    (void)state;
    form_pairs_t f;
    char err[128];
    assert_int_equal(parse(&f,
                           "AccountSid=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx&ApiVersion=2010-04-01&"
                           "ErrorCode=30003&From=%2B15017250604&MessageSid="
                           "SM1342fe1b2c904d1ab04f0fc7a58abca9&MessageStatus=undelivered&SmsSid="
                           "SM1342fe1b2c904d1ab04f0fc7a58abca9&SmsStatus=undelivered&To=%"
                           "2B15558675310",
                           NULL, err, sizeof err),
                     0);
    assert_int_equal(f.count, 9);
    assert_string_equal(form_get(&f, "MessageStatus"), "undelivered");
    assert_string_equal(form_get(&f, "ErrorCode"), "30003");
    assert_string_equal(form_get(&f, "To"), "+15558675310");
    form_free(&f);
}

/* Random bodies over the characters that matter: under ASan this checks the
 * arena bound, and every success must give NUL-free, consistent pairs. */
static void test_random_bodies(void **state)
{
    (void)state;
    static const char alphabet[] = "a=&%+0Fz\xc3\xa9";
    uint32_t seed = 12345;
    char body[64];
    int ok_count = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % sizeof body;
        for (; n < len; n++) {
            seed = seed * 1103515245u + 12345u;
            body[n] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        form_pairs_t f;
        char err[128];
        if (form_parse(&f, body, len, NULL, err, sizeof err) == 0) {
            ok_count++;
            for (size_t i = 0; i < f.count; i++) {
                assert_int_equal(strlen(f.pairs[i].key), f.pairs[i].key_len);
                assert_int_equal(strlen(f.pairs[i].value), f.pairs[i].value_len);
                assert_true(f.pairs[i].key_len + f.pairs[i].value_len <= len);
            }
        } else {
            assert_int_equal(f.count, 0);
        }
        form_free(&f);
    }
    /* Both outcomes must occur, or the loop tested nothing. */
    assert_true(ok_count > 100);
    assert_true(ok_count < 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_body),
        cmocka_unit_test(test_blank_values_and_keys),
        cmocka_unit_test(test_plus_and_percent),
        cmocka_unit_test(test_invalid_escapes_refused),
        cmocka_unit_test(test_nul_refused),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_duplicates_kept_in_order),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error_text_has_no_input),
        cmocka_unit_test(test_status_callback_body),
        cmocka_unit_test(test_random_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
