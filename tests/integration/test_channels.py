"""SMS (Twilio) and WhatsApp (Cloud API) delivery end to end: the real
binary and PostgreSQL, with the sandbox transports (outbox records) and
with the live transports pointed at tests/support/provider_stub.py."""

import base64
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import harness as h

CONSENT_ALL = {"sms": True, "whatsapp": True}
# The sandbox refuses a number whose digits end in 0000 (Twilio 21211).
SANDBOX_REFUSED = "+15555550000"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def post(crier, body):
    status, _, js = crier.post_comm(body)
    check(status == 202, "POST answered %s: %r" % (status, js))
    return js["communication_id"], js["decision"]


def events(comm):
    return [(e.get("event_type"), e.get("channel")) for e in comm.get("events") or []]


def outbox_record(crier, comm_id, kind):
    path = os.path.join(crier.outbox, "%s.%s.json" % (comm_id, kind))
    check(os.path.exists(path), "%s in the outbox" % os.path.basename(path))
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_no_phone_in_log(crier, *phones):
    text = crier.log()
    for p in phones:
        check(p.lstrip("+") not in text, "the log never shows a phone number")


def test_sandbox_channels(tmp):
    db = h.new_database("channels")
    phone_sms, phone_wa, phone_none = "+15555550101", "+15555550102", "+15555550103"
    with h.Crier(db, tmp) as crier:
        sms_id, dec = post(crier, h.comm_body(1, phone=phone_sms, consent=CONSENT_ALL,
                                              message_type="error_notification",
                                              urgency="critical"))
        check(dec["primary_channel"] == "sms", "critical error goes by SMS first: %r" % dec)
        email_id, dec = post(crier, h.comm_body(2, phone=phone_none,
                                                consent={"sms": False, "whatsapp": False},
                                                message_type="error_notification",
                                                urgency="critical"))
        check(dec["primary_channel"] == "email", "no SMS consent: email (%r)" % dec)
        wa_id, dec = post(crier, h.comm_body(3, phone=phone_wa, consent=CONSENT_ALL,
                                             message_type="vendor_options", urgency="high",
                                             preferred_channel="whatsapp"))
        check(dec["primary_channel"] == "whatsapp", "preferred WhatsApp comes first: %r" % dec)
        fb_id, dec = post(crier, h.comm_body(4, phone=SANDBOX_REFUSED, consent=CONSENT_ALL,
                                             message_type="error_notification",
                                             urgency="critical"))
        check(dec["fallback_channels"] == ["email"], "SMS falls back to email: %r" % dec)
        final = crier.wait_final([sms_id, email_id, wa_id, fb_id], timeout=30)

        c = final[sms_id]
        check(c["status"] == "delivered" and c["channel"] == "sms",
              "SMS delivered by SMS: %s on %s" % (c["status"], c["channel"]))
        rec = outbox_record(crier, sms_id, "sms")
        check(rec["to"] == phone_sms and rec["status"] == "delivered", "SMS record: %r" % rec)
        check(rec["encoding"] in ("GSM-7", "UCS-2") and 1 <= rec["segments"] <= 2,
              "SMS record counts segments: %r" % rec)
        check("Planiva" in rec["body"] and "{{" not in rec["body"],
              "SMS body rendered: %r" % rec["body"])

        c = final[email_id]
        check(c["status"] == "delivered" and c["channel"] == "email",
              "no consent: delivered by email (%s on %s)" % (c["status"], c["channel"]))
        check(os.path.exists(os.path.join(crier.outbox, email_id + ".eml")), "the .eml exists")
        check(not os.path.exists(os.path.join(crier.outbox, email_id + ".sms.json")),
              "no SMS for a client without SMS consent")

        c = final[wa_id]
        check(c["status"] == "delivered" and c["channel"] == "whatsapp",
              "vendor options by WhatsApp: %s on %s" % (c["status"], c["channel"]))
        rec = outbox_record(crier, wa_id, "whatsapp")
        check(rec["type"] == "template" and rec["request"]["type"] == "template",
              "window closed: the approved template is sent (%r)" % rec)
        check(rec["request"]["to"] == phone_wa.lstrip("+"), "Meta's 'to' is digits only")
        check(rec["request"]["biz_opaque_callback_data"] == wa_id,
              "the communication id rides along for receipts")
        params = rec["request"]["template"]["components"][0]["parameters"]
        check(params and all(p["text"] for p in params), "template parameters rendered")

        c = final[fb_id]
        check(c["status"] == "delivered" and c["channel"] == "email",
              "refused SMS falls back to email: %s on %s" % (c["status"], c["channel"]))
        evs = events(c)
        check(("retry_scheduled", "sms") in evs and ("delivered", "email") in evs,
              "events show the SMS failure then the email: %r" % evs)
        failed = [e for e in c["events"] if e.get("channel") == "sms" and e.get("detail")]
        check(failed and failed[0]["detail"].get("error_code") == 21211,
              "the SMS event carries Twilio's code: %r" % failed)
        row = h.psql(db, "SELECT error_details FROM delivery_events"
                         " WHERE communication_id = :'id' AND channel = 'sms'"
                         " AND event_type = 'retry_scheduled'", id=fb_id)
        check(len(row) == 1 and "21211" in row[0][0], "the SMS error is recorded: %r" % row)
        check(SANDBOX_REFUSED.lstrip("+") not in row[0][0], "without the number")
        check(not os.path.exists(os.path.join(crier.outbox, fb_id + ".sms.json")),
              "nothing written for the refused SMS")
        check_no_phone_in_log(crier, phone_sms, phone_wa, phone_none, SANDBOX_REFUSED)


def test_sandbox_whatsapp_window_open(tmp):
    db = h.new_database("channels_window")
    phone = "+15555550104"
    body = h.comm_body(5, phone=phone, consent=CONSENT_ALL, message_type="vendor_options",
                       urgency="high", preferred_channel="whatsapp")
    with h.Crier(db, tmp) as crier:
        first, _ = post(crier, body)
        crier.wait_final([first])
        # The client wrote to us on WhatsApp a moment ago: free text is allowed.
        h.psql(db, "UPDATE clients SET whatsapp_window_until = now() + interval '23 hours'"
                   " WHERE id = :'id'", id=body["client_id"])
        again = dict(body, plan_id=body["plan_id"])
        again.pop("client")
        second, _ = post(crier, again)
        final = crier.wait_final([second])
        check(final[second]["channel"] == "whatsapp", "sent on WhatsApp")
        rec = outbox_record(crier, first, "whatsapp")
        check(rec["type"] == "template", "before the window: template (%r)" % rec["type"])
        rec = outbox_record(crier, second, "whatsapp")
        # vendor options ask the client to choose: free text with reply buttons
        check(rec["type"] == "interactive" and rec["request"]["type"] == "interactive",
              "inside the window: free text with buttons (%r)" % rec)
        check(rec["request"]["interactive"]["body"]["text"] == rec["body"] and rec["body"].strip(),
              "the free text is the rendered WhatsApp template")
        check(len(rec["request"]["interactive"]["action"]["buttons"]) == 2,
              "one reply button per vendor combination")


def test_live_sms_and_fallback(tmp):
    db = h.new_database("channels_live")
    phone_ok, phone_bad = "+15555550105", "+15555550199"
    with h.ProviderStub(os.path.join(tmp, "stub"),
                      ["--twilio-account-sid", h.STUB_ACCOUNT_SID,
                       "--recipient-mode", "0199=error:21211"]) as stub:
        env = dict(h.stub_env(stub, whatsapp=False), CRIER_TRANSPORT_SMS="live")
        with h.Crier(db, tmp, env=env) as crier:
            ok_id, dec = post(crier, h.comm_body(6, phone=phone_ok, consent=CONSENT_ALL,
                                                 message_type="error_notification",
                                                 urgency="critical"))
            check(dec["primary_channel"] == "sms", "live SMS is available: %r" % dec)
            bad_id, _ = post(crier, h.comm_body(7, phone=phone_bad, consent=CONSENT_ALL,
                                                message_type="error_notification",
                                                urgency="critical"))
            final = crier.wait_final([ok_id, bad_id], timeout=30)

            c = final[ok_id]
            check(c["status"] == "sent" and c["channel"] == "sms",
                  "accepted by Twilio: %s on %s" % (c["status"], c["channel"]))
            reqs = stub.requests("twilio")
            mine = [r for r in reqs if "To=%2B15555550105" in (r["body"] or "")]
            check(len(mine) == 1, "one SMS reached the stub (%d)" % len(mine))
            r = mine[0]
            check(r["status"] == 201, "the stub accepted it: %r" % r["status"])
            check(r["path"] == "/2010-04-01/Accounts/%s/Messages.json" % h.STUB_ACCOUNT_SID,
                  "Twilio's path: %r" % r["path"])
            hdr = {k.lower(): v for k, v in r["headers"].items()}
            basic = base64.b64encode(("%s:%s" % (h.STUB_ACCOUNT_SID, h.STUB_AUTH_TOKEN))
                                     .encode()).decode()
            check(hdr.get("authorization") == "Basic " + basic, "Basic auth with SID and token")
            check(hdr.get("content-type", "").startswith("application/x-www-form-urlencoded"),
                  "form-encoded: %r" % hdr.get("content-type"))
            form = dict(urllib.parse.parse_qsl(r["body"], keep_blank_values=True))
            check(set(form) == {"To", "From", "Body", "StatusCallback"},
                  "exactly the form fields: %r" % sorted(form))
            check(form["To"] == phone_ok and form["From"] == h.STUB_FROM_NUMBER, "To and From")
            check(form["StatusCallback"] == crier.url + "/webhooks/twilio/status",
                  "StatusCallback: %r" % form["StatusCallback"])
            check("Planiva" in form["Body"] and "{{" not in form["Body"], "Body rendered")
            sid = h.psql(db, "SELECT provider_message_id FROM communications WHERE id = :'id'",
                         id=ok_id)
            check(re.fullmatch(r"SM[0-9a-f]{32}", sid[0][0] or ""),
                  "Twilio's SID kept as provider message id: %r" % sid)

            c = final[bad_id]
            check(c["status"] == "delivered" and c["channel"] == "email",
                  "21211 is permanent: fallback to email (%s on %s)" % (c["status"], c["channel"]))
            evs = events(c)
            check(("retry_scheduled", "sms") in evs and ("delivered", "email") in evs,
                  "events show both channels: %r" % evs)
            tried = [r for r in stub.requests("twilio") if "To=%2B15555550199" in (r["body"] or "")]
            check(len(tried) == 1 and tried[0]["status"] == 400,
                  "one refused attempt at the stub, no retry: %r" % [t["status"] for t in tried])
            check_no_phone_in_log(crier, phone_ok, phone_bad)
            check(h.STUB_AUTH_TOKEN not in crier.log(), "the token is never logged")


def test_live_whatsapp(tmp):
    db = h.new_database("channels_wa")
    phone = "+15555550106"
    with h.ProviderStub(os.path.join(tmp, "stub"),
                      ["--meta-access-token", h.STUB_WA_TOKEN, "--wa-phone-number-id",
                       h.STUB_WA_PHONE_ID]) as stub:
        env = dict(h.stub_env(stub, twilio=False), CRIER_TRANSPORT_WHATSAPP="live")
        with h.Crier(db, tmp, env=env) as crier:
            wa_id, dec = post(crier, h.comm_body(8, phone=phone, consent=CONSENT_ALL,
                                                 message_type="vendor_options", urgency="high",
                                                 preferred_channel="whatsapp"))
            check(dec["primary_channel"] == "whatsapp", "live WhatsApp is available: %r" % dec)
            final = crier.wait_final([wa_id], timeout=30)
            c = final[wa_id]
            check(c["status"] == "sent" and c["channel"] == "whatsapp",
                  "accepted by Meta: %s on %s" % (c["status"], c["channel"]))
            reqs = stub.requests("whatsapp")
            check(len(reqs) == 1 and reqs[0]["status"] == 200, "one send, accepted")
            r = reqs[0]
            check(r["path"] == "/v21.0/%s/messages" % h.STUB_WA_PHONE_ID,
                  "Graph path: %r" % r["path"])
            hdr = {k.lower(): v for k, v in r["headers"].items()}
            check(hdr.get("authorization") == "Bearer " + h.STUB_WA_TOKEN, "bearer token")
            sent = json.loads(r["body"])
            check(sent["type"] == "template" and sent["to"] == phone.lstrip("+"),
                  "a template outside the window: %r" % sent)
            wamid = h.psql(db, "SELECT provider_message_id FROM communications"
                               " WHERE id = :'id'", id=wa_id)
            check(wamid[0][0].startswith("wamid."), "wamid kept: %r" % wamid)
            check(h.STUB_WA_TOKEN not in crier.log(), "the token is never logged")
            check_no_phone_in_log(crier, phone)


def test_live_without_credentials_is_unavailable(tmp):
    db = h.new_database("channels_nocred")
    env = {"CRIER_TRANSPORT_SMS": "live", "CRIER_TRANSPORT_WHATSAPP": "live"}
    with h.Crier(db, tmp, env=env) as crier:
        cid, dec = post(crier, h.comm_body(9, phone="+15555550107", consent=CONSENT_ALL,
                                           message_type="error_notification",
                                           urgency="critical"))
        check(dec["primary_channel"] == "email" and dec["fallback_channels"] == [],
              "live SMS/WhatsApp without credentials are never chosen: %r" % dec)
        final = crier.wait_final([cid])
        check(final[cid]["channel"] == "email", "delivered by email")


h.run([test_sandbox_channels, test_sandbox_whatsapp_window_open, test_live_sms_and_fallback,
       test_live_whatsapp, test_live_without_credentials_is_unavailable])
