"""Routing as a client sees it: a path crier does not serve answers 404, a
method a path does not support answers 405 with an Allow header naming the
methods it does, both as a JSON error and before any token is asked for;
path parameters reach their handler; and each answer is counted under its
route in GET /metrics."""
import os
import re
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def is_error(body, code):
    return (isinstance(body, dict) and set(body) == {"error"}
            and isinstance(body["error"], dict)
            and set(body["error"]) == {"code", "message"}
            and body["error"]["code"] == code
            and isinstance(body["error"]["message"], str) and body["error"]["message"] != "")


def test_unknown_path_is_404(tmp):
    db = h.new_database("routes")
    with h.Crier(db, tmp) as crier:
        for path in ["/nope", "/v1", "/v1/communication", "/healthz/", "//healthz", "/HEALTHZ",
                     "/v1/communications/%s/extra" % uuid.uuid4(),
                     "/v1/plans/%s" % uuid.uuid4(), "/webhooks/twilio"]:
            for token in (None, h.TOKEN_ADMIN):
                st, hdrs, body = crier.request("GET", path, token=token)
                assert st == 404, (path, st, body)
                assert hdrs.get("content-type") == "application/json", (path, hdrs)
                assert is_error(body, "not_found"), (path, body)
                assert "allow" not in hdrs, (path, hdrs)


def test_wrong_method_is_405_with_allow(tmp):
    db = h.new_database("routes")
    cases = [
        ("DELETE", "/v1/communications", "POST, GET, HEAD"),
        ("GET", "/v1/communications/%s/retry" % uuid.uuid4(), "POST"),
        ("PUT", "/healthz", "GET, HEAD"),
        ("POST", "/readyz", "GET, HEAD"),
        ("POST", "/v1/communications/%s" % uuid.uuid4(), "GET, HEAD"),
        ("DELETE", "/v1/plans/%s/communications" % uuid.uuid4(), "GET, HEAD"),
        ("PUT", "/v1/rules", "GET, HEAD"),
        ("GET", "/v1/rules/dry-run", "POST"),
        ("GET", "/webhooks/twilio/status", "POST"),
        ("PUT", "/webhooks/whatsapp", "GET, HEAD, POST"),
    ]
    with h.Crier(db, tmp) as crier:
        for method, path, allow in cases:
            # no token: the method is refused before authentication
            st, hdrs, body = crier.request(method, path, token=None)
            assert st == 405, (method, path, st, body)
            assert hdrs.get("allow") == allow, (method, path, hdrs.get("allow"), allow)
            assert hdrs.get("content-type") == "application/json", (method, path, hdrs)
            assert is_error(body, "method_not_allowed"), (method, path, body)
        rows = h.psql(db, "SELECT count(*) FROM communications")
        assert rows == [["0"]], rows


def test_methods_and_params_reach_handlers(tmp):
    db = h.new_database("routes")
    with h.Crier(db, tmp) as crier:
        # HEAD is answered wherever GET is, without a body
        st, _, body = crier.request("HEAD", "/healthz", token=None)
        assert st == 200 and body == "", (st, body)
        # an empty {id} segment reaches the handler, which names the field
        st, _, body = crier.request("GET", "/v1/communications/")
        assert st == 422 and is_error(body, "invalid_field"), (st, body)
        assert body["error"]["message"].startswith("id:"), body
        st, _, body = crier.request("GET", "/v1/plans//communications")
        assert st == 422 and body["error"]["message"].startswith("plan_id:"), (st, body)
        # a real id and plan id reach theirs, upper case or not
        req = h.comm_body(1, message_type="welcome")
        st, _, accepted = crier.post_comm(req)
        assert st == 202, (st, accepted)
        cid = accepted["communication_id"]
        st, _, got = crier.get_comm(cid.upper())
        assert st == 200 and got.get("id", got.get("communication_id")) == cid, (st, got)
        st, _, listed = crier.request("GET", "/v1/plans/%s/communications?limit=5"
                                      % req["plan_id"])
        assert st == 200, (st, listed)
        assert cid in repr(listed), listed


def metric(text, route, code):
    m = re.search(r'^crier_http_requests_total\{route="%s",code="%s"\} (\d+)$'
                  % (re.escape(route), code), text, re.M)
    return int(m.group(1)) if m else 0


def test_refusals_are_counted_by_route(tmp):
    db = h.new_database("routes")
    with h.Crier(db, tmp) as crier:
        for _ in range(3):
            crier.request("GET", "/no-such-route", token=None)
        for _ in range(2):
            crier.request("PUT", "/healthz", token=None)
        crier.request("PUT", "/webhooks/whatsapp", token=None)
        st, _, text = crier.request("GET", "/metrics", token=None)
        assert st == 200, st
        assert metric(text, "other", "4xx") == 3, text
        assert metric(text, "/healthz", "4xx") == 2, text
        assert metric(text, "/webhooks/whatsapp", "4xx") == 1, text


h.run([test_unknown_path_is_404, test_wrong_method_is_405_with_allow,
       test_methods_and_params_reach_handlers, test_refusals_are_counted_by_route])
