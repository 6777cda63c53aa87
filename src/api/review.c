#include "api/review.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "engine/review.h"
#include "request/request.h"
#include "store/db.h"
#include "store/review.h"
#include "util/log.h"
#include "validate.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REVIEW_DEFAULT_LIMIT 100
#define REVIEW_MAX_LIMIT     500

/* s when it is one of set[0..n), else NULL. */
static const char *review_word(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return set[i];
    return NULL;
}

/* "YYYY-MM-DDTHH:MM:SSZ" (an optional fraction before the Z) and nothing
 * else: PostgreSQL reads many more shapes, and a filter that quietly means
 * something else is worse than a refusal. */
static int review_time_ok(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i]; i++)
        if (!s[i] || (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]))
            return 0;
    if (s[i] == '.') {
        size_t digits = 0;
        for (i++; s[i] >= '0' && s[i] <= '9' && digits < 6; i++)
            digits++;
        if (!digits)
            return 0;
    }
    return s[i] == 'Z' && s[i + 1] == '\0';
}

/* The query's filters into f (strings pointing into the request or ids);
 * 0, or -1 with out set to 422 naming the field. */
static int review_filter(const http_req_t *rq, store_comm_filter_t *f, char plan[37],
                         char client[37], http_answer_t *out)
{
    static const char *const statuses[] = {"pending", "queued", "sent",    "delivered", "opened",
                                           "clicked", "failed", "bounced", "skipped",   "batched"};
    static const char *const reviews[] = {"open", "retried", "resolved"};
    memset(f, 0, sizeof *f);
    const char *v = http_req_query(rq, "status");
    if (v && !(f->status = review_word(v, statuses, sizeof statuses / sizeof statuses[0]))) {
        http_answer_error(out, 422, "invalid_field", "status: not a communication status");
        return -1;
    }
    v = http_req_query(rq, "review");
    if (v && !(f->review = review_word(v, reviews, 3))) {
        http_answer_error(out, 422, "invalid_field", "review: must be open, retried or resolved");
        return -1;
    }
    if (api_query_uuid(rq, "plan_id", plan, &f->plan_id, out) != 0 ||
        api_query_uuid(rq, "client_id", client, &f->client_id, out) != 0)
        return -1;
    v = http_req_query(rq, "message_type");
    if (v && !(f->message_type = review_word(v, val_message_types, VAL_REQUEST_TYPES + 1))) {
        http_answer_error(out, 422, "invalid_field", "message_type: unknown message type");
        return -1;
    }
    static const char *const times[] = {"since", "until"};
    for (int i = 0; i < 2; i++) {
        v = http_req_query(rq, times[i]);
        if (v && !review_time_ok(v)) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s: must be an ISO-8601 UTC time, 2026-11-24T22:33:50Z",
                     times[i]);
            http_answer_error(out, 422, "invalid_field", msg);
            return -1;
        }
        *(i ? &f->until : &f->since) = v;
    }
    if (api_parse_limit(http_req_query(rq, "limit"), REVIEW_DEFAULT_LIMIT, REVIEW_MAX_LIMIT,
                        &f->limit) != 0) {
        http_answer_error(out, 422, "invalid_field", "limit: must be an integer from 1 to 500");
        return -1;
    }
    return 0;
}

void api_comm_list(const http_req_t *rq, http_answer_t *out)
{
    store_comm_filter_t f;
    char plan[37], client[37];
    if (review_filter(rq, &f, plan, client, out) != 0)
        return;
    PGconn *conn = api_db_conn(rq, out, "comm_list_failed");
    if (!conn)
        return;
    char err[512] = "";
    char *json = NULL;
    int rc = store_comm_list_json(conn, &f, &json, err, sizeof err);
    int lost = rc < 0 && db_conn_lost(conn);
    db_pool_put(((const api_t *)rq->ctx)->app->pool, conn);
    if (rc != 0) {
        api_db_failed(out, lost, "comm_list_failed", err);
        return;
    }
    http_answer_json(out, 200, json);
}

/* The answer to anything but REVIEW_DONE. */
static void review_refused(review_rc_t rc, PGconn *conn, const char *what, const char *err,
                           http_answer_t *out)
{
    switch (rc) {
    case REVIEW_NOT_FOUND:
        http_answer_error(out, 404, "not_found", "no communication with this id");
        return;
    case REVIEW_NOT_OPEN:
        http_answer_error(out, 409, "not_in_review",
                          "this communication is not waiting for review (see its review field)");
        return;
    case REVIEW_ERASED:
        http_answer_error(out, 410, "client_erased", "its client's data was erased");
        return;
    default:
        api_db_failed(out, db_conn_lost(conn), what, err);
    }
}

void api_comm_retry(const http_req_t *rq, http_answer_t *out)
{
    char id[37];
    if (api_comm_id(rq, id, out) != 0)
        return;
    PGconn *conn = api_db_conn(rq, out, "review_retry_failed");
    if (!conn)
        return;
    char err[512] = "";
    char *json = NULL;
    const api_t *api = rq->ctx;
    review_rc_t rc = review_retry(api->app, conn, id, &json, err, sizeof err);
    if (rc == REVIEW_DONE) {
        log_info("review", "retried", "communication_id", id, NULL);
        http_answer_json(out, 202, json);
    } else {
        review_refused(rc, conn, "review_retry_failed", err, out);
    }
    db_pool_put(api->app->pool, conn);
}

/* {"note": "..."} or {}: 0 with *note (the caller's, free; NULL when none),
 * or -1 with out set to 422. */
static int review_note(const http_req_t *rq, char **note, http_answer_t *out)
{
    *note = NULL;
    cJSON *root = cJSON_ParseWithLength(rq->body, rq->body_len);
    const char *why = NULL;
    if (!cJSON_IsObject(root))
        why = "the body must be a JSON object: {\"note\": \"...\"}";
    const cJSON *it;
    const cJSON *fields = why ? NULL : root;
    cJSON_ArrayForEach(it, fields)
    {
        if (strcmp(it->string, "note") != 0) {
            why = "unknown field (only \"note\")";
        } else if (!cJSON_IsString(it) && !cJSON_IsNull(it)) {
            why = "note: must be a string";
        } else if (cJSON_IsString(it)) {
            if (strlen(it->valuestring) > STORE_REVIEW_NOTE_MAX)
                why = "note: at most 1000 bytes";
            else if (!(*note = strdup(it->valuestring)))
                why = "out of memory";
        }
    }
    cJSON_Delete(root);
    if (!why)
        return 0;
    free(*note);
    *note = NULL;
    http_answer_error(out, 422, "invalid_field", why);
    return -1;
}

void api_comm_resolve(const http_req_t *rq, http_answer_t *out)
{
    char id[37];
    char *note = NULL;
    if (api_comm_id(rq, id, out) != 0 || review_note(rq, &note, out) != 0)
        return;
    PGconn *conn = api_db_conn(rq, out, "review_resolve_failed");
    if (!conn) {
        free(note);
        return;
    }
    char err[512] = "";
    const api_t *api = rq->ctx;
    review_rc_t rc = review_resolve(conn, id, note, err, sizeof err);
    free(note);
    if (rc == REVIEW_DONE) {
        log_info("review", "resolved", "communication_id", id, NULL);
        char body[96];
        snprintf(body, sizeof body, "{\"communication_id\":\"%s\",\"review\":\"resolved\"}", id);
        http_answer_json(out, 200, strdup(body)); /* NULL (out of memory) answers 500 */
    } else {
        review_refused(rc, conn, "review_resolve_failed", err, out);
    }
    db_pool_put(api->app->pool, conn);
}
