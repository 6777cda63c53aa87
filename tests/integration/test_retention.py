"""Retention: `crier purge` deletes exactly what is past CRIER_RETENTION_DAYS
and what is left of clients erased over 30 days ago, in short batches while
a running crier keeps accepting requests; a dry run counts the same rows
and changes nothing; a second run finds nothing; one purge runs at a time
(the advisory lock); and `crier serve` runs the same purge by itself.

The rows are made through the API of a running crier (communications,
digests, replies, receipts) and then made three years old with SQL, as
time would have made them.
"""
import concurrent.futures
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

sys.path.insert(0, os.path.join(h.source_dir(), "tests", "support"))
from provider_stub import twilio_signature  # noqa: E402

TW_TOKEN = "retention-twilio-token-0123456789"
PUBLIC = "https://crier.example"
LOCK_KEY = "7165916607787342"  # store/purge.h PURGE_LOCK_KEY
OLD = "3 years"
TABLES = ("communications", "delivery_events", "communication_attachments",
          "workflow_callbacks", "inbound_messages", "unmatched_receipts", "clients")
# One id per row of each table (attachments have a composite key).
ID_SQL = {
    "communications": "SELECT id::text FROM communications",
    "delivery_events": "SELECT id::text FROM delivery_events",
    "communication_attachments":
        "SELECT communication_id::text || ':' || ordinal FROM communication_attachments",
    "workflow_callbacks": "SELECT id::text FROM workflow_callbacks",
    "inbound_messages": "SELECT id::text FROM inbound_messages",
    "unmatched_receipts": "SELECT id::text FROM unmatched_receipts",
    "clients": "SELECT id::text FROM clients",
    "audit_log": "SELECT id::text FROM audit_log",
}

N_OLD_CLIENTS = 30
N_OLD_PER_CLIENT = 50  # 1500 old messages: many batches of 50
N_RECENT = 40


def env(**extra):
    e = {"TWILIO_AUTH_TOKEN": TW_TOKEN, "CRIER_PUBLIC_URL": PUBLIC, "CRIER_WORKERS": "4",
         "CRIER_PURGE_INTERVAL_S": "0"}
    e.update(extra)
    return e


def phone(n):
    return "+1555300%04d" % n


def snapshot(db):
    return {t: set(r[0] for r in h.psql(db, sql)) for t, sql in ID_SQL.items()}


def ids_param(ids):
    return ",".join(sorted(ids))


def ids_where(col="id"):
    return "%s = ANY(string_to_array(:'ids', ',')::uuid[])" % col


def post(crier, body):
    status, _, js = crier.post_comm(body)
    assert status == 202, (status, js)
    return js


def twilio_form(crier, path, params):
    status, _, body = crier.request(
        "POST", path, raw=urllib.parse.urlencode(params).encode("ascii"), token=None,
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "X-Twilio-Signature": twilio_signature(TW_TOKEN, PUBLIC + path, params)})
    assert status == 200, (status, body)


def reply(crier, db, from_phone, text):
    """A signed inbound SMS; returns (inbound id, callback id)."""
    sid = "SM" + uuid.uuid4().hex
    twilio_form(crier, "/webhooks/twilio/inbound",
                [("AccountSid", "AC" + "0" * 32), ("ApiVersion", "2010-04-01"), ("Body", text),
                 ("From", from_phone), ("MessageSid", sid), ("NumMedia", "0"),
                 ("SmsMessageSid", sid), ("SmsSid", sid), ("SmsStatus", "received"),
                 ("To", "+15017250604")])
    rows = h.psql(db, "SELECT i.id, w.id FROM inbound_messages i JOIN workflow_callbacks w"
                      " ON (w.payload->>'inbound_message_id')::bigint = i.id"
                      " WHERE i.provider_message_id = :'sid'", sid=sid)
    assert len(rows) == 1, rows
    return rows[0][0], rows[0][1]


def unmatched_receipt(crier, db):
    sid = "SM" + uuid.uuid4().hex
    twilio_form(crier, "/webhooks/twilio/status",
                [("AccountSid", "AC" + "0" * 32), ("ApiVersion", "2010-04-01"),
                 ("From", "+15017250604"), ("MessageSid", sid), ("MessageStatus", "delivered"),
                 ("SmsSid", sid), ("SmsStatus", "delivered"), ("To", "+15558675310")])
    rows = h.psql(db, "SELECT id FROM unmatched_receipts WHERE provider_message_id = :'s'", s=sid)
    assert len(rows) == 1, rows
    return rows[0][0]


def wait_settled(db, ids):
    """Waits until none of ids is in flight any more."""
    h.wait_until(lambda: h.psql(
        db, "SELECT count(*) FROM communications WHERE " + ids_where()
        + " AND status IN ('pending', 'queued', 'sending')", ids=ids_param(ids)) == [["0"]],
        120, 0.3, what="%d communications to finish" % len(ids))


def age(db, ids):
    """Makes communications and their events three years older."""
    h.psql(db, "UPDATE communications SET created_at = created_at - interval '" + OLD + "',"
               " updated_at = updated_at - interval '" + OLD + "' WHERE " + ids_where() + ";"
               " UPDATE delivery_events SET event_timestamp = event_timestamp - interval '"
               + OLD + "' WHERE " + ids_where("communication_id"), ids=ids_param(ids))


def make_digest(crier, db, client_id, n_phone):
    """A client contacted just now, then three LOW messages merged into a
    digest that is sent at once (the third fills it). Returns (contact id,
    digest id, member ids)."""
    plan = str(uuid.uuid4())
    first = post(crier, h.comm_body(n_phone, client_id=client_id, plan_id=plan, urgency="high",
                                    phone=phone(n_phone)))
    wait_settled(db, [first["communication_id"]])
    members, digests = [], set()
    for action in ("confirm the guest count", "choose a caterer", "pick a venue"):
        js = post(crier, h.comm_body(n_phone, client_id=client_id, plan_id=plan,
                                     message_type="reminder", urgency="low", client=False,
                                     context={"pending_action": action, "event_type": "wedding",
                                              "action_url": "https://app.planiva.example/a"}))
        assert js["status"] == "batched", js
        members.append(js["communication_id"])
        digests.add(js["decision"]["batch"]["digest_id"])
    assert len(digests) == 1, digests
    digest = digests.pop()
    wait_settled(db, [digest])
    rows = h.psql(db, "SELECT status, count(*) FROM communications WHERE batch_id = :'d'"
                      " GROUP BY status", d=digest)
    assert rows == [["delivered", "3"]], rows
    return first["communication_id"], digest, members


def parse_counts(text, verb):
    got = {}
    for t in TABLES:
        m = re.search(r"^%s: (\d+) %s$" % (re.escape(t), verb), text, re.M)
        assert m, "no %r line for %s in:\n%s" % (verb, t, text)
        got[t] = int(m.group(1))
    return got


def run_purge(db, *args, extra_env=None):
    e = {"CRIER_DATABASE_URL": db}
    e.update(extra_env or {})
    return subprocess.run([h.crier_bin(), "purge"] + list(args), capture_output=True, text=True,
                          timeout=300, env=h.base_env(e))


class Intake(threading.Thread):
    """POSTs new communications one after another until stopped (at most
    2000 or 120 s), timing each."""

    def __init__(self, crier):
        super().__init__(daemon=True)
        self.crier = crier
        self.stop = threading.Event()
        self.timings = []  # (start, end, status, id)

    def run(self):
        deadline = time.monotonic() + 120
        for i in range(2000):
            if self.stop.is_set() or time.monotonic() > deadline:
                break
            body = h.comm_body(9000 + i)
            t0 = time.monotonic()
            status, _, js = self.crier.post_comm(body)
            t1 = time.monotonic()
            cid = js.get("communication_id") if isinstance(js, dict) else None
            self.timings.append((t0, t1, status, cid))


def p99(values):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]


def build(crier, db):
    """The mix; returns what must go, per table, and what must stay."""
    pool = concurrent.futures.ThreadPoolExecutor(8)
    old_clients = [str(uuid.uuid4()) for _ in range(N_OLD_CLIENTS)]
    bodies = []
    for n, cid in enumerate(old_clients):
        for k in range(N_OLD_PER_CLIENT):
            bodies.append(h.comm_body(n, client_id=cid, phone=phone(n), urgency="normal"))
    # one with the blueprint attached
    bodies[0] = h.comm_body(0, client_id=old_clients[0], phone=phone(0),
                            message_type="blueprint_delivery",
                            attachments=[h.attachment(os.path.join(
                                h.source_dir(), "tests", "demo", "blueprint.pdf"))])
    old = [js["communication_id"] for js in pool.map(lambda b: post(crier, b), bodies)]
    recent = [js["communication_id"] for js in
              pool.map(lambda i: post(crier, h.comm_body(500 + i)), range(N_RECENT))]
    pool.shutdown()

    # a digest all old (goes with its members and its contact message), and
    # a digest whose third member is recent (stays whole)
    d1_client, d2_client = str(uuid.uuid4()), str(uuid.uuid4())
    d1_contact, d1, d1_members = make_digest(crier, db, d1_client, 100)
    d2_contact, d2, d2_members = make_digest(crier, db, d2_client, 101)

    # two erased clients, 40 and 5 days ago, each with messages and a reply
    e40, e5 = str(uuid.uuid4()), str(uuid.uuid4())
    erased_comms = {}
    for n, cid in ((200, e40), (201, e5)):
        erased_comms[cid] = [post(crier, h.comm_body(n, client_id=cid, phone=phone(n)))
                             ["communication_id"] for _ in range(2)]
    wait_settled(db, old + recent + [c for v in erased_comms.values() for c in v])
    e40_inbound, _ = reply(crier, db, phone(200), "Please forget me")
    reply(crier, db, phone(201), "Me too, later")

    # replies from old clients: four old (their callbacks delivered long
    # ago), two recent (callbacks still waiting for the workflow)
    replies = [reply(crier, db, phone(n % 3), "Reply %d" % n) for n in range(6)]
    receipts = [unmatched_receipt(crier, db) for _ in range(2)]

    in_flight, protected = old[1], old[2]
    stray_comm = recent[0]
    stray_event = h.psql(db, "SELECT min(id) FROM delivery_events WHERE communication_id = :'c'",
                         c=stray_comm)[0][0]
    old_inbound = [r[0] for r in replies[:4]]
    old_callbacks = [r[1] for r in replies[:4]]
    h.psql(db, "UPDATE inbound_messages SET received_at = received_at - interval '" + OLD + "'"
               " WHERE id = ANY(string_to_array(:'ids', ',')::bigint[]);"
               " UPDATE workflow_callbacks SET state = 'delivered', payload_enc = NULL,"
               " payload = crier_callback_bare(payload),"
               " created_at = created_at - interval '" + OLD + "',"
               " delivered_at = now() - interval '" + OLD + "'"
               " WHERE id = ANY(string_to_array(:'cbs', ',')::uuid[]);"
               " UPDATE workflow_callbacks SET communication_id = :'p'::uuid WHERE id = :'w'::uuid;"
               " UPDATE unmatched_receipts SET received_at = received_at - interval '" + OLD + "'"
               " WHERE id = :'u'::bigint;"
               " UPDATE delivery_events SET event_timestamp = event_timestamp - interval '"
               + OLD + "' WHERE id = :'e'::bigint;"
               " INSERT INTO audit_log (at, actor, action, subject_type, subject_id)"
               " VALUES (now() - interval '" + OLD + "', 'operator:test', 'read', 'client', :'p');"
               " UPDATE clients SET erased_at = now() - interval '40 days', name_enc = NULL,"
               " email_enc = NULL, email_bidx = NULL, phone_enc = NULL, phone_bidx = NULL"
               " WHERE id = :'e40'::uuid;"
               " UPDATE clients SET erased_at = now() - interval '5 days', name_enc = NULL,"
               " email_enc = NULL, email_bidx = NULL, phone_enc = NULL, phone_bidx = NULL"
               " WHERE id = :'e5'::uuid",
           ids=",".join(old_inbound), cbs=",".join(old_callbacks), p=protected,
           w=replies[5][1], u=receipts[0], e=stray_event, e40=e40, e5=e5)
    age(db, old + [d1_contact, d1] + d1_members + [d2] + d2_members[:2])
    h.psql(db, "UPDATE communications SET status = 'queued',"
               " next_attempt_at = now() + interval '10 years' WHERE id = :'c'", c=in_flight)

    gone_comms = (set(old) - {in_flight, protected}) | {d1_contact, d1} | set(d1_members) \
        | set(erased_comms[e40])
    ids = ids_param(gone_comms)
    gone = {
        "communications": gone_comms,
        # the events of what goes; the old events of what stays only because
        # of a younger member or a waiting reply (past the horizon too);
        # the old event of a recent message; never those of the one in flight
        "delivery_events": set(r[0] for r in h.psql(
            db, "SELECT id FROM delivery_events WHERE " + ids_where("communication_id"),
            ids=ids_param(gone_comms | {d2, protected} | set(d2_members[:2]))))
        | {stray_event},
        "communication_attachments": set(r[0] for r in h.psql(
            db, "SELECT communication_id || ':' || ordinal FROM communication_attachments"
                " WHERE " + ids_where("communication_id"), ids=ids)),
        "workflow_callbacks": set(old_callbacks) | set(r[0] for r in h.psql(
            db, "SELECT id FROM workflow_callbacks WHERE " + ids_where("communication_id"),
            ids=ids)),
        "inbound_messages": set(old_inbound) | {e40_inbound},
        "unmatched_receipts": {receipts[0]},
        "clients": {e40},
        "audit_log": set(),
    }
    assert len(gone["communication_attachments"]) == 1, gone["communication_attachments"]
    stays = {"communications": {in_flight, protected, d2_contact, d2, stray_comm}
             | set(d2_members) | set(recent) | set(erased_comms[e5]),
             "clients": {e5}}
    return gone, stays


def test_purge_cli(tmp):
    db = h.new_database("retention")
    with h.Crier(db, os.path.join(tmp, "serve"), env=env()) as crier:
        started = time.monotonic()
        gone, stays = build(crier, db)
        print("built the mix in %.1f s" % (time.monotonic() - started))
        before = snapshot(db)
        for t, ids in gone.items():
            assert ids <= before[t], t
        expected = {t: len(gone[t]) for t in TABLES}
        print("to delete:", expected)

        # bad input changes nothing
        for args in (["--batch", "0"], ["--batch", "x"], ["--batch"], ["--everything"]):
            proc = run_purge(db, *args)
            assert proc.returncode == 2, (args, proc.returncode, proc.stdout, proc.stderr)
        proc = run_purge(db, extra_env={"CRIER_RETENTION_DAYS": "0"})
        assert proc.returncode == 2 and "CRIER_RETENTION_DAYS" in proc.stderr, proc.stderr

        # the dry run counts exactly what will go, and changes nothing
        proc = run_purge(db, "--dry-run")
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        assert parse_counts(proc.stdout, "to delete") == expected, proc.stdout
        assert "nothing was changed" in proc.stdout, proc.stdout
        assert snapshot(db) == before

        # the real one, in batches of 50, while the crier takes new requests
        intake = Intake(crier)
        intake.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        proc = run_purge(db, "--batch", "50")
        t1 = time.monotonic()
        intake.stop.set()
        intake.join(180)
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        print(proc.stdout.strip())
        deleted = parse_counts(proc.stdout, "deleted")
        assert deleted == expected, (deleted, expected)
        progress = re.findall(r"^purge: batch (\d+) \(", proc.stderr, re.M)
        m = re.search(r"in (\d+) batch\(es\)", proc.stdout)
        assert m and int(m.group(1)) == len(progress), (proc.stdout, proc.stderr)
        assert len(progress) > expected["communications"] // 50, progress
        assert [int(b) for b in progress] == list(range(1, len(progress) + 1)), progress

        during = [t for t in intake.timings if t[0] < t1 and t[1] > t0]
        assert intake.timings and all(t[2] == 202 for t in intake.timings), \
            [t for t in intake.timings if t[2] != 202][:5]
        assert during, "no request overlapped the purge"
        lat = [(b - a) * 1000 for a, b, _, _ in during]
        calm = [(b - a) * 1000 for a, b, _, _ in intake.timings if b <= t0 or a >= t1]
        print("purge took %.2f s in %d batches; %d requests during it: intake p99 %.1f ms,"
              " max %.1f ms; %d requests outside it: p99 %s ms"
              % (t1 - t0, len(progress), len(during), p99(lat), max(lat), len(calm),
                 "%.1f" % p99(calm) if calm else "-"))

        after = snapshot(db)
        new = {t[3] for t in intake.timings}
        for t in before:
            assert before[t] - after[t] == gone[t], \
                (t, sorted(before[t] - after[t] - gone[t])[:5], sorted(gone[t] - before[t])[:5])
        assert stays["communications"] <= after["communications"]
        assert stays["clients"] <= after["clients"]
        assert new <= after["communications"], "the requests taken during the purge stay"
        # no member without its digest, no digest without a member
        rows = h.psql(db, "SELECT count(*) FROM communications m"
                          " WHERE m.batch_id IS NOT NULL AND NOT EXISTS"
                          " (SELECT 1 FROM communications d WHERE d.id = m.batch_id)")
        assert rows == [["0"]], rows
        rows = h.psql(db, "SELECT count(*) FROM communications d"
                          " WHERE d.message_type = 'digest' AND NOT EXISTS"
                          " (SELECT 1 FROM communications m WHERE m.batch_id = d.id)")
        assert rows == [["0"]], rows

        # a second run finds nothing
        proc = run_purge(db)
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        assert parse_counts(proc.stdout, "deleted") == {t: 0 for t in TABLES}, proc.stdout
        assert "purge: batch" not in proc.stderr, proc.stderr

        # one purge at a time: while another session holds the lock, a purge
        # says so, exits 0 and changes nothing
        age(db, list(stays["communications"] - {stays_in_flight(db)}))
        held = snapshot(db)
        psql = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", db],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=h.base_env())
        try:
            psql.stdin.write("SELECT pg_try_advisory_lock(%s);\n" % LOCK_KEY)
            psql.stdin.flush()
            assert psql.stdout.readline().strip() == "t"
            proc = run_purge(db)
            assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
            assert "another purge is running" in proc.stdout, proc.stdout
            assert snapshot(db) == held
        finally:
            psql.stdin.close()
            psql.wait(30)
        # once it is released, the rows made old just now go
        proc = run_purge(db)
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        assert parse_counts(proc.stdout, "deleted")["communications"] > 0, proc.stdout


def stays_in_flight(db):
    """The one kept message that is still queued."""
    rows = h.psql(db, "SELECT id FROM communications WHERE status = 'queued'"
                      " AND next_attempt_at > now() + interval '1 year'")
    assert len(rows) == 1, rows
    return rows[0][0]


def purge_events(crier, event):
    return [e for e in h.log_events(crier.log(), event) if e.get("component") == "purge"]


def test_serve_purges_daily(tmp):
    # A short interval stands for the day. While another session holds the
    # lock the job skips; once it is free, the old rows go by themselves.
    db = h.new_database("retention_serve")
    psql = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", db], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=h.base_env())
    try:
        psql.stdin.write("SELECT pg_try_advisory_lock(%s);\n" % LOCK_KEY)
        psql.stdin.flush()
        assert psql.stdout.readline().strip() == "t"
        with h.Crier(db, os.path.join(tmp, "serve"), env=env(CRIER_PURGE_INTERVAL_S="1")) as crier:
            old = [post(crier, h.comm_body(i))["communication_id"] for i in range(30)]
            recent = [post(crier, h.comm_body(100 + i))["communication_id"] for i in range(5)]
            wait_settled(db, old + recent)
            age(db, old)
            h.wait_until(lambda: purge_events(crier, "skipped"), 15,
                         what="a purge skipped while the lock is held")
            assert len(h.psql(db, "SELECT id FROM communications")) == 35
            psql.stdin.close()
            psql.wait(30)
            h.wait_until(lambda: h.psql(db, "SELECT count(*) FROM communications") == [["5"]],
                         30, what="the old rows purged by serve")
            rows = set(r[0] for r in h.psql(db, "SELECT id FROM communications"))
            assert rows == set(recent), rows
            done = h.wait_until(lambda: [e for e in purge_events(crier, "purged")
                                         if e.get("communications") != "0"], 10)
            assert done[0]["communications"] == "30", done[0]
            status, _, text = crier.request("GET", "/metrics", token=None)
            assert status == 200
            assert re.search(r'^crier_purge_last_deleted\{table="communications"\} \d+$', text,
                             re.M), text
            assert re.search(r"^crier_purge_last_run_timestamp_seconds \d+$", text, re.M)
    finally:
        if psql.poll() is None:
            psql.stdin.close()
            psql.wait(30)


h.run([test_purge_cli, test_serve_purges_daily])
