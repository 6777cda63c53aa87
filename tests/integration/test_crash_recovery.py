"""Crash recovery: `kill -9` in the middle of delivering 1,000 emails, restart,
and every communication still ends sent and reaches the SMTP sink at least
once. None is lost; a message whose send was cut off by the crash may arrive
twice (at-least-once), and the test prints how many did.

Posting runs while delivery runs, so the crash also cuts requests in flight.
Every request carries an Idempotency-Key; the ones that got no answer are
posted again after the restart with the same key, as a real caller would.
"""
import collections
import concurrent.futures
import email
import email.policy
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

N = 1000
POOL = 8
KILL_AT = 150  # messages at the sink when the process is killed

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
    """X-Crier-Id of every message at the sink, with repeats."""
    ids = []
    for path in messages(sink):
        with open(path, "rb") as f:
            msg = email.message_from_bytes(f.read(), policy=email.policy.default)
        cid = msg.get("X-Crier-Id")
        ids.append(str(cid).strip() if cid is not None else None)
    return ids


def main():
    tmp = tempfile.mkdtemp(prefix="crier-crash-")
    db = harness.new_database("crash")
    sink = None
    first = None
    second = None
    env = {
        "CRIER_TRANSPORT": "live",
        "CRIER_SMTP_TLS": "off",
        "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>",
        "CRIER_LEASE_SECONDS": "3",
        "CRIER_WORKERS": "2",
        "CRIER_CLAIM_BATCH": "8",
    }
    try:
        sink = harness.SmtpSink(os.path.join(tmp, "sink"))
        env["CRIER_SMTP_URL"] = "smtp://127.0.0.1:%d" % sink.port
        first = harness.Crier(db, os.path.join(tmp, "first"), env=env)

        bodies = [harness.comm_body(i, message_type="welcome", urgency="critical")
                  for i in range(N)]
        keys = ["crash-%d" % i for i in range(N)]
        answers = [None] * N
        target = [first]
        lock = threading.Lock()

        def post(i):
            try:
                with lock:
                    c = target[0]
                st, _h, js = c.post_comm(bodies[i], key=keys[i])
            except Exception:  # the crash cuts the connection: post again later
                return
            if st == 202 and isinstance(js, dict):
                answers[i] = js["communication_id"]

        # Post in the background; kill once delivery is well under way.
        pool = concurrent.futures.ThreadPoolExecutor(POOL)
        futures = [pool.submit(post, i) for i in range(N)]
        try:
            harness.wait_until(lambda: len(messages(sink)) >= KILL_AT, 120, 0.02)
        except TimeoutError:
            pass
        at_kill = len(messages(sink))
        first.kill(signal.SIGKILL)
        answered_at_kill = sum(1 for a in answers if a)
        print("killed with %d messages at the sink, %d requests answered"
              % (at_kill, answered_at_kill), flush=True)
        check(at_kill >= KILL_AT, "delivery under way before the kill (%d at the sink)" % at_kill)
        concurrent.futures.wait(futures, timeout=120)
        pool.shutdown(wait=True)
        check(at_kill < N, "the kill came before the last delivery (%d at the sink)" % at_kill)

        second = harness.Crier(db, os.path.join(tmp, "second"), env=env)
        with lock:
            target[0] = second
        missing = [i for i in range(N) if not answers[i]]
        print("posting %d unanswered requests again" % len(missing), flush=True)
        with concurrent.futures.ThreadPoolExecutor(POOL) as ex:
            list(ex.map(post, missing))
        ids = [a for a in answers if a]
        check(len(ids) == N, "every request answered in the end (%d of %d)" % (len(ids), N))
        check(len(set(ids)) == N, "1000 distinct communication ids (%d)" % len(set(ids)))
        rows = int(harness.psql(db, "SELECT count(*) FROM communications")[0][0])
        check(rows == N, "one row per request, none doubled by the retry (%d rows)" % rows)

        # Every row, including one whose request was cut before its answer.
        try:
            harness.wait_until(lambda: len(set(crier_ids(sink)) & set(ids)) >= N, 300, 0.5)
        except TimeoutError:
            pass
        try:
            final = second.wait_final(ids, timeout=120)
        except TimeoutError as e:
            final = {}
            check(False, "every communication reached a final status: %s" % e)
        for cid in ids:
            if cid in final:
                check(final[cid].get("status") == "sent",
                      "%s ended %r, expected sent" % (cid, final[cid].get("status")))
        not_sent = harness.psql(db, "SELECT count(*) FROM communications WHERE status <> 'sent'")
        check(not_sent == [["0"]], "no row left unsent (%s)" % not_sent)

        time.sleep(1)
        received = crier_ids(sink)
        counts = collections.Counter(received)
        check(None not in counts, "every message carries X-Crier-Id")
        lost = [cid for cid in ids if counts.get(cid, 0) == 0]
        check(not lost, "none lost (%d never reached the sink, e.g. %s)" % (len(lost), lost[:3]))
        strays = [cid for cid in counts if cid is not None and cid not in set(ids)]
        check(not strays, "no message for an unknown communication (%s)" % strays[:3])
        twice = sum(1 for c in counts.values() if c >= 2)
        print("received %d messages for %d communications; %d received twice or more"
              % (len(received), len(counts), twice), flush=True)
    finally:
        for proc, what in ((first, "first crier"), (second, "second crier")):
            if proc is not None and proc.proc.poll() is None:
                try:
                    proc.stop()
                except Exception as e:
                    check(False, "%s stopped cleanly: %s" % (what, e))
        if sink is not None:
            sink.stop()
        harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
