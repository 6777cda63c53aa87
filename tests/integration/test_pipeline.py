"""A slow provider does not hold up the worker that called it.

One crier with a single delivery worker (claim batch 8), live SMS against
the provider stub and live email against the SMTP sink. The stub holds every
answer to one recipient for SLOW_S seconds. One SMS to that recipient is
posted, then, while its call is in flight, ten emails: the same worker must
claim, send and record every email while the SMS is still waiting for its
answer (its row still 'sending'), and the SMS must end sent once the stub
answers. A worker that waited for its calls before taking more work would
record nothing until the slow answer came back.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SLOW_S = 6
EMAILS = 10


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def status_of(db, cid):
    rows = h.psql(db, "SELECT status FROM communications WHERE id = :'id'", id=cid)
    return rows[0][0] if rows else None


def test_slow_call_does_not_block_the_worker(tmp):
    db = h.new_database("pipeline")
    stub_args = ["--twilio-account-sid", h.STUB_ACCOUNT_SID,
                 "--recipient-mode", "9001=slow:%d" % SLOW_S]
    with h.ProviderStub(os.path.join(tmp, "stub"), stub_args) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink:
        env = h.live_env(stub, sink, whatsapp=False, CRIER_WORKERS="1", CRIER_CLAIM_BATCH="8",
                         CRIER_RATE_TWILIO="off",
                         CRIER_PROVIDER_TIMEOUT_MS=str((SLOW_S + 10) * 1000))
        with h.Crier(db, os.path.join(tmp, "crier"), env=env) as crier:
            st, _, js = crier.post_comm(h.comm_body(
                0, phone="+15550009001", consent={"sms": True, "whatsapp": False},
                message_type="error_notification", urgency="critical"))
            check(st == 202 and js["decision"]["primary_channel"] == "sms",
                  "SMS first: %s %r" % (st, js))
            sms_id = js["communication_id"]
            # The slow call is under way (its row claimed, the worker's only
            # one) before the emails arrive.
            h.wait_until(lambda: status_of(db, sms_id) == "sending", timeout=10, interval=0.05,
                         what="the SMS claimed")
            time.sleep(0.3)
            sent_at = time.monotonic()
            ids = []
            for i in range(EMAILS):
                st, _, js = crier.post_comm(h.comm_body(i + 1))
                check(st == 202, "email POST answered %s" % st)
                ids.append(js["communication_id"])

            def emails_final():
                rows = h.psql(db, "SELECT count(*) FROM communications"
                                  " WHERE id = ANY(string_to_array(:'ids', ',')::uuid[])"
                                  " AND status = 'sent'", ids=",".join(ids))
                return int(rows[0][0]) == EMAILS
            h.wait_until(emails_final, timeout=SLOW_S - 1, interval=0.05,
                         what="%d emails sent while the SMS waits" % EMAILS)
            took = time.monotonic() - sent_at
            sms_status = status_of(db, sms_id)
            print("%d emails sent %.2f s after the slow SMS went out; the SMS is %s"
                  % (EMAILS, took, sms_status))
            check(sms_status == "sending",
                  "the SMS is still in flight while the emails are recorded: %s" % sms_status)
            check(len(sink.files()) == EMAILS, "%d mails at the sink" % len(sink.files()))
            crier.wait_final([sms_id], timeout=SLOW_S + 15)
            check(status_of(db, sms_id) == "sent", "the slow SMS ends sent: %s"
                  % status_of(db, sms_id))
            print("the slow SMS ended sent %.1f s after it went out"
                  % (time.monotonic() - sent_at))


if __name__ == "__main__":
    h.run([test_slow_call_does_not_block_the_worker])
