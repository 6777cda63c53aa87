"""Rules under load, against the real binary and PostgreSQL (sandbox transport).

1. Containment: a rules set whose channels.select loops forever, raises,
   grows a table without bound or builds a gigabyte string for some clients
   (chosen by time zone, which the smoke test's canned inputs never use) is
   still published; 1,000 messages posted concurrently, 40 of them hostile,
   all end delivered: each hostile decision fails alone, the built-in policy
   answers it (rules_version builtin-1, a "rules" error step in the trace),
   and GET /v1/rules counts the failures.
2. Hot reload while messages flow: 1,000 welcome messages are posted at a
   steady pace; part-way through, channels.lua is edited to skip welcome
   messages. Within 2 s of the edit every new answer carries the new
   decision (skipped, reason paused_by_operator), answers before the edit
   the old one, and every one of the 1,000 reaches a final state: none lost.
"""
import concurrent.futures
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

N = 1000
HOSTILE = {  # time zone -> what select does for that client
    "Pacific/Chatham": "while true do end",
    "Pacific/Kiritimati": 'error("rule exploded on purpose")',
    "Pacific/Marquesas": "local t = {} for i = 1, 1e9 do t[i] = i end",
    "Pacific/Fiji": 'return { skip = string.rep("x", 1e9) }',
}
PER_HOSTILE = 10

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        if failed <= 40:
            print("FAIL:", what, flush=True)
    return cond


def outbox_count(crier):
    try:
        return sum(1 for n in os.listdir(crier.outbox) if n.endswith(".eml"))
    except FileNotFoundError:
        return 0


def containment(db, tmp):
    rules = harness.rules_dir()
    harness.wrap_select(rules, "\n".join(
        '    if client.timezone == "%s" then %s end' % (tz, code) for tz, code in HOSTILE.items()))
    # Containment alone: a set whose budget overruns would quarantine it
    # after the third is tested in test_rules_quarantine.
    crier = harness.Crier(db, os.path.join(tmp, "contain"),
                          env={"CRIER_RULES_DIR": rules, "CRIER_RULES_QUARANTINE_AFTER": "1000000"})
    try:
        st, _h, status = crier.request("GET", "/v1/rules", token=harness.TOKEN_OPERATOR)
        check(st == 200 and status.get("active_version") != "builtin-1" and
              status.get("last_error") is None,
              "the hostile-for-some set is live (it passes the smoke test): %r" % (status,))

        zones = [tz for tz in HOSTILE for _ in range(PER_HOSTILE)]
        bodies = [harness.comm_body(i, timezone=zones[i] if i < len(zones) else "UTC")
                  for i in range(N)]
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            answers = list(ex.map(crier.post_comm, bodies))
        took = time.monotonic() - t0
        ids = []
        for i, (st, _h, js) in enumerate(answers):
            if check(st == 202 and isinstance(js, dict), "post %d answered %s %r" % (i, st, js)):
                ids.append(js["communication_id"])
                version = js["decision"]["rules_version"]
                if i < len(zones):
                    trace = js["decision"]["trace"]
                    check(version == "builtin-1" and trace and trace[0].get("step") == "rules",
                          "hostile decision %d (%s) fell back to the built-in policy: %r"
                          % (i, zones[i], js["decision"]))
                else:
                    check(version != "builtin-1", "ordinary decision %d came from the rules" % i)
        print("containment: %d posted in %.1f s" % (len(ids), took), flush=True)
        final = crier.wait_final(ids, timeout=180)
        bad = [c for c, b in final.items() if b.get("status") != "delivered"]
        check(not bad, "all %d delivered (%d not, e.g. %r)" % (N, len(bad), bad[:3]))
        check(outbox_count(crier) == N, "%d emails in the outbox (%d)" % (N, outbox_count(crier)))
        st, _h, status = crier.request("GET", "/v1/rules", token=harness.TOKEN_OPERATOR)
        check(st == 200 and status.get("rule_failures", 0) >= len(zones),
              "GET /v1/rules counts at least %d rule failures: %r" % (len(zones), status))
        check(crier.proc.poll() is None, "crier still running")
    finally:
        crier.stop()


def reload_under_flow(db, tmp):
    rules = harness.rules_dir()
    crier = harness.Crier(db, os.path.join(tmp, "reload"), env={"CRIER_RULES_DIR": rules})
    try:
        st, _h, before = crier.request("GET", "/v1/rules", token=harness.TOKEN_OPERATOR)
        check(st == 200, "GET /v1/rules answered %s" % st)
        bodies = [harness.comm_body(i, message_type="welcome") for i in range(N)]
        edit_at = [None]
        lock = threading.Lock()
        results = []

        def edit():
            time.sleep(1.5)
            harness.wrap_select(rules, '    if msg.type == "welcome" then '
                               'return { skip = "paused_by_operator" } end')
            edit_at[0] = time.monotonic()

        def post(i):
            time.sleep(0.02)  # a steady flow of about 200 requests a second
            sent = time.monotonic()
            st, _h, js = crier.post_comm(bodies[i])
            with lock:
                results.append((sent, time.monotonic(), i, st, js))

        editor = threading.Thread(target=edit)
        editor.start()
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(post, range(N)))
        editor.join()
        check(edit_at[0] is not None, "the edit happened during the run")
        last = max(r[1] for r in results)
        check(edit_at[0] < last - 2.5, "the edit came well before the last request "
              "(edit %.1f s, last %.1f s)" % (edit_at[0], last))

        ids = []
        late_old = early_new = 0
        for sent, got, i, st, js in results:
            if not check(st == 202 and isinstance(js, dict), "post %d answered %s" % (i, st)):
                continue
            ids.append(js["communication_id"])
            skipped = js.get("status") == "skipped"
            if got < edit_at[0]:
                early_new += skipped
            elif sent > edit_at[0] + 2.0:
                late_old += not (skipped and
                                 js["decision"].get("skip_reason") == "paused_by_operator")
        check(early_new == 0, "no answer before the edit has the new decision (%d)" % early_new)
        check(late_old == 0, "every request sent 2 s after the edit has the new decision "
              "(%d had the old one)" % late_old)
        final = crier.wait_final(ids, timeout=180)
        check(len(final) == N, "all %d reached a final state (%d)" % (N, len(final)))
        statuses = {b.get("status") for b in final.values()}
        check(statuses <= {"delivered", "skipped"}, "only delivered or skipped: %r" % statuses)
        delivered = sum(1 for b in final.values() if b.get("status") == "delivered")
        check(outbox_count(crier) == delivered,
              "one email per delivered communication (%d emails, %d delivered)"
              % (outbox_count(crier), delivered))
        st, _h, after = crier.request("GET", "/v1/rules", token=harness.TOKEN_OPERATOR)
        check(st == 200 and after.get("active_version") != before.get("active_version") and
              after.get("reloads", 0) > before.get("reloads", 0),
              "GET /v1/rules shows the new version: %r -> %r" % (before, after))
        print("reload: %d delivered before the edit took, %d skipped after"
              % (delivered, N - delivered), flush=True)
    finally:
        crier.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="crier-rules-load-")
    db = harness.new_database("rulesload")
    try:
        containment(db, tmp)
        reload_under_flow(db, tmp)
    finally:
        harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
