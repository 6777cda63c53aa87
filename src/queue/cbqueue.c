#include "queue/cbqueue.h"

#include "queue/lease.h"
#include "store/db.h"
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The workflow_callbacks table as the lease sees it. */
static const lease_table_t cbqueue_table = {
    .table = "workflow_callbacks",
    .state = "state",
    .claimable = "'pending'",
    .sending = "sending",
    .requeued = "pending",
    .failed = "failed",
    /* the due index's columns (sql/001_init.sql) */
    .order_by = "next_attempt_at, id",
    .claim_max = 100,
    .rescue_max = 100,
    /* distinct from the communications' rescuer and the migration lock */
    .rescue_key = "7165916605393332",
    .claim_set = "",
    .claim_returning =
        "m.id::text, m.attempts, m.event_type, m.payload::text, m.payload_enc, m.seq::text",
    .rescue_set = ", last_error = 'the attempt did not finish before its lease expired'",
    .rescue_returning = "m.id",
    .rescue_after = "",
};

void cbqueue_job_free(cbqueue_job_t *j)
{
    free(j->id);
    free(j->event_type);
    free(j->payload);
    memset(j, 0, sizeof *j);
}

/* The body of a claimed row: payload_enc decrypted when the row has one
 * (bound to the row, see store/receipts.c), else the payload as stored
 * (rows written in clear by another writer). NULL with job->unreadable set
 * when the token does not open, or on out of memory (job->unreadable
 * unset). */
static char *cbqueue_body(const cry_keys_t *keys, PGresult *r, int i, cbqueue_job_t *job)
{
    if (PQgetisnull(r, i, 4))
        return strdup(PQgetvalue(r, i, 3));
    const cry_place_t at = {"workflow_callbacks", "payload", job->id};
    buf_t plain;
    buf_init(&plain, (size_t)PQgetlength(r, i, 4));
    if (cry_decrypt(keys, &at, PQgetvalue(r, i, 4), &plain) != 0) {
        buf_free(&plain);
        job->unreadable = 1;
        return NULL;
    }
    return buf_detach(&plain);
}

/* The body as sent: the row's object with "event_id" (the row's id, the
 * receiver's de-duplication key) and "seq" (its place in the order of all
 * callbacks) first. Every writer's row gets them here, whoever wrote it and
 * whether its body is encrypted, so no writer has to know them. body is a
 * JSON object (writers store nothing else); anything else is sent as it is.
 * Takes body; NULL on out of memory. */
static char *cbqueue_stamp(char *body, const char *id, const char *seq)
{
    const char *p = body;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    if (*p != '{')
        return body;
    p++;
    const char *q = p;
    while (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')
        q++;
    buf_t out;
    buf_init(&out, strlen(body) + 128);
    int rc =
        buf_printf(&out, "{\"event_id\": \"%s\", \"seq\": %s%s", id, seq, *q == '}' ? "" : ", ");
    rc |= buf_puts(&out, q);
    free(body);
    if (rc) {
        buf_free(&out);
        return NULL;
    }
    return buf_detach(&out);
}

int cbqueue_claim(PGconn *conn, const cry_keys_t *keys, int lease_seconds, int max,
                  cbqueue_job_t *jobs, char *err, size_t errlen)
{
    if (max <= 0)
        return 0;
    memset(jobs, 0, (size_t)max * sizeof *jobs);
    PGresult *r = lease_claim(conn, &cbqueue_table, max, lease_seconds, err, errlen);
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n > max)
        n = max; /* LIMIT guarantees it; the bound keeps jobs[] safe regardless */
    int ok = 1;
    for (int i = 0; i < n; i++) {
        cbqueue_job_t *job = &jobs[i];
        job->id = strdup(PQgetvalue(r, i, 0));
        job->attempt = atoi(PQgetvalue(r, i, 1));
        job->event_type = strdup(PQgetvalue(r, i, 2));
        if (job->id)
            job->payload = cbqueue_body(keys, r, i, job);
        if (job->payload)
            job->payload = cbqueue_stamp(job->payload, job->id, PQgetvalue(r, i, 5));
        if (!job->id || !job->event_type || (!job->payload && !job->unreadable))
            ok = 0;
    }
    PQclear(r);
    if (!ok) {
        /* The rows stay claimed; their leases expire and the rescuer returns
         * them. */
        for (int i = 0; i < n; i++)
            cbqueue_job_free(&jobs[i]);
        snprintf(err, errlen, "out of memory reading a claimed callback");
        return -1;
    }
    return n;
}

int cbqueue_renew(PGconn *conn, const cbqueue_job_t *job, int lease_seconds, char *err,
                  size_t errlen)
{
    return lease_renew(conn, &cbqueue_table, job->id, job->attempt, lease_seconds, err, errlen);
}

/* $3 the new state, $4 the retry delay (s), $5 the last error. */
static const char cbqueue_set[] =
    "state = $3::text,"
    " next_attempt_at = CASE WHEN $3::text = 'pending'"
    "  THEN now() + make_interval(secs => $4::int) ELSE next_attempt_at END,"
    " delivered_at = CASE WHEN $3::text = 'delivered' THEN now() END,"
    /* delivered: the workflow has the client's words, so the row keeps only
     * the event and the ids */
    " payload = CASE WHEN $3::text = 'delivered'"
    "  THEN crier_callback_bare(payload) ELSE payload END,"
    " payload_enc = CASE WHEN $3::text = 'delivered' THEN NULL ELSE payload_enc END,"
    " last_error = $5::text";

int cbqueue_complete(PGconn *conn, const cbqueue_job_t *job, cbqueue_outcome_t outcome, int delay_s,
                     const char *error, char *err, size_t errlen)
{
    static const char *const states[] = {[CBQUEUE_DELIVERED] = "delivered",
                                         [CBQUEUE_RETRY] = "pending",
                                         [CBQUEUE_FAILED] = "failed"};
    if ((int)outcome < 0 || outcome > CBQUEUE_FAILED) {
        snprintf(err, errlen, "bad callback outcome %d", (int)outcome);
        return -1;
    }
    char attempt[16], delay[16];
    snprintf(attempt, sizeof attempt, "%d", job->attempt);
    snprintf(delay, sizeof delay, "%d", delay_s);
    const char *params[] = {job->id, attempt, states[outcome], delay, error};
    int applied = 0;
    if (lease_complete(conn, &cbqueue_table, cbqueue_set, "", 5, params, &applied, err, errlen) !=
        0)
        return -1;
    return applied > 0;
}

int cbqueue_rescue(PGconn *conn, int max_attempts, int *rescued, char *err, size_t errlen)
{
    return lease_rescue(conn, &cbqueue_table, max_attempts, rescued, err, errlen);
}

int cbqueue_listen(PGconn *conn, char *err, size_t errlen)
{
    return db_listen(conn, CBQUEUE_CHANNEL, err, errlen);
}
