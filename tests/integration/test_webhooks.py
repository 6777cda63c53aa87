"""Provider webhooks against the real binary and PostgreSQL: signatures
(the reference vectors accepted, each with one byte changed refused with 403
and nothing written), receipts moving communications forward only,
STOP/START/HELP, and WhatsApp replies opening the 24-hour window."""
import json
import os
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

sys.path.insert(0, os.path.join(h.source_dir(), "tests", "support"))
from provider_stub import meta_signature, twilio_signature  # noqa: E402

# Reference vectors (provider reference, Twilio signature and Meta signature).
TW_TOKEN = "12345"
TW_SDK_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TW_SDK_PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"),
                 ("Digits", "1234"), ("From", "+14158675309"), ("To", "+18005551212")]
TW_SDK_SIG = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
TW_STATUS_BODY = ("AccountSid=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx&ApiVersion=2010-04-01"
                  "&ErrorCode=30003&From=%2B15017250604"
                  "&MessageSid=SM1342fe1b2c904d1ab04f0fc7a58abca9&MessageStatus=undelivered"
                  "&SmsSid=SM1342fe1b2c904d1ab04f0fc7a58abca9&SmsStatus=undelivered"
                  "&To=%2B15558675310")
TW_STATUS_URL = "https://example.com/twilio/status"
TW_STATUS_SIG = "LEKRlRV7sz2WwWGqQMZYL9InZSc="
META_SECRET = "1222e786b144d0e85b9f365372d93676"
META_BODY = (b'{"object":"whatsapp_business_account","entry":[{"id":"264937493375603","changes":'
             b'[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":'
             b'"15550953877","phone_number_id":"277321005464405"},"contacts":[{"profile":'
             b'{"name":"PyWa Tests"},"wa_id":"972544401243"}],"messages":[{"from":"972544401243",'
             b'"id":"wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA",'
             b'"timestamp":"1730231903","text":{"body":"Hey there! I am using PyWa."},"type":"text"}]},'
             b'"field":"messages"}]}]}')
META_SIG = "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"
VERIFY_TOKEN = "verify-token-for-tests-0123"

PUBLIC = "https://example.com"
FORM = "application/x-www-form-urlencoded"


def env(**extra):
    e = {"TWILIO_AUTH_TOKEN": TW_TOKEN, "WHATSAPP_APP_SECRET": META_SECRET,
         "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN, "CRIER_PUBLIC_URL": PUBLIC}
    e.update(extra)
    return e


def flip(data, index):
    """data with the byte at index changed (to another printable byte)."""
    b = bytearray(data)
    b[index] = ord("A") if b[index] != ord("A") else ord("B")
    return bytes(b)


def counts(db):
    return h.psql(db, "SELECT (SELECT count(*) FROM delivery_events),"
                      " (SELECT count(*) FROM inbound_messages),"
                      " (SELECT count(*) FROM unmatched_receipts),"
                      " (SELECT count(*) FROM workflow_callbacks),"
                      " (SELECT count(*) FROM communications WHERE updated_at > created_at)")[0]


def post_twilio(crier, path, params, token=TW_TOKEN, sig=None, raw=None):
    body = raw if raw is not None else urllib.parse.urlencode(params).encode("ascii")
    if sig is None:
        sig = twilio_signature(token, PUBLIC + path, params)
    return crier.request("POST", path, raw=body, token=None,
                         headers={"Content-Type": FORM, "X-Twilio-Signature": sig})


def post_meta(crier, body, sig=None):
    return crier.request("POST", "/webhooks/whatsapp", raw=body, token=None,
                         headers={"Content-Type": "application/json",
                                  "X-Hub-Signature-256": sig or meta_signature(META_SECRET, body)})


def new_client(crier, phone, i=1, consent_sms=True):
    """Creates a client (with a first communication) through the API."""
    body = h.comm_body(i, phone=phone, consent={"sms": consent_sms, "whatsapp": True})
    status, _, resp = crier.post_comm(body)
    assert status == 202, resp
    return body["client_id"], resp["communication_id"]


def test_signature_vectors(tmp):
    # our signing helpers reproduce the reference vectors exactly ...
    assert twilio_signature(TW_TOKEN, TW_SDK_URL, TW_SDK_PARAMS) == TW_SDK_SIG
    status_params = urllib.parse.parse_qsl(TW_STATUS_BODY, keep_blank_values=True)
    assert twilio_signature(TW_TOKEN, TW_STATUS_URL, status_params) == TW_STATUS_SIG
    assert meta_signature(META_SECRET, META_BODY) == META_SIG
    db = h.new_database("wh_sig")
    with h.Crier(db, tmp, env=env()) as crier:
        # ... and the live endpoints accept them (Twilio signs our own URL)
        before = counts(db)
        raw = TW_STATUS_BODY.encode("ascii")
        sig = twilio_signature(TW_TOKEN, PUBLIC + "/webhooks/twilio/status", status_params)
        status, hdrs, body = post_twilio(crier, "/webhooks/twilio/status", status_params, raw=raw,
                                         sig=sig)
        assert status == 200, body
        assert hdrs["content-type"].startswith("text/xml"), hdrs
        assert "<Response" in body, body
        # an unknown message id is kept aside, not refused
        assert h.psql(db, "SELECT provider, provider_message_id, provider_status, provider_code"
                          " FROM unmatched_receipts") == [
            ["twilio", "SM1342fe1b2c904d1ab04f0fc7a58abca9", "undelivered", "30003"]]
        status, _, body = post_twilio(crier, "/webhooks/twilio/inbound", TW_SDK_PARAMS)
        assert status == 200, body
        status, hdrs, body = post_meta(crier, META_BODY, META_SIG)
        assert status == 200, body
        assert h.psql(db, "SELECT channel, provider_message_id FROM inbound_messages") == [
            ["whatsapp", "wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA"]]
        # the handshake answers the challenge as plain text
        status, hdrs, body = crier.request(
            "GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=%s"
            "&hub.challenge=1158201444" % VERIFY_TOKEN, token=None)
        assert status == 200 and body in (1158201444, "1158201444"), (status, body)
        assert hdrs["content-type"].startswith("text/plain"), hdrs
        after_ok = counts(db)
        assert after_ok != before

        # one byte changed anywhere refuses the request, and nothing is written
        refused = []
        for i in (0, len(raw) // 2, len(raw) - 1):
            refused.append(post_twilio(crier, "/webhooks/twilio/status", None,
                                       raw=flip(raw, i), sig=sig))
        for i in (0, 10, len(sig) - 2):
            refused.append(post_twilio(crier, "/webhooks/twilio/status", None, raw=raw,
                                       sig=flip(sig.encode(), i).decode()))
        refused.append(post_twilio(crier, "/webhooks/twilio/status", None, raw=raw, sig=""))
        for i in (0, len(META_BODY) // 2, len(META_BODY) - 1):
            refused.append(post_meta(crier, flip(META_BODY, i), META_SIG))
        for i in (7, 30, len(META_SIG) - 1):
            refused.append(post_meta(crier, META_BODY, flip(META_SIG.encode(), i).decode()))
        refused.append(crier.request(
            "GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=%s"
            "&hub.challenge=1158201444" % flip(VERIFY_TOKEN.encode(), 3).decode(), token=None))
        for status, hdrs, body in refused:
            assert status == 403, (status, body)
            assert body["error"]["code"] == "invalid_signature", body
        assert counts(db) == after_ok
        # Twilio posts forms; JSON there (or a form to the JSON API) is refused as before
        status, _, _ = crier.request("POST", "/webhooks/twilio/status", body={"a": 1}, token=None)
        assert status == 415
        time.sleep(0.2)
        log = crier.log()
        assert log.count('"signature_refused"') >= len(refused), log[-2000:]
        assert '"provider":"twilio"' in log and '"provider":"whatsapp"' in log
        for secret in (META_SECRET, VERIFY_TOKEN, sig, META_SIG[7:]):
            assert secret not in log, "a secret or signature reached the log"


def test_unconfigured(tmp):
    db = h.new_database("wh_unconf")
    with h.Crier(db, tmp, env={"CRIER_PUBLIC_URL": PUBLIC}) as crier:
        before = counts(db)
        status, _, body = post_twilio(crier, "/webhooks/twilio/inbound", TW_SDK_PARAMS)
        assert status == 503 and body["error"]["code"] == "webhook_unconfigured", body
        status, _, body = post_meta(crier, META_BODY, META_SIG)
        assert status == 503 and body["error"]["code"] == "webhook_unconfigured", body
        status, _, body = crier.request(
            "GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1",
            token=None)
        assert status == 503 and body["error"]["code"] == "webhook_unconfigured", body
        assert counts(db) == before


def receipt(sid, status, code=None):
    p = [("AccountSid", "AC" + "0" * 32), ("ApiVersion", "2010-04-01"), ("From", "+15017250604"),
         ("MessageSid", sid), ("MessageStatus", status), ("SmsSid", sid), ("SmsStatus", status),
         ("To", "+15558675310")]
    if code is not None:
        p.append(("ErrorCode", str(code)))
    return p


def comm_row(db, cid):
    return h.psql(db, "SELECT status, provider_code, coalesce(error_category, ''),"
                      " delivered_at IS NOT NULL FROM communications WHERE id = :'id'", id=cid)[0]


def events(db, cid):
    return h.psql(db, "SELECT event_type, delivery_status FROM delivery_events"
                      " WHERE communication_id = :'id' AND event_type LIKE 'receipt%' ORDER BY id",
                  id=cid)


def simulate_sms_send(crier, db, comm_id, sid):
    """SMS sending is not wired to this test: the communication is finished
    by the engine (email), then given an SMS provider id as a send would."""
    crier.wait_final([comm_id])
    h.psql(db, "UPDATE communications SET status = 'sent', channel = 'sms',"
               " provider_message_id = :'sid' WHERE id = :'id'", sid=sid, id=comm_id)


def test_receipts_forward_only(tmp):
    db = h.new_database("wh_rcpt")
    with h.Crier(db, tmp, env=env()) as crier:
        _, cid = new_client(crier, "+15558675310")
        sid = "SM" + uuid.uuid4().hex
        simulate_sms_send(crier, db, cid, sid)
        path = "/webhooks/twilio/status"
        for st in ("sent", "delivered", "sent", "delivered", "undelivered"):
            status, _, body = post_twilio(crier, path, receipt(sid, st, 30003 if st == "undelivered" else None))
            assert status == 200, body
        row = comm_row(db, cid)
        assert row[0] == "delivered" and row[3] == "t", row
        assert row[1] == "", row  # the late failure changed nothing
        assert events(db, cid) == [["receipt_duplicate", "sent"], ["receipt", "delivered"],
                                   ["receipt_stale", "sent"], ["receipt_duplicate", "delivered"],
                                   ["receipt_stale", "failed"]], events(db, cid)

        # a failure over 'sent' goes back to the fallback rules with the
        # provider's code and its class (30003, transient: a retry later)
        _, cid2 = new_client(crier, "+15558675399", i=2)
        sid2 = "SM" + uuid.uuid4().hex
        simulate_sms_send(crier, db, cid2, sid2)
        status, _, body = post_twilio(crier, path, receipt(sid2, "undelivered", 30003))
        assert status == 200, body
        assert events(db, cid2)[-1] == ["receipt", "failed"], events(db, cid2)
        h.wait_until(lambda: h.psql(db, "SELECT status, provider_code, error_category,"
                                        " receipt_failure FROM communications WHERE id = :'id'",
                                    id=cid2) == [["queued", "30003", "transient", "f"]],
                     20, what="the rules' retry of the failed SMS")
        # the failed send's id is let go: a later receipt for it moves nothing
        status, _, body = post_twilio(crier, path, receipt(sid2, "delivered"))
        assert status == 200, body
        assert comm_row(db, cid2)[0] == "queued", comm_row(db, cid2)
        assert h.psql(db, "SELECT count(*) FROM unmatched_receipts"
                          " WHERE provider_message_id = :'s'", s=sid2) == [["1"]]

        # an unknown id answers 200 (no retries for days) and is kept aside
        status, _, body = post_twilio(crier, path, receipt("SM" + "f" * 32, "delivered"))
        assert status == 200, body
        assert h.psql(db, "SELECT count(*) FROM unmatched_receipts"
                          " WHERE provider_message_id = :'s'", s="SM" + "f" * 32) == [["1"]]

        # the API shows the receipts
        status, _, comm = crier.get_comm(cid)
        assert status == 200 and comm["status"] == "delivered", comm


def inbound(sid, body, phone):
    return [("AccountSid", "AC" + "0" * 32), ("ApiVersion", "2010-04-01"), ("Body", body),
            ("From", phone), ("MessageSid", sid), ("NumMedia", "0"), ("SmsMessageSid", sid),
            ("SmsSid", sid), ("SmsStatus", "received"), ("To", "+15017250604")]


def opt_out_sms(db, client_id):
    return h.psql(db, "SELECT opt_out_sms FROM client_preferences WHERE client_id = :'c'",
                  c=client_id)[0][0]


def test_stop_start_help(tmp):
    db = h.new_database("wh_stop")
    with h.Crier(db, tmp, env=env()) as crier:
        phone = "+15558675310"
        client_id, _ = new_client(crier, phone)
        assert opt_out_sms(db, client_id) == "f"
        path = "/webhooks/twilio/inbound"
        started = time.monotonic()
        status, hdrs, body = post_twilio(crier, path, inbound("SM" + uuid.uuid4().hex, " stop ", phone))
        assert status == 200 and hdrs["content-type"].startswith("text/xml"), (status, body)
        h.wait_until(lambda: opt_out_sms(db, client_id) == "t", timeout=1.0, interval=0.05,
                     what="opt_out_sms after STOP")
        assert time.monotonic() - started < 1.0
        assert h.psql(db, "SELECT keyword, client_id FROM inbound_messages") == [["STOP", client_id]]

        status, _, body = post_twilio(crier, path, inbound("SM" + uuid.uuid4().hex, "START", phone))
        assert status == 200, body
        assert opt_out_sms(db, client_id) == "f"

        status, _, body = post_twilio(crier, path, inbound("SM" + uuid.uuid4().hex, "help", phone))
        assert status == 200 and "<Message>" in body and "STOP" in body, body
        assert opt_out_sms(db, client_id) == "f"
        # keywords are ours to handle: none of them reached the workflow
        assert h.psql(db, "SELECT count(*) FROM workflow_callbacks") == [["0"]]

        # a sentence with a keyword in it is a reply, not an opt-out
        sid = "SM" + uuid.uuid4().hex
        status, _, body = post_twilio(crier, path, inbound(sid, "Stop by at noon?", phone))
        assert status == 200, body
        assert opt_out_sms(db, client_id) == "f"
        rows = h.psql(db, "SELECT event_type, payload->>'client_id', payload->>'channel',"
                          " payload ? 'text', payload->>'provider_message_id',"
                          " payload_enc LIKE 'v2.%', strpos(payload_enc, 'noon') = 0"
                          " FROM workflow_callbacks")
        assert rows == [["client_reply", client_id, "sms", "f", sid, "t", "t"]], rows
        # the text is stored encrypted (bound to its row), never in clear
        assert h.psql(db, "SELECT count(*) FROM inbound_messages WHERE body_enc LIKE 'v2.%'"
                          " AND strpos(body_enc, 'noon') = 0"
                          " AND provider_message_id = :'s'", s=sid) == [["1"]]
        # a redelivery changes nothing
        status, _, body = post_twilio(crier, path, inbound(sid, "Stop by at noon?", phone))
        assert status == 200, body
        assert h.psql(db, "SELECT count(*) FROM workflow_callbacks") == [["1"]]
        assert h.psql(db, "SELECT count(*) FROM inbound_messages") == [["4"]]


def wa_payload(messages=None, statuses=None):
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550953877", "phone_number_id": "277321005464405"}}
    if messages:
        value["messages"] = messages
        value["contacts"] = [{"profile": {"name": "X"}, "wa_id": messages[0]["from"]}]
    if statuses:
        value["statuses"] = statuses
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}
                      ).encode("utf-8")


def test_whatsapp_reply_and_statuses(tmp):
    db = h.new_database("wh_wa")
    with h.Crier(db, tmp, env=env()) as crier:
        client_id, cid = new_client(crier, "+15558675311")
        assert h.psql(db, "SELECT whatsapp_window_until IS NULL FROM clients WHERE id = :'c'",
                      c=client_id) == [["t"]]
        wamid = "wamid." + uuid.uuid4().hex
        crier.wait_final([cid])
        h.psql(db, "UPDATE communications SET status = 'sent', channel = 'whatsapp',"
                   " provider_message_id = :'w' WHERE id = :'id'", w=wamid, id=cid)
        now = int(time.time())
        msg = {"from": "15558675311", "id": "wamid.in" + uuid.uuid4().hex, "timestamp": str(now),
               "type": "text", "text": {"body": "Sounds great, thanks!"},
               "context": {"from": "15550953877", "id": wamid}}
        statuses = [{"id": wamid, "status": s, "timestamp": str(now), "recipient_id": "15558675311"}
                    for s in ("read", "delivered")]
        status, _, body = post_meta(crier, wa_payload(messages=[msg], statuses=statuses))
        assert status == 200, body
        # read arrived before delivered: the row is opened and stays so
        row = h.psql(db, "SELECT status, delivered_at IS NOT NULL, opened_at IS NOT NULL"
                         " FROM communications WHERE id = :'id'", id=cid)
        assert row == [["opened", "t", "t"]], row
        assert [e[0] for e in events(db, cid)] == ["receipt", "receipt_stale"], events(db, cid)
        rows = h.psql(db, "SELECT channel, client_id, communication_id, keyword IS NULL"
                          " FROM inbound_messages")
        assert rows == [["whatsapp", client_id, cid, "t"]], rows
        # the reply's words are only in the encrypted body (docs/callbacks.md)
        rows = h.psql(db, "SELECT communication_id, payload->>'client_id', payload->>'channel',"
                          " payload->>'communication_id', payload ? 'text', payload_enc LIKE 'v2.%'"
                          " FROM workflow_callbacks")
        assert rows == [[cid, client_id, "whatsapp", cid, "f", "t"]], rows
        window = h.psql(db, "SELECT extract(epoch FROM whatsapp_window_until)::bigint"
                            " FROM clients WHERE id = :'c'", c=client_id)[0][0]
        assert int(window) == now + 86400, (window, now)

        # a failed status with Meta's error code, over a sent message
        wamid2 = "wamid." + uuid.uuid4().hex
        _, cid2 = new_client(crier, "+15558675312", i=2)
        crier.wait_final([cid2])
        h.psql(db, "UPDATE communications SET status = 'sent', channel = 'whatsapp',"
                   " provider_message_id = :'w' WHERE id = :'id'", w=wamid2, id=cid2)
        st = {"id": wamid2, "status": "failed", "timestamp": str(now), "recipient_id": "15558675312",
              "errors": [{"code": 131047, "title": "Re-engagement message"}]}
        status, _, body = post_meta(crier, wa_payload(statuses=[st]))
        assert status == 200, body
        # recorded with Meta's code, then handed to the fallback rules: the
        # message goes on (131047 closes the window: the template next)
        got = h.psql(db, "SELECT event_type, delivery_status, provider_response->>'error_code'"
                         " FROM delivery_events WHERE communication_id = :'id'"
                         " AND event_type = 'receipt'", id=cid2)
        assert got == [["receipt", "failed", "131047"]], got
        h.wait_until(lambda: h.psql(db, "SELECT status IN ('sent', 'delivered')"
                                        " FROM communications WHERE id = :'id'",
                                    id=cid2) == [["t"]],
                     20, what="the failed WhatsApp message sent again")

        # an app-level STOP on WhatsApp turns WhatsApp off for that number
        stop = {"from": "15558675311", "id": "wamid.in" + uuid.uuid4().hex,
                "timestamp": str(now), "type": "text", "text": {"body": "STOP"}}
        status, _, body = post_meta(crier, wa_payload(messages=[stop]))
        assert status == 200, body
        assert h.psql(db, "SELECT opt_out_whatsapp, opt_out_sms FROM client_preferences"
                          " WHERE client_id = :'c'", c=client_id) == [["t", "f"]]


h.run([test_signature_vectors, test_unconfigured, test_receipts_forward_only,
       test_stop_start_help, test_whatsapp_reply_and_statuses])
