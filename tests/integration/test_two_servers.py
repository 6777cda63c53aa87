"""Two `crier serve` processes on one database: 1,000 requests posted to them
alternately are all sent, each exactly once (work is claimed with SKIP
LOCKED and leases, so no two workers send the same row)."""
import collections
import concurrent.futures
import email
import email.policy
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

N = 1000
POOL = 8

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


def messages(sink):
    return [p for p in sink.files() if p.endswith(".eml")]


def crier_ids(sink):
    ids = []
    for path in messages(sink):
        with open(path, "rb") as f:
            msg = email.message_from_bytes(f.read(), policy=email.policy.default)
        cid = msg.get("X-Crier-Id")
        ids.append(str(cid).strip() if cid is not None else None)
    return ids


def main():
    tmp = tempfile.mkdtemp(prefix="crier-two-")
    db = harness.new_database("two")
    sink = None
    servers = []
    try:
        sink = harness.SmtpSink(os.path.join(tmp, "sink"))
        env = {
            "CRIER_TRANSPORT": "live",
            "CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port,
            "CRIER_SMTP_TLS": "off",
            "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>",
            "CRIER_WORKERS": "2",
        }
        servers.append(harness.Crier(db, os.path.join(tmp, "a"), env=env))
        servers.append(harness.Crier(db, os.path.join(tmp, "b"), env=env))
        check(servers[0].port != servers[1].port, "the two servers listen on different ports")

        bodies = [harness.comm_body(i, message_type="welcome", urgency="critical")
                  for i in range(N)]

        def post(i):
            return servers[i % 2].post_comm(bodies[i])

        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(POOL) as ex:
            answers = list(ex.map(post, range(N)))
        ids = []
        for i, (st, _h, js) in enumerate(answers):
            if check(st == 202 and isinstance(js, dict), "post %d answered %s %r" % (i, st, js)):
                ids.append(js["communication_id"])
        check(len(set(ids)) == N, "1000 distinct ids (%d)" % len(set(ids)))

        try:
            harness.wait_until(lambda: len(messages(sink)) >= N, 300, 0.2)
        except TimeoutError:
            pass
        try:
            final = servers[0].wait_final(ids, timeout=120)
        except TimeoutError as e:
            final = {}
            check(False, "every communication reached a final status: %s" % e)
        time.sleep(1.5)  # a duplicate send would land just after the last one
        print("done in %.1f s" % (time.time() - t0), flush=True)

        for cid in ids:
            if cid in final:
                check(final[cid].get("status") == "sent",
                      "%s ended %r, expected sent" % (cid, final[cid].get("status")))
        received = crier_ids(sink)
        counts = collections.Counter(received)
        dups = {cid: n for cid, n in counts.items() if n > 1}
        check(not dups, "no duplicates at the sink (%d ids received more than once, e.g. %s)"
              % (len(dups), list(dups.items())[:3]))
        lost = [cid for cid in ids if counts.get(cid, 0) == 0]
        check(not lost, "every communication reached the sink (%d missing)" % len(lost))
        check(len(received) == N, "exactly %d messages at the sink (%d)" % (N, len(received)))
        attempts = harness.psql(db, "SELECT count(*) FROM communications WHERE attempts <> 1")
        check(attempts == [["0"]], "every communication took exactly one attempt (%s others)"
              % attempts)
        # Neither process fell over under the contention on the shared queue.
        for s, name in zip(servers, "ab"):
            check(s.proc.poll() is None, "server %s still running" % name)
    finally:
        for s, name in zip(servers, "ab"):
            try:
                s.stop()
            except Exception as e:
                check(False, "server %s stopped cleanly: %s" % (name, e))
        if sink is not None:
            sink.stop()
        harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
