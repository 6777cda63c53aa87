/* purge_job: the retention purge of `crier serve` (store/purge.h says what
 * goes).
 *
 * One thread runs a purge PURGE_JOB_FIRST_S seconds after start-up (or
 * CRIER_PURGE_INTERVAL_S after it, when that is shorter), then every
 * CRIER_PURGE_INTERVAL_S seconds (a day by default; 0 starts no thread).
 * Each run connects, purges in batches of PURGE_BATCH_DEFAULT rows under
 * the purge's advisory lock, logs what it deleted, records it for
 * /metrics, and disconnects: a daily job holds no connection in between.
 * While another process (another serve, or `crier purge`) holds the lock,
 * the run is skipped and the next one comes an interval later. A stop
 * ends the run after its current batch. */
#ifndef CRIER_PURGE_JOB_H
#define CRIER_PURGE_JOB_H

#include "app.h"

#include <stddef.h>

/* The delay before the first run: late enough to stay out of the way of
 * a start-up (migrations, a rush of queued work), early enough that a
 * process restarted every day still purges. */
#define PURGE_JOB_FIRST_S 300

typedef struct purge_job purge_job_t;

/* Starts the thread; with CRIER_PURGE_INTERVAL_S 0 nothing is started and
 * the answer is a job that does nothing. Returns NULL with the reason in
 * err. */
purge_job_t *purge_job_start(app_t *app, char *err, size_t errlen);
/* Ends the run in progress after its batch and joins the thread. NULL is
 * ok. */
void purge_job_stop(purge_job_t *j);

#endif
