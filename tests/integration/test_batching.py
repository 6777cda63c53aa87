"""Batching: LOW messages for a recently contacted client merge into one
digest email (rules/batching.lua: at most 3, a 5-minute window), which is
sent exactly once, also when two crier processes share the database.

The shipped batching only batches a client who heard from us in the last
24 hours, so each test first sends its client a normal message. The third
LOW message fills the digest, which then goes at once: nothing waits for
the window.
"""
import concurrent.futures
import email
import email.policy
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ACTIONS = ["confirm the guest count", "choose a caterer", "pick a ceremony venue"]


def live_env(sink):
    return {
        "CRIER_TRANSPORT": "live",
        "CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port,
        "CRIER_SMTP_TLS": "off",
        "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>",
        "CRIER_WORKERS": "2",
    }


def parse(path):
    with open(path, "rb") as f:
        return email.message_from_bytes(f.read(), policy=email.policy.default)


def crier_id(msg):
    value = msg.get("X-Crier-Id")
    return str(value).strip() if value is not None else None


def text_part(msg):
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None, "the email has a text part"
    return part.get_content()


def html_part(msg):
    part = msg.get_body(preferencelist=("html",))
    assert part is not None, "the email has an HTML part"
    return part.get_content()


def contact_first(crier, sink, client_id, plan_id):
    """A normal message, sent: the client was contacted moments ago."""
    body = h.comm_body(0, client_id=client_id, plan_id=plan_id, message_type="welcome",
                       urgency="high", email="digest-client@example.com")
    status, _, js = crier.post_comm(body)
    assert status == 202, (status, js)
    assert js["status"] == "queued", js
    final = crier.wait_final([js["communication_id"]], timeout=15)
    assert final[js["communication_id"]]["status"] == "sent", final
    sink.wait_for(1, timeout=10)
    return js["communication_id"]


def low_body(client_id, plan_id, action):
    return h.comm_body(0, client_id=client_id, plan_id=plan_id, message_type="reminder",
                       urgency="low", client=False,
                       context={"pending_action": action, "event_type": "wedding",
                                "action_url": "https://app.planiva.example/a/%s"
                                % action.replace(" ", "-")})


def check_batched_answer(status, js):
    assert status == 202, (status, js)
    assert js["status"] == "batched", js
    batch = js["decision"]["batch"]
    assert batch["window_seconds"] == 300 and batch["max_size"] == 3, batch
    assert batch["key"].startswith("low:"), batch
    uuid.UUID(batch["digest_id"])
    return batch["digest_id"]


def check_digest_email(msg, digest_id):
    assert crier_id(msg) == digest_id, (crier_id(msg), digest_id)
    assert str(msg["Subject"]).startswith("3 updates on your"), msg["Subject"]
    text, html = text_part(msg), html_part(msg)
    for action in ACTIONS:
        assert ("Reminder: please " + action) in text, (action, text)
        assert ("Reminder: please " + action) in html, (action, html)
        assert ("https://app.planiva.example/a/" + action.replace(" ", "-")) in text, text


def check_member(crier, member_id, digest_id, status):
    st, _, js = crier.get_comm(member_id)
    assert st == 200, (st, js)
    assert js["status"] == status, (member_id, js["status"])
    assert js["decision"]["batch"]["digest_id"] == digest_id, js["decision"]
    events = js["events"]
    assert events[0]["event_type"] == "batched", events
    assert events[0]["detail"] == {"digest_id": digest_id}, events[0]
    if status == "sent":
        sent = [e for e in events if e["event_type"] == "sent"]
        assert len(sent) == 1, events
        assert sent[0]["detail"] == {"digest_id": digest_id}, sent[0]
        assert js["sent_at"], js


def test_three_low_become_one_digest(tmp):
    db = h.new_database("batching")
    with h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "a"), env=live_env(sink)) as crier:
        client_id, plan_id = str(uuid.uuid4()), str(uuid.uuid4())
        contact_first(crier, sink, client_id, plan_id)

        members, digests = [], []
        for action in ACTIONS:
            status, _, js = crier.post_comm(low_body(client_id, plan_id, action))
            digests.append(check_batched_answer(status, js))
            members.append(js["communication_id"])
        assert len(set(digests)) == 1, digests
        digest_id = digests[0]

        files = sink.wait_for(2, timeout=15)
        time.sleep(1.0)  # a second send would land just after the first
        files = sink.files()
        assert len(files) == 2, "one welcome and one digest (%d emails)" % len(files)
        check_digest_email(parse(files[1]), digest_id)

        final = crier.wait_final([digest_id] + members, timeout=10)
        assert final[digest_id]["message_type"] == "digest", final[digest_id]
        assert final[digest_id]["status"] == "sent", final[digest_id]
        for m in members:
            check_member(crier, m, digest_id, "sent")
        rows = h.psql(db, "SELECT batch_size, batch_max, attempts FROM communications"
                          " WHERE id = :'id'", id=digest_id)
        assert rows == [["3", "3", "1"]], rows

        # After the digest went, the next LOW message opens a new one, which
        # waits for its window (nothing is sent now).
        status, _, js = crier.post_comm(low_body(client_id, plan_id, "book a photographer"))
        second = check_batched_answer(status, js)
        assert second != digest_id, "a new digest"
        rows = h.psql(db, "SELECT status, batch_size,"
                          " round(extract(epoch FROM next_attempt_at - send_at))"
                          " FROM communications WHERE id = :'id'", id=second)
        assert rows == [["pending", "1", "300"]], rows
        check_member(crier, js["communication_id"], second, "batched")
        time.sleep(1.0)
        assert len(sink.files()) == 2, "the new digest waits for its window"

        # A digest is the engine's own type: the workflow cannot ask for one.
        body = h.comm_body(1, message_type="digest", urgency="low")
        status, _, js = crier.post_comm(body)
        assert status in (400, 422), (status, js)


def test_two_processes_send_the_digest_once(tmp):
    db = h.new_database("batching2")
    with h.SmtpSink(os.path.join(tmp, "sink")) as sink:
        env = live_env(sink)
        with h.Crier(db, os.path.join(tmp, "a"), env=env) as a, \
                h.Crier(db, os.path.join(tmp, "b"), env=env) as b:
            servers = [a, b]
            client_id, plan_id = str(uuid.uuid4()), str(uuid.uuid4())
            contact_first(a, sink, client_id, plan_id)

            # Posted at once, alternately to both processes: both may try to
            # open the client's digest at the same moment.
            def post(i):
                return servers[i % 2].post_comm(low_body(client_id, plan_id, ACTIONS[i]))

            with concurrent.futures.ThreadPoolExecutor(3) as ex:
                answers = list(ex.map(post, range(3)))
            digests = [check_batched_answer(st, js) for st, _, js in answers]
            members = [js["communication_id"] for _, _, js in answers]
            assert len(set(digests)) == 1, digests
            digest_id = digests[0]

            sink.wait_for(2, timeout=15)
            time.sleep(1.5)  # a duplicate would land just after the first
            ids = [crier_id(parse(p)) for p in sink.files()]
            assert ids.count(digest_id) == 1, ids
            assert len(ids) == 2, ids
            check_digest_email(parse(sink.files()[1]), digest_id)
            final = b.wait_final([digest_id] + members, timeout=10)
            assert final[digest_id]["status"] == "sent", final[digest_id]
            for m in members:
                check_member(servers[members.index(m) % 2], m, digest_id, "sent")
            rows = h.psql(db, "SELECT count(*), sum(attempts) FROM communications"
                              " WHERE message_type = 'digest'")
            assert rows == [["1", "1"]], rows


def test_many_clients_at_once(tmp):
    """LOW messages of several clients posted together, so that the intake
    writes them in shared rounds: one digest per client, each sent once."""
    db = h.new_database("batching3")
    clients = 4
    with h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "a"), env=live_env(sink)) as crier:
        ids = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(clients)]
        firsts = []
        for k, (client_id, plan_id) in enumerate(ids):
            body = h.comm_body(k, client_id=client_id, plan_id=plan_id, urgency="high")
            status, _, js = crier.post_comm(body)
            assert status == 202, (status, js)
            firsts.append(js["communication_id"])
        crier.wait_final(firsts, timeout=15)
        sink.wait_for(clients, timeout=10)

        jobs = [(c, p, a) for a in ACTIONS for (c, p) in ids]
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as ex:
            answers = list(ex.map(lambda j: crier.post_comm(low_body(*j)), jobs))
        by_client = {}
        for (client_id, _, _), (st, _, js) in zip(jobs, answers):
            by_client.setdefault(client_id, set()).add(check_batched_answer(st, js))
        assert all(len(d) == 1 for d in by_client.values()), by_client
        digests = {next(iter(d)) for d in by_client.values()}
        assert len(digests) == clients, digests

        sink.wait_for(2 * clients, timeout=15)
        time.sleep(1.0)
        got = [crier_id(parse(p)) for p in sink.files()]
        assert len(got) == 2 * clients, got
        for d in digests:
            assert got.count(d) == 1, (d, got)
        for p in sink.files():
            msg = parse(p)
            if crier_id(msg) in digests:
                check_digest_email(msg, crier_id(msg))
        final = crier.wait_final(list(digests), timeout=10)
        assert all(v["status"] == "sent" for v in final.values()), final


h.run([test_three_low_become_one_digest, test_two_processes_send_the_digest_once,
       test_many_clients_at_once])
