"""Retries against a real SMTP server that fails on purpose.

The sink answers the first two RCPT attempts of every recipient with 451
(--fail-first 2), always 451 to fail451@ and always 550 to fail550@. The
shipped fallback rules decide, with their retry delays cut to 1, 1 and 1
seconds (four attempts in all):
  * an ordinary recipient is sent on attempt 3, after two scheduled retries;
  * fail550@ (550 5.1.1, the mailbox does not exist) is permanent: bounced
    after 1 attempt, the 550 in error_message;
  * fail451@ is transient every time: failed after 4 attempts.
"""
import email
import email.policy
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)
    return cond


def messages(sink):
    return [p for p in sink.files() if p.endswith(".eml")]


def main():
    tmp = tempfile.mkdtemp(prefix="crier-retry-")
    db = harness.new_database("retry")
    sink = None
    crier = None
    try:
        sink = harness.SmtpSink(os.path.join(tmp, "sink"), extra_args=["--fail-first", "2"])
        crier = harness.Crier(db, os.path.join(tmp, "crier"), env={
            "CRIER_TRANSPORT": "live",
            "CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port,
            "CRIER_SMTP_TLS": "off",
            "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>",
            "CRIER_RULES_DIR": harness.rules_dir(retry_delays=[1, 1, 1]),
        })
        # HIGH (a critical message gets one quick retry, not the ladder), to a
        # client for whom it is early afternoon: sent at once
        zone = harness.daytime_zone()
        cases = {
            "eventually": harness.comm_body(1, email="eventually@example.com", urgency="high",
                                            timezone=zone),
            "fail550": harness.comm_body(2, email="fail550@example.com", urgency="high",
                                            timezone=zone),
            "fail451": harness.comm_body(3, email="fail451@example.com", urgency="high",
                                            timezone=zone),
        }
        ids = {}
        for name, b in cases.items():
            st, _h, js = crier.post_comm(b)
            if check(st == 202 and isinstance(js, dict), "%s accepted (%s %r)" % (name, st, js)):
                ids[name] = js["communication_id"]
                check(js["decision"].get("fallback_channels") == [],
                      "%s: email is the only channel (no fallback to hide the retries: %r)"
                      % (name, js["decision"].get("fallback_channels")))

        t0 = time.time()
        try:
            final = crier.wait_final(list(ids.values()), timeout=90)
        except TimeoutError as e:
            check(False, "all three reached a final status: %s" % e)
            final = {v: crier.get_comm(v)[2] for v in ids.values()}
        print("final after %.1f s" % (time.time() - t0), flush=True)

        def view(name):
            c = final.get(ids.get(name))
            return c if isinstance(c, dict) else {}

        c = view("eventually")
        evs = c.get("events") or []
        check(c.get("status") == "sent", "eventually: status %r, expected sent" % c.get("status"))
        check(c.get("attempts") == 3, "eventually: attempts %r, expected 3" % c.get("attempts"))
        retries = [e for e in evs if str(e.get("event_type", "")).startswith("retry")]
        check(len(retries) == 2, "eventually: two retry events (%r)"
              % [e.get("event_type") for e in evs])
        check([e.get("attempt") for e in retries] == [1, 2],
              "eventually: the retries belong to attempts 1 and 2 (%r)"
              % [e.get("attempt") for e in retries])
        sent = [e for e in evs if e.get("event_type") == "sent"]
        check(len(sent) == 1 and sent[0].get("attempt") == 3,
              "eventually: one sent event, on attempt 3 (%r)" % sent)
        check(c.get("error_message") is None,
              "eventually: no error left once sent (%r)" % c.get("error_message"))

        c = view("fail550")
        check(c.get("status") == "bounced", "fail550: status %r, expected bounced" % c.get("status"))
        check(c.get("attempts") == 1, "fail550: attempts %r, expected 1" % c.get("attempts"))
        check("550" in str(c.get("error_message")),
              "fail550: error_message names the 550 (%r)" % c.get("error_message"))
        check(not any(str(e.get("event_type", "")).startswith("retry") for e in c.get("events") or []),
              "fail550: a permanent failure is not retried")
        check("fail550@" not in str(c), "fail550: the address appears nowhere in the answer")

        c = view("fail451")
        check(c.get("status") == "failed", "fail451: status %r, expected failed" % c.get("status"))
        check(c.get("attempts") == 4, "fail451: attempts %r, expected 4" % c.get("attempts"))
        check("451" in str(c.get("error_message")),
              "fail451: error_message names the 451 (%r)" % c.get("error_message"))
        retries = [e for e in c.get("events") or [] if str(e.get("event_type", "")).startswith("retry")]
        check(len(retries) == 3, "fail451: three retries before giving up (%d)" % len(retries))

        # Only the message that finally got through is at the sink, once.
        time.sleep(1)
        got = []
        for path in messages(sink):
            with open(path, "rb") as f:
                msg = email.message_from_bytes(f.read(), policy=email.policy.default)
            got.append(str(msg.get("X-Crier-Id", "")).strip())
        check(got == [ids.get("eventually")], "the sink holds exactly the one sent message (%r)" % got)
    finally:
        if crier is not None:
            try:
                crier.stop()
            except Exception as e:
                check(False, "crier stopped cleanly: %s" % e)
        if sink is not None:
            sink.stop()
        harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
