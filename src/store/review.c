/* The review queue's SQL: listing, the row a retry re-decides, the retry
 * and the close. Every statement is parameterised. */
#include "store/review.h"

#include "store/db.h"
#include "store/private.h"

#include <stdio.h>
#include <string.h>

#define STORE_LIST_CAP 500

/* Each filter is "$n IS NULL OR column = $n", so one statement serves every
 * combination and the planner still uses the review index for the queue. */
int store_comm_list_json(PGconn *conn, const store_comm_filter_t *f, char **json, char *err,
                         size_t errlen)
{
    *json = NULL;
    char lim[16];
    int limit = f->limit > 0 && f->limit <= STORE_LIST_CAP ? f->limit : STORE_LIST_CAP;
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {f->status,       f->review, f->plan_id, f->client_id,
                            f->message_type, f->since,  f->until,   lim};
    PGresult *r =
        db_query(conn,
                 "SELECT json_build_object('communications', COALESCE(("
                 "  SELECT json_agg(x.o ORDER BY x.created_at DESC, x.id DESC) FROM ("
                 "   SELECT json_build_object(" STORE_COMM_JSON ") AS o, c.created_at, c.id"
                 "   FROM communications c"
                 "   WHERE c.message_type <> 'digest'"
                 "    AND ($1::text IS NULL OR c.status = $1::text)"
                 "    AND ($2::text IS NULL OR c.review = $2::text)"
                 "    AND ($3::uuid IS NULL OR c.plan_id = $3::uuid)"
                 "    AND ($4::uuid IS NULL OR c.client_id = $4::uuid)"
                 "    AND ($5::text IS NULL OR c.message_type = $5::text)"
                 "    AND ($6::timestamptz IS NULL OR c.created_at >= $6::timestamptz)"
                 "    AND ($7::timestamptz IS NULL OR c.created_at < $7::timestamptz)"
                 "   ORDER BY c.created_at DESC, c.id DESC LIMIT $8::int) x), '[]'::json))::text",
                 8, params, err, errlen);
    if (!r)
        return -1;
    int rc = store_json_result(r, json, err, errlen);
    return rc == 1 ? store_fail(err, errlen, "listing communications", "no row") : rc;
}

static void store_review_copy(char *dst, size_t cap, PGresult *r, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, 0, col) ? "" : PQgetvalue(r, 0, col));
}

int store_review_lock(PGconn *conn, const char *id, store_review_target_t *t, char *err,
                      size_t errlen)
{
    memset(t, 0, sizeof *t);
    const char *params[] = {id};
    PGresult *r = db_query(conn,
                           "SELECT message_type, urgency, preferred_channel, client_id, status,"
                           " review, EXISTS (SELECT 1 FROM communication_attachments a"
                           "  WHERE a.communication_id = c.id)"
                           " FROM communications c WHERE c.id = $1::uuid FOR UPDATE",
                           1, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    store_review_copy(t->message_type, sizeof t->message_type, r, 0);
    store_review_copy(t->urgency, sizeof t->urgency, r, 1);
    store_review_copy(t->preferred_channel, sizeof t->preferred_channel, r, 2);
    store_review_copy(t->client_id, sizeof t->client_id, r, 3);
    store_review_copy(t->status, sizeof t->status, r, 4);
    store_review_copy(t->review, sizeof t->review, r, 5);
    t->has_attachment = store_bool_col(r, 6);
    PQclear(r);
    return 0;
}

/* 0 when one row changed, 1 when none did, -1 when the statement failed
 * (db_query has set err). */
static int store_review_changed(PGresult *r)
{
    if (!r)
        return -1;
    const char *n = PQcmdTuples(r);
    int changed = n && strcmp(n, "1") == 0;
    PQclear(r);
    return changed ? 0 : 1;
}

int store_review_retry(PGconn *conn, const char *id, const store_review_chain_t *c, char *err,
                       size_t errlen)
{
    char at[32], prio[8];
    snprintf(at, sizeof at, "%.3f", c->send_at);
    snprintf(prio, sizeof prio, "%d", c->priority);
    const char *params[] = {id,   c->status,        c->channel,       c->fallback_json, at,
                            prio, c->decision_json, c->rules_version, c->skip_reason};
    /* channel_attempt_base = attempts: the rules count the new chain's
     * attempts from 1, while attempts (the completion fence) goes on. */
    PGresult *r = db_query(
        conn,
        "WITH u AS (UPDATE communications SET status = $2::text, channel = $3::text,"
        "  fallback_channels = $4::jsonb, send_at = to_timestamp($5::float8),"
        "  next_attempt_at = to_timestamp($5::float8), priority = $6::smallint,"
        "  decision = $7::jsonb, rules_version = $8::text, skip_reason = $9::text,"
        "  channel_attempt_base = attempts, error_category = NULL, error_message = NULL,"
        "  provider_code = NULL, failed_at = NULL, receipt_failure = false, lease_until = NULL,"
        "  review = 'retried', reviewed_at = now(), updated_at = now()"
        "  WHERE id = $1::uuid AND review = 'open' RETURNING id, attempts)"
        " INSERT INTO delivery_events (communication_id, event_type, delivery_status, channel,"
        "  attempt, provider_response)"
        " SELECT u.id, 'review_retried', $2::text, $3::text, u.attempts,"
        "  jsonb_build_object('rules_version', $8::text) FROM u",
        9, params, err, errlen);
    return store_review_changed(r);
}

int store_review_resolve(PGconn *conn, const char *id, const char *note, char *err, size_t errlen)
{
    const char *params[] = {id, note};
    PGresult *r = db_query(
        conn,
        "WITH u AS (UPDATE communications SET review = 'resolved', review_note = $2::text,"
        "  reviewed_at = now(), updated_at = now()"
        "  WHERE id = $1::uuid AND review = 'open' RETURNING id, attempts, status, channel)"
        " INSERT INTO delivery_events (communication_id, event_type, delivery_status, channel,"
        "  attempt)"
        " SELECT u.id, 'review_resolved', u.status, u.channel, u.attempts FROM u",
        2, params, err, errlen);
    return store_review_changed(r);
}
