/* intake: the group-commit writer behind POST /v1/communications.
 *
 * HTTP threads validate a request, suspend its connection and submit it
 * here. A writer thread owning one PostgreSQL connection takes every request
 * queued so far (up to INTAKE_BATCH_MAX) and writes them all in ONE
 * transaction, so a single commit (one WAL flush) acknowledges the whole
 * batch. The batch is written set-based, a few statements for all of its
 * requests; a request that fails there is redone on a savepoint of its own,
 * so that it fails alone. Each request's answer is delivered only
 * after that commit returned: nothing is acknowledged that is not durable.
 * If the commit fails, every request of the batch is answered 503. */
#ifndef CRIER_INTAKE_H
#define CRIER_INTAKE_H

#include "api/request.h"
#include "app.h"
#include "http/answer.h"

#include <stddef.h>

/* Writers, each with its own queue, thread and connection, so that one
 * batch's statements run while another's commit waits on the disk and the
 * database works on several batches at once. A client always goes to the
 * same writer (by a hash of its id), so its requests keep their order. */
#define INTAKE_WRITERS   2
#define INTAKE_BATCH_MAX 256
#define INTAKE_QUEUE_MAX 8192 /* requests waiting; beyond it submit answers 503 */
#define INTAKE_KEY_MAX   200  /* Idempotency-Key length */

/* Called exactly once per submitted job, from the writer thread (or from
 * intake_submit itself when the intake is stopped or full). The answer is
 * handed over: the callee owns it (http_answer_free). */
typedef void (*intake_done_fn)(void *cls, http_answer_t *answer);

typedef struct intake_job {
    req_comm_t req;                           /* owned by the job */
    char request_hash[65];                    /* hex SHA-256 of the raw body */
    char idempotency_key[INTAKE_KEY_MAX + 1]; /* "" when none */
    intake_done_fn done;
    void *cls;
    struct intake_job *next; /* the intake's queue link */
} intake_job_t;

intake_t *intake_start(app_t *app, char *err, size_t errlen);
/* Stops taking requests, writes (and answers) every request already queued,
 * joins the writers and drops the starter's reference to in. */
void intake_stop(intake_t *in);
/* Takes another reference (NULL-safe, returns in): a holder such as the HTTP
 * server may keep submitting after intake_stop (each submit is then answered
 * 503 at once) without depending on the order things are stopped in. */
intake_t *intake_ref(intake_t *in);
/* Drops a reference; the last one frees in. */
void intake_unref(intake_t *in);

/* Allocates an empty job (calloc), or NULL. */
intake_job_t *intake_job_new(void);
/* Frees a job that was never submitted. */
void intake_job_free(intake_job_t *job);
/* Hands job (malloc'd by intake_job_new, filled, done set) to the writer;
 * the intake owns it from here on and calls job->done exactly once. */
void intake_submit(intake_t *in, intake_job_t *job);

#endif
