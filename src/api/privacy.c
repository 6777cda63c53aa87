#include "api/privacy.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "prefcache/prefcache.h"
#include "request/request.h"
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
        rc = api_audit(rq, conn, "client.export", id, detail, err, sizeof err);
    }
    /* 1 and 2 read and wrote nothing: the rollback ends them */
    int ok = api_db_end(conn, rc, out, "client_export_failed", err, sizeof err) == 0;
    db_pool_put(api->app->pool, conn);
    if (ok)
        http_answer_json(out, 200, json);
    else
        free(json);
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
        rc = api_audit(rq, conn, "client.erase", id, detail, err, sizeof err);
    }
    int ok = api_db_end(conn, rc, out, "client_erase_failed", err, sizeof err) == 0;
    db_pool_put(api->app->pool, conn);
    if (!ok)
        return;
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
