#include "store/suppress.h"

#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The insert and the clients it concerns in one statement. The clients are
 * read from the statement's snapshot, which the insert's own trigger
 * (moving their preference version) does not change: the ids are what is
 * wanted, not the versions. A communication deleted meanwhile (the
 * retention purge) leaves the entry without one rather than failing it. */
static const char supp_sql_bounce[] =
    "WITH ins AS (INSERT INTO email_suppressions (email_bidx, reason, smtp_code, enhanced_code,"
    "  communication_id)"
    "  VALUES ($1, 'hard_bounce', $2::int, NULLIF($3, ''),"
    "   (SELECT id FROM communications WHERE id = $4::uuid))"
    "  ON CONFLICT (email_bidx) DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM ins)::int, c.id::text"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT id FROM clients WHERE email_bidx = $1"
    "  ORDER BY id LIMIT 8) c ON true";
_Static_assert(SUPP_CHANGED_MAX == 8, "the LIMIT of supp_sql_bounce");

/* A blind index as the store writes it: 64 lower-case hex digits. */
static int supp_bidx_ok(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

int supp_hard_bounce(PGconn *conn, const supp_bounce_t *b, int *created,
                     char changed[SUPP_CHANGED_MAX][37], int *n_changed, char *err, size_t errlen)
{
    *created = 0;
    *n_changed = 0;
    if (!b || !supp_bidx_ok(b->email_bidx)) {
        snprintf(err, errlen, "suppression: no usable blind index");
        return -1;
    }
    char code[16];
    snprintf(code, sizeof code, "%d", b->smtp_code);
    const char *params[] = {b->email_bidx, code, b->enhanced ? b->enhanced : "",
                            b->communication_id};
    PGresult *r = db_query(conn, supp_sql_bounce, 4, params, err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        *created = atoi(PQgetvalue(r, i, 0)) > 0;
        if (!PQgetisnull(r, i, 1) && *n_changed < SUPP_CHANGED_MAX)
            snprintf(changed[(*n_changed)++], 37, "%s", PQgetvalue(r, i, 1));
    }
    PQclear(r);
    return 0;
}
