"""The Twilio circuit: refused credentials stop SMS at once, a probe brings
it back.

One crier with live SMS against the provider stub and live email against
the SMTP sink, 2 workers claiming 4 messages at a time, a probe every 2 s.

1. The stub answers every Twilio request 401 (code 20003). Forty critical
   error notifications to clients with SMS consent (SMS first, email as the
   fallback) all end sent by email, each after one SMS attempt failed as
   auth_failure. Once the first refusal opened the circuit no more requests
   go to Twilio, so the stub sees at most what was claimed before it opened
   (workers x claim batch) plus one probe per probe interval, far fewer
   than forty. The opening is logged once at CRITICAL as
   provider_auth_failed, the auth token never reaches the log, and /metrics
   says crier_provider_circuit_open{provider="twilio"} 1.
2. The stub is switched to success. After the probe interval the next SMS
   goes through as the probe, is accepted and closes the circuit (INFO
   provider_auth_recovered, the metric back at 0); of twenty more messages
   only those in flight while the probe was pending may go by email, the
   rest, the last ones in any case, are sent by SMS at the first attempt.
"""
import json
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

WORKERS = 2
CLAIM_BATCH = 4
PROBE_MS = 2000
FIRST = 40
SECOND = 20
# The last ones of the second round were posted well after the probe and
# must all go by SMS.
SECOND_TAIL = 10


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def sms_body(i):
    """A critical error notification to a client with SMS consent only:
    SMS first, email as the one fallback."""
    return h.comm_body(i, phone="+1555%03d8001" % i, consent={"sms": True, "whatsapp": False},
                       message_type="error_notification", urgency="critical")


def post(crier, body):
    status, _, js = crier.post_comm(body)
    check(status == 202 and isinstance(js, dict), "POST answered %s: %r" % (status, js))
    check((js.get("decision") or {}).get("primary_channel") == "sms",
          "SMS first: %r" % js.get("decision"))
    return js["communication_id"]


def set_stub_mode(stub, mode):
    req = urllib.request.Request(stub.url + "/_stub/mode", method="POST",
                                 data=json.dumps({"mode": mode}).encode("utf-8"),
                                 headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        check(resp.status == 200, "the stub took mode %s: %s" % (mode, resp.status))


def wait_all_final(db, ids, timeout):
    finals = "', '".join(h.FINAL_STATUSES)
    wanted = "{%s}" % ",".join(ids)

    def left():
        rows = h.psql(db, "SELECT count(*) FROM communications WHERE id = ANY(:'ids'::uuid[])"
                          " AND status IN ('%s')" % finals, ids=wanted)
        return int(rows[0][0]) == len(ids)

    h.wait_until(left, timeout, 0.2, what="%d communications final" % len(ids))


def outcomes(db, ids):
    """{id: (status, channel, attempts, [error_details of failed SMS attempts])}."""
    wanted = "{%s}" % ",".join(ids)
    out = {}
    for cid, st, ch, att in h.psql(db, "SELECT id, status, coalesce(channel, ''), attempts"
                                       " FROM communications WHERE id = ANY(:'ids'::uuid[])",
                                   ids=wanted):
        out[cid] = [st, ch, int(att), []]
    for cid, details in h.psql(db, "SELECT communication_id, coalesce(error_details, '')"
                                   " FROM delivery_events WHERE communication_id ="
                                   " ANY(:'ids'::uuid[]) AND channel = 'sms' AND attempt > 0"
                                   " AND event_type NOT IN ('sent', 'delivered') ORDER BY id",
                               ids=wanted):
        out[cid][3].append(details)
    return out


def circuit_metric(crier):
    """crier_provider_circuit_open{provider="twilio"} from /metrics, or None."""
    st, _, text = crier.request("GET", "/metrics", token=None)
    check(st == 200 and isinstance(text, str), "GET /metrics answered %s" % st)
    for line in text.splitlines():
        m = re.match(r'^crier_provider_circuit_open\{([^}]*)\}\s+(\S+)$', line)
        if m and re.search(r'(^|,)provider="twilio"(,|$)', m.group(1)):
            return float(m.group(2))
    return None


def twilio_requests(stub):
    return stub.requests("twilio")


def test_circuit(tmp):
    db = h.new_database("circuit")
    # No auth token for the stub: it posts no receipts, so an accepted SMS
    # stays "sent".
    stub_args = ["--twilio-account-sid", h.STUB_ACCOUNT_SID, "--mode", "http401"]
    with h.ProviderStub(os.path.join(tmp, "stub"), stub_args) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink:
        env = h.live_env(
            stub, sink, whatsapp=False,
            CRIER_WORKERS=str(WORKERS),
            CRIER_CLAIM_BATCH=str(CLAIM_BATCH),
            CRIER_CIRCUIT_PROBE_MS=str(PROBE_MS),
            # Every request the stub sees must be the circuit's doing, not
            # held back by our own per-sender quota.
            CRIER_RATE_TWILIO="off",
            CRIER_PROVIDER_TIMEOUT_MS="2000",
            CRIER_RULES_DIR=h.rules_dir(retry_delays=[1, 1, 1]))
        with h.Crier(db, os.path.join(tmp, "crier"), env=env) as crier:
            check(circuit_metric(crier) == 0, "the circuit starts closed: %r"
                  % circuit_metric(crier))

            # ---- 1. Twilio refuses our credentials
            started = time.monotonic()
            first_ids = [post(crier, sms_body(i)) for i in range(FIRST)]
            wait_all_final(db, first_ids, 30)
            took = time.monotonic() - started
            got = outcomes(db, first_ids)
            reqs = twilio_requests(stub)
            # At most one probe per interval while the phase ran, plus the
            # one that may be due at its very end.
            bound = WORKERS * CLAIM_BATCH + int(took * 1000 / PROBE_MS) + 1
            refused = sum(1 for o in got.values()
                          if any("circuit open" in d for d in o[3]))
            opened = [r for r in h.log_events(crier.log(), "provider_auth_failed")
                      if r.get("provider") == "twilio"]
            metric = circuit_metric(crier)
            print("401 round: %d messages final in %.1f s; %d Twilio requests at the stub"
                  " (bound %d); %d refused by the open circuit; %d provider_auth_failed line(s);"
                  " metric %r" % (FIRST, took, len(reqs), bound, refused, len(opened), metric),
                  flush=True)
            bad = ["%s: %r" % (cid, o) for cid, o in got.items()
                   if o[0] != "sent" or o[1] != "email" or o[2] != 2 or len(o[3]) != 1
                   or not o[3][0].startswith("auth_failure")]
            check(not bad, "every message: one SMS attempt failed as auth_failure, then sent by"
                           " email:\n  " + "\n  ".join(bad[:10]))
            check(all(r.get("mode") == "http401" and r.get("status") == 401 for r in reqs),
                  "every request the stub saw was refused 401")
            check(1 <= len(reqs) <= bound and len(reqs) < FIRST // 2,
                  "%d Twilio requests for %d messages, at most %d may be in flight or probes"
                  % (len(reqs), FIRST, bound))
            check(refused >= FIRST - bound and refused + len(reqs) == FIRST,
                  "%d refused by the open circuit without a request + %d requests != %d"
                  % (refused, len(reqs), FIRST))
            check(len(opened) >= 1 and all(r.get("level") == "CRITICAL" for r in opened),
                  "a CRITICAL provider_auth_failed line for twilio: %r" % opened)
            check(len(opened) <= 1 + int(took * 1000 / PROBE_MS) + 1,
                  "not one line per refused message: %d lines" % len(opened))
            check(metric == 1, "crier_provider_circuit_open{provider=\"twilio\"} is 1: %r"
                  % metric)
            sink.wait_for(FIRST, timeout=10)

            # ---- 2. the credentials work again
            set_stub_mode(stub, "success")
            switched = len(twilio_requests(stub))
            time.sleep(PROBE_MS / 1000.0 + 0.5)
            check(circuit_metric(crier) == 1, "still open until a probe went through")
            second_ids = [post(crier, sms_body(100 + i)) for i in range(SECOND)]
            wait_all_final(db, second_ids, 30)
            got = outcomes(db, second_ids)
            after = [r for r in twilio_requests(stub)[switched:]]
            by_sms = [cid for cid in second_ids if got[cid][1] == "sms"]
            by_email = [cid for cid in second_ids if got[cid][1] == "email"]
            recovered = h.log_events(crier.log(), "provider_auth_recovered")
            recovered = [r for r in recovered if r.get("provider") == "twilio"]
            metric = circuit_metric(crier)
            print("recovery round: %d by SMS, %d by email (positions %s); %d Twilio requests"
                  " after the switch; %d provider_auth_recovered line(s); metric %r"
                  % (len(by_sms), len(by_email),
                     [second_ids.index(c) for c in by_email], len(after), len(recovered),
                     metric), flush=True)
            bad = ["%s: %r" % (cid, got[cid]) for cid in by_sms
                   if got[cid][0] != "sent" or got[cid][2] != 1 or got[cid][3]]
            check(not bad, "sent by SMS at the first attempt:\n  " + "\n  ".join(bad[:10]))
            bad = ["%s: %r" % (cid, got[cid]) for cid in by_email
                   if got[cid][0] != "sent" or len(got[cid][3]) != 1
                   or "circuit open" not in got[cid][3][0]]
            check(not bad, "any sent by email were refused while the probe was pending:\n  "
                  + "\n  ".join(bad[:10]))
            check(len(by_sms) + len(by_email) == SECOND, "every message sent on SMS or email")
            check(len(by_email) <= WORKERS * CLAIM_BATCH,
                  "%d went by email: more than could be in flight during the probe"
                  % len(by_email))
            tail = second_ids[-SECOND_TAIL:]
            check(all(c in by_sms for c in tail), "the last %d went by SMS: %r"
                  % (SECOND_TAIL, [got[c][:3] for c in tail]))
            check(len(after) == len(by_sms) and all(r.get("status") in (200, 201)
                                                    for r in after),
                  "one accepted request per SMS sent: %d requests, %d by SMS"
                  % (len(after), len(by_sms)))
            check(len(recovered) == 1 and recovered[0].get("level") == "INFO",
                  "one INFO provider_auth_recovered line for twilio: %r" % recovered)
            check(metric == 0, "crier_provider_circuit_open{provider=\"twilio\"} is 0: %r"
                  % metric)

            text = crier.log()
            check(h.STUB_AUTH_TOKEN not in text, "the auth token is not in the log")
            check("+1555" not in text, "no phone number in the log")


h.run([test_circuit])
