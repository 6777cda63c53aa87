/* The runner: jobs run on its thread, a job past its deadline is left to the
 * thread (which frees it and its state when it returns), and the caller goes
 * on with a new runner at once. */
#include "policy/runner.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

typedef struct job {
    int ms;     /* how long the job takes */
    int result; /* set by the runner */
} job_t;

static atomic_int states_freed, jobs_freed;

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void run(void *state, void *jp)
{
    int *calls = state;
    job_t *j = jp;
    sleep_ms(j->ms);
    j->result = ++*calls;
}

static void free_state(void *state)
{
    free(state);
    atomic_fetch_add(&states_freed, 1);
}

static void free_job(void *jp)
{
    free(jp);
    atomic_fetch_add(&jobs_freed, 1);
}

static const prn_ops_t ops = {.run = run, .free_state = free_state, .free_job = free_job};

static prn_t *new_runner(void)
{
    int *calls = calloc(1, sizeof *calls);
    assert_non_null(calls);
    prn_t *r = prn_new(&ops, calls);
    assert_non_null(r);
    return r;
}

static void test_jobs_run_in_order(void **state)
{
    (void)state;
    prn_t *r = new_runner();
    job_t j = {.ms = 0};
    for (int i = 1; i <= 100; i++) {
        assert_int_equal(prn_call(r, &j, 5000), PRN_DONE);
        assert_int_equal(j.result, i); /* the state lives on between jobs */
    }
    int before = atomic_load(&states_freed);
    prn_free(r);
    assert_int_equal(atomic_load(&states_freed), before + 1);
}

/* A job that outlives its deadline: the caller is back at the deadline,
 * whatever the job does, and the thread frees the job and the state once it
 * returns. */
static void test_late_job_is_left_behind(void **state)
{
    (void)state;
    prn_t *r = new_runner();
    job_t *slow = calloc(1, sizeof *slow);
    assert_non_null(slow);
    slow->ms = 1500;
    long left = prn_abandoned_total();
    int jobs = atomic_load(&jobs_freed), states = atomic_load(&states_freed);
    double t0 = now_ms();
    assert_int_equal(prn_call(r, slow, 100), PRN_LATE);
    double waited = now_ms() - t0;
    assert_true(waited >= 99.0 && waited < 1400.0);
    assert_int_equal(prn_abandoned_total(), left + 1);
    assert_true(prn_stuck_now() >= 1);

    /* A new runner answers at once while the old one is still stuck. */
    prn_t *fresh = new_runner();
    job_t quick = {.ms = 0};
    assert_int_equal(prn_call(fresh, &quick, 5000), PRN_DONE);
    assert_int_equal(quick.result, 1);
    prn_free(fresh);

    /* The stuck one cleans up after itself when its job returns. */
    double until = now_ms() + 10000.0;
    while (atomic_load(&jobs_freed) == jobs && now_ms() < until)
        sleep_ms(10);
    assert_int_equal(atomic_load(&jobs_freed), jobs + 1);
    while (atomic_load(&states_freed) < states + 2 && now_ms() < until)
        sleep_ms(10);
    assert_int_equal(atomic_load(&states_freed), states + 2); /* fresh's and the stuck one's */
    assert_int_equal(prn_stuck_now(), 0);
}

/* A job that finishes just before its deadline is done, not late. */
static void test_job_within_deadline(void **state)
{
    (void)state;
    prn_t *r = new_runner();
    job_t j = {.ms = 20};
    assert_int_equal(prn_call(r, &j, 5000), PRN_DONE);
    assert_int_equal(j.result, 1);
    prn_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_run_in_order),
        cmocka_unit_test(test_late_job_is_left_behind),
        cmocka_unit_test(test_job_within_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
