/* clients: the clients API — a client's profile, its communications and
 * its preferences, and the seed's POST /api/crm/preferences. */
#include "api/clients.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "api/prefchange.h"
#include "api/refuse.h"
#include "request/prefbody.h"
#include "request/request.h"
#include "store/audit.h"
#include "store/clients.h"
#include "store/db.h"
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENTS_LIST_DEFAULT 50
#define CLIENTS_LIST_MAX     500

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
        api_prefs_publish(api, conn, id);
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

/* The answer once the confirmation was taken: the change is committed
 * either way, so it is 200. */
static void clients_confirmed(void *cls, char *confirmation, http_answer_t *out)
{
    clients_prefs_answer(out, cls, confirmation);
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
    const api_prefs_change_t c = {
        .client_id = id,
        .change = &pb.change,
        .source = STORE_SOURCE_PREFERENCES,
        .actor = rq->actor,
    };
    char err[512] = "";
    char *json = NULL;
    int changed = 0, lost = 0;
    int rc = api_prefs_apply(api, &c, &changed, NULL, &json, &lost, err, sizeof err);
    if (rc > 0) {
        api_client_missing(out, rc);
        return;
    }
    if (rc < 0) {
        api_db_failed(out, lost, "preferences_put_failed", err);
        return;
    }
    if (changed && api_prefs_confirm(rq, id, json, rq->actor, clients_confirmed, json))
        return; /* answered with the confirmation */
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
