"""DKIM signing end to end: keys made by `crier dkim keygen`, mail sent by
`crier serve` through real SMTP to the sink (and written to the sandbox
outbox), each message verified by Debian's python3-dkim against the key's
TXT record.

- rsa-sha256 and ed25519-sha256 both verify on a message with a non-ASCII
  subject, an attachment and a long paragraph of runs of spaces;
- the verifier really checks: a changed Subject, a changed body, a changed
  recipient and an added List-Unsubscribe all fail, an added unsigned
  field does not;
- the sandbox outbox holds signed mail too;
- `crier dkim record` prints what keygen printed; keygen never overwrites;
- serve refuses to start on a key it cannot use, naming the file and never
  quoting it, and without a key warns once and sends unsigned mail.
"""

import base64
import os
import re
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SUBJECT_EVENT = "Hochzeit für Zoë & Jürgen, 結婚式 🎉"
# One paragraph, well over 998 bytes once rendered, with runs of spaces and
# tabs that relaxed canonicalisation folds, and non-ASCII throughout.
LONG_PARAGRAPH = " ".join("Tag %d: Blumen,  Musik\tund Gäste — déjà vu;" % i for i in range(80))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def make_pdf():
    return b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\r\n.\r\n..\n%%EOF\n"


def blueprint_body(i, pdf):
    body = h.comm_body(i, name="Zoë Ångström", email="zoe%d@example.com" % i,
                       message_type="blueprint_delivery", urgency="critical",
                       context={"event_type": SUBJECT_EVENT, "event_date": LONG_PARAGRAPH,
                                "blueprint_url": "https://app.planiva.example/b/%d.pdf" % i,
                                "has_attachment": True})
    body["attachments"] = [{"filename": "blueprint.pdf", "content_type": "application/pdf",
                            "content_base64": base64.b64encode(pdf).decode("ascii")}]
    return body


def send_one(crier, sink, body, count):
    status, _, js = crier.post_comm(body)
    check(status == 202, "POST answered %s: %r" % (status, js))
    files = sink.wait_for(count, 60)
    with open(files[-1], "rb") as f:
        return js["communication_id"], f.read()


def header_block(raw):
    return raw.split(b"\r\n\r\n", 1)[0]


def replace_field(raw, name, new):
    """raw with the (folded) field name replaced by new, bytes."""
    head, body = raw.split(b"\r\n\r\n", 1)
    pat = re.compile(rb"(?im)^" + re.escape(name) + rb":[^\r\n]*(?:\r\n[ \t][^\r\n]*)*")
    check(pat.search(head), "the message has %r" % name)
    return pat.sub(lambda _m: new, head, count=1) + b"\r\n\r\n" + body


def check_tampering(dk, raw):
    """Every change a signature must catch fails verification; an added
    field it does not cover passes, so the failures are not mere noise."""
    head, body = raw.split(b"\r\n\r\n", 1)
    cases = [
        ("Subject changed", replace_field(raw, b"Subject", b"Subject: Your invoice is overdue"),
         False),
        ("To changed", replace_field(raw, b"To", b"To: mallory@example.net"), False),
        ("From changed", replace_field(raw, b"From", b"From: Planiva <billing@planiva.example>"),
         False),
        ("List-Unsubscribe added", head + b"\r\nList-Unsubscribe: <https://evil.example/u>"
         + b"\r\n\r\n" + body, False),
        ("body changed", head + b"\r\n\r\n" + body.replace(b"Tag 7", b"Tag 8", 1), False),
        ("body appended", raw + b"P.S. Send money.\r\n", False),
        ("unsigned field added", head + b"\r\nX-Spam-Score: 0" + b"\r\n\r\n" + body, True),
    ]
    check(b"Tag 7" in raw, "the long paragraph is in the raw message")
    for what, changed, want in cases:
        check(changed != raw, "%s: the message changed" % what)
        check(dk.verify(changed) == want,
              "%s: verification %s" % (what, "failed" if want else "passed"))


def test_signed_through_smtp(tmp):
    db = h.new_database("dkim_smtp")
    pdf = make_pdf()
    keys = [h.DkimKey(os.path.join(tmp, "keys"), "rsa2025", "rsa"),
            h.DkimKey(os.path.join(tmp, "keys"), "ed2025", "ed25519")]
    for n, dk in enumerate(keys):
        algorithm = "rsa-sha256" if n == 0 else "ed25519-sha256"
        check(re.fullmatch(rb"v=DKIM1; k=%s; p=[A-Za-z0-9+/]+=*" % (b"rsa" if n == 0 else b"ed25519"),
                           dk.record), "keygen's record %r" % dk.record)
        check(dk.name == ("%s._domainkey.planiva.example." % dk.selector).encode(),
              "record name %r" % dk.name)
        check(all(len(s) <= 255 for s in dk.strings), "TXT strings of at most 255 bytes")
        mode = stat.S_IMODE(os.stat(dk.path).st_mode)
        check(mode == 0o600, "key file mode %o, expected 600" % mode)
        with h.SmtpSink(os.path.join(tmp, "sink%d" % n)) as sink:
            env = {"CRIER_TRANSPORT": "live",
                   "CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port,
                   "CRIER_SMTP_TLS": "off",
                   "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>"}
            env.update(dk.env)
            with h.Crier(db, os.path.join(tmp, "crier%d" % n), env=env) as crier:
                on = h.log_events(crier.log(), "dkim_on")
                check(len(on) == 1 and on[0].get("algorithm") == algorithm
                      and on[0].get("selector") == dk.selector
                      and on[0].get("domain") == "planiva.example",
                      "serve logs the signing key's algorithm, selector, domain: %r" % on)
                check(not h.log_events(crier.log(), "dkim_off"), "no unsigned warning")
                cid, raw = send_one(crier, sink, blueprint_body(n, pdf), 1)
                check(raw.startswith(b"DKIM-Signature: "), "the signature is the first field")
                lines = header_block(raw).split(b"\r\n")
                field = lines[:1] + [l for l in
                                     lines[1:next((i for i, l in enumerate(lines[1:], 1)
                                                   if l[:1] not in (b" ", b"\t")), len(lines))]]
                check(len(field) >= 3 and all(len(line) < 78 for line in field),
                      "the DKIM-Signature field is folded in lines under 78 characters: %r"
                      % field)
                check(max(len(line) for line in raw.split(b"\r\n")) <= 998, "lines <= 998")
                tags = h.dkim_tags(raw)
                check(tags.get("a") == algorithm, "a=%r" % tags.get("a"))
                check(tags.get("d") == "planiva.example" and tags.get("s") == dk.selector,
                      "d=%r s=%r" % (tags.get("d"), tags.get("s")))
                signed = tags.get("h", "").split(":")
                for f in ("from", "to", "subject", "date", "message-id", "mime-version",
                          "content-type"):
                    check(f in signed, "h= names %s: %r" % (f, signed))
                check(signed[-4:] == ["from", "subject", "list-unsubscribe",
                                      "list-unsubscribe-post"],
                      "h= ends over-signing From, Subject and the unsubscribe fields: %r"
                      % signed)
                check("l" not in tags, "no l= tag")
                check(dk.verify(raw), "%s: python3-dkim verifies the message" % algorithm)

                # The message is what it should be: the subject and the
                # paragraph decode, the attachment is intact.
                import email
                import email.policy
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                check(SUBJECT_EVENT in str(msg["Subject"]), "subject %r" % str(msg["Subject"]))
                text = msg.get_body(("plain",)).get_content()
                check("Tag 79: Blumen," in text and "Gäste — déjà vu" in text,
                      "the long paragraph arrives")
                atts = list(msg.iter_attachments())
                check(len(atts) == 1 and atts[0].get_content() == pdf, "the attachment is intact")
                check_tampering(dk, raw)

                comm = crier.wait_final([cid], 60)[cid]
                check(comm.get("status") == "sent", "%s is sent: %r" % (cid, comm.get("status")))


def test_sandbox_outbox_signed(tmp):
    db = h.new_database("dkim_sandbox")
    dk = h.DkimKey(os.path.join(tmp, "keys"), "sandbox", "ed25519")
    with h.Crier(db, tmp, env=dict(dk.env, CRIER_MAIL_FROM="Planiva <hello@planiva.example>")) \
            as crier:
        status, _, js = crier.post_comm(h.comm_body(1, message_type="welcome", urgency="critical",
                                                    name="Zoë Ångström"))
        check(status == 202, "POST answered %s: %r" % (status, js))
        cid = js["communication_id"]
        comm = crier.wait_final([cid], 60)[cid]
        check(comm.get("status") == "delivered", "sandbox delivered: %r" % comm.get("status"))
        path = os.path.join(crier.outbox, cid + ".eml")
        with open(path, "rb") as f:
            raw = f.read()
        check(raw.startswith(b"DKIM-Signature: "), "the outbox file is signed")
        check(dk.verify(raw), "python3-dkim verifies the outbox file")
        check(not dk.verify(replace_field(raw, b"Subject", b"Subject: changed")),
              "a changed Subject fails")


def test_record_and_keygen_cli(tmp):
    dk = h.DkimKey(tmp, "cli2025", "rsa", bits=3072)
    proc = subprocess.run([h.crier_bin(), "dkim", "record"], capture_output=True, text=True,
                          timeout=60, env=h.base_env(dk.env))
    check(proc.returncode == 0, "dkim record exit %d: %s" % (proc.returncode, proc.stderr))
    check(proc.stdout == dk.keygen_stdout, "record prints keygen's record:\n%s\n%s"
          % (proc.stdout, dk.keygen_stdout))
    # 3072 bits: an SPKI of 422 bytes, 564 base64 characters, three strings
    check(len(dk.strings) == 3, "a 3072-bit key's record is 3 strings (%d)" % len(dk.strings))
    with open(dk.path, "rb") as f:
        before = f.read()
    again = subprocess.run([h.crier_bin(), "dkim", "keygen", "--selector", "x", "--domain",
                            "planiva.example", "--out", dk.path], capture_output=True, text=True,
                           timeout=60, env=h.base_env())
    check(again.returncode != 0 and "already exists" in again.stderr,
          "keygen refuses an existing file: %d %s" % (again.returncode, again.stderr))
    with open(dk.path, "rb") as f:
        check(f.read() == before, "the existing key is untouched")
    bad = subprocess.run([h.crier_bin(), "dkim", "keygen", "--selector", "x", "--bits", "512",
                          "--out", os.path.join(tmp, "small.pem")], capture_output=True,
                         text=True, timeout=60, env=h.base_env())
    check(bad.returncode == 2 and "--bits" in bad.stderr, "512 bits refused: %s" % bad.stderr)
    check(not os.path.exists(os.path.join(tmp, "small.pem")), "no file for a refused key")
    proc = subprocess.run([h.crier_bin(), "dkim", "record"], capture_output=True, text=True,
                          timeout=60, env=h.base_env())
    check(proc.returncode == 2 and "CRIER_DKIM_KEY_FILE" in proc.stderr,
          "record without a key says so: %s" % proc.stderr)


def serve_refuses(db, tmp, extra, want):
    """Runs crier serve with extra settings; it must exit 2 quickly with
    want in its message. Returns the output."""
    port = h.free_port()
    env = h.base_env(dict({
        "CRIER_DATABASE_URL": db,
        "CRIER_LISTEN": "127.0.0.1:%d" % port,
        "CRIER_API_TOKENS": "workflow:%s" % h.TOKEN_WORKFLOW,
        "CRIER_ENCRYPTION_KEY": h.ENCRYPTION_KEY,
        "CRIER_TEMPLATES_DIR": os.path.join(h.source_dir(), "templates"),
        "CRIER_RULES_DIR": h.rules_dir(),
        "CRIER_OUTBOX_DIR": os.path.join(tmp, "outbox"),
        "CRIER_SQL_DIR": os.path.join(h.source_dir(), "sql"),
    }, **extra))
    proc = subprocess.run([h.crier_bin(), "serve"], capture_output=True, text=True, timeout=60,
                          env=env, cwd=tmp)
    out = proc.stdout + proc.stderr
    check(proc.returncode == 2, "serve exits 2 for %r, not %d: %s" % (want, proc.returncode, out))
    check(want in out, "serve's message says %r: %s" % (want, out))
    return out


def pem_body_lines(path):
    with open(path, encoding="ascii") as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("-----")]


def test_serve_refuses_bad_keys(tmp):
    db = h.new_database("dkim_bad")
    sel = {"CRIER_DKIM_SELECTOR": "s1"}
    missing = os.path.join(tmp, "missing.pem")
    out = serve_refuses(db, tmp, dict(sel, CRIER_DKIM_KEY_FILE=missing), "cannot open")
    check(missing in out, "names the file: %s" % out)

    garbage = os.path.join(tmp, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nTOPSECRETTOPSECRET\n-----END PRIVATE KEY-----\n")
    out = serve_refuses(db, tmp, dict(sel, CRIER_DKIM_KEY_FILE=garbage), "not a PEM private key")
    check(garbage in out and "TOPSECRET" not in out, "names the file, never its text: %s" % out)

    small = os.path.join(tmp, "small.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512",
                    "-out", small], check=True, capture_output=True, timeout=60)
    out = serve_refuses(db, tmp, dict(sel, CRIER_DKIM_KEY_FILE=small), "512 bits")
    check(small in out, "names the file: %s" % out)
    check(not any(l in out for l in pem_body_lines(small)), "the key never appears")

    ec = os.path.join(tmp, "ec.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", ec], check=True, capture_output=True,
                   timeout=60)
    out = serve_refuses(db, tmp, dict(sel, CRIER_DKIM_KEY_FILE=ec), "RSA or Ed25519")
    check(not any(l in out for l in pem_body_lines(ec)), "the key never appears")

    dk = h.DkimKey(os.path.join(tmp, "keys"), "ok", "ed25519")
    serve_refuses(db, tmp, {"CRIER_DKIM_KEY_FILE": dk.path}, "CRIER_DKIM_SELECTOR")
    serve_refuses(db, tmp, dict(dk.env, CRIER_DKIM_SELECTOR="bad;selector"), "selector")


def test_unsigned_without_key(tmp):
    db = h.new_database("dkim_off")
    with h.Crier(db, tmp) as crier:
        off = h.log_events(crier.log(), "dkim_off")
        check(len(off) == 1 and off[0].get("level") == "WARNING",
              "one WARNING that mail goes unsigned: %r" % off)
        status, _, js = crier.post_comm(h.comm_body(1, message_type="welcome", urgency="critical"))
        check(status == 202, "POST answered %s" % status)
        cid = js["communication_id"]
        crier.wait_final([cid], 60)
        with open(os.path.join(crier.outbox, cid + ".eml"), "rb") as f:
            raw = f.read()
        check(b"DKIM-Signature" not in header_block(raw), "no signature without a key")
    check(len(h.log_events(crier.log(), "dkim_off")) == 1, "the warning is logged once")


if __name__ == "__main__":
    h.run([test_signed_through_smtp, test_sandbox_outbox_signed, test_record_and_keygen_cli,
           test_serve_refuses_bad_keys, test_unsigned_without_key])
