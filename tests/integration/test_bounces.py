"""Hard bounces and the email suppression list, end to end: live SMTP to
the test sink (tests/support/smtp_sink.py, TLS off), live SMS to the
provider stub, the preference cache in Redis.

  * 550 5.1.1 to RCPT: the message ends "bounced" with the code recorded,
    the address is suppressed (one row, keyed by its blind index: no
    address in the table), GET /v1/clients/{id} says so, and the counters
    move. The client's next email-first message is skipped as
    "suppressed" while email is all it has; given a phone with SMS consent
    it goes by SMS; given another address it goes by email again, and the
    old address stays suppressed. An erasure keeps the entry (without its
    link to the message), so a client made again with the address is not
    mailed into the same bounce.
  * A client with a phone: the bounce moves that same message to SMS, as
    the rules do for a permanent failure; a message decided before the
    bounce is checked again when it is claimed and skips email for SMS.
  * 554 5.1.1 at the end of DATA suppresses too; 550 5.7.1 (policy) and a
    550 without an enhanced code fail without suppressing; 451 4.3.0 is
    retried and suppresses nothing.
"""

import json
import os
import shutil
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

DELAYS = [1, 1, 1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def midday_zone():
    """An IANA zone whose wall clock is around 12:00-14:00 now, so that a
    NORMAL message is due at once (business hours) and a LOW one waits for
    tomorrow's 09:00."""
    utc = time.gmtime()
    for off in range(-12, 15):
        if (utc.tm_hour + off) % 24 in (12, 13):
            # Etc/GMT-5 is five hours ahead of UTC: the sign is POSIX's
            return "Etc/GMT%+d" % -off if off else "Etc/UTC"
    raise AssertionError("no zone at midday")


def env(stub, sink, shipped_timing=False):
    """Every channel live (WhatsApp too, so that no channel is unavailable
    and a skip names the client's reason), the preference cache on, retries
    a second apart. The tests' rules send at once; with shipped_timing the
    shipped timing.lua decides instead (a LOW message waits for 09:00)."""
    rules = h.rules_dir(retry_delays=DELAYS)
    if shipped_timing:
        shutil.copy(os.path.join(h.source_dir(), "rules", "timing.lua"),
                    os.path.join(rules, "timing.lua"))
    return h.live_env(stub, sink, CRIER_RATE_TWILIO="off", CRIER_RATE_WHATSAPP="off",
                      CRIER_REDIS_URL=h.env_redis_url(), CRIER_RULES_DIR=rules)


def stub_for(tmp):
    return h.ProviderStub(os.path.join(tmp, "stub"),
                          ["--twilio-account-sid", h.STUB_ACCOUNT_SID,
                           "--meta-access-token", h.STUB_WA_TOKEN,
                           "--wa-phone-number-id", h.STUB_WA_PHONE_ID])


def post(crier, body):
    status, _, js = crier.post_comm(body)
    check(status == 202 and isinstance(js, dict), "POST answered %s: %r" % (status, js))
    return js["communication_id"], js["decision"], js


def message(client_id, message_type="welcome", urgency="normal"):
    """A request naming a client that exists (no client object)."""
    return h.comm_body(0, client_id=client_id, message_type=message_type, urgency=urgency,
                       client=False)


def put_client(crier, cid, body):
    status, _, js = crier.request("PUT", "/v1/clients/%s" % cid, body)
    check(status in (200, 201), "PUT client answered %s: %r" % (status, js))
    return js


def get_client(crier, cid):
    status, _, js = crier.request("GET", "/v1/clients/%s" % cid, token=h.TOKEN_OPERATOR)
    check(status == 200, "GET client answered %s: %r" % (status, js))
    return js


def suppressions(db):
    """Every suppression row as a dict."""
    return [json.loads(r[0]) for r in h.psql(
        db, "SELECT to_jsonb(s)::text FROM email_suppressions s ORDER BY created_at")]


def bidx_of(db, cid):
    rows = h.psql(db, "SELECT coalesce(email_bidx, '') FROM clients WHERE id = :'c'::uuid", c=cid)
    return rows[0][0]


def row(db, comm_id):
    """The stored row's status, codes and skip reason."""
    return json.loads(h.psql(
        db, "SELECT json_build_object('status', status, 'channel', channel, 'attempts', attempts,"
            " 'provider_code', provider_code, 'error_category', error_category,"
            " 'error_message', error_message, 'skip_reason', skip_reason)::text"
            " FROM communications WHERE id = :'c'::uuid", c=comm_id)[0][0])


def events(comm):
    return [(e.get("event_type"), e.get("channel"), e.get("status"), e.get("detail"))
            for e in comm.get("events") or []]


def metric(crier, name, **labels):
    status, _, text = crier.request("GET", "/metrics", token=None)
    check(status == 200, "GET /metrics answered %s" % status)
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, val = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(('%s="%s"' % kv) in head for kv in labels.items()):
            total += float(val)
    return total


def sms_to(stub, phone):
    return [r for r in stub.requests("twilio")
            if dict(urllib.parse.parse_qsl(r.get("body") or "")).get("To") == phone]


def sink_rcpts(sink):
    out = []
    for eml in sink.files():
        out += [a.lower() for a in sink.envelope(eml).get("rcpt_tos", [])]
    return out


def test_rcpt_bounce_then_suppressed(tmp):
    db = h.new_database("bounces_rcpt")
    zone = midday_zone()
    with stub_for(tmp) as stub, h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "crier"), env=env(stub, sink)) as crier:
        a = str(uuid.uuid4())
        put_client(crier, a, {"name": "Asha Rao", "email": "fail550@gone.example",
                              "timezone": zone})
        check(get_client(crier, a)["email_suppressed"] is False, "not suppressed at first")
        bounced_before = metric(crier, "crm_communications_total", status="bounced")
        supp_before = metric(crier, "crier_email_suppressions_total")

        first, dec, _ = post(crier, message(a))
        check(dec["primary_channel"] == "email" and dec["fallback_channels"] == [],
              "email alone: %r" % dec)
        c = crier.wait_final([first], timeout=30)[first]
        check(c["status"] == "bounced", "a 550 5.1.1 at RCPT ends bounced: %r" % c["status"])
        r = row(db, first)
        check(r["provider_code"] == 550 and "5.1.1" in (r["error_message"] or "")
              and "5.1.1" in (c.get("error_message") or ""), "the code is recorded: %r" % r)
        check(r["error_category"] == "permanent", "permanent: %r" % r)
        ev = [e for e in events(c) if e[0] == "bounced"]
        check(len(ev) == 1 and ev[0][1] == "email" and ev[0][2] == "bounced",
              "one bounced event on email: %r" % events(c))
        check(ev[0][3].get("enhanced") == "5.1.1" and ev[0][3].get("phase") == "rcpt"
              and ev[0][3].get("reply_code") == 550, "its detail: %r" % ev[0][3])
        check("fail550@" not in json.dumps(c), "the address appears nowhere in the answer")

        rows = suppressions(db)
        check(len(rows) == 1, "one suppression: %r" % rows)
        s = rows[0]
        check(s["email_bidx"] == bidx_of(db, a) and len(s["email_bidx"]) == 64,
              "keyed by the client's blind index")
        check(s["reason"] == "hard_bounce" and s["smtp_code"] == 550
              and s["enhanced_code"] == "5.1.1" and s["communication_id"] == first,
              "reason, codes and the message: %r" % s)
        dump = json.dumps(rows).lower()
        check("@" not in dump and "gone.example" not in dump and "fail550" not in dump,
              "no address in the table: %r" % rows)
        check(get_client(crier, a)["email_suppressed"] is True, "GET says suppressed")
        check(metric(crier, "crm_communications_total", status="bounced") - bounced_before == 1,
              "crm_communications_total{status=bounced} moved by one")
        check(metric(crier, "crier_email_suppressions_total") - supp_before == 1,
              "crier_email_suppressions_total moved by one")

        # the next email-first message: no other channel, skipped
        second, dec, _ = post(crier, message(a, "budget_summary"))
        check(dec["skip_reason"] == "suppressed" and dec["primary_channel"] is None,
              "skipped as suppressed: %r" % dec)
        r = row(db, second)
        check(r["status"] == "skipped" and r["skip_reason"] == "suppressed",
              "the row is skipped: %r" % r)

        # a phone with SMS consent: the next email-first message goes by SMS
        put_client(crier, a, {"phone": "+15555550142", "consent": {"sms": True}})
        check(get_client(crier, a)["email_suppressed"] is True, "still suppressed")
        third, dec, _ = post(crier, message(a, "budget_summary"))
        check(dec["primary_channel"] == "sms" and "email" not in dec["fallback_channels"],
              "the next channel takes email's place: %r" % dec)
        c3 = crier.wait_final([third], timeout=30)[third]
        check(c3["status"] == "sent" and c3["channel"] == "sms", "sent by SMS: %r" % c3["status"])
        check(len(sms_to(stub, "+15555550142")) == 1, "the stub got the SMS")
        check(not any(e[1] == "email" for e in events(c3)), "email never tried: %r" % events(c3))

        # another address: not suppressed, email again; the old one still is
        put_client(crier, a, {"email": "asha.rao@here.example"})
        check(get_client(crier, a)["email_suppressed"] is False, "a new address is not suppressed")
        fourth, dec, _ = post(crier, message(a, "budget_summary"))
        check(dec["primary_channel"] == "email", "email again: %r" % dec)
        c4 = crier.wait_final([fourth], timeout=30)[fourth]
        check(c4["status"] == "sent" and c4["channel"] == "email", "sent by email: %r" % c4)
        check("asha.rao@here.example" in sink_rcpts(sink), "the sink got it")
        check(len(suppressions(db)) == 1, "the old address stays suppressed")

        # erasure keeps the entry, without its link to the client's message
        b = str(uuid.uuid4())
        put_client(crier, b, {"email": "Fail550@Gone.Example", "timezone": zone})
        check(get_client(crier, b)["email_suppressed"] is True,
              "the same address, typed otherwise, is suppressed for another client too")
        status, _, js = crier.request("DELETE", "/v1/clients/%s" % a, token=h.TOKEN_ADMIN)
        check(status == 200, "erasure answered %s: %r" % (status, js))
        rows = suppressions(db)
        check(len(rows) == 1 and rows[0]["communication_id"] is None,
              "the entry stays, unlinked: %r" % rows)
        fifth, dec, _ = post(crier, message(b))
        check(dec["skip_reason"] == "suppressed", "still not mailed: %r" % dec)
        check(not [r for r in sink_rcpts(sink) if "gone.example" in r],
              "nothing ever reached the dead address")


def test_fallback_and_check_before_send(tmp):
    db = h.new_database("bounces_fallback")
    zone = midday_zone()
    phone = "+15555550177"
    with stub_for(tmp) as stub, h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "crier"), env=env(stub, sink, True)) as crier:
        b = str(uuid.uuid4())
        put_client(crier, b, {"name": "Lee Park", "email": "fail550@moved.example",
                              "phone": phone, "timezone": zone, "consent": {"sms": True}})
        # decided before the bounce: a LOW reminder, due tomorrow at 09:00
        early, dec, _ = post(crier, message(b, "reminder", "low"))
        check(dec["primary_channel"] == "email" and dec["fallback_channels"] == ["sms"]
              and dec["batch"] is None, "email first, SMS after: %r" % dec)
        st, _, c = crier.get_comm(early)
        check(c["status"] == "pending", "waits for tomorrow: %r" % c["status"])

        # bounces, and the same message moves to SMS (permanent -> next channel)
        now_id, dec, _ = post(crier, message(b))
        check(dec["primary_channel"] == "email" and dec["fallback_channels"] == ["sms"],
              "email first, SMS after: %r" % dec)
        c = crier.wait_final([now_id], timeout=30)[now_id]
        check(c["status"] == "sent" and c["channel"] == "sms",
              "the bounce falls back to SMS: %s on %s" % (c["status"], c["channel"]))
        kinds = [(e[0], e[1]) for e in events(c) if e[0] in ("bounced", "sent")]
        check(kinds == [("bounced", "email"), ("sent", "sms")],
              "bounced on email, then sent by SMS: %r" % events(c))
        rows = suppressions(db)
        check(len(rows) == 1 and rows[0]["communication_id"] == now_id, "suppressed: %r" % rows)

        # the early one comes due: checked again at the claim, email skipped
        h.psql(db, "UPDATE communications SET send_at = now(), next_attempt_at = now()"
                   " WHERE id = :'c'::uuid", c=early)
        c = crier.wait_final([early], timeout=30)[early]
        check(c["status"] == "sent" and c["channel"] == "sms",
              "the early one goes by SMS: %s on %s" % (c["status"], c["channel"]))
        ev = events(c)
        skipped = [e for e in ev if e[0] == "skipped"]
        check(len(skipped) == 1 and skipped[0][1] == "email"
              and skipped[0][3] == {"reason": "suppressed"},
              "email skipped as suppressed: %r" % ev)
        check(not any(e[0] in ("bounced", "retry_scheduled", "failed") for e in ev),
              "no attempt was made on email: %r" % ev)
        check(len(sms_to(stub, phone)) == 2, "two SMS reached the stub")
        check(h.log_events(crier.log(), "channel_skipped"), "the skip is logged")
        check(metric(crier, "crm_communications_total", message_type="reminder", channel="email",
                     status="retry") == 1
              and metric(crier, "crm_communications_total", status="skipped") == 0,
              "the skip that moved on counts as a retry")

        # and at decision time the next one goes by SMS at once
        later, dec, _ = post(crier, message(b, "budget_summary"))
        check(dec["primary_channel"] == "sms", "SMS first: %r" % dec)
        crier.wait_final([later], timeout=30)
        check(sink.files() == [], "nothing was ever accepted for the dead address")


def test_data_stage_policy_and_transient(tmp):
    db = h.new_database("bounces_codes")
    zone = midday_zone()
    with stub_for(tmp) as stub, h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "crier"), env=env(stub, sink)) as crier:
        clients = {}
        for local in ("data554", "fail571", "fail550bare", "fail451"):
            cid = str(uuid.uuid4())
            put_client(crier, cid, {"email": "%s@codes.example" % local, "timezone": zone})
            clients[local] = cid
        ids = {local: post(crier, message(cid))[0] for local, cid in clients.items()}
        final = crier.wait_final(list(ids.values()), timeout=60)
        got = {}
        for local, i in ids.items():
            r = row(db, i)
            got[local] = (r["status"], r["provider_code"], r["attempts"])
        check(got["data554"] == ("bounced", 554, 1), "554 5.1.1 at DATA bounces: %r" % got)
        check(got["fail571"] == ("failed", 550, 1), "550 5.7.1 fails: %r" % got)
        check(got["fail550bare"] == ("failed", 550, 1), "a bare 550 fails: %r" % got)
        check(got["fail451"] == ("failed", 451, 4), "451 is retried, then fails: %r" % got)
        ev = [e for e in events(final[ids["data554"]]) if e[0] == "bounced"]
        check(len(ev) == 1 and ev[0][3].get("phase") == "data", "at DATA: %r" % ev)

        rows = suppressions(db)
        check(len(rows) == 1 and rows[0]["email_bidx"] == bidx_of(db, clients["data554"])
              and rows[0]["smtp_code"] == 554 and rows[0]["enhanced_code"] == "5.1.1",
              "only the DATA-stage bounce suppressed: %r" % rows)
        for local in ("fail571", "fail550bare", "fail451"):
            check(get_client(crier, clients[local])["email_suppressed"] is False,
                  "%s is not suppressed" % local)
            _, dec, _ = post(crier, message(clients[local], "budget_summary"))
            check(dec["primary_channel"] == "email", "%s still gets email: %r" % (local, dec))
        _, dec, _ = post(crier, message(clients["data554"], "budget_summary"))
        check(dec["skip_reason"] == "suppressed", "data554 is: %r" % dec)
        check(metric(crier, "crier_email_suppressions_total") == 1, "one suppression counted")


h.run([test_rcpt_bounce_then_suppressed, test_fallback_and_check_before_send,
       test_data_stage_policy_and_transient])
