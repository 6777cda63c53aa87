#include "store/receipts.h"

#include "channel/ch.h"
#include "store/actions.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/errmsg.h"
#include "util/json_text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RCPT_PHONE_MAX 64    /* longer than any E.164 number with a prefix */
#define RCPT_TEXT_MAX  65536 /* an inbound body, encrypted, fits easily */
#define RCPT_KW_MAX    16    /* longest keyword we compare against */

rcpt_status_t rcpt_status_twilio(const char *s)
{
    if (!s)
        return RCPT_IGNORED;
    if (strcmp(s, "sent") == 0)
        return RCPT_SENT;
    /* partially_delivered: some segments reached the handset, which is as far
     * as an SMS can be known to go */
    if (strcmp(s, "delivered") == 0 || strcmp(s, "partially_delivered") == 0)
        return RCPT_DELIVERED;
    if (strcmp(s, "read") == 0)
        return RCPT_READ;
    if (strcmp(s, "failed") == 0 || strcmp(s, "undelivered") == 0 || strcmp(s, "canceled") == 0)
        return RCPT_FAILED;
    return RCPT_IGNORED;
}

rcpt_status_t rcpt_status_whatsapp(const char *s)
{
    if (!s)
        return RCPT_IGNORED;
    if (strcmp(s, "sent") == 0)
        return RCPT_SENT;
    if (strcmp(s, "delivered") == 0)
        return RCPT_DELIVERED;
    if (strcmp(s, "read") == 0 || strcmp(s, "played") == 0)
        return RCPT_READ;
    if (strcmp(s, "failed") == 0)
        return RCPT_FAILED;
    return RCPT_IGNORED;
}

const char *rcpt_status_column(rcpt_status_t s)
{
    switch (s) {
    case RCPT_SENT:
        return "sent";
    case RCPT_DELIVERED:
        return "delivered";
    case RCPT_READ:
        return "opened";
    case RCPT_FAILED:
        return "failed";
    case RCPT_IGNORED:
        break;
    }
    return NULL;
}

/* One statement, so that the lock, the move and the event are one atomic
 * step: the row is locked (c), moved only forward (u; under READ COMMITTED
 * the WHERE is re-checked on the newest version after a concurrent receipt),
 * and the receipt is recorded whether it moved the row or not (e), or kept in
 * unmatched_receipts when no row carries the id (x).
 *
 * A failure after "sent" is not the end: the row is queued again with
 * receipt_failure set, and the worker that claims it asks the fallback
 * rules what follows, as for a failure the provider answered at once
 * (SMS undelivered -> email). Its per-channel base moves by one so that
 * the claim, which counts an attempt, shows the rules the failed send's
 * number; the workers' poll (at most a second) finds it. The failed send's
 * provider id is let go: a redelivered or later receipt for it is kept
 * aside as unmatched instead of moving the new attempt. A failure before
 * "sent" (the send still in flight) ends it. */
static const char rcpt_apply_sql[] =
    "WITH c AS ("
    "  SELECT id, status, delivered_at AS was_delivered FROM communications"
    "  WHERE provider_message_id = $1::text"
    "  ORDER BY created_at DESC LIMIT 1 FOR UPDATE),"
    " u AS ("
    "  UPDATE communications m SET status = CASE WHEN $2::text = 'failed' AND m.status = 'sent'"
    "    THEN 'queued' ELSE $2::text END,"
    "   receipt_failure = ($2::text = 'failed' AND m.status = 'sent'),"
    "   next_attempt_at = CASE WHEN $2::text = 'failed' AND m.status = 'sent' THEN now()"
    "    ELSE m.next_attempt_at END,"
    "   provider_message_id = CASE WHEN $2::text = 'failed' AND m.status = 'sent' THEN NULL"
    "    ELSE m.provider_message_id END,"
    "   channel_attempt_base = m.channel_attempt_base"
    "    + CASE WHEN $2::text = 'failed' AND m.status = 'sent' THEN 1 ELSE 0 END,"
    "   sent_at = CASE WHEN $2::text <> 'failed' THEN COALESCE(m.sent_at, now()) ELSE m.sent_at "
    "END,"
    "   delivered_at = CASE WHEN $2::text IN ('delivered', 'opened')"
    "    THEN COALESCE(m.delivered_at, now()) ELSE m.delivered_at END,"
    "   opened_at = CASE WHEN $2::text = 'opened' THEN COALESCE(m.opened_at, now())"
    "    ELSE m.opened_at END,"
    "   failed_at = CASE WHEN $2::text = 'failed' AND m.status <> 'sent' THEN now()"
    "    ELSE m.failed_at END,"
    "   provider_code = CASE WHEN $2::text = 'failed' THEN $3::int ELSE m.provider_code END,"
    "   error_category = CASE WHEN $2::text = 'failed' THEN $4::text ELSE m.error_category END,"
    "   error_message = CASE WHEN $2::text = 'failed'"
    "    THEN 'provider receipt: ' || $6::text ELSE m.error_message END,"
    "   updated_at = now()"
    "  FROM c WHERE m.id = c.id AND $2::text IS NOT NULL AND ("
    "   ($2::text = 'failed' AND m.status IN ('pending', 'queued', 'sending', 'sent'))"
    "   OR ($2::text <> 'failed' AND crier_status_rank(m.status) < crier_status_rank($2::text)))"
    "  RETURNING m.id, CASE WHEN c.was_delivered IS NULL AND m.delivered_at IS NOT NULL"
    "   THEN EXTRACT(EPOCH FROM m.delivered_at - m.sent_at) END AS took,"
    "   m.plan_id, m.client_id, m.message_type, m.channel),"
    " e AS ("
    "  INSERT INTO delivery_events (communication_id, event_type, delivery_status, channel,"
    "   provider_response)"
    "  SELECT c.id, CASE WHEN u.id IS NOT NULL THEN 'receipt'"
    "    WHEN c.status = $2::text THEN 'receipt_duplicate' ELSE 'receipt_stale' END,"
    "   $2::text, $7::text,"
    "   jsonb_build_object('provider', $5::text, 'provider_status', $6::text,"
    "    'provider_message_id', $1::text, 'error_code', $3::int)"
    "  FROM c LEFT JOIN u ON u.id = c.id RETURNING event_type),"
    " x AS ("
    "  INSERT INTO unmatched_receipts (provider, provider_message_id, provider_status,"
    "   provider_code)"
    "  SELECT $5::text, $1::text, $6::text, $3::int WHERE NOT EXISTS (SELECT 1 FROM c)"
    "  RETURNING id)"
    " SELECT (SELECT event_type FROM e), (SELECT count(*) FROM x), u.took, u.id, u.plan_id,"
    "  u.client_id, u.message_type, u.channel"
    " FROM (SELECT 1) one LEFT JOIN u ON true";

int rcpt_apply(PGconn *conn, const rcpt_receipt_t *r, rcpt_outcome_t *outcome,
               rcpt_confirmed_t *confirmed, char *err, size_t errlen)
{
    memset(confirmed, 0, sizeof *confirmed);
    char code[16];
    snprintf(code, sizeof code, "%d", r->provider_code);
    const char *params[7] = {
        r->provider_message_id,
        rcpt_status_column(r->status),
        r->provider_code ? code : NULL,
        r->error_category,
        r->provider,
        r->provider_status ? r->provider_status : "",
        r->channel,
    };
    PGresult *res = db_query(conn, rcpt_apply_sql, 7, params, err, errlen);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        snprintf(err, errlen, "receipt: unexpected result");
        return -1;
    }
    if (!PQgetisnull(res, 0, 0)) {
        const char *ev = PQgetvalue(res, 0, 0);
        *outcome = strcmp(ev, "receipt") == 0             ? RCPT_APPLIED
                   : strcmp(ev, "receipt_duplicate") == 0 ? RCPT_DUPLICATE
                                                          : RCPT_STALE;
    } else {
        *outcome = RCPT_UNKNOWN;
    }
    if (!PQgetisnull(res, 0, 2)) {
        confirmed->yes = 1;
        confirmed->seconds = strtod(PQgetvalue(res, 0, 2), NULL);
        snprintf(confirmed->id, sizeof confirmed->id, "%s", PQgetvalue(res, 0, 3));
        snprintf(confirmed->plan_id, sizeof confirmed->plan_id, "%s", PQgetvalue(res, 0, 4));
        snprintf(confirmed->client_id, sizeof confirmed->client_id, "%s", PQgetvalue(res, 0, 5));
        snprintf(confirmed->message_type, sizeof confirmed->message_type, "%s",
                 PQgetvalue(res, 0, 6));
        snprintf(confirmed->channel, sizeof confirmed->channel, "%s", PQgetvalue(res, 0, 7));
    }
    PQclear(res);
    return 0;
}

rcpt_keyword_t rcpt_keyword(const char *body, const char *opt_out_type)
{
    if (opt_out_type && *opt_out_type) {
        if (strcasecmp(opt_out_type, "STOP") == 0)
            return RCPT_KW_STOP;
        if (strcasecmp(opt_out_type, "START") == 0)
            return RCPT_KW_START;
        if (strcasecmp(opt_out_type, "HELP") == 0)
            return RCPT_KW_HELP;
    }
    if (!body)
        return RCPT_KW_NONE;
    while (*body && isspace((unsigned char)*body))
        body++;
    size_t n = strlen(body);
    while (n > 0 && isspace((unsigned char)body[n - 1]))
        n--;
    if (n == 0 || n > RCPT_KW_MAX)
        return RCPT_KW_NONE;
    char word[RCPT_KW_MAX + 1];
    for (size_t i = 0; i < n; i++)
        word[i] = (char)toupper((unsigned char)body[i]);
    word[n] = '\0';
    /* only a single word counts: "stop by tomorrow" is a reply, not an opt-out */
    static const char *const stops[] = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL",
                                        "END",  "QUIT",    "REVOKE",      "OPTOUT"};
    static const char *const starts[] = {"START", "YES", "UNSTOP"};
    static const char *const helps[] = {"HELP", "INFO"};
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
        if (strcmp(word, stops[i]) == 0)
            return RCPT_KW_STOP;
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
        if (strcmp(word, starts[i]) == 0)
            return RCPT_KW_START;
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++)
        if (strcmp(word, helps[i]) == 0)
            return RCPT_KW_HELP;
    return RCPT_KW_NONE;
}

const char *rcpt_keyword_name(rcpt_keyword_t k)
{
    switch (k) {
    case RCPT_KW_STOP:
        return "STOP";
    case RCPT_KW_START:
        return "START";
    case RCPT_KW_HELP:
        return "HELP";
    case RCPT_KW_NONE:
        break;
    }
    return NULL;
}

int rcpt_phone_bidx(const cry_keys_t *keys, const char *from, char out[65])
{
    static const char wa[] = "whatsapp:";
    if (strncasecmp(from, wa, sizeof wa - 1) == 0)
        from += sizeof wa - 1;
    /* the same normal form as a client's phone at upsert: "+" and digits */
    char norm[RCPT_PHONE_MAX];
    size_t n = 0;
    norm[n++] = '+';
    int digits = 0;
    for (const char *p = from; *p; p++) {
        if (!isdigit((unsigned char)*p))
            continue;
        if (n + 1 >= sizeof norm)
            return -1;
        norm[n++] = *p;
        digits++;
    }
    norm[n] = '\0';
    if (!digits || !keys || !keys->loaded)
        return -1;
    return cry_blind_index(keys, "phone", norm, out);
}

/* The row's id, taken before the insert: the sender and the text are
 * encrypted bound to ("inbound_messages", column, id), and a bigserial id
 * exists only once the sequence gives it. The primary key is used rather
 * than the provider's message id (also unique, with the channel) so that
 * every crier token is bound to its row's primary key, one rule for every
 * table. A redelivery spends a sequence number and inserts nothing. */
static const char rcpt_inbound_id_sql[] =
    "SELECT nextval(pg_get_serial_sequence('inbound_messages', 'id'))::text";

/* Stores the message unless it is a redelivery. */
static const char rcpt_inbound_sql[] =
    "INSERT INTO inbound_messages (id, channel, provider_message_id, client_id,"
    " communication_id, sender_enc, sender_bidx, body_enc, key_id, keyword)"
    " SELECT $9::bigint, $1::text, $2::text,"
    "  (SELECT id FROM clients WHERE phone_bidx = $3::text AND erased_at IS NULL"
    "   ORDER BY updated_at DESC LIMIT 1),"
    "  (SELECT m.id FROM communications m WHERE m.message_type <> 'digest' AND ("
    "    ($4::text IS NOT NULL AND m.provider_message_id = $4::text)"
    "    OR (m.client_id = (SELECT id FROM clients WHERE phone_bidx = $3::text"
    "         AND erased_at IS NULL ORDER BY updated_at DESC LIMIT 1)"
    "        AND m.sent_at IS NOT NULL AND m.channel IN ('sms', 'whatsapp')))"
    "   ORDER BY m.provider_message_id IS NOT DISTINCT FROM $4::text DESC,"
    "    m.channel = $1::text DESC, m.sent_at DESC LIMIT 1),"
    "  $5::text, $3::text, $6::text, $7::text, $8::text"
    " ON CONFLICT (channel, provider_message_id) DO NOTHING"
    " RETURNING id, client_id, communication_id,"
    "  (SELECT count(*) FROM clients WHERE phone_bidx = $3::text AND erased_at IS NULL),"
    "  crier_iso(received_at),"
    "  (SELECT plan_id::text FROM communications c WHERE c.id = communication_id),"
    "  (SELECT message_type FROM communications c WHERE c.id = communication_id)";

/* The opt-out of the channel the keyword came in on, for every client with
 * that number (one number may be shared by several clients). Two fixed
 * statements: the column is never built from input. */
/* The consent ledger's triggers read the source from the transaction's
 * settings (sql/006_clients_privacy.sql): set in the statement itself, it
 * holds whether or not the caller has a transaction open. */
#define RCPT_SQL_SOURCE(src)                                                                       \
    "WITH src AS (SELECT set_config('crier.consent_source', '" src "', true))"
static const char rcpt_optout_sms_sql[] = RCPT_SQL_SOURCE(
    "keyword") " INSERT INTO client_preferences (client_id, opt_out_sms)"
               " SELECT id, $2::boolean FROM clients, src WHERE phone_bidx = $1::text AND "
               "erased_at IS NULL"
               " ON CONFLICT (client_id) DO UPDATE SET opt_out_sms = EXCLUDED.opt_out_sms,"
               "  updated_at = now() RETURNING client_id";
static const char rcpt_optout_wa_sql[] =
    RCPT_SQL_SOURCE("keyword") " INSERT INTO client_preferences (client_id, opt_out_whatsapp)"
                               " SELECT id, $2::boolean FROM clients, src WHERE phone_bidx = "
                               "$1::text AND erased_at IS NULL"
                               " ON CONFLICT (client_id) DO UPDATE SET opt_out_whatsapp = "
                               "EXCLUDED.opt_out_whatsapp,"
                               "  updated_at = now() RETURNING client_id";

/* The window runs 24 h from when the client wrote, as Meta counts it; a
 * provider timestamp in the future is not trusted past now, and a late
 * redelivery of an older message never shortens it. */
static const char rcpt_window_sql[] =
    "UPDATE clients SET whatsapp_window_until = GREATEST(whatsapp_window_until,"
    "  LEAST(COALESCE(to_timestamp($2::double precision), now()), now())"
    "  + interval '24 hours')"
    " WHERE phone_bidx = $1::text AND erased_at IS NULL";

/* The callback for a reply. The body the workflow receives (with the
 * client's words) is stored only encrypted, bound to ("workflow_callbacks",
 * "payload", id), until it is delivered; the payload column holds the same
 * object without the text, which is all that stays once it is delivered
 * (callbacks.c). The NOTIFY (delivered at commit) has the row sent at once
 * instead of at the next poll. */
static const char rcpt_callback_sql[] =
    "WITH w AS ("
    " INSERT INTO workflow_callbacks (id, communication_id, event_type, payload, payload_enc)"
    " SELECT $1::uuid, $2::uuid, 'client_reply', $3::jsonb, $4::text"
    " WHERE crier_callback_wanted('client_reply') RETURNING id)"
    " SELECT pg_notify('crier_callbacks', '') FROM w";

/* What a reply answers: the communication it is linked to, "" each when
 * none. */
typedef struct rcpt_link {
    char comm_id[37];
    char plan_id[37];
    char message_type[64];
} rcpt_link_t;

/* The number a reply is, when it is only that: "2", " 2 ", "2." -> 2;
 * anything else (words, "12 people", more than two digits) -> 0. */
static int rcpt_reply_number(const char *text)
{
    int n = 0, digits = 0;
    const char *p = text ? text : "";
    while (isspace((unsigned char)*p))
        p++;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (++digits > 2)
            return 0;
        n = n * 10 + (*p - '0');
    }
    if (*p == '.' || *p == ')')
        p++;
    while (isspace((unsigned char)*p))
        p++;
    return digits && !*p ? n : 0;
}

/* The latest message sent to the client on channel that offers actions and
 * has no answer yet: what a numbered reply answers. */
static const char rcpt_open_question_sql[] =
    "SELECT c.id FROM communications c"
    " WHERE c.client_id = $1::uuid AND c.channel = $2::text"
    "  AND c.status IN ('sent', 'delivered', 'opened', 'clicked')"
    "  AND EXISTS (SELECT 1 FROM communication_actions a WHERE a.communication_id = c.id)"
    "  AND NOT EXISTS (SELECT 1 FROM communication_answers w WHERE w.communication_id = c.id)"
    " ORDER BY c.sent_at DESC NULLS LAST, c.created_at DESC LIMIT 1";

/* *answered 1 when m answers a message's actions (recorded now, or the
 * same message was answered before: a second tap sends nothing). 0, or -1
 * with err. */
static int rcpt_answer(PGconn *conn, const rcpt_inbound_t *m, const char *client_id, int *answered,
                       char *err, size_t errlen)
{
    *answered = 0;
    char comm[37] = "";
    int index = -1;
    int number = m->answer_id[0] ? 0 : rcpt_reply_number(m->body);
    if (m->answer_id[0]) {
        snprintf(comm, sizeof comm, "%s", m->answer_id);
        index = m->answer_index;
    } else if (number > 0) {
        const char *p[2] = {client_id, m->channel};
        PGresult *r = db_query(conn, rcpt_open_question_sql, 2, p, err, errlen);
        if (!r)
            return -1;
        if (PQntuples(r) == 1)
            snprintf(comm, sizeof comm, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        index = number - 1;
    }
    if (!comm[0])
        return 0;
    store_answer_t a;
    if (store_action_answer(conn, comm, index, m->channel, &a, err, errlen) != 0)
        return -1;
    *answered = a.found; /* a number no action has stays a reply */
    return 0;
}

/* Writes ", \"key\": value" with value a JSON string, or null when "". */
static int rcpt_json_or_null(buf_t *js, const char *key, const char *value)
{
    int rc = buf_printf(js, ", \"%s\": ", key);
    return rc | (value[0] ? jtext_string(js, value) : buf_puts(js, "null"));
}

/* The callback body, as docs/callbacks.md documents it (client_reply):
 * type, status, inbound_message_id, client_id, channel,
 * provider_message_id, what it answers (communication_id, plan_id,
 * message_type), received_at and at, and, when with_text, the text. */
static int rcpt_callback_json(buf_t *js, const char *inbound_id, const char *client_id,
                              const char *channel, const char *provider_message_id,
                              const rcpt_link_t *link, const char *received_at, const char *text)
{
    int rc = 0;
    if (text) {
        rc |= buf_puts(js, "{\"text\": ");
        rc |= jtext_string(js, text);
        rc |= buf_puts(js, ", \"type\": \"client_reply\"");
    } else {
        rc |= buf_puts(js, "{\"type\": \"client_reply\"");
    }
    rc |= buf_puts(js, ", \"channel\": ");
    rc |= jtext_string(js, channel);
    rc |= buf_puts(js, ", \"client_id\": ");
    rc |= jtext_string(js, client_id);
    rc |= buf_puts(js, ", \"status\": \"replied\", \"received_at\": ");
    rc |= jtext_string(js, received_at);
    rc |= buf_puts(js, ", \"at\": ");
    rc |= jtext_string(js, received_at);
    rc |= rcpt_json_or_null(js, "communication_id", link->comm_id);
    rc |= rcpt_json_or_null(js, "plan_id", link->plan_id);
    rc |= rcpt_json_or_null(js, "message_type", link->message_type);
    rc |= buf_printf(js, ", \"inbound_message_id\": %s, \"provider_message_id\": ", inbound_id);
    rc |= jtext_string(js, provider_message_id);
    rc |= buf_putc(js, '}');
    return rc ? -1 : 0;
}

static int rcpt_exec(PGconn *conn, const char *sql, int n, const char *const *params, char *err,
                     size_t errlen)
{
    PGresult *res = db_query(conn, sql, n, params, err, errlen);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* Runs sql and keeps the first column of up to RCPT_CHANGED_MAX rows, the
 * clients whose preferences it changed, in ids (*n of them). */
static int rcpt_exec_ids(PGconn *conn, const char *sql, int np, const char *const *params,
                         char ids[][37], int *n, char *err, size_t errlen)
{
    PGresult *res = db_query(conn, sql, np, params, err, errlen);
    if (!res)
        return -1;
    *n = 0;
    for (int i = 0; i < PQntuples(res) && *n < RCPT_CHANGED_MAX; i++)
        snprintf(ids[(*n)++], 37, "%s", PQgetvalue(res, i, 0));
    PQclear(res);
    return 0;
}

/* Queues the client_reply callback of inbound message inbound_id. */
static int rcpt_callback(PGconn *conn, const cry_keys_t *keys, const rcpt_inbound_t *m,
                         const char *inbound_id, const char *client_id, const rcpt_link_t *link,
                         const char *received_at, char *err, size_t errlen)
{
    char cb_id[37];
    if (cry_uuid4(cb_id) != 0) {
        snprintf(err, errlen, "inbound: no randomness for an id");
        return -1;
    }
    const char *text = m->body ? m->body : "";
    /* every byte of the text may become a six-byte escape */
    size_t text_max = strlen(text) * 6 + 1024;
    buf_t full, bare, enc;
    buf_init(&full, text_max);
    buf_init(&bare, 1024);
    buf_init(&enc, text_max / 3 * 4 + 64);
    const cry_place_t at = {"workflow_callbacks", "payload", cb_id};
    int rc = -1;
    if (rcpt_callback_json(&full, inbound_id, client_id, m->channel, m->provider_message_id, link,
                           received_at, text) != 0 ||
        rcpt_callback_json(&bare, inbound_id, client_id, m->channel, m->provider_message_id, link,
                           received_at, NULL) != 0) {
        snprintf(err, errlen, "inbound: callback body too large");
        goto done;
    }
    if (cry_encrypt(keys, &at, full.data, full.len, &enc) != 0) {
        snprintf(err, errlen, "inbound: encryption failed");
        goto done;
    }
    const char *p[4] = {cb_id, link->comm_id[0] ? link->comm_id : NULL, bare.data, enc.data};
    rc = rcpt_exec(conn, rcpt_callback_sql, 4, p, err, errlen);
done:
    buf_free(&full);
    buf_free(&bare);
    buf_free(&enc);
    return rc;
}

int rcpt_inbound(PGconn *conn, const cry_keys_t *keys, const rcpt_inbound_t *m,
                 rcpt_inbound_result_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char bidx[65];
    if (rcpt_phone_bidx(keys, m->from ? m->from : "", bidx) != 0) {
        snprintf(err, errlen, "inbound: sender is not a phone number, or no index key");
        return -1;
    }
    buf_t sender, body;
    buf_init(&sender, (size_t)RCPT_PHONE_MAX * 4);
    buf_init(&body, RCPT_TEXT_MAX);
    int rc = -1;
    PGresult *res = db_query(conn, rcpt_inbound_id_sql, 0, NULL, err, errlen);
    if (!res)
        goto done;
    char inbound_id[24];
    snprintf(inbound_id, sizeof inbound_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;
    int has_body = m->body && *m->body;
    const cry_place_t sender_at = {"inbound_messages", "sender", inbound_id};
    const cry_place_t body_at = {"inbound_messages", "body", inbound_id};
    if (cry_encrypt(keys, &sender_at, m->from, strlen(m->from), &sender) != 0 ||
        (has_body && cry_encrypt(keys, &body_at, m->body, strlen(m->body), &body) != 0)) {
        snprintf(err, errlen, "inbound: encryption failed");
        goto done;
    }
    const char *ins[9] = {m->channel,   m->provider_message_id,
                          bidx,         m->reply_to && *m->reply_to ? m->reply_to : NULL,
                          sender.data,  has_body ? body.data : NULL,
                          keys->key_id, rcpt_keyword_name(m->keyword),
                          inbound_id};
    res = db_query(conn, rcpt_inbound_sql, 9, ins, err, errlen);
    if (!res)
        goto done;
    if (PQntuples(res) == 0) {
        out->duplicate = 1;
        rc = 0;
        goto done;
    }
    rcpt_link_t link = {"", "", ""};
    char received_at[32];
    if (!PQgetisnull(res, 0, 1))
        snprintf(out->client_id, sizeof out->client_id, "%s", PQgetvalue(res, 0, 1));
    if (!PQgetisnull(res, 0, 2)) {
        snprintf(link.comm_id, sizeof link.comm_id, "%s", PQgetvalue(res, 0, 2));
        snprintf(link.plan_id, sizeof link.plan_id, "%s", PQgetvalue(res, 0, 5));
        snprintf(link.message_type, sizeof link.message_type, "%s", PQgetvalue(res, 0, 6));
    }
    out->clients = atoi(PQgetvalue(res, 0, 3));
    snprintf(received_at, sizeof received_at, "%s", PQgetvalue(res, 0, 4));

    ch_id_t ch;
    int is_wa = ch_by_name(m->channel, &ch) == 0 && ch == CH_WHATSAPP;
    if (m->keyword == RCPT_KW_STOP || m->keyword == RCPT_KW_START) {
        const char *p[2] = {bidx, m->keyword == RCPT_KW_STOP ? "true" : "false"};
        if (rcpt_exec_ids(conn, is_wa ? rcpt_optout_wa_sql : rcpt_optout_sms_sql, 2, p,
                          out->changed, &out->n_changed, err, errlen) != 0)
            goto done;
    }
    if (is_wa) {
        char ts[24];
        snprintf(ts, sizeof ts, "%lld", m->sent_at);
        const char *p[2] = {bidx, m->sent_at > 0 ? ts : NULL};
        if (rcpt_exec(conn, rcpt_window_sql, 2, p, err, errlen) != 0)
            goto done;
    }
    /* keywords are handled here and now; an answer or a reply is the workflow's */
    if (m->keyword == RCPT_KW_NONE && out->client_id[0]) {
        if (rcpt_answer(conn, m, out->client_id, &out->answered, err, errlen) != 0)
            goto done;
    }
    if (out->answered) {
        out->callback = 1;
    } else if (m->keyword == RCPT_KW_NONE && out->client_id[0]) {
        if (rcpt_callback(conn, keys, m, inbound_id, out->client_id, &link, received_at, err,
                          errlen) != 0)
            goto done;
        out->callback = 1;
    }
    rc = 0;
done:
    PQclear(res);
    buf_free(&sender);
    buf_free(&body);
    return rc;
}

/* Every client with the job client's number: an opt-out and the window
 * belong to the number, as for an inbound keyword. Fixed statements, one
 * per column, so no column name is ever built from input. */
static const char rcpt_provider_optout_sms_sql[] = RCPT_SQL_SOURCE(
    "provider_code") " INSERT INTO client_preferences (client_id, opt_out_sms)"
                     " SELECT c.id, true FROM clients c, clients j, src"
                     " WHERE j.id = $1::uuid AND c.phone_bidx = j.phone_bidx AND c.erased_at IS "
                     "NULL"
                     " ON CONFLICT (client_id) DO UPDATE SET opt_out_sms = true, updated_at = now()"
                     " RETURNING client_id";
static const char rcpt_provider_optout_wa_sql[] =
    RCPT_SQL_SOURCE("provider_code") " INSERT INTO client_preferences (client_id, opt_out_whatsapp)"
                                     " SELECT c.id, true FROM clients c, clients j, src"
                                     " WHERE j.id = $1::uuid AND c.phone_bidx = j.phone_bidx AND "
                                     "c.erased_at IS NULL"
                                     " ON CONFLICT (client_id) DO UPDATE SET opt_out_whatsapp = "
                                     "true, updated_at = now()"
                                     " RETURNING client_id";
static const char rcpt_window_close_sql[] =
    "UPDATE clients c SET whatsapp_window_until = now() FROM clients j"
    " WHERE j.id = $1::uuid AND c.phone_bidx = j.phone_bidx AND c.erased_at IS NULL"
    "  AND c.whatsapp_window_until > now()";

int rcpt_provider_opt_out(PGconn *conn, const char *client_id, const char *channel,
                          char changed[RCPT_CHANGED_MAX][37], int *n_changed, char *err,
                          size_t errlen)
{
    *n_changed = 0;
    ch_id_t ch = CH_N;
    (void)ch_by_name(channel, &ch); /* an unknown name stays CH_N: no opt-out */
    const char *sql = ch == CH_SMS        ? rcpt_provider_optout_sms_sql
                      : ch == CH_WHATSAPP ? rcpt_provider_optout_wa_sql
                                          : NULL;
    if (!sql) {
        errmsg_set(err, errlen, "no opt-out for channel %s", channel);
        return -1;
    }
    const char *p[] = {client_id};
    return rcpt_exec_ids(conn, sql, 1, p, changed, n_changed, err, errlen);
}

int rcpt_window_close(PGconn *conn, const char *client_id, char *err, size_t errlen)
{
    const char *p[] = {client_id};
    return rcpt_exec(conn, rcpt_window_close_sql, 1, p, err, errlen);
}

int rcpt_window_open(PGconn *conn, const char *client_id, int *open, char *err, size_t errlen)
{
    *open = 0;
    const char *p[] = {client_id};
    PGresult *r = db_query(conn,
                           "SELECT COALESCE(whatsapp_window_until > now(), false)"
                           " FROM clients WHERE id = $1::uuid",
                           1, p, err, errlen);
    if (!r)
        return -1;
    *open = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return 0;
}

static int rcpt_item_apply(PGconn *conn, const cry_keys_t *keys, rcpt_item_t *it, char *err,
                           size_t errlen)
{
    if (it->kind == RCPT_ITEM_RECEIPT)
        return rcpt_apply(conn, &it->receipt, &it->outcome, &it->confirmed, err, errlen);
    return rcpt_inbound(conn, keys, &it->inbound, &it->result, err, errlen);
}

rcpt_write_t rcpt_write(db_pool_t *pool, const cry_keys_t *keys, rcpt_item_t *items, int n,
                        char *err, size_t errlen)
{
    PGconn *conn = db_pool_get(pool, err, errlen);
    if (!conn || db_ensure(conn) != 0) {
        if (conn)
            db_pool_put(pool, conn);
        return RCPT_WRITE_UNAVAILABLE;
    }
    int rc = db_begin(conn, err, errlen);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = rcpt_item_apply(conn, keys, &items[i], err, errlen);
    rcpt_write_t res = RCPT_WRITTEN;
    /* the pool rolls back again (or resets the connection) if the rollback
     * fails too */
    if (db_end(conn, rc, err, errlen) != 0)
        res = db_conn_lost(conn) ? RCPT_WRITE_LOST : RCPT_WRITE_FAILED;
    db_pool_put(pool, conn);
    return res;
}
