/* purge: the retention purge, `crier purge` and the daily job of
 * `crier serve` (engine/purge_job.c).
 *
 * What goes, with the rows that refer to it:
 *   - communications created more than retention_days ago whose status is
 *     final (sent, delivered, opened, clicked, failed, bounced, skipped),
 *     with their delivery_events, attachments and callbacks (the foreign
 *     keys cascade; inbound messages that answered one keep their row, its
 *     communication_id set to NULL). A message still in flight (pending,
 *     queued, sending, or batched into a digest not sent yet) never goes,
 *     however old: it would vanish under the worker or the digest that
 *     still owns it. Nor does one whose callback (a client's reply to it)
 *     has not reached the workflow yet: the cascade would lose the reply.
 *     A digest goes together with its members, in the same transaction,
 *     and only when every member may go too; a member never goes without
 *     its digest, so no member names a digest that is gone and no digest
 *     loses part of its content. (Members have no status of their own
 *     once the digest is final: the digest's trigger gives them its own.)
 *   - delivery_events older than retention_days of a communication that
 *     stays, unless that communication is in flight;
 *   - inbound_messages received, unmatched_receipts received and finished
 *     (delivered or failed) workflow_callbacks created more than
 *     retention_days ago;
 *   - clients erased (erased_at) more than PURGE_ERASED_DAYS days ago, with
 *     everything of theirs, whatever its age or status, except a message
 *     being sent right now (status sending: a worker holds it); the client
 *     row then waits with it for the next run.
 * audit_log is kept: it is the record of who read, changed or erased a
 * client's data that GDPR accountability asks for, and it holds no PII
 * (actors are token labels, subjects ids).
 *
 * Every step works in batches, each one short transaction of at most
 * batch rows of its table (a digest counts with its members; a client's
 * remaining rows go with it), taking rows with FOR UPDATE SKIP LOCKED, so
 * the intake and the workers never wait long behind it and a row someone
 * is writing is left for the next batch. The age horizons are fixed at the
 * start of a run, so a run ends, and a second run right after deletes
 * nothing. The whole run holds the session advisory lock PURGE_LOCK_KEY
 * (pg_try_advisory_lock): a second purge, from any process, does nothing
 * and says so. A dry run takes no lock and no row lock: it counts, in one
 * read-only statement, exactly what a run would delete now. */
#ifndef CRIER_STORE_PURGE_H
#define CRIER_STORE_PURGE_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stddef.h>

/* The advisory lock of a run ("crier purge" as a number, like migrate's). */
#define PURGE_LOCK_KEY "7165916607787342"
/* Rows per batch when none is given. */
#define PURGE_BATCH_DEFAULT 1000
#define PURGE_BATCH_MAX     100000
/* An erased client's row (its PII columns were cleared at the erasure) is
 * deleted once it was erased this many days ago, as 001_init.sql says. */
#define PURGE_ERASED_DAYS 30

/* The tables a purge deletes from, in the order a summary lists them. */
typedef enum {
    PURGE_COMMUNICATIONS,
    PURGE_DELIVERY_EVENTS,
    PURGE_ATTACHMENTS,
    PURGE_CALLBACKS,
    PURGE_INBOUND,
    PURGE_UNMATCHED,
    PURGE_CLIENTS,
    PURGE_TABLES_N,
} purge_table_t;

/* The table's name ("communications", ...). */
const char *purge_table_name(purge_table_t t);

/* What a run deleted (or a dry run would delete). */
typedef struct purge_counts {
    long long rows[PURGE_TABLES_N]; /* by purge_table_t */
    long batches;                   /* transactions that deleted something; 0 in a dry run */
    char horizon[32];               /* ISO-8601: rows older than this go */
    char erased_horizon[32];        /* ISO-8601: clients erased before this go */
} purge_counts_t;

/* Called after each batch with what it deleted. */
typedef void (*purge_progress_fn)(void *arg, long batch, const char *step,
                                  const purge_counts_t *batch_rows);

typedef struct purge_opts {
    int retention_days;         /* 1 or more */
    int batch;                  /* 1..PURGE_BATCH_MAX; 0: PURGE_BATCH_DEFAULT */
    int dry_run;                /* count only: nothing is locked or changed */
    const atomic_int *stop;     /* may be NULL; when set, the run ends after its batch */
    purge_progress_fn progress; /* may be NULL */
    void *progress_arg;
} purge_opts_t;

#define PURGE_DONE  0
#define PURGE_BUSY  1 /* another purge holds the lock: nothing was done */
#define PURGE_ERROR (-1)

/* Runs a purge (or a dry run) on conn, which must be idle (no open
 * transaction). *done gets what was deleted, also when a later batch
 * failed or a stop ended the run early (what committed stays deleted; the
 * next run goes on from there). Returns PURGE_DONE, PURGE_BUSY, or
 * PURGE_ERROR with err set. */
int purge_run(PGconn *conn, const purge_opts_t *opts, purge_counts_t *done, char *err,
              size_t errlen);

#endif
