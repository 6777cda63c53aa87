"""Retry policy that listens, against the provider stub and a real crier:

* a Twilio 429 with "Retry-After: 2" on a CRITICAL error notification is
  retried after the provider's 2 s (plus at most a second), not after the
  ladder's minutes, and is then sent on SMS;
* a CRITICAL message whose SMS keeps failing gets one quick retry, then goes
  by email, instead of sitting 21 minutes on the 1/5/15 ladder;
* a LOW message for a client reachable only by SMS, who heard from us an
  hour ago (so LOW would batch), goes on its own by SMS: a digest is only
  formed on email;
* a request without "urgency" gets its trigger point's default.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SUFFIX_429 = "4291"
SUFFIX_DOWN = "5001"


def sms_only(i, suffix, **kw):
    """A body for a client with a phone and SMS consent, and no email."""
    body = h.comm_body(i, phone="+1555%03d%s" % (i, suffix),
                       consent={"sms": True, "whatsapp": False}, **kw)
    del body["client"]["email"]
    return body


def twilio_sends(stub, suffix):
    return [r for r in stub.requests("twilio") if suffix in r.get("body", "")]


def test_critical_rate_limit_waits_the_window(tmp):
    db = h.new_database("retry_after")
    with h.ProviderStub(os.path.join(tmp, "stub"),
                        ["--recipient-mode", SUFFIX_429 + "=first:1:http429:2"]) as stub, \
            h.Crier(db, tmp, env=h.live_env(stub, whatsapp=False)) as crier:
        body = sms_only(1, SUFFIX_429, message_type="error_notification", urgency="critical")
        status, _, js = crier.post_comm(body)
        assert status == 202, (status, js)
        cid = js["communication_id"]
        assert js["decision"]["primary_channel"] == "sms", js
        final = crier.wait_final([cid], timeout=60)[cid]
        assert final["status"] in ("sent", "delivered"), final
        assert final["channel"] == "sms", final
        sends = twilio_sends(stub, SUFFIX_429)
        assert [r["status"] for r in sends] == [429, 201], [r["status"] for r in sends]
        gap = sends[1]["time"] - sends[0]["time"]
        # The provider's window is a floor; the ladder's first step is 54 s.
        # On a loaded machine a claim may come late, never early.
        assert 2.0 <= gap < 30.0, gap
        print("retry gap %.2f s" % gap)


def test_critical_moves_on_after_one_quick_retry(tmp):
    db = h.new_database("retry_after")
    sink = h.SmtpSink(os.path.join(tmp, "sink"))
    try:
        with h.ProviderStub(os.path.join(tmp, "stub"),
                            ["--recipient-mode", SUFFIX_DOWN + "=http500"]) as stub, \
                h.Crier(db, tmp, env=h.live_env(stub, sink, whatsapp=False)) as crier:
            body = h.comm_body(2, phone="+1555002" + SUFFIX_DOWN,
                               consent={"sms": True, "whatsapp": False},
                               message_type="error_notification", urgency="critical")
            status, _, js = crier.post_comm(body)
            assert status == 202, (status, js)
            cid = js["communication_id"]
            assert js["decision"]["fallback_channels"] == ["email"], js
            started = time.time()
            final = crier.wait_final([cid], timeout=60)[cid]
            took = time.time() - started
            assert final["status"] in ("sent", "delivered"), final
            assert final["channel"] == "email", final
            sends = twilio_sends(stub, SUFFIX_DOWN)
            assert [r["status"] for r in sends] == [500, 500], [r["status"] for r in sends]
            # one quick retry (3 s), not the ladder's minute
            assert 3.0 <= sends[1]["time"] - sends[0]["time"] < 30.0, sends
            assert took < 50.0, took
    finally:
        sink.stop()


def test_low_for_an_sms_only_client_goes_alone(tmp):
    db = h.new_database("retry_after")
    with h.ProviderStub(os.path.join(tmp, "stub")) as stub, \
            h.Crier(db, tmp, env=h.live_env(stub, whatsapp=False)) as crier:
        first = sms_only(3, "3001", message_type="reminder", urgency="normal")
        status, _, js = crier.post_comm(first)
        assert status == 202, (status, js)
        crier.wait_final([js["communication_id"]], timeout=30)
        # an hour-old contact would be as good; this one is seconds old
        low = sms_only(3, "3001", message_type="reminder", urgency="low",
                       plan_id=first["plan_id"], client_id=first["client_id"])
        status, _, js = crier.post_comm(low)
        assert status == 202, (status, js)
        d = js["decision"]
        assert d["primary_channel"] == "sms" and not d.get("batch"), d
        cid = js["communication_id"]
        final = crier.wait_final([cid], timeout=60)[cid]
        assert final["status"] in ("sent", "delivered"), final
        assert final["channel"] == "sms", final
        assert h.psql(db, "SELECT count(*) FROM communications"
                          " WHERE message_type = 'digest'") == [["0"]]


def test_urgency_defaults_by_trigger_point(tmp):
    db = h.new_database("retry_after")
    with h.Crier(db, tmp) as crier:
        want = {"error_notification": ("critical", 0), "vendor_options": ("high", 1),
                "blueprint_delivery": ("high", 1), "welcome": ("normal", 2)}
        for i, (mtype, (urgency, priority)) in enumerate(sorted(want.items())):
            body = h.comm_body(10 + i, message_type=mtype)
            del body["urgency"]
            status, _, js = crier.post_comm(body)
            assert status == 202, (mtype, status, js)
            assert js["decision"]["priority"] == priority, (mtype, js["decision"])
            _, _, got = crier.get_comm(js["communication_id"])
            assert got["urgency"] == urgency, (mtype, got)


h.run([test_critical_rate_limit_waits_the_window, test_critical_moves_on_after_one_quick_retry,
       test_low_for_an_sms_only_client_goes_alone, test_urgency_defaults_by_trigger_point])
