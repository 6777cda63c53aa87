"""Live templates: a template edited while 500 messages flow. Messages
decided after the edit use the new text, none is lost, and each records
the template version it was rendered with (its body matches that version:
old text with the old hash, new text with the new one); every version used
is recorded once in crm_communication_templates. A broken edit leaves the
previous version live and is reported in GET /v1/templates (file and
line), the metrics and the log, and a message sent then uses the version
still live. SIGHUP reloads.

Nothing here races the clock: a message "decided after the edit" is one
whose POST was sent after GET /v1/templates had shown the new version, and
every wait is a bounded poll."""
import email
import email.policy
import os
import re
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_openapi import Spec  # noqa: E402  (the documented schemas)

passed = 0
failed = 0
spec = None

TOTAL = 500
EDIT_AT = 150      # messages accepted before the edit is made
HOLD_AT = 300      # the stream waits here until the new version is seen live
POSTERS = 4
OLD_LINE = "A quick reminder."
NEW_LINE = "A quick reminder, second edition."
RELOAD_S = 20.0    # bound on a reload becoming visible (a loaded machine)


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)
    return cond


def status(crier):
    st, _, body = crier.request("GET", "/v1/templates", token=h.TOKEN_OPERATOR)
    if st != 200 or not isinstance(body, dict):
        raise AssertionError("GET /v1/templates answered %s: %r" % (st, body))
    errs = spec.errors(spec.doc["components"]["schemas"]["TemplatesStatus"], body)
    check(not errs, "TemplatesStatus as documented: %s" % errs[:3])
    return body


def version_of(st, name="reminder", channel="email"):
    for t in st["templates"]:
        if t["name"] == name and t["channel"] == channel:
            return t["version"]
    raise AssertionError("no %s/%s in %r" % (channel, name, st["templates"]))


def replace_file(path, text, scratch):
    """Writes text as path the way a deployment should: a new file renamed
    over the old one."""
    tmp = os.path.join(scratch, "edit.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.rename(tmp, path)


def metric(crier, name, labels=""):
    st, _, text = crier.request("GET", "/metrics", token=None)
    if st != 200:
        raise AssertionError("GET /metrics answered %s" % st)
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def text_part(eml_path):
    with open(eml_path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def rows(db, ids):
    """id -> (status, channel, template_version, the hash of the template row
    it names) of the communications."""
    found = h.psql(db, "SELECT c.id, c.status, c.channel, coalesce(c.template_version, ''),"
                       " coalesce(t.hash, '') FROM communications c"
                       " LEFT JOIN crm_communication_templates t ON t.template_id = c.template_id"
                       "  AND t.template_name = c.message_type AND t.channel = c.channel"
                       " WHERE c.id = ANY(string_to_array(:'ids', ',')::uuid[])",
                   ids=",".join(ids))
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in found}


def wait_final(db, ids, timeout=180.0):
    def done():
        n = h.psql(db, "SELECT count(*) FROM communications"
                       " WHERE id = ANY(string_to_array(:'ids', ',')::uuid[])"
                       " AND status IN ('sent', 'delivered', 'failed', 'skipped')",
                   ids=",".join(ids))[0][0]
        return int(n) == len(ids)
    h.wait_until(done, timeout=timeout, interval=0.25,
                 what="%d communications to reach a final state" % len(ids))


def post_one(crier, i):
    st, _, body = crier.post_comm(h.comm_body(i, message_type="reminder"))
    if st != 202 or not isinstance(body, dict) or "communication_id" not in body:
        raise AssertionError("POST %d answered %s: %r" % (i, st, body))
    return body["communication_id"]


def test_edit_under_flow(tmp):
    tdir = os.path.join(tmp, "templates")
    shutil.copytree(os.path.join(h.source_dir(), "templates"), tdir)
    txt_path = os.path.join(tdir, "email", "reminder.txt")
    html_path = os.path.join(tdir, "email", "reminder.html")
    with open(txt_path, encoding="utf-8") as f:
        old_txt = f.read()
    with open(html_path, encoding="utf-8") as f:
        old_html = f.read()
    if OLD_LINE not in old_txt:
        raise AssertionError("reminder.txt no longer says %r" % OLD_LINE)
    new_txt = old_txt.replace(OLD_LINE, NEW_LINE)

    db = h.new_database("tpl_live")
    with h.Crier(db, os.path.join(tmp, "crier"), env={"CRIER_TEMPLATES_DIR": tdir}) as crier:
        # who may look: operators and admins
        st, _, b = crier.request("GET", "/v1/templates", token=h.TOKEN_WORKFLOW)
        check(st == 403, "a workflow token may not read the templates: %s %r" % (st, b))
        st, _, b = crier.request("GET", "/v1/templates", token=None)
        check(st == 401, "no token: %s %r" % (st, b))
        st, _, b = crier.request("GET", "/v1/templates", token=h.TOKEN_ADMIN)
        check(st == 200, "an admin token may: %s" % st)

        s0 = status(crier)
        v_old = version_of(s0)
        check(s0["templates_dir"] == tdir and s0["last_reload"]["ok"] is True
              and s0["last_reload"]["error"] is None and len(s0["templates"]) == 25,
              "the start is a passing load of every template: %r" % {k: s0[k] for k in s0
                                                                     if k != "templates"})
        sms_old = version_of(s0, channel="sms")

        # ------------------------------------------------ 500 in a stream
        lock = threading.Lock()
        posted = []          # (index, id, monotonic time the POST was sent)
        errors = []
        counter = [0]
        observed = threading.Event()
        observed_at = [None]

        def poster():
            while True:
                with lock:
                    i = counter[0]
                    if i >= TOTAL or errors:
                        return
                    counter[0] += 1
                if i == HOLD_AT and not observed.wait(RELOAD_S + 10):
                    errors.append("the new version never showed")
                    return
                if i > HOLD_AT:
                    observed.wait(RELOAD_S + 10)
                sent = time.monotonic()
                try:
                    cid = post_one(crier, i)
                except Exception as e:  # reported below, and the stream stops
                    errors.append(repr(e))
                    return
                with lock:
                    posted.append((i, cid, sent))

        threads = [threading.Thread(target=poster) for _ in range(POSTERS)]
        for t in threads:
            t.start()
        try:
            h.wait_until(lambda: len(posted) >= EDIT_AT or errors, timeout=120, interval=0.02,
                         what="%d messages accepted" % EDIT_AT)
            replace_file(txt_path, new_txt, tmp)
            live = h.wait_until(lambda: (lambda s: s if version_of(s) != v_old else None)(
                status(crier)), timeout=RELOAD_S, interval=0.05, what="the new version live")
            observed_at[0] = time.monotonic()
            observed.set()
        finally:
            observed.set()
            for t in threads:
                t.join(120)
        check(not errors, "every POST was accepted: %r" % errors[:3])
        v_new = version_of(live)
        check(live["last_reload"]["ok"] is True and live["version"] != s0["version"],
              "the edit went live as a new catalogue: %r" % live["last_reload"])
        check(version_of(live, channel="sms") == sms_old,
              "an email edit leaves the SMS version alone")
        with lock:
            ids = [cid for _, cid, _ in posted]
        check(len(ids) == TOTAL and len(set(ids)) == TOTAL, "%d distinct messages accepted"
              % len(set(ids)))

        # ------------------------------------------------ what became of them
        wait_final(db, ids)
        got = rows(db, ids)
        check(len(got) == TOTAL, "every message is stored: %d" % len(got))
        statuses = {}
        for cid in ids:
            statuses[got[cid][0]] = statuses.get(got[cid][0], 0) + 1
        check(statuses == {"delivered": TOTAL}, "none lost: every message delivered %r" % statuses)
        after = {cid for _, cid, sent in posted if sent > observed_at[0]}
        check(len(after) >= TOTAL - HOLD_AT, "%d messages were decided after the new version was "
              "seen live" % len(after))
        seen = {v_old: 0, v_new: 0}
        bad = []
        for cid in ids:
            st_, channel, ver, row_hash = got[cid]
            body = text_part(os.path.join(crier.outbox, cid + ".eml"))
            has_new, has_old = NEW_LINE in body, OLD_LINE in body
            if ver not in seen or channel != "email":
                bad.append("%s: channel %s, version %r" % (cid, channel, ver))
                continue
            seen[ver] += 1
            if row_hash != ver:
                bad.append("%s names template row %r, not its version %s" % (cid, row_hash, ver))
            if (ver == v_new) != has_new or (ver == v_old) != has_old:
                bad.append("%s recorded %s but its text is %s" % (cid, ver,
                                                                  "new" if has_new else "old"))
            if cid in after and ver != v_new:
                bad.append("%s was posted after the new version was live but used %s"
                           % (cid, ver))
        check(not bad, "each message's text matches the version it recorded (%d wrong): %s"
              % (len(bad), bad[:5]))
        check(seen[v_old] > 0 and seen[v_new] > 0,
              "both versions were used: %r" % seen)

        recorded = h.psql(db, "SELECT template_name, channel, version, hash,"
                              " first_used_at IS NOT NULL, files ? 'email/reminder.txt',"
                              " files ? 'email/layout.txt', strpos(content_template, :'new') > 0"
                              " FROM crm_communication_templates ORDER BY version",
                          new=NEW_LINE)
        check([r[:4] for r in recorded] == [["reminder", "email", "1", v_old],
                                           ["reminder", "email", "2", v_new]],
              "each version used is recorded once, numbered in order: %r"
              % [r[:4] for r in recorded])
        check(all(r[4] == "t" and r[5] == "t" and r[6] == "t" for r in recorded)
              and [r[7] for r in recorded] == ["f", "t"],
              "a version keeps the files it was made of: %r" % recorded)
        ok_reloads = metric(crier, "crier_templates_reloads_total", '{result="ok"}')
        check(ok_reloads is not None and ok_reloads >= 1, "an ok reload is counted: %r"
              % ok_reloads)
        check(metric(crier, "crier_templates_info", '{version="%s"}' % live["version"]) == 1,
              "the metrics name the live catalogue")

        # ------------------------------------------------ a broken edit
        broken = old_html + "{{#due_date}}\n<p>never closed</p>\n"
        replace_file(html_path, broken, tmp)
        s2 = h.wait_until(lambda: (lambda s: s if not s["last_reload"]["ok"] else None)(
            status(crier)), timeout=RELOAD_S, interval=0.05, what="the broken edit reported")
        err = s2["last_reload"]["error"] or ""
        check(s2["version"] == live["version"] and version_of(s2) == v_new,
              "the previous version stays live: %r" % s2["version"])
        check("email/reminder.html" in err and re.search(r"line \d+", err) is not None,
              "the error names the file and line: %r" % err)
        check(s2["reloads"]["error"] >= 1, "the refused reload is counted in the status")
        check((metric(crier, "crier_templates_reloads_total", '{result="error"}') or 0) >= 1,
              "and in the metrics")
        check(metric(crier, "crier_templates_last_reload_ok") == 0,
              "the last reload is shown failed")
        logged = [e for e in h.log_events(crier.log(), "reload_failed")
                  if e.get("component") == "templates"]
        check(logged and "email/reminder.html" in logged[-1].get("error", "")
              and logged[-1].get("level", "").lower().startswith("err"),
              "an ERROR line names the file: %r" % logged[-1:])
        one = post_one(crier, TOTAL + 1)
        wait_final(db, [one], timeout=60)
        r1 = rows(db, [one])[one]
        body = text_part(os.path.join(crier.outbox, one + ".eml"))
        check(r1[0] == "delivered" and r1[2] == v_new and r1[3] == v_new and NEW_LINE in body,
              "a message sent after the broken edit uses the version still live: %r" % (r1,))

        # ------------------------------------------------ fixed, then SIGHUP
        replace_file(html_path, old_html, tmp)
        s3 = h.wait_until(lambda: (lambda s: s if s["last_reload"]["ok"] else None)(
            status(crier)), timeout=RELOAD_S, interval=0.05, what="the fixed edit")
        check(s3["version"] == live["version"] and s3["last_reload"]["error"] is None,
              "the fix passes and finds the same catalogue: %r" % s3["last_reload"])
        before = s3["reloads"]["ok"]
        crier.proc.send_signal(signal.SIGHUP)
        s4 = h.wait_until(lambda: (lambda s: s if s["reloads"]["ok"] > before else None)(
            status(crier)), timeout=RELOAD_S, interval=0.05, what="a reload after SIGHUP")
        check(s4["version"] == live["version"] and s4["last_reload"]["ok"] is True,
              "SIGHUP reloads the same files: %r" % s4["last_reload"])
        check(any(e.get("component") == "serve" for e in h.log_events(crier.log(), "sighup")),
              "the SIGHUP is logged")


def main():
    global spec
    spec = Spec(os.path.join(h.source_dir(), "docs", "openapi.yaml"))
    try:
        test_edit_under_flow(h.tempdir("templates_live"))
    except Exception:
        import traceback
        traceback.print_exc(file=sys.stdout)
        check(False, "test_edit_under_flow raised")
    h.summary(passed, failed)


if __name__ == "__main__":
    main()
