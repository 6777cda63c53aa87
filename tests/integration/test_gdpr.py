"""A client's export and erasure, against the real binary and PostgreSQL
with the sandbox transports (docs/privacy.md):

1. The export of a client with ten communications (one with an
   attachment, two LOW ones waiting in a digest), a reply, two consent
   changes (STOP, then START) and a message from its number sent before it
   existed holds every row the database has for that client, table by table: every table with a client_id column and the
   children reached through communication_id, each row with the same
   values, and the client's name, email, phone and words decrypted.
2. The erasure leaves none of the client's name, email, phone (in any
   usual spelling), context values, reply text or attachment in pg_dump;
   the analytics view is unchanged; the waiting messages are skipped with
   reason "erased"; the pending callback failed; audit rows name the
   token's label and 127.0.0.1; another client is untouched.
3. The refusals: 410 for the erased client (export and a second DELETE),
   403 for a non-admin token, 422 for a malformed id, 404 for an unknown.
"""
import base64
import json
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


TW_TOKEN = "gdpr-twilio-auth-token-0123456789a"
PUBLIC = "https://crier.example"
ADMIN_LABEL = "dpo-alice"

# Distinctive enough that a match in a dump can only be a leak.
ALICE = {"name": "Persephone Quillfeather-Marchbanks",
         "email": "Persephone.Quillfeather@orchard-lane.example",
         "phone": "+15557770404",
         "reply": "Could the quince tasting move to Thursday at the glasshouse",
         "note": "GDPRCTX-%s" % uuid.uuid4().hex[:12],
         "location": "Glimmerfen Boathouse, Lake Wendmoor",
         "early": "Hello, is this the Planiva number for the orchard wedding"}
BOB = {"name": "Octavian Brambleworth", "email": "octavian.brambleworth@fen.example",
       "phone": "+15557770505", "reply": "Saturday at the heron pavilion suits us",
       "note": "KEEPCTX-%s" % uuid.uuid4().hex[:12], "location": "Heron Pavilion, Marsh End"}
PDF_MARK = b"BLUEPRINT-%s" % uuid.uuid4().hex[:12].encode()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def crier_env():
    return {"TWILIO_AUTH_TOKEN": TW_TOKEN, "CRIER_PUBLIC_URL": PUBLIC,
            "CRIER_API_TOKENS": "workflow:%s,operator:%s,admin/%s:%s"
                                % (h.TOKEN_WORKFLOW, h.TOKEN_OPERATOR, ADMIN_LABEL, h.TOKEN_ADMIN)}


def sms_in(crier, phone, text):
    """A signed Twilio inbound SMS from phone."""
    status, body, sid = h.twilio_inbound(crier, TW_TOKEN, PUBLIC, phone, text)
    check(status == 200, "inbound SMS accepted: %s %r" % (status, body))
    return sid

def context_for(who, message_type, i):
    ctx = dict(h._example_context(message_type))
    ctx["private_note"] = "%s-%d" % (who["note"], i)
    if message_type == "welcome":
        ctx["location"] = who["location"]
    return ctx


def make_client(crier, db, who, n_sent, n_low, attachment=False):
    """A client with n_sent communications sent and n_low waiting in a
    digest; returns (client_id, [communication ids])."""
    client_id = str(uuid.uuid4())
    plan_id = str(uuid.uuid4())
    client = {"name": who["name"], "email": who["email"], "phone": who["phone"],
              "timezone": "UTC", "locale": "en", "consent": {"sms": True, "whatsapp": False}}
    types = ["welcome", "budget_summary", "vendor_options", "selection_confirmation",
             "reminder", "error_notification", "blueprint_delivery"]
    urgencies = ["critical", "high", "normal"]
    ids = []
    for i in range(n_sent):
        mt = types[i % len(types)]
        body = {"plan_id": plan_id, "client_id": client_id, "message_type": mt,
                "urgency": urgencies[i % len(urgencies)] if i else "critical",
                "context": context_for(who, mt, i), "client": client}
        if mt == "blueprint_delivery" and attachment:
            pdf = b"%PDF-1.4\n" + PDF_MARK + b"\n%%EOF\n"
            body["attachments"] = [{"filename": "blueprint.pdf", "content_type": "application/pdf",
                                    "content_base64": base64.b64encode(pdf).decode()}]
        status, _, js = crier.post_comm(body)
        check(status == 202, "POST %s answered %s: %r" % (mt, status, js))
        ids.append(js["communication_id"])
        if i == 0:  # the first one sent: the LOW ones below are batched
            crier.wait_final(ids, 30)
    final = crier.wait_final(ids, 60)
    check(all(f["status"] in ("sent", "delivered") for f in final.values()),
          "every message went out: %r" % {k: v["status"] for k, v in final.items()})
    for i in range(n_low):
        body = {"plan_id": plan_id, "client_id": client_id, "message_type": "reminder",
                "urgency": "low", "context": context_for(who, "reminder", 100 + i)}
        status, _, js = crier.post_comm(body)
        check(status == 202 and js["status"] == "batched", "LOW is batched: %s %r" % (status, js))
        ids.append(js["communication_id"])
    return client_id, ids


def rows_json(db, sql, **params):
    return [json.loads(r[0]) for r in h.psql(db, sql, **params)]


def admin(crier, method, path, token=h.TOKEN_ADMIN):
    return crier.request(method, path, token=token)


# A client's inbound messages: its own, replies to its messages, and those
# from its number that came when no client had the number.
INBOUND_OF = ("(i.client_id = :'c'::uuid OR i.communication_id IN"
              " (SELECT id FROM communications WHERE client_id = :'c'::uuid)"
              " OR (i.client_id IS NULL AND i.sender_bidx ="
              " (SELECT phone_bidx FROM clients WHERE id = :'c'::uuid)))")

# What each table with a client_id column is in the export. A table added
# later with such a column fails here until the export covers it.
CLIENT_TABLES = {"client_preferences": "preferences", "communications": "communications",
                 "inbound_messages": "inbound_messages", "consent_ledger": "consent_ledger"}


def same_values(what, exported, stored):
    """Every column of the stored row has the same value in the export."""
    for k, v in stored.items():
        check(k in exported, "%s: the export lacks column %s" % (what, k))
        check(exported[k] == v, "%s.%s: export %r, database %r" % (what, k, exported[k], v))


def check_export_complete(db, doc, client_id, who):
    check(doc["client_id"] == client_id and doc["format"] == "crier.client_export.v1", doc.keys())
    tables = {r[0] for r in h.psql(
        db, "SELECT c.table_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'public' AND c.column_name = 'client_id'"
            " AND t.table_type = 'BASE TABLE'")}
    check(tables == set(CLIENT_TABLES), "tables with a client_id: %r" % sorted(tables))

    # clients: the row, PII decrypted, nothing encrypted or indexed in it
    client = doc["client"]
    stored = rows_json(db, "SELECT (to_jsonb(c) - 'name_enc' - 'email_enc' - 'email_bidx'"
                           " - 'phone_enc' - 'phone_bidx')::text FROM clients c"
                           " WHERE id = :'c'::uuid", c=client_id)
    same_values("clients", client, stored[0])
    check((client["name"], client["email"], client["phone"])
          == (who["name"], who["email"], who["phone"]), "decrypted client: %r" % client)
    check(not any(k.endswith("_enc") or k.endswith("_bidx") for k in client), client.keys())
    counts = {"clients": 1}

    # preferences: the one row
    stored = rows_json(db, "SELECT to_jsonb(p)::text FROM client_preferences p"
                           " WHERE client_id = :'c'::uuid", c=client_id)
    check(len(stored) == 1 and doc["preferences"] is not None, "one preferences row")
    same_values("client_preferences", doc["preferences"], stored[0])
    counts["client_preferences"] = 1

    def by_id(section, sql, key="id", **params):
        stored = {str(r[key]): r for r in rows_json(db, sql, **params)}
        exported = {str(r[key]): r for r in section}
        check(set(stored) == set(exported), "%s: database %d rows %s, export %d rows %s"
              % (sql[:60], len(stored), sorted(stored)[:3], len(exported), sorted(exported)[:3]))
        return stored, exported

    stored, exported = by_id(doc["consent_ledger"], "SELECT to_jsonb(l)::text FROM consent_ledger l"
                             " WHERE client_id = :'c'::uuid", c=client_id)
    for k in stored:
        same_values("consent_ledger", exported[k], stored[k])
    counts["consent_ledger"] = len(stored)

    stored, exported = by_id(doc["communications"],
                             "SELECT (to_jsonb(m) - 'subject_enc' - 'subject')::text"
                             " FROM communications m WHERE client_id = :'c'::uuid", c=client_id)
    for k in stored:
        same_values("communications", exported[k], stored[k])
    counts["communications"] = len(stored)
    subjects = [c["subject"] for c in doc["communications"] if c["subject"]]
    check(any(who["name"] in s for s in subjects), "a decrypted subject names the client: %r"
          % subjects[:3])

    # children through communication_id
    events = [e for c in doc["communications"] for e in c["events"]]
    stored, exported = by_id(events, "SELECT to_jsonb(e)::text FROM delivery_events e"
                             " JOIN communications m ON m.id = e.communication_id"
                             " WHERE m.client_id = :'c'::uuid", c=client_id)
    for k in stored:
        same_values("delivery_events", exported[k], stored[k])
    counts["delivery_events"] = len(stored)
    atts = [dict(a, key="%s/%d" % (a["communication_id"], a["ordinal"]))
            for c in doc["communications"] for a in c["attachments"]]
    stored, exported = by_id(atts, "SELECT jsonb_build_object('key', a.communication_id::text"
                             " || '/' || a.ordinal, 'filename', a.filename, 'content_type',"
                             " a.content_type, 'size', octet_length(a.data),"
                             " 'content_base64', replace(encode(a.data, 'base64'), chr(10), ''))::text"
                             " FROM communication_attachments a JOIN communications m"
                             " ON m.id = a.communication_id WHERE m.client_id = :'c'::uuid",
                             key="key", c=client_id)
    for k in stored:
        same_values("communication_attachments", exported[k], stored[k])
    counts["communication_attachments"] = len(stored)
    links = [dict(l, key="%s/%d" % (c["id"], l["link_index"]))
             for c in doc["communications"] for l in c["links"]]
    stored, exported = by_id(links, "SELECT jsonb_build_object('key', l.communication_id::text"
                             " || '/' || l.link_index, 'link_index', l.link_index, 'url', l.url)::text"
                             " FROM communication_links l JOIN communications m"
                             " ON m.id = l.communication_id WHERE m.client_id = :'c'::uuid",
                             key="key", c=client_id)
    for k in stored:
        same_values("communication_links", exported[k], stored[k])
    counts["communication_links"] = len(stored)

    stored, exported = by_id(doc["inbound_messages"],
                             "SELECT (to_jsonb(i) - 'sender_enc' - 'body_enc' - 'sender_bidx')::text"
                             " FROM inbound_messages i WHERE " + INBOUND_OF, c=client_id)
    for k in stored:
        same_values("inbound_messages", exported[k], stored[k])
    counts["inbound_messages"] = len(stored)
    check(all(m["sender"] == who["phone"] for m in doc["inbound_messages"]),
          "decrypted senders: %r" % [m["sender"] for m in doc["inbound_messages"]])
    bodies = sorted(m["body"] for m in doc["inbound_messages"])
    check(bodies == sorted([who["reply"], who["early"], "STOP", "START"]),
          "decrypted bodies: %r" % bodies)

    stored, exported = by_id(doc["workflow_callbacks"],
                             "SELECT (to_jsonb(w) - 'payload_enc' - 'payload')::text"
                             " FROM workflow_callbacks w WHERE w.communication_id IN"
                             " (SELECT id FROM communications WHERE client_id = :'c'::uuid)"
                             " OR w.payload->>'client_id' = :'c'", c=client_id)
    for k in stored:
        same_values("workflow_callbacks", exported[k], stored[k])
    counts["workflow_callbacks"] = len(stored)
    texts = [c["payload"].get("text") for c in doc["workflow_callbacks"]]
    check(texts == [who["reply"]], "the callback's decrypted body holds the reply: %r" % texts)

    # the audit entries about the client, but for this export's own (it
    # commits with the document, which cannot hold it)
    stored, exported = by_id(doc["audit_log"], "SELECT to_jsonb(a)::text FROM audit_log a"
                             " WHERE subject_type = 'client' AND subject_id = :'c'"
                             " AND id < (SELECT max(id) FROM audit_log"
                             "  WHERE action = 'client.export' AND subject_id = :'c')", c=client_id)
    for k in stored:
        same_values("audit_log", exported[k], stored[k])
    counts["audit_log"] = len(stored)
    return counts


def export_schema_errors(doc):
    import jsonschema
    import yaml
    with open(os.path.join(h.source_dir(), "docs", "openapi.yaml"), encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    resolver = jsonschema.RefResolver.from_schema(spec)
    v = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/ClientExport"},
                                        resolver=resolver, format_checker=jsonschema.FormatChecker())
    return ["%s at %s" % (e.message, "/".join(str(p) for p in e.absolute_path))
            for e in v.iter_errors(doc)]


def analytics(db):
    return h.psql(db, "SELECT message_type, channel, date, total_sent, delivered_count,"
                      " opened_count, clicked_count, failed_count,"
                      " round(avg_delivery_time_seconds::numeric, 6)"
                      " FROM crm_communication_analytics ORDER BY 1, 2, 3")


def phone_forms(phone):
    digits = phone.lstrip("+")
    local = digits[1:]  # without the country code 1
    return [phone, digits, local, "(%s) %s-%s" % (local[:3], local[3:6], local[6:]),
            "%s-%s-%s" % (local[:3], local[3:6], local[6:]), "%s %s %s" % (local[:3], local[3:6], local[6:])]


def secrets_of(who):
    found = [who["name"], who["email"], who["email"].lower(), who["reply"], who["note"],
             who["location"], who["early"]]
    found += [p for p in who["name"].replace("-", " ").split() if len(p) > 4]
    found += phone_forms(who["phone"])
    return found


def test_export_then_erase(tmp):
    db = h.new_database("gdpr")
    with h.Crier(db, tmp, env=crier_env()) as crier:
        # a message from the number before any client has it: nobody's yet
        sms_in(crier, ALICE["phone"], ALICE["early"])
        check(h.psql(db, "SELECT count(*) FROM inbound_messages WHERE client_id IS NULL")
              == [["1"]], "the early message is unattributed")
        alice, alice_ids = make_client(crier, db, ALICE, 8, 2, attachment=True)
        bob, _ = make_client(crier, db, BOB, 3, 0)
        check(len(alice_ids) == 10, alice_ids)
        sms_in(crier, ALICE["phone"], ALICE["reply"])
        sms_in(crier, BOB["phone"], BOB["reply"])
        # two consent changes: the STOP revokes SMS, the START grants it again
        sms_in(crier, ALICE["phone"], "STOP")
        sms_in(crier, ALICE["phone"], "START")
        # (the source each path names is not this test's: only what changed)
        ledger = h.psql(db, "SELECT channel, action FROM consent_ledger"
                            " WHERE client_id = :'c'::uuid ORDER BY id", c=alice)
        check(ledger == [["sms", "granted"], ["sms", "revoked"], ["sms", "granted"]],
              "ledger before: %r" % ledger)
        waiting = int(h.psql(db, "SELECT count(*) FROM communications WHERE client_id = :'c'::uuid"
                                 " AND status IN ('pending', 'queued', 'sending', 'batched')",
                             c=alice)[0][0])
        check(waiting == 3, "two LOW members and their digest wait: %d" % waiting)

        # ---- export (twice: the second holds the audit entry of the first)
        first = admin(crier, "GET", "/v1/clients/%s/export" % alice)
        check(first[0] == 200 and first[2]["audit_log"] == [], "first export: %s" % first[0])
        status, hdrs, doc = admin(crier, "GET", "/v1/clients/%s/export" % alice)
        check(status == 200 and "application/json" in hdrs.get("content-type", ""),
              "export answered %s %r" % (status, str(doc)[:300]))
        counts = check_export_complete(db, doc, alice, ALICE)
        print("  export: %s, %d bytes" % (", ".join("%s %d" % kv for kv in sorted(counts.items())),
                                          len(json.dumps(doc))))
        check(counts["communication_links"] > 0, "the tracked emails' links: %r" % counts)
        check(counts["communications"] == 11 and counts["inbound_messages"] == 4
              and counts["consent_ledger"] == 3 and counts["communication_attachments"] == 1
              and counts["workflow_callbacks"] == 1 and counts["audit_log"] == 1, counts)
        check(doc["audit_log"][0]["action"] == "client.export"
              and doc["audit_log"][0]["actor"] == ADMIN_LABEL, doc["audit_log"])
        errs = export_schema_errors(doc)
        check(not errs, "the export matches docs/openapi.yaml's ClientExport: %s" % errs[:3])
        att = [a for c in doc["communications"] for a in c["attachments"]][0]
        check(PDF_MARK in base64.b64decode(att["content_base64"]), "the attachment's bytes")
        bob_before = admin(crier, "GET", "/v1/clients/%s/export" % bob)[2]

        before = analytics(db)
        check(before, "the analytics view has rows")
        dump = h.pg_dump(db)
        check(all(s in dump for s in [ALICE["note"], ALICE["location"]]),
              "context values are in the dump before the erasure (the check can fail)")

        # an operator's note on a review can name what they learnt of her
        h.psql(db, "UPDATE communications SET review = 'resolved', review_note = :'n'"
                   " WHERE id = (SELECT id FROM communications WHERE client_id = :'c'::uuid"
                   " LIMIT 1)", n="Called Alice on her mobile", c=alice)

        # ---- erasure
        status, _, js = admin(crier, "DELETE", "/v1/clients/%s" % alice)
        check(status == 200, "erase answered %s %r" % (status, js))
        check(js["client_id"] == alice and js["cancelled"] == waiting and js["erased_at"], js)

        dump = h.pg_dump(db)
        check(alice in dump and bob in dump, "the dump has the clients' ids")
        for s in secrets_of(ALICE):
            check(s not in dump, "the dump still shows %r" % s)
        check(PDF_MARK.hex() not in dump and PDF_MARK.decode() not in dump, "attachment bytes")
        # ... while the other client's values are there, as before
        for s in [BOB["note"], BOB["location"]]:
            check(s in dump, "the other client's context %r is kept" % s)
        check(analytics(db) == before, "analytics changed:\n%r\n%r" % (before, analytics(db)))

        rows = h.psql(db, "SELECT status, skip_reason, (SELECT count(*) FROM delivery_events e"
                          " WHERE e.communication_id = m.id AND e.event_type = 'skipped'"
                          " AND e.error_details = 'erased') FROM communications m"
                          " WHERE client_id = :'c'::uuid AND skip_reason IS NOT NULL", c=alice)
        check(rows == [["skipped", "erased", "1"]] * waiting, "cancelled: %r" % rows)
        rows = h.psql(db, "SELECT name_enc IS NULL AND email_enc IS NULL AND phone_enc IS NULL"
                          " AND email_bidx IS NULL AND phone_bidx IS NULL AND key_id IS NULL"
                          " AND NOT (consent_email OR consent_sms OR consent_whatsapp)"
                          " AND timezone = 'UTC' AND erased_at IS NOT NULL,"
                          " (SELECT count(*) FROM client_preferences WHERE client_id = c.id)"
                          " FROM clients c WHERE id = :'c'::uuid", c=alice)
        check(rows == [["t", "0"]], "the client row keeps only id and erased_at: %r" % rows)
        rows = h.psql(db, "SELECT count(*) FILTER (WHERE context <> '{}' OR subject_enc IS NOT NULL"
                          " OR decision IS NOT NULL OR response IS NOT NULL"
                          " OR idempotency_key IS NOT NULL OR request_hash IS NOT NULL"
                          " OR review_note IS NOT NULL),"
                          " count(*) FROM communications WHERE client_id = :'c'::uuid", c=alice)
        check(rows == [["0", "11"]], "communications scrubbed, kept: %r" % rows)
        rows = h.psql(db, "SELECT count(*) FROM communication_links l JOIN communications m"
                          " ON m.id = l.communication_id WHERE m.client_id = :'c'::uuid", c=alice)
        check(rows == [["0"]], "the tracked links are deleted: %r" % rows)
        rows = h.psql(db, "SELECT count(*) FROM communication_links l JOIN communications m"
                          " ON m.id = l.communication_id WHERE m.client_id = :'c'::uuid", c=bob)
        check(rows != [["0"]], "the other client's links are kept: %r" % rows)
        rows = h.psql(db, "SELECT count(*) FILTER (WHERE sender_enc IS NOT NULL OR body_enc IS NOT"
                          " NULL OR sender_bidx IS NOT NULL), count(*) FROM inbound_messages i"
                          " WHERE i.client_id = :'c'::uuid OR i.client_id IS NULL", c=alice)
        check(rows == [["0", "4"]], "inbound scrubbed: %r" % rows)
        rows = h.psql(db, "SELECT count(*) FROM inbound_messages WHERE body_enc IS NOT NULL"
                          " AND client_id = :'c'::uuid", c=bob)
        check(rows == [["1"]], "the other client's reply is kept: %r" % rows)
        rows = h.psql(db, "SELECT state, last_error, payload_enc IS NULL, payload ? 'text'"
                          " FROM workflow_callbacks WHERE payload->>'client_id' = :'c'", c=alice)
        check(rows == [["failed", "client erased", "t", "f"]], "callback: %r" % rows)
        ledger = h.psql(db, "SELECT channel, action, source, actor FROM consent_ledger"
                            " WHERE client_id = :'c'::uuid ORDER BY id", c=alice)
        check(len(ledger) == 4 and ledger[3] == ["sms", "revoked", "erasure", ADMIN_LABEL],
              "ledger after: %r" % ledger)
        audit = h.psql(db, "SELECT action, actor, address, subject_id FROM audit_log"
                           " WHERE subject_id = :'c' ORDER BY id", c=alice)
        check(audit == [["client.export", ADMIN_LABEL, "127.0.0.1", alice]] * 2
                       + [["client.erase", ADMIN_LABEL, "127.0.0.1", alice]], "audit: %r" % audit)

        # the other client: the same export (but for its own audit entries)
        bob_after = admin(crier, "GET", "/v1/clients/%s/export" % bob)[2]
        for k in bob_before:
            if k not in ("generated_at", "audit_log"):
                check(bob_after[k] == bob_before[k], "the other client's %s changed" % k)
        check(bob_after["client"]["name"] == BOB["name"], "the other client decrypts")

        # ---- refusals
        for method, path in (("GET", "/v1/clients/%s/export"), ("DELETE", "/v1/clients/%s")):
            st, _, js = admin(crier, method, path % alice)
            check(st == 410 and js["error"]["code"] == "client_erased"
                  and "client_id" in js["error"]["message"], "%s erased: %s %r" % (method, st, js))
            st, _, js = admin(crier, method, path % bob, token=h.TOKEN_WORKFLOW)
            check(st == 403 and js["error"]["code"] == "forbidden", "%s workflow: %s" % (method, st))
            st, _, js = admin(crier, method, path % bob, token=h.TOKEN_OPERATOR)
            check(st == 403, "%s operator: %s" % (method, st))
            st, _, js = admin(crier, method, path % "not-a-uuid")
            check(st == 422 and js["error"]["code"] == "invalid_field"
                  and js["error"]["message"].startswith("client_id"), "%s 422: %s %r"
                  % (method, st, js))
            st, _, js = admin(crier, method, path % uuid.uuid4())
            check(st == 404 and js["error"]["code"] == "not_found", "%s unknown: %s" % (method, st))
        # the refusals changed nothing and wrote no audit entry
        check(h.psql(db, "SELECT count(*) FROM audit_log")
              == [["5"]], "audit rows: two exports, erase, two exports of the other client")
        check(h.psql(db, "SELECT count(*) FROM clients WHERE erased_at IS NOT NULL") == [["1"]],
              "only the erased client is erased")
        check(analytics(db) == before, "analytics after the refusals")


h.run([test_export_then_erase])
