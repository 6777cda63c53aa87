/* privacy: the export and the erasure of one client (see privacy.h).
 *
 * Where a client's data lives (the sql/ migrations), and what each does with it:
 *
 *   table (link to the client)      personal data                export erasure
 *   clients (id)                    name_enc, email_enc,         decrypted  nulled
 *                                   phone_enc, *_bidx,
 *                                   timezone, locale, consent_*,
 *                                   whatsapp_window_until                   defaults
 *   client_preferences (client_id)  channels, quiet hours,       as stored  row deleted
 *                                   opt-outs
 *   consent_ledger (client_id)      none (ids, channel, source)  as stored  kept: the proof
 *   communications (client_id)      context, subject(_enc),      decrypted  nulled / '{}'
 *                                   decision, response,
 *                                   metadata, idempotency_key,
 *                                   request_hash
 *   communication_attachments       filename, data               base64     deleted
 *     (communication_id)
 *   delivery_events                 provider_response,           as stored  nulled
 *     (communication_id)            error_details (a provider's
 *                                   text may quote the number)
 *   inbound_messages (client_id,    sender_enc, sender_bidx,     decrypted  nulled
 *     communication_id, or no       body_enc
 *     client and the client's
 *     phone index)
 *   workflow_callbacks              payload_enc, payload         decrypted  bare ids only
 *     (communication_id, or
 *     payload client_id)
 *   audit_log (subject_id)          none (who, what, when)       as stored  kept
 *
 * unmatched_receipts name no client (provider ids and codes only). What an
 * erasure keeps of a communication (type, channel, status, times, provider
 * message id, error class) is what crm_communication_analytics counts, so
 * the aggregates of past days do not change. */
#include "store/privacy.h"

#include "store/audit.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/json_text.h"
/* val_uuid, val_utf8 */
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The document's ceiling: a client's every message with its attachments
 * (each at most a request body) fits many times over; more is refused
 * rather than allocated for. */
#define PRIVACY_EXPORT_MAX (256u * 1024 * 1024)
/* A decrypted name, address, subject or reply text. */
#define PRIVACY_PLAIN_MAX (1024u * 1024)

static int privacy_fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    return -1;
}

/* ---- export -------------------------------------------------------------- */

int store_export_begin(PGconn *conn, char *err, size_t errlen)
{
    return db_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ", err, errlen);
}

/* The client's inbound messages: attributed to it, replying to one of its
 * messages, or from its number when no client was known for the number at
 * the time (client_id NULL). $1 the client. Shared by the export and the
 * erasure so that both mean the same rows. */
#define PRIVACY_INBOUND_OF_CLIENT                                                                  \
    " (i.client_id = $1::uuid"                                                                     \
    "  OR i.communication_id IN (SELECT id FROM communications WHERE client_id = $1::uuid)"        \
    "  OR (i.client_id IS NULL AND i.sender_bidx IS NOT NULL"                                      \
    "   AND i.sender_bidx = (SELECT phone_bidx FROM clients WHERE id = $1::uuid)))"

/* The client's callbacks: about one of its messages, or naming it in the
 * payload (a reply that matched no message). $1 the client. */
#define PRIVACY_CALLBACKS_OF_CLIENT                                                                \
    " (w.communication_id IN (SELECT id FROM communications WHERE client_id = $1::uuid)"           \
    "  OR w.payload->>'client_id' = ($1::uuid)::text)"

/* Each section: one row per record, the first column the record as a JSON
 * object without its ciphertexts, then what the C side decrypts. */
static const char privacy_sql_client[] =
    "SELECT (to_jsonb(c) - 'name_enc' - 'email_enc' - 'email_bidx' - 'phone_enc'"
    "  - 'phone_bidx')::text, c.erased_at IS NOT NULL, c.id::text,"
    " c.name_enc, c.email_enc, c.phone_enc"
    " FROM clients c WHERE c.id = $1::uuid";
static const char privacy_sql_preferences[] =
    "SELECT to_jsonb(p)::text FROM client_preferences p WHERE p.client_id = $1::uuid";
/* The suppression of the client's address, if it hard-bounced: the entry
 * without its key (the blind index is the address in another form). */
static const char privacy_sql_suppression[] =
    "SELECT (to_jsonb(s) - 'email_bidx')::text FROM email_suppressions s"
    " JOIN clients c ON c.email_bidx = s.email_bidx WHERE c.id = $1::uuid";
static const char privacy_sql_ledger[] = "SELECT to_jsonb(l)::text FROM consent_ledger l"
                                         " WHERE l.client_id = $1::uuid ORDER BY l.at, l.id";
/* A message with its events, attachments (the bytes in base64, in one
 * line: PostgreSQL's encoder wraps at 76 columns), tracked links, the
 * answers it offered and the one the client gave. */
static const char privacy_sql_comms[] =
    "SELECT (to_jsonb(c) - 'subject_enc' - 'subject' || jsonb_build_object("
    "  'events', COALESCE((SELECT jsonb_agg(to_jsonb(e) ORDER BY e.event_timestamp, e.id)"
    "   FROM delivery_events e WHERE e.communication_id = c.id), '[]'::jsonb),"
    "  'attachments', COALESCE((SELECT jsonb_agg(jsonb_build_object("
    "    'communication_id', a.communication_id, 'ordinal', a.ordinal,"
    "    'filename', a.filename, 'content_type', a.content_type,"
    "    'size', octet_length(a.data),"
    "    'content_base64', replace(encode(a.data, 'base64'), chr(10), ''))"
    "    ORDER BY a.ordinal)"
    "   FROM communication_attachments a WHERE a.communication_id = c.id), '[]'::jsonb),"
    "  'links', COALESCE((SELECT jsonb_agg(jsonb_build_object('link_index', l.link_index,"
    "    'url', l.url) ORDER BY l.link_index)"
    "   FROM communication_links l WHERE l.communication_id = c.id), '[]'::jsonb),"
    "  'actions', COALESCE((SELECT jsonb_agg(jsonb_build_object('action_index', x.action_index,"
    "    'action', x.action, 'value', x.value, 'label', x.label) ORDER BY x.action_index)"
    "   FROM communication_actions x WHERE x.communication_id = c.id), '[]'::jsonb),"
    "  'answer', (SELECT jsonb_build_object('action_index', w.action_index, 'channel', w.channel,"
    "    'answered_at', w.answered_at) FROM communication_answers w"
    "   WHERE w.communication_id = c.id)))::text,"
    " c.id::text, c.subject_enc, c.subject"
    " FROM communications c WHERE c.client_id = $1::uuid ORDER BY c.created_at, c.id";
static const char privacy_sql_inbound[] =
    "SELECT (to_jsonb(i) - 'sender_enc' - 'body_enc' - 'sender_bidx')::text, i.id::text,"
    " i.sender_enc, i.body_enc"
    " FROM inbound_messages i WHERE" PRIVACY_INBOUND_OF_CLIENT " ORDER BY i.received_at, i.id";
static const char privacy_sql_callbacks[] =
    "SELECT (to_jsonb(w) - 'payload_enc' - 'payload')::text, w.id::text, w.payload_enc,"
    " w.payload::text"
    " FROM workflow_callbacks w WHERE" PRIVACY_CALLBACKS_OF_CLIENT " ORDER BY w.created_at, w.id";
static const char privacy_sql_audit[] =
    "SELECT to_jsonb(a)::text FROM audit_log a"
    " WHERE a.subject_type = 'client' AND a.subject_id = ($1::uuid)::text ORDER BY a.at, a.id";

/* s as a JSON string. Text a client sent may not be UTF-8 (an SMS body is
 * the provider's bytes): then each byte above ASCII is written as the code
 * point of the same value, so the document stays valid JSON and nothing is
 * dropped. */
static int privacy_jstring(buf_t *b, const char *s, size_t len)
{
    if (val_utf8(s, len))
        return jtext_string(b, s);
    int rc = buf_putc(b, '"');
    for (size_t i = 0; i < len && rc == 0; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x80 || ch < 0x20 || ch == '"' || ch == '\\')
            rc = buf_printf(b, "\\u%04x", ch);
        else
            rc = buf_putc(b, (char)ch);
    }
    return rc | buf_putc(b, '"');
}

/* The plaintext of the token in column col of row (bound to table, column,
 * row_id) appended to out as a JSON string; with raw, as the JSON text it
 * is (a callback's body). A NULL column is null. Never puts the value in
 * err, only its place. */
static int privacy_decrypted(buf_t *out, const cry_keys_t *keys, PGresult *r, int row, int col,
                             const char *table, const char *column, const char *row_id, int raw,
                             char *err, size_t errlen)
{
    if (PQgetisnull(r, row, col))
        return buf_puts(out, "null") ? privacy_fail(err, errlen, "export too large") : 0;
    if (!keys || !keys->loaded)
        return privacy_fail(err, errlen, "export: no encryption key to read the client's fields");
    const cry_place_t at = {table, column, row_id};
    buf_t plain;
    buf_init(&plain, PRIVACY_PLAIN_MAX);
    if (cry_decrypt(keys, &at, PQgetvalue(r, row, col), &plain) != 0) {
        buf_free(&plain);
        snprintf(err, errlen, "export: cannot decrypt %s.%s of row %s (wrong key or damaged)",
                 table, column, row_id);
        return -1;
    }
    const char *text = plain.data ? plain.data : "";
    int rc = raw ? buf_append(out, text, plain.len) : privacy_jstring(out, text, plain.len);
    buf_free(&plain);
    return rc ? privacy_fail(err, errlen, "export too large") : 0;
}

/* Appends the JSON object text obj (from PostgreSQL: "{...}") to out with
 * one more member, name: the text after it (written by the caller, which
 * closes the object with privacy_close). */
static int privacy_open_member(buf_t *out, const char *obj, const char *name)
{
    size_t n = strlen(obj);
    if (n < 2 || obj[0] != '{' || obj[n - 1] != '}')
        return -1;
    int rc = buf_append(out, obj, n - 1);
    if (n > 2)
        rc |= buf_putc(out, ',');
    rc |= jtext_string(out, name);
    return rc | buf_putc(out, ':');
}

static int privacy_member(buf_t *out, const char *name)
{
    return buf_putc(out, ',') | jtext_string(out, name) | buf_putc(out, ':');
}

/* A section whose rows need nothing decrypted: "name":[row, ...]. */
static int privacy_plain_section(PGconn *conn, buf_t *doc, const char *name, const char *sql,
                                 const char *const *params, char *err, size_t errlen)
{
    PGresult *r = db_query(conn, sql, 1, params, err, errlen);
    if (!r)
        return -1;
    int rc = privacy_member(doc, name) | buf_putc(doc, '[');
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        if (i)
            rc |= buf_putc(doc, ',');
        rc |= buf_puts(doc, PQgetvalue(r, i, 0));
    }
    rc |= buf_putc(doc, ']');
    PQclear(r);
    return rc ? privacy_fail(err, errlen, "export too large") : 0;
}

/* "client": the row with name, email and phone decrypted. Returns 0, 1 not
 * found, 2 erased, -1. */
static int privacy_client_section(PGconn *conn, const cry_keys_t *keys, buf_t *doc,
                                  const char *const *params, char *err, size_t errlen)
{
    PGresult *r = db_query(conn, privacy_sql_client, 1, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    if (PQgetvalue(r, 0, 1)[0] == 't') {
        PQclear(r);
        return 2;
    }
    const char *id = PQgetvalue(r, 0, 2);
    int rc = 0;
    if (privacy_member(doc, "client") != 0 ||
        privacy_open_member(doc, PQgetvalue(r, 0, 0), "name") != 0)
        rc = privacy_fail(err, errlen, "export too large");
    if (rc == 0)
        rc = privacy_decrypted(doc, keys, r, 0, 3, "clients", "name", id, 0, err, errlen);
    if (rc == 0 && privacy_member(doc, "email") != 0)
        rc = privacy_fail(err, errlen, "export too large");
    if (rc == 0)
        rc = privacy_decrypted(doc, keys, r, 0, 4, "clients", "email", id, 0, err, errlen);
    if (rc == 0 && privacy_member(doc, "phone") != 0)
        rc = privacy_fail(err, errlen, "export too large");
    if (rc == 0)
        rc = privacy_decrypted(doc, keys, r, 0, 5, "clients", "phone", id, 0, err, errlen);
    if (rc == 0 && buf_putc(doc, '}') != 0)
        rc = privacy_fail(err, errlen, "export too large");
    PQclear(r);
    return rc;
}

/* A section whose rows each get decrypted members: for row i, the object
 * in column 0, the row id in column 1, and for member m its token in
 * column 2 + m (bound to table, columns[m]). A member with a fallback
 * column takes that column's text when the token is NULL (a subject
 * written before subjects were encrypted, a callback's bare payload). */
typedef struct privacy_member_spec {
    const char *name;   /* the member in the document */
    const char *column; /* the token's place */
    int raw;            /* 1: the plaintext is JSON text */
    int fallback_col;   /* column holding the value when there is no token; -1 none */
} privacy_member_spec_t;

static int privacy_decrypted_section(PGconn *conn, const cry_keys_t *keys, buf_t *doc,
                                     const char *name, const char *sql, const char *table,
                                     const privacy_member_spec_t *m, int nm,
                                     const char *const *params, char *err, size_t errlen)
{
    PGresult *r = db_query(conn, sql, 1, params, err, errlen);
    if (!r)
        return -1;
    int rc = privacy_member(doc, name) | buf_putc(doc, '[');
    if (rc)
        rc = privacy_fail(err, errlen, "export too large");
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        const char *id = PQgetvalue(r, i, 1);
        if (i && buf_putc(doc, ',') != 0)
            rc = privacy_fail(err, errlen, "export too large");
        for (int k = 0; k < nm && rc == 0; k++) {
            int col = 2 + k;
            if ((k == 0 ? privacy_open_member(doc, PQgetvalue(r, i, 0), m[k].name)
                        : privacy_member(doc, m[k].name)) != 0) {
                rc = privacy_fail(err, errlen, "export too large");
                break;
            }
            if (PQgetisnull(r, i, col) && m[k].fallback_col >= 0 &&
                !PQgetisnull(r, i, m[k].fallback_col)) {
                const char *v = PQgetvalue(r, i, m[k].fallback_col);
                size_t len = (size_t)PQgetlength(r, i, m[k].fallback_col);
                if ((m[k].raw ? buf_append(doc, v, len) : privacy_jstring(doc, v, len)) != 0)
                    rc = privacy_fail(err, errlen, "export too large");
                continue;
            }
            rc = privacy_decrypted(doc, keys, r, i, col, table, m[k].column, id, m[k].raw, err,
                                   errlen);
        }
        if (rc == 0 && buf_putc(doc, '}') != 0)
            rc = privacy_fail(err, errlen, "export too large");
    }
    if (rc == 0 && buf_putc(doc, ']') != 0)
        rc = privacy_fail(err, errlen, "export too large");
    PQclear(r);
    return rc;
}

int store_client_export_json(PGconn *conn, const cry_keys_t *keys, const char *client_id,
                             char **json, char *err, size_t errlen)
{
    *json = NULL;
    if (!val_uuid(client_id))
        return 1;
    const char *params[] = {client_id};
    buf_t doc;
    buf_init(&doc, PRIVACY_EXPORT_MAX);
    /* the members after the first start with a comma: the first is fixed */
    int rc = buf_puts(&doc, "{\"format\":\"crier.client_export.v1\",\"client_id\":") |
             jtext_string(&doc, client_id);
    PGresult *r = rc ? NULL : db_query(conn, "SELECT crier_iso(now())", 0, NULL, err, errlen);
    if (!r) {
        buf_free(&doc);
        return rc ? privacy_fail(err, errlen, "out of memory") : -1;
    }
    rc = privacy_member(&doc, "generated_at") | jtext_string(&doc, PQgetvalue(r, 0, 0));
    PQclear(r);
    if (rc) {
        buf_free(&doc);
        return privacy_fail(err, errlen, "out of memory");
    }
    rc = privacy_client_section(conn, keys, &doc, params, err, errlen);
    if (rc != 0) {
        buf_free(&doc);
        return rc;
    }
    /* the preferences are one row or none: an object or null */
    r = db_query(conn, privacy_sql_preferences, 1, params, err, errlen);
    if (!r) {
        buf_free(&doc);
        return -1;
    }
    rc = privacy_member(&doc, "preferences") |
         buf_puts(&doc, PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "null");
    PQclear(r);
    /* one entry per address: an object or null */
    r = rc == 0 ? db_query(conn, privacy_sql_suppression, 1, params, err, errlen) : NULL;
    if (rc == 0 && !r) {
        buf_free(&doc);
        return -1;
    }
    if (r) {
        rc = privacy_member(&doc, "email_suppression") |
             buf_puts(&doc, PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "null");
        PQclear(r);
    }
    static const privacy_member_spec_t comm_m[] = {{"subject", "subject", 0, 3}};
    static const privacy_member_spec_t inbound_m[] = {{"sender", "sender", 0, -1},
                                                      {"body", "body", 0, -1}};
    static const privacy_member_spec_t callback_m[] = {{"payload", "payload", 1, 3}};
    if (rc)
        rc = privacy_fail(err, errlen, "export too large");
    if (rc == 0)
        rc = privacy_plain_section(conn, &doc, "consent_ledger", privacy_sql_ledger, params, err,
                                   errlen);
    if (rc == 0)
        rc = privacy_decrypted_section(conn, keys, &doc, "communications", privacy_sql_comms,
                                       "communications", comm_m, 1, params, err, errlen);
    if (rc == 0)
        rc = privacy_decrypted_section(conn, keys, &doc, "inbound_messages", privacy_sql_inbound,
                                       "inbound_messages", inbound_m, 2, params, err, errlen);
    if (rc == 0)
        rc =
            privacy_decrypted_section(conn, keys, &doc, "workflow_callbacks", privacy_sql_callbacks,
                                      "workflow_callbacks", callback_m, 1, params, err, errlen);
    if (rc == 0)
        rc = privacy_plain_section(conn, &doc, "audit_log", privacy_sql_audit, params, err, errlen);
    if (rc == 0 && buf_putc(&doc, '}') != 0)
        rc = privacy_fail(err, errlen, "export too large");
    if (rc != 0) {
        buf_free(&doc);
        return -1;
    }
    *json = buf_detach(&doc);
    return 0;
}

/* ---- erasure ------------------------------------------------------------- */

/* Every statement takes the client as $1 and runs after the lock. */

static const char privacy_sql_erase_lock[] =
    "SELECT erased_at IS NOT NULL FROM clients WHERE id = $1::uuid FOR UPDATE";

/* Provider detail of the client's events: a provider's message can quote
 * the number or address it refused. Before the cancellation, whose own
 * events say why they were made. */
static const char privacy_sql_erase_events[] =
    "UPDATE delivery_events SET provider_response = NULL, error_details = NULL"
    " WHERE communication_id IN (SELECT id FROM communications WHERE client_id = $1::uuid)"
    "  AND (provider_response IS NOT NULL OR error_details IS NOT NULL)";

/* Messages not yet sent are skipped with reason "erased", with the event a
 * skip has (as at intake). The channel stays: the analytics view counts a
 * row by its channel and creation day, and a cancelled message was counted
 * when it was queued. A worker holding one ('sending') finds its fence gone
 * and records nothing. Open digests of the client and their members
 * ('batched') are its own rows, cancelled alike. */
static const char privacy_sql_erase_cancel[] =
    "WITH x AS (UPDATE communications SET status = 'skipped', skip_reason = 'erased',"
    "  lease_until = NULL, updated_at = now()"
    "  WHERE client_id = $1::uuid AND status IN ('pending', 'queued', 'sending', 'batched')"
    "  RETURNING id, channel, attempts),"
    " e AS (INSERT INTO delivery_events (communication_id, event_type, delivery_status, channel,"
    "  attempt, error_details, provider_response)"
    "  SELECT x.id, 'skipped', 'skipped', x.channel, x.attempts, 'erased',"
    "  jsonb_build_object('reason', 'erased') FROM x)"
    " SELECT count(*) FROM x";

/* What the workflow said about the client (context), what crier rendered
 * for it (subject) and everything derived from those: the decision's trace
 * may quote the context, the stored 202 holds the decision, the key and
 * the body's hash could confirm a guess of the request; an operator's note
 * on a review may name what they learnt of the client. */
static const char privacy_sql_erase_comms[] =
    "UPDATE communications SET context = '{}'::jsonb, subject = NULL, subject_enc = NULL,"
    " metadata = NULL, response = NULL, decision = NULL, idempotency_key = NULL,"
    " request_hash = NULL, review_note = NULL, updated_at = now()"
    " WHERE client_id = $1::uuid";

static const char privacy_sql_erase_attachments[] =
    "DELETE FROM communication_attachments"
    " WHERE communication_id IN (SELECT id FROM communications WHERE client_id = $1::uuid)";

/* The links of tracked emails: a URL may carry what the workflow knew of
 * the client. Their tracking tokens answer 404 from now on. */
static const char privacy_sql_erase_links[] =
    "DELETE FROM communication_links"
    " WHERE communication_id IN (SELECT id FROM communications WHERE client_id = $1::uuid)";

/* Stripped to the event and its ids, as a delivered callback is; one not
 * yet delivered will not be (its body is gone): failed, saying why. A
 * sender holding one finds its fence gone. */
static const char privacy_sql_erase_callbacks[] =
    "WITH w AS (SELECT w.id, w.state IN ('pending', 'sending') AS open"
    "  FROM workflow_callbacks w WHERE" PRIVACY_CALLBACKS_OF_CLIENT " FOR UPDATE),"
    " u AS (UPDATE workflow_callbacks c SET payload = crier_callback_bare(c.payload),"
    "  payload_enc = NULL,"
    "  state = CASE WHEN w.open THEN 'failed' ELSE c.state END,"
    "  last_error = CASE WHEN w.open THEN 'client erased' ELSE c.last_error END,"
    "  lease_until = CASE WHEN w.open THEN NULL ELSE c.lease_until END"
    "  FROM w WHERE c.id = w.id RETURNING w.open)"
    " SELECT count(*), count(*) FILTER (WHERE open) FROM u";

/* Before the client's phone index is dropped: it finds the messages from
 * its number that no client was known for. The keyword stays (a STOP is a
 * fact about consent, not a text). */
static const char privacy_sql_erase_inbound[] =
    "UPDATE inbound_messages i SET sender_enc = NULL, sender_bidx = NULL, body_enc = NULL"
    " WHERE" PRIVACY_INBOUND_OF_CLIENT;

/* Deleted, not updated: the ledger's trigger sees no change of opt-out
 * (the revocation is ledgered from the consents below). The preference
 * cache entry is dropped by the caller, once this has committed. */
/* The suppression of the client's address stays: it says that the address
 * does not exist, holds neither the address nor the client, and without it
 * a client made again with that address would be mailed into the same
 * bounce. Only its link to the bounced message goes, which would name the
 * client through the message's client_id. */
static const char privacy_sql_erase_suppression[] =
    "UPDATE email_suppressions SET communication_id = NULL"
    " WHERE communication_id IN (SELECT id FROM communications WHERE client_id = $1::uuid)";

static const char privacy_sql_erase_preferences[] =
    "DELETE FROM client_preferences WHERE client_id = $1::uuid";

/* The row keeps its id and erased_at (the retention job removes it later);
 * the consents turned off are ledgered by the trigger with source
 * "erasure". */
static const char privacy_sql_erase_client[] =
    "UPDATE clients SET name_enc = NULL, email_enc = NULL, email_bidx = NULL, phone_enc = NULL,"
    " phone_bidx = NULL, key_id = NULL, whatsapp_window_until = NULL, timezone = DEFAULT,"
    " locale = DEFAULT, consent_email = false, consent_email_at = NULL, consent_sms = false,"
    " consent_sms_at = NULL, consent_whatsapp = false, consent_whatsapp_at = NULL,"
    " erased_at = now(), updated_at = now()"
    " WHERE id = $1::uuid RETURNING crier_iso(erased_at)";

/* Runs sql with the client as $1. *n1 (when given) gets the first column
 * of the one row a statement with a result returns, else the rows it
 * changed; *n2 (when given) the second column. */
static int privacy_run(PGconn *conn, const char *sql, const char *client_id, int *n1, int *n2,
                       char *err, size_t errlen)
{
    const char *params[] = {client_id};
    PGresult *r = db_query(conn, sql, 1, params, err, errlen);
    if (!r)
        return -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        if (n1)
            *n1 = atoi(PQgetvalue(r, 0, 0));
        if (n2 && PQnfields(r) > 1)
            *n2 = atoi(PQgetvalue(r, 0, 1));
    } else if (n1) {
        *n1 = atoi(PQcmdTuples(r));
    }
    PQclear(r);
    return 0;
}

/* The erasure's steps, in the open transaction. 0, 1, 2 or -1. */
static int privacy_erase_steps(PGconn *conn, const char *client_id, const char *actor,
                               store_erase_counts_t *c, char *err, size_t errlen)
{
    const char *params[] = {client_id};
    PGresult *r = db_query(conn, privacy_sql_erase_lock, 1, params, err, errlen);
    if (!r)
        return -1;
    int found = PQntuples(r) == 1, erased = found && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!found)
        return 1;
    if (erased)
        return 2;
    if (store_consent_context(conn, STORE_SOURCE_ERASURE, actor, err, errlen) != 0)
        return -1;
    /* in this order: see each statement */
    const struct {
        const char *sql;
        int *n1, *n2;
    } steps[] = {
        {privacy_sql_erase_events, &c->events, NULL},
        {privacy_sql_erase_cancel, &c->cancelled, NULL},
        {privacy_sql_erase_comms, &c->communications, NULL},
        {privacy_sql_erase_attachments, &c->attachments, NULL},
        {privacy_sql_erase_links, NULL, NULL},
        {privacy_sql_erase_callbacks, &c->callbacks, &c->callbacks_failed},
        {privacy_sql_erase_inbound, &c->inbound, NULL},
        {privacy_sql_erase_suppression, NULL, NULL},
        {privacy_sql_erase_preferences, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (privacy_run(conn, steps[i].sql, client_id, steps[i].n1, steps[i].n2, err, errlen) != 0)
            return -1;
    r = db_query(conn, privacy_sql_erase_client, 1, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return privacy_fail(err, errlen, "erasure: the client row went away under its lock");
    }
    snprintf(c->erased_at, sizeof c->erased_at, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int store_client_erase(PGconn *conn, const char *client_id, const char *actor,
                       store_erase_counts_t *counts, char *err, size_t errlen)
{
    memset(counts, 0, sizeof *counts);
    if (!val_uuid(client_id))
        return 1;
    int own_tx = PQtransactionStatus(conn) == PQTRANS_IDLE;
    if (own_tx && db_begin(conn, err, errlen) != 0)
        return -1;
    int rc = privacy_erase_steps(conn, client_id, actor, counts, err, errlen);
    if (own_tx) {
        /* nothing changed for 1 and 2: ending either way is the same */
        int end = db_end(conn, rc < 0 ? -1 : 0, err, errlen);
        if (rc == 0 && end != 0)
            rc = -1;
    }
    if (rc != 0)
        memset(counts, 0, sizeof *counts);
    return rc;
}
