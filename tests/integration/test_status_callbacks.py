"""Status callbacks (docs/callbacks.md): every status a communication
reaches that the workflow acts on becomes one signed callback with the
plan, client, communication, type, channel, an event id and a sequence
number that orders them; CRIER_CALLBACK_EVENTS picks which are sent.

Runs the real binary with the sandbox transports against PostgreSQL; the
receiver (tests/support/callback_receiver.py) records the requests and the
signatures are recomputed here from the documented scheme.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SECRET = "status-cb-secret-0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def events_of(rx):
    out = []
    for req in rx.requests():
        assert h.callback_signature_ok(req, SECRET), "bad signature: %r" % req["headers"]
        body = json.loads(h.callback_body(req))
        assert req["headers"].get("x-crier-event") == body["type"], (req["headers"], body)
        assert req["headers"].get("x-crier-callback-id") == body["event_id"], body
        out.append(body)
    return out


def env_for(rx, **extra):
    env = {"CRIER_WORKFLOW_CALLBACK_URL": rx.url, "CRIER_WORKFLOW_CALLBACK_SECRET": SECRET,
           "CRIER_CALLBACK_RETRY_SECONDS": "1"}
    env.update(extra)
    return env


def test_sent_and_delivered(tmp):
    db = h.new_database("scb_all")
    with h.CallbackReceiver(tmp) as rx, h.Crier(db, tmp, env=env_for(rx)) as crier:
        bodies = [h.comm_body(i) for i in range(3)]
        ids = []
        for b in bodies:
            status, _, js = crier.post_comm(b)
            assert status == 202, (status, js)
            ids.append(js["communication_id"])
        h.wait_until(lambda: len(events_of(rx)) >= 2 * len(ids), 20,
                     what="sent and delivered of every message")
        time.sleep(0.5)  # a duplicate would show now
        evs = events_of(rx)
        assert len(evs) == 2 * len(ids), evs
        assert len(set(e["event_id"] for e in evs)) == len(evs), "an event id repeats"
        for cid, b in zip(ids, bodies):
            mine = sorted((e for e in evs if e["communication_id"] == cid),
                          key=lambda e: e["seq"])
            assert [e["type"] for e in mine] == ["sent", "delivered"], mine
            for e in mine:
                assert e["plan_id"] == b["plan_id"] and e["client_id"] == b["client_id"], e
                assert e["message_type"] == "welcome" and e["channel"] == "email", e
                assert e["status"] == e["type"], e
                assert h.re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["at"]), e
            assert mine[0]["seq"] < mine[1]["seq"], mine
        # no client text travels in a status event, and none stays
        kept = h.psql(db, "SELECT payload::text FROM workflow_callbacks")
        assert all("Test Client" not in r[0] and "@example.com" not in r[0] for r in kept), kept


def test_only_configured_events(tmp):
    """Only the configured events are written; a skip says why."""
    db = h.new_database("scb_some")
    with h.CallbackReceiver(tmp) as rx:
        with h.Crier(db, tmp, env=env_for(rx, CRIER_CALLBACK_EVENTS="skipped,failed")) as crier:
            first = h.comm_body(1)
            status, _, js = crier.post_comm(first)
            assert status == 202, js
            ok_id = js["communication_id"]
            crier.wait_final([ok_id], 20)
            # the client turns email off and has no other channel: skipped
            status, _, js = crier.request("PUT", "/v1/clients/%s/preferences" % first["client_id"],
                                          {"opt_out_email": True})
            assert status == 200, (status, js)
            again = h.comm_body(1, client_id=first["client_id"], plan_id=first["plan_id"])
            status, _, js = crier.post_comm(again)
            assert status == 202 and js["status"] == "skipped", js
            skip_id = js["communication_id"]
            h.wait_until(lambda: len(events_of(rx)) >= 1, 15, what="the skipped callback")
            time.sleep(1.0)  # anything unwanted would show now
            evs = events_of(rx)
            # the preference change's own confirmation has no channel left either
            assert all(e["type"] == "skipped" for e in evs), evs
            mine = [e for e in evs if e["communication_id"] == skip_id]
            assert [(e["skip_reason"], e["message_type"]) for e in mine] == \
                [("opt_out", "welcome")], evs
            n = h.psql(db, "SELECT count(*) FROM workflow_callbacks WHERE event_type IN"
                           " ('sent', 'delivered')")
            assert n == [["0"]], n


def test_no_url_writes_no_status_rows(tmp):
    db = h.new_database("scb_nourl")
    with h.Crier(db, tmp) as crier:
        status, _, js = crier.post_comm(h.comm_body(1))
        assert status == 202, js
        crier.wait_final([js["communication_id"]], 20)
        n = h.psql(db, "SELECT count(*) FROM workflow_callbacks")
        assert n == [["0"]], n


def test_bad_setting_refused(tmp):
    db = h.new_database("scb_bad")
    env = h.base_env({"CRIER_DATABASE_URL": db, "CRIER_API_TOKENS": "workflow:x",
                      "CRIER_ENCRYPTION_KEY": h.ENCRYPTION_KEY,
                      "CRIER_CALLBACK_EVENTS": "sent,deliverd",
                      "CRIER_LISTEN": "127.0.0.1:%d" % h.free_port()})
    r = h.subprocess.run([h.crier_bin(), "serve"], env=env, capture_output=True, text=True,
                         timeout=30)
    assert r.returncode != 0, r
    out = r.stdout + r.stderr
    assert "CRIER_CALLBACK_EVENTS" in out and "deliverd" in out, out[-500:]


h.run([test_sent_and_delivered, test_only_configured_events, test_no_url_writes_no_status_rows,
       test_bad_setting_refused])
