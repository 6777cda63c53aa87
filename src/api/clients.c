/* clients: the clients API — a client's profile, its communications and
 * its preferences, and the seed's POST /api/crm/preferences. */
#include "api/clients.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "api/refuse.h"
#include "crypto/crypto.h"
#include "engine/intake.h"
#include "engine/prefs.h"
#include "request/prefbody.h"
#include "request/request.h"
#include "store/audit.h"
#include "store/clients.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "util/log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENTS_LIST_DEFAULT 50
#define CLIENTS_LIST_MAX     500

/* Tells the cache what client id is now, after a committed change, on the
 * connection that made it. */
static void clients_publish(const api_t *api, PGconn *conn, const char *id)
{
    char err[512];
    const char *ids[] = {id};
    if (prefs_publish(api->app->prefs, conn, ids, 1, err, sizeof err) != 0)
        log_warn("api", "preference_cache_not_told", "error", err, NULL);
}

/* ------------------------------------------------------------ profile */

void api_client_get(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    char id[37];
    if (api_client_id(rq, id, out) != 0)
        return;
    PGconn *conn = api_db_conn(rq, out, "client_get_failed");
    if (!conn)
        return;
    char err[512] = "";
    char *json = NULL;
    /* The read and its audit entry commit together: contact details never
     * leave without a trace. */
    int rc = db_begin(conn, err, sizeof err);
    if (rc == 0)
        rc = store_client_json(conn, &api->app->keys, id, 1, &json, err, sizeof err);
    if (rc == 0)
        rc = api_audit(rq, conn, "client.read", id,
                       "{\"fields\": [\"name\", \"email\", \"phone\"]}", err, sizeof err);
    int ok = api_db_end(conn, rc, out, "client_get_failed", err, sizeof err) == 0;
    db_pool_put(api->app->pool, conn);
    if (ok)
        http_answer_json(out, 200, json);
    else
        free(json);
}

/* 1 when c gives at least one channel's consent explicitly. */
static int clients_consent_given(const req_client_t *c)
{
    for (int ch = 0; ch < CH_N; ch++)
        if (c->consent[ch] >= 0)
            return 1;
    return 0;
}

void api_client_put(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    char id[37];
    if (api_client_id(rq, id, out) != 0)
        return;
    req_client_t c;
    req_error_t e;
    if (req_parse_client_body(rq->body, rq->body_len, &c, &e) != 0) {
        api_refuse(out, e.kind, e.message);
        return;
    }
    PGconn *conn = api_db_conn(rq, out, "client_put_failed");
    if (!conn) {
        req_client_free(&c);
        return;
    }
    store_client_t up = {0}; /* borrows c's strings */
    snprintf(up.id, sizeof up.id, "%s", id);
    up.name = c.name;
    up.email = c.email;
    up.phone = c.phone;
    up.timezone = c.timezone;
    up.locale = c.locale;
    memcpy(up.consent, c.consent, sizeof up.consent);

    char err[512] = "";
    char *json = NULL;
    int rc = db_begin(conn, err, sizeof err);
    int state = rc == 0 ? store_client_state(conn, id, err, sizeof err) : -1;
    if (state < 0)
        rc = -1;
    else if (state == STORE_ERASED && !clients_consent_given(&c))
        rc = STORE_ERASED; /* made again only with explicit consent */
    if (rc == 0)
        rc = store_consent_context(conn, STORE_SOURCE_API, rq->actor, err, sizeof err);
    if (rc == 0)
        rc = store_client_upsert(conn, &api->app->keys, &up, err, sizeof err);
    if (rc == 0)
        rc = store_client_json(conn, &api->app->keys, id, 0, &json, err, sizeof err);
    int ok = api_db_end(conn, rc, out, "client_put_failed", err, sizeof err) == 0;
    if (ok)
        clients_publish(api, conn, id);
    db_pool_put(api->app->pool, conn);
    req_client_free(&c);
    if (ok)
        http_answer_json(out, state == STORE_NO_CLIENT || state == STORE_ERASED ? 201 : 200, json);
    else
        free(json);
}

void api_client_comms(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    char id[37], before[37] = "";
    if (api_client_id(rq, id, out) != 0)
        return;
    int limit;
    if (api_parse_limit(http_req_query(rq, "limit"), CLIENTS_LIST_DEFAULT, CLIENTS_LIST_MAX,
                        &limit) != 0) {
        http_answer_error(out, 422, "invalid_field", "limit: must be an integer from 1 to 500");
        return;
    }
    const char *b = http_req_query(rq, "before");
    if (b && req_uuid_lower(b, before) != 0) {
        http_answer_error(out, 422, "invalid_field",
                          "before: must be a communication id (next_before of the last page)");
        return;
    }
    PGconn *conn = api_db_conn(rq, out, "client_comms_failed");
    if (!conn)
        return;
    char err[512] = "";
    char *json = NULL;
    int rc =
        store_client_comms_json(conn, id, limit, before[0] ? before : NULL, &json, err, sizeof err);
    int lost = rc < 0 && db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc == 0)
        http_answer_json(out, 200, json);
    else if (rc == STORE_BAD_CURSOR)
        http_answer_error(out, 422, "invalid_field",
                          "before: names none of this client's communications");
    else if (rc > 0)
        api_client_missing(out, rc);
    else
        api_db_failed(out, lost, "client_comms_failed", err);
}

/* -------------------------------------------------------- preferences */

void api_prefs_get(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    char id[37];
    if (api_client_id(rq, id, out) != 0)
        return;
    PGconn *conn = api_db_conn(rq, out, "preferences_get_failed");
    if (!conn)
        return;
    char err[512] = "";
    char *json = NULL;
    int rc = store_prefs_json(conn, id, &json, err, sizeof err);
    int lost = rc < 0 && db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc == 0)
        http_answer_json(out, 200, json);
    else if (rc > 0)
        api_client_missing(out, rc);
    else
        api_db_failed(out, lost, "preferences_get_failed", err);
}

/* Words for the confirmation's templates, from the preferences as the API
 * shows them: "WhatsApp, then email", "23:00 to 07:00", "SMS". */
static const char *clients_channel_word(const char *ch)
{
    return strcmp(ch, "sms") == 0 ? "SMS" : strcmp(ch, "whatsapp") == 0 ? "WhatsApp" : "email";
}

static int clients_confirm_context(const cJSON *prefs, char **ctx_json)
{
    char channels[96] = "", quiet[32] = "", outs[64] = "";
    const cJSON *it;
    size_t at = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(prefs, "preferred_channels"))
    {
        if (!cJSON_IsString(it))
            continue;
        int w = snprintf(channels + at, sizeof channels - at, "%s%s", at ? ", then " : "",
                         clients_channel_word(it->valuestring));
        if (w > 0 && (size_t)w < sizeof channels - at)
            at += (size_t)w;
    }
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(prefs, "quiet_hours_start");
    const cJSON *qe = cJSON_GetObjectItemCaseSensitive(prefs, "quiet_hours_end");
    if (cJSON_IsString(qs) && cJSON_IsString(qe))
        snprintf(quiet, sizeof quiet, "%.5s to %.5s", qs->valuestring, qe->valuestring);
    at = 0;
    for (int ch = 0; ch < CH_N; ch++) {
        char key[32];
        snprintf(key, sizeof key, "opt_out_%s", ch_name((ch_id_t)ch));
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(prefs, key)))
            continue;
        int w = snprintf(outs + at, sizeof outs - at, "%s%s", at ? ", " : "",
                         clients_channel_word(ch_name((ch_id_t)ch)));
        if (w > 0 && (size_t)w < sizeof outs - at)
            at += (size_t)w;
    }
    const cJSON *tz = cJSON_GetObjectItemCaseSensitive(prefs, "timezone");
    cJSON *ctx = cJSON_CreateObject();
    int ok = ctx && cJSON_AddStringToObject(ctx, "channels_text", channels[0] ? channels : "email");
    if (ok && quiet[0])
        ok = cJSON_AddStringToObject(ctx, "quiet_hours_text", quiet) != NULL;
    if (ok && outs[0])
        ok = cJSON_AddStringToObject(ctx, "opt_outs_text", outs) != NULL;
    if (ok)
        ok = cJSON_AddStringToObject(ctx, "timezone",
                                     cJSON_IsString(tz) ? tz->valuestring : "UTC") != NULL;
    *ctx_json = ok ? cJSON_PrintUnformatted(ctx) : NULL;
    cJSON_Delete(ctx);
    return *ctx_json ? 0 : -1;
}

/* What the answer to a change is waiting for: the confirmation's intake. */
typedef struct clients_pending {
    http_pending_t *http;
    char *prefs_json; /* owned */
} clients_pending_t;

/* {"preferences": ..., "confirmation": <the accepted communication or
 * null>}; takes prefs_json and confirmation (either may be NULL). */
static void clients_prefs_answer(http_answer_t *out, char *prefs_json, char *confirmation)
{
    buf_t b;
    buf_init(&b, 128 * 1024);
    int rc = buf_puts(&b, "{\"preferences\":");
    rc |= buf_puts(&b, prefs_json ? prefs_json : "null");
    rc |= buf_puts(&b, ",\"confirmation\":");
    rc |= buf_puts(&b, confirmation ? confirmation : "null");
    rc |= buf_putc(&b, '}');
    free(prefs_json);
    free(confirmation);
    char *body = rc == 0 ? buf_detach(&b) : NULL;
    buf_free(&b);
    if (body)
        http_answer_json(out, 200, body);
    else
        http_answer_error(out, 500, "internal_error", "out of memory");
}

/* The intake's callback: the change is committed either way, so the answer
 * is 200; a confirmation that could not be accepted is null and logged. */
static void clients_confirmed(void *cls, intake_result_t *res)
{
    clients_pending_t *p = cls;
    char *confirmation = NULL;
    if (res->outcome == INTAKE_ACCEPTED || res->outcome == INTAKE_DUPLICATE) {
        confirmation = res->body;
        res->body = NULL;
    } else {
        log_warn("api", "preferences_confirmation_not_sent", "why",
                 res->why ? res->why : "refused by the intake", NULL);
    }
    intake_result_free(res);
    http_answer_t a;
    clients_prefs_answer(&a, p->prefs_json, confirmation);
    http_resume(p->http, &a);
    free(p);
}

/* Submits the preferences_updated message for client id; on success the
 * request is answered later, by clients_confirmed (and 1 is returned). */
static int clients_send_confirmation(const http_req_t *rq, const char *id, char *prefs_json)
{
    const api_t *api = rq->ctx;
    cJSON *prefs = cJSON_Parse(prefs_json);
    char *ctx = NULL;
    int ok = prefs && clients_confirm_context(prefs, &ctx) == 0;
    cJSON_Delete(prefs);
    intake_job_t *job = ok ? intake_job_new() : NULL;
    clients_pending_t *p = job ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        cJSON_free(ctx);
        intake_job_free(job);
        return 0;
    }
    req_comm_t *r = &job->req;
    snprintf(r->plan_id, sizeof r->plan_id, "%s", REQ_NO_PLAN);
    snprintf(r->client_id, sizeof r->client_id, "%s", id);
    snprintf(r->message_type, sizeof r->message_type, "preferences_updated");
    snprintf(r->urgency, sizeof r->urgency, "high");
    r->context_json = ctx; /* the job's now: freed with cJSON_free by req_free */
    cry_sha256_hex(ctx, strlen(ctx), job->request_hash);
    snprintf(job->actor, sizeof job->actor, "%s", rq->actor);
    p->http = http_suspend(rq);
    if (!p->http) {
        free(p);
        intake_job_free(job);
        return 0;
    }
    p->prefs_json = prefs_json;
    job->done = clients_confirmed;
    job->cls = p;
    intake_submit(api->intake, job);
    return 1;
}

/* The change of body for client id (id NULL: the body names it). */
static void clients_prefs_change(const http_req_t *rq, const char *path_id, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    prefbody_t pb;
    req_error_t e;
    if (prefbody_parse(rq->body, rq->body_len, path_id == NULL, &pb, &e) != 0) {
        api_refuse(out, e.kind, e.message);
        return;
    }
    const char *id = path_id ? path_id : pb.client_id;
    PGconn *conn = api_db_conn(rq, out, "preferences_put_failed");
    if (!conn)
        return;
    char err[512] = "";
    char *json = NULL;
    int changed = 0;
    int rc = db_begin(conn, err, sizeof err);
    if (rc == 0)
        rc = store_consent_context(conn, STORE_SOURCE_PREFERENCES, rq->actor, err, sizeof err);
    if (rc == 0)
        rc = store_prefs_update(conn, id, &pb.change, &changed, err, sizeof err);
    if (rc == 0)
        rc = store_prefs_json(conn, id, &json, err, sizeof err);
    int ok = api_db_end(conn, rc, out, "preferences_put_failed", err, sizeof err) == 0;
    /* Once committed, before anything else is decided: the confirmation
     * below must already be decided on the new preferences. */
    if (ok && changed)
        clients_publish(api, conn, id);
    db_pool_put(api->app->pool, conn);
    if (!ok) {
        free(json);
        return;
    }
    if (changed && clients_send_confirmation(rq, id, json))
        return; /* answered with the confirmation */
    if (changed)
        log_warn("api", "preferences_confirmation_not_sent", "why", "out of memory", NULL);
    clients_prefs_answer(out, json, NULL);
}

void api_prefs_put(const http_req_t *rq, http_answer_t *out)
{
    char id[37];
    if (api_client_id(rq, id, out) != 0)
        return;
    clients_prefs_change(rq, id, out);
}

void api_prefs_post_seed(const http_req_t *rq, http_answer_t *out)
{
    clients_prefs_change(rq, NULL, out);
}
