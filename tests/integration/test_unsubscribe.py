"""One-click unsubscribe (RFC 8058) through real SMTP, PostgreSQL and Redis:

- every email, of every message type and the digest, carries exactly one
  List-Unsubscribe with the https URL and a mailto: (one token, naming the
  communication) and List-Unsubscribe-Post: List-Unsubscribe=One-Click, and
  shows the same link in the footer of its text and HTML parts;
- the POST exactly as Gmail sends it (form-encoded, no cookie, no auth)
  answers 200 and the client is opted out of email before the answer
  (ledger source unsubscribe_link); the multipart form works too; again is
  200 with no second ledger row; a GET changes nothing; any other body is
  400 and changes nothing;
- a tampered, truncated, expired, foreign or other-kind token, or one whose
  communication was purged or whose client was erased, is 404 (never 500)
  and changes nothing; a link 30 days old still works;
- the next email-first message goes by SMS (the provider stub sees it), or
  is skipped with opt_out for a client who has no other channel;
- `crier templates check` fails a catalogue whose emails lack the link."""
import base64
import email
import email.policy
import hashlib
import hmac
import http.client
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PUBLIC = "https://crier.test"
LINK_KEY = bytes(range(100, 132))
OTHER_KEY = bytes(range(1, 33))
MAIL_FROM = "Planiva <hello@planiva.example>"
UNSUB_BOX = "unsubscribe@planiva.example"
TYPES = ("welcome", "budget_summary", "vendor_options", "selection_confirmation",
         "blueprint_delivery", "error_notification", "reminder")


# ------------------------------------------------------------ link tokens
# crypto/linktok.h: version (1) | kind (1) | id (16) | arg (4) | day (4) |
# HMAC-SHA256(key, "crier link v1" NUL | those 26 bytes)[:16], base64url.

def make_token(key, kind, ident, day, arg=0):
    body = bytes([1, ord(kind)]) + uuid.UUID(ident).bytes + struct.pack(">II", arg, day)
    mac = hmac.new(key, b"crier link v1\0" + body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).decode("ascii").rstrip("=")


def read_token(key, text):
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    assert len(raw) == 42 and raw[0] == 1, text
    mac = hmac.new(key, b"crier link v1\0" + raw[:26], hashlib.sha256).digest()[:16]
    assert hmac.compare_digest(mac, raw[26:]), "the token is not signed with CRIER_LINK_KEY"
    arg, day = struct.unpack(">II", raw[18:26])
    return chr(raw[1]), str(uuid.UUID(bytes=raw[2:18])), arg, day


def today():
    return int(time.time()) // 86400


# ---------------------------------------------------------------- helpers

def env(sink, stub, **extra):
    e = h.live_env(stub, sink, CRIER_PUBLIC_URL=PUBLIC,
                   CRIER_LINK_KEY=base64.b64encode(LINK_KEY).decode(),
                   CRIER_UNSUBSCRIBE_MAILTO=UNSUB_BOX, CRIER_REDIS_URL=h.env_redis_url(),
                   CRIER_MAIL_FROM=MAIL_FROM)
    e.update(extra)
    return e


def new_client(crier, i, phone=True):
    cid = str(uuid.uuid4())
    body = {"name": "Ottoline Brackenbury-%02d" % i, "email": "ottoline.%02d@fenland.example" % i,
            "timezone": "UTC", "consent": {"sms": phone, "whatsapp": False}}
    if phone:
        body["phone"] = "+1555777%04d" % i
    status, _, got = crier.request("PUT", "/v1/clients/" + cid, body)
    assert status == 201, (status, got)
    return cid


def send(crier, cid, message_type="welcome", urgency="high"):
    body = h.comm_body(0, message_type=message_type, urgency=urgency, client_id=cid, client=False)
    status, _, got = crier.post_comm(body)
    assert status == 202, (status, got)
    return got


def parse(path):
    with open(path, "rb") as f:
        raw = f.read()
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def crier_id(msg):
    return str(msg["X-Crier-Id"]).strip()


def unsub_path(msg):
    """The path of the email's https List-Unsubscribe URL, checked for form."""
    values = msg.get_all("List-Unsubscribe") or []
    assert len(values) == 1, values
    posts = msg.get_all("List-Unsubscribe-Post") or []
    assert [str(p) for p in posts] == ["List-Unsubscribe=One-Click"], posts
    m = re.fullmatch(r"<(https://crier\.test/u/([A-Za-z0-9_-]{56}))>,\s*"
                     r"<mailto:([^?>]+)\?subject=unsubscribe-([A-Za-z0-9_-]{56})>",
                     str(values[0]).strip())
    assert m, values[0]
    url, token, box, token2 = m.groups()
    assert box == UNSUB_BOX and token2 == token, values[0]
    return url, "/u/" + token, token


def state(db, cid):
    """What an unsubscribe may change: the opt-outs and the ledger."""
    prefs = h.psql(db, "SELECT opt_out_email, opt_out_sms, opt_out_whatsapp FROM"
                       " client_preferences WHERE client_id = :'c'", c=cid)
    ledger = h.psql(db, "SELECT channel, action, source, actor FROM consent_ledger"
                        " WHERE client_id = :'c' ORDER BY id", c=cid)
    version = h.psql(db, "SELECT prefs_version FROM clients WHERE id = :'c'", c=cid)
    return prefs, ledger, version


def gmail_post(crier, path, body=b"List-Unsubscribe=One-Click",
               ctype="application/x-www-form-urlencoded"):
    """The request of RFC 8058 section 8.1 (what Gmail sends), byte for
    byte: no cookie, no authorisation. Returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", crier.port, timeout=30)
    try:
        conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "crier.test")
        if ctype is not None:
            conn.putheader("Content-Type", ctype)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def multipart(boundary, parts):
    out = b""
    for name, value, extra in parts:
        out += b"--" + boundary + b"\r\n"
        out += b'Content-Disposition: form-data; name="' + name + b'"' + extra + b"\r\n\r\n"
        out += value + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def wait_emails(sink, n, what):
    return h.wait_until(lambda: len(sink.files()) >= n and sink.files(), 60, 0.2, what=what)


# ------------------------------------------------------------------ tests

def test_every_email_has_the_headers_and_the_footer(tmp):
    db = h.new_database("unsub_hdr")
    with h.ProviderStub(os.path.join(tmp, "stub")) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "c"), env=env(sink, stub)) as crier:
        cid = new_client(crier, 1, phone=False)
        # the request cannot put links of its own in the footer
        body = h.comm_body(0, message_type="welcome", urgency="high", client_id=cid, client=False)
        body["context"]["unsubscribe_url"] = "https://evil.example/u/x"
        body["context"]["preferences_url"] = "https://evil.example/p/x"
        status, _, got = crier.post_comm(body)
        assert status == 202, got
        ids = [got["communication_id"]]
        wait_emails(sink, 1, "the first email")
        ids += [send(crier, cid, t)["communication_id"] for t in TYPES[1:]]
        status, _, got = crier.request("PUT", "/v1/clients/%s/preferences" % cid,
                                       {"timezone": "Europe/Lisbon"})
        assert status == 200 and got["confirmation"], got
        ids.append(got["confirmation"]["communication_id"])
        # three LOW messages for a client contacted just now: one digest
        for _ in range(3):
            assert send(crier, cid, "reminder", "low")["status"] == "batched"
        files = wait_emails(sink, len(ids) + 1, "every type's email and the digest")
        assert len(files) == len(ids) + 1, len(files)
        seen_types = set()
        for path in files:
            raw, msg = parse(path)
            comm = crier_id(msg)
            url, _, token = unsub_path(msg)
            kind, ident, arg, day = read_token(LINK_KEY, token)
            assert (kind, ident, arg) == ("u", comm, 0), (kind, ident, arg, comm)
            assert abs(day - today()) <= 1, day
            # RFC 2369: no white space inside the brackets, one field each
            hdr = raw[:raw.find(b"\r\n\r\n")]
            assert hdr.count(b"\r\nList-Unsubscribe:") == 1
            assert hdr.count(b"\r\nList-Unsubscribe-Post:") == 1
            text = msg.get_body(preferencelist=("plain",)).get_content()
            html = msg.get_body(preferencelist=("html",)).get_content()
            assert url in text, text[-400:]
            assert '<a href="%s">Unsubscribe</a>' % url in html, html[-800:]
            assert '<a href="%s">choose which messages you receive</a>' % url in html
            assert "evil.example" not in text and "evil.example" not in html
            mt = h.psql(db, "SELECT message_type FROM communications WHERE id = :'i'", i=comm)
            seen_types.add(mt[0][0])
        assert seen_types == set(TYPES) | {"preferences_updated", "digest"}, seen_types


def test_one_click_as_gmail_sends_it(tmp):
    db = h.new_database("unsub_click")
    with h.ProviderStub(os.path.join(tmp, "stub")) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "c"), env=env(sink, stub)) as crier:
        a = new_client(crier, 1, phone=True)
        b = new_client(crier, 2, phone=False)
        send(crier, a)
        send(crier, b)
        files = wait_emails(sink, 2, "two welcome emails")
        paths = {}
        for f in files:
            _, msg = parse(f)
            client = h.psql(db, "SELECT client_id FROM communications WHERE id = :'i'",
                            i=crier_id(msg))[0][0]
            paths[client] = unsub_path(msg)[1]

        # a GET, as anti-spam scanners fetch every link, changes nothing
        before = state(db, a)
        status, hd, page = crier.request("GET", paths[a], token=None)
        assert status == 200 and hd["content-type"].startswith("text/html"), (status, hd)
        assert "Unsubscribe from all email" in page
        assert state(db, a) == before

        # the POST of RFC 8058 section 8.1: opted out when it is answered
        status, hd, text = gmail_post(crier, paths[a])
        assert status == 200, (status, text)
        assert hd["content-type"].startswith("text/plain"), hd
        assert "location" not in hd and "set-cookie" not in hd, hd
        assert b"unsubscribed" in text.lower(), text
        prefs, ledger, _ = state(db, a)
        assert prefs == [["t", "f", "f"]], prefs
        assert ledger[-1] == ["email", "revoked", "unsubscribe_link", "one-click"], ledger
        # again: 200, and no second ledger row
        status, _, _ = gmail_post(crier, paths[a])
        assert status == 200
        assert state(db, a)[1] == ledger
        # the next email-first message goes by the next channel: SMS
        got = send(crier, a)
        assert got["decision"]["primary_channel"] == "sms", got
        assert "email" not in got["decision"]["fallback_channels"], got
        final = crier.wait_final([got["communication_id"]], 30)
        assert final[got["communication_id"]]["channel"] == "sms", final
        tw = [r for r in stub.requests("twilio") if "To=%2B15557770001" in (r["body"] or "")]
        assert len(tw) == 1, stub.requests("twilio")

        # the multipart form (RFC 8058 section 8.3), for the client with
        # email alone, whose next message then has no channel left
        bnd = b"---FormBoundaryjWmhtjORrn"
        status, _, text = gmail_post(
            crier, paths[b], multipart(bnd, [(b"List-Unsubscribe", b"One-Click", b"")]),
            "multipart/form-data; boundary=" + bnd.decode())
        assert status == 200, (status, text)
        prefs, ledger, _ = state(db, b)
        assert prefs == [["t", "f", "f"]], prefs
        assert ledger == [["email", "revoked", "unsubscribe_link", "one-click"]], ledger
        got = send(crier, b)
        assert got["status"] == "skipped", got
        rows = h.psql(db, "SELECT status, skip_reason FROM communications WHERE id = :'i'",
                      i=got["communication_id"])
        assert rows == [["skipped", "opt_out"]], rows
        # only the two welcome emails were ever sent
        time.sleep(0.5)
        assert len(sink.files()) == 2


def test_other_bodies_are_refused(tmp):
    db = h.new_database("unsub_body")
    with h.ProviderStub(os.path.join(tmp, "stub")) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "c"), env=env(sink, stub)) as crier:
        a = new_client(crier, 3)
        send(crier, a)
        _, msg = parse(wait_emails(sink, 1, "the email")[0])
        path = unsub_path(msg)[1]
        before = state(db, a)
        form = "application/x-www-form-urlencoded"
        bnd = b"b0undary"
        mp = "multipart/form-data; boundary=b0undary"
        bad = [
            (b"", form),
            (b"List-Unsubscribe=One-Click&x=1", form),
            (b"List-Unsubscribe=one-click", form),
            (b"List-Unsubscribe=Yes", form),
            (b"List-Unsubscribe=One-Click&List-Unsubscribe=One-Click", form),
            (b"List-Unsubscribe=One%2", form),
            (b"List-Unsubscribe=One-Click", "text/plain"),
            (b"List-Unsubscribe=One-Click", None),
            (b'{"List-Unsubscribe":"One-Click"}', "application/json"),
            (multipart(bnd, [(b"List-Unsubscribe", b"One-Click", b'; filename="x"')]), mp),
            (multipart(bnd, [(b"List-Unsubscribe", b"One-Click", b""),
                             (b"x", b"1", b"")]), mp),
            (multipart(bnd, [(b"List-Unsubscribe", b"One-Click", b"")])[:-4], mp),
            (multipart(bnd, [(b"List-Unsubscribe", b"One-Click", b"")]),
             "multipart/form-data"),
            (b"\x00" * 64, form),
        ]
        for body, ctype in bad:
            status, hd, text = gmail_post(crier, path, body, ctype)
            assert status == 400, (body, ctype, status, text)
            assert b"List-Unsubscribe=One-Click" in text, text
        assert state(db, a) == before
        # the server still takes the right one
        status, _, _ = gmail_post(crier, path)
        assert status == 200
        assert state(db, a)[0] == [["t", "f", "f"]]


def test_bad_tokens_are_not_found(tmp):
    db = h.new_database("unsub_tok")
    with h.ProviderStub(os.path.join(tmp, "stub")) as stub, \
            h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "c"), env=env(sink, stub)) as crier:
        a = new_client(crier, 4)
        comm = send(crier, a)["communication_id"]
        _, msg = parse(wait_emails(sink, 1, "the email")[0])
        _, path, token = unsub_path(msg)
        before = state(db, a)

        def flip(s, i):
            return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]

        d = today()
        tokens = {
            "tampered id": flip(token, 10),
            "tampered signature": flip(token, 50),
            "truncated": token[:55],
            "half": token[:28],
            "longer": token + "A",
            "much longer": token * 4,
            "not base64url": token[:55] + "=",
            "expired": make_token(LINK_KEY, "u", comm, d - 366),
            "dated ahead": make_token(LINK_KEY, "u", comm, d + 5),
            "foreign key": make_token(OTHER_KEY, "u", comm, d),
            "click kind": make_token(LINK_KEY, "c", comm, d),
            "form kind": make_token(LINK_KEY, "f", a, d),
            "unknown communication": make_token(LINK_KEY, "u", str(uuid.uuid4()), d),
            "a client's id": make_token(LINK_KEY, "u", a, d),
        }
        for what, tok in tokens.items():
            for method, suffix, body, ctype in (
                    ("POST", "", b"List-Unsubscribe=One-Click",
                     "application/x-www-form-urlencoded"),
                    ("GET", "", None, None),
                    ("POST", "/preferences", b"form_token=x&opt_out_email=1",
                     "application/x-www-form-urlencoded")):
                status, _, text = crier.request(
                    method, "/u/" + tok + suffix, raw=body, token=None,
                    headers={"Content-Type": ctype} if ctype else None)
                assert status == 404, (what, method, suffix, status, text)
        assert state(db, a) == before
        # a link made under the key crier uses works, also 30 days on
        # (CAN-SPAM), and up to CRIER_LINK_TTL_DAYS
        for age in (30, 365):
            status, _, _ = crier.request("GET", "/u/" + make_token(LINK_KEY, "u", comm, d - age),
                                         token=None)
            assert status == 200, (age, status)
        assert state(db, a) == before
        status, _, text = gmail_post(crier, "/u/" + make_token(LINK_KEY, "u", comm, d - 30))
        assert status == 200, text
        assert state(db, a)[0] == [["t", "f", "f"]]

        # the communication purged: the link leads nowhere
        b = new_client(crier, 5)
        comm_b = send(crier, b)["communication_id"]
        crier.wait_final([comm_b])
        tok_b = make_token(LINK_KEY, "u", comm_b, d)
        assert crier.request("GET", "/u/" + tok_b, token=None)[0] == 200
        h.psql(db, "DELETE FROM delivery_events WHERE communication_id = :'i';"
                   " DELETE FROM communications WHERE id = :'i'", i=comm_b)
        assert crier.request("GET", "/u/" + tok_b, token=None)[0] == 404
        assert gmail_post(crier, "/u/" + tok_b)[0] == 404
        # the client erased: nowhere either, and nothing written
        c = new_client(crier, 6)
        comm_c = send(crier, c)["communication_id"]
        crier.wait_final([comm_c])
        tok_c = make_token(LINK_KEY, "u", comm_c, d)
        status, _, got = crier.request("DELETE", "/v1/clients/" + c, token=h.TOKEN_ADMIN)
        assert status == 200, got
        erased = state(db, c)
        assert gmail_post(crier, "/u/" + tok_c)[0] == 404
        assert crier.request("GET", "/u/" + tok_c, token=None)[0] == 404
        assert state(db, c) == erased
        assert "internal_error" not in crier.log()


def test_templates_check_wants_the_link(tmp):
    src = os.path.join(h.source_dir(), "templates")
    run_env = h.base_env({"CRIER_TEMPLATES_DIR": src})
    proc = subprocess.run([h.crier_bin(), "templates", "check"], capture_output=True, text=True,
                          timeout=60, env=run_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   email/digest (subject, text, html, unsubscribe link)" in proc.stdout
    # a catalogue whose text layout dropped the link fails, naming it
    copy = os.path.join(tmp, "templates")
    shutil.copytree(src, copy)
    layout = os.path.join(copy, "email", "layout.txt")
    with open(layout, encoding="utf-8") as f:
        text = f.read()
    assert "{{& unsubscribe_url}}" in text
    with open(layout, "w", encoding="utf-8") as f:
        f.write(re.sub(r".*\{\{& unsubscribe_url\}\}.*\n", "", text))
    proc = subprocess.run([h.crier_bin(), "templates", "check"], capture_output=True, text=True,
                          timeout=60, env=h.base_env({"CRIER_TEMPLATES_DIR": copy}))
    assert proc.returncode == 1, proc.stdout
    assert ("FAIL email/welcome: the text part does not show the unsubscribe link"
            in proc.stdout), proc.stdout


h.run([test_every_email_has_the_headers_and_the_footer, test_one_click_as_gmail_sends_it,
       test_other_bodies_are_refused, test_bad_tokens_are_not_found,
       test_templates_check_wants_the_link])
