import hashlib
import hmac
import http.client
import json
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import crier_client
from crier_client import (
    CallbackVerificationError,
    Client,
    CrierError,
    derive_idempotency_key,
    parse_callback,
    verify_callback,
)

PLAN = "5b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
CLIENT = "9c2e8f7a-6b5c-4d3e-9f1a-0b2c3d4e5f6a"
TOKEN = "workflow-token-1"

# Shared with clients/js/test/client.test.js: both clients must derive this
# exact key, so a step retried from either side is deduplicated.
FIXED_KEY_INPUT = (PLAN, "vendor_options", "step-3")
FIXED_KEY = "4606ec296821d46aa572ef748e265184a0eaa62331a356bb7046b80b735dc695"

# Shared signature vector (docs/callbacks.md scheme), also in the JS tests.
VEC_SECRET = "whsec_test"
VEC_TS = "1700000000"
VEC_BODY = '{"type":"sent","event_id":"e1"}'
VEC_SIG = "sha256=eafba932d87fe2de1bed525ca60204d7f576911695df7785a83245e4985ebf5b"

ACCEPTED = {
    "communication_id": "0f8c1e52-7a0b-4c1e-9d3a-5b6c7d8e9f01",
    "status": "queued",
    "decision": {"primary_channel": "whatsapp", "fallback_channels": ["sms", "email"]},
}


class Recorder(BaseHTTPRequestHandler):
    """Records each request and answers what the test queued."""

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        srv = self.server
        with srv.lock:
            srv.requests.append({"method": self.command, "path": self.path,
                                 "headers": self.headers, "raw": raw})
            status, body, ctype = srv.replies.pop(0) if srv.replies else (
                500, {"error": {"code": "internal_error", "message": "no reply queued"}}, "application/json")
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _handle

    def log_message(self, *args):
        pass  # keep the test output readable


class ServerTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        cls.server.daemon_threads = True
        cls.server.lock = threading.Lock()
        cls.server.requests = []
        cls.server.replies = []
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.base_url = "http://127.0.0.1:%d" % cls.server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(5)

    def setUp(self):
        self.server.requests.clear()
        self.server.replies.clear()
        self.client = Client(self.base_url, TOKEN, timeout=5)

    def reply(self, status, body, ctype="application/json"):
        self.server.replies.append((status, body, ctype))

    @property
    def requests(self):
        return self.server.requests


def base_request(**extra):
    req = {"plan_id": PLAN, "client_id": CLIENT, "message_type": "vendor_options", "urgency": "high"}
    req.update(extra)
    return req


class CreateCommunicationTest(ServerTestCase):
    def test_posts_json_with_bearer_token(self):
        self.reply(202, ACCEPTED)
        req = base_request(context={"event_type": "wedding", "event_date": "2027-02-14"},
                           client={"name": "Asha Rao"})
        self.assertEqual(self.client.create_communication(req), ACCEPTED)
        self.assertEqual(len(self.requests), 1)
        r = self.requests[0]
        self.assertEqual(r["method"], "POST")
        self.assertEqual(r["path"], "/v1/communications")
        self.assertEqual(r["headers"]["Authorization"], "Bearer " + TOKEN)
        self.assertTrue(r["headers"]["Content-Type"].startswith("application/json"))
        self.assertEqual(json.loads(r["raw"].decode("utf-8")), req)

    def test_same_step_same_key_other_step_other_key(self):
        for _ in range(4):
            self.reply(202, ACCEPTED)
        self.client.create_communication(base_request(), step="options-1")
        self.client.create_communication(base_request(), step="options-1")
        self.client.create_communication(base_request(), step="options-2")
        self.client.create_communication(base_request(message_type="welcome"), step="options-1")
        keys = [r["headers"]["Idempotency-Key"] for r in self.requests]
        self.assertRegex(keys[0], r"^[0-9a-f]{64}$")
        self.assertEqual(keys[0], keys[1])
        self.assertNotEqual(keys[0], keys[2])
        self.assertNotEqual(keys[0], keys[3])
        self.assertEqual(keys[0], derive_idempotency_key(PLAN, "vendor_options", "options-1"))

    def test_request_step_drives_key_and_is_not_sent(self):
        self.reply(202, ACCEPTED)
        req = base_request(step="step-3")
        self.client.create_communication(req)
        self.assertEqual(self.requests[0]["headers"]["Idempotency-Key"], FIXED_KEY)
        self.assertNotIn("step", json.loads(self.requests[0]["raw"]))
        self.assertIn("step", req)  # the caller's dict is left alone

    def test_without_step(self):
        self.reply(202, ACCEPTED)
        self.client.create_communication(base_request())
        self.assertEqual(self.requests[0]["headers"]["Idempotency-Key"],
                         derive_idempotency_key(PLAN, "vendor_options", ""))
        self.assertEqual(derive_idempotency_key(PLAN, "vendor_options"),
                         derive_idempotency_key(PLAN, "vendor_options", ""))

    def test_explicit_key(self):
        self.reply(202, ACCEPTED)
        self.client.create_communication(base_request(), idempotency_key="plan-5b1d2c3e-vendor-options-1")
        self.assertEqual(self.requests[0]["headers"]["Idempotency-Key"], "plan-5b1d2c3e-vendor-options-1")

    def test_error_mapping(self):
        self.reply(409, {"error": {"code": "idempotency_conflict", "message": "key reused with another body"}})
        with self.assertRaises(CrierError) as cm:
            self.client.create_communication(base_request())
        e = cm.exception
        self.assertEqual((e.status, e.code, e.message), (409, "idempotency_conflict", "key reused with another body"))
        self.assertEqual(str(e), "key reused with another body")

        self.reply(422, {"error": {"code": "unknown_client", "message": "unknown client"}})
        with self.assertRaises(CrierError) as cm:
            self.client.create_communication(base_request())
        self.assertEqual((cm.exception.status, cm.exception.code), (422, "unknown_client"))

        self.reply(401, {"error": {"code": "unauthorized", "message": "missing or unknown token"}})
        with self.assertRaises(CrierError) as cm:
            Client(self.base_url, "bad").get_communication("x")
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))
        self.assertEqual(self.requests[-1]["headers"]["Authorization"], "Bearer bad")

    def test_non_json_error_body(self):
        self.reply(502, "<html>bad gateway</html>", "text/html")
        with self.assertRaises(CrierError) as cm:
            self.client.create_communication(base_request())
        self.assertEqual((cm.exception.status, cm.exception.code), (502, "http_error"))
        self.assertEqual(cm.exception.body, "<html>bad gateway</html>")


class ReviewTest(ServerTestCase):
    def test_list_sends_filters_by_their_api_names(self):
        c = Client(self.base_url, TOKEN)
        self.reply(200, {"communications": []})
        self.reply(200, {"communications": []})
        c.list_communications(status="failed", review="open", plan_id=PLAN, limit=5)
        self.assertEqual(self.requests[0]["path"],
                         "/v1/communications?status=failed&review=open&plan_id=%s&limit=5" % PLAN)
        c.list_communications()
        self.assertEqual(self.requests[1]["path"], "/v1/communications")
        with self.assertRaises(TypeError):
            c.list_communications(plan=PLAN)
        self.assertEqual(len(self.requests), 2)

    def test_retry_and_resolve(self):
        c = Client(self.base_url, TOKEN)
        self.reply(202, {"communication_id": "c1", "status": "queued", "decision": {}})
        self.reply(200, {"communication_id": "c1", "review": "resolved"})
        self.reply(409, {"error": {"code": "not_in_review", "message": "not waiting"}})
        self.assertEqual(c.retry_communication("c1")["status"], "queued")
        self.assertEqual(self.requests[0]["method"], "POST")
        self.assertEqual(self.requests[0]["path"], "/v1/communications/c1/retry")
        self.assertEqual(self.requests[0]["raw"], b"")
        self.assertEqual(c.resolve_communication("c1", "called the client")["review"], "resolved")
        self.assertEqual(json.loads(self.requests[1]["raw"]), {"note": "called the client"})
        with self.assertRaises(CrierError) as e:
            c.resolve_communication("c/1")
        self.assertEqual((e.exception.status, e.exception.code), (409, "not_in_review"))
        self.assertEqual(self.requests[2]["path"], "/v1/communications/c%2F1/resolve")
        self.assertEqual(json.loads(self.requests[2]["raw"]), {})


class ReadTest(ServerTestCase):
    def test_get_communication(self):
        comm = dict(ACCEPTED, events=[])
        self.reply(200, comm)
        self.reply(404, {"error": {"code": "not_found", "message": "no such communication"}})
        client = Client(self.base_url + "/", TOKEN)
        self.assertEqual(client.get_communication(ACCEPTED["communication_id"]), comm)
        r = self.requests[0]
        self.assertEqual(r["method"], "GET")
        self.assertEqual(r["path"], "/v1/communications/" + ACCEPTED["communication_id"])
        self.assertIsNone(r["headers"].get("Idempotency-Key"))
        with self.assertRaises(CrierError) as cm:
            client.get_communication("a/b")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "not_found"))
        self.assertEqual(self.requests[1]["path"], "/v1/communications/a%2Fb")

    def test_list_for_plan(self):
        page = {"plan_id": PLAN, "communications": [
            {"communication_id": "c1", "status": "pending"},
            {"communication_id": "c2", "status": "sent"},
            {"communication_id": "c3", "status": "sent"},
        ]}
        for _ in range(3):
            self.reply(200, page)
        self.assertEqual(len(self.client.list_for_plan(PLAN)["communications"]), 3)
        self.assertEqual(self.requests[0]["path"], "/v1/plans/%s/communications" % PLAN)
        sent = self.client.list_for_plan(PLAN, status="sent", limit=50)
        self.assertEqual(self.requests[1]["path"], "/v1/plans/%s/communications?limit=50" % PLAN)
        self.assertEqual([c["communication_id"] for c in sent["communications"]], ["c2", "c3"])
        some = self.client.list_for_plan(PLAN, status=["pending", "sent"])
        self.assertEqual(len(some["communications"]), 3)


class IdempotencyKeyTest(unittest.TestCase):
    def test_matches_value_shared_with_js_client(self):
        self.assertEqual(derive_idempotency_key(*FIXED_KEY_INPUT), FIXED_KEY)


SECRET = "s3cret-callback-key"
BODY = json.dumps({"event_id": "e-1", "seq": 7, "type": "delivered", "status": "delivered"})
NOW = 1760000000


def sign(ts, raw, key=SECRET):
    """Signed exactly as docs/callbacks.md says: HMAC-SHA256(secret, ts + "." + body)."""
    raw = raw.encode() if isinstance(raw, str) else raw
    return "sha256=" + hmac.new(key.encode(), str(ts).encode() + b"." + raw, hashlib.sha256).hexdigest()


def headers_for(ts, raw=BODY, key=SECRET):
    return {
        "Content-Type": "application/json",
        "X-Crier-Timestamp": str(ts),
        "X-Crier-Signature": sign(ts, raw, key),
        "X-Crier-Callback-Id": "7d0c8e0a-0000-4000-8000-000000000001",
        "X-Crier-Event": "delivered",
    }


class VerifyCallbackTest(unittest.TestCase):
    def test_fixed_vector(self):
        h = {"X-Crier-Timestamp": VEC_TS, "X-Crier-Signature": VEC_SIG}
        self.assertTrue(verify_callback(h, VEC_BODY, VEC_SECRET, now=int(VEC_TS)))
        self.assertEqual(sign(VEC_TS, VEC_BODY, VEC_SECRET), VEC_SIG)

    def test_good_signature_in_every_form(self):
        h = headers_for(NOW)
        self.assertTrue(verify_callback(h, BODY, SECRET, now=NOW))
        self.assertTrue(verify_callback(h, BODY.encode(), SECRET.encode(), now=NOW))
        self.assertTrue(verify_callback({k.lower(): v for k, v in h.items()}, bytearray(BODY.encode()), SECRET, now=NOW))
        self.assertTrue(verify_callback(list(h.items()), BODY, SECRET, now=NOW))
        msg = http.client.HTTPMessage()
        for k, v in h.items():
            msg[k] = v
        self.assertTrue(verify_callback(msg, BODY, SECRET, now=NOW))
        self.assertEqual(crier_client.DEFAULT_TOLERANCE_SECONDS, 300)

    def test_tampered_body(self):
        h = headers_for(NOW)
        self.assertFalse(verify_callback(h, BODY.replace("delivered", "failed"), SECRET, now=NOW))
        self.assertFalse(verify_callback(h, BODY + " ", SECRET, now=NOW))

    def test_wrong_secret(self):
        self.assertFalse(verify_callback(headers_for(NOW, key="another-secret"), BODY, SECRET, now=NOW))

    def test_stale_and_future_timestamps(self):
        self.assertFalse(verify_callback(headers_for(NOW - 301), BODY, SECRET, now=NOW))
        self.assertFalse(verify_callback(headers_for(NOW + 301), BODY, SECRET, now=NOW))
        self.assertTrue(verify_callback(headers_for(NOW - 300), BODY, SECRET, now=NOW))
        self.assertTrue(verify_callback(headers_for(NOW - 301), BODY, SECRET, tolerance_seconds=600, now=NOW))
        # Without `now`, the current clock decides.
        self.assertTrue(verify_callback(headers_for(int(time.time())), BODY, SECRET))
        self.assertFalse(verify_callback(headers_for(NOW), BODY, SECRET))

    def test_timestamp_changed_after_signing(self):
        h = headers_for(NOW)
        h["X-Crier-Timestamp"] = str(NOW + 1)
        self.assertFalse(verify_callback(h, BODY, SECRET, now=NOW))

    def test_missing_malformed_or_repeated_headers(self):
        h = headers_for(NOW)
        for name in ("X-Crier-Signature", "X-Crier-Timestamp"):
            partial = {k: v for k, v in h.items() if k != name}
            self.assertFalse(verify_callback(partial, BODY, SECRET, now=NOW), name)
        self.assertFalse(verify_callback({}, BODY, SECRET, now=NOW))
        for ts in ("%d.0" % NOW, "-%d" % NOW, "%d\n" % NOW, " %d" % NOW, "\u00b2"):
            self.assertFalse(verify_callback(dict(h, **{"X-Crier-Timestamp": ts}), BODY, SECRET, now=NOW), repr(ts))
        sig = h["X-Crier-Signature"]
        self.assertFalse(verify_callback(dict(h, **{"X-Crier-Signature": sig[len("sha256="):]}), BODY, SECRET, now=NOW))
        self.assertFalse(verify_callback(dict(h, **{"X-Crier-Signature": sig.upper()}), BODY, SECRET, now=NOW))
        repeated = list(h.items()) + [("x-crier-signature", sig)]
        self.assertFalse(verify_callback(repeated, BODY, SECRET, now=NOW))

    def test_refuses_parsed_body_and_empty_secret(self):
        with self.assertRaises(TypeError):
            verify_callback(headers_for(NOW), json.loads(BODY), SECRET, now=NOW)
        with self.assertRaises(ValueError):
            verify_callback(headers_for(NOW), BODY, "", now=NOW)

    def test_parse_callback(self):
        cb = parse_callback(headers_for(NOW), BODY, SECRET, now=NOW)
        self.assertEqual(cb["callback_id"], "7d0c8e0a-0000-4000-8000-000000000001")
        self.assertEqual(cb["event"], "delivered")
        self.assertEqual(cb["timestamp"], NOW)
        self.assertEqual(cb["payload"]["seq"], 7)
        with self.assertRaises(CallbackVerificationError):
            parse_callback(headers_for(NOW), BODY + "x", SECRET, now=NOW)


class RealCallbackReceiverTest(unittest.TestCase):
    """verify_callback on the headers and body a real http.server receives."""

    def test_receives_and_verifies(self):
        results = []

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_callback(self.headers, raw, SECRET)
                results.append(ok)
                self.send_response(204 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            for body, want in ((BODY, 204), (BODY + "x", 401)):
                conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=5)
                conn.request("POST", "/cb", body=body.encode(), headers=headers_for(int(time.time())))
                self.assertEqual(conn.getresponse().status, want)
                conn.close()
        finally:
            srv.shutdown()
            srv.server_close()
            t.join(5)
        self.assertEqual(results, [True, False])


if __name__ == "__main__":
    unittest.main()
