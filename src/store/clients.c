#include "store/clients.h"

#include "store/db.h"
#include "store/private.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENTS_LIST_MAX 500

/* Whether client id exists and is erased, by sql (CLIENTS_SQL_STATE,
 * perhaps locking the row). */
static int clients_state(PGconn *conn, const char *sql, const char *id, char *err, size_t errlen)
{
    if (!val_uuid(id))
        return STORE_NO_CLIENT;
    const char *params[] = {id};
    PGresult *r = db_query(conn, sql, 1, params, err, errlen);
    if (!r)
        return -1;
    int rc = PQntuples(r) == 0 ? STORE_NO_CLIENT : store_bool_col(r, 0) ? STORE_ERASED : 0;
    PQclear(r);
    return rc;
}

#define CLIENTS_SQL_STATE "SELECT erased_at IS NOT NULL FROM clients WHERE id = $1::uuid"

int store_client_state(PGconn *conn, const char *id, char *err, size_t errlen)
{
    return clients_state(conn, CLIENTS_SQL_STATE, id, err, errlen);
}

int store_comm_client(PGconn *conn, const char *comm_id, char client_id[37], char *err,
                      size_t errlen)
{
    client_id[0] = '\0';
    if (!val_uuid(comm_id))
        return STORE_NO_COMM;
    const char *params[] = {comm_id};
    PGresult *r = db_query(conn, "SELECT client_id FROM communications WHERE id = $1::uuid", 1,
                           params, err, errlen);
    if (!r)
        return -1;
    int rc = STORE_NO_COMM;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        snprintf(client_id, 37, "%s", PQgetvalue(r, 0, 0));
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int store_client_version_lock(PGconn *conn, const char *id, long long *version, char *err,
                              size_t errlen)
{
    *version = 0;
    if (!val_uuid(id))
        return STORE_NO_CLIENT;
    const char *params[] = {id};
    PGresult *r = db_query(conn,
                           "SELECT erased_at IS NOT NULL, prefs_version FROM clients"
                           " WHERE id = $1::uuid FOR UPDATE",
                           1, params, err, errlen);
    if (!r)
        return -1;
    int rc = PQntuples(r) == 0 ? STORE_NO_CLIENT : store_bool_col(r, 0) ? STORE_ERASED : 0;
    if (rc == 0)
        *version = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return rc;
}

/* Appends "key":value where value is a JSON string or null. */
static int clients_put_str(buf_t *b, const char *key, const char *v)
{
    int rc = buf_printf(b, ",\"%s\":", key);
    return rc | (v ? jtext_string(b, v) : buf_puts(b, "null"));
}

int store_client_json(PGconn *conn, const cry_keys_t *keys, const char *id, int with_pii,
                      char **json, char *err, size_t errlen)
{
    *json = NULL;
    if (!val_uuid(id))
        return STORE_NO_CLIENT;
    const char *params[] = {id};
    PGresult *r = db_query(
        conn,
        "SELECT c.id, c.erased_at IS NOT NULL, c.name_enc, c.email_enc, c.phone_enc,"
        " json_build_object('timezone', c.timezone, 'locale', c.locale,"
        "  'consent', json_build_object('email', c.consent_email, 'sms', c.consent_sms,"
        "   'whatsapp', c.consent_whatsapp),"
        "  'consent_changed_at', json_build_object('email', crier_iso(c.consent_email_at),"
        "   'sms', crier_iso(c.consent_sms_at), 'whatsapp', crier_iso(c.consent_whatsapp_at)),"
        "  'email_suppressed', EXISTS (SELECT 1 FROM email_suppressions s"
        "   WHERE s.email_bidx = c.email_bidx),"
        "  'created_at', crier_iso(c.created_at), 'updated_at', crier_iso(c.updated_at))::text"
        " FROM clients c WHERE c.id = $1::uuid",
        1, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) == 0 || store_bool_col(r, 1)) {
        int rc = PQntuples(r) == 0 ? STORE_NO_CLIENT : STORE_ERASED;
        PQclear(r);
        return rc;
    }
    char cid[37];
    snprintf(cid, sizeof cid, "%s", PQgetvalue(r, 0, 0));
    const cry_place_t name_at = {"clients", "name", cid};
    const cry_place_t email_at = {"clients", "email", cid};
    const cry_place_t phone_at = {"clients", "phone", cid};
    char *name = NULL, *email = NULL, *phone = NULL;
    int rc = 0;
    if (with_pii && (store_decrypt_col(keys, &name_at, r, 2, &name) != 0 ||
                     store_decrypt_col(keys, &email_at, r, 3, &email) != 0 ||
                     store_decrypt_col(keys, &phone_at, r, 4, &phone) != 0))
        rc = store_fail(err, errlen, "cannot decrypt client fields", "wrong or missing key");
    buf_t b;
    buf_init(&b, 1 << 16);
    if (rc == 0) {
        /* the SQL object's members follow the decrypted ones */
        const char *rest = PQgetvalue(r, 0, 5);
        int w = buf_puts(&b, "{\"client_id\":");
        w |= jtext_string(&b, cid);
        if (with_pii) {
            w |= clients_put_str(&b, "name", name);
            w |= clients_put_str(&b, "email", email);
            w |= clients_put_str(&b, "phone", phone);
        } else {
            w |= buf_printf(&b, ",\"has_name\":%s,\"has_email\":%s,\"has_phone\":%s",
                            PQgetisnull(r, 0, 2) ? "false" : "true",
                            PQgetisnull(r, 0, 3) ? "false" : "true",
                            PQgetisnull(r, 0, 4) ? "false" : "true");
        }
        w |= buf_putc(&b, ',');
        w |= buf_puts(&b, rest[0] == '{' ? rest + 1 : "}");
        if (w != 0)
            rc = store_fail(err, errlen, "out of memory", NULL);
    }
    PQclear(r);
    free(name);
    free(email);
    free(phone);
    if (rc == 0) {
        *json = buf_detach(&b);
        if (!*json)
            rc = store_fail(err, errlen, "out of memory", NULL);
    }
    buf_free(&b);
    return rc;
}

/* No quiet hours are stored as equal ends (the policy reads equal ends as
 * none), and shown as null. */
#define CLIENTS_SQL_PREFS_JSON                                                                     \
    "SELECT c.erased_at IS NOT NULL, json_build_object('client_id', c.id,"                         \
    " 'preferred_channels', COALESCE(p.preferred_channels, '[\"email\"]'::jsonb),"                 \
    " 'quiet_hours_start', CASE WHEN p.client_id IS NULL THEN '22:00'"                             \
    "  WHEN p.quiet_hours_start = p.quiet_hours_end THEN NULL"                                     \
    "  ELSE to_char(p.quiet_hours_start, 'HH24:MI') END,"                                          \
    " 'quiet_hours_end', CASE WHEN p.client_id IS NULL THEN '08:00'"                               \
    "  WHEN p.quiet_hours_start = p.quiet_hours_end THEN NULL"                                     \
    "  ELSE to_char(p.quiet_hours_end, 'HH24:MI') END,"                                            \
    " 'opt_out_email', COALESCE(p.opt_out_email, false),"                                          \
    " 'opt_out_sms', COALESCE(p.opt_out_sms, false),"                                              \
    " 'opt_out_whatsapp', COALESCE(p.opt_out_whatsapp, false),"                                    \
    " 'timezone', c.timezone,"                                                                     \
    " 'updated_at', crier_iso(GREATEST(p.updated_at, c.updated_at)))::text"                        \
    " FROM clients c LEFT JOIN client_preferences p ON p.client_id = c.id WHERE c.id = $1::uuid"

int store_prefs_json(PGconn *conn, const char *id, char **json, char *err, size_t errlen)
{
    *json = NULL;
    if (!val_uuid(id))
        return STORE_NO_CLIENT;
    const char *params[] = {id};
    PGresult *r = db_query(conn, CLIENTS_SQL_PREFS_JSON, 1, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) > 0 && store_bool_col(r, 0)) {
        PQclear(r);
        return STORE_ERASED;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return STORE_NO_CLIENT;
    }
    *json = strdup(PQgetvalue(r, 0, 1));
    PQclear(r);
    return *json ? 0 : store_fail(err, errlen, "out of memory", NULL);
}

static const char *clients_flag(int v)
{
    return v < 0 ? NULL : v ? "true" : "false";
}

int store_prefs_update(PGconn *conn, const char *id, const store_prefs_change_t *ch, int *changed,
                       char *err, size_t errlen)
{
    *changed = 0;
    /* FOR UPDATE: an erasure cannot commit between this look and the
     * change, and two changes of one client take turns (each then updates
     * the client row, which two share locks would deadlock on). Then the
     * preferences row is made to exist, before the change: one statement
     * could not do both (its parts share one snapshot, so an UPDATE does
     * not see the row an INSERT beside it made). */
    int state = clients_state(conn, CLIENTS_SQL_STATE " FOR UPDATE", id, err, errlen);
    if (state != 0)
        return state;
    const char *lp[] = {id};
    PGresult *r;
    r = db_query(conn,
                 "INSERT INTO client_preferences (client_id) VALUES ($1::uuid)"
                 " ON CONFLICT (client_id) DO NOTHING",
                 1, lp, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    const char *qs = NULL, *qe = NULL;
    if (ch->quiet_given) {
        /* none: equal ends, which every policy reads as no quiet hours */
        qs = ch->quiet_start[0] ? ch->quiet_start : "00:00";
        qe = ch->quiet_end[0] ? ch->quiet_end : "00:00";
    }
    const char *params[] = {
        id,
        ch->preferred_json,
        qs,
        qe,
        clients_flag(ch->opt_out[CH_EMAIL]),
        clients_flag(ch->opt_out[CH_SMS]),
        clients_flag(ch->opt_out[CH_WHATSAPP]),
        ch->timezone,
    };
    /* One statement: the preferences and the client's time zone, each
     * touched only when a value differs, so that *changed means a real
     * change. */
    r = db_query(conn,
                 "WITH p AS (UPDATE client_preferences SET"
                 "  preferred_channels = COALESCE($2::jsonb, preferred_channels),"
                 "  quiet_hours_start = COALESCE($3::time, quiet_hours_start),"
                 "  quiet_hours_end = COALESCE($4::time, quiet_hours_end),"
                 "  opt_out_email = COALESCE($5::boolean, opt_out_email),"
                 "  opt_out_sms = COALESCE($6::boolean, opt_out_sms),"
                 "  opt_out_whatsapp = COALESCE($7::boolean, opt_out_whatsapp), updated_at = now()"
                 "  WHERE client_id = $1::uuid AND (preferred_channels, quiet_hours_start,"
                 "   quiet_hours_end, opt_out_email, opt_out_sms, opt_out_whatsapp)"
                 "   IS DISTINCT FROM (COALESCE($2::jsonb, preferred_channels),"
                 "   COALESCE($3::time, quiet_hours_start), COALESCE($4::time, quiet_hours_end),"
                 "   COALESCE($5::boolean, opt_out_email), COALESCE($6::boolean, opt_out_sms),"
                 "   COALESCE($7::boolean, opt_out_whatsapp))"
                 "  RETURNING 1),"
                 " t AS (UPDATE clients SET timezone = $8, updated_at = now()"
                 "  WHERE id = $1::uuid AND $8::text IS NOT NULL AND timezone IS DISTINCT FROM $8"
                 "  RETURNING 1)"
                 " SELECT (SELECT count(*) FROM p) + (SELECT count(*) FROM t)",
                 8, params, err, errlen);
    if (!r)
        return -1;
    *changed = atoi(PQgetvalue(r, 0, 0)) > 0;
    PQclear(r);
    return 0;
}

int store_client_comms_json(PGconn *conn, const char *id, int limit, const char *before_id,
                            char **json, char *err, size_t errlen)
{
    *json = NULL;
    int state = store_client_state(conn, id, err, errlen);
    if (state != 0)
        return state;
    if (limit <= 0 || limit > CLIENTS_LIST_MAX)
        limit = CLIENTS_LIST_MAX;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1); /* one more says whether a next page exists */
    const char *params[] = {id, lim, before_id && val_uuid(before_id) ? before_id : NULL};
    /* Keyset paging on (created_at, id), the order of the listing's index:
     * a page is as cheap deep into the history as at its start, and rows
     * arriving meanwhile do not shift it. */
    if (params[2]) {
        const char *bp[] = {params[2], id};
        PGresult *b = db_query(conn,
                               "SELECT 1 FROM communications WHERE id = $1::uuid"
                               " AND client_id = $2::uuid",
                               2, bp, err, errlen);
        if (!b)
            return -1;
        int known = PQntuples(b) > 0;
        PQclear(b);
        if (!known)
            return STORE_BAD_CURSOR;
    }
    PGresult *r =
        db_query(conn,
                 "WITH b AS (SELECT created_at, id FROM communications"
                 "  WHERE id = $3::uuid AND client_id = $1::uuid),"
                 " page AS (SELECT json_build_object(" STORE_COMM_JSON ") AS o, c.created_at, c.id"
                 "  FROM communications c WHERE c.client_id = $1::uuid"
                 "  AND ($3::uuid IS NULL OR (c.created_at, c.id) < (SELECT created_at, id FROM b))"
                 "  ORDER BY c.created_at DESC, c.id DESC LIMIT $2::int),"
                 " numbered AS (SELECT o, created_at, id,"
                 "  row_number() OVER (ORDER BY created_at DESC, id DESC) AS n FROM page)"
                 " SELECT json_build_object('client_id', $1::uuid,"
                 "  'communications', COALESCE((SELECT json_agg(o ORDER BY n) FROM numbered"
                 "   WHERE n < $2::int), '[]'::json),"
                 "  'next_before', (SELECT id FROM numbered WHERE n = $2::int - 1"
                 "   AND EXISTS (SELECT 1 FROM numbered WHERE n = $2::int)))::text",
                 3, params, err, errlen);
    if (!r)
        return -1;
    return store_json_result(r, json, err, errlen);
}
