"""The provider stub (tests/support/provider_stub.py) speaks Twilio's and
Meta's wire formats: each mode answers the documented shape, every request is
recorded, and the receipts it posts carry signatures that this test
recomputes on its own from Twilio's and Meta's algorithms. Its signing
functions are also checked against the published test vectors. No database
is needed."""
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "stub-auth-token-1"
META_TOKEN = "EAAGstubtoken"
APP_SECRET = "1222e786b144d0e85b9f365372d93676"
PHONE_ID = "277321005464405"
TW_PATH = "/2010-04-01/Accounts/%s/Messages.json" % SID
WA_PATH = "/v21.0/%s/messages" % PHONE_ID


def stub_module():
    sys.path.insert(0, os.path.join(h.source_dir(), "tests", "support"))
    import provider_stub
    return provider_stub


# ---------------------------------------------------------------- helpers

class Receiver:
    """A webhook endpoint that keeps every POST it gets."""

    def __init__(self):
        got = self.got = []
        lock = self.lock = threading.Lock()

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with lock:
                    got.append({"path": self.path, "headers": dict(self.headers.items()),
                                "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count, timeout=10):
        def enough():
            with self.lock:
                return list(self.got) if len(self.got) >= count else None
        return h.wait_until(enough, timeout=timeout, what="%d webhook posts" % count)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Stub:
    def __init__(self, tmp, *args):
        self.dir = os.path.join(tmp, "stub")
        script = os.path.join(h.source_dir(), "tests", "support", "provider_stub.py")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", script, "--port", "0", "--dir", self.dir,
             "--twilio-account-sid", SID, "--twilio-auth-token", TOKEN,
             "--meta-access-token", META_TOKEN, "--meta-app-secret", APP_SECRET,
             "--wa-phone-number-id", PHONE_ID, "--callback-delay", "0.05"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"READY (\d+)$", line.strip())
        if not m:
            self.proc.kill()
            raise RuntimeError("stub did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(m.group(1))

    def request(self, method, path, body=b"", headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def twilio(self, fields, user=SID, password=TOKEN, ctype="application/x-www-form-urlencoded"):
        cred = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        status, headers, data = self.request(
            "POST", TW_PATH, urllib.parse.urlencode(fields).encode(),
            {"Authorization": "Basic " + cred, "Content-Type": ctype})
        return status, headers, json.loads(data)

    def whatsapp(self, obj, token=META_TOKEN, path=WA_PATH, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        status, headers, data = self.request(
            "POST", path, body,
            {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        return status, headers, json.loads(data)

    def records(self, name="requests.jsonl"):
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def sms(to="+15558675310", body="Hello there", **extra):
    fields = {"To": to, "From": "+15017122661", "Body": body}
    fields.update(extra)
    return fields


def wa_text(to="16505076520", body="Your order shipped.", **extra):
    obj = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
           "type": "text", "text": {"preview_url": False, "body": body}}
    obj.update(extra)
    return obj


def expected_twilio_signature(token, url, body):
    """Twilio's algorithm, written here apart from the stub's: decode the
    form, sort names, then each name's distinct values, concatenate."""
    values = {}
    for name, value in urllib.parse.parse_qsl(body.decode(), keep_blank_values=True):
        values.setdefault(name, set()).add(value)
    text = url + "".join(n + v for n in sorted(values) for v in sorted(values[n]))
    return base64.b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def twilio_error_shape(answer, code, status):
    assert answer == {"code": code, "message": answer["message"],
                      "more_info": "https://www.twilio.com/docs/errors/%d" % code,
                      "status": status}, answer
    assert isinstance(answer["message"], str) and answer["message"], answer


def meta_error_shape(answer, code):
    err = answer["error"]
    assert set(answer) == {"error"}, answer
    assert err["code"] == code, answer
    assert isinstance(err["message"], str) and err["message"], answer
    assert isinstance(err["type"], str) and err["type"], answer
    assert isinstance(err["fbtrace_id"], str) and err["fbtrace_id"], answer


# ---------------------------------------------------------------- tests

def test_signing_functions_match_published_vectors(tmp):
    stub = stub_module()
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
              ("From", "+14158675309"), ("To", "+18005551212")]
    assert stub.twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert stub.twilio_signature(
        "12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        params) == "kvajT1Ptam85bY51eRf/AJRuM3w="
    dup = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"),
           ("Digits", "1234")]
    assert stub.twilio_signature("12345", url, dup) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    # the status-callback shaped vector
    body = ("AccountSid=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx&ApiVersion=2010-04-01&ErrorCode=30003&"
            "From=%2B15017250604&MessageSid=SM1342fe1b2c904d1ab04f0fc7a58abca9&"
            "MessageStatus=undelivered&SmsSid=SM1342fe1b2c904d1ab04f0fc7a58abca9&"
            "SmsStatus=undelivered&To=%2B15558675310")
    assert stub.twilio_signature("12345", "https://example.com/twilio/status",
                                 urllib.parse.parse_qsl(body)) == "LEKRlRV7sz2WwWGqQMZYL9InZSc="
    # Meta's X-Hub-Signature-256 vector (pywa)
    wa_body = (
        b'{"object":"whatsapp_business_account","entry":[{"id":"264937493375603","changes":[{'
        b'"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":'
        b'"15550953877","phone_number_id":"277321005464405"},"contacts":[{"profile":{"name":'
        b'"PyWa Tests"},"wa_id":"972544401243"}],"messages":[{"from":"972544401243","id":'
        b'"wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA",'
        b'"timestamp":"1730231903","text":{"body":"Hey there! I am using PyWa."},"type":"text"}]'
        b'},"field":"messages"}]}]}')
    assert len(wa_body) == 511
    assert stub.meta_signature(APP_SECRET, wa_body) == (
        "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441")


def test_twilio_success_and_signed_receipts(tmp):
    rx = Receiver()
    try:
        with Stub(tmp) as s:
            callback = rx.base + "/webhooks/twilio/status?tenant=a"
            status, _, answer = s.twilio(sms(body="Caf\u00e9 \U0001F44D",
                                             StatusCallback=callback))
            assert status == 201, answer
            assert re.fullmatch(r"SM[0-9a-f]{32}", answer["sid"]), answer
            assert answer["status"] == "queued", answer
            assert answer["to"] == "+15558675310" and answer["from"] == "+15017122661", answer
            assert answer["body"] == "Caf\u00e9 \U0001F44D", answer
            assert answer["account_sid"] == SID and answer["direction"] == "outbound-api"
            assert answer["num_segments"] == "1" and answer["error_code"] is None, answer
            assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000",
                                answer["date_created"]), answer

            posts = rx.wait(2)
            statuses = []
            for post in posts:
                assert post["path"] == "/webhooks/twilio/status?tenant=a", post
                assert post["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
                want = expected_twilio_signature(TOKEN, callback, post["body"])
                assert post["headers"]["X-Twilio-Signature"] == want, post
                form = dict(urllib.parse.parse_qsl(post["body"].decode()))
                assert form["MessageSid"] == answer["sid"] == form["SmsSid"], form
                assert form["AccountSid"] == SID and form["To"] == "+15558675310", form
                assert form["From"] == "+15017122661" and form["ApiVersion"] == "2010-04-01"
                assert "ErrorCode" not in form, form
                statuses.append(form["MessageStatus"])
            assert statuses == ["sent", "delivered"], statuses
            # a signature under another token would not match
            assert expected_twilio_signature("other", callback, posts[0]["body"]) != \
                posts[0]["headers"]["X-Twilio-Signature"]

            rec = s.records()
            assert len(rec) == 1, rec
            r = rec[0]
            assert r["method"] == "POST" and r["path"] == TW_PATH and r["provider"] == "twilio"
            assert r["status"] == 201 and r["mode"] == "success", r
            assert "%2B15558675310" in r["body"] and "Caf%C3%A9" in r["body"], r
            assert r["headers"]["Authorization"].startswith("Basic "), r
            assert abs(r["time"] - time.time()) < 60, r
            cb = h.wait_until(lambda: (lambda x: x if len(x) >= 2 else None)(
                s.records("callbacks.jsonl")), what="two callback records")
            assert [c["status"] for c in cb] == [200, 200], cb
    finally:
        rx.stop()


def test_twilio_checks_credentials_and_request(tmp):
    with Stub(tmp) as s:
        status, _, answer = s.twilio(sms(), password="wrong")
        assert status == 401, answer
        twilio_error_shape(answer, 20003, 401)
        status, _, answer = s.request("POST", TW_PATH, b"To=%2B15558675310",
                                      {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 401 and json.loads(answer)["code"] == 20003, answer

        status, _, answer = s.twilio(sms(to="5551234567"))
        assert status == 400, answer
        twilio_error_shape(answer, 21211, 400)
        status, _, answer = s.twilio({"From": "+15017122661", "Body": "x"})
        twilio_error_shape(answer, 21604, 400)
        status, _, answer = s.twilio({"To": "+15558675310", "Body": "x"})
        twilio_error_shape(answer, 21603, 400)
        status, _, answer = s.twilio({"To": "+15558675310", "From": "+15017122661"})
        twilio_error_shape(answer, 21602, 400)
        # JSON is not what Twilio takes
        status, _, answer = s.twilio(sms(), ctype="application/json")
        twilio_error_shape(answer, 21604, 400)
        # with a Messaging Service the first status is "accepted"
        status, _, answer = s.twilio({"To": "+15558675310", "Body": "x",
                                      "MessagingServiceSid": "MG" + "a" * 32})
        assert status == 201 and answer["status"] == "accepted", answer
        assert answer["messaging_service_sid"] == "MG" + "a" * 32, answer
        status, _, data = s.request("POST", "/2010-04-01/Accounts/%s/Calls.json" % SID, b"")
        assert status == 404, data


def test_modes_by_recipient(tmp):
    with Stub(tmp, "--recipient-mode", "01=error:21610", "--recipient-mode", "02=http429:7",
              "--recipient-mode", "03=http500", "--recipient-mode", "04=http401",
              "--recipient-mode", "05=slow:1", "--recipient-mode", "06=drop",
              "--recipient-mode", "3306=error:20003") as s:
        status, _, answer = s.twilio(sms(to="+15558670001"))
        assert status == 400, answer
        twilio_error_shape(answer, 21610, 400)
        status, headers, answer = s.twilio(sms(to="+15558670002"))
        assert status == 429 and headers.get("Retry-After") == "7", (status, headers)
        twilio_error_shape(answer, 20429, 429)
        status, _, answer = s.twilio(sms(to="+15558670003"))
        twilio_error_shape(answer, 20500, 500)
        assert status == 500
        status, _, answer = s.twilio(sms(to="+15558670004"))
        twilio_error_shape(answer, 20003, 401)
        started = time.monotonic()
        status, _, answer = s.twilio(sms(to="+15558670005"))
        assert status == 201 and time.monotonic() - started >= 1.0, (status, answer)
        try:
            s.twilio(sms(to="+15558670006"))
        except (http.client.RemoteDisconnected, ConnectionError):
            pass
        else:
            raise AssertionError("drop answered")
        # the longest suffix wins over "06"
        status, _, answer = s.twilio(sms(to="+15558673306"))
        twilio_error_shape(answer, 20003, 401)
        # the same table applies to WhatsApp recipients
        status, headers, answer = s.whatsapp(wa_text(to="15558670002"))
        assert status == 429 and headers.get("Retry-After") == "7", answer
        meta_error_shape(answer, 130429)
        status, _, answer = s.whatsapp(wa_text(to="+15558670003"))
        assert status == 500, answer
        meta_error_shape(answer, 131000)
        status, _, answer = s.whatsapp(wa_text(to="15558670004"))
        assert status == 401 and answer["error"]["type"] == "OAuthException", answer
        meta_error_shape(answer, 190)
        # everything else succeeds
        status, _, answer = s.twilio(sms(to="+15558670009"))
        assert status == 201, answer

        rec = s.records()
        modes = [r["mode"] for r in rec if r["provider"] == "twilio"]
        # in order, except that a dropped request is recorded when its
        # handler ends, which may be after the next request's record
        want = ["error:21610", "http429:7", "http500", "http401", "slow:1", "drop", "error:20003"]
        assert modes[:5] == want[:5] and sorted(modes[5:7]) == sorted(want[5:]), modes
        dropped = [r for r in rec if r["mode"] == "drop"]
        assert len(dropped) == 1 and dropped[0]["status"] is None, dropped


def test_mode_switch_at_run_time(tmp):
    with Stub(tmp, "--mode", "error:30007") as s:
        status, _, answer = s.twilio(sms())
        twilio_error_shape(answer, 30007, 400)
        status, _, data = s.request("POST", "/_stub/mode",
                                    json.dumps({"mode": "success",
                                                "recipients": {"99": "error:131026"}}).encode(),
                                    {"Content-Type": "application/json"})
        assert status == 200 and json.loads(data) == {
            "mode": "success", "recipients": {"99": "error:131026"}}, data
        status, _, answer = s.twilio(sms())
        assert status == 201, answer
        status, _, answer = s.whatsapp(wa_text(to="16505070099"))
        assert status == 400, answer
        meta_error_shape(answer, 131026)
        status, _, data = s.request("POST", "/_stub/mode", b'{"mode": "explode"}')
        assert status == 400, data


def test_whatsapp_success_and_signed_receipts(tmp):
    rx = Receiver()
    try:
        with Stub(tmp, "--callback-url", rx.base) as s:
            status, _, answer = s.whatsapp(wa_text(body="Caf\u00e9 \U0001F389",
                                                   biz_opaque_callback_data="comm-7"))
            assert status == 200, answer
            assert answer["messaging_product"] == "whatsapp", answer
            assert answer["contacts"] == [{"input": "16505076520", "wa_id": "16505076520"}]
            wamid = answer["messages"][0]["id"]
            assert re.fullmatch(r"wamid\.[A-Za-z0-9+/=]{20,}", wamid), answer
            assert "message_status" not in answer["messages"][0], answer

            posts = rx.wait(2)
            seen = []
            for post in posts:
                assert post["path"] == "/webhooks/whatsapp", post
                want = "sha256=" + hmac.new(APP_SECRET.encode(), post["body"],
                                            hashlib.sha256).hexdigest()
                assert post["headers"]["X-Hub-Signature-256"] == want, post
                assert all(b < 0x80 for b in post["body"]), post["body"]
                payload = json.loads(post["body"])
                assert payload["object"] == "whatsapp_business_account", payload
                value = payload["entry"][0]["changes"][0]["value"]
                assert payload["entry"][0]["changes"][0]["field"] == "messages"
                assert value["metadata"]["phone_number_id"] == PHONE_ID, value
                st = value["statuses"][0]
                assert st["id"] == wamid and st["recipient_id"] == "16505076520", st
                assert st["biz_opaque_callback_data"] == "comm-7", st
                assert st["timestamp"].isdigit(), st
                seen.append(st["status"])
            assert seen == ["sent", "delivered"], seen

            tpl = {"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": "+16505076520", "type": "template",
                   "template": {"name": "order_update",
                                "language": {"policy": "deterministic", "code": "en_US"},
                                "components": [{"type": "body", "parameters": [
                                    {"type": "text", "text": "A-1042"}]}]}}
            status, _, answer = s.whatsapp(tpl)
            assert status == 200 and answer["messages"][0]["message_status"] == "accepted"
            rec = [r for r in s.records() if r["provider"] == "whatsapp"]
            assert len(rec) == 2 and rec[0]["path"] == WA_PATH, rec
            assert json.loads(rec[0]["body"])["text"]["body"] == "Caf\u00e9 \U0001F389", rec
            assert rec[0]["headers"]["Authorization"] == "Bearer " + META_TOKEN, rec
    finally:
        rx.stop()


def test_whatsapp_checks_token_and_request(tmp):
    with Stub(tmp) as s:
        status, _, answer = s.whatsapp(wa_text(), token="wrong")
        assert status == 401, answer
        meta_error_shape(answer, 190)
        assert answer["error"]["type"] == "OAuthException", answer
        status, _, answer = s.whatsapp(wa_text(), path="/v21.0/999/messages")
        assert status == 400, answer
        meta_error_shape(answer, 100)
        status, _, answer = s.whatsapp(None, raw=b"{not json")
        assert status == 400, answer
        meta_error_shape(answer, 100)
        status, _, answer = s.whatsapp({"to": "16505076520", "type": "text",
                                        "text": {"body": "x"}})
        meta_error_shape(answer, 100)
        status, _, answer = s.whatsapp(wa_text(to=""))
        meta_error_shape(answer, 131008)
        status, _, answer = s.whatsapp(wa_text(to="not-a-number"))
        meta_error_shape(answer, 131009)
        status, _, answer = s.whatsapp(wa_text(body=""))
        meta_error_shape(answer, 131008)
        status, _, answer = s.whatsapp({"messaging_product": "whatsapp", "to": "16505076520",
                                        "type": "template", "template": {"name": "x"}})
        meta_error_shape(answer, 131008)


def test_errors_then_failure_receipts(tmp):
    rx = Receiver()
    try:
        with Stub(tmp, "--callback-url", rx.base, "--recipient-mode", "47=error:131047",
                  "--recipient-mode", "03=fail-later:30003",
                  "--recipient-mode", "26=fail-later:131026") as s:
            status, _, answer = s.whatsapp(wa_text(to="16505070047"))
            assert status == 400, answer
            meta_error_shape(answer, 131047)
            assert "24 hours" in answer["error"]["error_data"]["details"], answer
            assert answer["error"]["error_data"]["messaging_product"] == "whatsapp", answer
            assert rx.got == [], rx.got

            status, _, answer = s.twilio(sms(to="+15558670003"))
            assert status == 201, answer
            posts = rx.wait(2)
            forms = [dict(urllib.parse.parse_qsl(p["body"].decode())) for p in posts]
            assert [f["MessageStatus"] for f in forms] == ["sent", "undelivered"], forms
            assert forms[1]["ErrorCode"] == "30003" and "ErrorCode" not in forms[0], forms
            for post in posts:
                url = rx.base + "/webhooks/twilio/status"
                assert post["headers"]["X-Twilio-Signature"] == expected_twilio_signature(
                    TOKEN, url, post["body"]), post

            status, _, answer = s.whatsapp(wa_text(to="16505070026"))
            assert status == 200, answer
            posts = rx.wait(3)
            st = json.loads(posts[2]["body"])["entry"][0]["changes"][0]["value"]["statuses"][0]
            assert st["status"] == "failed" and st["errors"][0]["code"] == 131026, st
            assert st["id"] == answer["messages"][0]["id"], st
    finally:
        rx.stop()


def test_text_error_refuses_free_text_only(tmp):
    tpl = {"messaging_product": "whatsapp", "to": "16505070047", "type": "template",
           "template": {"name": "order_update", "language": {"code": "en_US"}}}
    with Stub(tmp, "--recipient-mode", "47=text-error:131047") as s:
        # free text outside the window: refused the way error:131047 refuses it
        status, _, answer = s.whatsapp(wa_text(to="16505070047"))
        assert status == 400, answer
        meta_error_shape(answer, 131047)
        assert "24 hours" in answer["error"]["error_data"]["details"], answer
        # a template to the same recipient goes through
        status, _, answer = s.whatsapp(tpl)
        assert status == 200, answer
        assert answer["messages"][0]["message_status"] == "accepted", answer
        # Twilio has no such distinction: a plain success
        status, _, answer = s.twilio(sms(to="+15558670047"))
        assert status == 201 and answer["sid"].startswith("SM"), answer
        # another recipient is not affected
        status, _, answer = s.whatsapp(wa_text(to="16505070048"))
        assert status == 200, answer
        rec = [r for r in s.records() if r["provider"] in ("whatsapp", "twilio")]
        assert [(r["provider"], r["mode"], r["status"]) for r in rec] == [
            ("whatsapp", "text-error:131047", 400), ("whatsapp", "text-error:131047", 200),
            ("twilio", "text-error:131047", 201), ("whatsapp", "success", 200)], rec

        # the mode is accepted at run time too, with the same effect
        status, _, data = s.request("POST", "/_stub/mode", json.dumps(
            {"mode": "text-error:131026"}).encode())
        assert status == 200 and json.loads(data)["mode"] == "text-error:131026", data
        status, _, answer = s.whatsapp(wa_text(to="16505070048"))
        assert status == 400, answer
        meta_error_shape(answer, 131026)
        status, _, answer = s.whatsapp(dict(tpl, to="16505070048"))
        assert status == 200, answer
        status, _, data = s.request("POST", "/_stub/mode", b'{"mode": "text-error:x"}')
        assert status == 400, data


h.run([test_signing_functions_match_published_vectors, test_twilio_success_and_signed_receipts,
       test_twilio_checks_credentials_and_request, test_modes_by_recipient,
       test_mode_switch_at_run_time, test_whatsapp_success_and_signed_receipts,
       test_whatsapp_checks_token_and_request, test_errors_then_failure_receipts,
       test_text_error_refuses_free_text_only])
