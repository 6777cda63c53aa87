#include "store/store.h"
#include "store/private.h"

#include "store/db.h"
#include "util/timefmt.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/json_text.h"
/* val_uuid: a malformed id (from a URL) is "not found", never a database
 * error */
#include "validate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STORE_PII_MAX    4096 /* a name, address or number; more is not PII but abuse */
#define STORE_LIST_MAX   1000 /* rows in one plan listing */
#define STORE_ATTACH_MAX 64   /* attachments loaded for one message */

int store_fail(char *err, size_t errlen, const char *what, const char *detail)
{
    snprintf(err, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    return -1;
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

int store_pii_bidx(const cry_keys_t *keys, const char *domain, const char *value, char out[65])
{
    out[0] = '\0';
    if (!domain || !value)
        return -1;
    buf_t norm;
    buf_init(&norm, STORE_PII_MAX);
    int rc = strcmp(domain, "email") == 0 ? store_norm_email(value, &norm)
                                          : store_norm_phone(value, &norm);
    if (rc == 0)
        rc = cry_blind_index(keys, domain, norm.data ? norm.data : "", out);
    buf_free(&norm);
    return rc;
}

/* The client id as PostgreSQL prints a uuid (lower-case hex): the row id
 * its fields' tokens are bound to, so that a token written from a request
 * that spelled the id in capitals still opens when the row is loaded. */
static void store_uuid_lower(const char *id, char out[37])
{
    size_t i = 0;
    for (; i < 36 && id[i]; i++)
        out[i] = (char)tolower((unsigned char)id[i]);
    out[i] = '\0';
}

/* One PII field of an upsert: NULL keeps the stored value, "" clears it,
 * anything else is encrypted (enc) with its blind index (bidx, may be NULL). */
typedef struct store_pii {
    buf_t enc;
    char bidx[65];
    const char *enc_param;
    const char *bidx_param;
} store_pii_t;

/* column names the field in the token's place: ("clients", column, id). */
static int store_pii_prepare(const cry_keys_t *keys, const char *client_id, const char *column,
                             const char *value, const char *domain, store_pii_t *p)
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
    char row[37];
    store_uuid_lower(client_id, row);
    const cry_place_t at = {"clients", column, row};
    if (cry_encrypt(keys, &at, value, strlen(value), &p->enc) != 0)
        return -1;
    p->enc_param = p->enc.data;
    if (domain) {
        buf_t norm;
        buf_init(&norm, STORE_PII_MAX);
        int rc = strcmp(domain, "email") == 0 ? store_norm_email(value, &norm)
                                              : store_norm_phone(value, &norm);
        /* a failed index is an error: a row is never written with an index
         * that would not find it (or would find others) */
        if (rc == 0)
            rc = cry_blind_index(keys, domain, norm.data ? norm.data : "", p->bidx);
        buf_free(&norm);
        if (rc != 0)
            return -1;
        p->bidx_param = p->bidx;
    }
    return 0;
}

int store_client_upsert(PGconn *conn, const cry_keys_t *keys, const store_client_t *c, char *err,
                        size_t errlen)
{
    return store_clients_upsert_many(conn, keys, c, 1, err, errlen);
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

/* Decrypts a column of row 0 into a new string; NULL column -> NULL. The
 * token must have been written for at (a v1 token, not yet rewritten by
 * crier migrate, is refused like a damaged one). */
int store_decrypt_col(const cry_keys_t *keys, const cry_place_t *at, PGresult *r, int col,
                      char **out)
{
    *out = NULL;
    if (PQgetisnull(r, 0, col))
        return 0;
    if (!keys || !keys->loaded)
        return -1;
    buf_t plain;
    buf_init(&plain, STORE_PII_MAX);
    if (cry_decrypt(keys, at, PQgetvalue(r, 0, col), &plain) != 0) {
        buf_free(&plain);
        return -1;
    }
    *out = buf_detach(&plain);
    return *out ? 0 : -1;
}

char *store_strdup_col(PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : strdup(PQgetvalue(r, 0, col));
}

int store_bool_col(PGresult *r, int col)
{
    return !PQgetisnull(r, 0, col) && PQgetvalue(r, 0, col)[0] == 't';
}

char *store_strdup_row(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

int store_bool_row(PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

/* A client's consents, its preferences with the seed's defaults when the
 * row is missing, and when it was last sent something: the columns after
 * the client's own of every load, for clients c and client_preferences p. */
#define STORE_SQL_PREFS                                                                            \
    " c.consent_email, c.consent_sms, c.consent_whatsapp,"                                         \
    " COALESCE(p.preferred_channels, '[\"email\"]'::jsonb)::text,"                                 \
    " to_char(COALESCE(p.quiet_hours_start, '22:00'::time), 'HH24:MI'),"                           \
    " to_char(COALESCE(p.quiet_hours_end, '08:00'::time), 'HH24:MI'),"                             \
    " COALESCE(p.opt_out_email, false), COALESCE(p.opt_out_sms, false),"                           \
    " COALESCE(p.opt_out_whatsapp, false),"                                                        \
    " COALESCE(EXTRACT(EPOCH FROM (SELECT max(m.sent_at) FROM communications m"                    \
    "  WHERE m.client_id = c.id)), 0)::float8"

/* Whether client c's address is on the suppression list (sql/009): its
 * primary key serves the lookup. */
#define STORE_SQL_SUPPRESSED                                                                       \
    " EXISTS (SELECT 1 FROM email_suppressions s WHERE s.email_bidx = c.email_bidx)"

int store_client_load(PGconn *conn, const cry_keys_t *keys, const char *id, store_client_t *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!val_uuid(id))
        return 1;
    const char *params[] = {id};
    /* Preferences fall back to the seed's defaults when the row is missing;
     * last contact comes from the same round trip. */
    PGresult *r = db_query(
        conn,
        "SELECT c.id, c.name_enc, c.email_enc, c.phone_enc, c.timezone, c.locale," STORE_SQL_PREFS
        ", c.email_bidx," STORE_SQL_SUPPRESSED
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
    const cry_place_t name_at = {"clients", "name", out->id};
    const cry_place_t email_at = {"clients", "email", out->id};
    const cry_place_t phone_at = {"clients", "phone", out->id};
    if (store_decrypt_col(keys, &name_at, r, 1, &out->name) != 0 ||
        store_decrypt_col(keys, &email_at, r, 2, &out->email) != 0 ||
        store_decrypt_col(keys, &phone_at, r, 3, &out->phone) != 0) {
        /* a key mismatch or a damaged row; the value itself is never echoed */
        rc = store_fail(err, errlen, "cannot decrypt client fields", "wrong or missing key");
    }
    out->timezone = store_strdup_col(r, 4);
    out->locale = store_strdup_col(r, 5);
    out->consent[CH_EMAIL] = store_bool_col(r, 6);
    out->consent[CH_SMS] = store_bool_col(r, 7);
    out->consent[CH_WHATSAPP] = store_bool_col(r, 8);
    out->preferred_channels_json = store_strdup_col(r, 9);
    snprintf(out->quiet_start, sizeof out->quiet_start, "%s", PQgetvalue(r, 0, 10));
    snprintf(out->quiet_end, sizeof out->quiet_end, "%s", PQgetvalue(r, 0, 11));
    out->opt_out[CH_EMAIL] = store_bool_col(r, 12);
    out->opt_out[CH_SMS] = store_bool_col(r, 13);
    out->opt_out[CH_WHATSAPP] = store_bool_col(r, 14);
    out->last_contact_at = strtod(PQgetvalue(r, 0, 15), NULL);
    snprintf(out->email_bidx, sizeof out->email_bidx, "%s", PQgetvalue(r, 0, 16));
    out->email_suppressed = store_bool_col(r, 17);
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
    /* The row, its attachments and its first event must land together; open
     * a transaction only when the caller has not (the caller's own
     * transaction then decides). */
    int own_tx = PQtransactionStatus(conn) == PQTRANS_IDLE;
    if (own_tx && db_begin(conn, err, errlen) != 0)
        return -1;
    /* The set-based insert of one row, which leaves the row out when its
     * idempotency key is taken; the key's first request then says what to
     * answer. */
    int inserted = 0;
    int rc = store_comm_insert_many(conn, c, 1, &inserted, err, errlen);
    if (rc == 0 && !inserted)
        rc = c->idempotency_key ? store_comm_replay(conn, c, outcome, replay_json, err, errlen)
                                : store_fail(err, errlen, "communication was not inserted", NULL);
    if (own_tx)
        rc = db_end(conn, rc, err, errlen);
    if (rc != 0) {
        free(*replay_json);
        *replay_json = NULL;
    }
    return rc;
}

/* ---- set-based variants for the intake ---------------------------------- */

/* Rows travel as one JSON array parameter read back with json_to_recordset:
 * one parameter whatever the row count, typed by the statement, and text
 * comes back byte for byte (a stored response must replay identically). */
#define STORE_BATCH_TEXT_MAX (64u * 1024 * 1024)
#define STORE_BATCH_ROWS_MAX 4096

/* Fields of a client that are NULL are kept as stored, and so are consent
 * flags below 0; on a first insert they take the column defaults, and the
 * preferences row is made with the seed's defaults (the column defaults of
 * client_preferences). A consent timestamp moves only when the flag
 * actually changes, so it records when the client gave (or withdrew) it. */
static const char store_sql_upsert[] =
    "WITH x AS (SELECT * FROM json_to_recordset($1::json) AS t(id uuid, name text,"
    "  email text, email_bidx text, phone text, phone_bidx text, key_id text,"
    "  timezone text, locale text, c_email boolean, c_sms boolean, c_whatsapp boolean)),"
    " up AS ("
    " INSERT INTO clients AS c (id, name_enc, email_enc, email_bidx, phone_enc, phone_bidx,"
    "  key_id, timezone, locale, consent_email, consent_email_at, consent_sms,"
    "  consent_sms_at, consent_whatsapp, consent_whatsapp_at)"
    " SELECT x.id, NULLIF(x.name, ''), NULLIF(x.email, ''), NULLIF(x.email_bidx, ''),"
    "  NULLIF(x.phone, ''), NULLIF(x.phone_bidx, ''), x.key_id, COALESCE(x.timezone, 'UTC'),"
    "  COALESCE(x.locale, 'en'),"
    "  COALESCE(x.c_email, false), CASE WHEN x.c_email IS NOT NULL THEN now() END,"
    "  COALESCE(x.c_sms, false), CASE WHEN x.c_sms IS NOT NULL THEN now() END,"
    "  COALESCE(x.c_whatsapp, false), CASE WHEN x.c_whatsapp IS NOT NULL THEN now() END"
    " FROM x"
    " ON CONFLICT (id) DO UPDATE SET (name_enc, email_enc, email_bidx, phone_enc, phone_bidx,"
    "  key_id, timezone, locale, consent_email, consent_email_at, consent_sms,"
    "  consent_sms_at, consent_whatsapp, consent_whatsapp_at, updated_at, erased_at) = ("
    "  SELECT CASE WHEN x.name IS NULL THEN c.name_enc ELSE NULLIF(x.name, '') END,"
    "  CASE WHEN x.email IS NULL THEN c.email_enc ELSE NULLIF(x.email, '') END,"
    "  CASE WHEN x.email IS NULL THEN c.email_bidx ELSE NULLIF(x.email_bidx, '') END,"
    "  CASE WHEN x.phone IS NULL THEN c.phone_enc ELSE NULLIF(x.phone, '') END,"
    "  CASE WHEN x.phone IS NULL THEN c.phone_bidx ELSE NULLIF(x.phone_bidx, '') END,"
    "  CASE WHEN x.name IS NULL AND x.email IS NULL AND x.phone IS NULL"
    "   THEN c.key_id ELSE x.key_id END,"
    "  COALESCE(x.timezone, c.timezone), COALESCE(x.locale, c.locale),"
    "  COALESCE(x.c_email, c.consent_email),"
    "  CASE WHEN x.c_email IS DISTINCT FROM c.consent_email AND x.c_email IS NOT NULL"
    "   THEN now() ELSE c.consent_email_at END,"
    "  COALESCE(x.c_sms, c.consent_sms),"
    "  CASE WHEN x.c_sms IS DISTINCT FROM c.consent_sms AND x.c_sms IS NOT NULL"
    "   THEN now() ELSE c.consent_sms_at END,"
    "  COALESCE(x.c_whatsapp, c.consent_whatsapp),"
    "  CASE WHEN x.c_whatsapp IS DISTINCT FROM c.consent_whatsapp"
    "   AND x.c_whatsapp IS NOT NULL THEN now() ELSE c.consent_whatsapp_at END,"
    "  now(), NULL::timestamptz"
    "  FROM x WHERE x.id = c.id)"
    /* an erased client is made again only with explicit consent; without
     * it the row stays as erasure left it and the request is refused */
    " WHERE c.erased_at IS NULL OR EXISTS (SELECT 1 FROM x WHERE x.id = c.id"
    "  AND (x.c_email IS NOT NULL OR x.c_sms IS NOT NULL OR x.c_whatsapp IS NOT NULL))"
    " RETURNING id)"
    " INSERT INTO client_preferences (client_id) SELECT id FROM up"
    " ON CONFLICT (client_id) DO NOTHING";

/* The LOW messages waiting in client c.id's open digests (the open-digest
 * index serves it). */
#define STORE_SQL_PENDING                                                                          \
    "SELECT COALESCE(sum(d.batch_size), 0)::int AS n,"                                             \
    " COALESCE(EXTRACT(EPOCH FROM min(d.created_at)), 0)::float8 AS oldest"                        \
    " FROM communications d WHERE d.client_id = c.id AND d.message_type = 'digest'"                \
    " AND d.status = 'pending'"

static const char store_sql_facts[] =
    "SELECT c.id, c.email_enc IS NOT NULL AND c.email_enc <> '',"
    " c.phone_enc IS NOT NULL AND c.phone_enc <> '', c.timezone," STORE_SQL_PREFS
    ", pd.n, pd.oldest, c.erased_at IS NOT NULL, c.prefs_version," STORE_SQL_SUPPRESSED
    " FROM clients c LEFT JOIN client_preferences p ON p.client_id = c.id"
    " CROSS JOIN LATERAL (" STORE_SQL_PENDING ") pd"
    " WHERE c.id = ANY($1::uuid[])";

/* The part of the facts that changes with every message (the preference
 * cache holds the rest). */
static const char store_sql_activity[] =
    "SELECT c.id, COALESCE(EXTRACT(EPOCH FROM (SELECT max(m.sent_at) FROM communications m"
    "  WHERE m.client_id = c.id)), 0)::float8, pd.n, pd.oldest, c.erased_at IS NOT NULL,"
    " c.prefs_version"
    " FROM clients c CROSS JOIN LATERAL (" STORE_SQL_PENDING ") pd"
    " WHERE c.id = ANY($1::uuid[])";

static const char store_sql_probe[] =
    "SELECT x.i, m.request_hash, m.response"
    " FROM json_to_recordset($1::json) AS x(i int, c uuid, k text)"
    " JOIN communications m ON m.client_id = x.c"
    "  AND m.idempotency_key = x.k AND m.idempotency_key IS NOT NULL";

static const char store_sql_insert[] =
    "WITH x AS (SELECT * FROM json_to_recordset($1::json) AS t(id uuid, plan_id uuid,"
    "  client_id uuid, message_type text, urgency text, preferred_channel text,"
    "  context text, idempotency_key text, request_hash text, response text, status text,"
    "  event_type text, channel text, fallback text, send_at float8, priority smallint,"
    "  decision text, rules_version text, skip_reason text, batch_id uuid)),"
    " ins AS (INSERT INTO communications (id, plan_id, client_id, message_type, urgency,"
    "  preferred_channel, context, idempotency_key, request_hash, response, status, channel,"
    "  fallback_channels, send_at, next_attempt_at, priority, decision, rules_version,"
    "  skip_reason, batch_id)"
    "  SELECT x.id, x.plan_id, x.client_id, x.message_type, x.urgency, x.preferred_channel,"
    "  x.context::jsonb, x.idempotency_key, x.request_hash, x.response, x.status, x.channel,"
    "  x.fallback::jsonb, to_timestamp(x.send_at), to_timestamp(x.send_at), x.priority,"
    "  x.decision::jsonb, x.rules_version, x.skip_reason, x.batch_id FROM x"
    "  ON CONFLICT (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
    "  DO NOTHING RETURNING id),"
    " ev AS (INSERT INTO delivery_events (communication_id, event_type, delivery_status,"
    "  channel, attempt, error_details, provider_response)"
    "  SELECT x.id, x.event_type, x.status, x.channel, 0, x.skip_reason,"
    "  CASE WHEN x.skip_reason IS NOT NULL"
    "   THEN jsonb_build_object('reason', x.skip_reason)"
    "   WHEN x.batch_id IS NOT NULL THEN jsonb_build_object('digest_id', x.batch_id) END"
    "  FROM x JOIN ins ON ins.id = x.id),"
    " att AS (INSERT INTO communication_attachments (communication_id, ordinal, filename,"
    "  content_type, data)"
    "  SELECT a.cid, a.ord, a.filename, a.content_type, decode(a.data, 'base64')"
    "  FROM json_to_recordset($2::json) AS a(cid uuid, ord int, filename text,"
    "   content_type text, data text) JOIN ins ON ins.id = a.cid)"
    " SELECT count(*) FROM ins";

/* A JSON string, or null for NULL. */
static int store_jstr(buf_t *b, const char *s)
{
    return s ? jtext_string(b, s) : buf_puts(b, "null");
}

static const char *store_jbool(int v)
{
    return v < 0 ? "null" : v ? "true" : "false";
}

/* One member of a record-set object: its key (with the comma before it)
 * and its text, null for NULL. */
typedef struct store_jfield {
    const char *key; /* e.g. ",\"name\":" */
    const char *val;
} store_jfield_t;

static int store_jfields(buf_t *b, const store_jfield_t *f, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        rc |= buf_puts(b, f[i].key);
        rc |= store_jstr(b, f[i].val);
    }
    return rc;
}

/* Closes the record set in js (rc: its writes so far), runs sql with it as
 * the one parameter and frees js. The result, or NULL with err (too_large
 * when the set did not fit). */
static PGresult *store_batch_query(PGconn *conn, const char *sql, buf_t *js, int rc,
                                   const char *too_large, char *err, size_t errlen)
{
    rc |= buf_putc(js, ']');
    if (rc != 0) {
        buf_free(js);
        store_fail(err, errlen, too_large, NULL);
        return NULL;
    }
    const char *params[] = {js->data};
    PGresult *r = db_query(conn, sql, 1, params, err, errlen);
    buf_free(js);
    return r;
}

int store_clients_upsert_many(PGconn *conn, const cry_keys_t *keys, const store_client_t *c, int n,
                              char *err, size_t errlen)
{
    if (n <= 0 || n > STORE_BATCH_ROWS_MAX)
        return store_fail(err, errlen, "bad client count", NULL);
    buf_t js;
    buf_init(&js, STORE_BATCH_TEXT_MAX);
    int rc = buf_putc(&js, '[');
    for (int i = 0; i < n && rc == 0; i++) {
        if (!val_uuid(c[i].id)) {
            buf_free(&js);
            return store_fail(err, errlen, "client id is not a UUID", NULL);
        }
        store_pii_t name, email, phone;
        int ok = store_pii_prepare(keys, c[i].id, "name", c[i].name, NULL, &name) == 0;
        ok = store_pii_prepare(keys, c[i].id, "email", c[i].email, "email", &email) == 0 && ok;
        ok = store_pii_prepare(keys, c[i].id, "phone", c[i].phone, "phone", &phone) == 0 && ok;
        if (ok) {
            const store_jfield_t f[] = {
                {i ? ",{\"id\":" : "{\"id\":", c[i].id},
                {",\"name\":", name.enc_param},
                {",\"email\":", email.enc_param},
                {",\"email_bidx\":", email.bidx_param},
                {",\"phone\":", phone.enc_param},
                {",\"phone_bidx\":", phone.bidx_param},
                {",\"key_id\":", keys && keys->loaded ? keys->key_id : NULL},
                {",\"timezone\":", c[i].timezone},
                {",\"locale\":", c[i].locale},
            };
            rc |= store_jfields(&js, f, sizeof f / sizeof f[0]);
            rc |= buf_printf(&js, ",\"c_email\":%s,\"c_sms\":%s,\"c_whatsapp\":%s}",
                             store_jbool(c[i].consent[CH_EMAIL]), store_jbool(c[i].consent[CH_SMS]),
                             store_jbool(c[i].consent[CH_WHATSAPP]));
        }
        buf_free(&name.enc);
        buf_free(&email.enc);
        buf_free(&phone.enc);
        if (!ok) {
            buf_free(&js);
            return store_fail(err, errlen, "cannot encrypt client fields",
                              keys && keys->loaded ? "value too long or encryption failed"
                                                   : "no encryption key configured");
        }
    }
    /* ON CONFLICT's SET sees only the stored row and EXCLUDED, which has
     * lost the difference between "not given" (NULL) and "cleared" (""):
     * the row's own input is read back from x by a sub-select instead. */
    PGresult *r =
        store_batch_query(conn, store_sql_upsert, &js, rc, "client batch too large", err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

void store_client_facts_free(store_client_facts_t *f, int n)
{
    if (!f)
        return;
    for (int i = 0; i < n; i++) {
        free(f[i].timezone);
        free(f[i].preferred_channels_json);
        memset(&f[i], 0, sizeof f[i]);
    }
}

/* Runs sql with $1 the array of the UUIDs among ids[0..n) (anything else
 * cannot name a client and is left out; UUIDs need no quoting inside an
 * array literal). 0 with *res (NULL when no id was a UUID), or -1 with err. */
static int store_by_ids(PGconn *conn, const char *sql, const char *const *ids, int n,
                        PGresult **res, char *err, size_t errlen)
{
    *res = NULL;
    if (n <= 0 || n > STORE_BATCH_ROWS_MAX)
        return store_fail(err, errlen, "bad client count", NULL);
    buf_t arr;
    buf_init(&arr, (size_t)n * 40 + 8);
    int rc = buf_putc(&arr, '{');
    int listed = 0;
    for (int i = 0; i < n; i++) {
        if (!val_uuid(ids[i]))
            continue;
        rc |= buf_puts(&arr, listed++ ? "," : "");
        rc |= buf_puts(&arr, ids[i]);
    }
    rc |= buf_putc(&arr, '}');
    if (rc != 0 || listed == 0) {
        buf_free(&arr);
        return rc != 0 ? store_fail(err, errlen, "out of memory", NULL) : 0;
    }
    const char *params[] = {arr.data};
    *res = db_query(conn, sql, 1, params, err, errlen);
    buf_free(&arr);
    return *res ? 0 : -1;
}

int store_client_facts_load(PGconn *conn, const char *const *ids, int n, store_client_facts_t *out,
                            char *err, size_t errlen)
{
    if (n > 0 && n <= STORE_BATCH_ROWS_MAX)
        memset(out, 0, (size_t)n * sizeof *out);
    /* Only whether a contact exists, not what it is: no decryption. Same
     * defaults and last-contact rule as store_client_load. */
    PGresult *r = NULL;
    if (store_by_ids(conn, store_sql_facts, ids, n, &r, err, errlen) != 0)
        return -1;
    if (!r)
        return 0;
    int rc = 0;
    rc = 0;
    for (int row = 0; row < PQntuples(r) && rc == 0; row++) {
        const char *id = PQgetvalue(r, row, 0);
        for (int i = 0; i < n; i++) {
            if (out[i].found || strcasecmp(ids[i], id) != 0)
                continue;
            store_client_facts_t *f = &out[i];
            f->found = 1;
            f->has_email = store_bool_row(r, row, 1);
            f->has_phone = store_bool_row(r, row, 2);
            f->timezone = store_strdup_row(r, row, 3);
            f->consent[CH_EMAIL] = store_bool_row(r, row, 4);
            f->consent[CH_SMS] = store_bool_row(r, row, 5);
            f->consent[CH_WHATSAPP] = store_bool_row(r, row, 6);
            f->preferred_channels_json = store_strdup_row(r, row, 7);
            snprintf(f->quiet_start, sizeof f->quiet_start, "%s", PQgetvalue(r, row, 8));
            snprintf(f->quiet_end, sizeof f->quiet_end, "%s", PQgetvalue(r, row, 9));
            f->opt_out[CH_EMAIL] = store_bool_row(r, row, 10);
            f->opt_out[CH_SMS] = store_bool_row(r, row, 11);
            f->opt_out[CH_WHATSAPP] = store_bool_row(r, row, 12);
            f->last_contact_at = strtod(PQgetvalue(r, row, 13), NULL);
            f->pending_count = atoi(PQgetvalue(r, row, 14));
            f->pending_oldest_at = strtod(PQgetvalue(r, row, 15), NULL);
            f->erased = store_bool_row(r, row, 16);
            f->prefs_version = strtoll(PQgetvalue(r, row, 17), NULL, 10);
            f->email_suppressed = store_bool_row(r, row, 18);
            if (!f->timezone || !f->preferred_channels_json)
                rc = store_fail(err, errlen, "out of memory loading clients", NULL);
            /* ids are distinct for the caller, but a repeat gets the same facts */
        }
    }
    PQclear(r);
    if (rc != 0)
        store_client_facts_free(out, n);
    return rc;
}

int store_client_activity_load(PGconn *conn, const char *const *ids, int n,
                               store_client_facts_t *out, char *err, size_t errlen)
{
    if (n <= 0 || n > STORE_BATCH_ROWS_MAX)
        return store_fail(err, errlen, "bad client count", NULL);
    for (int i = 0; i < n; i++)
        out[i].found = 0;
    PGresult *r = NULL;
    if (store_by_ids(conn, store_sql_activity, ids, n, &r, err, errlen) != 0)
        return -1;
    if (!r)
        return 0;
    for (int row = 0; row < PQntuples(r); row++) {
        const char *id = PQgetvalue(r, row, 0);
        for (int i = 0; i < n; i++) {
            if (out[i].found || strcasecmp(ids[i], id) != 0)
                continue;
            out[i].found = 1;
            out[i].last_contact_at = strtod(PQgetvalue(r, row, 1), NULL);
            out[i].pending_count = atoi(PQgetvalue(r, row, 2));
            out[i].pending_oldest_at = strtod(PQgetvalue(r, row, 3), NULL);
            out[i].erased = store_bool_row(r, row, 4);
            out[i].prefs_version = strtoll(PQgetvalue(r, row, 5), NULL, 10);
        }
    }
    PQclear(r);
    return 0;
}

int store_comm_keys_probe(PGconn *conn, store_key_probe_t *p, int n, char *err, size_t errlen)
{
    if (n <= 0 || n > STORE_BATCH_ROWS_MAX)
        return store_fail(err, errlen, "bad key count", NULL);
    buf_t js;
    buf_init(&js, STORE_BATCH_TEXT_MAX);
    int rc = buf_putc(&js, '[');
    for (int i = 0; i < n; i++) {
        p[i].outcome = STORE_INSERTED;
        p[i].replay_json = NULL;
        if (!p[i].client_id || !p[i].idempotency_key) {
            buf_free(&js);
            return store_fail(err, errlen, "key probe without a client or a key", NULL);
        }
        rc |= buf_printf(&js, "%s{\"i\":%d,\"c\":", i ? "," : "", i);
        rc |= jtext_string(&js, p[i].client_id);
        rc |= buf_puts(&js, ",\"k\":");
        rc |= jtext_string(&js, p[i].idempotency_key);
        rc |= buf_putc(&js, '}');
    }
    /* The IS NOT NULL lets the planner use the partial unique index. */
    PGresult *r =
        store_batch_query(conn, store_sql_probe, &js, rc, "key batch too large", err, errlen);
    if (!r)
        return -1;
    rc = 0;
    for (int row = 0; row < PQntuples(r) && rc == 0; row++) {
        int i = atoi(PQgetvalue(r, row, 0));
        if (i < 0 || i >= n || p[i].outcome != STORE_INSERTED) {
            rc = store_fail(err, errlen, "unexpected key probe row", NULL);
            break;
        }
        const char *stored = PQgetisnull(r, row, 1) ? "" : PQgetvalue(r, row, 1);
        if (p[i].request_hash && cry_str_equal(stored, p[i].request_hash)) {
            p[i].outcome = STORE_REPLAY;
            p[i].replay_json = strdup(PQgetisnull(r, row, 2) ? "{}" : PQgetvalue(r, row, 2));
            if (!p[i].replay_json)
                rc = store_fail(err, errlen, "out of memory", NULL);
        } else {
            p[i].outcome = STORE_CONFLICT;
        }
    }
    PQclear(r);
    if (rc != 0) {
        for (int i = 0; i < n; i++) {
            free(p[i].replay_json);
            p[i].replay_json = NULL;
            p[i].outcome = STORE_INSERTED;
        }
    }
    return rc;
}

/* One communication as a JSON object of the insert's record set. */
static int store_comm_json_row(buf_t *js, const store_comm_new_t *c)
{
    /* context, fallbacks and decision go as JSON text strings and are cast
     * by the statement */
    const store_jfield_t f[] = {
        {"{\"id\":", c->id},
        {",\"plan_id\":", c->plan_id},
        {",\"client_id\":", c->client_id},
        {",\"message_type\":", c->message_type},
        {",\"urgency\":", c->urgency ? c->urgency : "normal"},
        {",\"preferred_channel\":", c->preferred_channel},
        {",\"context\":", c->context_json ? c->context_json : "{}"},
        {",\"idempotency_key\":", c->idempotency_key},
        {",\"request_hash\":", c->request_hash},
        {",\"response\":", c->response_json},
        {",\"status\":", c->status},
        {",\"event_type\":", store_event_for_status(c->status)},
        {",\"channel\":", c->channel},
        {",\"fallback\":", c->fallback_json ? c->fallback_json : "[]"},
        {",\"decision\":", c->decision_json},
        {",\"rules_version\":", c->rules_version},
        {",\"skip_reason\":", c->skip_reason},
        {",\"batch_id\":", c->batch_id},
    };
    int rc = store_jfields(js, f, sizeof f / sizeof f[0]);
    rc |= buf_printf(js, ",\"send_at\":%.6f,\"priority\":%d}", c->send_at, c->priority);
    return rc ? -1 : 0;
}

/* The attachments of c as objects of the attachments' record set; the bytes
 * travel as base64 (JSON has no bytes) and are decoded by the statement. */
static int store_attach_json_rows(buf_t *js, const store_comm_new_t *c, int *first)
{
    int rc = 0;
    for (int k = 0; k < c->n_attachments && rc == 0; k++) {
        const store_attachment_t *a = &c->attachments[k];
        rc |= buf_puts(js, *first ? "{\"cid\":" : ",{\"cid\":");
        *first = 0;
        rc |= jtext_string(js, c->id);
        rc |= buf_printf(js, ",\"ord\":%d,\"filename\":", k);
        rc |= jtext_string(js, a->filename ? a->filename : "attachment");
        rc |= buf_puts(js, ",\"content_type\":");
        rc |= jtext_string(js, a->content_type ? a->content_type : "application/octet-stream");
        rc |= buf_puts(js, ",\"data\":\"");
        rc |= b64_encode(js, a->data, a->len, 0);
        rc |= buf_puts(js, "\"}");
    }
    return rc ? -1 : 0;
}

int store_comm_insert_many(PGconn *conn, const store_comm_new_t *c, int n, int *inserted, char *err,
                           size_t errlen)
{
    *inserted = 0;
    if (n <= 0 || n > STORE_BATCH_ROWS_MAX)
        return store_fail(err, errlen, "bad communication count", NULL);
    buf_t rows, atts;
    buf_init(&rows, STORE_BATCH_TEXT_MAX);
    buf_init(&atts, STORE_BATCH_TEXT_MAX);
    int rc = buf_putc(&rows, '[') | buf_putc(&atts, '[');
    int first_att = 1;
    for (int i = 0; i < n && rc == 0; i++) {
        if (!c[i].status || !c[i].plan_id || !c[i].client_id || !c[i].message_type ||
            c[i].n_attachments < 0 || (c[i].n_attachments > 0 && !c[i].attachments)) {
            buf_free(&rows);
            buf_free(&atts);
            return store_fail(err, errlen, "communication is missing a required field", NULL);
        }
        if (i)
            rc |= buf_putc(&rows, ',');
        rc |= store_comm_json_row(&rows, &c[i]);
        rc |= store_attach_json_rows(&atts, &c[i], &first_att);
    }
    rc |= buf_putc(&rows, ']') | buf_putc(&atts, ']');
    if (rc != 0) {
        buf_free(&rows);
        buf_free(&atts);
        return store_fail(err, errlen, "communication batch too large", NULL);
    }
    const char *params[] = {rows.data, atts.data};
    /* The row, its attachments and its first event in one statement; the
     * children join on RETURNING, so a row left out by ON CONFLICT takes
     * nothing with it. next_attempt_at starts at send_at: a future row is
     * not due, so the claim passes it by until its time. */
    PGresult *r = db_query(conn, store_sql_insert, 2, params, err, errlen);
    buf_free(&rows);
    buf_free(&atts);
    if (!r)
        return -1;
    *inserted = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int store_json_result(PGresult *r, char **json, char *err, size_t errlen)
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
    if (!val_uuid(id))
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
    if (!val_uuid(plan_id))
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
    if (!val_uuid(comm_id))
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
        char why[512];
        db_error_text(r, conn, why, sizeof why);
        store_fail(err, errlen, "loading attachments", why);
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

/* ---- digests ------------------------------------------------------------- */

int store_digest_pending(PGconn *conn, const char *client_id, int *count, double *oldest_at,
                         char *err, size_t errlen)
{
    *count = 0;
    *oldest_at = 0;
    if (!val_uuid(client_id))
        return 0;
    const char *params[] = {client_id};
    PGresult *r = db_query(conn,
                           "SELECT pd.n, pd.oldest FROM (SELECT $1::uuid AS id) c"
                           " CROSS JOIN LATERAL (" STORE_SQL_PENDING ") pd",
                           1, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) == 1) {
        *count = atoi(PQgetvalue(r, 0, 0));
        *oldest_at = strtod(PQgetvalue(r, 0, 1), NULL);
    }
    PQclear(r);
    return 0;
}

/* The open digest with room, locked until the caller's transaction ends:
 * a second writer waits here and then sees the size the first one left.
 * $1 client, $2 key. */
static const char store_sql_digest_find[] =
    "SELECT id, batch_size, batch_max, extract(epoch FROM send_at) FROM communications"
    " WHERE client_id = $1::uuid AND batch_key = $2 AND message_type = 'digest'"
    " AND status = 'pending' AND batch_size < batch_max FOR UPDATE";

/* Counts one more member of the locked digest; a full one becomes due and
 * leaves the open-digest index in the same statement. $1 id, $2 size,
 * $3 full, $4 due. */
static const char store_sql_digest_add[] =
    "WITH d AS (UPDATE communications SET batch_size = $2::int,"
    "  status = CASE WHEN $3::boolean THEN 'queued' ELSE status END,"
    "  next_attempt_at = CASE WHEN $3::boolean THEN to_timestamp($4::float8)"
    "   ELSE next_attempt_at END,"
    "  updated_at = now()"
    "  WHERE id = $1::uuid"
    "  RETURNING id, batch_size, status, channel),"
    " ev AS (INSERT INTO delivery_events (communication_id, event_type, delivery_status,"
    "  channel, attempt, provider_response)"
    "  SELECT d.id, 'queued', 'queued', d.channel, 0,"
    "  jsonb_build_object('reason', 'digest full', 'members', d.batch_size)"
    "  FROM d WHERE d.status = 'queued')"
    " SELECT id FROM d";

/* Opens a digest with its first member counted. send_at is the first
 * member's send time; $9 says when it goes, $10 whether it is full already.
 * $1 id, $2 plan, $3 client, $4 channel, $5 key, $6 send_at, $7 window,
 * $8 max. */
static const char store_sql_digest_open[] =
    "WITH d AS (INSERT INTO communications (id, plan_id, client_id, message_type, urgency,"
    "  channel, status, priority, context, send_at, next_attempt_at, batch_key, batch_size,"
    "  batch_max)"
    "  VALUES ($1::uuid, $2::uuid, $3::uuid, 'digest', 'low', $4,"
    "  CASE WHEN $10::boolean THEN 'queued' ELSE 'pending' END, 3,"
    "  jsonb_build_object('batch_key', $5::text), to_timestamp($6::float8),"
    "  to_timestamp($9::float8), $5, 1, $8::int)"
    "  ON CONFLICT (client_id, batch_key) WHERE message_type = 'digest' AND status = 'pending'"
    "  DO NOTHING RETURNING id, status),"
    " ev AS (INSERT INTO delivery_events (communication_id, event_type, delivery_status,"
    "  channel, attempt, provider_response)"
    "  SELECT d.id, CASE d.status WHEN 'queued' THEN 'queued' ELSE 'scheduled' END, d.status,"
    "  $4, 0, jsonb_build_object('batch_key', $5::text, 'window_seconds', $7::int,"
    "   'max_size', $8::int) FROM d)"
    " SELECT id FROM d";

/* Adds the member to the locked open digest of r (the find statement's
 * row). 1 joined, -1 with err. */
static int store_digest_add(PGconn *conn, store_digest_join_t *j, PGresult *found, char *err,
                            size_t errlen)
{
    char id[37];
    snprintf(id, sizeof id, "%s", PQgetvalue(found, 0, 0));
    int size = atoi(PQgetvalue(found, 0, 1)) + 1;
    int max = atoi(PQgetvalue(found, 0, 2));
    double first = strtod(PQgetvalue(found, 0, 3), NULL);
    double due = 0;
    int full = j->due(first, j->window_seconds, size, max, time_now(), &due);
    char size_s[16], due_s[64];
    snprintf(size_s, sizeof size_s, "%d", size);
    snprintf(due_s, sizeof due_s, "%.6f", due);
    const char *p[] = {id, size_s, full ? "true" : "false", due_s};
    PGresult *r = db_query(conn, store_sql_digest_add, 4, p, err, errlen);
    if (!r)
        return -1;
    int ok = PQntuples(r) == 1;
    PQclear(r);
    if (!ok)
        return store_fail(err, errlen, "digest join: the locked digest is gone", NULL);
    snprintf(j->digest_id, sizeof j->digest_id, "%s", id);
    j->size = size;
    return 1;
}

int store_digest_join(PGconn *conn, store_digest_join_t *j, char *err, size_t errlen)
{
    j->size = 0;
    j->opened = 0;
    if (!val_uuid(j->client_id) || !val_uuid(j->plan_id) || !val_uuid(j->digest_id) ||
        !j->batch_key || !j->batch_key[0] || !j->channel || j->window_seconds < 1 ||
        j->max_size < 1 || !j->due)
        return store_fail(err, errlen, "digest join: bad arguments", NULL);
    char send_at[64], window[16], max[16], due_s[64];
    snprintf(send_at, sizeof send_at, "%.6f", j->send_at);
    snprintf(window, sizeof window, "%d", j->window_seconds);
    snprintf(max, sizeof max, "%d", j->max_size);
    double due = 0;
    int full = j->due(j->send_at, j->window_seconds, 1, j->max_size, time_now(), &due);
    snprintf(due_s, sizeof due_s, "%.6f", due);
    /* Each statement sees what committed before it: the open digest can be
     * claimed or filled between the two, and opened by someone else between
     * a miss and our insert. Both are rare and settle on the next try. */
    for (int tries = 0; tries < 4; tries++) {
        const char *find[] = {j->client_id, j->batch_key};
        PGresult *r = db_query(conn, store_sql_digest_find, 2, find, err, errlen);
        if (!r)
            return -1;
        if (PQntuples(r) == 1) {
            int rc = store_digest_add(conn, j, r, err, errlen);
            PQclear(r);
            return rc < 0 ? -1 : 0;
        }
        PQclear(r);
        const char *open[] = {
            j->digest_id, j->plan_id, j->client_id, j->channel, j->batch_key,
            send_at,      window,     max,          due_s,      full ? "true" : "false"};
        r = db_query(conn, store_sql_digest_open, 10, open, err, errlen);
        if (!r)
            return -1;
        int made = PQntuples(r) == 1;
        PQclear(r);
        if (made) {
            j->size = 1;
            j->opened = 1;
            return 0;
        }
    }
    return store_fail(err, errlen, "digest join: the open digest kept changing", NULL);
}

void store_digest_members_free(store_digest_member_t *m, int n)
{
    if (!m)
        return;
    for (int i = 0; i < n; i++) {
        free(m[i].plan_id);
        free(m[i].message_type);
        free(m[i].context_json);
    }
    free(m);
}

int store_digest_members_load(PGconn *conn, const char *digest_id, store_digest_member_t **out,
                              int *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!val_uuid(digest_id))
        return store_fail(err, errlen, "digest id is not a UUID", NULL);
    char lim[16];
    snprintf(lim, sizeof lim, "%d", STORE_DIGEST_MAX);
    const char *params[] = {digest_id, lim};
    PGresult *r = db_query(conn,
                           "SELECT id, plan_id, message_type, context::text FROM communications"
                           " WHERE batch_id = $1::uuid ORDER BY created_at, send_at, id"
                           " LIMIT $2::int",
                           2, params, err, errlen);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    if (rows == 0) {
        PQclear(r);
        return 0;
    }
    store_digest_member_t *m = calloc((size_t)rows, sizeof *m);
    if (!m) {
        PQclear(r);
        return store_fail(err, errlen, "out of memory", NULL);
    }
    for (int i = 0; i < rows; i++) {
        snprintf(m[i].id, sizeof m[i].id, "%s", PQgetvalue(r, i, 0));
        m[i].plan_id = store_strdup_row(r, i, 1);
        m[i].message_type = store_strdup_row(r, i, 2);
        m[i].context_json = store_strdup_row(r, i, 3);
        if (!m[i].plan_id || !m[i].message_type || !m[i].context_json) {
            store_digest_members_free(m, i + 1);
            PQclear(r);
            return store_fail(err, errlen, "out of memory", NULL);
        }
    }
    PQclear(r);
    *out = m;
    *n = rows;
    return 0;
}
