/* Workflow callbacks: the signature a receiver recomputes, which answers are
 * retried, and the retry schedule. */
#include "engine/callbacks.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_sign_vectors(void **state)
{
    (void)state;
    char sig[72];
    /* Expected values computed independently: HMAC-SHA256(key, "ts.body"). */
    const char *body = "{\"a\":1}";
    assert_int_equal(cb_sign("whsec-test-key", 1700000000LL, body, strlen(body), sig), 0);
    assert_string_equal(sig,
                        "sha256=9a214c6d63b230a79e500518445176f01ae5eb75b3e0769f80d7adc4943415f3");
    assert_int_equal(cb_sign("k", 0, "", 0, sig), 0);
    assert_string_equal(sig,
                        "sha256=6b4a4b8b3c40f1e8f53a3d36682e5f99f7ad2ac1df1c93dfe336f329167641e7");
}

static void test_sign_binds_every_part(void **state)
{
    (void)state;
    char a[72], b[72];
    const char *body = "{\"text\":\"hello\"}";
    assert_int_equal(cb_sign("secret-one", 1700000000LL, body, strlen(body), a), 0);
    assert_int_equal(cb_sign("secret-two", 1700000000LL, body, strlen(body), b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(cb_sign("secret-one", 1700000001LL, body, strlen(body), b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(cb_sign("secret-one", 1700000000LL, body, strlen(body) - 1, b), 0);
    assert_string_not_equal(a, b);
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(cb_classify(1, 200), CB_DELIVERED);
    assert_int_equal(cb_classify(1, 204), CB_DELIVERED);
    assert_int_equal(cb_classify(1, 299), CB_DELIVERED);
    assert_int_equal(cb_classify(0, 0), CB_RETRY);
    assert_int_equal(cb_classify(1, 500), CB_RETRY);
    assert_int_equal(cb_classify(1, 503), CB_RETRY);
    assert_int_equal(cb_classify(1, 408), CB_RETRY);
    assert_int_equal(cb_classify(1, 429), CB_RETRY);
    assert_int_equal(cb_classify(1, 400), CB_FAILED);
    assert_int_equal(cb_classify(1, 401), CB_FAILED);
    assert_int_equal(cb_classify(1, 404), CB_FAILED);
    assert_int_equal(cb_classify(1, 301), CB_FAILED);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(cb_backoff(1, 0), 10);
    assert_int_equal(cb_backoff(2, 0), 60);
    assert_int_equal(cb_backoff(3, 0), 300);
    assert_int_equal(cb_backoff(4, 0), 1800);
    assert_int_equal(cb_backoff(9, 0), 1800);
    assert_int_equal(cb_backoff(0, 0), 10);
    assert_int_equal(cb_backoff(3, 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_vectors),
        cmocka_unit_test(test_sign_binds_every_part),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
