#include "store/sessions.h"

#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>

int store_session_create(PGconn *conn, const char *id_hash, int scopes, const char *actor,
                         int ttl_s, char *err, size_t errlen)
{
    char sc[16], ttl[16];
    snprintf(sc, sizeof sc, "%d", scopes);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *params[] = {id_hash, sc, actor, ttl};
    /* Sessions that ended go when a new one begins: logins are few, so
     * this keeps the table to the live ones without a job of its own. */
    PGresult *r = db_query(conn, "DELETE FROM console_sessions WHERE expires_at < now()", 0, NULL,
                           err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    r = db_query(conn,
                 "INSERT INTO console_sessions (id_hash, scopes, actor, expires_at)"
                 " VALUES ($1, $2::integer, $3, now() + make_interval(secs => $4::integer))",
                 4, params, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

int store_session_find(PGconn *conn, const char *id_hash, int *scopes, char *actor, size_t actorlen,
                       char *err, size_t errlen)
{
    const char *params[] = {id_hash};
    PGresult *r = db_query(conn,
                           "SELECT scopes, actor FROM console_sessions"
                           " WHERE id_hash = $1 AND expires_at > now()",
                           1, params, err, errlen);
    if (!r)
        return -1;
    int rc = 1;
    if (PQntuples(r) == 1) {
        *scopes = atoi(PQgetvalue(r, 0, 0));
        snprintf(actor, actorlen, "%s", PQgetvalue(r, 0, 1));
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int store_session_delete(PGconn *conn, const char *id_hash, char *err, size_t errlen)
{
    const char *params[] = {id_hash};
    PGresult *r =
        db_query(conn, "DELETE FROM console_sessions WHERE id_hash = $1", 1, params, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}
