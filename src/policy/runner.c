#include "policy/runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct prn {
    const prn_ops_t *ops; /* borrowed */
    void *state;          /* owned; touched by the runner thread only */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a job posted, a job done, quit */
    void *job;         /* guarded by mu: the job posted or running, NULL when idle */
    int done;          /* guarded by mu: the last job posted has finished */
    int quit;          /* guarded by mu */
    int abandoned;     /* guarded by mu: the caller left; the thread frees all */
};

static atomic_long prn_left_total;
static atomic_long prn_stuck;

static void prn_destroy(prn_t *r)
{
    if (r->ops->free_state)
        r->ops->free_state(r->state);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void *prn_main(void *arg)
{
    prn_t *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->job && !r->quit)
            pthread_cond_wait(&r->cv, &r->mu);
        if (!r->job)
            break; /* quit */
        void *job = r->job;
        pthread_mutex_unlock(&r->mu);
        r->ops->run(r->state, job);
        pthread_mutex_lock(&r->mu);
        r->job = NULL;
        r->done = 1;
        if (r->abandoned) {
            /* Nobody waits any more and nobody holds r: the thread is
             * detached, so it cleans up after itself. */
            pthread_mutex_unlock(&r->mu);
            if (r->ops->free_job)
                r->ops->free_job(job);
            atomic_fetch_sub(&prn_stuck, 1);
            prn_destroy(r);
            return NULL;
        }
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

prn_t *prn_new(const prn_ops_t *ops, void *state)
{
    prn_t *r = calloc(1, sizeof *r);
    if (!r) {
        if (ops->free_state)
            ops->free_state(state);
        return NULL;
    }
    r->ops = ops;
    r->state = state;
    pthread_condattr_t ca;
    int ok = pthread_condattr_init(&ca) == 0;
    /* deadlines are measured on the monotonic clock, immune to time steps */
    ok = ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
    ok = ok && pthread_cond_init(&r->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok) {
        if (ops->free_state)
            ops->free_state(state);
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_create(&r->th, NULL, prn_main, r) != 0) {
        prn_destroy(r);
        return NULL;
    }
    return r;
}

int prn_call(prn_t *r, void *job, unsigned timeout_ms)
{
    struct timespec dl;
    if (clock_gettime(CLOCK_MONOTONIC, &dl) != 0)
        return PRN_ERR;
    long long ns = (long long)dl.tv_nsec + (long long)(timeout_ms % 1000u) * 1000000LL;
    dl.tv_sec += (time_t)(timeout_ms / 1000u) + (time_t)(ns / 1000000000LL);
    dl.tv_nsec = (long)(ns % 1000000000LL);

    pthread_mutex_lock(&r->mu);
    if (r->job || r->quit || r->abandoned) {
        pthread_mutex_unlock(&r->mu);
        return PRN_ERR;
    }
    r->job = job;
    r->done = 0;
    pthread_cond_broadcast(&r->cv);
    while (!r->done) {
        int rc = pthread_cond_timedwait(&r->cv, &r->mu, &dl);
        if (rc == ETIMEDOUT && !r->done) {
            r->abandoned = 1;
            atomic_fetch_add(&prn_left_total, 1);
            atomic_fetch_add(&prn_stuck, 1);
            /* Detached while r is locked: the thread cannot have freed it. */
            pthread_detach(r->th);
            pthread_mutex_unlock(&r->mu);
            return PRN_LATE;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return PRN_DONE;
}

void prn_free(prn_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->quit = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    prn_destroy(r);
}

long prn_abandoned_total(void)
{
    return atomic_load(&prn_left_total);
}

long prn_stuck_now(void)
{
    return atomic_load(&prn_stuck);
}
