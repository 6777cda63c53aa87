#include "api/comms.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "api/refuse.h"
#include "crypto/crypto.h"
#include "engine/intake.h"
#include "request/request.h"
#include "store/db.h"
#include "store/store.h"
#include "util/log.h"

#include <stdio.h>
#include <string.h>

#define COMMS_DEFAULT_LIMIT 100
#define COMMS_MAX_LIMIT     500
#define COMMS_DEFAULT_BODY  (1024 * 1024)

/* Runs one read on a pooled connection; fn returns 0, 1 (not found) or -1. */
typedef int (*comms_read_fn)(PGconn *conn, const void *arg, char **json, char *err, size_t errlen);

static int comms_read(const http_req_t *rq, comms_read_fn fn, const void *arg, char **json,
                      http_answer_t *out, const char *what)
{
    const api_t *api = rq->ctx;
    char err[512] = "";
    PGconn *conn = db_pool_get(api->app->pool, err, sizeof err);
    if (!conn) {
        api_db_failed(out, 1, what, err);
        return -1;
    }
    if (db_ensure(conn) != 0) {
        db_pool_put(api->app->pool, conn);
        api_db_failed(out, 1, what, "connection unusable");
        return -1;
    }
    int rc = fn(conn, arg, json, err, sizeof err);
    int lost = rc < 0 && db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc < 0)
        api_db_failed(out, lost, what, err);
    return rc;
}

static int comms_get_fn(PGconn *conn, const void *arg, char **json, char *err, size_t errlen)
{
    return store_comm_get_json(conn, arg, json, err, errlen);
}

void api_comm_get(const http_req_t *rq, http_answer_t *out)
{
    char id[37];
    if (req_uuid_lower(http_req_param(rq, "id"), id) != 0) {
        http_answer_error(out, 422, "invalid_field", "id: not a valid UUID");
        return;
    }
    char *json = NULL;
    int rc = comms_read(rq, comms_get_fn, id, &json, out, "comm_get_failed");
    if (rc == 1)
        http_answer_error(out, 404, "not_found", "no communication with this id");
    else if (rc == 0)
        http_answer_json(out, 200, json);
}

typedef struct comms_list_arg {
    const char *plan_id;
    int limit;
} comms_list_arg_t;

static int comms_list_fn(PGconn *conn, const void *arg, char **json, char *err, size_t errlen)
{
    const comms_list_arg_t *a = arg;
    return store_plan_list_json(conn, a->plan_id, a->limit, json, err, errlen);
}

void api_plan_list(const http_req_t *rq, http_answer_t *out)
{
    char plan[37];
    if (req_uuid_lower(http_req_param(rq, "plan_id"), plan) != 0) {
        http_answer_error(out, 422, "invalid_field", "plan_id: not a valid UUID");
        return;
    }
    if (strcmp(plan, REQ_NO_PLAN) == 0) {
        /* it would list every client's own messages: they are listed per client */
        http_answer_error(out, 422, "invalid_field",
                          "plan_id: the nil UUID names no plan; see /v1/clients/{client_id}/"
                          "communications");
        return;
    }
    comms_list_arg_t arg = {.plan_id = plan};
    if (api_parse_limit(http_req_query(rq, "limit"), COMMS_DEFAULT_LIMIT, COMMS_MAX_LIMIT,
                        &arg.limit) != 0) {
        http_answer_error(out, 422, "invalid_field", "limit: must be an integer from 1 to 500");
        return;
    }
    char *json = NULL;
    int rc = comms_read(rq, comms_list_fn, &arg, &json, out, "plan_list_failed");
    if (rc == 1)
        http_answer_error(out, 404, "not_found", "no such plan");
    else if (rc == 0)
        http_answer_json(out, 200, json);
}

/* The answer to what the intake made of a request. */
static void comms_result_answer(intake_result_t *res, http_answer_t *out)
{
    switch (res->outcome) {
    case INTAKE_ACCEPTED:
    case INTAKE_DUPLICATE: /* the first request's answer, as it was */
        http_answer_json(out, 202, res->body);
        res->body = NULL;
        return;
    case INTAKE_CONFLICT:
        http_answer_error(out, 409, "idempotency_conflict",
                          "Idempotency-Key was already used with a different body");
        return;
    case INTAKE_UNKNOWN_CLIENT:
        http_answer_error(out, 422, "unknown_client",
                          "client_id: unknown client; include a client object to create it");
        return;
    case INTAKE_ERASED:
        http_answer_error(out, 410, "client_erased",
                          "client_id: this client was erased; make it again with explicit "
                          "consent (a client object with consent) to send to it");
        return;
    case INTAKE_UNAVAILABLE:
        http_answer_error(out, 503, "service_unavailable", res->why);
        return;
    case INTAKE_STORE_UNAVAILABLE:
        http_answer_error(out, 503, "database_unavailable",
                          "the database is unavailable; nothing was accepted, retry later");
        return;
    case INTAKE_FAILED:
        break;
    }
    http_answer_error(out, 500, "internal_error", res->why);
}

/* The intake's callback, from its thread: answers the suspended request. */
static void comms_created(void *cls, intake_result_t *res)
{
    http_answer_t a;
    comms_result_answer(res, &a);
    intake_result_free(res);
    http_resume(cls, &a);
}

void api_comm_create(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    /* Draining after SIGTERM: a message taken now would wait for the next
     * process; the caller can send it to another one at once. */
    if (atomic_load(&api->app->stopping)) {
        http_answer_error(out, 503, "service_unavailable",
                          "this server is stopping; nothing was accepted, retry on another");
        return;
    }
    const char *key = http_req_header(rq, "Idempotency-Key");
    if (key && !req_idempotency_key_ok(key)) {
        http_answer_error(out, 422, "invalid_field",
                          "Idempotency-Key: must be 1 to 200 printable ASCII characters");
        return;
    }
    intake_job_t *job = intake_job_new();
    if (!job) {
        http_answer_error(out, 500, "internal_error", "out of memory");
        return;
    }
    const cfg_t *cfg = api->app->cfg;
    size_t max_body = cfg->max_body ? cfg->max_body : COMMS_DEFAULT_BODY;
    req_error_t e;
    if (req_parse(rq->body, rq->body_len, max_body, &job->req, &e) != 0) {
        api_refuse(out, e.kind, e.message);
        intake_job_free(job);
        return;
    }
    /* The raw bytes, not the parsed value: a replay must be the same
     * request byte for byte to get the stored answer. */
    cry_sha256_hex(rq->body, rq->body_len, job->request_hash);
    if (key)
        snprintf(job->idempotency_key, sizeof job->idempotency_key, "%s", key);
    snprintf(job->actor, sizeof job->actor, "%s", rq->actor);
    /* Held back before it is submitted: the intake may answer at once. */
    http_pending_t *pending = http_suspend(rq);
    if (!pending) {
        intake_job_free(job);
        http_answer_error(out, 503, "service_unavailable", "shutting down");
        return;
    }
    job->done = comms_created;
    job->cls = pending;
    intake_submit(api->intake, job);
}
