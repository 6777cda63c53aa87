/* circuit: the per-provider breaker, driven with explicit clock values so
 * every transition is exact and nothing sleeps. */
#include "circuit/circuit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define IVL 1000 /* probe interval in ms */

/* Opens the circuit of p at time t and checks that this report opened it. */
static void open_at(circ_t *cb, circ_provider_t p, long long t)
{
    assert_int_equal(circ_report(cb, p, 0, 1, ERRC_AUTH_FAILURE, t), 1);
    assert_int_equal(circ_is_open(cb, p), 1);
}

static void test_closed_allows(void **state)
{
    (void)state;
    circ_t *cb = circ_new(IVL);
    assert_non_null(cb);
    for (int p = 0; p < CIRC_N; p++) {
        assert_int_equal(circ_is_open(cb, (circ_provider_t)p), 0);
        assert_int_equal(circ_check(cb, (circ_provider_t)p, 0), CIRC_ALLOW);
        assert_int_equal(circ_check(cb, (circ_provider_t)p, 123456789), CIRC_ALLOW);
    }
    circ_free(cb);
}

static void test_non_auth_failures_do_not_open(void **state)
{
    (void)state;
    circ_t *cb = circ_new(IVL);
    assert_non_null(cb);
    const errc_t cats[] = {ERRC_NONE, ERRC_TRANSIENT, ERRC_PERMANENT, ERRC_RATE_LIMIT,
                           ERRC_INVALID_INPUT};
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
        assert_int_equal(circ_report(cb, CIRC_TWILIO, 0, 1, cats[i], 10), 0);
        assert_int_equal(circ_report(cb, CIRC_TWILIO, 0, 0, cats[i], 10), 0);
    }
    /* An auth failure with no answer cannot come from the provider. */
    assert_int_equal(circ_report(cb, CIRC_TWILIO, 0, 0, ERRC_AUTH_FAILURE, 10), 0);
    assert_int_equal(circ_is_open(cb, CIRC_TWILIO), 0);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, 11), CIRC_ALLOW);
    circ_free(cb);
}

static void test_auth_failure_opens_once(void **state)
{
    (void)state;
    circ_t *cb = circ_new(IVL);
    assert_non_null(cb);
    open_at(cb, CIRC_SMTP, 100);
    /* Sends already in flight get the same refusal: no second alarm. */
    assert_int_equal(circ_report(cb, CIRC_SMTP, 0, 1, ERRC_AUTH_FAILURE, 101), 0);
    assert_int_equal(circ_report(cb, CIRC_SMTP, 0, 1, ERRC_AUTH_FAILURE, 150), 0);
    assert_int_equal(circ_is_open(cb, CIRC_SMTP), 1);
    /* Those late reports did not push the probe back. */
    assert_int_equal(circ_check(cb, CIRC_SMTP, 100 + IVL), CIRC_PROBE);
    circ_free(cb);
}

static void test_refused_until_interval_then_one_probe(void **state)
{
    (void)state;
    circ_t *cb = circ_new(IVL);
    assert_non_null(cb);
    open_at(cb, CIRC_TWILIO, 0);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, 0), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, IVL / 2), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, IVL - 1), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, IVL), CIRC_PROBE);
    /* The probe stands until reported: everyone else is refused meanwhile,
     * at the same time and later. */
    assert_int_equal(circ_check(cb, CIRC_TWILIO, IVL), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, 5 * IVL), CIRC_REFUSE);
    assert_int_equal(circ_is_open(cb, CIRC_TWILIO), 1);
    circ_free(cb);
}

static void test_probe_auth_failure_reopens(void **state)
{
    (void)state;
    circ_t *cb = circ_new(IVL);
    assert_non_null(cb);
    open_at(cb, CIRC_WHATSAPP, 0);
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, 1500), CIRC_PROBE);
    assert_int_equal(circ_report(cb, CIRC_WHATSAPP, 1, 1, ERRC_AUTH_FAILURE, 1600), 0);
    assert_int_equal(circ_is_open(cb, CIRC_WHATSAPP), 1);
    /* The new interval counts from the probe's report. */
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, 1600), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, 1600 + IVL - 1), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, 1600 + IVL), CIRC_PROBE);
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, 1600 + IVL), CIRC_REFUSE);
    circ_free(cb);
}

static void test_probe_without_verdict_keeps_open(void **state)
{
    (void)state;
    circ_t *cb = circ_new(IVL);
    assert_non_null(cb);
    open_at(cb, CIRC_SMTP, 0);

    /* A transient answer says nothing about the credentials. */
    assert_int_equal(circ_check(cb, CIRC_SMTP, IVL), CIRC_PROBE);
    assert_int_equal(circ_report(cb, CIRC_SMTP, 1, 1, ERRC_TRANSIENT, IVL + 10), 0);
    assert_int_equal(circ_is_open(cb, CIRC_SMTP), 1);
    assert_int_equal(circ_check(cb, CIRC_SMTP, 2 * IVL + 9), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_SMTP, 2 * IVL + 10), CIRC_PROBE);

    /* Nor does no answer at all, whatever category the caller derived. */
    assert_int_equal(circ_report(cb, CIRC_SMTP, 1, 0, ERRC_TRANSIENT, 2 * IVL + 20), 0);
    assert_int_equal(circ_check(cb, CIRC_SMTP, 3 * IVL + 19), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_SMTP, 3 * IVL + 20), CIRC_PROBE);
    assert_int_equal(circ_report(cb, CIRC_SMTP, 1, 0, ERRC_NONE, 3 * IVL + 30), 0);
    assert_int_equal(circ_is_open(cb, CIRC_SMTP), 1);
    assert_int_equal(circ_check(cb, CIRC_SMTP, 4 * IVL + 29), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_SMTP, 4 * IVL + 30), CIRC_PROBE);
    circ_free(cb);
}

static void test_probe_answer_closes(void **state)
{
    (void)state;
    /* Every answer other than auth failure or transient shows the provider
     * accepted our credentials. */
    const errc_t cats[] = {ERRC_NONE, ERRC_PERMANENT, ERRC_RATE_LIMIT, ERRC_INVALID_INPUT};
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
        circ_t *cb = circ_new(IVL);
        assert_non_null(cb);
        open_at(cb, CIRC_TWILIO, 0);
        assert_int_equal(circ_check(cb, CIRC_TWILIO, IVL), CIRC_PROBE);
        assert_int_equal(circ_report(cb, CIRC_TWILIO, 1, 1, cats[i], IVL + 5), 2);
        assert_int_equal(circ_is_open(cb, CIRC_TWILIO), 0);
        assert_int_equal(circ_check(cb, CIRC_TWILIO, IVL + 5), CIRC_ALLOW);
        assert_int_equal(circ_check(cb, CIRC_TWILIO, IVL + 6), CIRC_ALLOW);
        /* Closed again means a new refusal opens it again, with an alarm. */
        assert_int_equal(circ_report(cb, CIRC_TWILIO, 0, 1, ERRC_AUTH_FAILURE, IVL + 7), 1);
        assert_int_equal(circ_check(cb, CIRC_TWILIO, IVL + 8), CIRC_REFUSE);
        assert_int_equal(circ_check(cb, CIRC_TWILIO, 2 * IVL + 7), CIRC_PROBE);
        circ_free(cb);
    }
}

static void test_non_probe_success_does_not_close(void **state)
{
    (void)state;
    circ_t *cb = circ_new(IVL);
    assert_non_null(cb);
    open_at(cb, CIRC_WHATSAPP, 0);
    /* A send allowed just before the circuit opened succeeds late. */
    assert_int_equal(circ_report(cb, CIRC_WHATSAPP, 0, 1, ERRC_NONE, 5), 0);
    assert_int_equal(circ_report(cb, CIRC_WHATSAPP, 0, 1, ERRC_PERMANENT, 6), 0);
    assert_int_equal(circ_is_open(cb, CIRC_WHATSAPP), 1);
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, 7), CIRC_REFUSE);
    /* Nor while a probe is out: only the probe's own report decides. */
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, IVL), CIRC_PROBE);
    assert_int_equal(circ_report(cb, CIRC_WHATSAPP, 0, 1, ERRC_NONE, IVL + 1), 0);
    assert_int_equal(circ_is_open(cb, CIRC_WHATSAPP), 1);
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, IVL + 2), CIRC_REFUSE);
    assert_int_equal(circ_report(cb, CIRC_WHATSAPP, 1, 1, ERRC_NONE, IVL + 3), 2);
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, IVL + 4), CIRC_ALLOW);
    circ_free(cb);
}

static void test_providers_independent(void **state)
{
    (void)state;
    circ_t *cb = circ_new(IVL);
    assert_non_null(cb);
    open_at(cb, CIRC_TWILIO, 0);
    assert_int_equal(circ_is_open(cb, CIRC_WHATSAPP), 0);
    assert_int_equal(circ_is_open(cb, CIRC_SMTP), 0);
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, 1), CIRC_ALLOW);
    assert_int_equal(circ_check(cb, CIRC_SMTP, 1), CIRC_ALLOW);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, 1), CIRC_REFUSE);

    open_at(cb, CIRC_SMTP, 500);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, IVL), CIRC_PROBE);
    assert_int_equal(circ_check(cb, CIRC_SMTP, IVL), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_SMTP, IVL + 500), CIRC_PROBE);
    /* Closing one leaves the other open. */
    assert_int_equal(circ_report(cb, CIRC_TWILIO, 1, 1, ERRC_NONE, IVL + 600), 2);
    assert_int_equal(circ_is_open(cb, CIRC_TWILIO), 0);
    assert_int_equal(circ_is_open(cb, CIRC_SMTP), 1);
    assert_int_equal(circ_check(cb, CIRC_SMTP, IVL + 600), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_WHATSAPP, IVL + 600), CIRC_ALLOW);
    circ_free(cb);
}

static void test_edges(void **state)
{
    (void)state;
    circ_free(NULL);
    assert_string_equal(circ_provider_name(CIRC_TWILIO), "twilio");
    assert_string_equal(circ_provider_name(CIRC_WHATSAPP), "whatsapp");
    assert_string_equal(circ_provider_name(CIRC_SMTP), "smtp");
    assert_string_equal(circ_provider_name(CIRC_N), "unknown");
    assert_string_equal(circ_provider_name((circ_provider_t)-1), "unknown");

    /* An interval below 1 ms is raised to 1. */
    circ_t *cb = circ_new(0);
    assert_non_null(cb);
    open_at(cb, CIRC_SMTP, 50);
    assert_int_equal(circ_check(cb, CIRC_SMTP, 50), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_SMTP, 51), CIRC_PROBE);

    /* Providers outside the enum are neither guarded nor stored. */
    assert_int_equal(circ_report(cb, CIRC_N, 0, 1, ERRC_AUTH_FAILURE, 60), 0);
    assert_int_equal(circ_report(cb, (circ_provider_t)-1, 0, 1, ERRC_AUTH_FAILURE, 60), 0);
    assert_int_equal(circ_check(cb, CIRC_N, 61), CIRC_ALLOW);
    assert_int_equal(circ_check(cb, (circ_provider_t)-1, 61), CIRC_ALLOW);
    assert_int_equal(circ_is_open(cb, CIRC_N), 0);
    assert_int_equal(circ_is_open(cb, (circ_provider_t)-1), 0);
    circ_free(cb);

    cb = circ_new(-5);
    assert_non_null(cb);
    open_at(cb, CIRC_TWILIO, 0);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, 0), CIRC_REFUSE);
    assert_int_equal(circ_check(cb, CIRC_TWILIO, 1), CIRC_PROBE);
    circ_free(cb);
}

/* ---- threads ------------------------------------------------------------ */

#define TH_N      4
#define TH_ROUNDS 200 /* each round races one opening and one probe */
#define TH_ITER   50  /* checks per thread per round: 10000 per thread in all */

typedef struct {
    circ_t *cb;
    pthread_barrier_t bar;
    atomic_int opened[TH_ROUNDS]; /* reports that returned 1 */
    atomic_int probes[TH_ROUNDS]; /* checks that returned CIRC_PROBE */
    atomic_int closed[TH_ROUNDS]; /* reports that returned 2 */
    atomic_int bad;               /* any other answer the state did not allow */
} th_shared_t;

static long long th_start(int r)
{
    return (long long)r * 2 * IVL;
}

static void *th_hammer(void *arg)
{
    th_shared_t *sh = arg;
    for (int r = 0; r < TH_ROUNDS; r++) {
        long long t = th_start(r);
        /* Every thread reports the same refusal at once, as sends in flight
         * when the credentials were revoked would: one alarm only. */
        pthread_barrier_wait(&sh->bar);
        for (int i = 0; i < TH_ITER; i++) {
            if (circ_report(sh->cb, CIRC_TWILIO, 0, 1, ERRC_AUTH_FAILURE, t) == 1)
                atomic_fetch_add(&sh->opened[r], 1);
            if (circ_check(sh->cb, CIRC_TWILIO, t) != CIRC_REFUSE)
                atomic_fetch_add(&sh->bad, 1);
            if (circ_check(sh->cb, CIRC_SMTP, t) != CIRC_ALLOW)
                atomic_fetch_add(&sh->bad, 1);
        }
        /* The probe is due and every thread asks for it while the winner's
         * probe is still out; late successes of other sends must not close
         * the circuit meanwhile. */
        pthread_barrier_wait(&sh->bar);
        int mine = 0;
        for (int i = 0; i < TH_ITER; i++) {
            circ_verdict_t v = circ_check(sh->cb, CIRC_TWILIO, t + IVL);
            if (v == CIRC_PROBE) {
                atomic_fetch_add(&sh->probes[r], 1);
                mine = 1;
            } else if (v != CIRC_REFUSE) {
                atomic_fetch_add(&sh->bad, 1);
            }
            if (circ_report(sh->cb, CIRC_TWILIO, 0, 1, ERRC_NONE, t + IVL) != 0)
                atomic_fetch_add(&sh->bad, 1);
        }
        /* Only once everyone has asked does the probe come back accepted. */
        pthread_barrier_wait(&sh->bar);
        if (mine && circ_report(sh->cb, CIRC_TWILIO, 1, 1, ERRC_NONE, t + IVL) == 2)
            atomic_fetch_add(&sh->closed[r], 1);
    }
    return NULL;
}

static void test_threads_one_opening_one_probe(void **state)
{
    (void)state;
    th_shared_t *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    sh->cb = circ_new(IVL);
    assert_non_null(sh->cb);
    assert_int_equal(pthread_barrier_init(&sh->bar, NULL, TH_N), 0);
    pthread_t th[TH_N];
    for (int i = 0; i < TH_N; i++)
        assert_int_equal(pthread_create(&th[i], NULL, th_hammer, sh), 0);
    for (int i = 0; i < TH_N; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&sh->bar);

    for (int r = 0; r < TH_ROUNDS; r++) {
        assert_int_equal(atomic_load(&sh->opened[r]), 1);
        assert_int_equal(atomic_load(&sh->probes[r]), 1);
        assert_int_equal(atomic_load(&sh->closed[r]), 1);
    }
    assert_int_equal(atomic_load(&sh->bad), 0);
    assert_int_equal(circ_is_open(sh->cb, CIRC_TWILIO), 0);
    assert_int_equal(circ_check(sh->cb, CIRC_TWILIO, th_start(TH_ROUNDS)), CIRC_ALLOW);
    circ_free(sh->cb);
    free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_allows),
        cmocka_unit_test(test_non_auth_failures_do_not_open),
        cmocka_unit_test(test_auth_failure_opens_once),
        cmocka_unit_test(test_refused_until_interval_then_one_probe),
        cmocka_unit_test(test_probe_auth_failure_reopens),
        cmocka_unit_test(test_probe_without_verdict_keeps_open),
        cmocka_unit_test(test_probe_answer_closes),
        cmocka_unit_test(test_non_probe_success_does_not_close),
        cmocka_unit_test(test_providers_independent),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_threads_one_opening_one_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
