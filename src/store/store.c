#include "store/store.h"

#include "store/db.h"
#include "util/buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_PII_MAX    4096 /* a name, address or number; more is not PII but abuse */
#define STORE_LIST_MAX   1000 /* rows in one plan listing */
#define STORE_ATTACH_MAX 64   /* attachments loaded for one message */

static int store_fail(char *err, size_t errlen, const char *what, const char *detail)
{
    snprintf(err, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    return -1;
}

/* Canonical 8-4-4-4-12 hex form. Checked here so that a malformed id from a
 * URL is "not found" rather than a database error. */
static int store_is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Blind indexes must match however the address was typed: trimmed and
 * lower-cased (the local part is case-insensitive in practice everywhere
 * crier sends). */
static int store_norm_email(const char *in, buf_t *out)
{
    while (isspace((unsigned char)*in))
        in++;
    size_t n = strlen(in);
    while (n > 0 && isspace((unsigned char)in[n - 1]))
        n--;
    for (size_t i = 0; i < n; i++)
        if (buf_putc(out, (char)tolower((unsigned char)in[i])) != 0)
            return -1;
    return 0;
}

/* E.164 digits with the leading plus; spaces, dashes and brackets dropped. */
static int store_norm_phone(const char *in, buf_t *out)
{
    for (; *in; in++)
        if ((isdigit((unsigned char)*in) || *in == '+') && buf_putc(out, *in) != 0)
            return -1;
    return 0;
}

/* One PII field of an upsert: NULL keeps the stored value, "" clears it,
 * anything else is encrypted (enc) with its blind index (bidx, may be NULL). */
typedef struct store_pii {
    buf_t enc;
    char bidx[65];
    const char *enc_param;
    const char *bidx_param;
} store_pii_t;

static int store_pii_prepare(const cry_keys_t *keys, const char *value, const char *domain,
                             store_pii_t *p)
{
    buf_init(&p->enc, STORE_PII_MAX * 2);
    p->enc_param = NULL;
    p->bidx_param = NULL;
    if (!value)
        return 0;
    if (!*value) {
        p->enc_param = "";
        p->bidx_param = "";
        return 0;
    }
    if (!keys || !keys->loaded || strlen(value) > STORE_PII_MAX)
        return -1;
    if (cry_encrypt(keys, value, strlen(value), &p->enc) != 0)
        return -1;
    p->enc_param = p->enc.data;
    if (domain) {
        buf_t norm;
        buf_init(&norm, STORE_PII_MAX);
        int rc = strcmp(domain, "email") == 0 ? store_norm_email(value, &norm)
                                              : store_norm_phone(value, &norm);
        if (rc == 0)
            cry_blind_index(keys, domain, norm.data ? norm.data : "", p->bidx);
        buf_free(&norm);
        if (rc != 0)
            return -1;
        p->bidx_param = p->bidx;
    }
    return 0;
}

static const char *store_consent_param(int v)
{
    return v < 0 ? NULL : v ? "true" : "false";
}

/* Fields of c that are NULL are kept as stored, and so are consent flags
 * below 0; on a first insert they take the column defaults. A consent
 * timestamp moves only when the flag actually changes, so it records when
 * the client gave (or withdrew) it. */
int store_client_upsert(PGconn *conn, const cry_keys_t *keys, const store_client_t *c, char *err,
                        size_t errlen)
{
    if (!store_is_uuid(c->id))
        return store_fail(err, errlen, "client id is not a UUID", NULL);
    store_pii_t name, email, phone;
    int ok = store_pii_prepare(keys, c->name, NULL, &name) == 0;
    ok = store_pii_prepare(keys, c->email, "email", &email) == 0 && ok;
    ok = store_pii_prepare(keys, c->phone, "phone", &phone) == 0 && ok;
    int rc = -1;
    if (!ok) {
        store_fail(err, errlen, "cannot encrypt client fields",
                   keys && keys->loaded ? "value too long" : "no encryption key configured");
        goto done;
    }
    const char *params[] = {
        c->id,
        name.enc_param,
        email.enc_param,
        email.bidx_param,
        phone.enc_param,
        phone.bidx_param,
        keys && keys->loaded ? keys->key_id : NULL,
        c->timezone,
        c->locale,
        store_consent_param(c->consent_email),
        store_consent_param(c->consent_sms),
        store_consent_param(c->consent_whatsapp),
    };
    /* One statement: the client row and, when it is new, the preferences row
     * with the seed's defaults (the column defaults of client_preferences). */
    PGresult *r = db_query(
        conn,
        "WITH up AS ("
        " INSERT INTO clients AS c (id, name_enc, email_enc, email_bidx, phone_enc, phone_bidx,"
        "  key_id, timezone, locale, consent_email, consent_email_at, consent_sms,"
        "  consent_sms_at, consent_whatsapp, consent_whatsapp_at)"
        " VALUES ($1::uuid, NULLIF($2::text, ''), NULLIF($3::text, ''), NULLIF($4::text, ''),"
        "  NULLIF($5::text, ''), NULLIF($6::text, ''), $7::text, COALESCE($8::text, 'UTC'),"
        "  COALESCE($9::text, 'en'),"
        "  COALESCE($10::boolean, false), CASE WHEN $10::boolean IS NOT NULL THEN now() END,"
        "  COALESCE($11::boolean, false), CASE WHEN $11::boolean IS NOT NULL THEN now() END,"
        "  COALESCE($12::boolean, false), CASE WHEN $12::boolean IS NOT NULL THEN now() END)"
        " ON CONFLICT (id) DO UPDATE SET"
        "  name_enc = CASE WHEN $2::text IS NULL THEN c.name_enc ELSE NULLIF($2::text, '') END,"
        "  email_enc = CASE WHEN $3::text IS NULL THEN c.email_enc ELSE NULLIF($3::text, '') END,"
        "  email_bidx = CASE WHEN $3::text IS NULL THEN c.email_bidx"
        "   ELSE NULLIF($4::text, '') END,"
        "  phone_enc = CASE WHEN $5::text IS NULL THEN c.phone_enc ELSE NULLIF($5::text, '') END,"
        "  phone_bidx = CASE WHEN $5::text IS NULL THEN c.phone_bidx"
        "   ELSE NULLIF($6::text, '') END,"
        "  key_id = CASE WHEN $2::text IS NULL AND $3::text IS NULL AND $5::text IS NULL"
        "   THEN c.key_id ELSE $7::text END,"
        "  timezone = COALESCE($8::text, c.timezone),"
        "  locale = COALESCE($9::text, c.locale),"
        "  consent_email = COALESCE($10::boolean, c.consent_email),"
        "  consent_email_at = CASE WHEN $10::boolean IS DISTINCT FROM c.consent_email"
        "   AND $10::boolean IS NOT NULL THEN now() ELSE c.consent_email_at END,"
        "  consent_sms = COALESCE($11::boolean, c.consent_sms),"
        "  consent_sms_at = CASE WHEN $11::boolean IS DISTINCT FROM c.consent_sms"
        "   AND $11::boolean IS NOT NULL THEN now() ELSE c.consent_sms_at END,"
        "  consent_whatsapp = COALESCE($12::boolean, c.consent_whatsapp),"
        "  consent_whatsapp_at = CASE WHEN $12::boolean IS DISTINCT FROM c.consent_whatsapp"
        "   AND $12::boolean IS NOT NULL THEN now() ELSE c.consent_whatsapp_at END,"
        "  updated_at = now()"
        " RETURNING id)"
        " INSERT INTO client_preferences (client_id) SELECT id FROM up"
        " ON CONFLICT (client_id) DO NOTHING",
        12, params, err, errlen);
    if (r) {
        PQclear(r);
        rc = 0;
    }
done:
    buf_free(&name.enc);
    buf_free(&email.enc);
    buf_free(&phone.enc);
    return rc;
}

void store_client_free(store_client_t *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->email);
    free(c->phone);
    free(c->timezone);
    free(c->locale);
    free(c->preferred_channels_json);
    c->name = c->email = c->phone = c->timezone = c->locale = NULL;
    c->preferred_channels_json = NULL;
}

/* Decrypts a column into a new string; NULL column -> NULL. */
static int store_decrypt_col(const cry_keys_t *keys, PGresult *r, int col, char **out)
{
    *out = NULL;
    if (PQgetisnull(r, 0, col))
        return 0;
    if (!keys || !keys->loaded)
        return -1;
    buf_t plain;
    buf_init(&plain, STORE_PII_MAX);
    if (cry_decrypt(keys, PQgetvalue(r, 0, col), &plain) != 0) {
        buf_free(&plain);
        return -1;
    }
    *out = buf_detach(&plain);
    return *out ? 0 : -1;
}

static char *store_strdup_col(PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : strdup(PQgetvalue(r, 0, col));
}

static int store_bool_col(PGresult *r, int col)
{
    return !PQgetisnull(r, 0, col) && PQgetvalue(r, 0, col)[0] == 't';
}

int store_client_load(PGconn *conn, const cry_keys_t *keys, const char *id, store_client_t *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!store_is_uuid(id))
        return 1;
    const char *params[] = {id};
    /* Preferences fall back to the seed's defaults when the row is missing;
     * last contact comes from the same round trip. */
    PGresult *r =
        db_query(conn,
                 "SELECT c.id, c.name_enc, c.email_enc, c.phone_enc, c.timezone, c.locale,"
                 " c.consent_email, c.consent_sms, c.consent_whatsapp,"
                 " COALESCE(p.preferred_channels, '[\"email\"]'::jsonb)::text,"
                 " to_char(COALESCE(p.quiet_hours_start, '22:00'::time), 'HH24:MI'),"
                 " to_char(COALESCE(p.quiet_hours_end, '08:00'::time), 'HH24:MI'),"
                 " COALESCE(p.opt_out_email, false), COALESCE(p.opt_out_sms, false),"
                 " COALESCE(p.opt_out_whatsapp, false),"
                 " COALESCE(EXTRACT(EPOCH FROM (SELECT max(m.sent_at) FROM communications m"
                 "  WHERE m.client_id = c.id)), 0)::float8"
                 " FROM clients c LEFT JOIN client_preferences p ON p.client_id = c.id"
                 " WHERE c.id = $1::uuid",
                 1, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, 0, 0));
    int rc = 0;
    if (store_decrypt_col(keys, r, 1, &out->name) != 0 ||
        store_decrypt_col(keys, r, 2, &out->email) != 0 ||
        store_decrypt_col(keys, r, 3, &out->phone) != 0) {
        /* a key mismatch or a damaged row; the value itself is never echoed */
        rc = store_fail(err, errlen, "cannot decrypt client fields", "wrong or missing key");
    }
    out->timezone = store_strdup_col(r, 4);
    out->locale = store_strdup_col(r, 5);
    out->consent_email = store_bool_col(r, 6);
    out->consent_sms = store_bool_col(r, 7);
    out->consent_whatsapp = store_bool_col(r, 8);
    out->preferred_channels_json = store_strdup_col(r, 9);
    snprintf(out->quiet_start, sizeof out->quiet_start, "%s", PQgetvalue(r, 0, 10));
    snprintf(out->quiet_end, sizeof out->quiet_end, "%s", PQgetvalue(r, 0, 11));
    out->opt_out_email = store_bool_col(r, 12);
    out->opt_out_sms = store_bool_col(r, 13);
    out->opt_out_whatsapp = store_bool_col(r, 14);
    out->last_contact_at = strtod(PQgetvalue(r, 0, 15), NULL);
    PQclear(r);
    if (rc == 0 && (!out->timezone || !out->locale || !out->preferred_channels_json))
        rc = store_fail(err, errlen, "out of memory loading client", NULL);
    if (rc != 0)
        store_client_free(out);
    return rc;
}

void store_attachments_free(store_attachment_t *a, int n)
{
    if (!a)
        return;
    for (int i = 0; i < n; i++) {
        free(a[i].filename);
        free(a[i].content_type);
        free(a[i].data);
    }
    free(a);
}

static const char *store_event_for_status(const char *status)
{
    if (strcmp(status, "queued") == 0)
        return "queued";
    if (strcmp(status, "pending") == 0)
        return "scheduled";
    return status; /* "skipped", and any other initial state names itself */
}

/* Attachments and the first event of a communication just inserted. */
static int store_comm_children(PGconn *conn, const store_comm_new_t *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->n_attachments; i++) {
        const store_attachment_t *a = &c->attachments[i];
        if (a->len > 0x7fffffff)
            return store_fail(err, errlen, "attachment too large", NULL);
        char ord[16];
        snprintf(ord, sizeof ord, "%d", i);
        /* The bytes go as a binary parameter: no escaping, no hex doubling,
         * and NULs inside a PDF are just bytes. */
        const char *vals[] = {c->id, ord, a->filename ? a->filename : "attachment",
                              a->content_type ? a->content_type : "application/octet-stream",
                              (const char *)a->data};
        int lens[] = {0, 0, 0, 0, (int)a->len};
        int fmts[] = {0, 0, 0, 0, 1};
        PGresult *r = PQexecParams(conn,
                                   "INSERT INTO communication_attachments"
                                   " (communication_id, ordinal, filename, content_type, data)"
                                   " VALUES ($1::uuid, $2::int, $3, $4, $5::bytea)",
                                   5, NULL, vals, lens, fmts, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            store_fail(err, errlen, "storing attachment",
                       r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
            PQclear(r);
            return -1;
        }
        PQclear(r);
    }
    const char *ev[] = {c->id, store_event_for_status(c->status), c->status, c->channel,
                        c->skip_reason};
    PGresult *r = db_query(conn,
                           "INSERT INTO delivery_events (communication_id, event_type,"
                           " delivery_status, channel, attempt, error_details, provider_response)"
                           " VALUES ($1::uuid, $2, $3, $4, 0, $5::text,"
                           " CASE WHEN $5::text IS NOT NULL"
                           "  THEN jsonb_build_object('reason', $5::text) END)",
                           5, ev, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Inserts the row; *inserted is 1 when a new row was made, 0 when the
 * idempotency key was already taken (the statement then changed nothing). */
static int store_comm_row(PGconn *conn, const store_comm_new_t *c, int *inserted, char *err,
                          size_t errlen)
{
    char send_at[64], prio[16];
    snprintf(send_at, sizeof send_at, "%.6f", c->send_at);
    snprintf(prio, sizeof prio, "%d", c->priority);
    const char *params[] = {
        c->id,
        c->plan_id,
        c->client_id,
        c->message_type,
        c->urgency ? c->urgency : "normal",
        c->preferred_channel,
        c->context_json ? c->context_json : "{}",
        c->idempotency_key,
        c->request_hash,
        c->response_json,
        c->status,
        c->channel,
        c->fallback_json ? c->fallback_json : "[]",
        send_at,
        prio,
        c->decision_json,
        c->rules_version,
        c->skip_reason,
    };
    /* next_attempt_at starts at send_at: a future row is not due, so the
     * claim query passes it by until its time. */
    PGresult *r = db_query(
        conn,
        "INSERT INTO communications (id, plan_id, client_id, message_type, urgency,"
        " preferred_channel, context, idempotency_key, request_hash, response, status, channel,"
        " fallback_channels, send_at, next_attempt_at, priority, decision, rules_version,"
        " skip_reason)"
        " VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6, $7::jsonb, $8, $9, $10, $11,"
        " $12, $13::jsonb, to_timestamp($14::float8), to_timestamp($14::float8), $15::smallint,"
        " $16::jsonb, $17, $18)"
        " ON CONFLICT (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
        " DO NOTHING RETURNING id",
        18, params, err, errlen);
    if (!r)
        return -1;
    *inserted = PQntuples(r) == 1;
    PQclear(r);
    return 0;
}

/* The key was used before: same body hash means a retry of the same request. */
static int store_comm_replay(PGconn *conn, const store_comm_new_t *c,
                             store_insert_outcome_t *outcome, char **replay_json, char *err,
                             size_t errlen)
{
    const char *params[] = {c->client_id, c->idempotency_key};
    PGresult *r = db_query(conn,
                           "SELECT request_hash, response FROM communications"
                           " WHERE client_id = $1::uuid AND idempotency_key = $2",
                           2, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return store_fail(err, errlen, "idempotency key in use but its row is gone", NULL);
    }
    const char *stored = PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0);
    if (c->request_hash && cry_str_equal(stored, c->request_hash)) {
        *outcome = STORE_REPLAY;
        *replay_json = strdup(PQgetisnull(r, 0, 1) ? "{}" : PQgetvalue(r, 0, 1));
        if (!*replay_json) {
            PQclear(r);
            return store_fail(err, errlen, "out of memory", NULL);
        }
    } else {
        *outcome = STORE_CONFLICT;
    }
    PQclear(r);
    return 0;
}

int store_comm_insert(PGconn *conn, const store_comm_new_t *c, store_insert_outcome_t *outcome,
                      char **replay_json, char *err, size_t errlen)
{
    *replay_json = NULL;
    *outcome = STORE_INSERTED;
    if (!c->status || !c->plan_id || !c->client_id || !c->message_type)
        return store_fail(err, errlen, "communication is missing a required field", NULL);
    if (c->n_attachments < 0 || (c->n_attachments > 0 && !c->attachments))
        return store_fail(err, errlen, "bad attachment list", NULL);
    /* The row, its attachments and its first event must land together; open
     * a transaction only when the caller has not (the caller's own
     * transaction then decides). */
    int own_tx = PQtransactionStatus(conn) == PQTRANS_IDLE;
    if (own_tx && db_exec(conn, "BEGIN", err, errlen) != 0)
        return -1;
    int inserted = 0;
    int rc = store_comm_row(conn, c, &inserted, err, errlen);
    if (rc == 0 && inserted)
        rc = store_comm_children(conn, c, err, errlen);
    else if (rc == 0 && c->idempotency_key)
        rc = store_comm_replay(conn, c, outcome, replay_json, err, errlen);
    else if (rc == 0)
        rc = store_fail(err, errlen, "communication was not inserted", NULL);
    if (own_tx) {
        char err2[256];
        if (rc == 0 && db_exec(conn, "COMMIT", err, errlen) != 0)
            rc = -1;
        if (rc != 0)
            (void)db_exec(conn, "ROLLBACK", err2, sizeof err2);
    }
    if (rc != 0) {
        free(*replay_json);
        *replay_json = NULL;
    }
    return rc;
}

/* The API's communication object (without events). 'sending' is an internal
 * state: to the API a message being handed over is still queued. */
#define STORE_COMM_JSON                                                                            \
    "'communication_id', c.id, 'plan_id', c.plan_id, 'client_id', c.client_id,"                    \
    " 'message_type', c.message_type, 'urgency', c.urgency,"                                       \
    " 'status', CASE c.status WHEN 'sending' THEN 'queued' ELSE c.status END,"                     \
    " 'channel', c.channel, 'attempts', c.attempts, 'send_at', crier_iso(c.send_at),"              \
    " 'sent_at', crier_iso(c.sent_at), 'delivered_at', crier_iso(c.delivered_at),"                 \
    " 'error_message', c.error_message, 'decision', c.decision,"                                   \
    " 'created_at', crier_iso(c.created_at)"

static int store_json_result(PGresult *r, char **json, char *err, size_t errlen)
{
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    *json = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return *json ? 0 : store_fail(err, errlen, "out of memory", NULL);
}

int store_comm_get_json(PGconn *conn, const char *id, char **json, char *err, size_t errlen)
{
    *json = NULL;
    if (!store_is_uuid(id))
        return 1;
    const char *params[] = {id};
    /* Built in SQL so the row and its events come back in one round trip. */
    PGresult *r = db_query(
        conn,
        "SELECT json_build_object(" STORE_COMM_JSON ", 'events', COALESCE(("
        "  SELECT json_agg(json_build_object('event_type', e.event_type,"
        "   'status', CASE e.delivery_status WHEN 'sending' THEN 'queued'"
        "    ELSE e.delivery_status END,"
        "   'channel', e.channel, 'attempt', e.attempt, 'at', crier_iso(e.event_timestamp),"
        "   'detail', e.provider_response) ORDER BY e.event_timestamp, e.id)"
        "  FROM delivery_events e WHERE e.communication_id = c.id), '[]'::json))::text"
        " FROM communications c WHERE c.id = $1::uuid",
        1, params, err, errlen);
    if (!r)
        return -1;
    return store_json_result(r, json, err, errlen);
}

int store_plan_list_json(PGconn *conn, const char *plan_id, int limit, char **json, char *err,
                         size_t errlen)
{
    *json = NULL;
    if (!store_is_uuid(plan_id))
        return 1;
    if (limit <= 0 || limit > STORE_LIST_MAX)
        limit = STORE_LIST_MAX;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {plan_id, lim};
    PGresult *r =
        db_query(conn,
                 "SELECT json_build_object('plan_id', $1::uuid, 'communications', COALESCE(("
                 "  SELECT json_agg(x.o ORDER BY x.created_at DESC, x.id DESC) FROM ("
                 "   SELECT json_build_object(" STORE_COMM_JSON ") AS o, c.created_at, c.id"
                 "   FROM communications c WHERE c.plan_id = $1::uuid"
                 "   ORDER BY c.created_at DESC, c.id DESC LIMIT $2::int) x), '[]'::json))::text",
                 2, params, err, errlen);
    if (!r)
        return -1;
    return store_json_result(r, json, err, errlen);
}

int store_attachments_load(PGconn *conn, const char *comm_id, store_attachment_t **out, int *n,
                           char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!store_is_uuid(comm_id))
        return store_fail(err, errlen, "communication id is not a UUID", NULL);
    char lim[16];
    snprintf(lim, sizeof lim, "%d", STORE_ATTACH_MAX);
    const char *params[] = {comm_id, lim};
    /* Binary results: bytea arrives as raw bytes, text columns as-is. */
    PGresult *r = PQexecParams(conn,
                               "SELECT filename, content_type, data"
                               " FROM communication_attachments"
                               " WHERE communication_id = $1::uuid ORDER BY ordinal LIMIT $2::int",
                               2, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        store_fail(err, errlen, "loading attachments",
                   r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
        PQclear(r);
        return -1;
    }
    int rows = PQntuples(r);
    if (rows == 0) {
        PQclear(r);
        return 0;
    }
    store_attachment_t *a = calloc((size_t)rows, sizeof *a);
    if (!a) {
        PQclear(r);
        return store_fail(err, errlen, "out of memory", NULL);
    }
    for (int i = 0; i < rows; i++) {
        size_t flen = (size_t)PQgetlength(r, i, 0), clen = (size_t)PQgetlength(r, i, 1);
        size_t dlen = (size_t)PQgetlength(r, i, 2);
        a[i].filename = malloc(flen + 1);
        a[i].content_type = malloc(clen + 1);
        a[i].data = malloc(dlen ? dlen : 1);
        if (!a[i].filename || !a[i].content_type || !a[i].data) {
            store_attachments_free(a, i + 1);
            PQclear(r);
            return store_fail(err, errlen, "out of memory", NULL);
        }
        memcpy(a[i].filename, PQgetvalue(r, i, 0), flen);
        a[i].filename[flen] = '\0';
        memcpy(a[i].content_type, PQgetvalue(r, i, 1), clen);
        a[i].content_type[clen] = '\0';
        memcpy(a[i].data, PQgetvalue(r, i, 2), dlen);
        a[i].len = dlen;
    }
    PQclear(r);
    *out = a;
    *n = rows;
    return 0;
}
