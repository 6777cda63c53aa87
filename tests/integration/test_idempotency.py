"""Idempotency-Key: a repeated request is answered as the first one was and
creates nothing; the same key with a different body is a conflict; keys
belong to one client; a burst of concurrent repeats creates one row."""
import concurrent.futures
import os
import shutil
import sys
import tempfile
import uuid

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


def count(db, sql, **params):
    return int(harness.psql(db, sql, **params)[0][0])


def main():
    tmp = tempfile.mkdtemp(prefix="crier-idem-")
    db = harness.new_database("idempotency")
    crier = None
    try:
        crier = harness.Crier(db, tmp)
        client_a = str(uuid.uuid4())
        plan = str(uuid.uuid4())
        first_body = harness.comm_body(1, client_id=client_a, plan_id=plan, urgency="low",
                                       message_type="welcome")

        # Same key, same body: same status, identical body, one row.
        s1, _h, a1 = crier.post_comm(first_body, key="order-1")
        check(s1 == 202 and isinstance(a1, dict), "first request accepted (%s %r)" % (s1, a1))
        s2, _h, a2 = crier.post_comm(first_body, key="order-1")
        check(s2 == s1, "repeat answered %s, first %s" % (s2, s1))
        check(a2 == a1, "repeat answered the identical body:\n%r\n%r" % (a1, a2))
        rows = count(db, "SELECT count(*) FROM communications WHERE client_id = :'c'", c=client_a)
        check(rows == 1, "one row for the key (%d)" % rows)
        s3, _h, a3 = crier.post_comm(first_body, key="order-1")
        check(s3 == s1 and a3 == a1, "a third repeat still matches (%s)" % s3)
        # A repeat reads the stored answer: no second acceptance event.
        created = count(db, "SELECT count(*) FROM delivery_events WHERE communication_id = :'id'"
                            " AND event_type IN ('queued', 'scheduled', 'skipped', 'batched')",
                        id=a1.get("communication_id", ""))
        check(created == 1, "one acceptance event for the key (%d)" % created)

        # Same key, different body: 409, nothing written.
        changed = dict(first_body, message_type="reminder")
        s4, _h, a4 = crier.post_comm(changed, key="order-1")
        check(s4 == 409, "same key with a different body answered %s (%r)" % (s4, a4))
        code = a4.get("error", {}).get("code") if isinstance(a4, dict) else None
        check(code == "idempotency_conflict", "conflict code %r" % code)
        rows = count(db, "SELECT count(*) FROM communications WHERE client_id = :'c'", c=client_a)
        check(rows == 1, "the conflict wrote nothing (%d rows)" % rows)
        # The key still answers its original request afterwards.
        s5, _h, a5 = crier.post_comm(first_body, key="order-1")
        check(s5 == s1 and a5 == a1, "after a conflict the key still replays (%s)" % s5)

        # Without a key, the same body makes a second communication.
        s6, _h, a6 = crier.post_comm(first_body)
        check(s6 == 202 and isinstance(a6, dict)
              and a6.get("communication_id") != a1.get("communication_id"),
              "no key: a new communication (%s %r)" % (s6, a6))

        # Keys are per client: client B may use "order-1" for its own request.
        client_b = str(uuid.uuid4())
        b_body = harness.comm_body(2, client_id=client_b, plan_id=plan, urgency="low",
                                   message_type="welcome")
        s7, _h, a7 = crier.post_comm(b_body, key="order-1")
        check(s7 == 202, "another client's same key accepted (%s %r)" % (s7, a7))
        check(isinstance(a7, dict) and a7.get("communication_id") != a1.get("communication_id"),
              "another client's same key made its own communication")
        rows = count(db, "SELECT count(*) FROM communications WHERE client_id = :'c'", c=client_b)
        check(rows == 1, "client B has its row (%d)" % rows)
        # ... and client B's key does not conflict with A's body either way.
        s8, _h, a8 = crier.post_comm(b_body, key="order-1")
        check(s8 == 202 and a8 == a7, "client B's repeat replays B's answer (%s)" % s8)

        # A burst of the same new request with one key, in parallel: every
        # answer is the same and only one row exists.
        c_body = harness.comm_body(3, urgency="low", message_type="welcome")
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            burst = list(ex.map(lambda _i: crier.post_comm(c_body, key="burst-1"), range(16)))
        statuses = sorted(set(st for st, _h, _a in burst))
        check(statuses == [202], "every concurrent repeat answered 202 (%s)" % statuses)
        bodies = [a for _s, _h, a in burst]
        check(all(b == bodies[0] for b in bodies), "every concurrent repeat got the same body")
        rows = count(db, "SELECT count(*) FROM communications WHERE client_id = :'c'",
                     c=c_body["client_id"])
        check(rows == 1, "the burst created one row (%d)" % rows)
    finally:
        if crier is not None:
            try:
                crier.stop()
            except Exception as e:
                check(False, "crier stopped cleanly: %s" % e)
        harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
