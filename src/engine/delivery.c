#include "engine/delivery.h"

#include "engine/email_job.h"
#include "queue/queue.h"
#include "store/db.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DELIVERY_MAX_BATCH 64

struct delivery {
    app_t *app; /* borrowed */
    int nworkers;
    pthread_t waker;
    pthread_t *workers;
    int started_workers;
    int waker_started;
    atomic_int stop;
    /* Wake-ups: the waker bumps gen on every NOTIFY or poll tick; an idle
     * worker sleeps until gen changes. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned long gen;
};

static void delivery_kick(delivery_t *d)
{
    pthread_mutex_lock(&d->lock);
    d->gen++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* Sleeps until the generation moves past seen, stop is set, or timeout. */
static void delivery_idle(delivery_t *d, unsigned long seen, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->lock);
    while (d->gen == seen && !atomic_load(&d->stop)) {
        if (pthread_cond_timedwait(&d->cond, &d->lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&d->lock);
}

/* Seconds to wait before retry number `attempt` (1-based), with +-20% jitter
 * so that messages failed together do not retry together. */
static double delivery_backoff(const cfg_t *cfg, int attempt)
{
    int i = attempt - 1;
    if (i >= cfg->retry_count)
        i = cfg->retry_count - 1;
    double base = i >= 0 ? cfg->retry_delays[i] : 60;
    unsigned r = 0;
    if (cry_random(&r, sizeof r) != 0)
        r = (unsigned)time(NULL);
    double jitter = 0.8 + 0.4 * ((double)(r % 10001) / 10000.0);
    return base * jitter;
}

static int delivery_is_retryable(errc_t c)
{
    return c == ERRC_TRANSIENT || c == ERRC_RATE_LIMIT;
}

typedef struct delivery_slot {
    queue_job_t job;
    email_outcome_t out;
} delivery_slot_t;

static void delivery_record(const cfg_t *cfg, delivery_slot_t *s, queue_result_t *r)
{
    const email_outcome_t *o = &s->out;
    memset(r, 0, sizeof *r);
    r->id = s->job.id;
    r->attempt = s->job.attempt;
    r->channel = s->job.channel;
    r->subject = o->subject[0] ? o->subject : NULL;
    r->provider_message_id = o->message_id[0] ? o->message_id : NULL;
    r->provider_code = o->code;
    r->detail_json = o->detail_json[0] ? o->detail_json : NULL;
    switch (o->status) {
    case EMAIL_SENT:
        r->outcome = QUEUE_SENT;
        return;
    case EMAIL_DELIVERED:
        r->outcome = QUEUE_DELIVERED;
        return;
    case EMAIL_FAILED:
        break;
    }
    r->error_category = errc_name(o->category);
    r->error_message = o->error;
    if (delivery_is_retryable(o->category) && s->job.attempt <= cfg->retry_count) {
        r->outcome = QUEUE_RETRY;
        r->retry_at = time_now() + delivery_backoff(cfg, s->job.attempt);
    } else {
        r->outcome = QUEUE_FAILED;
    }
}

/* Records outcomes, retrying while PostgreSQL is away: the messages were
 * sent, and forgetting that would send them again after the lease expires. */
static void delivery_complete(delivery_t *d, PGconn *conn, const queue_result_t *res, int n)
{
    char err[512];
    int applied = 0;
    for (int tries = 0;; tries++) {
        if (queue_complete(conn, res, n, &applied, err, sizeof err) == 0)
            break;
        log_error("delivery", "complete_failed", "error", err, NULL);
        if (atomic_load(&d->stop) && tries >= 5)
            return; /* the rescuer will retry these after the lease */
        sleep(1);
        db_ensure(conn);
    }
    if (applied < n) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", n - applied);
        snprintf(b, sizeof b, "%d", n);
        log_warn("delivery", "stale_completions", "stale", a, "of", b, NULL);
    }
}

static void *delivery_worker(void *arg)
{
    delivery_t *d = arg;
    app_t *app = d->app;
    const cfg_t *cfg = app->cfg;
    char err[512];
    PGconn *conn = NULL;
    email_sender_t *sender = email_sender_new(app);
    if (!sender) {
        log_kv(LOG_CRITICAL, "delivery", "sender_failed", "error",
               "cannot create the email sender (check mail_from and the SMTP settings)", NULL);
        return NULL;
    }
    int batch = cfg->claim_batch < DELIVERY_MAX_BATCH ? cfg->claim_batch : DELIVERY_MAX_BATCH;
    delivery_slot_t *slots = calloc((size_t)batch, sizeof *slots);
    queue_job_t *jobs = calloc((size_t)batch, sizeof *jobs);
    queue_result_t *res = calloc((size_t)batch, sizeof *res);
    if (!slots || !jobs || !res)
        goto out;

    while (!atomic_load(&d->stop)) {
        pthread_mutex_lock(&d->lock);
        unsigned long seen = d->gen;
        pthread_mutex_unlock(&d->lock);
        if (!conn || db_ensure(conn) != 0) {
            if (conn)
                PQfinish(conn);
            conn = db_connect(cfg->database_url, err, sizeof err);
            if (!conn) {
                delivery_idle(d, seen, 1000);
                continue;
            }
        }
        int n = 0;
        if (queue_claim(conn, batch, cfg->lease_seconds, jobs, &n, err, sizeof err) != 0) {
            log_error("delivery", "claim_failed", "error", err, NULL);
            delivery_idle(d, seen, 1000);
            continue;
        }
        if (n == 0) {
            delivery_idle(d, seen, cfg->poll_ms);
            continue;
        }
        for (int i = 0; i < n; i++) {
            slots[i].job = jobs[i];
            email_deliver(sender, conn, &slots[i].job, &slots[i].out);
            delivery_record(cfg, &slots[i], &res[i]);
            if (slots[i].out.status == EMAIL_FAILED)
                log_warn("delivery", "attempt_failed", "communication_id", slots[i].job.id,
                         "category", errc_name(slots[i].out.category), "error", slots[i].out.error,
                         NULL);
        }
        delivery_complete(d, conn, res, n);
        for (int i = 0; i < n; i++)
            queue_job_free(&slots[i].job);
    }
out:
    free(res);
    free(jobs);
    free(slots);
    email_sender_free(sender);
    if (conn)
        PQfinish(conn);
    return NULL;
}

/* The waker: turns NOTIFYs into worker wake-ups, rescues expired leases and
 * tracks whether PostgreSQL answers, for /readyz. */
static void *delivery_waker(void *arg)
{
    delivery_t *d = arg;
    app_t *app = d->app;
    const cfg_t *cfg = app->cfg;
    char err[512];
    PGconn *conn = NULL;
    long long last_rescue = 0;
    int max_attempts = cfg->retry_count + 1;

    while (!atomic_load(&d->stop)) {
        if (!conn) {
            conn = db_connect(cfg->database_url, err, sizeof err);
            if (!conn || queue_listen(conn, err, sizeof err) != 0) {
                if (atomic_exchange(&app->db_ready, 0))
                    log_error("delivery", "database_unreachable", "error", err, NULL);
                if (conn)
                    PQfinish(conn);
                conn = NULL;
                sleep(1);
                continue;
            }
            if (!atomic_exchange(&app->db_ready, 1))
                log_info("delivery", "database_reachable", NULL);
            delivery_kick(d); /* anything may have arrived while we were away */
        }
        int w = queue_wait(conn, cfg->poll_ms < 1000 ? cfg->poll_ms : 1000);
        if (w < 0) {
            PQfinish(conn);
            conn = NULL;
            continue;
        }
        delivery_kick(d);
        long long now = time_mono_ms();
        if (now - last_rescue >= 1000) {
            last_rescue = now;
            int rescued = 0;
            if (queue_rescue(conn, max_attempts, &rescued, err, sizeof err) != 0) {
                log_error("delivery", "rescue_failed", "error", err, NULL);
                if (db_conn_lost(conn)) {
                    atomic_store(&app->db_ready, 0);
                    PQfinish(conn);
                    conn = NULL;
                }
            } else if (rescued > 0) {
                char n[16];
                snprintf(n, sizeof n, "%d", rescued);
                log_warn("delivery", "leases_rescued", "count", n, NULL);
            }
        }
    }
    if (conn)
        PQfinish(conn);
    return NULL;
}

delivery_t *delivery_start(app_t *app, char *err, size_t errlen)
{
    delivery_t *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->app = app;
    d->nworkers = app->cfg->workers;
    atomic_init(&d->stop, 0);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->workers = calloc((size_t)(d->nworkers > 0 ? d->nworkers : 1), sizeof *d->workers);
    if (!d->workers) {
        snprintf(err, errlen, "out of memory");
        delivery_stop(d);
        return NULL;
    }
    if (pthread_create(&d->waker, NULL, delivery_waker, d) != 0) {
        snprintf(err, errlen, "cannot start the waker thread");
        delivery_stop(d);
        return NULL;
    }
    d->waker_started = 1;
    for (int i = 0; i < d->nworkers; i++) {
        if (pthread_create(&d->workers[i], NULL, delivery_worker, d) != 0) {
            snprintf(err, errlen, "cannot start worker thread %d", i);
            delivery_stop(d);
            return NULL;
        }
        d->started_workers++;
    }
    return d;
}

void delivery_stop(delivery_t *d)
{
    if (!d)
        return;
    atomic_store(&d->stop, 1);
    delivery_kick(d);
    for (int i = 0; i < d->started_workers; i++)
        pthread_join(d->workers[i], NULL);
    if (d->waker_started)
        pthread_join(d->waker, NULL);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d->workers);
    free(d);
}
