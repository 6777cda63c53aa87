#include "store/audit.h"

#include "store/db.h"

#include <stdio.h>

static const char *audit_or_null(const char *s)
{
    return s && *s ? s : NULL;
}

int store_audit_write(PGconn *conn, const store_audit_t *a, char *err, size_t errlen)
{
    const char *params[] = {
        audit_or_null(a->actor) ? a->actor : "unknown",
        a->action,
        a->subject_type,
        audit_or_null(a->subject_id),
        audit_or_null(a->address),
        audit_or_null(a->detail_json),
    };
    PGresult *r =
        db_query(conn,
                 "INSERT INTO audit_log (actor, action, subject_type, subject_id, address,"
                 " detail) VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
                 6, params, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

int store_consent_context(PGconn *conn, const char *source, const char *actor, char *err,
                          size_t errlen)
{
    const char *params[] = {source, actor ? actor : ""};
    PGresult *r = db_query(conn,
                           "SELECT set_config('crier.consent_source', $1, true),"
                           " set_config('crier.actor', $2, true)",
                           2, params, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}
