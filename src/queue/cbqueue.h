/* cbqueue: workflow_callbacks, the outbox of events (client replies) for the
 * workflow, as durable jobs.
 *
 * The rows are claimed, leased, fenced and rescued by the cycle of
 * queue/lease.h, like communications: a row is claimable when its state is
 * 'pending' and next_attempt_at has passed, a claim moves it to 'sending'
 * and counts the attempt, and a completion applies only while the claimed
 * attempt is still the one in flight, so a row whose lease expired and was
 * claimed again is never finished by its first sender. This file adds what
 * is the callbacks' own: their columns, the body decrypted at the claim,
 * and what a delivered row keeps. */
#ifndef CRIER_QUEUE_CBQUEUE_H
#define CRIER_QUEUE_CBQUEUE_H

#include "crypto/crypto.h"

#include <libpq-fe.h>
#include <stddef.h>

/* Writers of workflow_callbacks may NOTIFY this channel for an immediate
 * send; without it a new row waits at most one poll interval. */
#define CBQUEUE_CHANNEL "crier_callbacks"

/* One claimed row; strings owned by the job. */
typedef struct cbqueue_job {
    char *id;
    char *event_type;
    char *payload;  /* the body to send, in clear; NULL when unreadable */
    int attempt;    /* attempts after the claim: the fence */
    int unreadable; /* payload_enc did not decrypt: the row is failed, not sent */
} cbqueue_job_t;

void cbqueue_job_free(cbqueue_job_t *j);

/* Claims up to max of the oldest due rows into jobs[] (max entries), with
 * their bodies decrypted under keys. Returns how many were claimed (0 when
 * none is due), or -1 on a database error (message in err). */
int cbqueue_claim(PGconn *conn, const cry_keys_t *keys, int lease_seconds, int max,
                  cbqueue_job_t *jobs, char *err, size_t errlen);

/* Extends the lease of a claimed job to lease_seconds from now. 1 when
 * renewed, 0 when the lease was lost (the fence did not hold), -1 with
 * err. */
int cbqueue_renew(PGconn *conn, const cbqueue_job_t *job, int lease_seconds, char *err,
                  size_t errlen);

/* What becomes of a row after an attempt. */
typedef enum {
    CBQUEUE_DELIVERED, /* the workflow has it: 'delivered' */
    CBQUEUE_RETRY,     /* 'pending' again, due after the delay */
    CBQUEUE_FAILED,    /* given up: 'failed' */
} cbqueue_outcome_t;

/* Records an attempt's outcome (error: the row's last_error, may be NULL),
 * fenced on the attempt still being the one in flight; a delivered row
 * keeps only the event and the ids of its payload (crier_callback_bare),
 * never the client's text. Returns 1 when applied, 0 when stale, -1 on a
 * database error. */
int cbqueue_complete(PGconn *conn, const cbqueue_job_t *job, cbqueue_outcome_t outcome, int delay_s,
                     const char *error, char *err, size_t errlen);

/* Returns rows whose sender died or hung to 'pending', or fails them once
 * they have had max_attempts (a row that kills its sender every time must
 * not loop forever); one instance at a time. *rescued gets how many moved. */
int cbqueue_rescue(PGconn *conn, int max_attempts, int *rescued, char *err, size_t errlen);

/* LISTEN on CBQUEUE_CHANNEL (on the sender's own connection; queue_wait
 * then waits on it). */
int cbqueue_listen(PGconn *conn, char *err, size_t errlen);

#endif
