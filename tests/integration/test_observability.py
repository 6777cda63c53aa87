"""What crier tells its operators about each message, and the dashboard
built on it.

* SMS through the provider stub, whose receipts say "sent" then
  "delivered": crm_delivery_time_seconds{channel="sms"} counts one
  observation per message, and its sum is the sum of delivered_at - sent_at
  of those rows (send to receipt, not claim to acceptance). Each message has
  exactly one INFO communication_sent line and one delivery_confirmed line
  in the seed's JSON log format (timestamp, level, component, event,
  plan_id, client_id, message_type, channel, communication_id), with the
  row's own ids and delivery time; and nothing the client is (phone, email,
  name) or was told appears in the log at all.
* The sandbox delivers as it sends: communication_sent and
  delivery_confirmed with delivery_time_s 0, observed as 0 s.
* config/grafana-dashboard.json: every panel has a query, and every metric
  name in every query is one a running crier's /metrics declares (# TYPE,
  with _bucket/_sum/_count for histograms); the name extraction itself is
  checked to catch a name crier does not export.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SEED_FIELDS = ("timestamp", "level", "component", "event", "plan_id", "client_id",
               "message_type", "channel", "communication_id")


def sample(text, name, **labels):
    """The value of one sample of the /metrics text, or None."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$", series)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted(p for p in (m.group(2) or "").split(",") if p))
        if got == want:
            return float(value)
    return None


def declared(text):
    """The metric names /metrics declares: every # TYPE family, with the
    series names a histogram or summary writes."""
    names = set()
    for m in re.finditer(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$", text, re.M):
        fam, kind = m.group(1), m.group(2)
        names.add(fam)
        if kind in ("histogram", "summary"):
            names.update({fam + "_sum", fam + "_count"})
        if kind == "histogram":
            names.add(fam + "_bucket")
    return names


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "offset", "and", "or", "unless", "inf", "nan"}


def query_metrics(expr):
    """The metric names a PromQL expression reads: identifiers left once
    strings, label matchers, ranges and grouping lists are removed, that
    are not functions (followed by "(") or keywords."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue  # a unit or exponent of a number (1e3)
        names.add(word)
    return names


def test_dashboard_uses_exported_metrics(tmp):
    # the extraction finds what it should and nothing else
    got = query_metrics('histogram_quantile(0.95, sum by (le, channel) '
                        '(rate(crm_delivery_time_seconds_bucket{channel=~"sms|x"}[5m]))) '
                        '/ on (channel) max(crier_nope_total) > 0.5')
    assert got == {"crm_delivery_time_seconds_bucket", "crier_nope_total"}, got
    with open(os.path.join(h.source_dir(), "config", "grafana-dashboard.json")) as f:
        dash = json.load(f)
    panels = dash["panels"]
    assert len(panels) >= 10, len(panels)
    db = h.new_database("dashboard")
    with h.Crier(db, tmp) as crier:
        # some traffic, so that every family with labels has written them
        st, _, js = crier.post_comm(h.comm_body(1))
        assert st == 202, (st, js)
        crier.wait_final([js["communication_id"]])
        st, _, text = crier.request("GET", "/metrics", token=None)
        assert st == 200, st
    exported = declared(text)
    assert "crm_delivery_time_seconds_bucket" in exported and "crm_open_rate" in exported, \
        sorted(exported)
    assert "crier_nope_total" not in exported
    used = set()
    for p in panels:
        assert p.get("targets"), "panel %r has no query" % p.get("title")
        for t in p["targets"]:
            names = query_metrics(t["expr"])
            assert names, (p["title"], t["expr"])
            missing = names - exported
            assert not missing, "panel %r reads %s, which crier does not export" % (
                p["title"], sorted(missing))
            used |= names
    assert {"crm_communications_total", "crm_open_rate", "crm_delivery_time_seconds_bucket",
            "crm_api_errors_total", "crier_queue_depth"} <= used, sorted(used)


def log_lines(crier, event):
    return h.log_events(crier.log(), event)


def check_seed_line(rec, row, event):
    for k in SEED_FIELDS:
        assert k in rec, (event, k, rec)
    assert rec["level"] == "INFO" and rec["event"] == event, rec
    assert rec["plan_id"] == row["plan_id"] and rec["client_id"] == row["client_id"], (rec, row)
    assert rec["message_type"] == row["message_type"] and rec["channel"] == row["channel"], \
        (rec, row)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", rec["timestamp"]), rec


def rows(db, ids):
    got = h.psql(db, "SELECT id, plan_id, client_id, message_type, channel, status,"
                     " EXTRACT(EPOCH FROM delivered_at - sent_at) FROM communications"
                     " WHERE id::text = ANY (string_to_array(:'ids', ','))", ids=",".join(ids))
    return {r[0]: {"plan_id": r[1], "client_id": r[2], "message_type": r[3], "channel": r[4],
                   "status": r[5], "took": float(r[6]) if r[6] else None} for r in got}


def test_sms_receipts(tmp):
    db = h.new_database("observe_sms")
    stub_args = ["--twilio-auth-token", h.STUB_AUTH_TOKEN, "--callback-delay", "0.3"]
    with h.ProviderStub(os.path.join(tmp, "stub"), stub_args) as stub, \
            h.Crier(db, os.path.join(tmp, "crier"),
                    env=h.live_env(stub, whatsapp=False, CRIER_RATE_TWILIO="off")) as crier:
        private, ids = [], []
        for i in range(3):
            phone = "+1555010%04d" % (7000 + i)
            body = h.comm_body(i, phone=phone, name="Observed Person %d" % i,
                               email="observed%d@example.org" % i,
                               consent={"sms": True, "whatsapp": False},
                               message_type="error_notification", urgency="critical")
            private += [phone, phone[1:], "Observed Person %d" % i, "observed%d@example.org" % i]
            st, _, js = crier.post_comm(body)
            assert st == 202 and js["decision"]["primary_channel"] == "sms", (st, js)
            ids.append(js["communication_id"])

        def delivered():
            r = rows(db, ids)
            return len(r) == 3 and all(x["status"] == "delivered" for x in r.values())
        h.wait_until(delivered, 30, 0.2, what="the receipts to say delivered")
        want = rows(db, ids)
        assert all(x["took"] is not None and x["took"] > 0 for x in want.values()), want
        h.wait_until(lambda: len(log_lines(crier, "delivery_confirmed")) >= 3, 10, 0.1,
                     what="three delivery_confirmed lines")
        st, _, text = crier.request("GET", "/metrics", token=None)
        n = sample(text, "crm_delivery_time_seconds_count", channel="sms")
        s = sample(text, "crm_delivery_time_seconds_sum", channel="sms")
        assert n == 3, (n, text[:2000])
        total = sum(x["took"] for x in want.values())
        assert abs(s - total) < 1e-3, (s, total)
        # the sandbox's 0 s never got here: this crier is live
        assert sample(text, "crm_delivery_time_seconds_bucket", channel="sms", le="+Inf") == 3

        sent = log_lines(crier, "communication_sent")
        conf = log_lines(crier, "delivery_confirmed")
        assert sorted(r["communication_id"] for r in sent) == sorted(ids), sent
        assert sorted(r["communication_id"] for r in conf) == sorted(ids), conf
        for rec in sent:
            check_seed_line(rec, want[rec["communication_id"]], "communication_sent")
            assert rec["component"] == "delivery" and rec["attempt"] == "1", rec
        for rec in conf:
            row = want[rec["communication_id"]]
            check_seed_line(rec, row, "delivery_confirmed")
            assert abs(float(rec["delivery_time_s"]) - row["took"]) < 0.001, (rec, row)
        log = crier.log()
        for p in private:
            assert p not in log, "the log shows %r" % p


def test_sandbox_delivers_as_it_sends(tmp):
    db = h.new_database("observe_sandbox")
    with h.Crier(db, tmp) as crier:
        ids = []
        for i in range(2):
            st, _, js = crier.post_comm(h.comm_body(i, email="sandboxed%d@example.org" % i))
            assert st == 202, (st, js)
            ids.append(js["communication_id"])
        crier.wait_final(ids)
        want = rows(db, ids)
        assert all(x["status"] == "delivered" and x["took"] == 0 for x in want.values()), want
        st, _, text = crier.request("GET", "/metrics", token=None)
        assert sample(text, "crm_delivery_time_seconds_count", channel="email") == 2, text[:1500]
        assert sample(text, "crm_delivery_time_seconds_sum", channel="email") == 0
        sent = log_lines(crier, "communication_sent")
        conf = log_lines(crier, "delivery_confirmed")
        assert sorted(r["communication_id"] for r in sent) == sorted(ids), sent
        assert sorted(r["communication_id"] for r in conf) == sorted(ids), conf
        for rec in sent + conf:
            check_seed_line(rec, want[rec["communication_id"]], rec["event"])
        assert all(r["delivery_time_s"] == "0" for r in conf), conf
        assert "sandboxed0@example.org" not in crier.log()


h.run([test_dashboard_uses_exported_metrics, test_sms_receipts, test_sandbox_delivers_as_it_sends])
