/* lua_watchdog: the thread that stops a Lua call which has overrun its
 * wall-time budget. Private to src/policy/ (lua_sandbox.c).
 *
 * A count hook on every call made the VM run every instruction through the
 * hook machinery, which cost more than the rules themselves. Instead, no
 * hook is set while a call is on time; one watchdog thread per state sleeps
 * until the running call's deadline and, only when the call is still
 * running then, arms a count hook of 1 on the Lua thread that runs it
 * (lua_sethook is the one Lua function made to be called asynchronously).
 * The hook, in the Lua thread, raises the time budget error.
 *
 * Every field is guarded by mu. The worker takes mu (uncontended: the
 * watchdog holds it only for a few instructions) at each entry and exit of
 * a call and around each coroutine switch, so the watchdog only ever hooks a
 * lua_State that is alive and running the call it timed. */
#ifndef CRIER_LUA_WATCHDOG_H
#define CRIER_LUA_WATCHDOG_H

#include <lua.h>

#include <pthread.h>
#include <time.h>

typedef struct lhw {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the watchdog from idle, or for the stop */
    pthread_t thread;
    int started;
    int stop;
    int idle;                   /* the watchdog waits for a call to start */
    int in_call;                /* a budgeted entry is running */
    unsigned long long entries; /* calls begun: activity seen by the watchdog */
    struct timespec deadline;   /* of the running entry */
    lua_State *cur;             /* the Lua thread running it (main or coroutine) */
    lua_Hook hook;
    unsigned period_ms; /* the time budget: how long a quiet watchdog waits */
} lhw_t;

/* Starts the watchdog thread; hook is what it arms on an overrun call.
 * Returns 0, or -1 when the thread cannot be started. */
int lhw_start(lhw_t *w, lua_Hook hook, unsigned period_ms);
/* Stops and joins it; a w that was never started is left alone. */
void lhw_stop(lhw_t *w);
/* A budgeted entry runs on L until deadline (CLOCK_MONOTONIC). */
void lhw_enter(lhw_t *w, lua_State *L, const struct timespec *deadline);
/* The entry has ended: the watchdog no longer touches its threads. */
void lhw_leave(lhw_t *w);
/* The entry now runs on the Lua thread to (a coroutine resumed, or the
 * resumer again); returns the thread it ran on before. */
lua_State *lhw_switch(lhw_t *w, lua_State *to);

#endif
