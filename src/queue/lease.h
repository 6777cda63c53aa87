/* lease: the claim / lease / fence / rescue cycle shared by every table of
 * durable jobs (communications, workflow_callbacks).
 *
 * A claim is one short autocommit statement: FOR UPDATE SKIP LOCKED picks
 * due rows no one else holds, and the same statement moves them to the
 * sending state, bumps attempts and stamps lease_until; no lock is held
 * after it returns. Every later write of the claimer (a renewal, its
 * completion) is fenced on (state = sending, attempts = the claimed
 * attempt): once a lease has run out and the row was rescued (and perhaps
 * claimed again), the late writer's statement matches no row and changes
 * nothing. The rescuer returns rows whose lease ran out to the queue, or
 * fails them once they have used up their attempts, one instance at a time
 * under a transaction-level advisory lock.
 *
 * A table served here has the columns id (uuid), attempts (integer),
 * next_attempt_at and lease_until (timestamptz) and a state column named by
 * its descriptor. The descriptor's strings are SQL fragments, constants of
 * queue/ (never data): the statements are built from them, and every value
 * travels as a parameter. */
#ifndef CRIER_QUEUE_LEASE_H
#define CRIER_QUEUE_LEASE_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct lease_table {
    const char *table;      /* the table's name */
    const char *state;      /* its state column */
    const char *claimable;  /* the states a claim takes, an SQL list: "'pending', 'queued'" */
    const char *sending;    /* the state of a claimed row */
    const char *requeued;   /* the state a rescued row returns to */
    const char *failed;     /* the state of a rescued row out of attempts */
    const char *order_by;   /* the claim's order (its index's columns) */
    int claim_max;          /* the most rows one claim takes */
    int rescue_max;         /* the most rows one rescue moves (bounds its transaction) */
    const char *rescue_key; /* the rescuer's advisory lock, a bigint in decimal */
    /* What else each statement does to the table's own columns: */
    const char *claim_set;        /* more SET items of a claim, each after ", "; "" for none */
    const char *claim_returning;  /* the claim's RETURNING list, of the row as m */
    const char *rescue_set;       /* more SET items of a rescue ($1 is max_attempts) */
    const char *rescue_returning; /* the rescue's RETURNING list, of the row as m */
    const char *rescue_after;     /* CTEs after the rescue's "u" (", ev AS (...)"); "" for none */
} lease_table_t;

/* Claims up to max due rows (at most t->claim_max) for lease_seconds.
 * Returns the claimed rows as t->claim_returning lists them (the caller
 * PQclear()s it), or NULL with err. */
PGresult *lease_claim(PGconn *conn, const lease_table_t *t, int max, int lease_seconds, char *err,
                      size_t errlen);

/* Extends the lease of a row still held by this claim (id, attempt) to
 * lease_seconds from now. 1 when renewed, 0 when the fence did not hold
 * (the lease was lost), -1 with err. */
int lease_renew(PGconn *conn, const lease_table_t *t, const char *id, int attempt,
                int lease_seconds, char *err, size_t errlen);

/* Completes a claimed row with one fenced UPDATE: "set" (the table's own
 * SET items), lease_until cleared, only where the row is still in flight
 * under the claimed attempt. params[0] is the id and params[1] the claimed
 * attempt; the others are the caller's ($3 on), all passed as text (an
 * unused one would have no type otherwise). "after" holds CTEs that read the
 * updated row from "u" (id and state), so they run only when the fence
 * held; "" for none. *applied gets 1 when the row was updated, 0 when it
 * was stale. 0, or -1 with err. */
int lease_complete(PGconn *conn, const lease_table_t *t, const char *set, const char *after,
                   int nparams, const char *const *params, int *applied, char *err, size_t errlen);

/* Returns rows whose lease ran out to t->requeued (due now), or to
 * t->failed once they have had max_attempts, at most t->rescue_max per
 * call, in its own transaction under t->rescue_key; while another instance
 * holds that lock it does nothing. *rescued gets how many rows moved. */
int lease_rescue(PGconn *conn, const lease_table_t *t, int max_attempts, int *rescued, char *err,
                 size_t errlen);

#endif
