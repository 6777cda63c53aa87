/* actions: the rows of one-click answers (see actions.h). */
#include "store/actions.h"

#include "store/db.h"
#include "store/private.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>

/* The actions as one JSON array parameter: each field escaped at worst six
 * bytes a byte, with room for the keys. */
#define ACTIONS_JSON_MAX                                                                           \
    ((size_t)STORE_ACTIONS_MAX *                                                                   \
     ((STORE_ACTION_NAME_MAX + STORE_ACTION_VALUE_MAX + STORE_ACTION_LABEL_MAX) * 6 + 64))

/* As the links of a rendering (store/tracking.c): indexes past the new
 * count go, the others take the new action; only while the row is being
 * sent, under its lock, so an erasure that cancelled it meanwhile leaves
 * nothing stored. */
static const char actions_sql_put[] =
    "WITH c AS (SELECT id FROM communications WHERE id = $1::uuid AND status = 'sending'"
    "  FOR UPDATE),"
    " d AS (DELETE FROM communication_actions x USING c"
    "  WHERE x.communication_id = c.id AND x.action_index >= $3::int)"
    " INSERT INTO communication_actions (communication_id, action_index, action, value, label)"
    " SELECT c.id, (e.ord - 1)::int, e.v->>'action', e.v->>'value', e.v->>'label'"
    " FROM c CROSS JOIN jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(v, ord)"
    " ON CONFLICT (communication_id, action_index) DO UPDATE SET action = EXCLUDED.action,"
    "  value = EXCLUDED.value, label = EXCLUDED.label";

static int actions_field(buf_t *b, const char *key, const char *value, size_t max)
{
    if (!value || strlen(value) >= max)
        return -1;
    return buf_printf(b, "\"%s\":", key) | jtext_string(b, value);
}

int store_actions_put(PGconn *conn, const char *id, const store_action_t *a, int n, char *err,
                      size_t errlen)
{
    if (!val_uuid(id) || n < 0 || n > STORE_ACTIONS_MAX)
        return store_fail(err, errlen, "actions: bad arguments", NULL);
    buf_t b;
    buf_init(&b, ACTIONS_JSON_MAX);
    int rc = buf_putc(&b, '[');
    for (int i = 0; i < n && rc == 0; i++) {
        rc |= buf_puts(&b, i ? ",{" : "{");
        rc |= actions_field(&b, "action", a[i].action, STORE_ACTION_NAME_MAX);
        rc |= buf_putc(&b, ',');
        rc |= actions_field(&b, "value", a[i].value, STORE_ACTION_VALUE_MAX);
        rc |= buf_putc(&b, ',');
        rc |= actions_field(&b, "label", a[i].label, STORE_ACTION_LABEL_MAX);
        rc |= buf_putc(&b, '}');
    }
    rc |= buf_putc(&b, ']');
    if (rc != 0) {
        buf_free(&b);
        return store_fail(err, errlen, "actions: a field is missing or too long", NULL);
    }
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    const char *params[] = {id, b.data, count};
    PGresult *r = db_query(conn, actions_sql_put, 3, params, err, errlen);
    buf_free(&b);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* One statement, so that the answer, its callback and the notification
 * are one step: a click whose answer is stored has its callback queued,
 * and a click that finds an answer stored queues none.
 * $1 communication, $2 action index, $3 channel.
 * c: the message, while its client is not erased; a: the action clicked.
 * ins: the answer, unless the message has one (the primary key).
 * cb, n: the callback (as 012's status callbacks write theirs) and its
 *    NOTIFY, only for an answer just stored; n is read below, so it runs.
 * s: what the page shows: the answer stored before this statement, else
 *    the one it stored. Empty when neither: no such action, or an answer
 *    committed by another click after this statement's snapshot (the
 *    caller reads it again). */
static const char actions_sql_answer[] =
    "WITH c AS ("
    "  SELECT m.id, m.plan_id, m.client_id, m.message_type FROM communications m"
    "  JOIN clients k ON k.id = m.client_id AND k.erased_at IS NULL"
    "  WHERE m.id = $1::uuid),"
    " a AS (SELECT x.action_index, x.action, x.value, x.label FROM communication_actions x"
    "  JOIN c ON x.communication_id = c.id WHERE x.action_index = $2::int),"
    " ins AS ("
    "  INSERT INTO communication_answers (communication_id, action_index, channel)"
    "  SELECT c.id, a.action_index, $3::text FROM c CROSS JOIN a"
    "  ON CONFLICT (communication_id) DO NOTHING RETURNING answered_at),"
    " cb AS ("
    "  INSERT INTO workflow_callbacks (id, communication_id, event_type, payload)"
    "  SELECT gen_random_uuid(), c.id, 'client_action', jsonb_build_object("
    "   'type', 'client_action', 'plan_id', c.plan_id, 'client_id', c.client_id,"
    "   'communication_id', c.id, 'message_type', c.message_type, 'channel', $3::text,"
    "   'status', 'acted', 'at', crier_iso(ins.answered_at), 'action', a.action,"
    "   'value', a.value)"
    "  FROM c CROSS JOIN a CROSS JOIN ins"
    "  WHERE crier_callback_wanted('client_action') RETURNING id),"
    " n AS (SELECT pg_notify('crier_callbacks', '') FROM cb)"
    " SELECT EXISTS (SELECT 1 FROM ins), s.action, s.value, s.label, (SELECT count(*) FROM n)"
    " FROM c LEFT JOIN LATERAL ("
    "  SELECT 0 AS o, x.action, x.value, x.label FROM communication_answers w"
    "   JOIN communication_actions x ON x.communication_id = w.communication_id"
    "    AND x.action_index = w.action_index"
    "   WHERE w.communication_id = c.id"
    "  UNION ALL SELECT 1, a.action, a.value, a.label FROM a WHERE EXISTS (SELECT 1 FROM ins)"
    "  ORDER BY 1 LIMIT 1) s ON true";

/* The stored answer (answered true) if there is one, else the action
 * index names (answered false); no row for a message not there, an erased
 * client, or neither. */
static const char actions_sql_peek[] =
    "SELECT s.answered, s.action, s.value, s.label FROM communications m"
    " JOIN clients k ON k.id = m.client_id AND k.erased_at IS NULL"
    " CROSS JOIN LATERAL ("
    "  SELECT true AS answered, x.action, x.value, x.label FROM communication_answers w"
    "   JOIN communication_actions x ON x.communication_id = w.communication_id"
    "    AND x.action_index = w.action_index"
    "   WHERE w.communication_id = m.id"
    "  UNION ALL SELECT false, x.action, x.value, x.label FROM communication_actions x"
    "   WHERE x.communication_id = m.id AND x.action_index = $2::int"
    "  ORDER BY 1 DESC LIMIT 1) s"
    " WHERE m.id = $1::uuid";

/* Copies the action, value and label at columns col.. of row 0 into r. */
static void actions_fill(PGresult *res, int col, store_answer_t *r)
{
    r->found = 1;
    snprintf(r->action, sizeof r->action, "%s", PQgetvalue(res, 0, col));
    snprintf(r->value, sizeof r->value, "%s", PQgetvalue(res, 0, col + 1));
    snprintf(r->label, sizeof r->label, "%s", PQgetvalue(res, 0, col + 2));
}

/* The peek; answered_only: an action not yet answered counts as none. */
static int actions_peek(PGconn *conn, const char *id, int index, int answered_only,
                        store_answer_t *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (!val_uuid(id) || index < 0)
        return 0; /* nothing can match */
    char idx[16];
    snprintf(idx, sizeof idx, "%d", index);
    const char *params[] = {id, idx};
    PGresult *res = db_query(conn, actions_sql_peek, 2, params, err, errlen);
    if (!res)
        return -1;
    if (PQntuples(res) == 1 && (!answered_only || store_bool_row(res, 0, 0)))
        actions_fill(res, 1, r);
    PQclear(res);
    return 0;
}

int store_action_peek(PGconn *conn, const char *id, int index, store_answer_t *r, char *err,
                      size_t errlen)
{
    return actions_peek(conn, id, index, 0, r, err, errlen);
}

int store_action_answer(PGconn *conn, const char *id, int index, const char *channel,
                        store_answer_t *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (!val_uuid(id) || index < 0 || !channel)
        return 0;
    char idx[16];
    snprintf(idx, sizeof idx, "%d", index);
    const char *params[] = {id, idx, channel};
    PGresult *res = db_query(conn, actions_sql_answer, 3, params, err, errlen);
    if (!res)
        return -1;
    int rows = PQntuples(res);
    int shown = rows == 1 && !PQgetisnull(res, 0, 1);
    if (shown) {
        actions_fill(res, 1, r);
        r->recorded = store_bool_row(res, 0, 0);
    }
    PQclear(res);
    if (rows != 1 || shown)
        return 0;
    /* Another click's answer committed after this statement began: it is
     * the first, and this statement's snapshot could not see it. */
    return actions_peek(conn, id, index, 1, r, err, errlen);
}
