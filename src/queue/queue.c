#include "queue/queue.h"

#include "crypto/crypto.h"
#include "queue/lease.h"
#include "store/db.h"
#include "util/buf.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A rendered subject is one line cut to 255 bytes; its token is longer,
 * and this leaves room for a caller's longer one. */
#define QUEUE_SUBJECT_TOKEN_MAX 8192

/* The communications table as the lease sees it. A rescued row's last
 * error says why it was put back; its lease_expired event is appended in
 * the same statement. */
static const lease_table_t queue_table = {
    .table = "communications",
    .state = "status",
    .claimable = "'pending', 'queued'",
    .sending = "sending",
    .requeued = "queued",
    .failed = "failed",
    /* the claim index's columns (sql/001_init.sql) */
    .order_by = "priority, next_attempt_at, id",
    .claim_max = 1000,
    /* bounds the rescue's transaction; the next tick takes the rest */
    .rescue_max = 1000,
    /* "crier rescue"; distinct from the migration lock */
    .rescue_key = "7165916605393331",
    .claim_set = ", updated_at = now()",
    .claim_returning = "m.id, m.attempts, m.plan_id, m.client_id, m.message_type, m.urgency,"
                       " m.channel, m.fallback_channels::text, m.context::text,"
                       " m.attempts - m.channel_attempt_base, m.receipt_failure,"
                       " m.error_category, m.provider_code,"
                       " NOT EXISTS (SELECT 1 FROM communication_attachments a"
                       "  WHERE a.communication_id = m.id)",
    .rescue_set = ", failed_at = CASE WHEN m.attempts >= $1::int THEN now() END,"
                  " error_category = 'transient',"
                  " error_message = 'delivery attempt did not finish before its lease expired',"
                  " updated_at = now()",
    .rescue_returning = "m.id, m.status, m.channel, m.attempts",
    .rescue_after = ", ev AS (INSERT INTO delivery_events (communication_id, event_type,"
                    "  delivery_status, channel, attempt, error_details)"
                    "  SELECT u.id, 'lease_expired', u.status, u.channel, u.attempts,"
                    "   'lease expired' FROM u)",
};

void queue_job_free(queue_job_t *j)
{
    if (!j)
        return;
    free(j->plan_id);
    free(j->client_id);
    free(j->message_type);
    free(j->urgency);
    free(j->channel);
    free(j->fallback_json);
    free(j->context_json);
    memset(j, 0, sizeof *j);
}

static char *queue_col(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

int queue_claim(PGconn *conn, int max, int lease_seconds, queue_job_t *jobs, int *n, char *err,
                size_t errlen)
{
    *n = 0;
    if (max <= 0)
        return 0;
    if (max > queue_table.claim_max)
        max = queue_table.claim_max;
    PGresult *r = lease_claim(conn, &queue_table, max, lease_seconds, err, errlen);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i < max; i++) {
        queue_job_t *j = &jobs[i];
        memset(j, 0, sizeof *j);
        snprintf(j->id, sizeof j->id, "%s", PQgetvalue(r, i, 0));
        j->attempt = atoi(PQgetvalue(r, i, 1));
        j->plan_id = queue_col(r, i, 2);
        j->client_id = queue_col(r, i, 3);
        j->message_type = queue_col(r, i, 4);
        j->urgency = queue_col(r, i, 5);
        j->channel = queue_col(r, i, 6);
        j->fallback_json = queue_col(r, i, 7);
        j->context_json = queue_col(r, i, 8);
        j->channel_attempt = atoi(PQgetvalue(r, i, 9));
        j->receipt_failure = PQgetvalue(r, i, 10)[0] == 't';
        snprintf(j->receipt_category, sizeof j->receipt_category, "%s", PQgetvalue(r, i, 11));
        j->receipt_code = atoi(PQgetvalue(r, i, 12));
        j->no_attachments = PQgetvalue(r, i, 13)[0] == 't';
        (*n)++;
        if (!j->plan_id || !j->client_id || !j->message_type || !j->urgency || !j->fallback_json ||
            !j->context_json) {
            /* The rows stay claimed; their leases expire and the rescuer
             * returns them, so nothing is lost by giving up here. */
            for (int k = 0; k < *n; k++)
                queue_job_free(&jobs[k]);
            *n = 0;
            PQclear(r);
            snprintf(err, errlen, "out of memory reading claimed jobs");
            return -1;
        }
    }
    PQclear(r);
    return 0;
}

int queue_renew(PGconn *conn, const char *id, int attempt, int lease_seconds, char *err,
                size_t errlen)
{
    return lease_renew(conn, &queue_table, id, attempt, lease_seconds, err, errlen);
}

/* The SET items of each outcome; lease_complete adds the fence (the claimed
 * attempt still in flight) and clears the lease, and the events CTE reads
 * the updated row from "u", so events are appended only when the fence
 * held. Parameters: $1 id, $2 attempt, $3 channel, $4 subject token, $5
 * provider message id, $6 error category, $7 error message, $8 provider
 * code, $9 detail json, $10 retry_at (epoch s), $11 next channel, $12
 * channels after it (json), $13 skip reason, $14 the hash of the template
 * version rendered and $15 its row (sql/010_templates.sql). A retry leaves
 * the version alone: the attempt that ends the row records its own. Every
 * outcome but a deferral ends a receipt's failure (sql/013_review.sql). */
static const char *const queue_set[] = {
    [QUEUE_SENT] =
        "status = 'sent', receipt_failure = false, sent_at = now(), provider_message_id = $5::text,"
        " subject_enc = COALESCE($4::text, subject_enc), channel = $3::text,"
        " error_category = NULL, error_message = NULL, provider_code = NULL,"
        " template_version = $14::text, template_id = $15::uuid, updated_at = now()",
    [QUEUE_DELIVERED] =
        "status = 'delivered', sent_at = now(), delivered_at = now(), receipt_failure = false,"
        " provider_message_id = $5::text,"
        " subject_enc = COALESCE($4::text, subject_enc), channel = $3::text,"
        " error_category = NULL, error_message = NULL, provider_code = NULL,"
        " template_version = $14::text, template_id = $15::uuid, updated_at = now()",
    /* A switch to the next channel restarts the per-channel attempt count. */
    [QUEUE_RETRY] =
        "status = 'queued', receipt_failure = false, next_attempt_at = to_timestamp($10::float8),"
        " channel = COALESCE($11::text, $3::text),"
        " fallback_channels = COALESCE($12::jsonb, fallback_channels),"
        " channel_attempt_base = CASE WHEN $11::text IS NULL"
        "  THEN channel_attempt_base ELSE attempts END,"
        " error_category = $6::text, error_message = $7::text,"
        " provider_code = $8::int, updated_at = now()",
    [QUEUE_FAILED] =
        "status = 'failed', receipt_failure = false, failed_at = now(), channel = $3::text,"
        " error_category = $6::text, error_message = $7::text,"
        " provider_code = $8::int, template_version = $14::text, template_id = "
        "$15::uuid, updated_at = now()",
    /* The row's last error stays: a deferral is not a failure. */
    [QUEUE_DEFER] = "status = 'queued', attempts = attempts - 1,"
                    " next_attempt_at = to_timestamp($10::float8), updated_at = now()",
    [QUEUE_BOUNCED] =
        "status = 'bounced', receipt_failure = false, failed_at = now(), channel = $3::text,"
        " error_category = $6::text, error_message = $7::text,"
        " provider_code = $8::int, template_version = $14::text,"
        " template_id = $15::uuid, updated_at = now()",
    /* like a row the decision skipped: a reason, no error */
    [QUEUE_SKIPPED] =
        "status = 'skipped', receipt_failure = false, skip_reason = $13::text, channel = $3::text,"
        " error_category = NULL, error_message = NULL, provider_code = NULL,"
        " updated_at = now()",
};

#define QUEUE_EVENTS(types)                                                                        \
    ", ev AS (INSERT INTO delivery_events (communication_id, event_type, delivery_status,"         \
    "  channel, attempt, provider_response, error_details)"                                        \
    "  SELECT u.id, t.event_type,"                                                                 \
    "   CASE WHEN t.event_type = 'sent' THEN 'sent' ELSE u.status END, $3::text, $2::int,"         \
    "   COALESCE($9::jsonb, CASE WHEN $13::text IS NOT NULL"                                       \
    "    THEN jsonb_build_object('reason', $13::text) END),"                                       \
    "   CASE WHEN $13::text IS NOT NULL THEN $13::text WHEN $7::text IS NULL THEN NULL"            \
    "   WHEN $6::text IS NULL THEN $7::text ELSE $6::text || ': ' || $7::text END"                 \
    "  FROM u CROSS JOIN (VALUES " types ") AS t(event_type))"

static const char *const queue_events[] = {
    [QUEUE_SENT] = QUEUE_EVENTS("('sent')"),
    [QUEUE_DELIVERED] = QUEUE_EVENTS("('sent'), ('delivered')"),
    [QUEUE_RETRY] = QUEUE_EVENTS("('retry_scheduled')"),
    [QUEUE_FAILED] = QUEUE_EVENTS("('failed')"),
    [QUEUE_DEFER] = QUEUE_EVENTS("('rate_limited')"),
    [QUEUE_BOUNCED] = QUEUE_EVENTS("('bounced')"),
    [QUEUE_SKIPPED] = QUEUE_EVENTS("('skipped')"),
};

/* A QUEUE_RETRY that is a bounce moving on, or a channel skipped for the
 * next one: the event names what happened on the channel left behind (its
 * status is the row's, queued on the next channel). */
static const char queue_events_retry_bounced[] = QUEUE_EVENTS("('bounced')");
static const char queue_events_retry_skipped[] = QUEUE_EVENTS("('skipped')");

/* The schema accepts only the five categories of the seed; anything else
 * (a classifier's "none" or "unknown") is stored as no category rather than
 * failing the whole batch on the CHECK constraint. */
static const char *queue_category(const char *c)
{
    static const char *const known[] = {"transient", "permanent", "rate_limit", "auth_failure",
                                        "invalid_input"};
    for (size_t i = 0; c && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(c, known[i]) == 0)
            return known[i];
    return NULL;
}

/* Provider detail is stored as jsonb; text that does not parse is dropped
 * so one odd provider answer cannot make the batch's transaction fail. */
static const char *queue_detail(const char *json)
{
    if (!json)
        return NULL;
    cJSON *j = cJSON_Parse(json);
    if (!j)
        return NULL;
    cJSON_Delete(j);
    return json;
}

/* The subject's token, bound to ("communications", "subject", id): the
 * rendered subject holds the client's name, which is encrypted at rest like
 * the client's own columns. 0 with *token NULL when there is no subject. */
static int queue_subject_token(const cry_keys_t *keys, const queue_result_t *x, buf_t *tok,
                               const char **token, char *err, size_t errlen)
{
    *token = NULL;
    buf_reset(tok);
    if (!x->subject || !x->subject[0] ||
        (x->outcome != QUEUE_SENT && x->outcome != QUEUE_DELIVERED))
        return 0;
    const cry_place_t at = {"communications", "subject", x->id};
    if (cry_encrypt(keys, &at, x->subject, strlen(x->subject), tok) != 0) {
        snprintf(err, errlen, "cannot encrypt the subject of %s%s", x->id,
                 keys && keys->loaded ? "" : ": no encryption key");
        return -1;
    }
    *token = tok->data;
    return 0;
}

int queue_complete(PGconn *conn, const cry_keys_t *keys, const queue_result_t *r, int n,
                   int *applied, char *err, size_t errlen)
{
    *applied = 0;
    if (n <= 0)
        return 0;
    /* One transaction for the batch: one commit (one WAL flush) for n rows. */
    if (db_begin(conn, err, errlen) != 0)
        return -1;
    int count = 0, rc = 0;
    buf_t tok;
    buf_init(&tok, QUEUE_SUBJECT_TOKEN_MAX);
    for (int i = 0; i < n && rc == 0; i++) {
        const queue_result_t *x = &r[i];
        if ((int)x->outcome < 0 || x->outcome > QUEUE_SKIPPED || !x->id) {
            snprintf(err, errlen, "bad queue result %d", i);
            rc = -1;
            break;
        }
        const char *subject = NULL;
        rc = queue_subject_token(keys, x, &tok, &subject, err, errlen);
        if (rc != 0)
            break;
        char attempt[16], code[16], retry[64];
        snprintf(attempt, sizeof attempt, "%d", x->attempt);
        snprintf(code, sizeof code, "%d", x->provider_code);
        snprintf(retry, sizeof retry, "%.6f", x->retry_at);
        const char *params[] = {x->id,
                                attempt,
                                x->channel,
                                subject,
                                x->provider_message_id,
                                queue_category(x->error_category),
                                x->error_message,
                                x->provider_code ? code : NULL,
                                queue_detail(x->detail_json),
                                retry,
                                x->next_channel,
                                x->next_fallback_json,
                                x->skip_reason,
                                x->template_version,
                                x->template_id};
        const char *events = queue_events[x->outcome];
        if (x->outcome == QUEUE_RETRY && x->bounced)
            events = queue_events_retry_bounced;
        else if (x->outcome == QUEUE_RETRY && x->skip_reason)
            events = queue_events_retry_skipped;
        int one = 0;
        rc = lease_complete(conn, &queue_table, queue_set[x->outcome], events, 15, params, &one,
                            err, errlen);
        count += one;
    }
    buf_free(&tok);
    if (db_end(conn, rc, err, errlen) != 0)
        return -1;
    *applied = count;
    return 0;
}

int queue_rescue(PGconn *conn, int max_attempts, int *rescued, char *err, size_t errlen)
{
    return lease_rescue(conn, &queue_table, max_attempts, rescued, err, errlen);
}

/* The depth of the unfinished part of the queue. Each count reads only a
 * partial index (the claim index holds pending and queued rows, the lease
 * index sending ones), so its cost follows the backlog, never the history
 * of finished rows. */
int queue_depth(PGconn *conn, queue_depth_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    PGresult *r =
        db_query(conn,
                 "SELECT w.due, w.scheduled,"
                 " (SELECT count(*) FROM communications WHERE status = 'sending')"
                 " FROM (SELECT count(*) FILTER (WHERE next_attempt_at <= now()) AS due,"
                 "              count(*) FILTER (WHERE next_attempt_at > now()) AS scheduled"
                 "       FROM communications WHERE status IN ('pending', 'queued')) w",
                 0, NULL, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) != 1 || PQnfields(r) != 3) {
        PQclear(r);
        snprintf(err, errlen, "unexpected queue depth row");
        return -1;
    }
    out->due = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    out->scheduled = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    out->sending = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    return 0;
}

int queue_listen(PGconn *conn, char *err, size_t errlen)
{
    return db_listen(conn, QUEUE_CHANNEL, err, errlen);
}
int queue_notify(PGconn *conn, char *err, size_t errlen)
{
    return db_exec(conn, "NOTIFY " QUEUE_CHANNEL, err, errlen);
}

static long long queue_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Frees every queued notification; returns how many there were. */
static int queue_drain(PGconn *conn)
{
    int got = 0;
    PGnotify *nt;
    while ((nt = PQnotifies(conn)) != NULL) {
        PQfreemem(nt);
        got++;
    }
    return got;
}

int queue_wait(PGconn *conn, int timeout_ms)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return -1;
    /* Notifications may already sit in libpq's buffer, read along with the
     * result of an earlier command. */
    if (queue_drain(conn) > 0)
        return 1;
    int fd = PQsocket(conn);
    if (fd < 0)
        return -1;
    long long deadline = queue_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        long long left = deadline - queue_now_ms();
        if (left < 0)
            left = 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc > 0) {
            if (p.revents & (POLLERR | POLLNVAL))
                return -1;
            if (PQconsumeInput(conn) != 1 || PQstatus(conn) != CONNECTION_OK)
                return -1;
            if (queue_drain(conn) > 0)
                return 1;
            /* A hang-up with no data left means the server is gone. */
            if ((p.revents & POLLHUP) && !(p.revents & POLLIN))
                return -1;
        }
        if (queue_now_ms() >= deadline)
            return 0;
    }
}
