#include "api/dbreply.h"

#include "api/api.h"
#include "request/request.h"
#include "store/audit.h"
#include "store/clients.h"
#include "store/db.h"
#include "util/log.h"

#include <stdio.h>
#include <string.h>

void api_db_failed(http_answer_t *out, int lost, const char *what, const char *err)
{
    if (lost) {
        http_answer_error(out, 503, "database_unavailable", "the database is unavailable");
        return;
    }
    log_error("api", what, "error", err, NULL);
    http_answer_error(out, 500, "internal_error", "the request could not be completed");
}

PGconn *api_db_take(const api_t *api, char *err, size_t errlen)
{
    PGconn *conn = db_pool_get(api->app->pool, err, errlen);
    if (conn && db_ensure(conn) != 0) {
        db_pool_put(api->app->pool, conn);
        conn = NULL;
        snprintf(err, errlen, "connection unusable");
    }
    return conn;
}

PGconn *api_db_conn(const http_req_t *rq, http_answer_t *out, const char *what)
{
    char err[512] = "";
    PGconn *conn = api_db_take(rq->ctx, err, sizeof err);
    if (!conn)
        api_db_failed(out, 1, what, err);
    return conn;
}

int api_client_id(const http_req_t *rq, char id[37], http_answer_t *out)
{
    if (req_uuid_lower(http_req_param(rq, "client_id"), id) == 0)
        return 0;
    http_answer_error(out, 422, "invalid_field", "client_id: not a valid UUID");
    return -1;
}

int api_comm_id(const http_req_t *rq, char id[37], http_answer_t *out)
{
    if (req_uuid_lower(http_req_param(rq, "id"), id) == 0)
        return 0;
    http_answer_error(out, 422, "invalid_field", "id: not a valid UUID");
    return -1;
}

int api_query_uuid(const http_req_t *rq, const char *name, char buf[37], const char **id,
                   http_answer_t *out)
{
    const char *v = http_req_query(rq, name);
    *id = NULL;
    if (!v)
        return 0;
    if (req_uuid_lower(v, buf) != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s: not a valid UUID", name);
        http_answer_error(out, 422, "invalid_field", msg);
        return -1;
    }
    *id = buf;
    return 0;
}

int api_db_end(PGconn *conn, int rc, http_answer_t *out, const char *what, char *err, size_t errlen)
{
    int end = db_end(conn, rc, err, errlen);
    if (rc == 0 && end == 0)
        return 0;
    if (rc > 0)
        api_client_missing(out, rc);
    else
        api_db_failed(out, db_conn_lost(conn), what, err);
    return -1;
}

int api_audit(const http_req_t *rq, PGconn *conn, const char *action, const char *id,
              const char *detail_json, char *err, size_t errlen)
{
    const store_audit_t a = {.actor = rq->actor,
                             .action = action,
                             .subject_type = "client",
                             .subject_id = id,
                             .address = rq->peer,
                             .detail_json = detail_json};
    return store_audit_write(conn, &a, err, errlen);
}

int api_parse_limit(const char *s, int def, int max, int *out)
{
    *out = def;
    if (!s)
        return 0;
    size_t n = strlen(s);
    int v = 0;
    if (n == 0 || n > 6)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

void api_client_missing(http_answer_t *out, int rc)
{
    if (rc == STORE_NO_CLIENT)
        http_answer_error(out, 404, "not_found", "no client with this id");
    else
        http_answer_error(out, 410, "client_erased",
                          "client_id: this client was erased; it can be named again only once "
                          "it is made again with explicit consent");
}
