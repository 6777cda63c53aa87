"""Per-sender send rates shared through Redis: two crier processes on one
database send live SMS to tests/support/provider_stub.py under one Twilio
limit of 5 a second (burst 1), and together stay under it; a crier whose
Redis does not answer keeps delivering under its own local limit.

The limit is judged on the times the limiter granted each send, which crier
logs at debug level with the deciding clock (Redis's, one for both
processes): with burst 1, grants of one sender are at least 1/RATE apart on
that clock, exactly. When a loaded stub read the requests says nothing about
the limiter, so its clock is used only for what does not need precision."""
import json

import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness as h

CONSENT_ALL = {"sms": True, "whatsapp": True}

RATE = 5         # messages a second per sender
BURST = 1        # at once from idle: with 1, conforming sends are >= 1/RATE apart
MESSAGES = 100
# The logged grant times are Redis's microseconds printed through a double:
# off by well under a microsecond, never by a scheduling delay.
CLOCK_S = 2e-6


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def post(crier, body):
    status, _, js = crier.post_comm(body)
    check(status == 202, "POST answered %s: %r" % (status, js))
    return js["communication_id"], js["decision"]


def sms_env(stub, from_number, redis_url):
    return dict(h.stub_env(stub, whatsapp=False, from_number=from_number),
                CRIER_TRANSPORT_SMS="live", CRIER_REDIS_URL=redis_url,
                CRIER_RATE_TWILIO="%d/s,%d" % (RATE, BURST),
                # this test is about the shared limit, not about a slow
                # Redis: on a loaded machine a reply can take longer than
                # the default 50 ms, and that grant would be a local one
                CRIER_REDIS_TIMEOUT_MS="2000",
                # the grant lines the limit is judged by
                CRIER_LOG_LEVEL="debug")


def fresh_from_number():
    # A sender of its own per run: the shared Redis may still hold another
    # run's bucket for a fixed number.
    return "+1500555%04d" % random.randrange(10000)


def sms_body(i):
    return h.comm_body(i, phone="+1555556%04d" % i, consent=CONSENT_ALL,
                       message_type="error_notification", urgency="critical")


def metric(crier, name, labels=""):
    status, _, text = crier.request("GET", "/metrics", token=None)
    check(status == 200 and isinstance(text, str), "GET /metrics answered %s" % status)
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    check(m, "%s%s is exposed" % (name, labels))
    return float(m.group(1))


def grants(criers, clock):
    """The times (s, on the deciding clock) at which the rate limiter of
    each crier in criers granted a send, from their debug logs."""
    times = []
    for c in criers:
        with open(c.log_path, "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"granted"' not in line:
                    continue
                ev = json.loads(line)
                if ev.get("component") == "ratelimit" and ev.get("event") == "granted":
                    check(ev.get("clock") == clock,
                          "a grant decided by the %s clock: %r" % (clock, ev))
                    times.append(float(ev["at"]))
    return sorted(times)


def rates(times):
    """(the most grants in any window of 1 s, the smallest gap between two
    grants): with burst 1 the gap bounds the first exactly."""
    most = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        most = max(most, i - j + 1)
    gap = min((b - a for a, b in zip(times, times[1:])), default=float("inf"))
    return most, gap


def test_two_processes_share_the_limit(tmp):
    db = h.new_database("rl_shared")
    redis_url = h.env_redis_url()
    with h.ProviderStub(os.path.join(tmp, "stub"),
                        ["--twilio-account-sid", h.STUB_ACCOUNT_SID]) as stub:
        env = sms_env(stub, fresh_from_number(), redis_url)
        with h.Crier(db, os.path.join(tmp, "a"), env=env) as a, \
                h.Crier(db, os.path.join(tmp, "b"), env=env) as b:
            ids = []
            for i in range(MESSAGES):
                cid, dec = post(a if i % 2 == 0 else b, sms_body(i))
                check(dec["primary_channel"] == "sms", "live SMS first: %r" % dec)
                ids.append(cid)
            final = a.wait_final(ids, timeout=60)
            bad = [(c["status"], c["channel"]) for c in final.values()
                   if c["status"] != "sent" or c["channel"] != "sms"]
            check(not bad, "all %d sent by SMS; not: %r" % (MESSAGES, bad[:5]))

            sent = len(stub.requests("twilio"))
            check(sent == MESSAGES, "one request per message (%d)" % sent)
            times = grants((a, b), "redis")
            # A grant may go unused (the send is put back for another
            # reason), never a send go without one.
            check(len(times) >= MESSAGES, "a grant per send: %d grants" % len(times))
            most, gap = rates(times)
            span = times[-1] - times[0]
            print("grants: %d; most in any 1 s: %d; closest two %.6f s apart; %.1f s in all"
                  % (len(times), most, gap, span))
            check(gap >= 1.0 / RATE - CLOCK_S,
                  "grants at least %.1f s apart: %.6f" % (1.0 / RATE, gap))
            check(most <= RATE, "never more than %d a second: %d" % (RATE, most))
            # Each process alone would allow RATE a second: together they
            # would finish in half the time if the limit were not shared.
            least = (len(times) - BURST) / RATE - CLOCK_S * len(times)
            check(span >= least, "%d grants took %.1f s, at least %.1f"
                  % (len(times), span, least))

            deferred = (metric(a, "crier_ratelimit_deferred_total", '{provider="twilio"}')
                        + metric(b, "crier_ratelimit_deferred_total", '{provider="twilio"}'))
            check(deferred > 0, "messages waited for the limit: %g" % deferred)
            for c in (a, b):
                check(metric(c, "crier_ratelimit_local_fallback_total") == 0,
                      "Redis decided every send")
            # Waiting for a slot is not an attempt: no message used up more
            # than its one send.
            rows = h.psql(db, "SELECT max(attempts), count(*) FILTER (WHERE attempts <> 1)"
                              " FROM communications")
            check(rows[0] == ["1", "0"], "every message took exactly one attempt: %r" % rows)
            rows = h.psql(db, "SELECT count(*) FROM delivery_events"
                              " WHERE event_type = 'rate_limited'")
            check(int(rows[0][0]) > 0, "deferrals are recorded as rate_limited events")


def test_without_redis_delivery_continues(tmp):
    db = h.new_database("rl_local")
    closed = "redis://127.0.0.1:%d/0" % h.free_port()
    n = 10
    with h.ProviderStub(os.path.join(tmp, "stub"),
                        ["--twilio-account-sid", h.STUB_ACCOUNT_SID]) as stub:
        env = sms_env(stub, fresh_from_number(), closed)
        with h.Crier(db, tmp, env=env) as crier:
            ids = [post(crier, sms_body(200 + i))[0] for i in range(n)]
            final = crier.wait_final(ids, timeout=30)
            check(all(c["status"] == "sent" for c in final.values()),
                  "delivered without Redis: %r" % [c["status"] for c in final.values()])
            sent = len(stub.requests("twilio"))
            check(sent == n, "one request per message (%d)" % sent)
            times = grants((crier,), "local")
            check(len(times) >= n, "a grant per send: %d grants" % len(times))
            most, gap = rates(times)
            print("without Redis: most grants in any 1 s: %d; closest two %.6f s apart"
                  % (most, gap))
            check(gap >= 1.0 / RATE - CLOCK_S, "the local limiter still spaces sends: %.6f" % gap)
            check(most <= RATE, "the local limiter still holds the rate: %d" % most)
            check(metric(crier, "crier_ratelimit_local_fallback_total") > 0,
                  "the local decisions are counted")


h.run([test_two_processes_share_the_limit, test_without_redis_delivery_continues])
