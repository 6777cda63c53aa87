/* intake: the group-commit writer behind POST /v1/communications.
 *
 * The API validates a request, holds its answer back and submits it
 * here. A writer thread owning one PostgreSQL connection takes every request
 * queued so far (up to INTAKE_BATCH_MAX) and writes them all in ONE
 * transaction, so a single commit (one WAL flush) acknowledges the whole
 * batch. The batch is written set-based, a few statements for all of its
 * requests; a request that fails there is redone on a savepoint of its own,
 * so that it fails alone. Each request's result is delivered only
 * after that commit returned: nothing is acknowledged that is not durable.
 * If the commit fails, every request of the batch comes to
 * INTAKE_STORE_UNAVAILABLE.
 *
 * What a request came to is said as an intake_result_t, in the engine's
 * words: the API makes the HTTP answer of it. */
#ifndef CRIER_INTAKE_H
#define CRIER_INTAKE_H

#include "app.h"
#include "request/request.h"

#include <stddef.h>

/* Writers, each with its own queue, thread and connection, so that one
 * batch's statements run while another's commit waits on the disk and the
 * database works on several batches at once. A client always goes to the
 * same writer (by a hash of its id), so its requests keep their order. */
#define INTAKE_WRITERS   2
#define INTAKE_BATCH_MAX 256
#define INTAKE_QUEUE_MAX 8192 /* requests waiting; beyond it a submit is unavailable */
#define INTAKE_KEY_MAX   200  /* Idempotency-Key length */

/* What became of one request. */
typedef enum {
    INTAKE_ACCEPTED,          /* written and committed; body: the communication as accepted */
    INTAKE_DUPLICATE,         /* its Idempotency-Key was used with the same body before:
                                 nothing written; body: what the first request got */
    INTAKE_CONFLICT,          /* its Idempotency-Key was used with another body: nothing written */
    INTAKE_UNKNOWN_CLIENT,    /* client_id names no client and the request has no client
                                 object to create one: nothing written */
    INTAKE_ERASED,            /* the client was erased and the request does not make it
                                 again with explicit consent: nothing written */
    INTAKE_UNAVAILABLE,       /* not taken (stopping, or too many waiting): retry later; why */
    INTAKE_STORE_UNAVAILABLE, /* the batch's transaction failed: nothing accepted, retry later */
    INTAKE_FAILED,            /* this request could not be written (logged); why */
} intake_outcome_t;

typedef struct intake_result {
    intake_outcome_t outcome;
    char *body;      /* owned: the JSON document of ACCEPTED and DUPLICATE, else NULL */
    const char *why; /* static: what went wrong, for UNAVAILABLE and FAILED; else NULL */
} intake_result_t;

/* Frees the body and clears r. */
void intake_result_free(intake_result_t *r);

/* Called exactly once per submitted job, from the writer thread (or from
 * intake_submit itself when the intake is stopped or full). The result is
 * handed over: the callee owns its body (intake_result_free). */
typedef void (*intake_done_fn)(void *cls, intake_result_t *result);

typedef struct intake_job {
    req_comm_t req;                           /* owned by the job */
    char request_hash[65];                    /* hex SHA-256 of the raw body */
    char idempotency_key[INTAKE_KEY_MAX + 1]; /* "" when none */
    char actor[64];                           /* the label of the token that sent it */
    intake_done_fn done;
    void *cls;
    struct intake_job *next; /* the intake's queue link */
} intake_job_t;

intake_t *intake_start(app_t *app, char *err, size_t errlen);
/* Stops taking requests, writes (and answers) every request already queued,
 * joins the writers and drops the starter's reference to in. */
void intake_stop(intake_t *in);
/* Takes another reference (NULL-safe, returns in): a holder such as the API
 * may keep submitting after intake_stop (each submit then comes to
 * INTAKE_UNAVAILABLE at once) without depending on the order things are
 * stopped in. */
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
