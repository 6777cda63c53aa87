"""Client replies end to end, against the real binary and PostgreSQL with the
sandbox transports:

1. A STOP texted from the client's phone (a signed Twilio inbound webhook)
   turns SMS off within one second; the next SMS-first request skips SMS
   with reason opt_out and goes by the rules' next channel, email.
2. A client's WhatsApp reply (a signed Meta webhook) reaches the workflow's
   callback receiver with a valid signature, and opens the 24-hour window:
   the WhatsApp message before it is a template, the one after it free text.

Signatures are computed here independently of crier's code: Twilio's and
Meta's with tests/support/provider_stub.py's helpers, crier's callback
signature from the scheme in docs/callbacks.md.
"""
import base64
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

TW_TOKEN = "e2e-twilio-auth-token-0123456789ab"
META_SECRET = "e2e-meta-app-secret-0123456789abcd"
CALLBACK_SECRET = "e2e-callback-secret-fedcba9876543210"
# Twilio signs the URL it was given, which is ours as the public sees it.
PUBLIC = "https://crier.example.com"
OUR_NUMBER = "+15017250604"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def timing(what, seconds):
    print("  timing: %-44s %7.1f ms" % (what, seconds * 1000.0))
    sys.stdout.flush()


def crier_env(extra=None):
    env = {"TWILIO_AUTH_TOKEN": TW_TOKEN, "WHATSAPP_APP_SECRET": META_SECRET,
           "CRIER_PUBLIC_URL": PUBLIC}
    env.update(extra or {})
    return env


def post(crier, body):
    started = time.monotonic()
    status, _, js = crier.post_comm(body)
    check(status == 202, "POST /v1/communications answered %s: %r" % (status, js))
    return js["communication_id"], js["decision"], time.monotonic() - started


def outbox(crier, name):
    return os.path.join(crier.outbox, name)


def outbox_json(crier, name):
    path = outbox(crier, name)
    check(os.path.exists(path), "%s in the outbox" % name)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_private_log(crier, *secrets):
    """Numbers, reply texts and secrets never reach the log."""
    text = crier.log()
    for s in secrets:
        check(s not in text, "the crier log shows something private: %r" % s[:6])


# ---------------------------------------------------------------- 1. STOP

def twilio_inbound(phone, text):
    sid = "SM" + uuid.uuid4().hex
    return [("AccountSid", "AC" + "0" * 32), ("ApiVersion", "2010-04-01"), ("Body", text),
            ("From", phone), ("MessageSid", sid), ("NumMedia", "0"), ("SmsMessageSid", sid),
            ("SmsSid", sid), ("SmsStatus", "received"), ("To", OUR_NUMBER)]


def post_twilio_inbound(crier, params):
    path = "/webhooks/twilio/inbound"
    raw = urllib.parse.urlencode(params).encode("ascii")
    sig = twilio_signature(TW_TOKEN, PUBLIC + path, params)
    return crier.request("POST", path, raw=raw, token=None,
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "X-Twilio-Signature": sig})


def opt_out_sms(db, client_id):
    rows = h.psql(db, "SELECT opt_out_sms FROM client_preferences WHERE client_id = :'c'",
                  c=client_id)
    return rows[0][0] if rows else ""


def test_stop_turns_sms_off(tmp):
    db = h.new_database("e2e_stop")
    phone = "+15555550131"
    consent = {"sms": True, "whatsapp": False}
    body = h.comm_body(31, phone=phone, consent=consent, message_type="error_notification",
                       urgency="critical")
    client_id = body["client_id"]
    with h.Crier(db, tmp, env=crier_env()) as crier:
        # Before the STOP the same kind of request goes by SMS: the opt-out
        # below is what changes the channel, not the setup.
        before_id, dec, _ = post(crier, body)
        check(dec["primary_channel"] == "sms", "before the STOP, SMS first: %r" % dec)
        crier.wait_final([before_id])
        check(os.path.exists(outbox(crier, before_id + ".sms.json")),
              "before the STOP the SMS was written to the outbox")
        check(opt_out_sms(db, client_id) in ("", "f"), "not opted out yet")

        started = time.monotonic()
        status, hdrs, answer = post_twilio_inbound(crier, twilio_inbound(phone, "STOP"))
        answered = time.monotonic() - started
        check(status == 200 and hdrs.get("content-type", "").startswith("text/xml"),
              "the signed STOP is accepted: %s %r" % (status, answer))
        h.wait_until(lambda: opt_out_sms(db, client_id) == "t", timeout=1.0, interval=0.02,
                     what="opt_out_sms set after the STOP")
        took = time.monotonic() - started
        timing("STOP webhook answered", answered)
        timing("STOP to opt_out_sms visible in PostgreSQL", took)
        check(took < 1.0, "opt-out took %.3f s" % took)
        check(h.psql(db, "SELECT keyword, client_id FROM inbound_messages") == [["STOP", client_id]],
              "the STOP is stored against the client")

        # The workflow sends the client's details again, consent included, as
        # it does on every request: the STOP must still win over it.
        again = dict(body, plan_id=str(uuid.uuid4()))
        after_id, dec, took = post(crier, again)
        timing("SMS-first request after STOP (202)", took)
        check(dec["primary_channel"] != "sms" and "sms" not in dec.get("fallback_channels", []),
              "SMS is not chosen after the STOP: %r" % dec)
        check(dec["primary_channel"] == "email", "the rules' next channel is email: %r" % dec)
        steps = {s.get("step"): s for s in dec.get("trace") or []}
        select_step = steps.get("channels.select") or {}
        check("sms:opt_out" in (select_step.get("why") or ""),
              "the trace shows SMS blocked by the opt-out: %r" % dec.get("trace"))
        started = time.monotonic()
        final = crier.wait_final([after_id])[after_id]
        timing("request to delivered by email", time.monotonic() - started)
        check(final["status"] == "delivered" and final["channel"] == "email",
              "delivered by email: %s on %s" % (final["status"], final["channel"]))
        check(os.path.exists(outbox(crier, after_id + ".eml")), "the email is in the outbox")
        check(not os.path.exists(outbox(crier, after_id + ".sms.json")),
              "no SMS was written after the STOP")
        sms_events = [e for e in final.get("events") or [] if e.get("channel") == "sms"]
        check(sms_events == [], "no SMS attempt at all: %r" % sms_events)
        check(opt_out_sms(db, client_id) == "t", "the opt-out stays")
        check_private_log(crier, phone.lstrip("+"), TW_TOKEN)


# ---------------------------------------------------------------- 2. WhatsApp reply

def meta_inbound(phone, text):
    msg = {"from": phone.lstrip("+"), "id": "wamid.in" + uuid.uuid4().hex,
           "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550953877", "phone_number_id": "277321005464405"},
             "contacts": [{"profile": {"name": "Client"}, "wa_id": msg["from"]}],
             "messages": [msg]}
    raw = json.dumps({"object": "whatsapp_business_account",
                      "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}
                     ).encode("utf-8")
    return msg, raw


def post_meta(crier, raw):
    return crier.request("POST", "/webhooks/whatsapp", raw=raw, token=None,
                         headers={"Content-Type": "application/json",
                                  "X-Hub-Signature-256": meta_signature(META_SECRET, raw)})


def test_whatsapp_reply_reaches_workflow(tmp):
    db = h.new_database("e2e_reply")
    phone = "+15555550132"
    consent = {"sms": False, "whatsapp": True}
    body = h.comm_body(32, phone=phone, consent=consent, message_type="vendor_options",
                       urgency="high", preferred_channel="whatsapp")
    client_id = body["client_id"]
    reply_text = "Option 2 looks perfect, caf\u00e9 at 3? \U0001f389"
    with h.CallbackReceiver(tmp) as rx:
        # the replies alone: the status events have their own test
        env = crier_env({"CRIER_WORKFLOW_CALLBACK_URL": rx.url,
                         "CRIER_WORKFLOW_CALLBACK_SECRET": CALLBACK_SECRET,
                         "CRIER_CALLBACK_EVENTS": "client_reply"})
        with h.Crier(db, tmp, env=env) as crier:
            first_id, dec, _ = post(crier, body)
            check(dec["primary_channel"] == "whatsapp", "WhatsApp first: %r" % dec)
            final = crier.wait_final([first_id])[first_id]
            check(final["channel"] == "whatsapp", "sent on WhatsApp: %r" % final["channel"])
            rec = outbox_json(crier, first_id + ".whatsapp.json")
            check(rec["type"] == "template" and rec["request"]["type"] == "template",
                  "window closed: a template (%r)" % rec["type"])
            # the client answers on WhatsApp (the sandbox gives no wamid to
            # quote, so the reply is matched by the client's number)
            msg, raw = meta_inbound(phone, reply_text)
            started, started_wall = time.monotonic(), time.time()
            status, _, answer = post_meta(crier, raw)
            timing("WhatsApp webhook answered", time.monotonic() - started)
            check(status == 200, "the signed reply is accepted: %s %r" % (status, answer))
            reqs = h.wait_until(lambda: rx.requests(), timeout=5.0, interval=0.02,
                                what="the reply at the workflow's callback receiver")
            timing("reply to workflow callback received", reqs[0]["received_at"] - started_wall)
            time.sleep(0.5)  # a duplicate would show up now
            reqs = rx.requests()
            check(len(reqs) == 1, "one callback for one reply: %d" % len(reqs))
            req = reqs[0]
            hd = req["headers"]
            check(req["path"] == "/workflow/crier", "the configured path: %r" % req["path"])
            check(hd.get("content-type") == "application/json", "JSON: %r" % hd)
            check(h.callback_signature_ok(req, CALLBACK_SECRET), "valid signature: %r" % hd)
            check(not h.callback_signature_ok(req, CALLBACK_SECRET + "x"),
                  "the signature depends on the secret")
            check(abs(int(hd["x-crier-timestamp"]) - time.time()) < 60, "a current timestamp")
            check(hd.get("x-crier-event") == "client_reply", "event: %r" % hd.get("x-crier-event"))
            payload = json.loads(base64.b64decode(req["body_base64"]))
            check(payload.get("text") == reply_text, "the reply text: %r" % payload.get("text"))
            check(payload.get("client_id") == client_id, "the client: %r" % payload)
            check(payload.get("channel") == "whatsapp", "the channel: %r" % payload)
            check(payload.get("provider_message_id") == msg["id"], "Meta's id: %r" % payload)
            # linked to what it answers: the latest message sent to that number
            check(payload.get("communication_id") == first_id, "what it answers: %r" % payload)
            check(payload.get("plan_id") == body["plan_id"], "its plan: %r" % payload)
            check(payload.get("message_type") == "vendor_options", "its type: %r" % payload)
            check(payload.get("status") == "replied" and payload.get("event_id") ==
                  hd.get("x-crier-callback-id") and isinstance(payload.get("seq"), int),
                  "event id and sequence: %r" % payload)
            row = h.psql(db, "SELECT state, attempts FROM workflow_callbacks"
                             " WHERE id = :'id'::uuid", id=hd.get("x-crier-callback-id", ""))
            check(row == [["delivered", "1"]], "the callback row is delivered once: %r" % row)
            window = h.psql(db, "SELECT extract(epoch FROM whatsapp_window_until - now())"
                                " FROM clients WHERE id = :'c'", c=client_id)[0][0]
            check(window and 86000 < float(window) <= 86400, "a 24-hour window: %r" % window)

            # the next WhatsApp message to that client is free text
            again = dict(body, plan_id=str(uuid.uuid4()))
            second_id, dec, _ = post(crier, again)
            check(dec["primary_channel"] == "whatsapp", "WhatsApp again: %r" % dec)
            final = crier.wait_final([second_id])[second_id]
            check(final["channel"] == "whatsapp", "sent on WhatsApp: %r" % final["channel"])
            rec = outbox_json(crier, second_id + ".whatsapp.json")
            # (vendor options: free text with a reply button per combination)
            check(rec["type"] == "interactive" and rec["request"]["type"] == "interactive",
                  "window open: free text, not a template (%r)" % rec["type"])
            check("template" not in rec["request"], "no template in the request")
            check(rec["request"]["interactive"]["body"]["text"].strip(),
                  "the free text is not empty")
            check_private_log(crier, phone.lstrip("+"), reply_text, CALLBACK_SECRET, META_SECRET)


h.run([test_stop_turns_sms_off, test_whatsapp_reply_reaches_workflow])
