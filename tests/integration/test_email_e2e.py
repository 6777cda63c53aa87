"""End to end through real SMTP: 1,000 requests through the HTTP API become
1,000 well-formed emails at the SMTP sink, each recorded as sent, and each
DKIM-signed with a key made by `crier dkim keygen`: every one verifies with
python3-dkim against the key's TXT record, and its h= covers the fields a
receiver's DMARC check and the RFC 6376 advice need.

Also: a client name carrying markup is escaped in the HTML part and decodes
exactly in the To display name, and a blueprint PDF arrives byte for byte.
"""
import base64
import concurrent.futures
import email
import io
import logging
import email.policy
import os
import re
import shutil
import tempfile
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

N = 1000
XSS_NAME = "<script>alert(1)</script> Zoë"
XSS_HTML = "&lt;script&gt;alert(1)&lt;/script&gt; Zoë"
POOL = 8

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        if failed <= 40:  # one systematic fault would otherwise print thousands
            print("FAIL:", what, flush=True)
    return cond


def make_pdf():
    # A small PDF whose body holds every byte value, so any transfer-encoding
    # or text-mode mangling of the attachment shows.
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    blob = bytes(range(256)) * 64 + b"\r\n\r\n.\r\n..\n\x00"
    return head + blob + b"\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def body_for(i):
    # a surname no template or schema holds, so the dump check below cannot
    # match anything but a client's own data
    name = XSS_NAME if i % 100 == 7 else "Client Quixotewright%d" % i
    # critical: due now, whatever the local time of day
    return harness.comm_body(i, name=name, email="client%d@example.com" % i,
                             message_type="welcome", urgency="critical")


def post_all(crier, bodies):
    with concurrent.futures.ThreadPoolExecutor(POOL) as ex:
        return list(ex.map(lambda b: crier.post_comm(b), bodies))


def messages(sink):
    # The sink stores an envelope .json beside each message .eml.
    return [p for p in sink.files() if p.endswith(".eml")]


def wait_messages(sink, count, timeout):
    try:
        harness.wait_until(lambda: len(messages(sink)) >= count, timeout, 0.2)
    except TimeoutError:
        pass
    return messages(sink)


def stop_quietly(proc, what):
    if proc is None:
        return
    try:
        proc.stop()
    except Exception as e:  # a dirty shutdown is a failure, not a crash of the test
        check(False, "%s stopped cleanly: %s" % (what, e))


def header_bytes(raw):
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[:end]


def check_alternative(alt, cid):
    """alt is a multipart/alternative part: plain text first, HTML last."""
    parts = list(alt.iter_parts())
    ok = check(len(parts) == 2, "%s: alternative has 2 parts, not %d" % (cid, len(parts)))
    if not ok:
        return None, None
    check(parts[0].get_content_type() == "text/plain",
          "%s: first alternative is text/plain (%s)" % (cid, parts[0].get_content_type()))
    check(parts[1].get_content_type() == "text/html",
          "%s: last alternative is text/html (%s)" % (cid, parts[1].get_content_type()))
    return parts[0], parts[1]


# The fields every signature must cover: From (RFC 6376 5.4 "MUST"), and
# what 5.4 calls highly advised for crier's messages.
SIGNED_FIELDS = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type")


def dkim_reason(dk, raw):
    """Why python3-dkim refuses raw: its log, for the failure message."""
    out = io.StringIO()
    logger = logging.getLogger("dkim-e2e")
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        dk.verify(raw, logger=logger)
    finally:
        logger.removeHandler(handler)
    return out.getvalue().strip()[-400:]


def check_dkim(dk, raw, cid):
    if not check(dk.verify(raw), "%s: DKIM signature verifies" % cid) and failed <= 5:
        print("  python3-dkim: %s" % dkim_reason(dk, raw), flush=True)
    tags = harness.dkim_tags(raw)
    check(tags.get("a") == "rsa-sha256" and tags.get("d") == dk.domain
          and tags.get("s") == dk.selector and tags.get("c") == "relaxed/relaxed",
          "%s: DKIM a=, d=, s=, c= are %r" % (cid, {k: tags.get(k) for k in "adsc"}))
    signed = [n.strip().lower() for n in tags.get("h", "").split(":")]
    missing = [f for f in SIGNED_FIELDS if f not in signed]
    check(not missing, "%s: h= misses %r (h=%s)" % (cid, missing, tags.get("h")))
    check(signed.count("from") == 2, "%s: From is over-signed (h=%s)" % (cid, tags.get("h")))
    # RFC 8058 4: both list fields signed, and over-signed so none can be added
    for f in ("list-unsubscribe", "list-unsubscribe-post"):
        check(signed.count(f) == 2, "%s: %s signed and over-signed (h=%s)" % (cid, f, tags.get("h")))
    check("l" not in tags, "%s: no l= tag" % cid)


LIST_UNSUB = re.compile(r"^<(https?://[^>\s]+/u/[A-Za-z0-9_-]{56})>,\s*<(mailto:[^>\s]+)>$")


def check_list_unsubscribe(msg, cid):
    """RFC 8058: one List-Unsubscribe with an HTTP(S) URI (and here a mailto),
    one List-Unsubscribe-Post with the one key/value pair, both signed."""
    values = msg.get_all("List-Unsubscribe") or []
    posts = msg.get_all("List-Unsubscribe-Post") or []
    if not check(len(values) == 1, "%s: one List-Unsubscribe (%d)" % (cid, len(values))):
        return
    value = " ".join(str(values[0]).split())
    check(LIST_UNSUB.match(value) is not None, "%s: List-Unsubscribe is %r" % (cid, value))
    check([str(p).strip() for p in posts] == ["List-Unsubscribe=One-Click"],
          "%s: List-Unsubscribe-Post is %r" % (cid, posts))


def check_wire(raw, cid):
    # RFC 5322 2.1.1 and the 7-bit promise of mime.h.
    check(all(b < 128 for b in raw), "%s: message is 7-bit clean" % cid)
    longest = max(len(line) for line in raw.split(b"\n"))
    check(longest <= 1000, "%s: longest line %d bytes (limit 998 + CRLF)" % (cid, longest))


def main():
    tmp = tempfile.mkdtemp(prefix="crier-e2e-")
    db = harness.new_database("e2e")
    sink = None
    crier = None
    try:
        sink = harness.SmtpSink(os.path.join(tmp, "sink"))
        dk = harness.DkimKey(os.path.join(tmp, "dkim"), "e2e2025")
        env = {
            "CRIER_TRANSPORT": "live",
            "CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port,
            "CRIER_SMTP_TLS": "off",
            "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>",
            "CRIER_WORKERS": "4",
        }
        env.update(dk.env)
        crier = harness.Crier(db, tmp, env=env)
        check(harness.log_events(crier.log(), "dkim_on"), "serve logged that it signs")

        bodies = [body_for(i) for i in range(N)]
        t0 = time.time()
        answers = post_all(crier, bodies)
        print("posted %d in %.1f s" % (N, time.time() - t0), flush=True)
        ids = []
        xss_ids = set()
        for i, (status, _h, js) in enumerate(answers):
            if check(status == 202 and isinstance(js, dict), "post %d answered %s %r" % (i, status, js)):
                ids.append(js["communication_id"])
                check(js.get("status") == "queued", "post %d status %r" % (i, js.get("status")))
                check((js.get("decision") or {}).get("primary_channel") == "email",
                      "post %d primary channel %r" % (i, (js.get("decision") or {}).get("primary_channel")))
                if bodies[i]["client"]["name"] == XSS_NAME:
                    xss_ids.add(js["communication_id"])
        check(len(set(ids)) == N, "1000 distinct communication ids (%d)" % len(set(ids)))

        pdf = make_pdf()
        bp = harness.comm_body(N, name="Blueprint Client", email="blueprint@example.com",
                               message_type="blueprint_delivery", urgency="critical")
        bp["attachments"] = [{"filename": "blueprint.pdf", "content_type": "application/pdf",
                              "content_base64": base64.b64encode(pdf).decode("ascii")}]
        status, _h, js = crier.post_comm(bp)
        check(status == 202, "blueprint post answered %s %r" % (status, js))
        bp_id = js.get("communication_id") if isinstance(js, dict) else None

        total = N + 1
        files = wait_messages(sink, total, 300)
        time.sleep(1)  # a duplicate would arrive just after the last one
        files = messages(sink)
        print("sink holds %d messages after %.1f s" % (len(files), time.time() - t0), flush=True)
        check(len(files) == total, "sink got %d messages, expected %d" % (len(files), total))

        seen = {}
        for path in files:
            with open(path, "rb") as f:
                raw = f.read()
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            cid = msg.get("X-Crier-Id")
            if not check(cid is not None, "%s has an X-Crier-Id header" % os.path.basename(path)):
                continue
            cid = str(cid).strip()
            check(cid not in seen, "%s delivered once" % cid)
            seen[cid] = (raw, msg)

        for cid in ids:
            if not check(cid in seen, "%s reached the sink" % cid):
                continue
            raw, msg = seen[cid]
            check_wire(raw, cid)
            check_dkim(dk, raw, cid)
            check_list_unsubscribe(msg, cid)
            for field in ("Date", "From", "To", "Message-ID", "Subject", "MIME-Version"):
                check(msg.get(field) is not None, "%s has %s" % (cid, field))
            check(msg.get_content_type() == "multipart/alternative",
                  "%s is multipart/alternative (%s)" % (cid, msg.get_content_type()))
            text, html = check_alternative(msg, cid)
            if cid in xss_ids and text is not None:
                hdrs = header_bytes(raw)
                check(b"<script>" not in hdrs, "%s: raw <script> not in the headers" % cid)
                to = msg["To"]
                names = [a.display_name for a in to.addresses]
                check(names == [XSS_NAME], "%s: To display name decodes to %r, not %r"
                      % (cid, XSS_NAME, names))
                html_raw = html.get_payload(decode=False)
                check("<script>" not in html_raw, "%s: raw <script> not in the encoded HTML part" % cid)
                html_text = html.get_content()
                check("<script>" not in html_text, "%s: no <script> in the decoded HTML" % cid)
                check(XSS_HTML in html_text, "%s: the HTML shows the name escaped" % cid)
                check(XSS_NAME in text.get_content(),
                      "%s: the plain-text part shows the name as written" % cid)
        check(len(xss_ids) == N // 100, "%d messages carried the markup name" % len(xss_ids))

        if check(bp_id in seen, "blueprint %s reached the sink" % bp_id):
            raw, msg = seen[bp_id]
            check_wire(raw, bp_id)
            check_dkim(dk, raw, bp_id)
            check(msg.get_content_type() == "multipart/mixed",
                  "blueprint is multipart/mixed (%s)" % msg.get_content_type())
            parts = list(msg.iter_parts())
            check(len(parts) == 2, "blueprint has 2 parts (%d)" % len(parts))
            if parts:
                check(parts[0].get_content_type() == "multipart/alternative",
                      "blueprint body is multipart/alternative (%s)" % parts[0].get_content_type())
                check_alternative(parts[0], bp_id)
            atts = list(msg.iter_attachments())
            if check(len(atts) == 1, "blueprint carries 1 attachment (%d)" % len(atts)):
                a = atts[0]
                check(a.get_content_type() == "application/pdf", "attachment is application/pdf")
                check(a.get_filename() == "blueprint.pdf", "attachment filename %r" % a.get_filename())
                check(a.get_content() == pdf, "attachment bytes intact")

        # The sink may see a message a moment before its row says sent.
        want = ids + ([bp_id] if bp_id else [])
        views = {}
        deadline = time.time() + 60
        todo = list(want)
        with concurrent.futures.ThreadPoolExecutor(POOL) as ex:
            while todo and time.time() < deadline:
                got_views = list(ex.map(lambda c: (c, crier.request("GET", "/v1/communications/" + c)), todo))
                todo = []
                for c, (st, _h, js) in got_views:
                    views[c] = (st, js)
                    if st != 200 or not isinstance(js, dict) or js.get("status") != "sent":
                        todo.append(c)
                if todo:
                    time.sleep(0.5)
        for c in want:
            st, js = views.get(c, (None, None))
            if not check(st == 200 and isinstance(js, dict), "GET %s answered %s" % (c, st)):
                continue
            check(js.get("status") == "sent", "%s status %r, expected sent" % (c, js.get("status")))
            check(js.get("channel") == "email", "%s channel %r" % (c, js.get("channel")))
            check(js.get("attempts") == 1, "%s attempts %r" % (c, js.get("attempts")))
            check(js.get("sent_at") is not None, "%s has sent_at" % c)
            evs = js.get("events") or []
            check(any(e.get("event_type") == "sent" or e.get("status") == "sent" for e in evs),
                  "%s has a sent event (%r)" % (c, [e.get("event_type") for e in evs]))
        # What a backup of the database holds after the whole run: no
        # client's name or address in clear, and the rows are there.
        dump = harness.pg_dump(db)
        check(dump.count("v2.") >= 2 * total, "the dump holds the encrypted contacts")
        check(all(c in dump for c in ids[:50]), "the dump holds the communications")
        leaks = [b["client"][k] for b in bodies[:N] for k in ("name", "email")
                 if b["client"][k] in dump]
        check(not leaks, "%d client names or addresses in clear in pg_dump: %r"
              % (len(leaks), leaks[:3]))
        check("Quixotewright" not in dump, "no client surname in clear in pg_dump")
    finally:
        stop_quietly(crier, "crier")
        stop_quietly(sink, "smtp sink")
        harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
