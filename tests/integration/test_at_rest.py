"""Nothing a client wrote or is called is readable in a dump of the
database: communications sent and replies received through a running crier
leave the clients' names, addresses, numbers and words only encrypted, in
pg_dump's output as in the tables. Tokens are bound to their row (a callback
body moved to another row is not sent), and `crier migrate` encrypts what an
older crier left in clear.
"""
import json
import os
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


TW_TOKEN = "at-rest-twilio-token-0123456789ab"
PUBLIC = "https://crier.example"
CALLBACK_SECRET = "at-rest-callback-secret-0123456789abcdef"

# Distinctive enough that a match in a dump can only be a leak.
CLIENTS = [
    {"name": "Zelda Quixotewright", "email": "zelda.quixotewright@lighthouse.example",
     "phone": "+15557770101", "reply": "Quixotic lanterns by the jetty, please"},
    {"name": "Ambrose Vantablack-Ørsted", "email": "Ambrose.Vantablack@Marsh.example",
     "phone": "+15557770202", "reply": "Saturday suits us; the heron pavilion?"},
    {"name": "Ottoline Brackwater", "email": "ottoline.brackwater@fen.example",
     "phone": "+15557770303", "reply": "Could the cake be lemon-thyme instead"},
]


def webhook_env(**extra):
    env = {"TWILIO_AUTH_TOKEN": TW_TOKEN, "CRIER_PUBLIC_URL": PUBLIC}
    env.update(extra)
    return env


def callback_env(receiver):
    return webhook_env(CRIER_WORKFLOW_CALLBACK_URL=receiver.url,
                       CRIER_WORKFLOW_CALLBACK_SECRET=CALLBACK_SECRET,
                       CRIER_CALLBACK_RETRY_SECONDS="1")


def reply(crier, phone, text):
    """A signed Twilio inbound SMS from phone; returns its MessageSid."""
    status, body, sid = h.twilio_inbound(crier, TW_TOKEN, PUBLIC, phone, text)
    assert status == 200, (status, body)
    return sid

def private_strings(clients):
    """Every form in which a client's details could show: as given, lower
    case, the number without its "+", each part of the name."""
    found = []
    for c in clients:
        found += [c["name"], c["email"], c["email"].lower(), c["phone"], c["phone"].lstrip("+"),
                  c["reply"]]
        found += [part for part in c["name"].replace("-", " ").split() if len(part) > 4]
    return found


def assert_nothing_in_clear(dump, secrets, expected):
    # non-trivial: the dump has the tables' rows (their ids and tokens)
    assert "COPY public.communications " in dump, dump[:2000]
    assert "COPY public.clients " in dump
    for value in expected:
        assert value in dump, "the dump lacks %r: not a dump of the test's rows" % value
    assert dump.count("v2.") >= 3 * len(CLIENTS), dump.count("v2.")
    for s in secrets:
        assert s not in dump, "the dump shows %r in clear" % s


def test_dump_holds_no_client_text(tmp):
    db = h.new_database("at_rest")
    clients = [dict(c) for c in CLIENTS]
    expected = []
    with h.Crier(db, os.path.join(tmp, "first"), env=webhook_env()) as crier:
        ids = []
        for i, c in enumerate(clients):
            body = h.comm_body(i, name=c["name"], email=c["email"], phone=c["phone"],
                               message_type="welcome", urgency="critical",
                               consent={"sms": False, "whatsapp": False})
            status, _, resp = crier.post_comm(body)
            assert status == 202, resp
            c["client_id"] = body["client_id"]
            ids.append(resp["communication_id"])
        final = crier.wait_final(ids, 60)
        assert all(f["status"] == "delivered" for f in final.values()), final
        # every one has a subject (it names the client), only encrypted
        rows = h.psql(db, "SELECT count(*) FILTER (WHERE subject_enc LIKE 'v2.%'),"
                          " count(*) FILTER (WHERE subject IS NOT NULL) FROM communications")
        assert rows == [[str(len(ids)), "0"]], rows
        # a reply from each: no callback URL, so the callbacks wait (pending)
        sids = [reply(crier, c["phone"], c["reply"]) for c in clients]
        rows = h.psql(db, "SELECT state, count(*), count(*) FILTER (WHERE payload_enc LIKE 'v2.%')"
                          " FROM workflow_callbacks GROUP BY state")
        assert rows == [["pending", str(len(clients)), str(len(clients))]], rows
        expected = ids + [c["client_id"] for c in clients] + sids
        assert_nothing_in_clear(h.pg_dump(db), private_strings(clients), expected)

    # the workflow comes online: it gets the words, the rows keep only ids
    with h.CallbackReceiver(tmp) as rx:
        with h.Crier(db, os.path.join(tmp, "second"), env=callback_env(rx)):
            h.wait_until(lambda: h.psql(db, "SELECT count(*) FROM workflow_callbacks"
                                            " WHERE state = 'delivered'") == [[str(len(clients))]],
                         20, what="every callback delivered")
            got = sorted(json.loads(h.callback_body(r))["text"] for r in rx.requests())
            assert got == sorted(c["reply"] for c in clients), got
            assert all(h.callback_signature_ok(r, CALLBACK_SECRET) for r in rx.requests())
    rows = h.psql(db, "SELECT count(*) FROM workflow_callbacks"
                      " WHERE payload_enc IS NULL AND NOT payload ? 'text'"
                      " AND payload ? 'inbound_message_id'")
    assert rows == [[str(len(clients))]], rows
    assert_nothing_in_clear(h.pg_dump(db), private_strings(clients), expected)


def test_moved_body_is_not_sent(tmp):
    # Two pending callbacks whose encrypted bodies are swapped (as anyone
    # who can write the table could): each is bound to its own row, so
    # neither opens in the other's, and neither is sent.
    db = h.new_database("at_rest_swap")
    with h.Crier(db, os.path.join(tmp, "first"), env=webhook_env()) as crier:
        for i, c in enumerate(CLIENTS[:2]):
            status, _, resp = crier.post_comm(h.comm_body(i, name=c["name"], email=c["email"],
                                                          phone=c["phone"], urgency="critical"))
            assert status == 202, resp
            reply(crier, c["phone"], c["reply"])
    h.psql(db, "UPDATE workflow_callbacks w SET payload_enc = o.payload_enc"
               " FROM workflow_callbacks o WHERE o.id <> w.id")
    with h.CallbackReceiver(tmp) as rx:
        with h.Crier(db, os.path.join(tmp, "second"), env=callback_env(rx)):
            h.wait_until(lambda: h.psql(db, "SELECT count(*) FROM workflow_callbacks"
                                            " WHERE state = 'failed'") == [["2"]],
                         20, what="both callbacks failed")
            rows = h.psql(db, "SELECT attempts, last_error FROM workflow_callbacks")
            assert all(r[0] == "1" and "cannot be decrypted" in r[1] for r in rows), rows
            assert rx.requests() == [], rx.requests()


def run_migrate(db, key=None):
    env = {"CRIER_DATABASE_URL": db, "CRIER_SQL_DIR": os.path.join(h.source_dir(), "sql")}
    if key:
        env["CRIER_ENCRYPTION_KEY"] = key
    return subprocess.run([h.crier_bin(), "migrate"], capture_output=True, text=True,
                          timeout=120, env=h.base_env(env))


def test_migrate_encrypts_what_was_clear(tmp):
    # Rows as an older crier left them: a clear subject, a pending callback
    # with the reply's words in its payload.
    db = h.new_database("at_rest_migrate")
    client_id, comm_id, cb_id = (str(uuid.uuid4()) for _ in range(3))
    subject = "Welcome to Planiva, %s: your plan" % CLIENTS[0]["name"]
    payload = {"type": "client_reply", "text": CLIENTS[0]["reply"], "channel": "sms",
               "client_id": client_id, "communication_id": comm_id, "inbound_message_id": 7}
    h.psql(db, "INSERT INTO clients (id) VALUES (:'c'::uuid);"
               " INSERT INTO communications (id, plan_id, client_id, message_type, status, subject)"
               " VALUES (:'m'::uuid, gen_random_uuid(), :'c'::uuid, 'welcome', 'delivered', :'s');"
               " INSERT INTO workflow_callbacks (id, communication_id, event_type, payload)"
               " VALUES (:'w'::uuid, :'m'::uuid, 'client_reply', :'p'::jsonb)",
           c=client_id, m=comm_id, s=subject, w=cb_id, p=json.dumps(payload))

    # without the key it says what it needs and leaves the rows as they are
    proc = run_migrate(db)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "CRIER_ENCRYPTION_KEY" in proc.stderr, proc.stderr
    assert h.psql(db, "SELECT subject IS NOT NULL FROM communications") == [["t"]]
    # (the dump check does see a value in clear: here, before the migration)
    before = h.pg_dump(db)
    assert subject in before and CLIENTS[0]["reply"] in before

    proc = run_migrate(db, h.ENCRYPTION_KEY)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "1 subject(s), 1 callback(s)" in proc.stdout, proc.stdout
    rows = h.psql(db, "SELECT subject IS NULL, subject_enc LIKE 'v2.%' FROM communications")
    assert rows == [["t", "t"]], rows
    rows = h.psql(db, "SELECT payload ? 'text', payload->>'inbound_message_id',"
                      " payload_enc LIKE 'v2.%' FROM workflow_callbacks")
    assert rows == [["f", "7", "t"]], rows
    dump = h.pg_dump(db)
    assert comm_id in dump and cb_id in dump
    for s in (subject, CLIENTS[0]["name"], CLIENTS[0]["reply"]):
        assert s not in dump, "the dump shows %r in clear" % s

    # a second run has nothing to do
    proc = run_migrate(db, h.ENCRYPTION_KEY)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "schema up to date" in proc.stdout and "re-encrypted" not in proc.stdout, proc.stdout

    # the encrypted body is the one the workflow receives
    with h.CallbackReceiver(tmp) as rx:
        with h.Crier(db, tmp, env=callback_env(rx)):
            h.wait_until(lambda: len(rx.requests()) == 1, 20, what="the callback sent")
            got = json.loads(h.callback_body(rx.requests()[0]))
            # the sender stamps an event id and a sequence number on the stored body
            assert isinstance(got.pop("event_id"), str) and isinstance(got.pop("seq"), int), got
            assert got == payload, (got, payload)
            h.wait_until(lambda: h.psql(db, "SELECT state, payload_enc IS NULL"
                                            " FROM workflow_callbacks") == [["delivered", "t"]],
                         10, what="the callback recorded as delivered")


h.run([test_dump_holds_no_client_text, test_moved_body_is_not_sent,
       test_migrate_encrypts_what_was_clear])
