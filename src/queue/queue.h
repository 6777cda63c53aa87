/* queue: communications as durable jobs in PostgreSQL.
 *
 * A row is claimable when its status is 'queued' or 'pending' and
 * next_attempt_at has passed. Claim, lease, fence and rescue are the shared
 * cycle of queue/lease.h: claiming is one short transaction (SKIP LOCKED
 * so concurrent workers never wait on or take the same row) that moves rows
 * to 'sending', bumps attempts and stamps a lease. The transfer runs with no
 * lock held. Completion writes are fenced on (status = 'sending', attempts =
 * the claimed attempt): a worker whose lease expired and whose row was
 * rescued and re-claimed cannot overwrite the newer attempt's outcome. This
 * file adds what is the communications' own: their columns, the outcomes
 * and their delivery_events, the wake-up channel and the queue's depth. */
#ifndef CRIER_QUEUE_H
#define CRIER_QUEUE_H

#include "crypto/crypto.h"

#include <libpq-fe.h>
#include <stddef.h>

#define QUEUE_CHANNEL "crier_work" /* LISTEN/NOTIFY channel */

typedef struct queue_job {
    char id[37];
    int attempt;         /* attempts after the claim: 1 on the first try */
    int channel_attempt; /* of those, the attempts on the current channel */
    char *plan_id;       /* owned */
    char *client_id;     /* owned */
    char *message_type;  /* owned */
    char *urgency;       /* owned */
    char *channel;       /* owned: the channel to try now */
    char *fallback_json; /* owned: remaining channels, JSON array */
    char *context_json;  /* owned */
    /* A provider's receipt said the message sent on channel failed: the
     * attempt is that failure (category, code), asked of the rules without
     * sending again. */
    int receipt_failure;
    char receipt_category[16];
    int receipt_code;
    /* The row had no attachments when it was claimed. Attachments are
     * written with the communication at intake and never added later, so
     * the sender need not read them. 0 (unknown) for a job made otherwise. */
    int no_attachments;
} queue_job_t;

void queue_job_free(queue_job_t *j);

/* Claims up to max due rows; *n gets how many. jobs must hold max entries. */
int queue_claim(PGconn *conn, int max, int lease_seconds, queue_job_t *jobs, int *n, char *err,
                size_t errlen);

/* Extends the lease of a claimed row (id, attempt as claimed) to
 * lease_seconds from now, for a send that needs longer than its claim
 * gave. 1 when renewed, 0 when the lease was lost (the fence did not
 * hold), -1 with err. */
int queue_renew(PGconn *conn, const char *id, int attempt, int lease_seconds, char *err,
                size_t errlen);

typedef enum {
    QUEUE_SENT,      /* handed to the provider: status sent */
    QUEUE_DELIVERED, /* sent and already known delivered (sandbox) */
    QUEUE_RETRY,     /* back to queued at retry_at, on next_channel if set */
    QUEUE_FAILED,    /* final failure */
    /* Not attempted (the sender's rate limit said wait): back to queued at
     * retry_at with the claim's attempt given back, so waiting for a slot
     * never uses up the attempts the failure rules count. */
    QUEUE_DEFER,
    QUEUE_BOUNCED, /* final: the address hard-bounced and no channel follows */
    QUEUE_SKIPPED, /* final: not attempted (skip_reason) and no channel follows */
} queue_outcome_t;

typedef struct queue_result {
    const char *id;
    int attempt; /* as claimed: the fence */
    queue_outcome_t outcome;
    double retry_at;                 /* epoch s, QUEUE_RETRY and QUEUE_DEFER only */
    const char *channel;             /* the channel that was tried */
    const char *subject;             /* rendered, in clear; may be NULL (see queue_complete) */
    const char *provider_message_id; /* may be NULL */
    const char *error_category;      /* NULL on success */
    const char *error_message;       /* NULL on success; never holds PII or secrets */
    int provider_code;               /* SMTP reply or provider error code, 0 if none */
    const char *detail_json;         /* delivery_events.provider_response, may be NULL */
    /* QUEUE_RETRY on another channel: the channel to try next and the
     * channels left after it (JSON array); both NULL to retry the same one. */
    const char *next_channel;
    const char *next_fallback_json;
    /* QUEUE_SKIPPED, or a QUEUE_RETRY onto next_channel that did not try
     * this channel: why (the row's skip_reason when final, its event's
     * detail either way); NULL otherwise. */
    const char *skip_reason;
    /* A QUEUE_RETRY after a hard bounce: its event is "bounced", not
     * "retry_scheduled", so the bounce stays visible in the history. */
    int bounced;
    /* the version of the template the message was rendered with, NULL when
     * nothing was: its hash, and its row, recorded first (store/templates.h) */
    const char *template_version;
    const char *template_id;
} queue_result_t;

/* Records n outcomes in one transaction: each updates its row only if the
 * fence holds and appends delivery_events. *applied gets how many rows
 * matched their fence. The subject of a sent or delivered row is stored
 * only encrypted under keys (communications.subject_enc, bound to the
 * row); a subject without a usable key fails the batch. */
int queue_complete(PGconn *conn, const cry_keys_t *keys, const queue_result_t *r, int n,
                   int *applied, char *err, size_t errlen);

/* Returns rows whose lease expired to 'queued' (or 'failed' once they have
 * had max_attempts), under a transaction-level advisory lock so only one
 * instance rescues at a time. *rescued gets how many rows moved. */
int queue_rescue(PGconn *conn, int max_attempts, int *rescued, char *err, size_t errlen);

/* How many unfinished rows the queue holds, for the metrics. */
typedef struct queue_depth {
    long long due;       /* pending or queued, due now */
    long long scheduled; /* pending or queued, due later */
    long long sending;   /* claimed, in flight */
} queue_depth_t;

/* Counts the unfinished rows into *out. 0, or -1 with err. */
int queue_depth(PGconn *conn, queue_depth_t *out, char *err, size_t errlen);

/* LISTEN on QUEUE_CHANNEL (call on a dedicated connection). */
int queue_listen(PGconn *conn, char *err, size_t errlen);
/* Sends NOTIFY QUEUE_CHANNEL; inside a transaction it is delivered at commit. */
int queue_notify(PGconn *conn, char *err, size_t errlen);
/* Waits up to timeout_ms for a notification on a LISTENing connection.
 * Returns 1 when one (or more) arrived, 0 on timeout, -1 on a broken
 * connection. */
int queue_wait(PGconn *conn, int timeout_ms);

#endif
