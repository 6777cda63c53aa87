#include "api/privacy.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "prefcache/prefcache.h"
#include "request/request.h"
#include "store/audit.h"
#include "store/db.h"
#include "store/privacy.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_client_export(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    char id[37];
    if (api_client_id(rq, id, out) != 0)
        return;
    PGconn *conn = api_db_conn(rq, out, "client_export_failed");
    if (!conn)
        return;
    char err[512] = "";
    char *json = NULL;
    /* The document and its audit entry commit together: an export that
     * left no trace is not possible, nor a trace of one that failed. */
    int rc = store_export_begin(conn, err, sizeof err);
    if (rc == 0)
        rc = store_client_export_json(conn, &api->app->keys, id, &json, err, sizeof err);
    if (rc == 0) {
        char detail[64];
        snprintf(detail, sizeof detail, "{\"bytes\": %zu}", strlen(json));
        const store_audit_t a = {.actor = rq->actor,
                                 .action = "client.export",
                                 .subject_type = "client",
                                 .subject_id = id,
                                 .address = rq->peer,
                                 .detail_json = detail};
        rc = store_audit_write(conn, &a, err, sizeof err);
    }
    /* 1 and 2 read and wrote nothing: the rollback ends them */
    int end = db_end(conn, rc, err, sizeof err);
    int lost = (rc < 0 || (rc == 0 && end != 0)) && db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc == 0 && end == 0) {
        http_answer_json(out, 200, json);
        return;
    }
    free(json);
    if (rc > 0)
        api_client_missing(out, rc);
    else
        api_db_failed(out, lost, "client_export_failed", err);
}

/* {"client_id", "erased_at", "cancelled"}, or NULL when out of memory. */
static char *privacy_erase_body(const char *id, const store_erase_counts_t *c)
{
    buf_t b;
    buf_init(&b, 256);
    int rc = buf_puts(&b, "{\"client_id\":") | jtext_string(&b, id) |
             buf_puts(&b, ",\"erased_at\":") | jtext_string(&b, c->erased_at) |
             buf_printf(&b, ",\"cancelled\":%d}", c->cancelled);
    if (rc) {
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b);
}

void api_client_erase(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    char id[37];
    if (api_client_id(rq, id, out) != 0)
        return;
    PGconn *conn = api_db_conn(rq, out, "client_erase_failed");
    if (!conn)
        return;
    char err[512] = "";
    store_erase_counts_t c;
    memset(&c, 0, sizeof c);
    /* One transaction: the erasure and its audit entry, which says who
     * asked and what it changed (counts only). */
    int rc = db_begin(conn, err, sizeof err);
    if (rc == 0)
        rc = store_client_erase(conn, id, rq->actor, &c, err, sizeof err);
    if (rc == 0) {
        char detail[256];
        snprintf(detail, sizeof detail,
                 "{\"communications\": %d, \"cancelled\": %d, \"events\": %d,"
                 " \"attachments\": %d, \"inbound_messages\": %d, \"callbacks\": %d,"
                 " \"callbacks_failed\": %d}",
                 c.communications, c.cancelled, c.events, c.attachments, c.inbound, c.callbacks,
                 c.callbacks_failed);
        const store_audit_t a = {.actor = rq->actor,
                                 .action = "client.erase",
                                 .subject_type = "client",
                                 .subject_id = id,
                                 .address = rq->peer,
                                 .detail_json = detail};
        rc = store_audit_write(conn, &a, err, sizeof err);
    }
    int end = db_end(conn, rc, err, sizeof err);
    int lost = (rc < 0 || (rc == 0 && end != 0)) && db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc > 0) {
        api_client_missing(out, rc);
        return;
    }
    if (rc < 0 || end != 0) {
        api_db_failed(out, lost, "client_erase_failed", err);
        return;
    }
    /* once committed: no process may decide from the cached preferences */
    const char *ids[] = {id};
    const char *none[] = {NULL};
    (void)prefcache_put(api->app->prefs, ids, none, 1); /* a failure is logged by the cache */
    log_info("api", "client_erased", "client_id", id, "actor", rq->actor, NULL);
    char *body = privacy_erase_body(id, &c);
    if (!body)
        http_answer_error(out, 500, "internal_error", "out of memory");
    else
        http_answer_json(out, 200, body);
}
