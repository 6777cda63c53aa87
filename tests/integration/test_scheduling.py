"""Scheduled communications wait for their time, with the shipped rules.

A NORMAL message for a client whose local time is in the middle of the
night is answered `pending` with a send_at at the next 09:00 local, and is
not sent while it waits; a CRITICAL one for the same client goes at once.
The client's zone is chosen at run time among zones whose local hour is
between 01:00 and 05:00 now, so the test does not depend on when it runs.
"""
import datetime
import os
import shutil
import sys
import tempfile
import time
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ZONES = ["Pacific/Kiritimati", "Pacific/Auckland", "Asia/Tokyo", "Asia/Kolkata", "Asia/Dubai",
         "Europe/Berlin", "Atlantic/Azores", "America/Sao_Paulo", "America/New_York",
         "America/Chicago", "America/Denver", "America/Los_Angeles", "Pacific/Honolulu",
         "Pacific/Pago_Pago", "Asia/Kathmandu", "Australia/Adelaide", "Asia/Bangkok",
         "Europe/Moscow", "Africa/Lagos", "America/Halifax", "Asia/Shanghai",
         "Australia/Brisbane", "America/Anchorage", "Atlantic/Cape_Verde"]

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


def night_zone():
    now = datetime.datetime.now(datetime.timezone.utc)
    for name in ZONES:
        local = now.astimezone(zoneinfo.ZoneInfo(name))
        # well inside quiet hours and far from 09:00, whatever the rules' slack
        if 1 <= local.hour < 5:
            return name, local
    return None, None


def main():
    tz, local = night_zone()
    if not check(tz is not None, "some listed zone is between 01:00 and 05:00 now"):
        harness.summary(passed, failed)
    tmp = tempfile.mkdtemp(prefix="crier-sched-")
    db = harness.new_database("sched")
    crier = None
    try:
        rules = os.path.join(harness.source_dir(), "rules")  # the shipped timing
        crier = harness.Crier(db, os.path.join(tmp, "c"), env={"CRIER_RULES_DIR": rules})
        st, _h, later = crier.post_comm(harness.comm_body(1, timezone=tz, urgency="normal"))
        check(st == 202 and later.get("status") == "pending",
              "a NORMAL message at %s in %s is pending: %s %r" % (local, tz, st, later))
        send_at = later.get("decision", {}).get("send_at", "")
        when = datetime.datetime.strptime(send_at, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc) if send_at else None
        check(when is not None and when.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%H:%M") ==
              "09:00", "it is scheduled for 09:00 local (send_at %s)" % send_at)

        st, _h, now = crier.post_comm(harness.comm_body(2, timezone=tz, urgency="critical"))
        check(st == 202 and now.get("status") == "queued",
              "a CRITICAL one for the same hour goes at once: %r" % (now,))
        done = crier.wait_final([now["communication_id"]], timeout=30)
        check(done[now["communication_id"]].get("status") == "delivered",
              "the CRITICAL one was delivered")
        time.sleep(2)  # a claim of the pending row would have happened by now
        st, _h, body = crier.get_comm(later["communication_id"])
        check(st == 200 and body.get("status") == "pending" and body.get("attempts") == 0,
              "the NORMAL one still waits, untried: %r" % ({k: body.get(k) for k in
                                                             ("status", "attempts", "send_at")},))
        emails = [n for n in os.listdir(crier.outbox) if n.endswith(".eml")]
        check(emails == ["%s.eml" % now["communication_id"]],
              "only the CRITICAL message is in the outbox: %r" % emails)
    finally:
        if crier is not None:
            crier.stop()
        harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
