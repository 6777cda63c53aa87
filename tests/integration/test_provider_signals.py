"""What providers tell crier besides "failed": a Retry-After to wait for, and
a recipient who opted out at the provider.

One crier per case, with live SMS and WhatsApp against the provider stub
and live email against the SMTP sink; the stub's fault is picked by the
recipient's number suffix.

1. Retry-After. A 429 that says "Retry-After: 4" is retried no earlier than
   4 s after the failure, although the rules (retry delays cut to 1, 1, 1 s)
   would retry after 1 s. The control, "Retry-After: 1", is retried about
   1 s after its failure: the 4 s floor comes from the header, not from
   anything else. A failure's time is its event in delivery_events (written
   after the provider's answer); the retry's time is when its request
   reached the stub (the stub records it on arrival, before answering).
2. Twilio 21610 (the recipient texted STOP to the sender): the client's SMS
   opt-out is set as an inbound STOP sets it, the message goes on by email,
   and the next SMS-first message of that client is decided without SMS
   (the decision trace says sms:opt_out) and never reaches the stub.
3. WhatsApp 131050 (the user stopped marketing messages): the client's
   WhatsApp opt-out is set and the message falls back to email.
"""
import json
import os
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

DELAYS = [1, 1, 1]
# Timestamps come from two clocks read at slightly different moments (the
# database's now() and the stub's time.time() on the same host): the slack
# allowed for that, and nothing more.
CLOCK_SLACK_S = 0.1


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def sms_body(i, suffix, client_id=None, urgency="critical"):
    """An error notification (critical unless told) to a client with SMS
    consent only: SMS first, email as the one fallback. A HIGH one goes to
    a client for whom it is early afternoon, so it is sent at once."""
    return h.comm_body(i, phone="+1555%03d%s" % (i, suffix),
                       consent={"sms": True, "whatsapp": False},
                       message_type="error_notification", urgency=urgency,
                       client_id=client_id,
                       timezone="UTC" if urgency == "critical" else h.daytime_zone())


def wa_body(i, suffix):
    """Vendor options with WhatsApp preferred and WhatsApp consent only:
    WhatsApp first, email as the one fallback."""
    return h.comm_body(i, phone="+1555%03d%s" % (i, suffix),
                       consent={"sms": False, "whatsapp": True}, message_type="vendor_options",
                       urgency="high", preferred_channel="whatsapp")


def stub_args(modes):
    args = ["--twilio-account-sid", h.STUB_ACCOUNT_SID,
            "--meta-access-token", h.STUB_WA_TOKEN,
            "--wa-phone-number-id", h.STUB_WA_PHONE_ID]
    for suffix, mode in modes.items():
        args += ["--recipient-mode", "%s=%s" % (suffix, mode)]
    return args


def crier_env(stub, sink):
    return h.live_env(
        stub, sink,
        # Waits here must come from the provider's answers alone, not from
        # our own per-sender quota.
        CRIER_RATE_TWILIO="off",
        CRIER_RATE_WHATSAPP="off",
        CRIER_PROVIDER_TIMEOUT_MS="2000",
        # A worker records a claimed batch's outcomes together, after its
        # last attempt; one message per claim puts a failure's event right
        # after its answer, so the event's time is the failure's.
        CRIER_CLAIM_BATCH="1",
        CRIER_RULES_DIR=h.rules_dir(retry_delays=DELAYS))


def post(crier, body):
    status, _, js = crier.post_comm(body)
    check(status == 202 and isinstance(js, dict), "POST answered %s: %r" % (status, js))
    return js["communication_id"], js.get("decision") or {}


def stub_to(record):
    """The recipient of a request the stub recorded, digits only."""
    body = record.get("body") or ""
    if record.get("provider") == "twilio":
        to = dict(urllib.parse.parse_qsl(body)).get("To", "")
    else:
        try:
            to = str(json.loads(body).get("to", ""))
        except (ValueError, AttributeError):
            to = ""
    return "".join(c for c in to if c.isdigit())


def stub_requests_to(stub, provider, suffix):
    return [r for r in stub.requests(provider) if stub_to(r).endswith(suffix)]


def channel_events(db, comm_id, channel):
    """(event_type, attempt, epoch seconds, error_details) of every attempt
    event of comm_id on channel, in the order written."""
    rows = h.psql(db, "SELECT event_type, attempt, extract(epoch FROM event_timestamp),"
                      " coalesce(error_details, '') FROM delivery_events"
                      " WHERE communication_id = :'c'::uuid AND channel = :'ch' AND attempt > 0"
                      " ORDER BY id", c=comm_id, ch=channel)
    return [(r[0], int(r[1]), float(r[2]), r[3]) for r in rows]


def comm_row(db, comm_id):
    rows = h.psql(db, "SELECT status, coalesce(channel, ''), attempts FROM communications"
                      " WHERE id = :'c'::uuid", c=comm_id)
    check(len(rows) == 1, "communication %s exists" % comm_id)
    return rows[0][0], rows[0][1], int(rows[0][2])


def opt_out(db, client_id, channel):
    """The client's opt-out for channel where an inbound STOP records it
    (client_preferences): 't', 'f', or '' when the client has no row."""
    rows = h.psql(db, "SELECT opt_out_%s FROM client_preferences WHERE client_id = :'c'::uuid"
                  % channel, c=client_id)
    return rows[0][0] if rows else ""


def check_private_log(crier, *private):
    text = crier.log()
    for s in private:
        check(s not in text, "the crier log shows something private: %r..." % s[:6])


# ---------------------------------------------------------------- 1. Retry-After

def gaps_after_failures(db, stub, comm_id, suffix):
    """For each retry on SMS: seconds from the failure before it (its event)
    to the retry's request at the stub."""
    events = channel_events(db, comm_id, "sms")
    reqs = sorted(r["time"] for r in stub_requests_to(stub, "twilio", suffix))
    check(len(reqs) == len(DELAYS) + 1,
          "%d SMS requests at the stub for %s, expected %d" % (len(reqs), suffix,
                                                               len(DELAYS) + 1))
    check(len(events) == len(reqs),
          "one failure event per SMS attempt: %d events, %d requests (%r)"
          % (len(events), len(reqs), events))
    check(all(e[3].startswith("rate_limit") for e in events),
          "every SMS attempt failed as rate_limit: %r" % [e[3] for e in events])
    return [reqs[k + 1] - events[k][2] for k in range(len(events) - 1)]


def test_retry_after_is_a_floor(tmp):
    db = h.new_database("signals_retry_after")
    modes = {"7101": "http429:4", "7102": "http429:1"}
    with h.ProviderStub(os.path.join(tmp, "stub"), stub_args(modes)) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink:
        with h.Crier(db, os.path.join(tmp, "crier"), env=crier_env(stub, sink)) as crier:
            started = time.monotonic()
            # HIGH: a critical message gets one quick retry, not the ladder
            slow_id, dec = post(crier, sms_body(1, "7101", urgency="high"))
            check(dec.get("primary_channel") == "sms", "SMS first: %r" % dec)
            fast_id, _ = post(crier, sms_body(2, "7102", urgency="high"))
            final = crier.wait_final([slow_id, fast_id], timeout=40)
            took = time.monotonic() - started

            slow = gaps_after_failures(db, stub, slow_id, "7101")
            fast = gaps_after_failures(db, stub, fast_id, "7102")
            print("retry-after 4: gaps %s s; retry-after 1 (control): gaps %s s; %.1f s in all"
                  % (", ".join("%.3f" % g for g in slow), ", ".join("%.3f" % g for g in fast),
                     took), flush=True)
            check(all(g >= 4.0 - CLOCK_SLACK_S for g in slow),
                  "every retry after a 'Retry-After: 4' waits >= 4 s: %r" % slow)
            # The rules retry after the header's wait plus at most a second;
            # a floor that does not come from the header would show here too.
            check(all(g < 3.0 for g in fast),
                  "with 'Retry-After: 1' the rules' 1 s delay rules: %r" % fast)
            check(all(g >= 1.0 - CLOCK_SLACK_S for g in fast),
                  "the control still waits the rules' 1 s: %r" % fast)
            for cid in (slow_id, fast_id):
                c = final[cid]
                check(c["status"] == "sent" and c["channel"] == "email"
                      and c["attempts"] == len(DELAYS) + 2,
                      "after %d rate-limited SMS attempts, sent by email: %s on %s, %r attempts"
                      % (len(DELAYS) + 1, c["status"], c["channel"], c["attempts"]))
            sink.wait_for(2, timeout=10)
            check_private_log(crier, h.STUB_AUTH_TOKEN, "+1555")


# ---------------------------------------------------------------- 2. Twilio 21610

def test_twilio_21610_opts_out_of_sms(tmp):
    db = h.new_database("signals_21610")
    with h.ProviderStub(os.path.join(tmp, "stub"), stub_args({"7103": "error:21610"})) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink:
        with h.Crier(db, os.path.join(tmp, "crier"), env=crier_env(stub, sink)) as crier:
            body = sms_body(3, "7103")
            client_id = body["client_id"]
            first_id, dec = post(crier, body)
            check(dec.get("primary_channel") == "sms", "SMS first before the 21610: %r" % dec)
            first = crier.wait_final([first_id], timeout=20)[first_id]
            events = channel_events(db, first_id, "sms")
            check(len(events) == 1 and events[0][3].startswith("permanent"),
                  "one SMS attempt, failed as permanent: %r" % events)
            check(first["status"] == "sent" and first["channel"] == "email"
                  and first["attempts"] == 2,
                  "the first message went on by email: %s on %s, %r attempts"
                  % (first["status"], first["channel"], first["attempts"]))
            flag = opt_out(db, client_id, "sms")
            check(flag == "t", "opt_out_sms is set after the 21610: %r" % flag)
            check(opt_out(db, client_id, "whatsapp") in ("", "f"),
                  "a Twilio refusal says nothing about WhatsApp")
            before = len(stub_requests_to(stub, "twilio", "7103"))
            check(before == 1, "one request for the first message: %d" % before)

            # The workflow sends the same client with SMS consent again: the
            # provider's opt-out must still win over it.
            again = sms_body(3, "7103", client_id=client_id)
            again["plan_id"] = str(uuid.uuid4())
            second_id, dec = post(crier, again)
            check(dec.get("primary_channel") == "email"
                  and "sms" not in (dec.get("fallback_channels") or []),
                  "the second message is decided without SMS: %r" % dec)
            steps = {s.get("step"): s for s in dec.get("trace") or []}
            why = (steps.get("channels.select") or {}).get("why") or ""
            check("sms:opt_out" in why, "the trace shows SMS blocked by the opt-out: %r"
                  % dec.get("trace"))
            second = crier.wait_final([second_id], timeout=20)[second_id]
            check(second["status"] == "sent" and second["channel"] == "email"
                  and second["attempts"] == 1,
                  "the second message went by email at once: %s on %s, %r attempts"
                  % (second["status"], second["channel"], second["attempts"]))
            check(channel_events(db, second_id, "sms") == [], "no SMS attempt for the second")
            sink.wait_for(2, timeout=10)
            time.sleep(0.3)  # a late request would show up now
            after = len(stub_requests_to(stub, "twilio", "7103"))
            print("21610: opt_out_sms=%s; stub requests: %d for the first message, %d for the"
                  " second; trace why=%r" % (flag, before, after - before, why), flush=True)
            check(after == before, "the stub got %d request(s) for the second message"
                  % (after - before))
            check_private_log(crier, h.STUB_AUTH_TOKEN, "+1555")


# ---------------------------------------------------------------- 3. WhatsApp 131050

def test_whatsapp_131050_opts_out_of_whatsapp(tmp):
    db = h.new_database("signals_131050")
    with h.ProviderStub(os.path.join(tmp, "stub"), stub_args({"7104": "error:131050"})) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink:
        with h.Crier(db, os.path.join(tmp, "crier"), env=crier_env(stub, sink)) as crier:
            body = wa_body(4, "7104")
            client_id = body["client_id"]
            comm_id, dec = post(crier, body)
            check(dec.get("primary_channel") == "whatsapp", "WhatsApp first: %r" % dec)
            final = crier.wait_final([comm_id], timeout=20)[comm_id]
            events = channel_events(db, comm_id, "whatsapp")
            reqs = len(stub_requests_to(stub, "whatsapp", "7104"))
            flag = opt_out(db, client_id, "whatsapp")
            print("131050: opt_out_whatsapp=%s; stub requests %d; final %s on %s after %r"
                  " attempts" % (flag, reqs, final["status"], final["channel"],
                                 final["attempts"]), flush=True)
            check(reqs == 1, "one WhatsApp request at the stub: %d" % reqs)
            check(len(events) == 1 and events[0][3].startswith("permanent"),
                  "one WhatsApp attempt, failed as permanent: %r" % events)
            check(flag == "t", "opt_out_whatsapp is set after the 131050: %r" % flag)
            check(opt_out(db, client_id, "sms") in ("", "f"),
                  "a Meta refusal says nothing about SMS")
            check(final["status"] == "sent" and final["channel"] == "email"
                  and final["attempts"] == 2,
                  "fell back to email: %s on %s, %r attempts"
                  % (final["status"], final["channel"], final["attempts"]))
            sink.wait_for(1, timeout=10)
            check_private_log(crier, h.STUB_WA_TOKEN, "+1555")


h.run([test_retry_after_is_a_floor, test_twilio_21610_opts_out_of_sms,
       test_whatsapp_131050_opts_out_of_whatsapp])
