"""Rotating the encryption key while crier serves: values written under key
a are re-encrypted under key b by `crier keys rotate` while a running crier
(started with b in front of a) keeps taking communications and replies; a
rotation killed half-way is finished by running it again; afterwards every
encrypted value of every table is under b, no accepted request is lost,
clients are still found by their phone (the blind index did not change),
and crier runs with b alone once given the blind index key. A wrong key, or
a key list missing the key values are under, stops crier serve at start-up
with a message that names the problem.
"""
import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


TW_TOKEN = "rotation-twilio-token-0123456789ab"
PUBLIC = "https://crier.example"
KEY_A = base64.b64encode(bytes(range(1, 33))).decode("ascii")
KEY_B = base64.b64encode(bytes(range(101, 133))).decode("ascii")
KEY_C = base64.b64encode(bytes(range(201, 233))).decode("ascii")

SEED = 3000          # communications (each its own client) written under key a
REPLIES = 30         # inbound SMS from seeded clients, under key a
LOAD_MAX = 1500      # requests the background load sends at most during the rotation
LOAD_SECONDS = 120   # ... and for at most this long

# Every encrypted column: the token prefixes of all of them are checked.
ENC_COLUMNS = [("clients", "name_enc"), ("clients", "email_enc"), ("clients", "phone_enc"),
               ("inbound_messages", "sender_enc"), ("inbound_messages", "body_enc"),
               ("communications", "subject_enc"), ("workflow_callbacks", "payload_enc")]


def keys_env(keys, index_key=None, **extra):
    env = {"CRIER_ENCRYPTION_KEY": None, "CRIER_ENCRYPTION_KEYS": keys,
           "TWILIO_AUTH_TOKEN": TW_TOKEN, "CRIER_PUBLIC_URL": PUBLIC}
    if index_key:
        env["CRIER_BLIND_INDEX_KEY"] = index_key
    env.update(extra)
    return env


def crier_cmd(db, args, env, timeout=300):
    full = {"CRIER_DATABASE_URL": db}
    full.update(env)
    return subprocess.run([h.crier_bin()] + args, capture_output=True, text=True,
                          timeout=timeout, env=h.base_env(full))


def phone_of(i):
    return "+1555%07d" % i


def reply(crier, phone, text):
    """A signed Twilio inbound SMS from phone; returns its MessageSid."""
    status, body, sid = h.twilio_inbound(crier, TW_TOKEN, PUBLIC, phone, text)
    assert status == 200, (status, body)
    return sid

def post(crier, i):
    body = h.comm_body(i, phone=phone_of(i), urgency="critical")
    status, _, resp = crier.post_comm(body)
    assert status == 202, (status, resp)
    return resp["communication_id"], body["client_id"]


def prefix_counts(db):
    """{(table, column): {key id: values}}"""
    out = {}
    for table, column in ENC_COLUMNS:
        rows = h.psql(db, "SELECT split_part(%s, '.', 2), count(*) FROM %s"
                          " WHERE %s IS NOT NULL GROUP BY 1" % (column, table, column))
        out[(table, column)] = {k: int(n) for k, n in rows}
    return out


def assert_all_under(db, key_id):
    counts = prefix_counts(db)
    for col, per_key in counts.items():
        assert set(per_key) <= {key_id}, (col, per_key)
    for table in ("clients", "inbound_messages"):
        rows = h.psql(db, "SELECT count(*) FROM %s WHERE key_id IS DISTINCT FROM :'k'"
                          " AND (%s)" % (table, " OR ".join(
                              "%s IS NOT NULL" % c for t, c in ENC_COLUMNS if t == table)),
                      k=key_id)
        assert rows == [["0"]], (table, rows)
    rows = h.psql(db, "SELECT count(*) FROM communications WHERE subject IS NOT NULL")
    assert rows == [["0"]], rows
    return counts


def wait_all_final(db, ids, timeout=180):
    """Every id exists and every communication has reached a final status
    (in SQL: one query, not a request per id)."""
    statuses = ",".join("'%s'" % s for s in h.FINAL_STATUSES)
    h.wait_until(lambda: h.psql(db, "SELECT count(*) FROM communications"
                                    " WHERE status NOT IN (%s)" % statuses) == [["0"]],
                 timeout, 0.5, what="every communication final")
    stored = {r[0] for r in h.psql(db, "SELECT id::text FROM communications")}
    missing = set(ids) - stored
    assert not missing, "%d accepted communication(s) missing" % len(missing)


def serve_refuses(db, tmp, env, name):
    """Runs crier serve with env and expects it to refuse to start: exit 2
    with a message; returns the message."""
    port = h.free_port()
    full = {"CRIER_DATABASE_URL": db, "CRIER_LISTEN": "127.0.0.1:%d" % port,
            "CRIER_API_TOKENS": "workflow:%s" % h.TOKEN_WORKFLOW,
            "CRIER_TEMPLATES_DIR": os.path.join(h.source_dir(), "templates"),
            "CRIER_RULES_DIR": h.rules_dir(), "CRIER_OUTBOX_DIR": os.path.join(tmp, name)}
    full.update(env)
    try:
        proc = subprocess.run([h.crier_bin(), "serve"], capture_output=True, text=True,
                              timeout=30, env=h.base_env(full), cwd=tmp)
    except subprocess.TimeoutExpired:
        raise AssertionError("crier serve started (%s) when it should have refused" % name)
    assert proc.returncode == 2, (name, proc.returncode, proc.stderr)
    return proc.stderr


class Load:
    """POSTs communications (and now and then an inbound reply from a seeded
    client) in a thread until stopped, LOAD_MAX requests or LOAD_SECONDS."""

    def __init__(self, crier, client_ids):
        self.crier = crier
        self.client_ids = client_ids
        self.renamed = []  # seeded clients given a new address while rotating
        self.accepted = []
        self.replies = 0
        self.errors = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + LOAD_SECONDS
        for n in range(LOAD_MAX):
            if self.stop_flag.is_set() or time.monotonic() > deadline:
                break
            try:
                if n % 10 == 9:
                    reply(self.crier, phone_of(n % SEED), "reply during the rotation %d" % n)
                    self.replies += 1
                elif n % 10 == 4:
                    # a change the rotation must not undo: a new address
                    j = n % SEED
                    body = h.comm_body(j, client_id=self.client_ids[j], phone=phone_of(j),
                                       email="renamed%d@example.com" % j, urgency="critical")
                    status, _, resp = self.crier.post_comm(body)
                    assert status == 202, (status, resp)
                    self.accepted.append(resp["communication_id"])
                    self.renamed.append(j)
                else:
                    self.accepted.append(post(self.crier, 100000 + n)[0])
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
                break
            time.sleep(0.005)

    def finish(self):
        self.stop_flag.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert self.errors == [], self.errors


def seed(crier, db):
    with ThreadPoolExecutor(8) as pool:
        posted = list(pool.map(lambda i: post(crier, i), range(SEED)))
    ids = [p[0] for p in posted]
    for i in range(REPLIES):
        reply(crier, phone_of(i), "an answer from client %d" % i)
    wait_all_final(db, ids)
    return ids, [p[1] for p in posted]


def test_rotate_online(tmp):
    db = h.new_database("key_rotation")
    keys_a = "a:" + KEY_A
    keys_ba = "b:%s,a:%s" % (KEY_B, KEY_A)
    with h.Crier(db, os.path.join(tmp, "a"), env=keys_env(keys_a)) as crier:
        seeded, client_ids = seed(crier, db)
    counts = prefix_counts(db)
    assert counts[("clients", "phone_enc")] == {"a": SEED}, counts
    assert counts[("inbound_messages", "sender_enc")] == {"a": REPLIES}, counts
    assert counts[("workflow_callbacks", "payload_enc")] == {"a": REPLIES}, counts
    matched = h.psql(db, "SELECT count(*) FROM inbound_messages WHERE client_id IS NOT NULL")
    assert matched == [[str(REPLIES)]], matched

    # the status before: everything under a, which the new ring calls old
    proc = crier_cmd(db, ["keys", "status"], keys_env(keys_ba))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"clients\s+phone_enc\s+v2 a\s+%d\s+old" % SEED, proc.stdout), proc.stdout
    assert "not under the current key b" in proc.stdout, proc.stdout
    proc = crier_cmd(db, ["keys", "rotate", "--dry-run"], keys_env(keys_ba))
    assert proc.returncode == 0, proc.stderr
    assert "clients: %d row(s) to rotate to key b" % SEED in proc.stdout, proc.stdout
    assert prefix_counts(db) == counts  # the dry run changed nothing

    with h.Crier(db, os.path.join(tmp, "ba"), env=keys_env(keys_ba)) as crier:
        load = Load(crier, client_ids)
        h.wait_until(lambda: len(load.accepted) >= 20, 30, what="the load under way")
        # a rotation killed after its first batch
        rot = subprocess.Popen([h.crier_bin(), "keys", "rotate", "--batch", "50"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=h.base_env(dict(keys_env(keys_ba), CRIER_DATABASE_URL=db)))
        first = rot.stdout.readline()
        rot.send_signal(signal.SIGKILL)
        rot.wait(30)
        rot.stdout.close()
        rot.stderr.close()
        assert "row(s) rotated (batch 1)" in first, first
        assert rot.returncode == -signal.SIGKILL, rot.returncode
        half = prefix_counts(db)
        under_a = half[("clients", "name_enc")].get("a", 0)
        assert under_a <= SEED - 50, half  # the batch it reported is committed
        # run again: it finds what is left and finishes
        started = time.monotonic()
        proc = crier_cmd(db, ["keys", "rotate", "--batch", "50"], keys_env(keys_ba))
        seconds = time.monotonic() - started
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert "every stored value is under key b" in proc.stdout, proc.stdout
        m = re.search(r"rotated (\d+) row\(s\) to key b in (\d+) batch\(es\), ([0-9.]+) s",
                      proc.stdout)
        assert m, proc.stdout
        rotated, batches = int(m.group(1)), int(m.group(2))
        assert rotated >= under_a, (rotated, under_a)
        during = len(load.accepted)
        load.finish()
        accepted = len(load.accepted)
        wait_all_final(db, seeded + load.accepted)
        # what serve wrote during the rotation is under b too
        assert_all_under(db, "b")
    print("figures: %d seeded comms, %d replies; killed after %d of %d rows; re-run rotated %d "
          "row(s) in %d batch(es) of 50 in %.2f s (crier's own count %s s); %d comms accepted "
          "by the time it finished, %d in all (%d of them changing a client's address), and %d "
          "replies during the rotation"
          % (SEED, REPLIES, SEED - under_a, SEED, rotated, batches, seconds, m.group(3), during,
             accepted, len(load.renamed), load.replies))
    assert load.renamed
    assert accepted > 0

    # every reply found its client by phone (the index did not change)
    rows = h.psql(db, "SELECT count(*) FILTER (WHERE client_id IS NULL), count(*)"
                      " FROM inbound_messages")
    assert rows == [["0", str(REPLIES + load.replies)]], rows

    # the index key, taken while a is still listed, lets b run alone
    proc = crier_cmd(db, ["keys", "index-key"], keys_env(keys_ba))
    assert proc.returncode == 0, proc.stderr
    index_key = proc.stdout.strip()
    assert len(base64.b64decode(index_key)) == 32
    proc = crier_cmd(db, ["keys", "status"], keys_env("b:" + KEY_B, index_key))
    assert proc.returncode == 0, proc.stderr
    assert "every stored value is under the current key b" in proc.stdout, proc.stdout

    # b alone without the index key: the indexes made under a no longer match
    err = serve_refuses(db, tmp, keys_env("b:" + KEY_B), "b_no_index")
    assert "blind index key does not match" in err and "CRIER_BLIND_INDEX_KEY" in err, err
    # another key under the id b
    err = serve_refuses(db, tmp, keys_env("b:" + KEY_C, index_key), "b_wrong")
    assert "does not decrypt under key id b" in err, err
    # a ring without b
    err = serve_refuses(db, tmp, keys_env("c:%s,a:%s" % (KEY_C, KEY_A)), "no_b")
    assert "encrypted under key id b, which is not configured" in err, err
    for key in (KEY_A, KEY_B, KEY_C, index_key):
        assert key not in err

    with h.Crier(db, os.path.join(tmp, "b"), env=keys_env("b:" + KEY_B, index_key)) as crier:
        # an old client (written under a) is found by phone, and reached
        sid = reply(crier, phone_of(7), "still here after the rotation")
        rows = h.psql(db, "SELECT client_id::text FROM inbound_messages"
                          " WHERE provider_message_id = :'s'", s=sid)
        assert rows == [[client_ids[7]]], rows
        body = h.comm_body(7, client_id=client_ids[7], phone=phone_of(7), urgency="critical")
        status, _, resp = crier.post_comm(body)
        assert status == 202, resp
        final = crier.wait_final([resp["communication_id"]], 60)
        assert final[resp["communication_id"]]["status"] == "delivered", final
        # the addresses changed while the rotation ran are the ones stored:
        # a message that gives no client details goes to them
        sent = []
        for j in load.renamed[:10]:
            body = h.comm_body(j, client_id=client_ids[j], urgency="critical", client=False)
            status, _, resp = crier.post_comm(body)
            assert status == 202, resp
            sent.append((j, resp["communication_id"]))
        final = crier.wait_final([c for _, c in sent], 60)
        for j, cid in sent:
            assert final[cid]["status"] == "delivered", final[cid]
            with open(os.path.join(crier.outbox, cid + ".eml")) as f:
                head = f.read().split("\n\n", 1)[0]
            assert "renamed%d@example.com" % j in head, head
    assert_all_under(db, "b")


def test_single_key_upgrade(tmp):
    # A database written under CRIER_ENCRYPTION_KEY (tokens name its derived
    # id) opens once that key is listed under a name of its own behind a new
    # one, and rotates.
    db = h.new_database("key_rotation_single")
    with h.Crier(db, os.path.join(tmp, "single"), env={"TWILIO_AUTH_TOKEN": TW_TOKEN,
                                                        "CRIER_PUBLIC_URL": PUBLIC}) as crier:
        ids = [post(crier, i)[0] for i in range(20)]
        reply(crier, phone_of(3), "before")
        crier.wait_final(ids, 60)
    derived = h.psql(db, "SELECT DISTINCT split_part(email_enc, '.', 2) FROM clients")
    assert len(derived) == 1 and re.fullmatch(r"[0-9a-f]{8}", derived[0][0]), derived

    # both settings at once, and a bad entry: refused, naming them
    both = dict(keys_env("b:" + KEY_B), CRIER_ENCRYPTION_KEY=h.ENCRYPTION_KEY)
    err = serve_refuses(db, tmp, both, "both")
    assert "CRIER_ENCRYPTION_KEY and CRIER_ENCRYPTION_KEYS are both set" in err, err
    proc = crier_cmd(db, ["keys", "rotate"], both)
    assert proc.returncode == 2 and "both set" in proc.stderr, proc.stderr
    err = serve_refuses(db, tmp, keys_env("b:%s,old:c2hvcnQ=" % KEY_B), "bad_entry")
    assert "CRIER_ENCRYPTION_KEYS entry 2 is not base64 of exactly 32 bytes" in err, err
    assert KEY_B not in err

    ring = "b:%s,old:%s" % (KEY_B, h.ENCRYPTION_KEY)
    with h.Crier(db, os.path.join(tmp, "ring"), env=keys_env(ring)) as crier:
        proc = crier_cmd(db, ["keys", "rotate"], keys_env(ring))
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        # 20 clients, their 20 subjects, the reply and its callback
        assert "rotated 42 row(s) to key b" in proc.stdout, proc.stdout
        sid = reply(crier, phone_of(3), "after")
        rows = h.psql(db, "SELECT count(DISTINCT client_id), count(*) FROM inbound_messages"
                          " WHERE client_id IS NOT NULL")
        assert rows == [["1", "2"]], (rows, sid)
    assert_all_under(db, "b")
    # the index key is the single key's, whichever the ring prints it from
    single = crier_cmd(db, ["keys", "index-key"], {"CRIER_ENCRYPTION_KEY": h.ENCRYPTION_KEY})
    listed = crier_cmd(db, ["keys", "index-key"], keys_env(ring))
    assert single.returncode == 0 and single.stdout == listed.stdout, (single, listed)
    # so is the link key: the links of mail sent under the single key still work
    single = crier_cmd(db, ["keys", "link-key"], {"CRIER_ENCRYPTION_KEY": h.ENCRYPTION_KEY})
    listed = crier_cmd(db, ["keys", "link-key"], keys_env(ring))
    index = crier_cmd(db, ["keys", "index-key"], keys_env(ring))
    assert single.returncode == 0 and single.stdout == listed.stdout, (single, listed)
    # a purpose of its own: never the index key
    assert len(single.stdout.strip()) == 44 and single.stdout != index.stdout, (single, index)


h.run([test_rotate_online, test_single_key_upgrade])
