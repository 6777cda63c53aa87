"""crier simulate, against the binary:

* the shipped scenarios in rules/scenarios pass `crier simulate test`;
* a week of 50 messages plays in well under a second;
* a scenario naming an unknown channel, an impossible time or a malformed
  provider behaviour is refused (exit 2) with the file and the entry named,
  and so is a broken JSON file (with its line);
* one scenario played by the simulator and by a real crier (live transports
  against the provider stub scripted the same way, a real PostgreSQL, an
  SMTP sink, a short clock) ends every message in the same state, on the
  same channel, after the same number of attempts.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SUFFIX = "7001"


def simulate(args, env=None):
    cmd = [h.crier_bin(), "simulate"] + list(args) + [
        "--rules", os.path.join(h.source_dir(), "rules"),
        "--templates", os.path.join(h.source_dir(), "templates")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env=h.base_env(env or {}))


def write(tmp, name, doc):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        if isinstance(doc, str):
            f.write(doc)
        else:
            json.dump(doc, f, indent=1)
    return path


def base_scenario(**kw):
    doc = {
        "name": "a small one",
        "start": "2026-03-09T08:00",
        "client": {"timezone": "Asia/Kolkata", "email": "a@example.com",
                   "phone": "+919800000009", "consent": {"sms": True}},
        "requests": [{"at": "2026-03-09T10:00", "type": "welcome"}],
    }
    doc.update(kw)
    return doc


def test_shipped_scenarios_pass(tmp):
    r = simulate(["test", os.path.join(h.source_dir(), "rules", "scenarios")])
    print(r.stdout)
    assert r.returncode == 0, (r.stdout, r.stderr)
    last = r.stdout.strip().splitlines()[-1]
    passed, failed = int(last.split()[0]), int(last.split()[2])
    assert failed == 0 and passed >= 6, last
    for needed in ("DST", "outage", "STOP", "digest"):
        assert needed in r.stdout, needed


def test_a_failed_expectation_fails(tmp):
    doc = base_scenario(expect=[{"message": 1, "channel": "sms"}])
    r = simulate([write(tmp, "wrong.json", doc)])
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "expect[0]: message 1 ended on email, expected sms" in r.stdout, r.stdout


def test_a_week_of_fifty_messages_under_a_second(tmp):
    types = ["welcome", "budget_summary", "vendor_options", "selection_confirmation",
             "reminder", "blueprint_delivery", "error_notification"]
    reqs = [{"at": "+%dm" % (i * 200), "type": types[i % len(types)]} for i in range(50)]
    # a week of requests; the last ones may wait for the next morning
    doc = base_scenario(requests=reqs, until="2026-03-17T08:00", providers=[
        {"channel": "email", "from": "+1d", "until": "+2d", "result": "451 4.3.0"},
        {"channel": "sms", "times": 5, "result": "429 Retry-After 30"}])
    path = write(tmp, "week.json", doc)
    started = time.monotonic()
    r = simulate([path, "--json"])
    took = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    msgs = [m for m in out["messages"] if m["type"] != "digest"]
    assert len(msgs) == 50
    finals = {"sent", "delivered", "failed", "bounced", "skipped"}
    assert all(m["state"] in finals for m in msgs), [m["state"] for m in msgs]
    assert sum(m["attempts"] for m in msgs) > 50  # the outage made retries
    print("50 messages over a week: %.3f s (the whole process)" % took)
    # The whole process, rules loading included; the play itself is
    # milliseconds. A second is the bound, with room to spare.
    assert took < 1.0, took


def test_bad_scenarios_name_file_and_entry(tmp):
    bad = {
        "channel.json": (base_scenario(providers=[{"channel": "fax", "result": "ok"}]),
                         "providers[0]: unknown channel \"fax\""),
        "date.json": (base_scenario(requests=[{"at": "2026-02-30T09:00", "type": "welcome"}]),
                      "requests[0]: at: \"2026-02-30T09:00\" is no date and time"),
        "gap.json": (base_scenario(client={"timezone": "America/New_York"},
                                   start="2026-03-07T08:00",
                                   requests=[{"at": "2026-03-08T02:30", "type": "welcome"}]),
                     "requests[0]: at: \"2026-03-08T02:30\" does not exist in America/New_York"),
        "behaviour.json": (base_scenario(providers=[{"channel": "sms", "result": "sometimes"}]),
                           "providers[0]: result: \"sometimes\" is no behaviour"),
        "receipt.json": (base_scenario(providers=[{"channel": "email",
                                                   "result": "undelivered after 40 s"}]),
                         "providers[0]: result: email has no delivery receipts"),
        "event.json": (base_scenario(events=[{"at": "+1h", "event": "stop", "channel": "pigeon"}]),
                       "events[0]: unknown channel \"pigeon\""),
        "message.json": (base_scenario(expect=[{"message": 7, "state": "sent"}]),
                         "expect[0]: message must be a request's number, 1 to 1"),
        "field.json": (base_scenario(surprise=True), "scenario: unknown field \"surprise\""),
        "outside.json": (base_scenario(requests=[{"at": "+9d", "type": "welcome"}]),
                         "requests[0]: at: outside the scenario"),
        "syntax.json": ('{\n  "name": "x",\n  "start": \n}\n', "line 4"),
    }
    for name, (doc, want) in sorted(bad.items()):
        path = write(tmp, name, doc)
        r = simulate([path])
        assert r.returncode == 2, (name, r.returncode, r.stdout, r.stderr)
        assert path in r.stderr and want in r.stderr, (name, r.stderr)
        assert r.stdout == "", (name, r.stdout)


def scenario_for_compare(start, zone):
    """The same four messages the real crier is sent below, and the stub's
    scripted answers written as the simulator's provider behaviours."""
    at = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 30 * i)) for i in range(4)]
    return {
        "name": "simulator against a real crier",
        "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start - 60)),
        "until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 3600)),
        "client": {"timezone": zone, "email": "cmp@example.com", "phone": "+1555000" + SUFFIX,
                   "consent": {"sms": True, "whatsapp": True}},
        "requests": [
            {"at": at[0], "type": "welcome", "urgency": "normal"},
            {"at": at[1], "type": "error_notification", "urgency": "critical"},
            {"at": at[2], "type": "reminder", "urgency": "normal", "preferred_channel": "sms"},
            {"at": at[3], "type": "vendor_options", "urgency": "high",
             "preferred_channel": "whatsapp"},
        ],
        "providers": [
            {"channel": "sms", "message": 2, "result": "500"},
            {"channel": "sms", "message": 3, "attempt": 1, "result": "429 Retry-After 1"},
            {"channel": "whatsapp", "message": 4, "result": "401"},
            {"channel": "sms", "message": 4, "result": "401"},
        ],
    }


# The stub's mode for the client's number while each message is sent.
STUB_MODES = ["success", "http500", "first:1:http429:1", "http401"]


def test_simulator_agrees_with_a_real_crier(tmp):
    zone = h.daytime_zone()
    start = time.time()
    doc = scenario_for_compare(start, zone)
    r = simulate([write(tmp, "compare.json", doc), "--json"])
    assert r.returncode == 0, r.stderr
    simulated = [m for m in json.loads(r.stdout)["messages"] if m["type"] != "digest"]
    assert len(simulated) == 4

    db = h.new_database("simulate")
    sink = h.SmtpSink(os.path.join(tmp, "sink"))
    real = []
    try:
        with h.ProviderStub(os.path.join(tmp, "stub")) as stub, \
                h.Crier(db, tmp, env=h.live_env(stub, sink)) as crier:
            first = None
            for i, req in enumerate(doc["requests"]):
                stub.set_modes("success", {SUFFIX: STUB_MODES[i]})
                body = h.comm_body(1, email=doc["client"]["email"], phone=doc["client"]["phone"],
                                   consent=doc["client"]["consent"], timezone=zone,
                                   message_type=req["type"], urgency=req["urgency"],
                                   preferred_channel=req.get("preferred_channel"),
                                   plan_id=first and first["plan_id"],
                                   client_id=first and first["client_id"])
                first = first or body
                status, _, js = crier.post_comm(body)
                assert status == 202, (status, js)
                cid = js["communication_id"]
                final = crier.wait_final([cid], timeout=90)[cid]
                real.append(final)
    finally:
        sink.stop()
    for i, (s, got) in enumerate(zip(simulated, real)):
        want = (s["state"], s["channel"], s["attempts"])
        have = (got["status"], got["channel"], got["attempts"])
        print("message %d: simulated %s, real %s" % (i + 1, want, have))
        assert want == have, (i + 1, want, have, s["timeline"])
    # the script made each path happen: retries, a move, a rate limit, a circuit
    assert [m["attempts"] for m in simulated] == [1, 3, 2, 3], simulated
    assert [m["channel"] for m in simulated] == ["email", "email", "sms", "email"]


h.run([test_shipped_scenarios_pass, test_a_failed_expectation_fails,
       test_a_week_of_fifty_messages_under_a_second, test_bad_scenarios_name_file_and_entry,
       test_simulator_agrees_with_a_real_crier])
