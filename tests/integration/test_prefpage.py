"""The preference page in headless Chromium, from a real email's link:

- a client with an address and a number gets a welcome email through real
  SMTP; its footer's preference link is the List-Unsubscribe URL;
- tests/browser/prefpage.mjs (playwright-core driving Debian's chromium,
  JavaScript off, a phone's width) opens it, finds it whole and asking
  nothing of any other origin, prefers SMS, sets quiet hours 23:00-07:00,
  stops WhatsApp, submits and sees the confirmation; its screenshot is left
  in the build tree (artifacts/prefpage.png);
- the database has the change and its ledger rows (source preference_page),
  the preferences API shows it, and the preferences_updated confirmation
  went by SMS, the channel now preferred;
- the same form posted again (a replay) is 409, a form of another client's
  page is 403, bad values are a 400 page: none of them changes anything;
  one form posted eight times at once applies once;
  a GET changes nothing; the page's one button unsubscribes from email."""
import concurrent.futures
import email
import email.policy
import html
import json
import os
import re
import subprocess
import sys
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def new_client(crier, i):
    cid = str(uuid.uuid4())
    body = {"name": "Wilhelmina Quarrendon-%02d" % i,
            "email": "wilhelmina.%02d@moorgate.example" % i, "phone": "+1555666%04d" % i,
            "timezone": "Europe/Lisbon", "consent": {"sms": True, "whatsapp": True}}
    status, _, got = crier.request("PUT", "/v1/clients/" + cid, body)
    assert status == 201, (status, got)
    return cid


def page_link(sink, db, cid):
    """The footer's preference link of the client's email, checked against
    its List-Unsubscribe URL."""
    for path in sink.files():
        with open(path, "rb") as f:
            msg = email.message_from_bytes(f.read(), policy=email.policy.default)
        comm = str(msg["X-Crier-Id"]).strip()
        owner = h.psql(db, "SELECT client_id FROM communications WHERE id = :'i'", i=comm)
        if owner != [[cid]]:
            continue
        body = msg.get_body(preferencelist=("html",)).get_content()
        m = re.search(r'<a href="([^"]+)">choose which messages you receive</a>', body)
        assert m, body[-800:]
        link = html.unescape(m.group(1))
        header = re.match(r"<(https?://[^>]+)>", str(msg["List-Unsubscribe"]).strip())
        assert header and header.group(1) == link, (msg["List-Unsubscribe"], link)
        return link
    raise AssertionError("no email for client %s" % cid)


def state(db, cid):
    prefs = h.psql(db, "SELECT preferred_channels, quiet_hours_start, quiet_hours_end,"
                       " opt_out_email, opt_out_sms, opt_out_whatsapp FROM client_preferences"
                       " WHERE client_id = :'c'", c=cid)
    ledger = h.psql(db, "SELECT channel, action, source, actor FROM consent_ledger"
                        " WHERE client_id = :'c' ORDER BY id", c=cid)
    version = h.psql(db, "SELECT prefs_version FROM clients WHERE id = :'c'", c=cid)
    comms = h.psql(db, "SELECT count(*) FROM communications WHERE client_id = :'c'", c=cid)
    return prefs, ledger, version, comms


def form_token(crier, path):
    status, hd, page = crier.request("GET", path, token=None)
    assert status == 200 and hd["content-type"].startswith("text/html"), (status, hd)
    m = re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page)
    assert m, page
    return m.group(1)


def post_form(crier, path, fields):
    raw = urllib.parse.urlencode(fields).encode("ascii")
    return crier.request("POST", path + "/preferences", raw=raw, token=None, headers=FORM)


def run_browser(url, shot):
    src = h.source_dir()
    script = os.path.join(src, "tests", "browser", "prefpage.mjs")
    if not os.path.isfile(os.path.join(src, "tests", "browser", "node_modules", "playwright-core",
                                       "package.json")):
        raise AssertionError("tests/browser has no playwright-core: run scripts/browser-deps.sh "
                             "(ctest's setup.browser_deps and make check do)")
    proc = subprocess.run(["node", script, url, shot], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(script), env=h.base_env())
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_preference_page_in_chromium(tmp):
    db = h.new_database("prefpage")
    artifacts = os.path.join(h.build_dir(), "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    shot = os.path.join(artifacts, "prefpage.png")
    for stale in (shot, os.path.join(artifacts, "prefpage-form.png")):
        if os.path.exists(stale):
            os.remove(stale)
    with h.ProviderStub(os.path.join(tmp, "stub")) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "c"),
                    env=h.live_env(stub, sink, CRIER_REDIS_URL=h.env_redis_url())) as crier:
        a = new_client(crier, 1)
        b = new_client(crier, 2)
        for cid in (a, b):
            body = h.comm_body(0, message_type="welcome", urgency="high", client_id=cid,
                               client=False)
            status, _, got = crier.post_comm(body)
            assert status == 202 and got["decision"]["primary_channel"] == "email", got
        sink.wait_for(2, 30)
        url_a = page_link(sink, db, a)
        url_b = page_link(sink, db, b)
        assert url_a.startswith(crier.url + "/u/") and url_a != url_b, (url_a, url_b)
        path_a = urllib.parse.urlsplit(url_a).path
        path_b = urllib.parse.urlsplit(url_b).path

        # looking changes nothing
        before = state(db, a)
        form_token(crier, path_a)
        assert state(db, a) == before

        got = run_browser(url_a, shot)
        seen = got["seen"]
        assert seen["channels"] == ["Email: on", "SMS: on", "WhatsApp: on"], seen
        assert seen["confirmation"] == "Your preferences are saved", seen
        assert set(seen["changes"]) == {"Preferred channel: SMS", "Quiet hours: 23:00 to 07:00",
                                        "Messages by WhatsApp: stopped"}, seen
        assert [r["method"] for r in got["requests"]] == ["GET", "POST"], got["requests"]
        assert all(r["url"].startswith(crier.url + "/") for r in got["requests"]), got
        for p in (shot, os.path.join(artifacts, "prefpage-form.png")):
            with open(p, "rb") as f:
                data = f.read()
            assert data.startswith(PNG) and len(data) > 5000, (p, len(data))

        # the change, in the database and through the API
        prefs, ledger, _, _ = state(db, a)
        assert prefs == [['["sms", "email"]', "23:00:00", "07:00:00", "f", "f", "t"]], prefs
        assert ledger[-1] == ["whatsapp", "revoked", "preference_page", "client"], ledger
        assert [r for r in ledger if r[2] == "preference_page"] == [ledger[-1]], ledger
        status, _, api = crier.request("GET", "/v1/clients/%s/preferences" % a)
        assert status == 200, api
        assert (api["preferred_channels"], api["quiet_hours_start"], api["quiet_hours_end"],
                api["opt_out_whatsapp"], api["opt_out_email"]) == \
            (["sms", "email"], "23:00", "07:00", True, False), api
        # confirmed by a message decided on the new preferences: by SMS
        conf = h.psql(db, "SELECT id, channel FROM communications WHERE client_id = :'c'"
                          " AND message_type = 'preferences_updated'", c=a)
        assert len(conf) == 1 and conf[0][1] == "sms", conf
        crier.wait_final([conf[0][0]], 30)
        assert [r for r in stub.requests("twilio") if "To=%2B15556660001" in (r["body"] or "")]

        # the same form again: a replay, refused, nothing changed
        after = state(db, a)
        status, hd, page = crier.request("POST", path_a + "/preferences",
                                         raw=got["posted"].encode("ascii"), token=None,
                                         headers=FORM)
        assert status == 409 and hd["content-type"].startswith("text/html"), (status, page)
        assert "out of date" in page and "reload" in page.lower(), page
        assert hd.get("content-security-policy", "").startswith("default-src 'none'"), hd
        assert state(db, a) == after

        # another client's form on this client's page, and the reverse
        fields = {"preferred_channel": "whatsapp", "quiet": "none", "opt_out_email": "1"}
        before_b = state(db, b)
        status, _, page = post_form(crier, path_a, dict(fields, form_token=form_token(crier,
                                                                                      path_b)))
        assert status == 403 and "Nothing was changed" in page, (status, page)
        status, _, page = post_form(crier, path_b, dict(fields, form_token=form_token(crier,
                                                                                      path_a)))
        assert status == 403, (status, page)
        status, _, page = post_form(crier, path_a, dict(fields, form_token="forged"))
        assert status == 403, (status, page)
        assert state(db, a) == after and state(db, b) == before_b

        # bad values: a 400 page naming the field, nothing written
        tok = form_token(crier, path_a)
        for bad, field in (({"quiet": "hours", "quiet_start": "25:00", "quiet_end": "07:00"},
                            "quiet_start"),
                           ({"quiet": "hours", "quiet_start": "07:00", "quiet_end": "07:00"},
                            "quiet_end"),
                           ({"quiet": "sometimes"}, "quiet"),
                           ({"preferred_channel": "pigeon"}, "preferred_channel"),
                           ({"opt_out_email": "yes"}, "opt_out_email"),
                           ({"colour": "blue"}, "colour"),
                           ({"action": "delete_everything"}, "action")):
            status, hd, page = post_form(crier, path_a, dict(bad, form_token=tok))
            assert status == 400 and hd["content-type"].startswith("text/html"), (bad, status)
            assert field in page, (bad, page)
        raw = ("form_token=%s&quiet=none&quiet=hours" % tok).encode("ascii")
        status, _, page = crier.request("POST", path_a + "/preferences", raw=raw, token=None,
                                        headers=FORM)
        assert status == 400 and "given twice" in page, (status, page)
        assert state(db, a) == after

        # one form posted eight times at once: the first applies, the others
        # find the version moved (checked under the row lock)
        tok = form_token(crier, path_a)
        body = {"form_token": tok, "preferred_channel": "sms", "quiet": "hours",
                "quiet_start": "23:00", "quiet_end": "07:00", "opt_out_whatsapp": "1",
                "opt_out_sms": "1"}
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            answers = list(ex.map(lambda _: post_form(crier, path_a, body)[0], range(8)))
        assert sorted(answers) == [200] + [409] * 7, answers
        prefs, ledger, _, _ = state(db, a)
        assert prefs[0][4] == "t", prefs
        assert [r for r in ledger if r[0] == "sms" and r[2] == "preference_page"] == \
            [["sms", "revoked", "preference_page", "client"]], ledger
        after = state(db, a)

        # the one button: unsubscribe from all email, the page's way
        status, _, page = post_form(crier, path_a, {"form_token": form_token(crier, path_a),
                                                    "action": "unsubscribe_email"})
        assert status == 200 and "You are unsubscribed from email" in page, (status, page)
        prefs, ledger, _, _ = state(db, a)
        assert prefs[0][3:] == ["t", "t", "t"], prefs
        assert ledger[-1] == ["email", "revoked", "preference_page", "client"], ledger
        # the one-click answer of the same link agrees: already done, 200
        status, _, _ = crier.request("POST", path_a, raw=b"List-Unsubscribe=One-Click",
                                     token=None, headers=FORM)
        assert status == 200
        assert state(db, a)[1] == ledger
    print("screenshot: %s" % shot)


h.run([test_preference_page_in_chromium])
