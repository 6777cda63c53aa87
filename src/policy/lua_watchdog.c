#include "policy/lua_watchdog.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>

/* After arming an overrun call, the watchdog checks again this often: the
 * hook may have been armed on a thread that was about to switch to a
 * coroutine, which then runs unhooked until armed in turn. */
#define LHW_RETRY_NS (2L * 1000L * 1000L)
/* Its own stack: it calls lua_sethook and the pthread functions only. */
#define LHW_STACK_BYTES (256u * 1024u)

static void lhw_after(struct timespec *t, long ns)
{
    if (clock_gettime(CLOCK_MONOTONIC, t) != 0) {
        t->tv_sec = 0;
        t->tv_nsec = 0;
    }
    long long sum = (long long)t->tv_nsec + ns;
    t->tv_sec += (time_t)(sum / 1000000000LL);
    t->tv_nsec = (long)(sum % 1000000000LL);
}

static int lhw_reached(const struct timespec *deadline)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 1; /* no clock: stopping is the safe answer */
    if (now.tv_sec != deadline->tv_sec)
        return now.tv_sec > deadline->tv_sec;
    return now.tv_nsec >= deadline->tv_nsec;
}

/* The loop, with mu held except while waiting. Waits for the running
 * entry's deadline; if that entry is still running then, arms the hook on
 * its thread and checks again LHW_RETRY_NS later. After a whole period
 * without any entry it waits idle, and the next lhw_enter wakes it: a busy
 * worker costs the watchdog one wake-up per period, not one per call. */
static void *lhw_main(void *arg)
{
    lhw_t *w = arg;
    unsigned long long seen = 0;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec until;
        if (w->in_call) {
            if (lhw_reached(&w->deadline)) {
                lua_sethook(w->cur, w->hook, LUA_MASKCOUNT, 1);
                lhw_after(&until, LHW_RETRY_NS);
            } else {
                until = w->deadline;
            }
        } else if (w->entries != seen) {
            seen = w->entries;
            lhw_after(&until, (long)w->period_ms * 1000000L);
        } else {
            w->idle = 1;
            while (!w->stop && w->idle)
                pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        int rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
        if (rc != 0 && rc != ETIMEDOUT && rc != EINTR)
            break; /* cannot happen with valid arguments; never spin */
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int lhw_start(lhw_t *w, lua_Hook hook, unsigned period_ms)
{
    w->started = 0;
    w->stop = 0;
    w->idle = 0;
    w->in_call = 0;
    w->entries = 0;
    w->cur = NULL;
    w->hook = hook;
    w->period_ms = period_ms ? period_ms : 1;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        pthread_cond_destroy(&w->cv);
        return -1;
    }
    pthread_attr_t ta;
    rc = pthread_attr_init(&ta);
    if (rc == 0) {
        size_t stack = LHW_STACK_BYTES < PTHREAD_STACK_MIN ? PTHREAD_STACK_MIN : LHW_STACK_BYTES;
        (void)pthread_attr_setstacksize(&ta, stack); /* the default is fine too */
        rc = pthread_create(&w->thread, &ta, lhw_main, w);
        pthread_attr_destroy(&ta);
    }
    if (rc != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        return -1;
    }
    w->started = 1;
    return 0;
}

void lhw_stop(lhw_t *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->started = 0;
}

void lhw_enter(lhw_t *w, lua_State *L, const struct timespec *deadline)
{
    pthread_mutex_lock(&w->mu);
    w->deadline = *deadline;
    w->cur = L;
    w->in_call = 1;
    w->entries++;
    if (w->idle) {
        w->idle = 0;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

void lhw_leave(lhw_t *w)
{
    pthread_mutex_lock(&w->mu);
    w->in_call = 0;
    w->cur = NULL;
    pthread_mutex_unlock(&w->mu);
}

lua_State *lhw_switch(lhw_t *w, lua_State *to)
{
    pthread_mutex_lock(&w->mu);
    lua_State *from = w->cur;
    w->cur = to;
    pthread_mutex_unlock(&w->mu);
    return from;
}
