#include "api/prefstats.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "store/db.h"
#include "store/prefstats.h"

void api_analytics_preferences(const http_req_t *rq, http_answer_t *out)
{
    PGconn *conn = api_db_conn(rq, out, "preference_counts_failed");
    if (!conn)
        return;
    char err[512] = "";
    char *json = NULL;
    int rc = store_prefstats_json(conn, &json, err, sizeof err);
    int lost = rc < 0 && db_conn_lost(conn);
    db_pool_put(((const api_t *)rq->ctx)->app->pool, conn);
    if (rc != 0) {
        api_db_failed(out, lost, "preference_counts_failed", err);
        return;
    }
    http_answer_json(out, 200, json);
}
