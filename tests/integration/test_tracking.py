"""Open and click tracking of email (docs/tracking.md), against the real
binary, PostgreSQL and the SMTP sink:

1. 50 emails whose templates have links (context URLs with query strings,
   '&', a quote, a fragment, a non-ASCII path) arrive with every http(s)
   link of the HTML part rewritten to crier's redirect and a 1x1 pixel;
   the plain-text part keeps the original links. Each token decodes to the
   documented layout. Clicking every tracked link with urllib, following
   no redirect, answers 302 with Location exactly the original URL; the
   pixel answers the 43-byte GIF, uncacheable.
2. 200 bad tokens (a character changed, halves of two messages' tokens
   swapped, a correctly signed token naming a link index the message does
   not have, expired, of the other kind, truncated, for an unknown
   message, signed with another key) all answer 404 and change no row;
   HEAD on good tokens answers without recording.
3. Statuses move forward only (opened, clicked; an open after a click
   leaves it clicked), GET /v1/communications/{id} shows them with their
   events; a scanner's hit and a hit within the machine window are
   recorded, flagged and move nothing; a digest's click reaches its
   members; /metrics counts first opens and clicks and crm_open_rate.
4. A message type with tracking off, and CRIER_TRACKING=off, send the
   HTML as rendered. An erased client's tokens answer 404; a deleted
   communication takes its links along.
"""
import base64
import email
import email.policy
import hashlib
import html.parser
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

LINK_KEY = bytes(range(100, 132))
LINK_KEY_B64 = base64.b64encode(LINK_KEY).decode("ascii")
BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Safari/605.1.15")
GIF = bytes.fromhex("47494638396101000100800000ffffff00000021f90401000000002c00000000"
                    "010001000002024401003b")
N = 50
TYPES = ["welcome", "budget_summary", "vendor_options", "reminder", "blueprint_delivery"]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def fetch(url, method="GET", agent=BROWSER):
    """(status, headers with lower-case names, body bytes), no redirect followed."""
    headers = {"User-Agent": agent} if agent else {}
    req = urllib.request.Request(url, headers=headers, method=method)
    try:
        with _opener.open(req, timeout=30) as resp:
            status, hdrs, body = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, body = e.code, e.headers, e.read()
    return status, {k.lower(): v for k, v in hdrs.items()}, body


def location(hdrs):
    # http.client reads header bytes as Latin-1; crier sends the URL's UTF-8
    loc = hdrs.get("location")
    return loc.encode("latin-1").decode("utf-8") if loc is not None else None


# ---------------------------------------------------------------- tokens

def make_token(kind, comm_id, arg, day, key=LINK_KEY):
    return h.link_token(kind, comm_id, arg, day, key)


def read_token(tok):
    return h.read_link_token(tok, LINK_KEY)


def today():
    return int(time.time()) // 86400


# ---------------------------------------------------------------- emails

def url_for(i, what):
    """Distinct original URLs with the characters an href escapes."""
    if i % 7 == 3:
        return "https://app.planiva.example/caf\u00e9/%d/%s?n=\u00fc&x=1" % (i, what)
    return ("https://app.planiva.example/plans/%d/%s?ref=mail&step=%d&who=o'brien"
            "&q=a%%20b&sig=Zm9v%%3D#top" % (i, what, i))


def context_for(mt, i):
    ctx = dict(h._example_context(mt))
    if mt == "welcome":
        ctx["plan_url"] = url_for(i, "plan")
        return ctx, [ctx["plan_url"]]
    if mt == "budget_summary":
        ctx["review_url"] = url_for(i, "budget")
        return ctx, [ctx["review_url"]]
    if mt == "reminder":
        ctx["action_url"] = url_for(i, "action")
        return ctx, [ctx["action_url"]]
    if mt == "blueprint_delivery":
        ctx["blueprint_url"] = url_for(i, "blueprint.pdf")
        return ctx, [ctx["blueprint_url"]]
    combos = []
    for k, c in enumerate(ctx["vendor_combinations"]):
        c = dict(c, select_url=url_for(i, "vendors/%d" % (k + 1)))
        combos.append(c)
    ctx["vendor_combinations"] = combos
    ctx["options_url"] = url_for(i, "vendors")
    # the Choose buttons are crier's own action links (docs/tracking.md,
    # Actions): under CRIER_PUBLIC_URL, so not wrapped in a redirect
    return ctx, [ctx["options_url"]]


def parse(path):
    with open(path, "rb") as f:
        return email.message_from_bytes(f.read(), policy=email.policy.default)


def by_crier_id(sink):
    out = {}
    for p in sink.files():
        m = parse(p)
        cid = m.get("X-Crier-Id")
        if cid is not None:
            out[str(cid).strip()] = m
    return out


class Hrefs(html.parser.HTMLParser):
    """Every href of <a>/<area> and src of <img>, as the browser reads them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("a", "area") and "href" in a:
            self.hrefs.append(a["href"])
        if tag == "img" and "src" in a:
            self.imgs.append((a["src"], a))


def parts(msg):
    text = msg.get_body(preferencelist=("plain",)).get_content()
    markup = msg.get_body(preferencelist=("html",)).get_content()
    p = Hrefs()
    p.feed(markup)
    return text, markup, p


def db_digest(db):
    return h.psql(db, "SELECT md5(concat("
                      " (SELECT string_agg(t::text, '|' ORDER BY t.id) FROM communications t),"
                      " (SELECT string_agg(e::text, '|' ORDER BY e.id) FROM delivery_events e),"
                      " (SELECT string_agg(l::text, '|' ORDER BY l.communication_id, l.link_index)"
                      "   FROM communication_links l),"
                      " (SELECT string_agg(k::text, '|' ORDER BY k.id) FROM clients k)))")[0][0]


def env_for(sink, **extra):
    env = {"CRIER_TRANSPORT": "live", "CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port,
           "CRIER_SMTP_TLS": "off", "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>",
           "CRIER_WORKERS": "4", "CRIER_LINK_KEY": LINK_KEY_B64,
           "CRIER_TRACKING_OFF_TYPES": "error_notification",
           "CRIER_TRACKING_MACHINE_WINDOW_S": "1"}
    env.update(extra)
    return env


def post(crier, body):
    status, _, js = crier.post_comm(body)
    assert status == 202, (status, js)
    return js["communication_id"]


def wait_window(db, ids, seconds):
    """Until the machine window after each message's send has passed, by the
    database's clock (the one the server compares with)."""
    h.wait_until(lambda: h.psql(
        db, "SELECT bool_and(now() > sent_at + make_interval(secs => %d))"
            " FROM communications WHERE id::text = ANY(string_to_array(:'ids', ','))" % seconds,
        ids=",".join(ids))[0][0] == "t", timeout=30, what="the machine window to pass")


def events_of(crier, cid, kind):
    st, _, js = crier.get_comm(cid)
    assert st == 200, (st, js)
    return js, [e for e in js["events"] if e["event_type"] == kind]


def scrape(crier):
    st, _, text = crier.request("GET", "/metrics", token=None)
    assert st == 200, st
    return text


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r'^(\w+)\{([^}]*)\} (\S+)$', line)
        if m and m.group(1) == name and \
                ",".join(sorted(m.group(2).split(","))) == want:
            return float(m.group(3))
    return None


# ---------------------------------------------------------------- tests

def test_tracking(tmp):
    db = h.new_database("tracking")
    with h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "crier"), env=env_for(sink)) as crier:
        base = crier.url
        plan = str(uuid.uuid4())
        msgs = {}  # id -> {"type", "urls", "client_id"}
        for i in range(N):
            mt = TYPES[i % len(TYPES)]
            ctx, urls = context_for(mt, i)
            body = h.comm_body(i, message_type=mt, urgency="critical", context=ctx, plan_id=plan)
            msgs[post(crier, body)] = {"type": mt, "urls": urls, "client_id": body["client_id"]}
        off_ids = [post(crier, h.comm_body(100 + k, message_type="error_notification",
                                           urgency="critical", plan_id=plan)) for k in range(2)]

        # a digest: a first contact, then three LOW messages that fill it
        dclient, dplan = str(uuid.uuid4()), str(uuid.uuid4())
        first = post(crier, h.comm_body(200, client_id=dclient, plan_id=dplan,
                                        message_type="welcome", urgency="high",
                                        email="digest@example.com"))
        crier.wait_final([first], 30)
        members, durls = [], []
        for k in range(3):
            u = url_for(300 + k, "digest-item")
            st, _, js = crier.post_comm(h.comm_body(
                0, client_id=dclient, plan_id=dplan, message_type="reminder", urgency="low",
                client=False, context={"pending_action": "step %d" % k, "event_type": "wedding",
                                       "action_url": u}))
            assert st == 202 and js["status"] == "batched", (st, js)
            members.append(js["communication_id"])
            durls.append(u)
            digest = js["decision"]["batch"]["digest_id"]

        ids = list(msgs) + off_ids
        final = crier.wait_final(ids + [digest], 120)
        assert all(f["status"] == "sent" for f in final.values()), \
            {k: v["status"] for k, v in final.items() if v["status"] != "sent"}
        sink.wait_for(len(ids) + 2, timeout=60)
        mails = by_crier_id(sink)

        # ---- 1. the emails as received
        tokens = {}  # id -> (click tokens by index, open token)
        for cid, m in msgs.items():
            text, markup, p = parts(mails[cid])
            clicks = [u for u in p.hrefs if u.startswith(base + "/t/c/")]
            assert len(clicks) == len(m["urls"]), (cid, m["type"], p.hrefs)
            for u in m["urls"]:
                assert u not in p.hrefs, "original link left in the HTML: %s" % u
                assert u in text, "the plain text keeps the link: %s" % u
            assert "/t/c/" not in text and "/t/o/" not in text, "the text part is not tracked"
            by_index = {}
            for u in clicks:
                tok = u[len(base) + 5:]
                kind, tid, arg, day = read_token(tok)
                assert (kind, tid) == ("c", cid) and abs(day - today()) <= 1, (kind, tid, day)
                by_index[arg] = tok
            assert sorted(by_index) == list(range(len(m["urls"]))), sorted(by_index)
            pixels = [(s, a) for s, a in p.imgs if s.startswith(base + "/t/o/")]
            assert len(pixels) == 1, p.imgs
            src, attrs = pixels[0]
            assert src.endswith(".gif") and attrs.get("width") == "1" and attrs.get("height") == "1" \
                and attrs.get("alt") == "", attrs
            otok = src[len(base) + 5:-4]
            assert read_token(otok)[:3] == ("o", cid, 0)
            assert markup.rfind(src.replace("&", "&amp;")) < markup.lower().rfind("</body>"), \
                "the pixel sits before </body>"
            stored = h.psql(db, "SELECT link_index, url FROM communication_links"
                                " WHERE communication_id = :'c' ORDER BY link_index", c=cid)
            assert sorted(u for _i, u in stored) == sorted(m["urls"]), (stored, m["urls"])
            tokens[cid] = (by_index, otok)
        tracked = h.psql(db, "SELECT count(*) FILTER (WHERE tracked), count(*) FROM communications"
                             " WHERE id::text = ANY(string_to_array(:'ids', ','))",
                         ids=",".join(msgs))
        assert tracked == [[str(N), str(N)]], tracked
        for cid in off_ids:  # a type with tracking off: as rendered
            _text, markup, p = parts(mails[cid])
            assert "/t/c/" not in markup and "/t/o/" not in markup, "error_notification is untracked"
            assert any(u.startswith("mailto:") for u in p.hrefs), p.hrefs
        assert h.psql(db, "SELECT count(*) FROM communications c"
                          " WHERE c.message_type = 'error_notification' AND (c.tracked OR EXISTS"
                          " (SELECT 1 FROM communication_links l WHERE l.communication_id = c.id))"
                      ) == [["0"]]
        _t, _m, dp = parts(mails[digest])
        dclicks = [u for u in dp.hrefs if u.startswith(base + "/t/c/")]
        assert len(dclicks) == 3, dp.hrefs

        wait_window(db, list(msgs) + [digest], 1)

        # ---- 2. bad tokens: 404, nothing written
        ordered = list(msgs)
        bad = []
        for k in range(60):  # one character changed, at every position in turn
            by_index, _o = tokens[ordered[k % N]]
            tok = by_index[0]
            pos = k % len(tok)
            ch = ALPHABET[(ALPHABET.index(tok[pos]) + 1 + k) % 64]
            if ch == tok[pos]:
                ch = ALPHABET[(ALPHABET.index(ch) + 1) % 64]
            bad.append("/t/c/" + tok[:pos] + ch + tok[pos + 1:])
        for k in range(30):  # halves of two messages' tokens
            a, b = tokens[ordered[k]][0][0], tokens[ordered[(k + 1) % N]][0][0]
            bad.append("/t/c/" + a[:28] + b[28:] if k % 2 else "/t/o/" +
                       tokens[ordered[k]][1][:28] + tokens[ordered[k + 1]][1][28:] + ".gif")
        for k in range(30):  # signed, valid, but a link the message does not have
            cid = ordered[k]
            n = len(msgs[cid]["urls"])
            arg = [n, n + 1, 255, 256, 99999, 100001, 2 ** 31, 2 ** 32 - 1][k % 8]
            bad.append("/t/c/" + make_token("c", cid, arg, today()))
        for k in range(20):  # expired, and dated in the future
            cid = ordered[k]
            day = today() - 366 - k * 100 if k % 4 else today() + 2
            bad.append("/t/c/" + make_token("c", cid, 0, day) if k % 2 else
                       "/t/o/" + make_token("o", cid, 0, day) + ".gif")
        for k in range(20):  # the other kind, or another of crier's kinds
            by_index, otok = tokens[ordered[k]]
            if k % 4 == 0:
                bad.append("/t/c/" + otok)
            elif k % 4 == 1:
                bad.append("/t/o/" + by_index[0] + ".gif")
            elif k % 4 == 2:
                bad.append("/t/c/" + make_token("u", ordered[k], 0, today()))
            else:
                bad.append("/t/o/" + make_token("f", ordered[k], 0, today()) + ".gif")
        for k in range(20):  # truncated, extended, or without the .gif
            by_index, otok = tokens[ordered[k]]
            cut = [0, 1, 28, 55][k % 4]
            bad.append(["/t/c/" + by_index[0][:cut], "/t/o/" + otok[:cut] + ".gif",
                        "/t/c/" + by_index[0] + "A", "/t/o/" + otok][k % 4])
        for k in range(10):  # signed for a message that does not exist
            bad.append("/t/c/" + make_token("c", str(uuid.uuid4()), 0, today()) if k % 2 else
                       "/t/o/" + make_token("o", str(uuid.uuid4()), 0, today()) + ".gif")
        for k in range(10):  # signed with another key
            other = hashlib.sha256(b"another key %d" % k).digest()
            bad.append("/t/c/" + make_token("c", ordered[k], 0, today(), key=other) if k % 2 else
                       "/t/o/" + make_token("o", ordered[k], 0, today(), key=other) + ".gif")
        assert len(bad) == 200, len(bad)
        before = db_digest(db)
        for path in bad:
            for method in ("GET", "HEAD"):
                st, hdrs, body = fetch(base + path, method)
                assert st == 404, (path, method, st, body[:200])
                assert "location" not in hdrs, (path, hdrs)
                if method == "GET":
                    assert b'"code":"not_found"' in body, body
        # HEAD on good tokens answers as GET would, and records nothing
        for cid in ordered[:5]:
            by_index, otok = tokens[cid]
            st, hdrs, _b = fetch(base + "/t/c/" + by_index[0], "HEAD")
            assert st == 302 and location(hdrs) == msgs[cid]["urls"][0], (st, hdrs)
            st, hdrs, _b = fetch(base + "/t/o/" + otok + ".gif", "HEAD")
            assert st == 200 and hdrs.get("content-type") == "image/gif", (st, hdrs)
        assert db_digest(db) == before, "bad tokens and HEAD requests changed rows"

        # ---- 3. a scanner's click: recorded, flagged, moves nothing
        scanned = ordered[0]
        st, hdrs, _b = fetch(base + "/t/c/" + tokens[scanned][0][0], agent=None)
        assert st == 302 and location(hdrs) == msgs[scanned]["urls"][0], (st, hdrs)
        js, ev = events_of(crier, scanned, "clicked")
        assert js["status"] == "sent" and js["opened_at"] is None and js["clicked_at"] is None, js
        assert len(ev) == 1 and ev[0]["detail"] == {"source": "tracking", "agent": "scanner",
                                                    "machine": "user_agent", "link_index": 0}, ev
        st, _h2, _b = fetch(base + "/t/o/" + tokens[scanned][1] + ".gif",
                            agent="Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                                  "(via ggpht.com GoogleImageProxy)")
        assert st == 200
        js, ev = events_of(crier, scanned, "opened")
        assert js["status"] == "opened" and js["opened_at"], js
        assert ev[0]["detail"]["agent"] == "proxy" and ev[0]["status"] == "opened", ev

        # ---- people: every link clicked, the pixel fetched; left unopened: two reminders
        unopened = [c for c in ordered if msgs[c]["type"] == "reminder"][:2]
        opened_by_type, sent_by_type = {}, {}
        for k, cid in enumerate(ordered):
            mt = msgs[cid]["type"]
            sent_by_type[mt] = sent_by_type.get(mt, 0) + 1
            if cid in unopened:
                continue
            opened_by_type[mt] = opened_by_type.get(mt, 0) + 1
            by_index, otok = tokens[cid]
            pixel = base + "/t/o/" + otok + ".gif"
            if k % 2 == 0:  # opened first, then clicked
                st, hdrs, body = fetch(pixel)
                assert st == 200 and body == GIF and len(body) == 43, (st, body)
                assert hdrs.get("content-type") == "image/gif", hdrs
                assert "no-store" in hdrs.get("cache-control", "") \
                    and "no-cache" in hdrs.get("cache-control", ""), hdrs
                assert hdrs.get("pragma") == "no-cache" and hdrs.get("expires") == "0", hdrs
                js, _e = events_of(crier, cid, "opened")
                assert js["status"] == "opened" and js["clicked_at"] is None, js
            for idx in sorted(by_index):
                st, hdrs, body = fetch(base + "/t/c/" + by_index[idx])
                assert st == 302, (st, body[:200])
                assert location(hdrs) == msgs[cid]["urls"][idx], \
                    (location(hdrs), msgs[cid]["urls"][idx])
                assert hdrs.get("cache-control") == "no-store", hdrs
            if k % 2 == 1:  # clicked first: the open after it moves nothing back
                st, _h2, body = fetch(pixel)
                assert st == 200 and body == GIF
            js, clicks = events_of(crier, cid, "clicked")
            _js, opens = events_of(crier, cid, "opened")
            assert js["status"] == "clicked" and js["opened_at"] and js["clicked_at"], js
            humans = [e for e in clicks if e["detail"]["agent"] == "human"]
            assert sorted(e["detail"]["link_index"] for e in humans) == sorted(by_index), clicks
            assert all(e["channel"] == "email" and e["status"] == "clicked" for e in humans[1:])
            human_opens = [e for e in opens if e["detail"]["agent"] == "human"]
            assert len(human_opens) == 1, opens
            assert human_opens[0]["status"] == ("opened" if k % 2 == 0 else "clicked"), opens
        for cid in unopened:
            st, _h2, js = crier.get_comm(cid)
            assert js["status"] == "sent" and js["opened_at"] is None, js
        # the scanned message was clicked by a person later: counted once
        assert crier.get_comm(scanned)[2]["status"] == "clicked"

        # a digest's click reaches its members
        dtok = dclicks[1][len(base) + 5:]
        kind, tid, arg, _day = read_token(dtok)
        assert (kind, tid) == ("c", digest), (kind, tid)
        st, hdrs, _b = fetch(dclicks[1])
        assert st == 302 and location(hdrs) in durls, (st, hdrs)
        for cid in [digest] + members:
            st, _h2, js = crier.get_comm(cid)
            assert js["status"] == "clicked" and js["clicked_at"] and js["opened_at"], (cid, js)

        # ---- metrics: first opens and clicks, and the open rate
        people = N - len(unopened)
        text = scrape(crier)
        got_opened = sum(metric(text, "crm_communications_total", message_type=mt,
                                channel="email", status="opened") or 0 for mt in TYPES + ["digest"])
        got_clicked = sum(metric(text, "crm_communications_total", message_type=mt,
                                 channel="email", status="clicked") or 0 for mt in TYPES + ["digest"])
        assert (got_opened, got_clicked) == (people + 1, people + 1), (got_opened, got_clicked)
        # the digest's first contact (a welcome) went out tracked and unopened
        sent_by_type["welcome"] += 1
        sent_by_type["digest"], opened_by_type["digest"] = 1, 1
        want = {mt: opened_by_type.get(mt, 0) / n for mt, n in sent_by_type.items()}

        def rates():
            t = scrape(crier)
            got = {mt: metric(t, "crm_open_rate", message_type=mt) for mt in want}
            return got if all(got[mt] is not None and abs(got[mt] - want[mt]) < 1e-9
                              for mt in want) else None
        try:
            h.wait_until(rates, timeout=60, interval=1, what="crm_open_rate to be sampled")
        except TimeoutError:
            t = scrape(crier)
            raise AssertionError("crm_open_rate: want %r, got %r" % (want, {
                mt: metric(t, "crm_open_rate", message_type=mt) for mt in want}))
        assert metric(scrape(crier), "crm_open_rate", message_type="error_notification") is None

        # ---- erasure: the client's links go, its tokens answer 404
        gone = ordered[5]
        st, _h2, js = crier.request("DELETE", "/v1/clients/" + msgs[gone]["client_id"],
                                    token=h.TOKEN_ADMIN)
        assert st == 200, (st, js)
        assert h.psql(db, "SELECT count(*) FROM communication_links WHERE communication_id = :'c'",
                      c=gone) == [["0"]]
        before = db_digest(db)
        by_index, otok = tokens[gone]
        assert fetch(base + "/t/c/" + by_index[0])[0] == 404
        assert fetch(base + "/t/o/" + otok + ".gif")[0] == 404
        assert fetch(base + "/t/c/" + by_index[0], "HEAD")[0] == 404
        assert db_digest(db) == before, "an erased client's tokens changed rows"

        # a communication deleted (as the retention purge does) takes its links along
        dropped = ordered[6]
        h.psql(db, "DELETE FROM communications WHERE id = :'c'", c=dropped)
        assert h.psql(db, "SELECT count(*) FROM communication_links WHERE communication_id = :'c'",
                      c=dropped) == [["0"]]
        assert fetch(base + "/t/c/" + tokens[dropped][0][0])[0] == 404


def test_tracking_off(tmp):
    """CRIER_TRACKING=off: the HTML goes as rendered, nothing is stored."""
    db = h.new_database("tracking_off")
    with h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "crier"),
                    env=env_for(sink, CRIER_TRACKING="off")) as crier:
        ids, urls = [], []
        for i, mt in enumerate(["welcome", "vendor_options"]):
            ctx, u = context_for(mt, i)
            ids.append(post(crier, h.comm_body(i, message_type=mt, urgency="critical", context=ctx)))
            urls.append(u)
        crier.wait_final(ids, 60)
        sink.wait_for(2, timeout=30)
        mails = by_crier_id(sink)
        for cid, u in zip(ids, urls):
            _text, markup, p = parts(mails[cid])
            assert "/t/c/" not in markup and "/t/o/" not in markup, markup[:300]
            for x in u:
                assert x in p.hrefs, (x, p.hrefs)
        assert h.psql(db, "SELECT count(*) FROM communication_links") == [["0"]]
        assert h.psql(db, "SELECT count(*) FROM communications WHERE tracked") == [["0"]]
        # a token crier would have made is no use either: no link is stored
        st, _h2, _b = fetch(crier.url + "/t/c/" + make_token("c", ids[0], 0, today()))
        assert st == 404, st


def test_machine_window(tmp):
    """A person's click within the machine window of the send is taken for
    a scanner's: 302 all the same, recorded as early, the status stays."""
    db = h.new_database("tracking_window")
    with h.SmtpSink(os.path.join(tmp, "sink")) as sink, \
            h.Crier(db, os.path.join(tmp, "crier"),
                    env=env_for(sink, CRIER_TRACKING_MACHINE_WINDOW_S="3600")) as crier:
        ctx, urls = context_for("reminder", 1)
        cid = post(crier, h.comm_body(1, message_type="reminder", urgency="critical", context=ctx))
        crier.wait_final([cid], 60)
        sink.wait_for(1, timeout=30)
        _t, _m, p = parts(by_crier_id(sink)[cid])
        click = [u for u in p.hrefs if "/t/c/" in u][0]
        pixel = [s for s, _a in p.imgs if "/t/o/" in s][0]
        st, hdrs, _b = fetch(click)
        assert st == 302 and location(hdrs) == urls[0], (st, hdrs)
        assert fetch(pixel)[0] == 200
        js, clicks = events_of(crier, cid, "clicked")
        _js, opens = events_of(crier, cid, "opened")
        assert js["status"] == "sent" and js["opened_at"] is None, js
        for e in clicks + opens:
            assert e["detail"]["agent"] == "scanner" and e["detail"]["machine"] == "early", e
            assert e["status"] == "sent", e
        assert len(clicks) == 1 and len(opens) == 1, (clicks, opens)
        text = scrape(crier)
        assert not metric(text, "crm_communications_total", message_type="reminder",
                          channel="email", status="opened"), "a machine open is not counted"


if __name__ == "__main__":
    h.run([test_tracking, test_tracking_off, test_machine_window])
