#include "engine/purge_job.h"

#include "metrics/metrics.h"
#include "store/db.h"
#include "store/purge.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct purge_job {
    app_t *app; /* borrowed */
    pthread_t thread;
    int started;
    atomic_int stop;
};

/* Sleeps up to ms, waking early when asked to stop. */
static void purge_job_nap(purge_job_t *j, long long ms)
{
    while (ms > 0 && !atomic_load(&j->stop)) {
        long long step = ms < 100 ? ms : 100;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* One log line per table that lost rows, and the whole run's line. */
static void purge_job_log(const purge_counts_t *c, long long ms)
{
    char n[PURGE_TABLES_N][24], batches[24], took[24];
    for (int t = 0; t < PURGE_TABLES_N; t++) {
        snprintf(n[t], sizeof n[t], "%lld", c->rows[t]);
        metrics_purge_deleted(purge_table_name((purge_table_t)t), c->rows[t]);
    }
    metrics_purge_finished(time_now());
    snprintf(batches, sizeof batches, "%ld", c->batches);
    snprintf(took, sizeof took, "%lld", ms);
    log_info("purge", "purged", "before", c->horizon, "erased_before", c->erased_horizon,
             "communications", n[PURGE_COMMUNICATIONS], "delivery_events", n[PURGE_DELIVERY_EVENTS],
             "communication_attachments", n[PURGE_ATTACHMENTS], "workflow_callbacks",
             n[PURGE_CALLBACKS], "inbound_messages", n[PURGE_INBOUND], "unmatched_receipts",
             n[PURGE_UNMATCHED], "clients", n[PURGE_CLIENTS], "batches", batches, "duration_ms",
             took, NULL);
}

static void purge_job_once(purge_job_t *j)
{
    const cfg_t *cfg = j->app->cfg;
    char err[512];
    PGconn *conn = db_connect(cfg->database_url, err, sizeof err);
    if (!conn) {
        log_error("purge", "database_unreachable", "error", err, NULL);
        return;
    }
    purge_opts_t o = {
        .retention_days = cfg->retention_days,
        .batch = PURGE_BATCH_DEFAULT,
        .stop = &j->stop,
    };
    purge_counts_t done;
    long long started = time_mono_ms();
    int rc = purge_run(conn, &o, &done, err, sizeof err);
    PQfinish(conn);
    if (rc == PURGE_BUSY) {
        log_info("purge", "skipped", "reason", "another purge is running", NULL);
        return;
    }
    if (rc != PURGE_DONE) {
        /* what committed before the error stays deleted; the next run goes on */
        char batches[24];
        snprintf(batches, sizeof batches, "%ld", done.batches);
        log_error("purge", "failed", "error", err, "batches_done", batches, NULL);
        return;
    }
    if (atomic_load(&j->stop))
        log_info("purge", "stopped", "reason", "shutting down; the next run goes on", NULL);
    purge_job_log(&done, time_mono_ms() - started);
}

static void *purge_job_thread(void *arg)
{
    purge_job_t *j = arg;
    long long interval_ms = (long long)j->app->cfg->purge_interval_s * 1000;
    long long first_ms = (long long)PURGE_JOB_FIRST_S * 1000;
    purge_job_nap(j, first_ms < interval_ms ? first_ms : interval_ms);
    while (!atomic_load(&j->stop)) {
        long long started = time_mono_ms();
        purge_job_once(j);
        /* the period runs from start to start, so a long run does not
         * push every later one back */
        long long left = interval_ms - (time_mono_ms() - started);
        purge_job_nap(j, left > 0 ? left : 0);
    }
    return NULL;
}

purge_job_t *purge_job_start(app_t *app, char *err, size_t errlen)
{
    purge_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    j->app = app;
    atomic_init(&j->stop, 0);
    if (app->cfg->purge_interval_s <= 0) {
        log_info("purge", "disabled", "reason",
                 "CRIER_PURGE_INTERVAL_S is 0; run crier purge from a scheduler", NULL);
        return j;
    }
    if (pthread_create(&j->thread, NULL, purge_job_thread, j) != 0) {
        snprintf(err, errlen, "cannot start the purge thread");
        free(j);
        return NULL;
    }
    j->started = 1;
    return j;
}

void purge_job_stop(purge_job_t *j)
{
    if (!j)
        return;
    atomic_store(&j->stop, 1);
    if (j->started)
        pthread_join(j->thread, NULL);
    free(j);
}
