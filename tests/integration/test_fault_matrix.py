"""The fault matrix: one crier with live SMS and WhatsApp against the provider
stub and live email against the SMTP sink, a batch of messages per fault,
each fault picked by the recipient (a phone number suffix for the stub, a
local part for the sink). Every message must reach a final status, and the
status, the number of attempts and the channels used must be what the
shipped rules, or the engine where it acts before them, say for that fault.

What the rules say (rules/fallback.lua, retry delays cut to 1, 1, 1 s):
  * transient and rate_limit: retried while the channel's attempt number is
    within the delays (3 retries, 4 attempts), then the next channel of the
    chain, or failed when there is none; a critical message (the SMS rows)
    gets one quick retry (2 attempts) before the next channel;
  * permanent, invalid_input and auth_failure: the next channel at once, or
    failed when there is none.
How each fault is classified (src/channel/twilio.c, whatsapp.c, smtp.c and
the transport): HTTP 500 and a timeout are transient, 429 is rate_limit,
Twilio 21211 and 21610 and WhatsApp 131047 are permanent, 401 is
auth_failure, SMTP 451 is transient and 550 permanent (550 5.1.1, a
mailbox that does not exist, ends "bounced" rather than "failed").
Chains (rules/channels.lua, fallback.lua): a critical error_notification of
a client with SMS consent goes SMS then email; a vendor_options message with
WhatsApp preferred and only WhatsApp consent goes WhatsApp then email; a
welcome to a client without a phone goes by email alone.

Two faults the engine handles itself before (or instead of) the rules:
  * WhatsApp 131047 on a free-text send: crier believed the client's 24 h
    window open (the client wrote in, a signed inbound webhook), Meta says it
    is not. The engine marks the window closed and sends the message again at
    once on WhatsApp as a template, without asking the rules. The stub
    (text-error:131047) refuses the text and takes the template: "sent" after
    two WhatsApp attempts, the first recorded with 131047, no email. A
    prelude makes the row's 200 clients exist (an email welcome each) and
    opens their windows (a signed WhatsApp message from each phone) before
    the row is posted.
  * Twilio 401 (20003, auth_failure) opens Twilio's circuit in the process:
    one CRITICAL provider_auth_failed line, and while it is open SMS sends are
    not made but recorded as auth_failure "circuit open", which the rules move
    to email at once. A circuit is process-wide, so a 401 row running with
    the others would turn their SMS away too: it runs as a second phase once
    every other message is final, with the probe interval
    (CRIER_CIRCUIT_PROBE_MS) far beyond the test so no probe is made. Only the
    sends already under way when the first 401 came back reach the stub: at
    most workers x claim batch of the row's 200.

An accepted send is final as "sent": the stub posts no receipts here.
"""

import concurrent.futures
import json
import os
import re
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

sys.path.insert(0, os.path.join(h.source_dir(), "tests", "support"))
from provider_stub import meta_signature  # noqa: E402

PER_ROW = 200
DELAYS = [1, 1, 1]
WORKERS = 4
# The engine's default (src/config.c), set here too: with WORKERS it bounds
# how many sends can be under way when a 401 opens the circuit.
CLAIM_BATCH = 8
PROVIDER_TIMEOUT_MS = 1000
FINAL_WAIT_S = 300
# The prelude's welcomes and the 401 row take seconds; their waits are short
# so that the whole test stays within ctest's timeout even when one hangs.
SHORT_WAIT_S = 60
# Far beyond the test: an open circuit makes no probe while it runs.
CIRCUIT_PROBE_MS = 600000

# What fallback.lua's on_failure does with each category: retry (up to the
# number of delays) or move on at once.
RETRIED = ("transient", "rate_limit")
# Not a category of the rules: the engine's own answer to WhatsApp 131047 on
# free text, one more attempt on the same channel as a template.
TEMPLATE_AGAIN = "template_again"
# A permanent failure to the rules that the engine names: SMTP 550 5.1.1
# (the mailbox does not exist) ends "bounced" and suppresses the address.
HARD_BOUNCE = "hard_bounce"
# The clients of the 131047 row, known before the row is posted: the
# prelude makes them and opens their windows.
WA_CLIENTS = [str(uuid.uuid4()) for _ in range(PER_ROW)]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expected(first_channel, category, fallback):
    """(status, attempts, channels) the rules give a message whose first
    channel fails with category, given the fallback channel (or None), when
    the fallback channel succeeds."""
    # the SMS rows are critical error notifications: one quick retry
    retries = 1 if first_channel == "sms" else len(DELAYS)
    on_first = retries + 1 if category in RETRIED else 1
    if category is None:
        return "sent", 1, (first_channel,)
    if category == TEMPLATE_AGAIN:
        return "sent", 2, (first_channel,)
    if fallback is None:
        return "bounced" if category == HARD_BOUNCE else "failed", on_first, (first_channel,)
    return "sent", on_first + 1, (first_channel, fallback)


def failures_on_first(row):
    """Failed attempts on the first channel per message of row."""
    if row[5] is None:
        return 0
    if row[5] == TEMPLATE_AGAIN:
        return 1
    _, attempts, channels = expected(*row[4:7])
    return attempts - (len(channels) - 1)


def sms_body(i, suffix):
    """A critical error notification to a client with SMS consent only:
    SMS first, email as the one fallback."""
    return h.comm_body(i, phone="+1555%03d%s" % (i, suffix), consent={"sms": True,
                                                                     "whatsapp": False},
                       message_type="error_notification", urgency="critical")


def wa_phone(i, suffix):
    return "+1555%03d%s" % (i, suffix)


def wa_body(i, suffix, client_id=None):
    """Vendor options with WhatsApp preferred and WhatsApp consent only:
    WhatsApp first, email as the one fallback."""
    return h.comm_body(i, phone=wa_phone(i, suffix), client_id=client_id,
                       consent={"sms": False, "whatsapp": True}, message_type="vendor_options",
                       urgency="high", preferred_channel="whatsapp")


def prelude_body(i):
    """A welcome (email alone: no consent for SMS or WhatsApp) that creates
    client i of the 131047 row, phone included, so that a WhatsApp message
    from that phone finds the client."""
    return h.comm_body(i, phone=wa_phone(i, WA_SUFFIX), client_id=WA_CLIENTS[i],
                       consent={"sms": False, "whatsapp": False})


def meta_inbound(phone, text):
    """A signed WhatsApp message from phone, as Meta posts it."""
    msg = {"from": phone.lstrip("+"), "id": "wamid.in" + uuid.uuid4().hex,
           "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": h.STUB_FROM_NUMBER.lstrip("+"),
                          "phone_number_id": h.STUB_WA_PHONE_ID},
             "contacts": [{"profile": {"name": "Client"}, "wa_id": msg["from"]}],
             "messages": [msg]}
    raw = json.dumps({"object": "whatsapp_business_account",
                      "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}
                     ).encode("utf-8")
    return raw, {"Content-Type": "application/json",
                 "X-Hub-Signature-256": meta_signature(h.STUB_WA_APP_SECRET, raw)}


def email_body(i, local):
    """A welcome to a client without a phone: email alone, no fallback."""
    return h.comm_body(i, email="%s@r%d.example.com" % (local, i))


WA_SUFFIX = "7006"
AUTH_ROW = "auth_401"

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
    ("whatsapp_131047", PER_ROW, lambda i: wa_body(i, WA_SUFFIX, WA_CLIENTS[i]),
     (WA_SUFFIX, "text-error:131047"), "whatsapp", TEMPLATE_AGAIN, "email", "131047"),
    ("auth_401", PER_ROW, lambda i: sms_body(i, "7007"), ("7007", "http401"), "sms",
     "auth_failure", "email", "20003"),
    ("timeout", PER_ROW, lambda i: sms_body(i, "7008"), ("7008", "slow:3"), "sms",
     "transient", "email", "timeout"),
    ("smtp_451", PER_ROW, lambda i: email_body(i, "fail451"), None, "email", "transient", None,
     "451"),
    ("smtp_550", PER_ROW, lambda i: email_body(i, "fail550"), None, "email", HARD_BOUNCE, None,
     "550"),
]
# Sends the stub can see for the 401 row: those under way when the first
# 401 came back, each in some worker's claimed batch.
AUTH_MAX_SENDS = WORKERS * CLAIM_BATCH


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


def whatsapp_types(stub):
    """{recipient digits: [message type of each WhatsApp send, in order]}."""
    types = {}
    for r in stub.requests("whatsapp"):
        try:
            req = json.loads(r.get("body") or "{}")
        except ValueError:
            req = {}
        to = re.sub(r"\D", "", str(req.get("to", "")))
        types.setdefault(to, []).append(str(req.get("type", "text")))
    return types


FINALS = "', '".join(h.FINAL_STATUSES)


def wait_all_final(db, what, timeout=FINAL_WAIT_S):
    def none_left():
        rows = h.psql(db, "SELECT count(*) FROM communications"
                          " WHERE status NOT IN ('%s')" % FINALS)
        return int(rows[0][0]) == 0

    try:
        h.wait_until(none_left, timeout, 0.5, what=what)
    except TimeoutError:
        left = h.psql(db, "SELECT status, count(*) FROM communications"
                          " WHERE status NOT IN ('%s') GROUP BY status" % FINALS)
        raise AssertionError("%s: not final after %d s: %r" % (what, timeout, left))


def outcomes(db):
    """(comms {id: (status, attempts, channel)}, channels used {id: [..]},
    failed attempts {id: [(channel, provider code, error text)]})."""
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
    return comms, used, errors


def refused_by_circuit(e):
    """A failed attempt the open circuit kept from the provider."""
    return e[2].startswith("auth_failure: circuit open")


def check_row(row, mine, comms, used, errors, problems):
    """Compares each message of row with what the rules and the engine say,
    adds what differs to problems, prints the row's summary and returns the
    number of its messages whose failed attempt names the provider's code."""
    name, want = row[0], expected(row[4], row[5], row[6])
    want_errors = failures_on_first(row)
    statuses, attempts, channels, recorded = {}, {}, {}, {}
    named = 0
    for cid in mine:
        mine_errors = [e for e in errors.get(cid, []) if e[0] == row[4]]
        if name == AUTH_ROW:
            # every SMS attempt is auth_failure: the provider's 401 for the
            # sends made, "circuit open" for those the circuit kept back
            refused = [e for e in mine_errors if refused_by_circuit(e)]
            real = [e for e in mine_errors if not refused_by_circuit(e)
                    and e[2].startswith("auth_failure") and (row[7] == e[1] or row[7] in e[2])]
            ok = real + refused
            parts = (["%s x%d" % (row[7], len(real))] if real else []) + \
                (["circuit open x%d" % len(refused)] if refused else [])
            key = " + ".join(parts) or "none"
        else:
            real = ok = [e for e in mine_errors
                         if row[7] and (row[7] == e[1] or row[7] in e[2])]
            key = "%s x%d" % (row[7], len(ok)) if ok else "none"
        named += 1 if real else 0
        recorded[key] = recorded.get(key, 0) + 1
        if (len(mine_errors) != want_errors or len(ok) != want_errors) and len(problems) < 20:
            problems.append("%s %s: failed attempts on %s recorded %r, expected %d"
                            " naming %s" % (name, cid, row[4], mine_errors[:5], want_errors,
                                            row[7] if name != AUTH_ROW
                                            else "auth_failure (%s or circuit open)" % row[7]))
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
    return named


def run_phase(crier, db, rows, label, timeout):
    """Posts every message of rows, waits until every message is final and
    returns (ids, row index of each id, seconds from the first POST)."""
    started = time.monotonic()
    bodies, owner = [], []
    for r, row in enumerate(rows):
        for i in range(row[1]):
            bodies.append(row[2](i))
            owner.append(r)
    ids = post_all(crier, bodies)
    posted = time.monotonic()
    print("%s: posted %d messages in %.1f s (%s)"
          % (label, len(ids), posted - started,
             ", ".join("%s %d" % (row[0], row[1]) for row in rows)), flush=True)
    wait_all_final(db, "%s: every message final" % label, timeout)
    done = time.monotonic()
    print("%s: all final %.1f s after the last POST (%.1f s in all)"
          % (label, done - posted, done - started), flush=True)
    return ids, owner, done - started


def prelude(crier, db):
    """Makes the 131047 row's clients (an email welcome each) and opens
    their WhatsApp windows (a signed message from each phone)."""
    started = time.monotonic()
    pre_ids = post_all(crier, [prelude_body(i) for i in range(PER_ROW)])
    wait_all_final(db, "prelude: every welcome final", SHORT_WAIT_S)
    st = h.psql(db, "SELECT status, count(*) FROM communications GROUP BY status")
    check(st == [["sent", str(len(pre_ids))]], "prelude: the welcomes went by email: %r" % st)
    closed = h.psql(db, "SELECT count(*) FROM clients WHERE whatsapp_window_until > now()")
    check(closed == [["0"]], "prelude: no window open before the clients wrote: %r" % closed)

    def write_in(i):
        raw, headers = meta_inbound(wa_phone(i, WA_SUFFIX), "Yes, send me the options")
        status, _, answer = crier.request("POST", "/webhooks/whatsapp", raw=raw, token=None,
                                          headers=headers)
        check(status == 200, "prelude: signed WhatsApp message answered %s: %r"
              % (status, answer))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(write_in, range(PER_ROW)))
    def windows_open():
        return {r[0] for r in h.psql(db, "SELECT id FROM clients"
                                         " WHERE whatsapp_window_until > now()")}

    try:
        h.wait_until(lambda: windows_open() == set(WA_CLIENTS), 5, 0.1,
                     what="the row's windows open")
    except TimeoutError:
        pass  # the check below says what is wrong
    open_ids = windows_open()
    check(open_ids == set(WA_CLIENTS), "prelude: %d windows open, %d of them the row's %d"
          " clients" % (len(open_ids), len(open_ids & set(WA_CLIENTS)), len(WA_CLIENTS)))
    print("prelude: %d clients made by email, %d WhatsApp windows open, in %.1f s"
          % (len(pre_ids), len(open_ids), time.monotonic() - started), flush=True)
    return pre_ids


def test_fault_matrix(tmp):
    db = h.new_database("fault_matrix")
    modes = []
    for row in ROWS:
        if row[3]:
            modes += ["--recipient-mode", "%s=%s" % row[3]]
    stub_args = ["--twilio-account-sid", h.STUB_ACCOUNT_SID,
                 "--meta-access-token", h.STUB_WA_TOKEN,
                 "--wa-phone-number-id", h.STUB_WA_PHONE_ID]
    with h.ProviderStub(os.path.join(tmp, "stub"), stub_args + modes) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink:
        env = h.live_env(
            stub, sink,
            WHATSAPP_APP_SECRET=h.STUB_WA_APP_SECRET,
            CRIER_WORKERS=str(WORKERS),
            CRIER_CLAIM_BATCH=str(CLAIM_BATCH),
            CRIER_PROVIDER_TIMEOUT_MS=str(PROVIDER_TIMEOUT_MS),
            CRIER_CIRCUIT_PROBE_MS=str(CIRCUIT_PROBE_MS),
            # The matrix is about failures, not throughput: at Twilio's
            # 1/s per sender the rows would take half an hour.
            CRIER_RATE_TWILIO="off",
            CRIER_RATE_WHATSAPP="off",
            CRIER_RULES_DIR=h.rules_dir(retry_delays=DELAYS))
        with h.Crier(db, os.path.join(tmp, "crier"), env=env) as crier:
            started = time.monotonic()
            pre_ids = prelude(crier, db)

            # Phase 1: every row but the 401's, at once.
            rows1 = [row for row in ROWS if row[0] != AUTH_ROW]
            ids1, owner1, _ = run_phase(crier, db, rows1, "phase 1", FINAL_WAIT_S)
            comms, used, errors = outcomes(db)
            problems = []
            for r, row in enumerate(rows1):
                check_row(row, [cid for cid, o in zip(ids1, owner1) if o == r], comms, used,
                          errors, problems)
            check(not problems, "outcomes differ from the rules:\n  " + "\n  ".join(problems))

            # The providers saw exactly the attempts the rules allow: one
            # request per attempt on the stub's channel, none more.
            def stub_settled():
                c = stub_requests_by_suffix(stub)
                return all(c.get(row[3][0], 0) >= row[1] * stub_sends(row)
                           for row in rows1 if row[3]) and c

            counts = h.wait_until(stub_settled, 15, 0.5, what="the stub's records")
            for row in rows1:
                if not row[3]:
                    continue
                per = stub_sends(row)
                check(counts.get(row[3][0], 0) == row[1] * per,
                      "%s: %d requests at the stub, expected %d"
                      % (row[0], counts.get(row[3][0], 0), row[1] * per))
            # 131047: the free text Meta refused, then the template it took
            types = whatsapp_types(stub)
            seqs = {}
            for i in range(PER_ROW):
                seq = ",".join(types.get(wa_phone(i, WA_SUFFIX).lstrip("+"), [])) or "none"
                seqs[seq] = seqs.get(seq, 0) + 1
            print("row whatsapp_131047 at the stub: message types per client %s" % seqs,
                  flush=True)
            # vendor options inside the window are free text with reply buttons
            check(seqs == {"interactive,template": PER_ROW},
                  "whatsapp_131047: each client got free text then a template: %r" % seqs)
            still = h.psql(db, "SELECT count(*) FROM clients WHERE whatsapp_window_until > now()")
            check(still == [["0"]], "whatsapp_131047: the engine closed the windows Meta said"
                  " were closed: %r still open" % still)
            check(not h.log_events(crier.log(), "provider_auth_failed"),
                  "no circuit opened in phase 1")

            # Phase 2: the 401 row alone, once nothing else is under way.
            rows2 = [row for row in ROWS if row[0] == AUTH_ROW]
            auth = rows2[0]
            check(stub_requests_by_suffix(stub).get(auth[3][0], 0) == 0,
                  "no 401 before phase 2")
            ids2, owner2, _ = run_phase(crier, db, rows2, "phase 2", SHORT_WAIT_S)
            comms, used, errors = outcomes(db)
            problems = []
            named = check_row(auth, ids2, comms, used, errors, problems)
            check(not problems, "outcomes differ from the rules:\n  " + "\n  ".join(problems))
            sends = stub_requests_by_suffix(stub).get(auth[3][0], 0)
            print("row %s at the stub: %d Twilio requests for %d messages (at most %d = %d"
                  " workers x %d claimed can be under way when the circuit opens);"
                  " %d attempts recorded the 401, %d the open circuit"
                  % (auth[0], sends, auth[1], AUTH_MAX_SENDS, WORKERS, CLAIM_BATCH, named,
                     auth[1] - named), flush=True)
            check(1 <= sends <= AUTH_MAX_SENDS and sends < auth[1],
                  "%s: %d requests at the stub, expected 1 to %d" % (auth[0], sends,
                                                                    AUTH_MAX_SENDS))
            check(named == sends, "%s: %d attempts recorded the 401, %d were made"
                  % (auth[0], named, sends))
            text = crier.log()
            opened = h.log_events(text, "provider_auth_failed")
            check(len(opened) == 1 and opened[0].get("level") == "CRITICAL"
                  and opened[0].get("provider") == "twilio",
                  "one CRITICAL provider_auth_failed for twilio: %r" % opened)
            check(not h.log_events(text, "provider_auth_recovered"),
                  "no probe closed the circuit within the test")

            # Every message the rules send by email is at the sink once; the
            # refused recipients left nothing there. The prelude's welcomes
            # are there too.
            want_mail = len(pre_ids) + sum(
                row[1] for row in ROWS if expected(*row[4:7])[2][-1] == "email"
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
            firsts = [(row, ids1[owner1.index(r)]) for r, row in enumerate(rows1)]
            firsts.append((auth, ids2[0]))
            for row, cid in firsts:
                status, _, c = crier.get_comm(cid)
                want = expected(row[4], row[5], row[6])
                check(status == 200 and c.get("status") == want[0]
                      and c.get("attempts") == want[1],
                      "%s: GET says %s/%r, expected %r" % (row[0], c.get("status"),
                                                           c.get("attempts"), want))
            print("matrix done in %.1f s" % (time.monotonic() - started), flush=True)
            check(h.STUB_AUTH_TOKEN not in text and h.STUB_WA_TOKEN not in text,
                  "no token in the log")
            check(h.STUB_WA_APP_SECRET not in text, "no app secret in the log")
            check("+1555" not in text and "fail451@" not in text, "no recipient in the log")
            check(wa_phone(0, WA_SUFFIX).lstrip("+") not in text,
                  "no WhatsApp sender in the log")


h.run([test_fault_matrix])
