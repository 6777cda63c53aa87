/* analytics: see analytics.h. The statement is put together from fixed
 * pieces chosen by the query's shape (grouping, filter); every value is a
 * parameter. */
#include "store/analytics.h"

#include "store/db.h"
#include "store/private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns every part below yields, in the order of analytics_hourly. */
#define AN_COLS                                                                                    \
    "hour, channel, message_type, total, sent, delivered, opened, clicked, failed, fallback,"      \
    " delivery_n, delivery_s, responses, response_n, response_s"

/* The first whole hour at or after $1, and the start of the hour $2 falls in:
 * the hours between are read from the sums, the rest from the rows. */
#define AN_HF                                                                                      \
    "(date_trunc('hour', $1::timestamptz - interval '1 microsecond', 'UTC') + interval '1 hour')"
#define AN_HT "date_trunc('hour', $2::timestamptz, 'UTC')"

/* The rows that are not in whole hours of the range: two short index ranges. */
#define AN_EDGES                                                                                   \
    "((c.created_at >= $1::timestamptz AND c.created_at < least($2::timestamptz, " AN_HF "))"      \
    " OR (c.created_at >= greatest($1::timestamptz, " AN_HT ", " AN_HF ")"                         \
    " AND c.created_at < $2::timestamptz))"
/* A plan's or a client's rows: the sums know neither, so all of them. */
#define AN_FILTERED                                                                                \
    "(c.created_at >= $1::timestamptz AND c.created_at < $2::timestamptz"                          \
    " AND ($3::uuid IS NULL OR c.plan_id = $3::uuid)"                                              \
    " AND ($4::uuid IS NULL OR c.client_id = $4::uuid))"

/* The sums and the deltas of the whole hours. */
static const char an_sql_sums[] = "SELECT " AN_COLS " FROM analytics_hourly"
                                  " WHERE hour >= " AN_HF " AND hour < " AN_HT " UNION ALL"
                                  " SELECT " AN_COLS " FROM analytics_deltas"
                                  " WHERE hour >= " AN_HF " AND hour < " AN_HT " UNION ALL ";

/* What the rows of cond add, as the triggers count them (%s: cond, twice).
 * OFFSET 0 keeps the row's function from being called once per column; the
 * responses are looked up per row (primary key, inbound_messages_comm_idx),
 * so their cost follows the rows read, not the size of those tables. */
static const char an_sql_rows[] =
    "SELECT (x).* FROM (SELECT crier_analytics_row(c, 1) AS x FROM communications c"
    "  WHERE c.message_type <> 'digest' AND %s OFFSET 0) s"
    " UNION ALL"
    " SELECT date_trunc('hour', c.created_at, 'UTC'), COALESCE(c.channel, 'none'), c.message_type,"
    "  0, 0, 0, 0, 0, 0, 0, 0, 0::float8, 1, (c.sent_at IS NOT NULL)::int,"
    "  COALESCE(EXTRACT(EPOCH FROM r.at - c.sent_at)::float8, 0)"
    " FROM communications c CROSS JOIN LATERAL ("
    "  SELECT answered_at AS at FROM communication_answers a WHERE a.communication_id = c.id"
    "  UNION ALL SELECT received_at FROM inbound_messages i"
    "   WHERE i.communication_id = c.id AND i.keyword IS NULL) r"
    " WHERE c.message_type <> 'digest' AND %s";

static const char an_sql_outer[] =
    "SELECT %s AS k, sum(total), sum(sent), sum(delivered), sum(opened), sum(clicked),"
    " sum(failed), sum(fallback), sum(delivery_n), sum(responses), sum(response_n),"
    " sum(delivery_s), sum(response_s),"
    " COALESCE(sum(sent) FILTER (WHERE channel = 'email'), 0),"
    " COALESCE(sum(sent) FILTER (WHERE channel = 'sms'), 0),"
    " COALESCE(sum(sent) FILTER (WHERE channel = 'whatsapp'), 0)"
    " FROM (%s%s) x GROUP BY 1 ORDER BY 1 LIMIT %d";

static const char *an_key(store_analytics_by_t by)
{
    switch (by) {
    case STORE_ANALYTICS_CHANNEL:
        return "channel";
    case STORE_ANALYTICS_MESSAGE_TYPE:
        return "message_type";
    case STORE_ANALYTICS_DAY:
        return "to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
    case STORE_ANALYTICS_HOUR:
        return "to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')";
    case STORE_ANALYTICS_NONE:
        break;
    }
    return "''";
}

static long long an_ll(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static double an_f(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

int store_analytics(PGconn *conn, const store_analytics_query_t *q, store_analytics_row_t **rows,
                    int *n, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    int filtered = q->plan_id || q->client_id;
    const char *cond = filtered ? AN_FILTERED : AN_EDGES;
    /* the pieces are fixed and their sizes known: 8 KiB is ample */
    char rows_sql[4096], sql[8192];
    int len = snprintf(rows_sql, sizeof rows_sql, an_sql_rows, cond, cond);
    if (len < 0 || (size_t)len >= sizeof rows_sql)
        return store_fail(err, errlen, "analytics: statement too long", NULL);
    len = snprintf(sql, sizeof sql, an_sql_outer, an_key(q->by), filtered ? "" : an_sql_sums,
                   rows_sql, STORE_ANALYTICS_MAX_ROWS);
    if (len < 0 || (size_t)len >= sizeof sql)
        return store_fail(err, errlen, "analytics: statement too long", NULL);
    /* the filters' parameters only where the statement names them */
    const char *params[] = {q->from, q->to, q->plan_id, q->client_id};
    PGresult *r = db_query(conn, sql, filtered ? 4 : 2, params, err, errlen);
    if (!r)
        return -1;
    int got = PQntuples(r);
    int want = got == 0 && q->by == STORE_ANALYTICS_NONE ? 1 : got;
    store_analytics_row_t *out = calloc(want ? (size_t)want : 1, sizeof *out);
    if (!out) {
        PQclear(r);
        return store_fail(err, errlen, "analytics: out of memory", NULL);
    }
    for (int i = 0; i < got; i++) {
        store_analytics_row_t *o = &out[i];
        snprintf(o->key, sizeof o->key, "%s", PQgetvalue(r, i, 0));
        o->total = an_ll(r, i, 1);
        o->sent = an_ll(r, i, 2);
        o->delivered = an_ll(r, i, 3);
        o->opened = an_ll(r, i, 4);
        o->clicked = an_ll(r, i, 5);
        o->failed = an_ll(r, i, 6);
        o->fallback = an_ll(r, i, 7);
        o->delivery_n = an_ll(r, i, 8);
        o->responses = an_ll(r, i, 9);
        o->response_n = an_ll(r, i, 10);
        o->delivery_s = an_f(r, i, 11);
        o->response_s = an_f(r, i, 12);
        o->sent_email = an_ll(r, i, 13);
        o->sent_sms = an_ll(r, i, 14);
        o->sent_wa = an_ll(r, i, 15);
    }
    PQclear(r);
    *rows = out;
    *n = want;
    return 0;
}

/* One statement, so one transaction: the deltas taken are the ones added,
 * or neither happened. The lock makes a second process's fold take
 * nothing rather than wait on the first's rows. */
static const char an_sql_fold[] =
    "WITH l AS (SELECT pg_try_advisory_xact_lock(hashtext('crier_analytics_fold')) AS got),"
    " d AS (DELETE FROM analytics_deltas WHERE (SELECT got FROM l) RETURNING *),"
    " s AS (INSERT INTO analytics_hourly"
    "  SELECT hour, channel, message_type, sum(total), sum(sent), sum(delivered), sum(opened),"
    "   sum(clicked), sum(failed), sum(fallback), sum(delivery_n), sum(delivery_s),"
    "   sum(responses), sum(response_n), sum(response_s)"
    "  FROM d GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    "  ON CONFLICT (hour, channel, message_type) DO UPDATE SET"
    "   total = analytics_hourly.total + EXCLUDED.total,"
    "   sent = analytics_hourly.sent + EXCLUDED.sent,"
    "   delivered = analytics_hourly.delivered + EXCLUDED.delivered,"
    "   opened = analytics_hourly.opened + EXCLUDED.opened,"
    "   clicked = analytics_hourly.clicked + EXCLUDED.clicked,"
    "   failed = analytics_hourly.failed + EXCLUDED.failed,"
    "   fallback = analytics_hourly.fallback + EXCLUDED.fallback,"
    "   delivery_n = analytics_hourly.delivery_n + EXCLUDED.delivery_n,"
    "   delivery_s = analytics_hourly.delivery_s + EXCLUDED.delivery_s,"
    "   responses = analytics_hourly.responses + EXCLUDED.responses,"
    "   response_n = analytics_hourly.response_n + EXCLUDED.response_n,"
    "   response_s = analytics_hourly.response_s + EXCLUDED.response_s)"
    " SELECT count(*) FROM d";

int store_analytics_fold(PGconn *conn, long long *folded, char *err, size_t errlen)
{
    *folded = 0;
    PGresult *r = db_query(conn, an_sql_fold, 0, NULL, err, errlen);
    if (!r)
        return -1;
    *folded = an_ll(r, 0, 0);
    PQclear(r);
    return 0;
}
