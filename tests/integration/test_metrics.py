"""GET /metrics: strict Prometheus text, and counters that move by exactly
what was done.

crier runs with the live transport against the SMTP sink, with retry delays
cut to 1 second. Four messages go out:
  * two welcome messages to ordinary recipients: sent on the first attempt;
  * a budget_summary to fail550@: a permanent 550 5.1.1, bounced after 1
    attempt (the address is suppressed);
  * a vendor_options to fail451@: transient every time, three retries, then
    failed on the fourth attempt.
The text is parsed line by line (every line a comment or a sample, names and
labels valid, each family typed once, histogram buckets cumulative with +Inf
equal to _count), and the alert rules in config/alerts.yml may only use
metrics the text exports.
"""
import math
import os
import re
import shutil
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)
    return cond


NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s=%s)(?:,%s=%s)*)?\})? (\S+)$"
                    % (NAME, LABEL, LABEL_VALUE, LABEL, LABEL_VALUE))
PAIR = re.compile(r"(%s)=(%s)" % (LABEL, LABEL_VALUE))
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v[1:-1])


def parse_value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", text):
        raise ValueError("not a sample value: %r" % text)
    return float(text)


def family_of(name, types):
    """The family a sample name belongs to (histograms and summaries write
    name_bucket, name_sum and name_count)."""
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[:-len(suffix)] in types:
            return name[:-len(suffix)]
    return None


def parse(text):
    """Parses the exposition strictly; returns ({(name, frozenset(labels)):
    value}, {family: type}). Every violation is a failed check."""
    samples = {}
    types = {}
    helps = set()
    check(text.endswith("\n"), "the text ends with a newline")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r" % (n, line)
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.+)$" % NAME, line)
            if not check(m, "%s: a comment is # HELP or # TYPE" % where):
                continue
            kind, name, rest = m.groups()
            if kind == "TYPE":
                check(rest in TYPES, "%s: known type" % where)
                check(name not in types, "%s: typed once" % where)
                check(not any(family_of(s[0], {name: 1}) for s in samples),
                      "%s: TYPE comes before the family's samples" % where)
                types[name] = rest
            else:
                check(name not in helps, "%s: one HELP per family" % where)
                helps.add(name)
            continue
        m = SAMPLE.match(line)
        if not check(m, "%s: a sample is name{labels} value" % where):
            continue
        name, labels, value = m.groups()
        pairs = PAIR.findall(labels or "")
        keys = [k for k, _ in pairs]
        check(len(keys) == len(set(keys)), "%s: no label twice" % where)
        try:
            v = parse_value(value)
        except ValueError as e:
            check(False, "%s: %s" % (where, e))
            continue
        fam = family_of(name, types)
        if check(fam, "%s: sample of a typed family" % where):
            t = types[fam]
            if t == "counter":
                check(name.endswith("_total") and v >= 0, "%s: counters end in _total, >= 0" % where)
            if t == "histogram":
                check(name != fam, "%s: a histogram writes _bucket, _sum, _count" % where)
                check(("le" in keys) == name.endswith("_bucket"), "%s: le on buckets only" % where)
            if t == "summary":
                check(name != fam, "%s: this summary writes _sum and _count" % where)
        key = (name, frozenset((k, unescape(v2)) for k, v2 in pairs))
        check(key not in samples, "%s: each series once" % where)
        samples[key] = v
    check(helps == set(types), "every family has HELP and TYPE (%r)" % (helps ^ set(types)))
    check_histograms(samples, types)
    return samples, types


def check_histograms(samples, types):
    for fam, t in types.items():
        if t != "histogram":
            continue
        groups = {}
        for (name, labels), v in samples.items():
            if name == fam + "_bucket":
                rest = frozenset(p for p in labels if p[0] != "le")
                le = dict(labels)["le"]
                groups.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), v))
        for rest, buckets in groups.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            check(counts == sorted(counts), "%s%s: buckets are cumulative %r" % (fam, dict(rest), counts))
            check(buckets[-1][0] == math.inf, "%s%s: a +Inf bucket" % (fam, dict(rest)))
            count = samples.get((fam + "_count", rest))
            check(count is not None and buckets[-1][1] == count,
                  "%s%s: +Inf %r equals _count %r" % (fam, dict(rest), buckets[-1][1], count))
            check((fam + "_sum", rest) in samples, "%s%s: has _sum" % (fam, dict(rest)))


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(crier, token=None):
    st, hdrs, body = crier.request("GET", "/metrics", token=token)
    check(st == 200, "GET /metrics answered %s" % st)
    ctype = hdrs.get("content-type", "")
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          "Content-Type is the text format 0.0.4 (%r)" % ctype)
    return parse(body if isinstance(body, str) else "") + (body,)


def alert_metrics(path):
    """The metric names the alert expressions use."""
    with open(path, "r", encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    names = set()
    rules = [r for g in doc["groups"] for r in g["rules"]]
    for r in rules:
        check(r.get("alert") and r.get("expr") and r.get("labels", {}).get("severity"),
              "alert rule has alert, expr and severity: %r" % r)
        names.update(re.findall(r"\b((?:crm|crier)_[a-z0-9_]+)\b", r["expr"]))
    return rules, names


def main():
    tmp = tempfile.mkdtemp(prefix="crier-metrics-")
    db = harness.new_database("metrics")
    sink = crier = None
    try:
        sink = harness.SmtpSink(os.path.join(tmp, "sink"))
        crier = harness.Crier(db, os.path.join(tmp, "crier"), env={
            "CRIER_TRANSPORT": "live",
            "CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port,
            "CRIER_SMTP_TLS": "off",
            "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>",
            "CRIER_RULES_DIR": harness.rules_dir(retry_delays=[1, 1, 1]),
        })
        before, _types, _ = scrape(crier)

        # Open to scrapers, and HEAD works like GET.
        st, _h, _b = crier.request("HEAD", "/metrics", token=None)
        check(st == 200, "HEAD /metrics answered %s" % st)
        st, _h, _b = crier.request("GET", "/v1/rules", token=None)
        check(st == 401, "GET /v1/rules without a token answered %s" % st)

        # HIGH, not CRITICAL: a critical message gets one quick retry, not the ladder
        zone = harness.daytime_zone()
        sends = [
            ("ok1", harness.comm_body(1, email="ok1@example.com", urgency="high",
                                      timezone=zone)),
            ("ok2", harness.comm_body(2, email="ok2@example.com", urgency="high",
                                      timezone=zone)),
            ("fail550", harness.comm_body(3, email="fail550@example.com", urgency="high",
                                          timezone=zone,
                                          message_type="budget_summary")),
            ("fail451", harness.comm_body(4, email="fail451@example.com", urgency="high",
                                          timezone=zone,
                                          message_type="vendor_options")),
        ]
        ids = {}
        for name, body in sends:
            st, _h, js = crier.post_comm(body)
            if check(st == 202 and isinstance(js, dict), "%s accepted (%s %r)" % (name, st, js)):
                ids[name] = js["communication_id"]
                check(js["decision"].get("primary_channel") == "email"
                      and js["decision"].get("fallback_channels") == [],
                      "%s goes by email alone (%r)" % (name, js["decision"]))
        final = crier.wait_final(list(ids.values()), timeout=90)
        got = {n: final[i].get("status") for n, i in ids.items()}
        check(got == {"ok1": "sent", "ok2": "sent", "fail550": "bounced", "fail451": "failed"},
              "final statuses %r" % got)

        after, types, text = scrape(crier, token=harness.TOKEN_WORKFLOW)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        C = "crm_communications_total"
        expect = {
            ("welcome", "sent"): 2,
            ("budget_summary", "bounced"): 1,
            ("vendor_options", "retry"): 3,
            ("vendor_options", "failed"): 1,
        }
        for (mt, status), n in expect.items():
            got_n = delta(C, message_type=mt, channel="email", status=status)
            check(got_n == n, "%s{%s,email,%s} moved by %r, expected %d" % (C, mt, status, got_n, n))
        total = sum(v for (name, _l), v in after.items() if name == C) - \
            sum(v for (name, _l), v in before.items() if name == C)
        check(total == 7, "%s moved by 7 in all (2 sent + 1 + 4 attempts), got %r" % (C, total))
        for mt in ("welcome", "budget_summary", "vendor_options"):
            for status in ("sent", "delivered", "retry", "failed", "bounced", "skipped"):
                check((C, frozenset({"message_type": mt, "channel": "email", "status": status}.items()))
                      in after, "%s{%s,email,%s} is written, zero or not" % (C, mt, status))
        check(not any(dict(l).get("channel") != "email" for (n, l) in after if n == C),
              "no channel but email was counted")

        H = "crm_delivery_time_seconds"
        check(types.get(H) == "histogram", "%s is a histogram" % H)
        # from the send to the delivery receipt, and SMTP gives none: an
        # accepted email is sent, not known delivered (test_observability
        # checks the receipts of SMS and WhatsApp)
        check(delta(H + "_count", channel="email") == 0,
              "%s_count did not move for 2 emails only sent (%r)"
              % (H, delta(H + "_count", channel="email")))

        E = "crm_api_errors_total"
        check(delta(E, api="smtp", error_type="permanent") == 1, "one permanent SMTP error")
        check(delta(E, api="smtp", error_type="transient") == 4, "four transient SMTP errors")
        check(delta(E, api="smtp", error_type="auth_failure") == 0
              and (E, frozenset({"api": "smtp", "error_type": "auth_failure"}.items())) in after,
              "auth_failure is written and did not move")
        check(delta("crier_email_suppressions_total") == 1,
              "one address suppressed (%r)" % delta("crier_email_suppressions_total"))
        check(delta("crier_api_requests_total", api="smtp") == 7,
              "seven SMTP calls (%r)" % delta("crier_api_requests_total", api="smtp"))

        R = "crier_http_requests_total"
        check(delta(R, route="POST /v1/communications", code="2xx") == 4, "4 accepted POSTs counted")
        check(delta(R, route="GET /v1/rules", code="4xx") == 1, "the refused GET /v1/rules counted")
        check(value(after, R, route="/metrics", code="2xx") >= 2, "earlier scrapes counted")
        check(value(after, R, route="/healthz", code="2xx") >= 1, "the harness's probe counted")
        D = "crier_http_request_duration_seconds"
        check(types.get(D) == "summary", "%s is a summary" % D)
        check(value(after, D + "_count", route="POST /v1/communications") ==
              sum(value(after, R, route="POST /v1/communications", code=c)
                  for c in ("none", "1xx", "2xx", "3xx", "4xx", "5xx")),
              "%s_count equals the route's requests" % D)

        st, _h, rules = crier.request("GET", "/v1/rules", token=harness.TOKEN_OPERATOR)
        check(st == 200, "GET /v1/rules answered %s" % st)
        check(value(after, "crier_rules_info", version=rules.get("active_version")) == 1,
              "crier_rules_info names the active version %r" % rules.get("active_version"))
        check(value(after, "crier_rules_reloads_total") == rules.get("reloads")
              and value(after, "crier_rules_reload_failures_total") == rules.get("reload_failures")
              and value(after, "crier_rule_failures_total") == rules.get("rule_failures") == 0,
              "rules counters agree with GET /v1/rules (%r)" % rules)
        check(value(after, "crier_database_up") == 1, "crier_database_up is 1")

        # Nothing that names a person: no address, no name, no id.
        for secret in ["example.com", "Test Client", "@"] + list(ids.values()):
            check(secret not in text, "the text does not contain %r" % secret)

        # Queue depth: nothing left once all is final; a row scheduled for
        # tomorrow shows up as scheduled within the waker's sampling period.
        def depth():
            s2, _t, _x = scrape(crier)
            return {st2: value(s2, "crier_queue_depth", state=st2)
                    for st2 in ("due", "scheduled", "sending")} if \
                ("crier_queue_depth", frozenset({"state": "due"}.items())) in s2 else None

        try:
            harness.wait_until(lambda: depth() == {"due": 0, "scheduled": 0, "sending": 0},
                               timeout=10, what="an empty queue depth")
            check(True, "queue depth drained")
        except TimeoutError as e:
            check(False, "%s (%r)" % (e, depth()))
        harness.psql(db, "INSERT INTO communications (id, plan_id, client_id, message_type, status,"
                         " send_at, next_attempt_at)"
                         " SELECT gen_random_uuid(), plan_id, client_id, message_type, 'pending',"
                         " now() + interval '1 day', now() + interval '1 day'"
                         " FROM communications LIMIT 1")
        try:
            harness.wait_until(lambda: depth() == {"due": 0, "scheduled": 1, "sending": 0},
                               timeout=10, what="one scheduled row in the queue depth")
            check(True, "queue depth sees the scheduled row")
        except TimeoutError as e:
            check(False, "%s (%r)" % (e, depth()))

        # The alert rules use only what is exported.
        rules_list, used = alert_metrics(os.path.join(harness.source_dir(), "config", "alerts.yml"))
        check(len(rules_list) >= 5, "alert rules for the seed's conditions (%d)" % len(rules_list))
        for name in sorted(used):
            check(family_of(name, types), "alerts.yml uses %s, which /metrics exports" % name)
    finally:
        if crier is not None:
            try:
                crier.stop()
            except Exception as e:
                check(False, "crier stopped cleanly: %s" % e)
        if sink is not None:
            sink.stop()
        harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
