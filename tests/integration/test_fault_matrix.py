"""The fault matrix: one crier with live SMS and WhatsApp against the provider
stub and live email against the SMTP sink, a batch of messages per fault,
each fault picked by the recipient (a phone number suffix for the stub, a
local part for the sink). Every message must reach a final status, and the
status, the number of attempts and the channels used must be what the
shipped rules say for that fault.

What the rules say (rules/fallback.lua, retry delays cut to 1, 1, 1 s):
  * transient and rate_limit: retried while the channel's attempt number is
    within the delays (3 retries, 4 attempts), then the next channel of the
    chain, or failed when there is none;
  * permanent, invalid_input and auth_failure: the next channel at once, or
    failed when there is none.
How each fault is classified (src/channel/twilio.c, whatsapp.c, smtp.c and
the transport): HTTP 500 and a timeout are transient, 429 is rate_limit,
Twilio 21211 and 21610 and WhatsApp 131047 are permanent, 401 is
auth_failure, SMTP 451 is transient and 550 permanent.
Chains (rules/channels.lua, fallback.lua): a critical error_notification of
a client with SMS consent goes SMS then email; a vendor_options message with
WhatsApp preferred and only WhatsApp consent goes WhatsApp then email; a
welcome to a client without a phone goes by email alone.

An accepted send is final as "sent": the stub posts no receipts here.
"""

import concurrent.futures
import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_ROW = 200
# Each timed-out attempt holds a worker for the whole provider timeout, and
# a message makes four of them before its fallback: 200 such messages alone
# would keep the 4 workers busy for 200 s, so this row sends fewer.
PER_ROW_TIMEOUT = 20
DELAYS = [1, 1, 1]
WORKERS = 4
PROVIDER_TIMEOUT_MS = 1000
FINAL_WAIT_S = 300

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "stub-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"
WA_PHONE_ID = "106540352242922"
WA_TOKEN = "stub-meta-token-0123456789abcdef"

# What fallback.lua's on_failure does with each category: retry (up to the
# number of delays) or move on at once.
RETRIED = ("transient", "rate_limit")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expected(first_channel, category, fallback):
    """(status, attempts, channels) the rules give a message whose first
    channel fails with category, given the fallback channel (or None), when
    the fallback channel succeeds."""
    on_first = len(DELAYS) + 1 if category in RETRIED else 1
    if category is None:
        return "sent", 1, (first_channel,)
    if fallback is None:
        return "failed", on_first, (first_channel,)
    return "sent", on_first + 1, (first_channel, fallback)


def sms_body(i, suffix):
    """A critical error notification to a client with SMS consent only:
    SMS first, email as the one fallback."""
    return h.comm_body(i, phone="+1555%03d%s" % (i, suffix), consent={"sms": True,
                                                                     "whatsapp": False},
                       message_type="error_notification", urgency="critical")


def wa_body(i, suffix):
    """Vendor options with WhatsApp preferred and WhatsApp consent only:
    WhatsApp first, email as the one fallback."""
    return h.comm_body(i, phone="+1555%03d%s" % (i, suffix),
                       consent={"sms": False, "whatsapp": True}, message_type="vendor_options",
                       urgency="high", preferred_channel="whatsapp")


def email_body(i, local):
    """A welcome to a client without a phone: email alone, no fallback."""
    return h.comm_body(i, email="%s@r%d.example.com" % (local, i))


# name, how many, body(i), stub mode by suffix (or None), first channel,
# category of the first channel's failure (None: success), fallback channel,
# what every failed attempt on the first channel records (the provider's
# code, the SMTP reply code, or the transport's timeout)
ROWS = [
    ("success", PER_ROW, lambda i: sms_body(i, "7001"), ("7001", "success"), "sms", None,
     "email", None),
    ("transient_500", PER_ROW, lambda i: sms_body(i, "7002"), ("7002", "http500"), "sms",
     "transient", "email", "20500"),
    ("rate_limit_429", PER_ROW, lambda i: sms_body(i, "7003"), ("7003", "http429:1"), "sms",
     "rate_limit", "email", "20429"),
    ("invalid_number_21211", PER_ROW, lambda i: sms_body(i, "7004"), ("7004", "error:21211"),
     "sms", "permanent", "email", "21211"),
    ("unsubscribed_21610", PER_ROW, lambda i: sms_body(i, "7005"), ("7005", "error:21610"),
     "sms", "permanent", "email", "21610"),
    ("whatsapp_131047", PER_ROW, lambda i: wa_body(i, "7006"), ("7006", "error:131047"),
     "whatsapp", "permanent", "email", "131047"),
    ("auth_401", PER_ROW, lambda i: sms_body(i, "7007"), ("7007", "http401"), "sms",
     "auth_failure", "email", "20003"),
    ("timeout", PER_ROW_TIMEOUT, lambda i: sms_body(i, "7008"), ("7008", "slow:3"), "sms",
     "transient", "email", "timeout"),
    ("smtp_451", PER_ROW, lambda i: email_body(i, "fail451"), None, "email", "transient", None,
     "451"),
    ("smtp_550", PER_ROW, lambda i: email_body(i, "fail550"), None, "email", "permanent", None,
     "550"),
]


def stub_sends(row):
    """Requests the stub answers per message of row: every attempt on the
    first channel (the fallback is email, at the sink)."""
    _, attempts, channels = expected(*row[4:7])
    return attempts - (len(channels) - 1)


def post_all(crier, bodies):
    """Posts every body (a few at a time) and returns the ids in order."""
    def one(body):
        for _ in range(50):
            status, _, js = crier.post_comm(body)
            if status != 429 and status != 503:
                break
            time.sleep(0.2)  # intake pressure: the same request again, bounded
        check(status == 202 and isinstance(js, dict), "POST answered %s: %r" % (status, js))
        return js["communication_id"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, bodies))


def stub_requests_by_suffix(stub):
    """{suffix: count} of the sends the stub answered, by the recipient's
    last four digits."""
    counts = {}
    for r in stub.requests("twilio"):
        to = dict(urllib.parse.parse_qsl(r.get("body") or "")).get("To", "")
        counts[to[-4:]] = counts.get(to[-4:], 0) + 1
    for r in stub.requests("whatsapp"):
        try:
            to = str(json.loads(r.get("body") or "{}").get("to", ""))
        except ValueError:
            to = ""
        counts[to[-4:]] = counts.get(to[-4:], 0) + 1
    return counts


def test_fault_matrix(tmp):
    db = h.new_database("fault_matrix")
    modes = []
    for row in ROWS:
        if row[3]:
            modes += ["--recipient-mode", "%s=%s" % row[3]]
    with h.ProviderStub(os.path.join(tmp, "stub"), ["--twilio-account-sid", ACCOUNT_SID,
                                                  "--meta-access-token", WA_TOKEN,
                                                  "--wa-phone-number-id", WA_PHONE_ID]
                      + modes) as stub, h.SmtpSink(os.path.join(tmp, "sink")) as sink:
        env = {
            "CRIER_TRANSPORT": "live",
            "CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port,
            "CRIER_SMTP_TLS": "off",
            "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>",
            "TWILIO_API_BASE": stub.url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "WHATSAPP_API_BASE": stub.url, "WHATSAPP_PHONE_NUMBER_ID": WA_PHONE_ID,
            "WHATSAPP_ACCESS_TOKEN": WA_TOKEN,
            "CRIER_WORKERS": str(WORKERS),
            "CRIER_PROVIDER_TIMEOUT_MS": str(PROVIDER_TIMEOUT_MS),
            # The matrix is about failures, not throughput: at Twilio's
            # 1/s per sender the rows would take half an hour.
            "CRIER_RATE_TWILIO": "off",
            "CRIER_RATE_WHATSAPP": "off",
            "CRIER_RULES_DIR": h.rules_dir(retry_delays=DELAYS),
        }
        with h.Crier(db, os.path.join(tmp, "crier"), env=env) as crier:
            started = time.monotonic()
            bodies, owner = [], []
            for r, row in enumerate(ROWS):
                for i in range(row[1]):
                    bodies.append(row[2](i))
                    owner.append(r)
            ids = post_all(crier, bodies)
            posted = time.monotonic()
            print("posted %d messages in %.1f s (%s)"
                  % (len(ids), posted - started,
                     ", ".join("%s %d" % (row[0], row[1]) for row in ROWS)), flush=True)
            if PER_ROW_TIMEOUT < PER_ROW:
                print("note: the timeout row sends %d messages, not %d: each one holds a worker"
                      " for %d timed-out attempts of %.1f s" % (PER_ROW_TIMEOUT, PER_ROW,
                                                                len(DELAYS) + 1,
                                                                PROVIDER_TIMEOUT_MS / 1000.0),
                      flush=True)

            finals = "', '".join(h.FINAL_STATUSES)

            def none_left():
                rows = h.psql(db, "SELECT count(*) FROM communications"
                                  " WHERE status NOT IN ('%s')" % finals)
                return int(rows[0][0]) == 0

            try:
                h.wait_until(none_left, FINAL_WAIT_S, 0.5, what="every message final")
            except TimeoutError:
                left = h.psql(db, "SELECT status, count(*) FROM communications"
                                  " WHERE status NOT IN ('%s') GROUP BY status" % finals)
                raise AssertionError("not final after %d s: %r" % (FINAL_WAIT_S, left))
            done = time.monotonic()
            print("all final %.1f s after the last POST (%.1f s in all)"
                  % (done - posted, done - started), flush=True)

            comms = {r[0]: r[1:] for r in h.psql(
                db, "SELECT id, status, attempts, coalesce(channel, '') FROM communications")}
            used = {}
            for cid, ch in h.psql(db, "SELECT communication_id, channel FROM delivery_events"
                                      " WHERE attempt > 0 AND channel IS NOT NULL ORDER BY id"):
                seq = used.setdefault(cid, [])
                if ch not in seq:
                    seq.append(ch)
            # what each failed attempt recorded: provider code and error text
            errors = {}
            for cid, ch, code, details in h.psql(
                    db, "SELECT communication_id, channel,"
                        " coalesce(provider_response->>'error_code', ''),"
                        " coalesce(error_details, '') FROM delivery_events"
                        " WHERE attempt > 0 AND event_type NOT IN ('sent', 'delivered')"
                        " ORDER BY id"):
                errors.setdefault(cid, []).append((ch, code, details.lower()))

            problems = []
            for r, row in enumerate(ROWS):
                name, want = row[0], expected(row[4], row[5], row[6])
                mine = [cid for cid, o in zip(ids, owner) if o == r]
                statuses, attempts, channels, recorded = {}, {}, {}, {}
                for cid in mine:
                    mine_errors = [e for e in errors.get(cid, []) if e[0] == row[4]]
                    ok = [e for e in mine_errors if row[7] and (row[7] == e[1] or row[7] in e[2])]
                    key = "%s x%d" % (row[7], len(ok)) if ok else "none"
                    recorded[key] = recorded.get(key, 0) + 1
                    on_first = want[1] - (len(want[2]) - 1)
                    want_errors = on_first if row[5] else 0
                    if (len(mine_errors) != want_errors or len(ok) != want_errors) and \
                            len(problems) < 20:
                        problems.append("%s %s: failed attempts on %s recorded %r, expected %d"
                                        " naming %s" % (name, cid, row[4], mine_errors[:5],
                                                        want_errors, row[7]))
                    st, att, _ = comms.get(cid, ("missing", "0", ""))
                    chs = ",".join(used.get(cid, []))
                    statuses[st] = statuses.get(st, 0) + 1
                    attempts[int(att)] = attempts.get(int(att), 0) + 1
                    channels[chs] = channels.get(chs, 0) + 1
                    got = (st, int(att), tuple(used.get(cid, [])))
                    if got != want and len(problems) < 20:
                        problems.append("%s %s: %r, expected %r" % (name, cid, got, want))
                n_final = sum(v for k, v in statuses.items() if k in h.FINAL_STATUSES)
                print("row %s: %d final (statuses %s), attempts %s, channels %s, errors %s"
                      % (name, n_final, statuses, attempts, channels, recorded), flush=True)
                check(n_final == len(mine), "%s: %d of %d final" % (name, n_final, len(mine)))
            check(not problems, "outcomes differ from the rules:\n  " + "\n  ".join(problems))

            # The providers saw exactly the attempts the rules allow: one
            # request per attempt on the stub's channel, none more.
            def stub_settled():
                c = stub_requests_by_suffix(stub)
                return all(c.get(row[3][0], 0) >= row[1] * stub_sends(row)
                           for row in ROWS if row[3]) and c

            counts = h.wait_until(stub_settled, 15, 0.5, what="the stub's records")
            for row in ROWS:
                if not row[3]:
                    continue
                per = stub_sends(row)
                check(counts.get(row[3][0], 0) == row[1] * per,
                      "%s: %d requests at the stub, expected %d"
                      % (row[0], counts.get(row[3][0], 0), row[1] * per))

            # Every message the rules send by email is at the sink once; the
            # refused recipients left nothing there.
            want_mail = sum(row[1] for row in ROWS if expected(*row[4:7])[2][-1] == "email"
                            and expected(*row[4:7])[0] == "sent")
            sink.wait_for(want_mail, timeout=15)
            time.sleep(0.5)
            got = sink.files()
            ids_at_sink = []
            for path in got:
                with open(path, "rb") as f:
                    m = re.search(rb"^X-Crier-Id:\s*(\S+)", f.read(), re.M)
                ids_at_sink.append(m.group(1).decode() if m else "")
            check(len(got) == want_mail and len(set(ids_at_sink)) == want_mail,
                  "%d mails at the sink (%d distinct ids), expected %d"
                  % (len(got), len(set(ids_at_sink)), want_mail))

            # The API agrees with the table for one message of each row.
            for r, row in enumerate(ROWS):
                cid = ids[owner.index(r)]
                status, _, c = crier.get_comm(cid)
                want = expected(row[4], row[5], row[6])
                check(status == 200 and c.get("status") == want[0]
                      and c.get("attempts") == want[1],
                      "%s: GET says %s/%r, expected %r" % (row[0], c.get("status"),
                                                           c.get("attempts"), want))
            text = crier.log()
            check(AUTH_TOKEN not in text and WA_TOKEN not in text, "no token in the log")
            check("+1555" not in text and "fail451@" not in text, "no recipient in the log")


h.run([test_fault_matrix])
