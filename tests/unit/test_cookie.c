/* cookie: one value out of a Cookie header. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "http/cookie.h"

#include <string.h>

static void test_finds_the_named_cookie(void **state)
{
    (void)state;
    char v[32];
    assert_int_equal(http_cookie_get("a=1; crier_session=abc; b=2", "crier_session", v, sizeof v),
                     0);
    assert_string_equal(v, "abc");
    assert_int_equal(http_cookie_get("crier_session=x", "crier_session", v, sizeof v), 0);
    assert_string_equal(v, "x");
    /* the first of two, and spaces around pairs do not matter */
    assert_int_equal(
        http_cookie_get("  crier_session=one ;crier_session=two", "crier_session", v, sizeof v), 0);
    assert_string_equal(v, "one");
    assert_int_equal(http_cookie_get("s=", "s", v, sizeof v), 0);
    assert_string_equal(v, "");
}

static void test_a_name_is_matched_whole(void **state)
{
    (void)state;
    char v[32] = "unchanged";
    assert_int_equal(
        http_cookie_get("xcrier_session=1; crier_sessionx=2", "crier_session", v, sizeof v), -1);
    assert_int_equal(http_cookie_get("crier_session", "crier_session", v, sizeof v), -1);
    assert_int_equal(http_cookie_get("", "crier_session", v, sizeof v), -1);
    assert_int_equal(http_cookie_get(NULL, "crier_session", v, sizeof v), -1);
}

static void test_a_value_too_long_is_none(void **state)
{
    (void)state;
    char v[4];
    assert_int_equal(http_cookie_get("s=abcd", "s", v, sizeof v), -1);
    assert_int_equal(http_cookie_get("s=abc", "s", v, sizeof v), 0);
    assert_string_equal(v, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_the_named_cookie),
        cmocka_unit_test(test_a_name_is_matched_whole),
        cmocka_unit_test(test_a_value_too_long_is_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
