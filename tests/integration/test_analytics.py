"""GET /v1/analytics/summary and /v1/analytics/breakdown against figures
computed here, independently, from the rows themselves.

* A database gets a known mix: a few messages through the API (sandbox:
  delivered at once) and rows written with SQL over three days and several
  hours (sent, delivered, opened, clicked, failed, bounced, queued, skipped,
  a fallback, replies and action answers, a digest that must not count).
* Every count, rate, mean time and cost of the summary (whole range, a
  range cutting hours at both ends, within one hour, a plan, a client) and
  of the breakdown by channel, message_type, day and hour equals what plain
  SQL over communications, communication_answers and inbound_messages says;
  rates over nothing are null. The same answers again once the engine has
  folded its deltas into the hourly sums.
* CSV (Accept: text/csv, format=csv) parses, has a header row, and equals
  the JSON field by field.
* Rows written before the migration that adds the sums are counted by it.
* A workflow token is 403, no token 401, bad from/to/by/plan_id/format a
  422 JSON error.
"""
import csv
import io
import os
import shutil
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

BASE = "2026-03-10T00:00:00Z"  # the seeded rows are from here to 3 days later
COSTS = {"CRIER_COST_EMAIL": "0.0012", "CRIER_COST_SMS_SEGMENT": "0.0079",
         "CRIER_COST_WHATSAPP": "0.05", "CRIER_COST_CURRENCY": "EUR"}
PRICE_MICROS = {"email": 1200, "sms": 7900, "whatsapp": 50000}
FIGURES = ["total", "sent", "delivered", "opened", "clicked", "responded", "failed",
           "fallback_used", "delivery_rate", "open_rate", "click_through_rate", "response_rate",
           "failure_rate", "fallback_rate", "avg_delivery_time_seconds",
           "avg_response_time_seconds", "cost_total", "cost_per_communication"]

PLAN_A = str(uuid.uuid4())
CLIENTS = [str(uuid.uuid4()) for _ in range(3)]


def seed(db):
    """Writes the SQL half of the mix: row i of each kind at its own minute."""
    values = []
    kinds = [
        # channel, status, sent, delivered(+s), opened(+s), clicked(+s), fallback, type
        ("email", "clicked", True, 4, 300, 400, False, "budget_summary"),
        ("email", "opened", True, 7, 900, None, False, "budget_summary"),
        ("email", "sent", True, None, None, None, False, "welcome"),
        ("email", "delivered", True, 2, None, None, True, "vendor_options"),
        ("sms", "delivered", True, 11, None, None, False, "payment_reminder"),
        ("sms", "failed", True, None, None, None, False, "payment_reminder"),
        ("whatsapp", "opened", True, 3, 60, None, True, "timeline_update"),
        ("email", "bounced", False, None, None, None, False, "welcome"),
        ("sms", "failed", False, None, None, None, True, "error_notification"),
        ("email", "queued", False, None, None, None, False, "welcome"),
        (None, "skipped", False, None, None, None, False, "vendor_options"),
    ]
    n = 0
    for day in range(3):
        for hour in (1, 7, 13, 23):
            for k, (ch, st, sent, dlv, opn, clk, fb, mt) in enumerate(kinds):
                if (day + hour + k) % 4 == 3:
                    continue  # not every kind in every hour, so the groups differ
                n += 1
                cid = "00000000-0000-4000-9000-%012d" % n
                created = "'%s'::timestamptz + interval '%d hours %d minutes'" % (
                    BASE, day * 24 + hour, 3 + 5 * k)
                def at(off):
                    return "NULL" if off is None else "%s + interval '%d seconds'" % (created,
                                                                                   60 + off)
                values.append(
                    "('%s'::uuid, '%s'::uuid, '%s'::uuid, '%s', %s, '%s', %s, %s, %s, %s, %s,"
                    " %s, %d)" % (
                        cid, PLAN_A if n % 3 == 0 else str(uuid.uuid4()), CLIENTS[n % 3], mt,
                        "NULL" if ch is None else "'%s'" % ch, st, created,
                        at(0) if sent else "NULL", at(dlv), at(opn), at(clk),
                        "%s + interval '30 minutes'" % created if st in ("failed", "bounced")
                        else "NULL", 2 if fb else 0))
    h.psql(db, "INSERT INTO clients (id) VALUES %s;" % ",".join("('%s')" % c for c in CLIENTS)
           + "INSERT INTO communications (id, plan_id, client_id, message_type, channel, status,"
           " created_at, sent_at, delivered_at, opened_at, clicked_at, failed_at,"
           " channel_attempt_base) VALUES %s;" % ",".join(values)
           # the queued ones are due in 2099: no worker takes them while we count
           + "UPDATE communications SET next_attempt_at = '2099-01-01T00:00:00Z';"
           # a digest: its members count, the digest itself does not
           + "INSERT INTO communications (id, plan_id, client_id, message_type, channel, status,"
           " created_at, sent_at) VALUES (gen_random_uuid(), gen_random_uuid(), '%s', 'digest',"
           " 'email', 'sent', '%s'::timestamptz + interval '2 hours', '%s'::timestamptz"
           " + interval '2 hours 1 minute');" % (CLIENTS[0], BASE, BASE)
           # replies (a STOP is no response) and action answers
           + "INSERT INTO inbound_messages (channel, provider_message_id, client_id,"
           "  communication_id, keyword, received_at)"
           " SELECT c.channel, 'in-' || c.id, c.client_id, c.id,"
           "  CASE WHEN c.status = 'failed' THEN 'STOP' END, c.created_at + interval '2 hours'"
           " FROM communications c WHERE c.channel IN ('sms', 'whatsapp')"
           "  AND c.message_type <> 'digest';"
           "INSERT INTO communication_answers (communication_id, action_index, channel,"
           "  answered_at)"
           " SELECT id, 0, channel, created_at + interval '45 minutes' FROM communications"
           " WHERE status IN ('clicked', 'delivered') AND channel = 'email';")
    return n


def expected(db, frm, to, plan=None, client=None, by=None):
    """The figures straight from the rows, grouped like the API's answer:
    {key: {figure: value}} (key "" for the summary)."""
    key = {None: "''", "channel": "COALESCE(c.channel, 'none')",
           "message_type": "c.message_type",
           "day": "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
           "hour": "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')"}[by]
    where = ("c.message_type <> 'digest' AND c.created_at >= :'f'::timestamptz"
             " AND c.created_at < :'t'::timestamptz"
             " AND (:'p' = '' OR c.plan_id::text = :'p') AND (:'cl' = '' OR c.client_id::text = :'cl')")
    rows = h.psql(db, """
        WITH r AS (SELECT communication_id, answered_at AS at FROM communication_answers
                   UNION ALL SELECT communication_id, received_at FROM inbound_messages
                   WHERE keyword IS NULL),
        resp AS (SELECT %(key)s AS k, count(*) AS n, count(c.sent_at) AS nt,
                        sum(EXTRACT(EPOCH FROM r.at - c.sent_at)) AS s
                 FROM r JOIN communications c ON c.id = r.communication_id WHERE %(where)s
                 GROUP BY 1)
        SELECT m.k, total, sent, delivered, opened, clicked, COALESCE(resp.n, 0), failed, fb,
               COALESCE(resp.nt, 0), COALESCE(resp.s, 0), dn, ds, se, ss, sw
        FROM (SELECT %(key)s AS k, count(*) AS total, count(sent_at) AS sent,
                     count(*) FILTER (WHERE delivered_at IS NOT NULL OR opened_at IS NOT NULL
                                      OR clicked_at IS NOT NULL) AS delivered,
                     count(*) FILTER (WHERE opened_at IS NOT NULL OR clicked_at IS NOT NULL)
                       AS opened,
                     count(clicked_at) AS clicked,
                     count(*) FILTER (WHERE status IN ('failed', 'bounced')) AS failed,
                     count(*) FILTER (WHERE channel_attempt_base > 0) AS fb,
                     count(*) FILTER (WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL)
                       AS dn,
                     COALESCE(sum(EXTRACT(EPOCH FROM delivered_at - sent_at)), 0) AS ds,
                     count(sent_at) FILTER (WHERE channel = 'email') AS se,
                     count(sent_at) FILTER (WHERE channel = 'sms') AS ss,
                     count(sent_at) FILTER (WHERE channel = 'whatsapp') AS sw
              FROM communications c WHERE %(where)s GROUP BY 1) m
        LEFT JOIN resp ON resp.k = m.k ORDER BY 1
    """ % {"key": key, "where": where}, f=frm, t=to, p=plan or "", cl=client or "")
    out = {}
    for r in rows:
        k = r[0]
        (total, sent, dlv, opn, clk, resp, failed, fb, resp_n) = [int(x) for x in r[1:10]]
        resp_s = float(r[10])
        dn, ds = int(r[11]), float(r[12])
        se, ss, sw = [int(x) for x in r[13:16]]

        def rate(a, b):
            return None if b == 0 else a / b
        micros = se * PRICE_MICROS["email"] + ss * PRICE_MICROS["sms"] + sw * PRICE_MICROS["whatsapp"]
        out[k] = {
            "total": total, "sent": sent, "delivered": dlv, "opened": opn, "clicked": clk,
            "responded": resp, "failed": failed, "fallback_used": fb,
            "delivery_rate": rate(dlv, sent), "open_rate": rate(opn, dlv),
            "click_through_rate": rate(clk, opn), "response_rate": rate(resp, sent),
            "failure_rate": rate(failed, total), "fallback_rate": rate(fb, total),
            "avg_delivery_time_seconds": rate(ds, dn),
            "avg_response_time_seconds": rate(resp_s, resp_n),
            "cost_total": micros / 1e6,
            "cost_per_communication": None if sent == 0 else round(micros / sent) / 1e6,
        }
    if by is None and not out:
        out[""] = {f: 0 for f in FIGURES[:8]}
        out[""].update({f: None for f in FIGURES[8:]})
        out[""]["cost_total"] = 0
    return out


def same(got, want, what):
    for f in FIGURES:
        g, w = got[f], want[f]
        if w is None or isinstance(w, int):
            assert g == w, (what, f, g, w)
        else:
            assert g is not None and abs(g - w) <= 1e-9 * max(1.0, abs(w)), (what, f, g, w)


def check(crier, db, frm, to, plan=None, client=None):
    q = "from=%s&to=%s" % (frm, to)
    if plan:
        q += "&plan_id=" + plan
    if client:
        q += "&client_id=" + client
    status, hdrs, js = crier.request("GET", "/v1/analytics/summary?" + q, token=h.TOKEN_OPERATOR)
    assert status == 200, (status, js)
    assert js["from"] == frm and js["to"] == to and js["currency"] == "EUR", js
    assert js["plan_id"] == plan and js["client_id"] == client, js
    want = expected(db, frm, to, plan, client)[""]
    same(js, want, ("summary", q))
    csv_same(crier, "/v1/analytics/summary?" + q, [js], None)
    for by in ("channel", "message_type", "day", "hour"):
        status, _, b = crier.request("GET", "/v1/analytics/breakdown?by=%s&%s" % (by, q),
                                     token=h.TOKEN_OPERATOR)
        assert status == 200, (status, b)
        assert b["by"] == by, b
        want = expected(db, frm, to, plan, client, by)
        assert [r[by] for r in b["rows"]] == sorted(want), (by, b["rows"], sorted(want))
        for r in b["rows"]:
            same(r, want[r[by]], ("breakdown", by, r[by], q))
        csv_same(crier, "/v1/analytics/breakdown?by=%s&%s" % (by, q), b["rows"], by)
    return js


def csv_same(crier, path, json_rows, by):
    """The CSV of path, both ways of asking for it, equals json_rows."""
    for how in ("accept", "format"):
        if how == "accept":
            status, hdrs, text = crier.request("GET", path, token=h.TOKEN_OPERATOR,
                                               headers={"Accept": "text/csv"})
        else:
            status, hdrs, text = crier.request("GET", path + "&format=csv",
                                               token=h.TOKEN_OPERATOR)
        assert status == 200, (status, text)
        assert hdrs["content-type"].startswith("text/csv"), hdrs
        assert text.endswith("\r\n"), repr(text[-10:])
        rows = list(csv.reader(io.StringIO(text, newline="")))
        head = ([by] if by else []) + FIGURES + ["currency"]
        assert rows[0] == head, rows[0]
        assert len(rows) == len(json_rows) + 1, (len(rows), len(json_rows))
        for r, j in zip(rows[1:], json_rows):
            rec = dict(zip(head, r))
            assert rec["currency"] == "EUR", rec
            if by:
                assert rec[by] == j[by], (rec, j)
            for f in FIGURES:
                if j[f] is None:
                    assert rec[f] == "", (f, rec[f])
                else:
                    assert float(rec[f]) == float(j[f]), (f, rec[f], j[f])


def test_figures_match_the_rows(tmp):
    db = h.new_database("analytics")
    n = seed(db)
    with h.Crier(db, tmp, env=COSTS) as crier:
        # a few through the API too: the sandbox delivers them at once
        ids = []
        for i in range(4):
            body = h.comm_body(i, message_type="welcome", client_id=CLIENTS[0])
            status, _, js = crier.post_comm(body)
            assert status == 202, (status, js)
            ids.append(js["communication_id"])
        crier.wait_final(ids)
        everything = ("2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z")
        s = check(crier, db, *everything)
        assert s["total"] == n + 4, (s["total"], n)  # the digest is not counted
        assert s["responded"] > 0 and s["fallback_used"] > 0 and s["failed"] > 0, s
        # hours cut at both ends, and one hour's middle
        check(crier, db, "2026-03-10T07:10:00Z", "2026-03-11T13:20:00Z")
        check(crier, db, "2026-03-11T13:04:00Z", "2026-03-11T13:40:00Z")
        check(crier, db, "2026-03-10", "2026-03-12")
        check(crier, db, *everything, plan=PLAN_A)
        check(crier, db, "2026-03-10T07:10:00Z", "2026-03-12T02:00:00Z", client=CLIENTS[1])
        # nothing in range: counts 0, rates null
        z = check(crier, db, "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
        assert z["total"] == 0 and z["delivery_rate"] is None and z["cost_total"] == 0, z
        # once folded into the hourly sums the answers are the same, with
        # two processes folding (one at a time: nothing counted twice)
        with h.Crier(db, os.path.join(tmp, "second"), env=COSTS) as second:
            h.wait_until(lambda: h.psql(db, "SELECT count(*) FROM analytics_deltas")[0][0] == "0",
                         30, 0.5, what="the deltas to be folded")
            assert int(h.psql(db, "SELECT count(*) FROM analytics_hourly")[0][0]) > 10
            assert check(second, db, *everything) == s
        assert check(crier, db, *everything) == s
        check(crier, db, "2026-03-10T07:10:00Z", "2026-03-11T13:20:00Z")
        check(crier, db, "2026-03-11T13:04:00Z", "2026-03-11T13:40:00Z")
        # a status change after the fold is seen at once
        h.psql(db, "UPDATE communications SET status = 'delivered', delivered_at = sent_at"
                   " + interval '5 seconds' WHERE id = '00000000-0000-4000-9000-000000000003'"
                   " AND delivered_at IS NULL")
        check(crier, db, *everything)


def test_scopes_and_bad_queries(tmp):
    db = h.new_database("analytics_bad")
    with h.Crier(db, tmp) as crier:
        ok = "/v1/analytics/summary?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z"
        assert crier.request("GET", ok, token=h.TOKEN_OPERATOR)[0] == 200
        assert crier.request("GET", ok, token=h.TOKEN_ADMIN)[0] == 200
        for path in (ok, "/v1/analytics/breakdown?by=day&from=2026-03-01&to=2026-03-02"):
            status, _, js = crier.request("GET", path, token=h.TOKEN_WORKFLOW)
            assert status == 403 and js["error"]["code"], (status, js)
            status, _, js = crier.request("GET", path, token=None)
            assert status == 401 and js["error"]["code"], (status, js)
        bad = [
            "/v1/analytics/summary",
            "/v1/analytics/summary?from=2026-03-01T00:00:00Z",
            "/v1/analytics/summary?from=yesterday&to=2026-03-02T00:00:00Z",
            "/v1/analytics/summary?from=2026-02-30T00:00:00Z&to=2026-03-02T00:00:00Z",
            "/v1/analytics/summary?from=2026-03-01T00:00:00+01:00&to=2026-03-02T00:00:00Z",
            "/v1/analytics/summary?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z",
            "/v1/analytics/summary?from=2024-01-01&to=2026-01-01",
            "/v1/analytics/summary?from=2026-03-01&to=2026-03-02&plan_id=nope",
            "/v1/analytics/summary?from=2026-03-01&to=2026-03-02&client_id=1234",
            "/v1/analytics/summary?from=2026-03-01&to=2026-03-02&format=xml",
            "/v1/analytics/breakdown?from=2026-03-01&to=2026-03-02",
            "/v1/analytics/breakdown?by=week&from=2026-03-01&to=2026-03-02",
            "/v1/analytics/breakdown?by=day&from=2026-03-01&to=03/02/2026",
        ]
        before = h.psql(db, "SELECT (SELECT count(*) FROM analytics_deltas),"
                            " (SELECT count(*) FROM communications)")
        for path in bad:
            status, hdrs, js = crier.request("GET", path, token=h.TOKEN_OPERATOR)
            assert status == 422, (path, status, js)
            assert hdrs["content-type"].startswith("application/json"), (path, hdrs)
            assert js["error"]["code"] == "invalid_field" and js["error"]["message"], (path, js)
        assert h.psql(db, "SELECT (SELECT count(*) FROM analytics_deltas),"
                          " (SELECT count(*) FROM communications)") == before


def test_rows_before_the_migration(tmp):
    """A database with communications, replies and answers from before
    015_analytics: the migration counts them, exactly as the triggers would."""
    db = h.new_database("analytics_old", migrated=False)
    old = os.path.join(tmp, "sql")
    os.makedirs(old)
    src = os.path.join(h.source_dir(), "sql")
    for name in sorted(os.listdir(src)):
        if name.endswith(".sql") and name < "015":
            shutil.copy(os.path.join(src, name), old)
    subprocess.run([h.crier_bin(), "migrate"], check=True, capture_output=True, timeout=120,
                   env=h.base_env({"CRIER_DATABASE_URL": db, "CRIER_SQL_DIR": old}))
    assert h.psql(db, "SELECT to_regclass('analytics_hourly') IS NULL")[0][0] == "t"
    n = seed(db)
    h.migrate(db)
    assert int(h.psql(db, "SELECT sum(total) FROM analytics_deltas")[0][0]) == n
    with h.Crier(db, os.path.join(tmp, "crier"), env=COSTS) as crier:
        s = check(crier, db, "2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z")
        assert s["total"] == n and s["responded"] > 0, s
        check(crier, db, "2026-03-10T07:10:00Z", "2026-03-11T13:20:00Z")


h.run([test_figures_match_the_rows, test_rows_before_the_migration, test_scopes_and_bad_queries])
