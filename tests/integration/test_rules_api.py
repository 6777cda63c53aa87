"""GET /v1/rules and POST /v1/rules/dry-run against a running crier, and hot
reload: an edit of the rules directory is live within 2 s; a broken edit
(syntax error, error at load, missing function) never replaces the working
set and is reported naming the file; SIGHUP reloads; a rule that fails one
decision is answered by the built-in policy and says why."""
import json
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_openapi import Spec  # noqa: E402  (the documented schemas)

passed = 0
failed = 0
spec = None  # docs/openapi.yaml, loaded in main

NOW = "2026-03-10T15:00:00Z"  # a Tuesday, inside business hours in UTC
RELOAD_S = 2.0                # an edit must be live within this
VENDOR_LINE = 'vendor_options = { "email", "whatsapp" },'
WHATSAPP_FIRST = 'vendor_options = { "whatsapp", "email" },'


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)
    return cond


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def documented(schema_name, value):
    """Every answer this test sees is checked against its documented schema."""
    errs = spec.errors(spec.doc["components"]["schemas"][schema_name], value)
    check(not errs, "%s as documented: %s\n%r" % (schema_name, errs[:3], value))


def status(crier):
    st, _, body = crier.request("GET", "/v1/rules", token=h.TOKEN_OPERATOR)
    if st != 200 or not isinstance(body, dict):
        raise AssertionError("GET /v1/rules answered %s: %r" % (st, body))
    documented("RulesStatus", body)
    return body


def dry_run(crier, body, token=h.TOKEN_OPERATOR):
    return crier.request("POST", "/v1/rules/dry-run", body, token=token)


def vendor_request():
    # phone and consent for every channel, so the message type's order decides
    return h.comm_body(1, message_type="vendor_options", phone="+14155550123",
                       consent={"sms": True, "whatsapp": True})


def decide(crier, request=None):
    st, _, body = dry_run(crier, {"request": request or vendor_request(), "now": NOW})
    if st != 200 or not isinstance(body, dict):
        raise AssertionError("dry-run answered %s: %r" % (st, body))
    documented("DryRunAnswer", body)
    return body


def shape_ok(ans):
    d = ans.get("decision")
    return (isinstance(d, dict)
            and set(d) == {"primary_channel", "fallback_channels", "send_at", "priority", "batch",
                           "skip_reason", "status"}
            and isinstance(ans.get("rules_version"), str)
            and isinstance(ans.get("trace"), list) and len(ans["trace"]) >= 1
            and all(isinstance(s, dict) and "step" in s for s in ans["trace"]))


def wait_status(crier, pred, what, timeout=RELOAD_S):
    try:
        return h.wait_until(lambda: (lambda s: s if pred(s) else None)(status(crier)),
                            timeout=timeout, interval=0.05, what=what)
    except TimeoutError as e:
        check(False, "%s (last status %r)" % (e, status(crier)))
        return status(crier)


def test_auth_and_input(crier, rules_dir):
    good = {"request": vendor_request(), "now": NOW}
    for method, path, body in (("GET", "/v1/rules", None), ("POST", "/v1/rules/dry-run", good)):
        st, _, b = crier.request(method, path, body, token=h.TOKEN_WORKFLOW)
        check(st == 403 and b.get("error", {}).get("code") == "forbidden",
              "%s %s with a workflow token: %s %r" % (method, path, st, b))
        st, hdrs, b = crier.request(method, path, body, token=None)
        check(st == 401 and "bearer" in hdrs.get("www-authenticate", "").lower(),
              "%s %s without a token: %s %r" % (method, path, st, b))
        st, _, b = crier.request(method, path, body, token=h.TOKEN_ADMIN)
        check(st == 200, "%s %s with an admin token: %s %r" % (method, path, st, b))

    s = status(crier)
    check(set(s) == {"rules_dir", "active_version", "loaded_at", "last_error", "last_error_at",
                     "policy", "quarantine", "reloads", "reload_failures", "rule_failures",
                     "budget_overruns", "deadline_misses", "runners_stuck", "deadline_ms"},
          "status fields: %r" % s)
    check(s.get("policy") == "rules" and s.get("quarantine") is None,
          "a healthy set decides: %r" % s)
    check(s["rules_dir"] == rules_dir, "status names the rules directory: %r" % s["rules_dir"])

    # The request is validated exactly as POST /v1/communications does it:
    # same status, same code, the same message under "request.".
    base = vendor_request()
    bad_requests = [
        dict(base, message_type="nope"),
        dict(base, plan_id="not-a-uuid"),
        {k: v for k, v in base.items() if k != "client_id"},
        dict(base, client=dict(base["client"], email="not an address")),
        dict(base, client=dict(base["client"], timezone="Mars/Olympus")),
        dict(base, urgency="whenever"),
        dict(base, attachments=[{"filename": "a/b.pdf", "content_type": "application/pdf",
                                 "content_base64": "AAAA"}]),
    ]
    for req in bad_requests:
        pst, _, pb = crier.post_comm(req)
        dst, _, db = dry_run(crier, {"request": req, "now": NOW})
        perr = pb.get("error", {}) if isinstance(pb, dict) else {}
        derr = db.get("error", {}) if isinstance(db, dict) else {}
        check(pst in (400, 422) and dst == pst and derr.get("code") == perr.get("code")
              and derr.get("message") == "request." + perr.get("message", ""),
              "bad request: POST %s %r, dry-run %s %r" % (pst, perr, dst, derr))

    too_deep = dict(base, context={"deep": json.loads("[" * 40 + "]" * 40)})
    pst, _, pb = crier.post_comm(too_deep)
    dst, _, db = dry_run(crier, {"request": too_deep})
    check(pst == dst == 400 and db["error"]["code"] == pb["error"]["code"] == "json_too_deep",
          "too deep: POST %s %r, dry-run %s %r" % (pst, pb, dst, db))

    cases = [
        ("malformed JSON", dict(raw=b'{"request": ', headers={"Content-Type": "application/json"}),
         400, "invalid_json", None),
        ("not UTF-8", dict(raw=b'{"request": {"x": "\xff"}}',
                           headers={"Content-Type": "application/json"}), 400, "invalid_utf8", None),
        ("escaped NUL", dict(raw=b'{"request": {}, "now": "2026\\u0000"}',
                             headers={"Content-Type": "application/json"}), 400, "invalid_json", None),
        ("not an object", dict(body=[1]), 422, "invalid_field", "body"),
        ("no request", dict(body={"now": NOW}), 422, "invalid_field", "request"),
        ("request not an object", dict(body={"request": "x"}), 422, "invalid_field", "request"),
        ("unknown field", dict(body={"request": base, "pending": 1}), 422, "invalid_field",
         "pending"),
        ("bad now", dict(body={"request": base, "now": "yesterday"}), 422, "invalid_field", "now"),
        ("bad client", dict(body={"request": base, "client": {"timezone": "Nowhere/Else"}}), 422,
         "invalid_field", "client.timezone"),
        ("unknown client field", dict(body={"request": base, "client": {"favourite": 1}}), 422,
         "invalid_field", "client"),
    ]
    for what, kw, want_st, want_code, field in cases:
        st, _, b = crier.request("POST", "/v1/rules/dry-run", token=h.TOKEN_OPERATOR, **kw)
        err = b.get("error", {}) if isinstance(b, dict) else {}
        check(st == want_st and err.get("code") == want_code
              and (field is None or err.get("message", "").startswith(field)),
              "%s: %s %r" % (what, st, b))
    st, _, b = crier.request("POST", "/v1/rules/dry-run", raw=b"{}", token=h.TOKEN_OPERATOR,
                             headers={"Content-Type": "text/plain"})
    check(st == 415, "dry-run without a JSON content type: %s %r" % (st, b))
    st, _, b = crier.request("PUT", "/v1/rules", raw=b"", token=h.TOKEN_OPERATOR)
    check(st == 405, "PUT /v1/rules: %s %r" % (st, b))

    # the client object overrides the request's: no consent for WhatsApp
    st, _, b = dry_run(crier, {"request": base, "now": NOW,
                               "client": {"consent": {"whatsapp": False, "sms": True}}})
    check(st == 200 and "whatsapp" not in b["decision"]["fallback_channels"],
          "client object applied: %s %r" % (st, b))


def test_hot_reload(crier, rules_dir, db):
    channels = os.path.join(rules_dir, "channels.lua")
    with open(channels, "r", encoding="utf-8") as f:
        original = f.read()
    if not check(VENDOR_LINE in original, "channels.lua has the vendor_options line to edit"):
        return

    s0 = status(crier)
    v1 = s0["active_version"]
    check(v1 != "builtin-1" and len(v1) >= 8, "the rules directory is active: %r" % s0)
    check(s0["last_error"] is None and s0["last_error_at"] is None, "no error at start: %r" % s0)
    check(s0["loaded_at"] is not None, "loaded_at set: %r" % s0)

    a1 = decide(crier)
    check(shape_ok(a1), "dry-run answers the documented shape: %r" % a1)
    check("rules_error" not in a1, "no rules_error when the rules decide: %r" % a1)
    check(a1["rules_version"] == v1, "dry-run used the active version %s: %r"
          % (v1, a1["rules_version"]))
    check(a1["decision"]["primary_channel"] == "email"
          and a1["decision"]["fallback_channels"][:1] == ["whatsapp"]
          and a1["decision"]["status"] == "queued"
          and a1["decision"]["send_at"] == NOW,
          "vendor_options: email first, WhatsApp next, due now: %r" % a1["decision"])
    check([s["step"] for s in a1["trace"]][:2] == ["channels.select", "fallback.chain"],
          "trace starts with channels.select, fallback.chain: %r" % a1["trace"])

    # A working edit is live within RELOAD_S.
    edited = original.replace(VENDOR_LINE, WHATSAPP_FIRST)
    t0 = time.monotonic()
    write(channels, edited)
    s1 = wait_status(crier, lambda s: s["active_version"] not in (v1, "builtin-1"),
                     "a new version after the edit")
    v2 = s1["active_version"]
    check(v2 != v1 and time.monotonic() - t0 <= RELOAD_S + 0.5,
          "new version %s within %.1f s (took %.2f s)" % (v2, RELOAD_S, time.monotonic() - t0))
    check(s1["reloads"] >= s0["reloads"] + 1, "reloads counted: %r" % s1)
    a2 = decide(crier)
    check(a2["rules_version"] == v2 and a2["decision"]["primary_channel"] == "whatsapp"
          and "email" in a2["decision"]["fallback_channels"],
          "the dry-run follows the edit: %r" % a2)

    # Broken edits: each is refused, reported naming the file, and the
    # previous rules keep deciding.
    broken = [
        ("syntax error", edited + "\nlocal x = = 1\n", "channels.lua:"),
        ("error at load", 'error("boom at load")\n' + edited, "boom at load"),
        ("missing function", edited.replace("function select(", "function select_renamed("),
         "select"),
    ]
    for what, text, mark in broken:
        before = status(crier)
        write(channels, text)
        s = wait_status(crier, lambda st: st["reload_failures"] > before["reload_failures"],
                        "%s: the failed reload is reported" % what)
        err = s["last_error"] or ""
        check("channels.lua" in err and mark in err,
              "%s: last_error names the file and the problem: %r" % (what, err))
        check(s["last_error_at"] is not None, "%s: last_error_at set" % what)
        check(s["active_version"] == v2, "%s: version %s still active: %r"
              % (what, v2, s["active_version"]))
        a = decide(crier)
        check(a["rules_version"] == v2 and a["decision"]["primary_channel"] == "whatsapp"
              and "rules_error" not in a,
              "%s: the dry-run still answers with the previous rules: %r" % (what, a))
        write(channels, edited)

    # SIGHUP reloads by itself: the original text goes back through a file
    # descriptor held open, which the directory watch does not report
    # (it acts on close), so only the signal can publish it. The last
    # restore publishes nothing new, so there is nothing to wait for but
    # the watch's settling time; a reload still running would read the
    # text written below.
    time.sleep(1.0)
    fd = os.open(channels, os.O_WRONLY)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, original.encode("utf-8"))
        time.sleep(0.5)  # what the watch would have had time to do
        check(status(crier)["active_version"] == v2, "no reload before the signal")
        os.kill(crier.proc.pid, signal.SIGHUP)
        s = wait_status(crier, lambda st: st["active_version"] == v1, "SIGHUP reloads")
        check(s["active_version"] == v1, "SIGHUP published the original version again: %r" % s)
        a = decide(crier)
        check(a["rules_version"] == v1 and a["decision"]["primary_channel"] == "email",
              "after SIGHUP the dry-run decides with the original rules: %r" % a)
    finally:
        os.close(fd)

    # A rule that fails one decision (not its load smoke test): the built-in
    # policy answers and the answer says why.
    failing = original.replace("function select(msg, client)\n",
                               "function select(msg, client)\n"
                               "    if msg.type == \"reminder\" then error(\"reminders broken\") end\n")
    check(failing != original, "the failing-rule edit applies")
    before = status(crier)
    write(channels, failing)
    wait_status(crier, lambda st: st["active_version"] not in (v1, "builtin-1"),
                "the failing rule is published (it passes the smoke test)")
    a = decide(crier, h.comm_body(2, message_type="reminder"))
    check(shape_ok(a) and a.get("rules_version") == "builtin-1"
          and "reminders broken" in a.get("rules_error", "")
          and a["trace"][0].get("step") == "rules"
          and a["decision"]["primary_channel"] == "email",
          "a failing rule: the built-in decision with rules_error: %r" % a)
    check(status(crier)["rule_failures"] > before["rule_failures"], "rule failure counted")
    a = decide(crier)
    check(a["rules_version"] not in (v1, "builtin-1") and "rules_error" not in a,
          "other message types still decided by the rules: %r" % a)

    # Nothing of any dry-run was written or sent.
    rows = h.psql(db, "SELECT count(*) FROM communications")
    check(rows == [["0"]], "dry-runs wrote no communication: %r" % rows)
    outbox = crier.outbox
    sent = os.listdir(outbox) if os.path.isdir(outbox) else []
    check(not sent, "dry-runs sent nothing: %r" % sent)


def main():
    global spec
    spec = Spec(os.path.join(h.source_dir(), "docs", "openapi.yaml"))
    tmp = h.tempdir("rules-api")
    rules_dir = os.path.join(tmp, "rules")
    shutil.copytree(os.path.join(h.source_dir(), "rules"), rules_dir)
    db = h.new_database("rules_api")
    crier = h.Crier(db, os.path.join(tmp, "run"), env={"CRIER_RULES_DIR": rules_dir})
    ok = False
    try:
        for test in (test_auth_and_input, test_hot_reload):
            try:
                if test is test_hot_reload:
                    test(crier, rules_dir, db)
                else:
                    test(crier, rules_dir)
            except Exception as e:  # one broken step must not hide the others
                check(False, "%s raised %r" % (test.__name__, e))
        ok = True
    finally:
        if ok:
            try:
                crier.stop()
                check(True, "crier stopped cleanly")
            except Exception as e:
                check(False, "crier stopped cleanly: %s" % e)
        else:
            crier.kill()
    h.summary(passed, failed)


if __name__ == "__main__":
    main()
