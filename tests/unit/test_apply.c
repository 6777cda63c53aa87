/* policy/apply: what a decision or a failed attempt comes to, the part the
 * engine and the simulator share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy/apply.h"

#include <stdio.h>
#include <string.h>

static void test_chain_parse(void **state)
{
    (void)state;
    apply_chain_t c;
    apply_chain_parse("[\"sms\",\"email\"]", &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.list[0], "sms");
    assert_string_equal(c.list[1], "email");
    apply_chain_parse("not json", &c);
    assert_int_equal(c.n, 0);
    apply_chain_parse(NULL, &c);
    assert_int_equal(c.n, 0);
    apply_chain_parse("[\"a-channel-name-too-long\",7,\"sms\",\"email\",\"whatsapp\"]", &c);
    assert_int_equal(c.n, 3); /* the odd ones dropped, at most three kept */
    assert_string_equal(c.list[0], "sms");
}

static void test_retry_takes_the_providers_wait_as_a_floor(void **state)
{
    (void)state;
    apply_chain_t c;
    apply_chain_parse("[]", &c);
    policy_failure_t f = {.action = POLICY_RETRY, .retry_after = 3};
    apply_step_t st;
    apply_failure(&f, 30, &c, 1000.0, &st);
    assert_int_equal(st.action, POLICY_RETRY);
    assert_true(st.at == 1030.0);
    apply_failure(&f, -1, &c, 1000.0, &st);
    assert_true(st.at == 1003.0);
    f.retry_after = 60;
    apply_failure(&f, 30, &c, 1000.0, &st);
    assert_true(st.at == 1060.0);
}

static void test_move_leaves_the_rest_of_the_chain(void **state)
{
    (void)state;
    apply_chain_t c;
    apply_chain_parse("[\"sms\",\"email\"]", &c);
    policy_failure_t f = {.action = POLICY_NEXT_CHANNEL};
    snprintf(f.next_channel, sizeof f.next_channel, "email");
    apply_step_t st;
    apply_failure(&f, -1, &c, 50.0, &st);
    assert_int_equal(st.action, POLICY_NEXT_CHANNEL);
    assert_string_equal(st.channel, "email");
    assert_string_equal(st.fallback_json, "[\"sms\"]");
    assert_true(st.at == 50.0);
    f.action = POLICY_FAIL;
    apply_failure(&f, -1, &c, 50.0, &st);
    assert_int_equal(st.action, POLICY_FAIL);
}

static void test_skip_moves_to_the_first_left(void **state)
{
    (void)state;
    apply_chain_t c;
    apply_chain_parse("[\"email\"]", &c);
    policy_failure_t f;
    apply_step_t st;
    apply_skip("opt_out", &c, 7.0, &f, &st);
    assert_int_equal(st.action, POLICY_NEXT_CHANNEL);
    assert_string_equal(st.channel, "email");
    assert_string_equal(st.fallback_json, "[]");
    assert_string_equal(f.reason, "opt_out");
    apply_chain_parse("[]", &c);
    apply_skip("opt_out", &c, 7.0, &f, &st);
    assert_int_equal(st.action, POLICY_FAIL);
    assert_int_equal(f.action, POLICY_FAIL);
}

static void test_batch_guard(void **state)
{
    (void)state;
    policy_decision_t d;
    memset(&d, 0, sizeof d);
    snprintf(d.primary, sizeof d.primary, "email");
    snprintf(d.status, sizeof d.status, "pending");
    snprintf(d.batch_key, sizeof d.batch_key, "low:2026-03-09");
    assert_int_equal(apply_batch_guard(&d, 0), 1);
    assert_int_equal(apply_batch_guard(&d, 1), 0); /* an attachment goes alone */
    assert_string_equal(d.batch_key, "");
    snprintf(d.batch_key, sizeof d.batch_key, "low:2026-03-09");
    snprintf(d.primary, sizeof d.primary, "sms");
    assert_int_equal(apply_batch_guard(&d, 0), 0); /* a digest is an email */
}

static void test_digest_due(void **state)
{
    (void)state;
    double due = 0;
    assert_int_equal(apply_digest_due(1000.0, 300, 1, 3, 500.0, &due), 0);
    assert_true(due == 1300.0);
    assert_int_equal(apply_digest_due(1000.0, 300, 3, 3, 500.0, &due), 1);
    assert_true(due == 1000.0); /* full: at its first member's time ... */
    assert_int_equal(apply_digest_due(1000.0, 300, 3, 3, 2000.0, &due), 1);
    assert_true(due == 2000.0); /* ... or now, when that has passed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_parse),
        cmocka_unit_test(test_retry_takes_the_providers_wait_as_a_floor),
        cmocka_unit_test(test_move_leaves_the_rest_of_the_chain),
        cmocka_unit_test(test_skip_moves_to_the_first_left),
        cmocka_unit_test(test_batch_guard),
        cmocka_unit_test(test_digest_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
