/* purge: the statements of the retention purge and the batch loop around
 * them (what goes and why is in purge.h). */
#include "store/purge.h"

#include "store/db.h"
#include "util/errmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The statuses after which nothing more happens to a communication by
 * itself. 'batched' is not one: a member waits for its digest. */
#define PURGE_FINAL "('sent', 'delivered', 'opened', 'clicked', 'failed', 'bounced', 'skipped')"

/* The predicates, on alias c (communications), k (clients), e
 * (delivery_events), w (workflow_callbacks), i (inbound_messages) and u
 * (unmatched_receipts); h is the parameter holding the step's horizon.
 * The run's statements and the dry run's count are made of the same ones,
 * so the count is what a run deletes. */

/* c is old and final, not a member of a digest that still exists (those
 * go with their digest), not a digest with a member that must stay, and
 * nobody's unsent reply (workflow_callbacks pending or sending) refers to
 * it or to one of its members. */
#define PURGE_OLD_COMM(h)                                                                          \
    "c.created_at < " h "::timestamptz AND c.status IN " PURGE_FINAL                               \
    " AND NOT EXISTS (SELECT 1 FROM communications d WHERE d.id = c.batch_id)"                     \
    " AND NOT EXISTS (SELECT 1 FROM communications m WHERE m.batch_id = c.id"                      \
    "  AND (m.created_at >= " h "::timestamptz OR m.status NOT IN " PURGE_FINAL "))"               \
    " AND NOT EXISTS (SELECT 1 FROM workflow_callbacks w WHERE w.state IN ('pending', 'sending')"  \
    "  AND (w.communication_id = c.id OR w.communication_id IN"                                    \
    "   (SELECT m.id FROM communications m WHERE m.batch_id = c.id)))"

/* c belongs to a client erased before h and is not being sent right now;
 * a member goes with its digest, as above. */
#define PURGE_ERASED_COMM(h)                                                                       \
    "c.client_id IN (SELECT k.id FROM clients k WHERE k.erased_at < " h "::timestamptz)"           \
    " AND c.status <> 'sending'"                                                                   \
    " AND NOT EXISTS (SELECT 1 FROM communications d WHERE d.id = c.batch_id)"

#define PURGE_ERASED_CLIENT(h)                                                                     \
    "k.erased_at < " h "::timestamptz AND NOT EXISTS (SELECT 1 FROM communications c"              \
    " WHERE c.client_id = k.id AND c.status = 'sending')"

/* An old event of a communication that is not in flight. */
#define PURGE_OLD_EVENT(h)                                                                         \
    "e.event_timestamp < " h "::timestamptz AND NOT EXISTS (SELECT 1 FROM communications c"        \
    " WHERE c.id = e.communication_id AND c.status NOT IN " PURGE_FINAL ")"

#define PURGE_OLD_CALLBACK(h)                                                                      \
    "w.state IN ('delivered', 'failed') AND w.created_at < " h "::timestamptz"
#define PURGE_OLD_INBOUND(h)   "i.received_at < " h "::timestamptz"
#define PURGE_OLD_UNMATCHED(h) "u.received_at < " h "::timestamptz"

/* Each predicate on the parameter its statements hold it in. */
#define PURGE_OLD_COMM_1      PURGE_OLD_COMM("$1")
#define PURGE_OLD_COMM_2      PURGE_OLD_COMM("$2")
#define PURGE_ERASED_COMM_1   PURGE_ERASED_COMM("$1")
#define PURGE_ERASED_COMM_2   PURGE_ERASED_COMM("$2")
#define PURGE_ERASED_CLIENT_1 PURGE_ERASED_CLIENT("$1")
#define PURGE_ERASED_CLIENT_2 PURGE_ERASED_CLIENT("$2")
#define PURGE_OLD_EVENT_1     PURGE_OLD_EVENT("$1")
#define PURGE_OLD_CALLBACK_1  PURGE_OLD_CALLBACK("$1")
#define PURGE_OLD_INBOUND_1   PURGE_OLD_INBOUND("$1")
#define PURGE_OLD_UNMATCHED_1 PURGE_OLD_UNMATCHED("$1")

/* Communications go in two statements: the first locks a batch ($1 the
 * horizon, $2 the batch) and answers their ids as an array; the second
 * ($1 those ids, $2 the horizon) checks each again, under a snapshot that
 * sees everything committed before the lock, and deletes it with its
 * digest's members. Without the second look, a reply committed to one of
 * them between the first statement's snapshot and its lock would be lost
 * in the cascade. A digest weighs 1 + its members, and the batch stops
 * before batch rows (but always takes its first). */
#define PURGE_LOCK_COMMS(where)                                                                    \
    "SELECT array_agg(id ORDER BY id)::text FROM ("                                                \
    " SELECT id, row_number() OVER w AS n, sum(1 + COALESCE(batch_size, 0)) OVER w AS upto FROM (" \
    "  SELECT c.id, c.batch_size, c.created_at FROM communications c WHERE " where                 \
    "  ORDER BY c.created_at, c.id LIMIT $2::int FOR UPDATE OF c SKIP LOCKED) l"                   \
    " WINDOW w AS (ORDER BY created_at, id)) s WHERE upto <= $2::int OR n = 1"

/* What goes with the communications of x: counted in the statement that
 * deletes them, whose snapshot still holds what the cascade removes. */
#define PURGE_X_CHILDREN                                                                           \
    " (SELECT count(*) FROM delivery_events e WHERE e.communication_id IN (SELECT id FROM x)),"    \
    " (SELECT count(*) FROM communication_attachments a"                                           \
    "  WHERE a.communication_id IN (SELECT id FROM x)),"                                           \
    " (SELECT count(*) FROM workflow_callbacks w WHERE w.communication_id IN (SELECT id FROM x))"

#define PURGE_DELETE_COMMS(where)                                                                  \
    "WITH c AS (SELECT c.id FROM communications c WHERE c.id = ANY($1::uuid[]) AND " where "),"    \
    " x AS (SELECT id FROM c UNION"                                                                \
    "  SELECT m.id FROM communications m WHERE m.batch_id IN (SELECT id FROM c)),"                 \
    " d AS (DELETE FROM communications t USING x WHERE t.id = x.id RETURNING t.id)"                \
    " SELECT (SELECT count(*) FROM d)," PURGE_X_CHILDREN

/* The other steps lock and delete in one statement ($1 the horizon, $2
 * the batch) and answer the rows deleted. An erased client's remaining
 * rows go with it by the cascade (their inbound messages, preferences, a
 * message written since the step before), counted like a message's. */
#define PURGE_DELETE_CLIENTS                                                                       \
    "WITH k AS (SELECT k.id FROM clients k WHERE " PURGE_ERASED_CLIENT_1                           \
    "  ORDER BY k.erased_at, k.id LIMIT $2::int FOR UPDATE OF k SKIP LOCKED),"                     \
    " x AS (SELECT c.id FROM communications c WHERE c.client_id IN (SELECT id FROM k)),"           \
    " d AS (DELETE FROM clients t USING k WHERE t.id = k.id RETURNING t.id)"                       \
    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM x)," PURGE_X_CHILDREN ","             \
    " (SELECT count(*) FROM inbound_messages i WHERE i.client_id IN (SELECT id FROM k))"

/* Rows of table (alias a) matching where, with nothing of theirs to count. */
#define PURGE_DELETE_PLAIN(table, a, where)                                                        \
    "WITH " a " AS (SELECT " a ".id FROM " table " " a " WHERE " where                             \
    "  LIMIT $2::int FOR UPDATE OF " a " SKIP LOCKED),"                                            \
    " d AS (DELETE FROM " table " t USING " a " WHERE t.id = " a ".id RETURNING 1)"                \
    " SELECT count(*) FROM d"

/* One step: a kind of row deleted batch after batch. */
typedef struct purge_step {
    const char *name;   /* for progress and errors */
    int erased;         /* 1: the horizon is the erased clients', else the retention's */
    const char *lock;   /* NULL: delete takes ($1 horizon, $2 batch) and locks itself */
    const char *delete; /* one row: the counts of cols, in order */
    int ncols;
    purge_table_t cols[6];
} purge_step_t;

static const purge_step_t purge_steps[] = {
    {"communications",
     0,
     PURGE_LOCK_COMMS(PURGE_OLD_COMM_1),
     PURGE_DELETE_COMMS(PURGE_OLD_COMM_2),
     4,
     {PURGE_COMMUNICATIONS, PURGE_DELIVERY_EVENTS, PURGE_ATTACHMENTS, PURGE_CALLBACKS}},
    {"erased clients' communications",
     1,
     PURGE_LOCK_COMMS(PURGE_ERASED_COMM_1),
     PURGE_DELETE_COMMS(PURGE_ERASED_COMM_2),
     4,
     {PURGE_COMMUNICATIONS, PURGE_DELIVERY_EVENTS, PURGE_ATTACHMENTS, PURGE_CALLBACKS}},
    {"erased clients",
     1,
     NULL,
     PURGE_DELETE_CLIENTS,
     6,
     {PURGE_CLIENTS, PURGE_COMMUNICATIONS, PURGE_DELIVERY_EVENTS, PURGE_ATTACHMENTS,
      PURGE_CALLBACKS, PURGE_INBOUND}},
    {"delivery_events",
     0,
     NULL,
     PURGE_DELETE_PLAIN("delivery_events", "e", PURGE_OLD_EVENT_1),
     1,
     {PURGE_DELIVERY_EVENTS}},
    {"inbound_messages",
     0,
     NULL,
     PURGE_DELETE_PLAIN("inbound_messages", "i", PURGE_OLD_INBOUND_1),
     1,
     {PURGE_INBOUND}},
    {"workflow_callbacks",
     0,
     NULL,
     PURGE_DELETE_PLAIN("workflow_callbacks", "w", PURGE_OLD_CALLBACK_1),
     1,
     {PURGE_CALLBACKS}},
    {"unmatched_receipts",
     0,
     NULL,
     PURGE_DELETE_PLAIN("unmatched_receipts", "u", PURGE_OLD_UNMATCHED_1),
     1,
     {PURGE_UNMATCHED}},
};

#define PURGE_STEPS_N ((int)(sizeof purge_steps / sizeof purge_steps[0]))

/* The dry run: every step's rows at once, each counted once ($1 the
 * retention horizon, $2 the erased clients'). A row two steps would take
 * (an erased client's old message, the events of a deleted message) is
 * deleted by the first and counted here once, through the unions. */
#define PURGE_COUNT_SQL                                                                            \
    "WITH k AS (SELECT k.id FROM clients k WHERE " PURGE_ERASED_CLIENT_2 "),"                      \
    " r AS (SELECT c.id FROM communications c WHERE " PURGE_OLD_COMM_1                             \
    "  UNION SELECT c.id FROM communications c WHERE " PURGE_ERASED_COMM_2 "),"                    \
    " x AS (SELECT id FROM r"                                                                      \
    "  UNION SELECT m.id FROM communications m WHERE m.batch_id IN (SELECT id FROM r)"             \
    "  UNION SELECT c.id FROM communications c WHERE c.client_id IN (SELECT id FROM k))"           \
    " SELECT (SELECT count(*) FROM x),"                                                            \
    " (SELECT count(*) FROM (SELECT e.id FROM delivery_events e"                                   \
    "  WHERE e.communication_id IN (SELECT id FROM x)"                                             \
    "  UNION SELECT e.id FROM delivery_events e WHERE " PURGE_OLD_EVENT_1 ") s),"                  \
    " (SELECT count(*) FROM communication_attachments a"                                           \
    "  WHERE a.communication_id IN (SELECT id FROM x)),"                                           \
    " (SELECT count(*) FROM (SELECT w.id FROM workflow_callbacks w"                                \
    "  WHERE w.communication_id IN (SELECT id FROM x)"                                             \
    "  UNION SELECT w.id FROM workflow_callbacks w WHERE " PURGE_OLD_CALLBACK_1 ") s),"            \
    " (SELECT count(*) FROM (SELECT i.id FROM inbound_messages i"                                  \
    "  WHERE i.client_id IN (SELECT id FROM k)"                                                    \
    "  UNION SELECT i.id FROM inbound_messages i WHERE " PURGE_OLD_INBOUND_1 ") s),"               \
    " (SELECT count(*) FROM unmatched_receipts u WHERE " PURGE_OLD_UNMATCHED_1 "),"                \
    " (SELECT count(*) FROM k)"

/* The dry run's column order. */
static const purge_table_t purge_count_cols[] = {
    PURGE_COMMUNICATIONS, PURGE_DELIVERY_EVENTS, PURGE_ATTACHMENTS, PURGE_CALLBACKS,
    PURGE_INBOUND,        PURGE_UNMATCHED,       PURGE_CLIENTS};

/* Both horizons, from the server's clock: as the values the statements
 * take, and as ISO-8601 for people. */
static const char purge_horizon_sql[] =
    "SELECT now() - make_interval(days => $1::int), now() - make_interval(days => $2::int),"
    " crier_iso(now() - make_interval(days => $1::int)),"
    " crier_iso(now() - make_interval(days => $2::int))";

/* A dry run's count reads whole tables' worth of old rows at once: longer
 * than the session's statement timeout may allow on a large database. */
#define PURGE_COUNT_TIMEOUT "SET LOCAL statement_timeout = '600s'"

static const char *const purge_table_names[PURGE_TABLES_N] = {
    [PURGE_COMMUNICATIONS] = "communications",
    [PURGE_DELIVERY_EVENTS] = "delivery_events",
    [PURGE_ATTACHMENTS] = "communication_attachments",
    [PURGE_CALLBACKS] = "workflow_callbacks",
    [PURGE_INBOUND] = "inbound_messages",
    [PURGE_UNMATCHED] = "unmatched_receipts",
    [PURGE_CLIENTS] = "clients",
};

const char *purge_table_name(purge_table_t t)
{
    return (unsigned)t < PURGE_TABLES_N ? purge_table_names[t] : "?";
}

/* Reads column col of r's first row as a count (0 when NULL). */
static long long purge_count(const PGresult *r, int col)
{
    if (PQntuples(r) < 1 || PQnfields(r) <= col || PQgetisnull(r, 0, col))
        return 0;
    return strtoll(PQgetvalue(r, 0, col), NULL, 10);
}

/* One batch of step s in one transaction. *found is 0 when nothing was
 * left to take; rows gets what the batch deleted. */
static int purge_batch(PGconn *conn, const purge_step_t *s, const char *horizon, const char *limit,
                       int *found, purge_counts_t *rows, char *err, size_t errlen)
{
    char dberr[512];
    *found = 0;
    memset(rows->rows, 0, sizeof rows->rows);
    if (db_begin(conn, dberr, sizeof dberr) != 0) {
        errmsg_set(err, errlen, "%s: %s", s->name, dberr);
        return -1;
    }
    PGresult *r;
    if (s->lock) {
        const char *lp[] = {horizon, limit};
        r = db_query(conn, s->lock, 2, lp, dberr, sizeof dberr);
        if (!r) {
            errmsg_set(err, errlen, "%s: %s", s->name, dberr);
            (void)db_end(conn, -1, dberr, sizeof dberr);
            return -1;
        }
        if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0)) {
            PQclear(r);
            return db_end(conn, 0, err, errlen) == 0 ? 0 : -1;
        }
        /* the array text holds uuids only: at most 37 bytes a row */
        char *ids = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (!ids) {
            errmsg_set(err, errlen, "%s: out of memory", s->name);
            (void)db_end(conn, -1, dberr, sizeof dberr);
            return -1;
        }
        const char *dp[] = {ids, horizon};
        r = db_query(conn, s->delete, 2, dp, dberr, sizeof dberr);
        free(ids);
        *found = 1;
    } else {
        const char *dp[] = {horizon, limit};
        r = db_query(conn, s->delete, 2, dp, dberr, sizeof dberr);
    }
    if (!r) {
        errmsg_set(err, errlen, "%s: %s", s->name, dberr);
        (void)db_end(conn, -1, dberr, sizeof dberr);
        return -1;
    }
    for (int c = 0; c < s->ncols; c++)
        rows->rows[s->cols[c]] += purge_count(r, c);
    PQclear(r);
    if (!s->lock)
        *found = rows->rows[s->cols[0]] > 0;
    if (db_end(conn, 0, dberr, sizeof dberr) != 0) {
        errmsg_set(err, errlen, "%s: %s", s->name, dberr);
        return -1;
    }
    return 0;
}

static int purge_dry(PGconn *conn, const char *horizon, const char *erased, purge_counts_t *done,
                     char *err, size_t errlen)
{
    char dberr[512];
    if (db_begin(conn, dberr, sizeof dberr) != 0 ||
        db_exec(conn, PURGE_COUNT_TIMEOUT, dberr, sizeof dberr) != 0) {
        errmsg_set(err, errlen, "counting: %s", dberr);
        (void)db_end(conn, -1, dberr, sizeof dberr);
        return PURGE_ERROR;
    }
    const char *p[] = {horizon, erased};
    PGresult *r = db_query(conn, PURGE_COUNT_SQL, 2, p, dberr, sizeof dberr);
    if (!r) {
        errmsg_set(err, errlen, "counting: %s", dberr);
        (void)db_end(conn, -1, dberr, sizeof dberr);
        return PURGE_ERROR;
    }
    for (size_t c = 0; c < sizeof purge_count_cols / sizeof purge_count_cols[0]; c++)
        done->rows[purge_count_cols[c]] = purge_count(r, (int)c);
    PQclear(r);
    /* read only: rolled back, there is nothing to keep */
    (void)db_end(conn, -1, dberr, sizeof dberr);
    return PURGE_DONE;
}

/* The steps, batch after batch, until each finds nothing or stop is set. */
static int purge_steps_run(PGconn *conn, const purge_opts_t *o, const char *horizon,
                           const char *erased, const char *limit, purge_counts_t *done, char *err,
                           size_t errlen)
{
    for (int i = 0; i < PURGE_STEPS_N; i++) {
        const purge_step_t *s = &purge_steps[i];
        for (;;) {
            if (o->stop && atomic_load(o->stop))
                return 0;
            int found = 0;
            purge_counts_t rows;
            memset(&rows, 0, sizeof rows);
            if (purge_batch(conn, s, s->erased ? erased : horizon, limit, &found, &rows, err,
                            errlen) != 0)
                return -1;
            if (!found)
                break;
            long long any = 0;
            for (int t = 0; t < PURGE_TABLES_N; t++) {
                done->rows[t] += rows.rows[t];
                any += rows.rows[t];
            }
            /* a batch whose rows all changed their minds on the second look
             * deleted nothing; the next one takes other rows */
            if (any == 0)
                continue;
            done->batches++;
            if (o->progress)
                o->progress(o->progress_arg, done->batches, s->name, &rows);
        }
    }
    return 0;
}

int purge_run(PGconn *conn, const purge_opts_t *o, purge_counts_t *done, char *err, size_t errlen)
{
    memset(done, 0, sizeof *done);
    int batch = o->batch ? o->batch : PURGE_BATCH_DEFAULT;
    if (o->retention_days < 1 || batch < 1 || batch > PURGE_BATCH_MAX) {
        errmsg_set(err, errlen, "purge: retention days must be at least 1, the batch 1 to %d",
                   PURGE_BATCH_MAX);
        return PURGE_ERROR;
    }
    char days[16], erased_days[16], limit[16], dberr[512];
    snprintf(days, sizeof days, "%d", o->retention_days);
    snprintf(erased_days, sizeof erased_days, "%d", PURGE_ERASED_DAYS);
    snprintf(limit, sizeof limit, "%d", batch);

    const char *hp[] = {days, erased_days};
    PGresult *r = db_query(conn, purge_horizon_sql, 2, hp, dberr, sizeof dberr);
    if (!r) {
        errmsg_set(err, errlen, "purge: %s", dberr);
        return PURGE_ERROR;
    }
    /* timestamps as the server prints them, with microseconds and zone */
    char horizon[64], erased[64];
    snprintf(horizon, sizeof horizon, "%s", PQgetvalue(r, 0, 0));
    snprintf(erased, sizeof erased, "%s", PQgetvalue(r, 0, 1));
    snprintf(done->horizon, sizeof done->horizon, "%s", PQgetvalue(r, 0, 2));
    snprintf(done->erased_horizon, sizeof done->erased_horizon, "%s", PQgetvalue(r, 0, 3));
    PQclear(r);

    if (o->dry_run)
        return purge_dry(conn, horizon, erased, done, err, errlen);

    const char *key[] = {PURGE_LOCK_KEY};
    r = db_query(conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, key, dberr, sizeof dberr);
    if (!r) {
        errmsg_set(err, errlen, "purge: taking the lock: %s", dberr);
        return PURGE_ERROR;
    }
    int locked = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!locked)
        return PURGE_BUSY;

    int rc = purge_steps_run(conn, o, horizon, erased, limit, done, err, errlen);
    /* a lost connection has released the lock with its session */
    r = db_conn_lost(conn)
            ? NULL
            : db_query(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, key, dberr, sizeof dberr);
    PQclear(r);
    return rc == 0 ? PURGE_DONE : PURGE_ERROR;
}
