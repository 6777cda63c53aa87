#include "queue/lease.h"

#include "store/db.h"
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A statement built from a descriptor's fragments; the longest (a
 * communication's completion with its events) is under 2 KiB. */
#define LEASE_SQL_MAX 16384
/* Parameters of a completion: the id, the attempt and the caller's. */
#define LEASE_PARAMS_MAX 16

/* Appends the fence: the row is still in flight under the claimed attempt
 * ($1 the id, $2 the attempt). */
static int lease_fence(buf_t *sql, const lease_table_t *t)
{
    return buf_printf(sql, " WHERE id = $1::uuid AND %s = '%s' AND attempts = $2::int", t->state,
                      t->sending);
}

/* 0 when the statement was built (rc from its buf_ calls), else -1 with err
 * and sql freed. */
static int lease_built(buf_t *sql, int rc, char *err, size_t errlen)
{
    if (rc == 0)
        return 0;
    buf_free(sql);
    snprintf(err, errlen, "lease statement too long");
    return -1;
}

PGresult *lease_claim(PGconn *conn, const lease_table_t *t, int max, int lease_seconds, char *err,
                      size_t errlen)
{
    if (max <= 0 || lease_seconds <= 0) {
        snprintf(err, errlen, "a claim needs a positive count and lease");
        return NULL;
    }
    if (max > t->claim_max)
        max = t->claim_max;
    buf_t sql;
    buf_init(&sql, LEASE_SQL_MAX);
    /* MATERIALIZED keeps the planner from folding the locking subquery into
     * the UPDATE, which could lock more rows than LIMIT. */
    int rc = buf_printf(&sql,
                        "WITH c AS MATERIALIZED (SELECT id FROM %s"
                        " WHERE %s IN (%s) AND next_attempt_at <= now()"
                        " ORDER BY %s LIMIT $1::int FOR UPDATE SKIP LOCKED)"
                        " UPDATE %s m SET %s = '%s', attempts = m.attempts + 1,"
                        " lease_until = now() + make_interval(secs => $2::int)%s"
                        " FROM c WHERE m.id = c.id RETURNING %s",
                        t->table, t->state, t->claimable, t->order_by, t->table, t->state,
                        t->sending, t->claim_set, t->claim_returning);
    if (lease_built(&sql, rc, err, errlen) != 0)
        return NULL;
    char lim[16], lease[16];
    snprintf(lim, sizeof lim, "%d", max);
    snprintf(lease, sizeof lease, "%d", lease_seconds);
    const char *params[] = {lim, lease};
    PGresult *r = db_query(conn, sql.data, 2, params, err, errlen);
    buf_free(&sql);
    return r;
}

int lease_renew(PGconn *conn, const lease_table_t *t, const char *id, int attempt,
                int lease_seconds, char *err, size_t errlen)
{
    if (lease_seconds <= 0) {
        snprintf(err, errlen, "lease must be positive");
        return -1;
    }
    buf_t sql;
    buf_init(&sql, LEASE_SQL_MAX);
    int rc = buf_printf(&sql, "UPDATE %s SET lease_until = now() + make_interval(secs => $3::int)",
                        t->table);
    rc |= lease_fence(&sql, t);
    if (lease_built(&sql, rc, err, errlen) != 0)
        return -1;
    char at[16], lease[16];
    snprintf(at, sizeof at, "%d", attempt);
    snprintf(lease, sizeof lease, "%d", lease_seconds);
    const char *params[] = {id, at, lease};
    PGresult *r = db_query(conn, sql.data, 3, params, err, errlen);
    buf_free(&sql);
    if (!r)
        return -1;
    int renewed = atoi(PQcmdTuples(r)) > 0;
    PQclear(r);
    return renewed;
}

int lease_complete(PGconn *conn, const lease_table_t *t, const char *set, const char *after,
                   int nparams, const char *const *params, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    if (nparams < 2 || nparams > LEASE_PARAMS_MAX || !params[0]) {
        snprintf(err, errlen, "a completion needs an id and an attempt");
        return -1;
    }
    buf_t sql;
    buf_init(&sql, LEASE_SQL_MAX);
    int rc = buf_printf(&sql, "WITH u AS (UPDATE %s SET %s, lease_until = NULL", t->table, set);
    rc |= lease_fence(&sql, t);
    rc |= buf_printf(&sql, " RETURNING id, %s)%s SELECT count(*) FROM u", t->state, after);
    if (lease_built(&sql, rc, err, errlen) != 0)
        return -1;
    Oid types[LEASE_PARAMS_MAX];
    for (int i = 0; i < nparams; i++)
        types[i] = 25; /* text */
    PGresult *r = PQexecParams(conn, sql.data, nparams, types, params, NULL, NULL, 0);
    buf_free(&sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error_text(r, conn, err, errlen);
        PQclear(r);
        return -1;
    }
    *applied = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int lease_rescue(PGconn *conn, const lease_table_t *t, int max_attempts, int *rescued, char *err,
                 size_t errlen)
{
    *rescued = 0;
    buf_t sql;
    buf_init(&sql, LEASE_SQL_MAX);
    /* A row whose lease ran out belonged to a worker that died or hung. It
     * goes back to the queue now, unless it has used up its attempts: a row
     * that kills its worker every time must not loop forever. */
    int rc =
        buf_printf(&sql,
                   "WITH x AS (SELECT id FROM %s WHERE %s = '%s' AND lease_until < now()"
                   "  ORDER BY lease_until LIMIT %d FOR UPDATE SKIP LOCKED),"
                   " u AS (UPDATE %s m SET"
                   "  %s = CASE WHEN m.attempts >= $1::int THEN '%s' ELSE '%s' END,"
                   "  next_attempt_at = now(), lease_until = NULL%s"
                   "  FROM x WHERE m.id = x.id RETURNING %s)%s"
                   " SELECT count(*) FROM u",
                   t->table, t->state, t->sending, t->rescue_max, t->table, t->state, t->failed,
                   t->requeued, t->rescue_set, t->rescue_returning, t->rescue_after);
    if (lease_built(&sql, rc, err, errlen) != 0)
        return -1;
    if (db_begin(conn, err, errlen) != 0) {
        buf_free(&sql);
        return -1;
    }
    const char *key[] = {t->rescue_key};
    PGresult *r =
        db_query(conn, "SELECT pg_try_advisory_xact_lock($1::bigint)", 1, key, err, errlen);
    int moved = 0;
    /* while another instance holds the lock it is rescuing right now:
     * nothing to do here */
    if (r && PQgetvalue(r, 0, 0)[0] == 't') {
        PQclear(r);
        char maxa[16];
        snprintf(maxa, sizeof maxa, "%d", max_attempts);
        const char *params[] = {maxa};
        r = db_query(conn, sql.data, 1, params, err, errlen);
        if (r)
            moved = atoi(PQgetvalue(r, 0, 0));
    }
    rc = r ? 0 : -1;
    PQclear(r);
    buf_free(&sql);
    if (db_end(conn, rc, err, errlen) != 0)
        return -1;
    *rescued = moved;
    return 0;
}
