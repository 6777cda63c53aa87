"""Workflow callbacks: rows of workflow_callbacks reach a local receiver as
signed POSTs, are retried on 5xx, given up on a 4xx, and survive `kill -9`.

Rows are inserted with psql, as the webhook side does. The receiver
(tests/support/callback_receiver.py) only records requests; the signature is
recomputed here from the documented scheme (docs/callbacks.md):
    X-Crier-Signature: sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))
"""
import json
import os
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SECRET = "cb-test-secret-5f0e1d2c3b4a59687766554433221100"


def insert(db, payload, event_type="client_reply"):
    cid = str(uuid.uuid4())
    h.psql(db, "INSERT INTO workflow_callbacks (id, event_type, payload)"
               " VALUES (:'id'::uuid, :'ev', :'p'::jsonb)",
           id=cid, ev=event_type, p=json.dumps(payload))
    return cid


def row(db, cid):
    r = h.psql(db, "SELECT state, attempts, coalesce(last_error, ''), payload::text"
                   " FROM workflow_callbacks WHERE id = :'id'::uuid", id=cid)
    return r[0]


def states(db):
    return dict((s, int(n)) for s, n in
                h.psql(db, "SELECT state, count(*) FROM workflow_callbacks GROUP BY state"))


def crier_env(receiver, **extra):
    env = {"CRIER_WORKFLOW_CALLBACK_URL": receiver.url,
           "CRIER_WORKFLOW_CALLBACK_SECRET": SECRET,
           "CRIER_CALLBACK_RETRY_SECONDS": "1",
           "CRIER_WORKERS": "1"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def assert_secret_not_logged(crier):
    assert SECRET not in crier.log(), "the callback secret appears in the crier log"


def test_signed_and_identical(tmp):
    db = h.new_database("cb_signed")
    payloads = [{"type": "client_reply", "channel": "whatsapp", "n": i,
                 "text": "Yes, Saturday works \u2014 caf\u00e9 at 3? \U0001f389 #%d" % i,
                 "plan_id": str(uuid.uuid4())} for i in range(5)]
    ids = [insert(db, p) for p in payloads]
    with h.CallbackReceiver(tmp, path="/crier/callback") as rx:
        with h.Crier(db, tmp, env=crier_env(rx)) as crier:
            # one more after start: picked up by the poll, not only at start-up
            payloads.append({"type": "client_reply", "text": "late", "n": 5})
            ids.append(insert(db, payloads[-1]))
            h.wait_until(lambda: states(db).get("delivered") == len(ids), 15,
                         what="every callback delivered")
            time.sleep(0.5)  # a duplicate would show up now
            reqs = rx.requests()
            assert len(reqs) == len(ids), "expected %d requests, got %d" % (len(ids), len(reqs))
            by_id = {}
            now = time.time()
            for req in reqs:
                hd = req["headers"]
                assert req["path"] == "/crier/callback", req["path"]
                assert hd.get("content-type") == "application/json", hd
                assert h.callback_signature_ok(req, SECRET), "bad signature: %r" % hd
                assert not h.callback_signature_ok(req, SECRET + "x"), "signature ignores the secret"
                assert abs(int(hd["x-crier-timestamp"]) - now) < 60, hd["x-crier-timestamp"]
                assert hd.get("x-crier-event") == "client_reply", hd
                by_id.setdefault(hd["x-crier-callback-id"], []).append(req)
            assert sorted(by_id) == sorted(ids), (sorted(by_id), sorted(ids))
            for cid, p in zip(ids, payloads):
                state, attempts, _, stored = row(db, cid)
                assert (state, attempts) == ("delivered", "1"), (state, attempts)
                got = h.callback_body(by_id[cid][0])
                # the body is the payload as PostgreSQL prints it, byte for
                # byte, after the event id and sequence number crier puts first
                printed = h.psql(db, "SELECT :'p'::jsonb::text", p=json.dumps(p))[0][0]
                seq = h.psql(db, "SELECT seq FROM workflow_callbacks WHERE id = :'id'::uuid",
                             id=cid)[0][0]
                head = '{"event_id": "%s", "seq": %s, ' % (cid, seq)
                assert got == (head + printed[1:]).encode("utf-8"), (got, printed)
                assert json.loads(got) == dict(p, event_id=cid, seq=int(seq))
                # once delivered, the row keeps the event and its ids, not the words
                assert json.loads(stored) == {k: v for k, v in p.items()
                                              if k in ("type", "channel", "plan_id")}, stored
            d = h.psql(db, "SELECT count(*) FROM workflow_callbacks WHERE delivered_at IS NULL"
                           " OR lease_until IS NOT NULL")
            assert d == [["0"]], d
            assert_secret_not_logged(crier)


def test_retried_after_5xx(tmp):
    db = h.new_database("cb_retry")
    cid = insert(db, {"type": "client_reply", "text": "retry me"})
    with h.CallbackReceiver(tmp, ("--fail-first", "2", "--fail-status", "500")) as rx:
        with h.Crier(db, tmp, env=crier_env(rx)) as crier:
            h.wait_until(lambda: row(db, cid)[0] == "delivered", 20, what="delivered after 500s")
            state, attempts, last_error, _ = row(db, cid)
            assert attempts == "3", attempts
            assert last_error == "", last_error
            reqs = rx.requests()
            assert [r["status"] for r in reqs] == [500, 500, 200], [r["status"] for r in reqs]
            assert all(h.callback_signature_ok(r, SECRET) for r in reqs)
            # the retry waited the configured second, not less
            gaps = [b["received_at"] - a["received_at"] for a, b in zip(reqs, reqs[1:])]
            assert all(g >= 0.9 for g in gaps), gaps
            assert_secret_not_logged(crier)


def test_4xx_is_permanent(tmp):
    db = h.new_database("cb_4xx")
    bad = insert(db, {"type": "client_reply", "text": "refused"})
    with h.CallbackReceiver(tmp, ("--status", "400")) as rx:
        with h.Crier(db, tmp, env=crier_env(rx)) as crier:
            h.wait_until(lambda: row(db, bad)[0] == "failed", 15, what="failed after 400")
            time.sleep(2.5)  # well past the 1 s retry delay: no second attempt
            state, attempts, last_error, _ = row(db, bad)
            assert (state, attempts) == ("failed", "1"), (state, attempts)
            assert last_error.startswith("HTTP 400"), last_error
            assert len(rx.requests()) == 1, len(rx.requests())
            assert_secret_not_logged(crier)


def test_429_and_max_attempts(tmp):
    db = h.new_database("cb_429")
    cid = insert(db, {"type": "client_reply", "text": "rate limited"})
    with h.CallbackReceiver(tmp, ("--status", "429")) as rx:
        env = crier_env(rx, CRIER_CALLBACK_MAX_ATTEMPTS=3)
        with h.Crier(db, tmp, env=env):
            h.wait_until(lambda: row(db, cid)[0] == "failed", 20, what="failed after 3 x 429")
            time.sleep(1.5)
            state, attempts, last_error, _ = row(db, cid)
            assert attempts == "3", attempts
            assert last_error.startswith("HTTP 429"), last_error
            assert len(rx.requests()) == 3, len(rx.requests())


def test_unreadable_body_fails(tmp):
    # A body that does not decrypt (a damaged row, another key) is never sent:
    # the row fails at once, since no retry could make it readable.
    db = h.new_database("cb_unreadable")
    cid = str(uuid.uuid4())
    h.psql(db, "INSERT INTO workflow_callbacks (id, event_type, payload, payload_enc)"
               " VALUES (:'id'::uuid, 'client_reply', '{\"type\": \"client_reply\"}',"
               " 'v2.00000000.' || repeat('A', 40))", id=cid)
    ok = insert(db, {"type": "client_reply", "text": "readable"})
    with h.CallbackReceiver(tmp) as rx:
        with h.Crier(db, tmp, env=crier_env(rx)) as crier:
            h.wait_until(lambda: row(db, cid)[0] == "failed" and row(db, ok)[0] == "delivered",
                         15, what="the unreadable row failed, the other delivered")
            state, attempts, last_error, _ = row(db, cid)
            assert (state, attempts) == ("failed", "1"), (state, attempts)
            assert "cannot be decrypted" in last_error, last_error
            reqs = rx.requests()
            assert [r["headers"]["x-crier-callback-id"] for r in reqs] == [ok], reqs
            assert_secret_not_logged(crier)


def test_unconfigured_keeps_rows(tmp):
    db = h.new_database("cb_idle")
    cid = insert(db, {"type": "client_reply", "text": "wait for me"})
    with h.Crier(db, tmp) as crier:
        h.wait_until(lambda: "CRIER_WORKFLOW_CALLBACK_URL is not set" in crier.log(), 10,
                     what="the idle message")
        time.sleep(1.0)
        state, attempts, _, _ = row(db, cid)
        assert (state, attempts) == ("pending", "0"), (state, attempts)
        assert crier.log().count("CRIER_WORKFLOW_CALLBACK_URL is not set") == 1


def test_kill_and_restart(tmp):
    db = h.new_database("cb_kill")
    n = 120
    ids = set(insert(db, {"type": "client_reply", "n": i}) for i in range(n))
    # every answer takes 30 ms, so the run lasts seconds and the kill lands in it
    with h.CallbackReceiver(tmp, ("--delay", "0.03")) as rx:
        env = crier_env(rx, CRIER_LEASE_SECONDS=2, CRIER_CALLBACK_TIMEOUT_MS=1000)
        first = h.Crier(db, os.path.join(tmp, "first"), env=env)
        try:
            h.wait_until(lambda: len(rx.requests()) >= 30, 20, what="30 callbacks")
        finally:
            first.kill(signal.SIGKILL)
        before = states(db)
        assert before.get("delivered", 0) < n, before
        with h.Crier(db, os.path.join(tmp, "second"), env=env) as second:
            h.wait_until(lambda: states(db).get("delivered") == n, 60,
                         what="every callback delivered after the restart")
            seen = [r["headers"]["x-crier-callback-id"] for r in rx.requests()]
            assert set(seen) == ids, "missing %d" % len(ids - set(seen))
            assert all(h.callback_signature_ok(r, SECRET) for r in rx.requests())
            print("after kill -9: %d requests for %d callbacks (%d repeated)"
                  % (len(seen), n, len(seen) - n))
            assert_secret_not_logged(second)
        assert SECRET not in first.log()


h.run([test_signed_and_identical, test_retried_after_5xx, test_4xx_is_permanent,
       test_429_and_max_attempts, test_unreadable_body_fails, test_unconfigured_keeps_rows,
       test_kill_and_restart])
