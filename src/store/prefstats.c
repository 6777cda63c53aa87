#include "store/prefstats.h"

#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One statement, one row: the whole answer built by PostgreSQL. */
static const char prefstats_sql[] =
    "WITH c AS (SELECT COALESCE(p.preferred_channels->>0, 'email') AS preferred,"
    "   COALESCE(p.opt_out_email, false) AS out_email, COALESCE(p.opt_out_sms, false) AS out_sms,"
    "   COALESCE(p.opt_out_whatsapp, false) AS out_whatsapp"
    "  FROM clients k LEFT JOIN client_preferences p ON p.client_id = k.id"
    "  WHERE k.erased_at IS NULL),"
    " ch(channel, ord) AS (VALUES ('email', 1), ('sms', 2), ('whatsapp', 3))"
    " SELECT json_build_object("
    "  'clients', (SELECT count(*) FROM c),"
    "  'preferred', (SELECT json_agg(json_build_object('channel', ch.channel, 'clients',"
    "     (SELECT count(*) FROM c WHERE c.preferred = ch.channel)) ORDER BY ch.ord) FROM ch),"
    "  'opted_out', json_build_array("
    "     json_build_object('channel', 'email', 'clients', (SELECT count(*) FROM c WHERE "
    "out_email)),"
    "     json_build_object('channel', 'sms', 'clients', (SELECT count(*) FROM c WHERE out_sms)),"
    "     json_build_object('channel', 'whatsapp', 'clients',"
    "       (SELECT count(*) FROM c WHERE out_whatsapp))))::text";

int store_prefstats_json(PGconn *conn, char **json, char *err, size_t errlen)
{
    *json = NULL;
    PGresult *r = db_query(conn, prefstats_sql, 0, NULL, err, errlen);
    if (!r)
        return -1;
    int rc = -1;
    if (PQntuples(r) == 1) {
        *json = strdup(PQgetvalue(r, 0, 0));
        rc = *json ? 0 : -1;
        if (rc != 0)
            snprintf(err, errlen, "out of memory");
    } else {
        snprintf(err, errlen, "preference counts: %d rows", PQntuples(r));
    }
    PQclear(r);
    return rc;
}
