"""The clients API and preferences, on a real PostgreSQL and Redis:

- 100 clients made through PUT /v1/clients leave none of their addresses,
  numbers or names in clear in pg_dump, and an inbound SMS still finds its
  client by phone (the blind index); reading a client is audited;
- a preferences change is used by the very next decision, on every process
  (through Redis, and without it through PostgreSQL), and each change sends
  one preferences_updated confirmation through the newly preferred channel;
- WhatsApp-first gets vendor options by WhatsApp, an email opt-out is never
  emailed again, own quiet hours 23:00-07:00 move a NORMAL message to 07:00
  local;
- bad input is refused naming the field, and changes nothing."""
import concurrent.futures
import datetime
import os
import shutil
import sys
import uuid
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


TW_TOKEN = "clients-twilio-token-0123456789abc"
PUBLIC = "https://crier.example"
PREFS_TYPE = "preferences_updated"


def env(**extra):
    e = {"TWILIO_AUTH_TOKEN": TW_TOKEN, "CRIER_PUBLIC_URL": PUBLIC,
         "CRIER_REDIS_URL": h.env_redis_url()}
    e.update(extra)
    return e


def put_client(crier, cid, body, token=h.TOKEN_WORKFLOW):
    return crier.request("PUT", "/v1/clients/%s" % cid, body, token=token)


def put_prefs(crier, cid, body, token=h.TOKEN_WORKFLOW):
    return crier.request("PUT", "/v1/clients/%s/preferences" % cid, body, token=token)


def reply(crier, phone, text):
    status, body, sid = h.twilio_inbound(crier, TW_TOKEN, PUBLIC, phone, text)
    assert status == 200, (status, body)
    return sid

def new_client(crier, i, consent=None, phone=True, timezone="UTC"):
    cid = str(uuid.uuid4())
    body = {"name": "Perpetua Lindqvist-%03d" % i, "email": "perpetua.%03d@orchard.example" % i,
            "timezone": timezone,
            "consent": consent if consent is not None else {"sms": True, "whatsapp": True}}
    if phone:
        body["phone"] = "+1555888%04d" % i
    status, _, resp = put_client(crier, cid, body)
    assert status == 201, (status, resp)
    return cid, body


def send(crier, cid, message_type="vendor_options", urgency="high"):
    body = h.comm_body(0, message_type=message_type, urgency=urgency, client_id=cid, client=False)
    status, _, resp = crier.post_comm(body)
    assert status == 202, (status, resp)
    return resp


def prefs_comms(db, cid):
    return h.psql(db, "SELECT id, channel FROM communications WHERE client_id = :'c'"
                      " AND message_type = 'preferences_updated' ORDER BY created_at", c=cid)


def test_pii_at_rest_and_lookup(tmp):
    db = h.new_database("clients_pii")
    with h.Crier(db, os.path.join(tmp, "c"), env=env()) as crier:
        made = [new_client(crier, i) for i in range(100)]
        rows = h.psql(db, "SELECT count(*) FROM clients WHERE email_enc LIKE 'v2.%'"
                          " AND phone_enc LIKE 'v2.%' AND name_enc LIKE 'v2.%'")
        assert rows == [["100"]], rows
        dump = h.pg_dump(db)
        assert "COPY public.clients " in dump
        for cid, _ in made:
            assert cid in dump, "the dump lacks the client rows"
        for _, body in made:
            for secret in (body["email"], body["phone"], body["phone"].lstrip("+"),
                           body["name"]):
                assert secret not in dump, "%r in clear in the dump" % secret
        # the blind index still finds a client by its number
        cid, body = made[37]
        reply(crier, body["phone"], "Is the orchard free on the 12th?")
        rows = h.psql(db, "SELECT client_id FROM inbound_messages")
        assert rows == [[cid]], rows

        # reading contact details: operator or admin, audited with the token's label
        status, _, got = crier.request("GET", "/v1/clients/%s" % cid, token=h.TOKEN_OPERATOR)
        assert status == 200, got
        assert (got["email"], got["phone"], got["name"]) == (body["email"], body["phone"],
                                                             body["name"]), got
        assert got["consent"] == {"email": False, "sms": True, "whatsapp": True}, got
        status, _, got = crier.request("GET", "/v1/clients/%s" % cid, token=h.TOKEN_WORKFLOW)
        assert status == 403, got
        rows = h.psql(db, "SELECT actor, action, subject_id, address FROM audit_log")
        assert rows == [["operator#2", "client.read", cid, "127.0.0.1"]], rows
        # an update answers without the contact details, and is no read
        status, _, got = put_client(crier, cid, {"locale": "pt-BR"})
        assert status == 200 and got["locale"] == "pt-BR" and got["has_phone"] is True, got
        assert "phone" not in got and "email" not in got, got
        assert h.psql(db, "SELECT count(*) FROM audit_log") == [["1"]]
        # the consent ledger has each grant, by the token that gave it
        rows = h.psql(db, "SELECT channel, action, source, actor FROM consent_ledger"
                          " WHERE client_id = :'c' ORDER BY id", c=cid)
        assert rows == [["sms", "granted", "api", "workflow#1"],
                        ["whatsapp", "granted", "api", "workflow#1"]], rows


def test_preferences_decide_and_confirm(tmp):
    db = h.new_database("clients_prefs")
    with h.Crier(db, os.path.join(tmp, "c"), env=env()) as crier:
        # WhatsApp first: the confirmation goes there, then vendor options do
        a, _ = new_client(crier, 1)
        assert send(crier, a)["decision"]["primary_channel"] == "email"
        status, _, got = put_prefs(crier, a, {"preferred_channels": ["whatsapp", "email"]})
        assert status == 200, got
        assert got["preferences"]["preferred_channels"] == ["whatsapp", "email"], got
        conf = got["confirmation"]
        assert conf and conf["decision"]["primary_channel"] == "whatsapp", got
        resp = send(crier, a)
        assert resp["decision"]["primary_channel"] == "whatsapp", resp
        final = crier.wait_final([resp["communication_id"], conf["communication_id"]], 30)
        assert all(f["channel"] == "whatsapp" for f in final.values()), final
        # the same values again change nothing and confirm nothing
        status, _, got = put_prefs(crier, a, {"preferred_channels": ["whatsapp", "email"]})
        assert status == 200 and got["confirmation"] is None, got
        assert len(prefs_comms(db, a)) == 1
        # the seed's form of the call
        status, _, got = crier.request("POST", "/api/crm/preferences",
                                       {"client_id": a, "preferred_channels": ["sms"]})
        assert status == 200 and got["confirmation"]["decision"]["primary_channel"] == "sms", got
        assert [r[1] for r in prefs_comms(db, a)] == ["whatsapp", "sms"]

        # an email opt-out: never emailed again, whatever the message
        b, _ = new_client(crier, 2)
        status, _, got = put_prefs(crier, b, {"opt_out_email": True})
        assert status == 200 and got["preferences"]["opt_out_email"] is True, got
        assert got["confirmation"]["decision"]["primary_channel"] == "sms", got
        ids = [got["confirmation"]["communication_id"]]
        for t in ("welcome", "budget_summary", "vendor_options", "selection_confirmation",
                  "reminder", "error_notification"):
            d = send(crier, b, message_type=t)
            assert "email" not in [d["decision"]["primary_channel"]] + \
                d["decision"]["fallback_channels"], d
            ids.append(d["communication_id"])
        crier.wait_final(ids, 30)
        rows = h.psql(db, "SELECT count(*) FROM communications WHERE client_id = :'c'"
                          " AND channel = 'email'", c=b)
        assert rows == [["0"]], rows
        rows = h.psql(db, "SELECT channel, action, source FROM consent_ledger"
                          " WHERE client_id = :'c' AND source = 'preferences'", c=b)
        assert rows == [["email", "revoked", "preferences"]], rows

        # changes of one client at the same moment take turns: none fails
        zones = ["Asia/Kolkata", "Europe/Lisbon", "America/Chicago", "Africa/Nairobi"] * 2
        busy, _ = new_client(crier, 6)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(lambda z: put_prefs(crier, busy, {"timezone": z,
                                                                  "opt_out_whatsapp": z < "B"}),
                                zones))
        assert all(g[0] == 200 for g in got), [g[0] for g in got]
        _, _, now = crier.request("GET", "/v1/clients/%s/preferences" % busy)
        assert now["timezone"] in zones, now

        # bad input: 422 naming the field, and nothing changes
        status, _, before = crier.request("GET", "/v1/clients/%s/preferences" % a)
        assert status == 200, before
        bad = [
            ({"timezone": "Mars/Olympus"}, "timezone"),
            ({"quiet_hours_start": "25:00", "quiet_hours_end": "07:00"}, "quiet_hours_start"),
            ({"quiet_hours_start": "23:00"}, "quiet_hours_start"),
            ({"preferred_channels": ["email", "pigeon"]}, "preferred_channels"),
            ({"preferred_channels": ["sms", "sms"]}, "preferred_channels"),
            ({"preferred_channels": []}, "preferred_channels"),
            ({"opt_out_sms": "yes"}, "opt_out_sms"),
            ({"favourite_colour": "teal"}, "favourite_colour"),
            ({}, "body"),
        ]
        for body, field in bad:
            status, _, got = put_prefs(crier, a, body)
            assert status == 422 and got["error"]["message"].startswith(field), (body, got)
        status, _, got = crier.request("POST", "/api/crm/preferences",
                                       {"client_id": "not-a-uuid", "opt_out_sms": True})
        assert status == 422 and "client_id" in got["error"]["message"], got
        status, _, got = put_prefs(crier, "not-a-uuid", {"opt_out_sms": True})
        assert status == 422 and "client_id" in got["error"]["message"], got
        status, _, got = put_prefs(crier, str(uuid.uuid4()), {"opt_out_sms": True})
        assert status == 404, got
        status, _, got = crier.request("GET", "/v1/clients/%s/preferences" % a)
        assert got == before, (got, before)
        assert len(prefs_comms(db, a)) == 2
        status, _, got = put_client(crier, a, {"email": "not an address"})
        assert status == 422 and got["error"]["message"].startswith("email"), got

        # the client's communications, newest first, page by page
        status, _, page = crier.request("GET", "/v1/clients/%s/communications?limit=4" % b)
        assert status == 200 and len(page["communications"]) == 4 and page["next_before"], page
        status, _, rest = crier.request("GET", "/v1/clients/%s/communications?limit=4&before=%s"
                                        % (b, page["next_before"]))
        assert status == 200 and len(rest["communications"]) == 3, rest
        assert rest["next_before"] is None, rest
        seen = [c["communication_id"] for c in page["communications"] + rest["communications"]]
        assert sorted(seen) == sorted(ids) and len(set(seen)) == 7, seen


def shipped_rules(tmp):
    dst = os.path.join(tmp, "rules")
    src = os.path.join(h.source_dir(), "rules")
    os.makedirs(dst)
    for name in os.listdir(src):
        if name.endswith(".lua"):
            shutil.copy(os.path.join(src, name), dst)
    return dst


def zone_at_two_am(now):
    """A fixed-offset zone where it is now between 02:00 and 02:59 local."""
    offset = (2 - now.hour) % 24
    if offset > 14:
        offset -= 24
    # Etc/GMT-N is UTC+N
    name = "Etc/GMT%+d" % -offset if offset else "Etc/GMT"
    return name, zoneinfo.ZoneInfo(name)


def test_own_quiet_hours_move_normal(tmp):
    db = h.new_database("clients_quiet")
    rules = shipped_rules(tmp)
    with h.Crier(db, os.path.join(tmp, "c"), env=env(CRIER_RULES_DIR=rules)) as crier:
        now = datetime.datetime.now(datetime.timezone.utc)
        name, zone = zone_at_two_am(now)
        c, _ = new_client(crier, 3, timezone=name)
        status, _, got = put_prefs(crier, c, {"quiet_hours_start": "23:00",
                                              "quiet_hours_end": "07:00"})
        assert status == 200, got
        assert (got["preferences"]["quiet_hours_start"],
                got["preferences"]["quiet_hours_end"]) == ("23:00", "07:00"), got
        local = now.astimezone(zone)
        seven = local.replace(hour=7, minute=0, second=0, microsecond=0)
        d = send(crier, c, message_type="budget_summary", urgency="normal")
        assert d["status"] == "pending", d
        at = datetime.datetime.fromisoformat(d["decision"]["send_at"].replace("Z", "+00:00"))
        assert at == seven.astimezone(datetime.timezone.utc), (d["decision"]["send_at"], seven)
        # its confirmation (HIGH) waits for the same morning
        conf = got["confirmation"]
        assert conf["status"] == "pending", conf
        # no quiet hours at all: NORMAL goes now, even at 02:00
        status, _, got = put_prefs(crier, c, {"quiet_hours_start": None,
                                              "quiet_hours_end": None})
        assert status == 200 and got["preferences"]["quiet_hours_start"] is None, got
        d = send(crier, c, message_type="budget_summary", urgency="normal")
        assert d["status"] == "queued", d
        assert len(prefs_comms(db, c)) == 2


def metric(crier, name):
    status, _, text = crier.request("GET", "/metrics", token=None)
    assert status == 200
    if isinstance(text, dict):
        raise AssertionError(text)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def shared_change(tmp, db, redis):
    extra = {} if redis else {"CRIER_REDIS_URL": None}
    with h.Crier(db, os.path.join(tmp, "one"), env=env(**extra)) as one, \
            h.Crier(db, os.path.join(tmp, "two"), env=env(**extra)) as two:
        c, _ = new_client(one, 4)
        # two decides once (and, with Redis, caches what it read) ...
        assert send(two, c)["decision"]["primary_channel"] == "email"
        assert send(two, c)["decision"]["primary_channel"] == "email"
        # ... one changes the preferences; two's next decision uses them
        status, _, got = put_prefs(one, c, {"preferred_channels": ["whatsapp", "email"]})
        assert status == 200, got
        assert send(two, c)["decision"]["primary_channel"] == "whatsapp"
        # and an opt-out made through two reaches one
        status, _, got = put_prefs(two, c, {"opt_out_whatsapp": True})
        assert status == 200, got
        assert send(one, c)["decision"]["primary_channel"] == "email"
        # a change nobody told the cache of (made in SQL) is seen all the
        # same: a cached copy is used only at the client's current version
        assert send(two, c)["decision"]["primary_channel"] == "email"
        h.psql(db, "UPDATE client_preferences SET opt_out_email = true WHERE client_id = :'c'",
               c=c)
        d = send(two, c)["decision"]
        assert d["primary_channel"] == "sms" and "email" not in d["fallback_channels"], d
        backend = "redis" if redis else "postgres"
        assert metric(two, 'crier_preference_cache_backend{backend="%s"}' % backend) == 1
        hits = metric(two, 'crier_preference_cache_lookups_total{result="hit"}')
        bypassed = metric(two, 'crier_preference_cache_lookups_total{result="bypassed"}')
        if redis:
            assert hits >= 1, hits  # the second decision came from the cache
        else:
            assert hits == 0 and bypassed >= 4, (hits, bypassed)


def test_two_processes_share_through_redis(tmp):
    shared_change(tmp, h.new_database("clients_redis"), True)


def test_two_processes_share_without_redis(tmp):
    shared_change(tmp, h.new_database("clients_pg"), False)


def test_erased_client_is_refused(tmp):
    db = h.new_database("clients_erased")
    with h.Crier(db, os.path.join(tmp, "c"), env=env()) as crier:
        c, _ = new_client(crier, 5)
        send(crier, c)
        status, _, got = crier.request("DELETE", "/v1/clients/%s" % c, token=h.TOKEN_ADMIN)
        assert status == 200, got
        body = h.comm_body(0, message_type="welcome", client_id=c, client=False)
        status, _, got = crier.post_comm(body)
        assert status == 410 and got["error"]["code"] == "client_erased", got
        # a client object without consent does not bring it back
        body = h.comm_body(0, message_type="welcome", client_id=c, consent={})
        del body["client"]["consent"]
        status, _, got = crier.post_comm(body)
        assert status == 410, got
        assert h.psql(db, "SELECT email_enc IS NULL FROM clients WHERE id = :'c'", c=c) == [["t"]]
        for path in ("/v1/clients/%s/preferences" % c, "/v1/clients/%s/communications" % c):
            status, _, got = crier.request("GET", path)
            assert status == 410, (path, got)
        status, _, got = put_prefs(crier, c, {"opt_out_sms": True})
        assert status == 410, got
        # made again with explicit consent
        status, _, got = put_client(crier, c, {"email": "back@orchard.example",
                                               "consent": {"sms": False}})
        assert status == 201, got
        status, _, got = crier.post_comm(h.comm_body(0, message_type="welcome", client_id=c,
                                                     client=False))
        assert status == 202, got


if __name__ == "__main__":
    h.run([test_pii_at_rest_and_lookup, test_preferences_decide_and_confirm,
           test_own_quiet_hours_move_normal, test_two_processes_share_through_redis,
           test_two_processes_share_without_redis, test_erased_client_is_refused])
