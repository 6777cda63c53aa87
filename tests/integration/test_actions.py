"""Action links (docs/tracking.md, Actions): a client's click answers the
workflow.

A vendor_options email (sandbox transport) carries one /a/ link per
vendor combination; following the second answers 200 with a page naming
it, and the workflow gets exactly one client_action callback, signed,
whose value is that combination's id. A second click (of any action of
the message) shows the first answer again and sends nothing more; HEAD
and tampered tokens record nothing. The SMS of the same type stays as it
was (no hint without actions).
"""
import base64
import email
import email.policy
import html
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SECRET = "actions-cb-secret-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
LINK_KEY = bytes(range(40, 72))
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Safari/537.36")

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url, method="GET"):
    req = urllib.request.Request(url, headers={"User-Agent": BROWSER}, method=method)
    try:
        with _opener.open(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def make_token(kind, comm_id, arg, day, key=LINK_KEY):
    return h.link_token(kind, comm_id, arg, day, key)


def read_token(tok):
    """(kind, id, arg), the token checked as crier signs it."""
    return h.read_link_token(tok, LINK_KEY)[:3]


def client_actions(rx):
    out = []
    for req in rx.requests():
        body = json.loads(h.callback_body(req))
        if body.get("type") != "client_action":
            continue
        assert h.callback_signature_ok(req, SECRET), "bad signature: %r" % req["headers"]
        assert req["headers"].get("x-crier-event") == "client_action", req["headers"]
        assert req["headers"].get("x-crier-callback-id") == body["event_id"], body
        out.append(body)
    return out


def answers(db):
    return h.psql(db, "SELECT communication_id, action_index, channel FROM communication_answers")


def rows(db):
    return h.psql(db, "SELECT count(*) FROM workflow_callbacks WHERE event_type = 'client_action'")


def env_for(rx):
    return {"CRIER_WORKFLOW_CALLBACK_URL": rx.url, "CRIER_WORKFLOW_CALLBACK_SECRET": SECRET,
            "CRIER_CALLBACK_RETRY_SECONDS": "1",
            "CRIER_LINK_KEY": base64.b64encode(LINK_KEY).decode("ascii")}


def action_links(crier, comm_id):
    with open(os.path.join(crier.outbox, comm_id + ".eml"), "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    markup = msg.get_body(preferencelist=("html",)).get_content()
    text = msg.get_body(preferencelist=("plain",)).get_content()
    found = re.findall(r'href="(' + re.escape(crier.url) + r'/a/[A-Za-z0-9_-]{56})"', markup)
    return found, markup, text


def page_text(body):
    return html.unescape(body.decode("utf-8"))


def test_actions(tmp):
    db = h.new_database("actions")
    with h.CallbackReceiver(tmp) as rx, h.Crier(db, tmp, env=env_for(rx)) as crier:
        ctx = h._example_context("vendor_options")
        ctx["vendor_combinations"][0]["id"] = "combo-lakeside"
        ctx["vendor_combinations"][1]["id"] = "combo-courtyard"
        body = h.comm_body(1, message_type="vendor_options", urgency="critical", context=ctx)
        status, _, js = crier.post_comm(body)
        assert status == 202, (status, js)
        cid = js["communication_id"]
        final = crier.wait_final([cid], 30)
        assert final[cid]["status"] == "delivered", final

        links, markup, text = action_links(crier, cid)
        assert len(links) == 2, (links, markup[:2000])
        for k, u in enumerate(links):
            kind, tid, arg = read_token(u.rsplit("/", 1)[1])
            assert (kind, tid, arg) == ("a", cid, k), (kind, tid, arg)
            assert u in text, "the text part carries the action link too"
        assert "Choose Modern courtyard" in markup
        assert "/vendors/2" not in markup, "the Choose button is crier's action link"
        stored = h.psql(db, "SELECT action_index, action, value, label FROM communication_actions"
                            " WHERE communication_id = :'c' ORDER BY action_index", c=cid)
        assert stored == [["0", "choose", "combo-lakeside", "Lakeside classic"],
                          ["1", "choose", "combo-courtyard", "Modern courtyard"]], stored

        # HEAD, as link scanners send it: answers, records nothing
        st, _hd, _b = fetch(links[1], "HEAD")
        assert st == 200, st
        assert answers(db) == [] and rows(db) == [["0"]]

        # tampered tokens: 4xx page, nothing recorded
        tok = links[1].rsplit("/", 1)[1]
        day = int(time.time()) // 86400
        bad = [tok[:-1] + ("A" if tok[-1] != "A" else "B"), tok[:20], tok + "A",
               make_token("c", cid, 1, day),  # another kind
               make_token("a", cid, 7, day),  # an action the message never had
               make_token("a", cid, 1, day - 4000),  # expired
               make_token("a", str(uuid.uuid4()), 0, day),  # no such message
               make_token("a", cid, 1, day, key=bytes(32))]  # another key
        for b in bad:
            st, hd, page = fetch(crier.url + "/a/" + b)
            assert 400 <= st < 500, (b, st)
            assert hd.get("content-type", "").startswith("text/html"), hd
            assert "does not work" in page_text(page), page[:300]
        assert answers(db) == [] and rows(db) == [["0"]], "a bad token recorded something"

        # the second combination: the page names it, one callback
        st, hd, page = fetch(links[1])
        assert st == 200, (st, page[:300])
        assert hd.get("content-type", "").startswith("text/html"), hd
        assert "default-src 'none'" in hd.get("content-security-policy", ""), hd
        shown = page_text(page)
        assert "Thanks \u2014 we've let your planner know you chose Modern courtyard." in shown, \
            shown
        assert answers(db) == [[cid, "1", "email"]], answers(db)
        h.wait_until(lambda: client_actions(rx), 15, what="the client_action callback")
        time.sleep(1.0)  # a duplicate would show now
        evs = client_actions(rx)
        assert len(evs) == 1, evs
        e = evs[0]
        assert (e["action"], e["value"]) == ("choose", "combo-courtyard"), e
        assert e["status"] == "acted" and e["channel"] == "email", e
        assert (e["plan_id"], e["client_id"], e["communication_id"], e["message_type"]) == \
            (body["plan_id"], body["client_id"], cid, "vendor_options"), e
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", e["at"]), e
        assert isinstance(e["seq"], int) and e["event_id"], e

        # again, and the other combination: the first answer, nothing sent
        for u in (links[1], links[0]):
            st, _hd, page = fetch(u)
            assert st == 200, st
            assert "you chose Modern courtyard." in page_text(page), page_text(page)
        time.sleep(1.5)
        assert len(client_actions(rx)) == 1, client_actions(rx)
        assert rows(db) == [["1"]] and answers(db) == [[cid, "1", "email"]]


def test_confirmation_and_no_url(tmp):
    """selection_confirmation offers confirm and request_changes; without a
    callback URL the answer is still recorded and its callback kept for
    later, as a client's reply is."""
    db = h.new_database("actions_conf")
    with h.Crier(db, tmp, env={"CRIER_LINK_KEY": base64.b64encode(LINK_KEY).decode()}) as crier:
        body = h.comm_body(2, message_type="selection_confirmation", urgency="critical")
        status, _, js = crier.post_comm(body)
        assert status == 202, js
        cid = js["communication_id"]
        crier.wait_final([cid], 30)
        links, markup, _text = action_links(crier, cid)
        assert len(links) == 2, links
        assert ">Confirm<" in markup and ">Ask for changes<" in markup, markup[-3000:]
        st, _hd, page = fetch(links[0])
        assert st == 200 and "confirmed your selection" in page_text(page), page_text(page)
        kept = h.psql(db, "SELECT state, payload->>'action', payload->>'value'"
                          " FROM workflow_callbacks WHERE event_type = 'client_action'")
        assert kept == [["pending", "confirm", "yes"]], kept


def test_numbered_sms_replies(tmp):
    """An SMS reply that is only a number answers the latest message asking;
    any other reply, or a number no option has, stays a client_reply."""
    db = h.new_database("actions_sms")
    token, public = "actions-twilio-token-0123456789", "https://crier.example.com"
    env = dict(env_for_replies(), TWILIO_AUTH_TOKEN=token, CRIER_PUBLIC_URL=public)
    phone = "+15557651234"
    with h.CallbackReceiver(tmp) as rx, h.Crier(db, tmp, env=dict(env, **{
            "CRIER_WORKFLOW_CALLBACK_URL": rx.url})) as crier:
        body = h.comm_body(1, message_type="vendor_options", phone=phone,
                           consent={"sms": True, "whatsapp": False}, preferred_channel="sms",
                           timezone=h.daytime_zone())
        status, _, js = crier.post_comm(body)
        assert status == 202 and js["decision"]["primary_channel"] == "sms", (status, js)
        cid = js["communication_id"]
        crier.wait_final([cid])

        def reply(text):
            st, b, _ = h.twilio_inbound(crier, token, public, phone, text)
            assert st == 200, (st, b)

        def kinds():  # what the client said (the status callbacks left out)
            return sorted(k for k in (json.loads(h.callback_body(r))["type"]
                                      for r in rx.requests()) if k.startswith("client_"))

        reply("7")             # no seventh option: a reply the workflow reads
        reply("2 please")      # words: a reply
        h.wait_until(lambda: kinds() == ["client_reply", "client_reply"], 20,
                     what="two client_reply callbacks")
        assert answers(db) == [], answers(db)
        reply("2.")            # the answer
        h.wait_until(lambda: len(client_actions(rx)) == 1, 20, what="the client_action")
        got = client_actions(rx)[0]
        assert (got["communication_id"], got["channel"], got["action"], got["value"]) == \
            (cid, "sms", "choose", "2"), got
        assert answers(db) == [[cid, "1", "sms"]], answers(db)
        reply("1")             # answered already, nothing else is asking: a reply
        h.wait_until(lambda: kinds().count("client_reply") == 3, 20, what="a third reply")
        assert len(client_actions(rx)) == 1
        assert answers(db) == [[cid, "1", "sms"]], answers(db)
        # the client's export shows what was offered and what they answered
        status, _, doc = crier.request("GET", "/v1/clients/%s/export" % body["client_id"],
                                       token=h.TOKEN_ADMIN)
        assert status == 200, (status, doc)
        comm = [c for c in doc["communications"] if c["id"] == cid][0]
        assert [(a["action"], a["value"]) for a in comm["actions"]] == [("choose", "1"),
                                                                      ("choose", "2")], comm
        assert (comm["answer"]["action_index"], comm["answer"]["channel"]) == (1, "sms"), comm


def env_for_replies():
    return {"CRIER_WORKFLOW_CALLBACK_SECRET": SECRET, "CRIER_CALLBACK_RETRY_SECONDS": "1",
            "CRIER_LINK_KEY": base64.b64encode(LINK_KEY).decode("ascii")}


h.run([test_actions, test_confirmation_and_no_url, test_numbered_sms_replies])
