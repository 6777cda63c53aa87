/* tracking: the rows of email tracking (see tracking.h). */
#include "store/tracking.h"

#include "store/db.h"
#include "store/private.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The links as one JSON array parameter: at most LINKS_MAX_DEFAULT URLs of
 * at most 8 KiB each (template/links.h), escaped at worst six bytes a byte. */
#define TRACKING_LINKS_JSON_MAX ((size_t)256 * 8192 * 6 + 4096)

/* The links replace those of an earlier rendering: indexes past the new
 * count go, the others take the new URL. Only while the row is being sent
 * (the worker's, under its lease), and with its lock held: an erasure that
 * cancelled the message meanwhile leaves nothing stored, and one that
 * comes after waits for this statement and then deletes what it stored. */
static const char tracking_sql_links_put[] =
    "WITH c AS (SELECT id FROM communications WHERE id = $1::uuid AND status = 'sending'"
    "  FOR UPDATE),"
    " d AS (DELETE FROM communication_links l USING c"
    "  WHERE l.communication_id = c.id AND l.link_index >= $3::int),"
    " m AS (UPDATE communications t SET tracked = true FROM c WHERE t.id = c.id AND NOT t.tracked)"
    " INSERT INTO communication_links (communication_id, link_index, url)"
    " SELECT c.id, (u.ord - 1)::int, u.url"
    " FROM c CROSS JOIN jsonb_array_elements_text($2::jsonb) WITH ORDINALITY AS u(url, ord)"
    " ON CONFLICT (communication_id, link_index) DO UPDATE SET url = EXCLUDED.url";

int store_links_put(PGconn *conn, const char *id, char *const *url, int n, char *err, size_t errlen)
{
    if (!val_uuid(id) || n < 0)
        return store_fail(err, errlen, "links: bad arguments", NULL);
    buf_t b;
    buf_init(&b, TRACKING_LINKS_JSON_MAX);
    int rc = buf_putc(&b, '[');
    for (int i = 0; i < n && rc == 0; i++) {
        if (i)
            rc |= buf_putc(&b, ',');
        rc |= jtext_string(&b, url[i]);
    }
    rc |= buf_putc(&b, ']');
    if (rc != 0) {
        buf_free(&b);
        return store_fail(err, errlen, "links: too many or too long", NULL);
    }
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    const char *params[] = {id, b.data, count};
    PGresult *r = db_query(conn, tracking_sql_links_put, 3, params, err, errlen);
    buf_free(&b);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* One statement, so that the lock, the move and the event are one step.
 * $1 communication, $2 link index (-1: an open), $3 the agent's class, $4
 * the machine window in seconds, $5 the status the hit means ('opened' or
 * 'clicked').
 * t: the communication, locked, with the link a click names (a click on a
 *    link that does not exist finds nothing), while its client is not
 *    erased; whether the hit is too early for a person (before the send was
 *    recorded, or within the window after it).
 * u: the move, only for a person's hit (or an image proxy's), only from
 *    sent, delivered or opened, only when it changes something.
 * e: the event, for every hit, with the status the row has after it. */
static const char tracking_sql_hit[] =
    "WITH t AS ("
    "  SELECT c.id, c.status, c.message_type, c.channel, c.attempts,"
    "   c.opened_at IS NULL AS no_open, c.clicked_at IS NULL AS no_click, l.url,"
    "   CASE WHEN $3::text = 'scanner' THEN 'user_agent'"
    "    WHEN COALESCE(c.sent_at, c.delivered_at) IS NULL"
    "     OR now() < COALESCE(c.sent_at, c.delivered_at) + make_interval(secs => $4::int)"
    "    THEN 'early' END AS machine"
    "  FROM communications c JOIN clients k ON k.id = c.client_id AND k.erased_at IS NULL"
    "  LEFT JOIN communication_links l ON l.communication_id = c.id AND l.link_index = $2::int"
    "  WHERE c.id = $1::uuid AND ($2::int < 0 OR l.url IS NOT NULL)"
    "  FOR UPDATE OF c),"
    " u AS ("
    "  UPDATE communications m SET"
    "   status = CASE WHEN crier_status_rank(m.status) < crier_status_rank($5::text)"
    "    THEN $5::text ELSE m.status END,"
    "   delivered_at = COALESCE(m.delivered_at, now()),"
    "   opened_at = COALESCE(m.opened_at, now()),"
    "   clicked_at = CASE WHEN $5::text = 'clicked' THEN COALESCE(m.clicked_at, now())"
    "    ELSE m.clicked_at END,"
    "   updated_at = now()"
    "  FROM t WHERE m.id = t.id AND t.machine IS NULL"
    "   AND crier_status_rank(m.status) BETWEEN 1 AND 4"
    "   AND (m.opened_at IS NULL OR ($5::text = 'clicked' AND m.clicked_at IS NULL)"
    "    OR crier_status_rank(m.status) < crier_status_rank($5::text))"
    "  RETURNING m.status),"
    " e AS ("
    "  INSERT INTO delivery_events (communication_id, event_type, delivery_status, channel,"
    "   attempt, provider_response)"
    "  SELECT t.id, $5::text, COALESCE((SELECT status FROM u), t.status), t.channel, t.attempts,"
    "   jsonb_strip_nulls(jsonb_build_object('source', 'tracking',"
    "    'agent', CASE WHEN t.machine IS NULL THEN $3::text ELSE 'scanner' END,"
    "    'machine', t.machine, 'link_index', CASE WHEN $2::int >= 0 THEN $2::int END))"
    "  FROM t RETURNING 1)"
    " SELECT t.url, CASE WHEN t.machine IS NULL THEN $3::text ELSE 'scanner' END,"
    "  EXISTS (SELECT 1 FROM u) AND t.no_open,"
    "  EXISTS (SELECT 1 FROM u) AND t.no_click AND $5::text = 'clicked',"
    "  t.message_type, COALESCE(t.channel, '')"
    " FROM t";

int store_track_hit(PGconn *conn, const store_track_hit_t *h, store_track_result_t *res, char *err,
                    size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (!val_uuid(h->communication_id) || !h->agent)
        return 0; /* nothing can match */
    char index[16], window[16];
    snprintf(index, sizeof index, "%d", h->link_index < 0 ? -1 : h->link_index);
    snprintf(window, sizeof window, "%d", h->machine_window_s < 0 ? 0 : h->machine_window_s);
    const char *params[] = {h->communication_id, index, h->agent, window,
                            h->link_index < 0 ? "opened" : "clicked"};
    PGresult *r = db_query(conn, tracking_sql_hit, 5, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    res->found = 1;
    if (!PQgetisnull(r, 0, 0) && !(res->url = strdup(PQgetvalue(r, 0, 0)))) {
        PQclear(r);
        memset(res, 0, sizeof *res);
        return store_fail(err, errlen, "tracking: out of memory", NULL);
    }
    snprintf(res->agent, sizeof res->agent, "%s", PQgetvalue(r, 0, 1));
    res->opened_now = store_bool_row(r, 0, 2);
    res->clicked_now = store_bool_row(r, 0, 3);
    snprintf(res->message_type, sizeof res->message_type, "%s", PQgetvalue(r, 0, 4));
    snprintf(res->channel, sizeof res->channel, "%s", PQgetvalue(r, 0, 5));
    PQclear(r);
    return 0;
}

static const char tracking_sql_peek[] =
    "SELECT l.url FROM communications c"
    " JOIN clients k ON k.id = c.client_id AND k.erased_at IS NULL"
    " LEFT JOIN communication_links l ON l.communication_id = c.id AND l.link_index = $2::int"
    " WHERE c.id = $1::uuid AND ($2::int < 0 OR l.url IS NOT NULL)";

int store_track_peek(PGconn *conn, const char *id, int link_index, char **url, char *err,
                     size_t errlen)
{
    *url = NULL;
    if (!val_uuid(id))
        return 0;
    char index[16];
    snprintf(index, sizeof index, "%d", link_index < 0 ? -1 : link_index);
    const char *params[] = {id, index};
    PGresult *r = db_query(conn, tracking_sql_peek, 2, params, err, errlen);
    if (!r)
        return -1;
    int found = PQntuples(r) == 1;
    if (found && !PQgetisnull(r, 0, 0) && !(*url = strdup(PQgetvalue(r, 0, 0)))) {
        PQclear(r);
        return store_fail(err, errlen, "tracking: out of memory", NULL);
    }
    PQclear(r);
    return found;
}

/* Reads the partial index on sent_at of tracked emails, so the cost follows
 * the window's mail, not the whole history. A bounced message was sent but
 * never arrived: it is no part of the rate. */
static const char tracking_sql_open_rates[] =
    "SELECT message_type, count(*), count(*) FILTER (WHERE opened_at IS NOT NULL)"
    " FROM communications"
    " WHERE tracked AND sent_at IS NOT NULL AND sent_at >= now() - make_interval(days => $1::int)"
    "  AND status IN ('sent', 'delivered', 'opened', 'clicked')"
    " GROUP BY message_type ORDER BY message_type";

int store_open_rates(PGconn *conn, int days, store_open_rate_t *rows, int max, int *n, char *err,
                     size_t errlen)
{
    *n = 0;
    if (days < 1 || days > 3650 || max < 0)
        return store_fail(err, errlen, "open rates: bad arguments", NULL);
    char d[16];
    snprintf(d, sizeof d, "%d", days);
    const char *params[] = {d};
    PGresult *r = db_query(conn, tracking_sql_open_rates, 1, params, err, errlen);
    if (!r)
        return -1;
    int rows_n = PQntuples(r);
    for (int i = 0; i < rows_n && *n < max; i++) {
        store_open_rate_t *o = &rows[(*n)++];
        snprintf(o->message_type, sizeof o->message_type, "%s", PQgetvalue(r, i, 0));
        o->sent = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        o->opened = strtoll(PQgetvalue(r, i, 2), NULL, 10);
    }
    PQclear(r);
    return 0;
}
