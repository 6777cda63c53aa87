#include "http/conn_guard.h"

#include "util/log.h"
#include "util/timefmt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Connections closed in one sweep that get a log line each; past this the
 * rest are counted in one line, so a flood cannot hold the sweeper in
 * logging while new deadlines pass. */
#define CG_LOG_BATCH 32

typedef enum {
    CG_REQUEST_LINE, /* opened, or answered: waiting for a request line */
    CG_HEADERS,      /* request line read, headers arriving */
    CG_BODY,         /* headers read, body arriving */
} cg_phase_t;

static const char *const cg_phase_names[] = {"request_line", "headers", "body"};

struct cg_conn {
    int fd; /* -1 while the slot is free */
    cg_phase_t phase;
    int armed;          /* the clock runs: a request is on its way */
    int swept;          /* shut down for being too slow */
    long long since_ms; /* when the clock started */
    long long due_ms;   /* since_ms + the limit */
};

struct cg {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC: wakes the sweeper to stop */
    pthread_t thread;
    int stop;
    long long limit_ms;
    int limit_s;
    size_t capacity;
    size_t high;  /* slots [high, capacity) have never been used: not swept */
    size_t nfree; /* free slot indexes on the stack */
    size_t *free; /* LIFO, so low slots are reused and high stays low */
    cg_conn_t *slots;
};

typedef struct cg_event {
    cg_phase_t phase;
    long long waited_ms;
} cg_event_t;

static void cg_log(const cg_event_t *ev, int limit_s)
{
    char waited[32], limit[16];
    snprintf(waited, sizeof waited, "%lld", ev->waited_ms);
    snprintf(limit, sizeof limit, "%d", limit_s);
    /* An idle keep-alive connection ends here too: nothing was sent, which
     * is not a sign of abuse. A request stuck half-way is. */
    log_kv(ev->phase == CG_REQUEST_LINE ? LOG_INFO : LOG_WARNING, "http", "request_too_slow",
           "phase", cg_phase_names[ev->phase], "waited_ms", waited, "limit_s", limit, NULL);
}

/* Shuts down every connection past its deadline; the caller holds g->mu.
 * Writes up to nev events and returns how many connections were shut down. */
static size_t cg_sweep(cg_t *g, long long now, cg_event_t *ev, size_t nev)
{
    size_t n = 0;
    for (size_t i = 0; i < g->high; i++) {
        cg_conn_t *t = &g->slots[i];
        if (t->fd < 0 || !t->armed || now < t->due_ms)
            continue;
        /* Under the lock the descriptor is still this connection's: the
         * server forgets it (cg_close) before libmicrohttpd closes it.
         * libmicrohttpd then reads end-of-file and closes the connection
         * itself. A failure (ENOTCONN) means the peer is gone already and
         * the connection is closing anyway. */
        (void)shutdown(t->fd, SHUT_RDWR);
        t->armed = 0;
        t->swept = 1;
        if (n < nev) {
            ev[n].phase = t->phase;
            ev[n].waited_ms = now - t->since_ms;
        }
        n++;
    }
    return n;
}

static void *cg_main(void *arg)
{
    cg_t *g = arg;
    cg_event_t ev[CG_LOG_BATCH];
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        long long ns = (long long)dl.tv_nsec + (long long)CG_POLL_MS * 1000000LL;
        dl.tv_sec += (time_t)(ns / 1000000000LL);
        dl.tv_nsec = (long)(ns % 1000000000LL);
        /* an early wake-up (signal or spurious) only sweeps sooner */
        (void)pthread_cond_timedwait(&g->cv, &g->mu, &dl);
        if (g->stop)
            break;
        size_t n = cg_sweep(g, time_mono_ms(), ev, CG_LOG_BATCH);
        if (n == 0)
            continue;
        /* log without the lock: stderr may be slow, the handlers must not */
        pthread_mutex_unlock(&g->mu);
        size_t logged = n < CG_LOG_BATCH ? n : CG_LOG_BATCH;
        for (size_t i = 0; i < logged; i++)
            cg_log(&ev[i], g->limit_s);
        if (n > logged) {
            char more[32];
            snprintf(more, sizeof more, "%zu", n - logged);
            log_warn("http", "requests_too_slow", "count", more, NULL);
        }
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

cg_t *cg_new(size_t capacity, int limit_s, char *err, size_t errlen)
{
    if (capacity == 0 || limit_s <= 0) {
        snprintf(err, errlen, "request guard: bad capacity or limit");
        return NULL;
    }
    cg_t *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->capacity = capacity;
    g->limit_s = limit_s;
    g->limit_ms = (long long)limit_s * 1000;
    g->slots = calloc(capacity, sizeof *g->slots);
    g->free = calloc(capacity, sizeof *g->free);
    if (!g->slots || !g->free) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* pushed high to low, so slot 0 is handed out first */
    for (size_t i = 0; i < capacity; i++) {
        g->slots[i].fd = -1;
        g->free[i] = capacity - 1 - i;
    }
    g->nfree = capacity;
    pthread_condattr_t ca;
    int ok = pthread_condattr_init(&ca) == 0;
    /* deadlines are on the monotonic clock, immune to time steps */
    ok = ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
    ok = ok && pthread_cond_init(&g->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok) {
        snprintf(err, errlen, "request guard: cannot create a condition variable");
        goto fail;
    }
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        pthread_cond_destroy(&g->cv);
        snprintf(err, errlen, "request guard: cannot create a mutex");
        goto fail;
    }
    int rc = pthread_create(&g->thread, NULL, cg_main, g);
    if (rc != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        snprintf(err, errlen, "request guard: cannot start its thread: %s", strerror(rc));
        goto fail;
    }
    return g;
fail:
    free(g->slots);
    free(g->free);
    free(g);
    return NULL;
}

void cg_free(cg_t *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->slots);
    free(g->free);
    free(g);
}

/* Starts t's clock; the caller holds g->mu. */
static void cg_arm(cg_t *g, cg_conn_t *t, cg_phase_t phase)
{
    t->phase = phase;
    t->since_ms = time_mono_ms();
    t->due_ms = t->since_ms + g->limit_ms;
    t->armed = 1;
}

cg_conn_t *cg_open(cg_t *g, int fd)
{
    if (!g || fd < 0)
        return NULL;
    pthread_mutex_lock(&g->mu);
    cg_conn_t *t = NULL;
    if (g->nfree > 0) {
        size_t i = g->free[--g->nfree];
        t = &g->slots[i];
        t->fd = fd;
        t->swept = 0;
        cg_arm(g, t, CG_REQUEST_LINE);
        if (i + 1 > g->high)
            g->high = i + 1;
    }
    pthread_mutex_unlock(&g->mu);
    if (!t) {
        /* The server never holds more connections than the guard has
         * slots, so this is a bug, not load; without a deadline the
         * connection would be open to the very abuse the guard stops. */
        (void)shutdown(fd, SHUT_RDWR);
        log_error("http", "request_deadlines_full", "note",
                  "connection refused: no request deadline slot", NULL);
    }
    return t;
}

void cg_close(cg_t *g, cg_conn_t *t)
{
    if (!g || !t)
        return;
    pthread_mutex_lock(&g->mu);
    t->fd = -1;
    t->armed = 0;
    g->free[g->nfree++] = (size_t)(t - g->slots);
    pthread_mutex_unlock(&g->mu);
}

void cg_request_line(cg_t *g, cg_conn_t *t)
{
    if (!g || !t)
        return;
    pthread_mutex_lock(&g->mu);
    if (!t->swept)
        cg_arm(g, t, CG_HEADERS);
    pthread_mutex_unlock(&g->mu);
}

int cg_headers(cg_t *g, cg_conn_t *t)
{
    if (!g || !t)
        return 0;
    pthread_mutex_lock(&g->mu);
    int swept = t->swept;
    t->phase = CG_BODY;
    pthread_mutex_unlock(&g->mu);
    return swept ? -1 : 0;
}

int cg_received(cg_t *g, cg_conn_t *t)
{
    if (!g || !t)
        return 0;
    pthread_mutex_lock(&g->mu);
    int swept = t->swept;
    t->armed = 0;
    pthread_mutex_unlock(&g->mu);
    return swept ? -1 : 0;
}

void cg_next(cg_t *g, cg_conn_t *t)
{
    if (!g || !t)
        return;
    pthread_mutex_lock(&g->mu);
    if (!t->swept)
        cg_arm(g, t, CG_REQUEST_LINE);
    pthread_mutex_unlock(&g->mu);
}
