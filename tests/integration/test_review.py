"""Failures that reach a person, and failures that arrive late.

* A message whose every channel fails (SMS refused as a bad number, then
  email refused 451 on every try) ends "failed" with one CRITICAL
  all_channels_failed log line, one "failed" callback, a metric, and sits in
  the review queue (GET /v1/communications?status=failed&review=open);
  POST .../retry, once the stub is fixed, decides again and delivers it;
  POST .../resolve closes another with a note; neither works twice.
* Bad filters, bodies and ids get a 4xx with a JSON error and change nothing.
* An SMS receipt "undelivered" after "sent" goes to the fallback rules like
  an answered failure: the message moves on to email and is sent there.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SECRET = "review-callback-secret-0123456789abcdef"
DOWN = "8101"      # the stub answers 21211 (not a valid number) for these
DOWN_TOO = "8102"
LATE = "8103"      # accepted, then "sent" and "undelivered" (30005: unknown handset)
LATER = "8104"     # the same with 30003 (unreachable for now): transient


def failing_body(i, suffix):
    """A critical error notification: SMS first, then email to an address
    the sink refuses 451 every time (one quick retry, then failed)."""
    return h.comm_body(i, phone="+1555%03d%s" % (i, suffix), email="fail451@r%d.example.com" % i,
                       consent={"sms": True, "whatsapp": False},
                       message_type="error_notification", urgency="critical")


def env(stub, sink, rx):
    return h.live_env(stub, sink, whatsapp=False, CRIER_WORKFLOW_CALLBACK_URL=rx.url,
                      CRIER_WORKFLOW_CALLBACK_SECRET=SECRET, CRIER_CALLBACK_RETRY_SECONDS="1",
                      CRIER_RATE_TWILIO="off")


def callbacks(rx, comm_id, kind):
    found = []
    for r in rx.requests():
        body = json.loads(h.callback_body(r))
        if body.get("communication_id") == comm_id and body.get("type") == kind:
            assert h.callback_signature_ok(r, SECRET), r
            found.append(body)
    return found


def listing(crier, query):
    status, _, js = crier.request("GET", "/v1/communications?" + query, token=h.TOKEN_ADMIN)
    assert status == 200, (query, status, js)
    return [c["communication_id"] for c in js["communications"]], js


def test_review_queue(tmp):
    db = h.new_database("review")
    stub_args = ["--recipient-mode", DOWN + "=error:21211",
                 "--recipient-mode", DOWN_TOO + "=error:21211"]
    with h.ProviderStub(os.path.join(tmp, "stub"), stub_args) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.CallbackReceiver(tmp) as rx, \
            h.Crier(db, os.path.join(tmp, "crier"), env=env(stub, sink, rx)) as crier:
        status, _, js = crier.post_comm(failing_body(1, DOWN))
        assert status == 202, (status, js)
        first = js["communication_id"]
        status, _, js = crier.post_comm(failing_body(2, DOWN_TOO))
        assert status == 202, (status, js)
        second = js["communication_id"]
        final = crier.wait_final([first, second], timeout=60)
        for cid in (first, second):
            assert final[cid]["status"] == "failed", final[cid]
            assert final[cid]["review"] == "open", final[cid]

        # one CRITICAL line each, naming the message
        lines = [e for e in h.log_events(crier.log(), "all_channels_failed")
                 if e.get("communication_id") == first]
        assert len(lines) == 1 and lines[0]["level"] == "CRITICAL", lines
        # one "failed" callback each, signed
        h.wait_until(lambda: len(callbacks(rx, first, "failed")) >= 1, 20,
                     what="the failed callback")
        got = callbacks(rx, first, "failed")
        assert len(got) == 1, got
        assert got[0]["channel"] == "email" and got[0]["message_type"] == "error_notification", got
        _, _, text = crier.request("GET", "/metrics", token=None)
        assert "\ncrier_all_channels_failed_total 2\n" in str(text), "the metric counts both"

        # the queue, filtered
        ids, _ = listing(crier, "status=failed&review=open")
        assert set(ids) == {first, second}, ids
        ids, _ = listing(crier, "review=open&message_type=error_notification&client_id="
                         + final[first]["client_id"])
        assert ids == [first], ids
        ids, _ = listing(crier, "review=open&since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z")
        assert ids == [], ids

        # refused: bad filters, ids, bodies; nothing changes
        for query in ("status=lost", "review=maybe", "plan_id=nope", "since=yesterday",
                      "limit=0", "message_type=digest"):
            status, _, js = crier.request("GET", "/v1/communications?" + query,
                                          token=h.TOKEN_ADMIN)
            assert status == 422 and "error" in js, (query, status, js)
        status, _, js = crier.request("POST", "/v1/communications/%s/resolve" % second,
                                      body={"note": 5}, token=h.TOKEN_ADMIN)
        assert status == 422, (status, js)
        status, _, js = crier.request("POST", "/v1/communications/%s/resolve" % second,
                                      body={"memo": "x"}, token=h.TOKEN_ADMIN)
        assert status == 422, (status, js)
        status, _, js = crier.request("POST", "/v1/communications/%s/retry"
                                      % "00000000-0000-4000-8000-000000000001",
                                      token=h.TOKEN_ADMIN)
        assert status == 404, (status, js)
        status, _, js = crier.request("POST", "/v1/communications/%s/retry" % first,
                                      token=h.TOKEN_WORKFLOW)
        assert status == 403, (status, js)
        assert crier.get_comm(second)[2]["review"] == "open"

        # fix the stub (SMS works again), then retry: a new chain that delivers
        assert stub.set_modes("success", {}) == 200
        status, _, js = crier.request("POST", "/v1/communications/%s/retry" % first,
                                      token=h.TOKEN_ADMIN)
        assert status == 202, (status, js)
        assert js["decision"]["primary_channel"] == "sms", js
        done = crier.wait_final([first], timeout=30)[first]
        assert done["status"] in ("sent", "delivered") and done["channel"] == "sms", done
        assert done["review"] == "retried", done
        status, _, js = crier.request("POST", "/v1/communications/%s/retry" % first,
                                      token=h.TOKEN_ADMIN)
        assert status == 409, (status, js)

        # resolve the other one with a note; it leaves the queue
        status, _, js = crier.request("POST", "/v1/communications/%s/resolve" % second,
                                      body={"note": "Called the client instead"},
                                      token=h.TOKEN_ADMIN)
        assert status == 200 and js["review"] == "resolved", (status, js)
        ids, _ = listing(crier, "review=open")
        assert ids == [], ids
        ids, js = listing(crier, "review=resolved")
        assert ids == [second] and js["communications"][0]["review_note"] == \
            "Called the client instead", js
        status, _, js = crier.request("POST", "/v1/communications/%s/resolve" % second,
                                      body={}, token=h.TOKEN_ADMIN)
        assert status == 409, (status, js)
        # still one CRITICAL line and one failed callback for the first
        lines = [e for e in h.log_events(crier.log(), "all_channels_failed")
                 if e.get("communication_id") == first]
        assert len(lines) == 1, lines
        assert len(callbacks(rx, first, "failed")) == 1


def test_undelivered_after_sent_moves_to_email(tmp):
    db = h.new_database("review_late")
    stub_args = ["--twilio-auth-token", h.STUB_AUTH_TOKEN,
                 "--recipient-mode", LATE + "=fail-later:30005",
                 "--recipient-mode", LATER + "=fail-later:30003"]
    with h.ProviderStub(os.path.join(tmp, "stub"), stub_args) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.CallbackReceiver(tmp) as rx, \
            h.Crier(db, os.path.join(tmp, "crier"), env=env(stub, sink, rx)) as crier:
        # permanent: straight to email; transient: the critical message's one
        # quick retry on SMS first, as for a failure answered at once
        for i, suffix, sms_sends in ((3, LATE, 1), (4, LATER, 2)):
            body = h.comm_body(i, phone="+1555%03d%s" % (i, suffix),
                               email="late@r%d.example.com" % i,
                               consent={"sms": True, "whatsapp": False},
                               message_type="error_notification", urgency="critical")
            status, _, js = crier.post_comm(body)
            assert status == 202, (status, js)
            cid = js["communication_id"]
            assert js["decision"]["primary_channel"] == "sms", js
            assert js["decision"]["fallback_channels"] == ["email"], js

            def on_email():
                c = crier.get_comm(cid)[2]
                return c["channel"] == "email" and c["status"] in ("sent", "delivered")
            h.wait_until(on_email, 30, what="the message moved on to email")
            events = h.psql(db, "SELECT event_type, channel FROM delivery_events"
                                " WHERE communication_id = :'c'::uuid ORDER BY id", c=cid)
            kinds = [tuple(e) for e in events]
            assert ("receipt", "sms") in kinds, kinds
            assert kinds[-1] == ("sent", "email"), kinds
            c = crier.get_comm(cid)[2]
            assert c["review"] is None, c
            sends = [r for r in stub.requests("twilio") if suffix in r.get("body", "")]
            assert len(sends) == sms_sends, (suffix, len(sends), kinds)
        sink.wait_for(2, timeout=10)


h.run([test_review_queue, test_undelivered_after_sent_moves_to_email])
