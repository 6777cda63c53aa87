"""A communication's callbacks and its message's preview, as the console's
page of it reads them:

* the callbacks it raised to the workflow are listed with their state,
  without their payloads;
* the preview is the message as the live templates render it on the
  channel it went by (the client's name in it, the footer's links
  placeholders), names the template version it was sent with, and is
  audited as a read of the client;
* an unknown id is 404, a malformed one 422, a workflow token 403, none
  401; none of them writes an audit entry.
"""
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def audits(db, action):
    return int(h.psql(db, "SELECT count(*) FROM audit_log WHERE action = :'a'", a=action)[0][0])


def test_callbacks_and_preview(tmp):
    db = h.new_database("comm_detail")
    with h.CallbackReceiver(os.path.join(tmp, "workflow")) as rx:
        env = {"CRIER_WORKFLOW_CALLBACK_URL": rx.url,
               "CRIER_WORKFLOW_CALLBACK_SECRET": "detail-test-callback-secret-0123"}
        with h.Crier(db, os.path.join(tmp, "crier"), env=env) as crier:
            body = h.comm_body(1, name="Wilhelmina Quarrendon", message_type="budget_summary")
            status, _, js = crier.post_comm(body)
            assert status == 202, js
            cid = js["communication_id"]
            crier.wait_final([cid])
            h.wait_until(lambda: rx.requests(), 20, what="a callback at the workflow")

            status, _, got = crier.request("GET", "/v1/communications/%s/callbacks" % cid,
                                           token=h.TOKEN_OPERATOR)
            assert status == 200, got
            events = [c["event_type"] for c in got["callbacks"]]
            assert "sent" in events, events
            assert all("payload" not in c for c in got["callbacks"]), got
            assert any(c["state"] == "delivered" for c in got["callbacks"]), got

            before = audits(db, "communication.preview")
            status, _, got = crier.request("GET", "/v1/communications/%s/preview" % cid,
                                           token=h.TOKEN_OPERATOR)
            assert status == 200, got
            assert got["channel"] == "email" and got["subject"], got
            assert "Wilhelmina Quarrendon" in got["text"] and "<html" in got["html"].lower(), got
            sent_with = h.psql(db, "SELECT template_version FROM communications WHERE id = :'i'",
                               i=cid)[0][0]
            assert got["template_version_sent"] == sent_with and sent_with, (got, sent_with)
            assert audits(db, "communication.preview") == before + 1

            # refusals change nothing
            for path, token, want in [
                    ("/v1/communications/%s/preview" % uuid.uuid4(), h.TOKEN_OPERATOR, 404),
                    ("/v1/communications/%s/callbacks" % uuid.uuid4(), h.TOKEN_OPERATOR, 404),
                    ("/v1/communications/not-an-id/preview", h.TOKEN_OPERATOR, 422),
                    ("/v1/communications/%s/preview" % cid, h.TOKEN_WORKFLOW, 403),
                    ("/v1/communications/%s/callbacks" % cid, None, 401)]:
                status, _, got = crier.request("GET", path, token=token)
                assert status == want and "error" in got, (path, status, got)
            assert audits(db, "communication.preview") == before + 1


h.run([test_callbacks_and_preview])
