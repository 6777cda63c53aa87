#include "store/comm_detail.h"

#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_comm_callbacks_json(PGconn *conn, const char *id, char **json, char *err, size_t errlen)
{
    *json = NULL;
    const char *params[] = {id};
    PGresult *r = db_query(
        conn,
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM communications WHERE id = $1::uuid) THEN"
        " json_build_object('callbacks', COALESCE((SELECT json_agg(json_build_object("
        "  'event_type', w.event_type, 'state', w.state, 'attempts', w.attempts,"
        "  'created_at', to_char(w.created_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        "  'delivered_at', to_char(w.delivered_at AT TIME ZONE 'UTC',"
        "    'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        "  'last_error', w.last_error) ORDER BY w.created_at, w.id)"
        "  FROM workflow_callbacks w WHERE w.communication_id = $1::uuid), '[]'::json))::text"
        " END",
        1, params, err, errlen);
    if (!r)
        return -1;
    int rc = 1;
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        *json = strdup(PQgetvalue(r, 0, 0));
        rc = *json ? 0 : -1;
        if (rc != 0)
            snprintf(err, errlen, "out of memory");
    }
    PQclear(r);
    return rc;
}

int store_comm_facts_load(PGconn *conn, const char *id, store_comm_facts_t *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *params[] = {id};
    PGresult *r = db_query(conn,
                           "SELECT message_type, COALESCE(channel, ''), plan_id, client_id,"
                           " COALESCE(template_version, ''), context::text"
                           " FROM communications WHERE id = $1::uuid",
                           1, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 1;
    }
    snprintf(out->message_type, sizeof out->message_type, "%s", PQgetvalue(r, 0, 0));
    snprintf(out->channel, sizeof out->channel, "%s", PQgetvalue(r, 0, 1));
    snprintf(out->plan_id, sizeof out->plan_id, "%s", PQgetvalue(r, 0, 2));
    snprintf(out->client_id, sizeof out->client_id, "%s", PQgetvalue(r, 0, 3));
    snprintf(out->template_version, sizeof out->template_version, "%s", PQgetvalue(r, 0, 4));
    out->context_json = strdup(PQgetvalue(r, 0, 5));
    PQclear(r);
    if (!out->context_json) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void store_comm_facts_free(store_comm_facts_t *f)
{
    free(f->context_json);
    f->context_json = NULL;
}
