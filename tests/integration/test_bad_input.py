"""Bad requests get the documented status and error code, a body of exactly
{"error":{"code","message"}}, and change nothing: after each one the row
counts of communications, clients, delivery_events and
communication_attachments are what they were before."""
import http.client
import io
import json
import os
import select
import shutil
import socket
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MIB = 1024 * 1024

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)
    return cond


def row_counts(db):
    rows = harness.psql(db, "SELECT (SELECT count(*) FROM communications),"
                            " (SELECT count(*) FROM clients),"
                            " (SELECT count(*) FROM delivery_events),"
                            " (SELECT count(*) FROM communication_attachments)")
    return dict(zip(("communications", "clients", "delivery_events", "attachments"),
                    (int(x) for x in rows[0])))


class _Canned:
    """Lets http.client parse a response already read off a socket."""

    def __init__(self, data):
        self._data = data

    def makefile(self, *_a, **_k):
        return io.BytesIO(self._data)


def raw_exchange(port, head, chunks, timeout=20):
    """Sends head, then the body chunks until the server answers or stops
    reading (it may refuse an oversized body before it is all sent), and
    returns (status, parsed JSON or text)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data = b""
    try:
        s.sendall(head)
        for chunk in chunks:
            readable, _, _ = select.select([s], [], [], 0)
            if readable:
                break
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                break
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    break
                data += got
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        s.close()
    if not data:
        return None, "no answer"
    resp = http.client.HTTPResponse(_Canned(data))
    resp.begin()
    try:
        payload = resp.read()
    except http.client.IncompleteRead as e:
        payload = e.partial
    text = payload.decode("utf-8", "replace")
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, text


def oversized_with_length(port, token):
    size = int(1.1 * MIB)
    body = b'{"plan_id":"' + b"a" * (size - 15) + b'"}'
    head = ("POST /v1/communications HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n" % (port, token, len(body))).encode()
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    return raw_exchange(port, head, chunks)


def oversized_chunked(port, token):
    piece = b"a" * 65536
    pieces = [b'{"plan_id":"']
    total = len(pieces[0])
    while total < int(1.1 * MIB):
        pieces.append(piece)
        total += len(piece)
    pieces.append(b'"}')
    head = ("POST /v1/communications HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % (port, token)).encode()
    chunks = [b"%x\r\n" % len(p) + p + b"\r\n" for p in pieces] + [b"0\r\n\r\n"]
    return raw_exchange(port, head, chunks)


def body(**changes):
    """A valid request for a new client, with changes applied (a value of
    None removes the key; "client.x" reaches into the client object)."""
    b = harness.comm_body(1, name="Bad Input", email="bad.input@example.com",
                          message_type="welcome", urgency="critical")
    for k, v in changes.items():
        target, key = (b["client"], k.split(".", 1)[1]) if k.startswith("client.") else (b, k)
        if v is None:
            target.pop(key, None)
        else:
            target[key] = v
    return b


def as_bytes(obj):
    return json.dumps(obj).encode("utf-8")


def nested(depth):
    return json.loads("[" * depth + "]" * depth)


def main():
    tmp = tempfile.mkdtemp(prefix="crier-bad-")
    db = harness.new_database("bad_input")
    crier = None
    try:
        crier = harness.Crier(db, tmp)
        # One good communication first, so the tables are not trivially empty
        # and a known communication exists; wait until it stops changing.
        st, _h, js = crier.post_comm(body())
        check(st == 202, "the good request is accepted (%s %r)" % (st, js))
        known = js["communication_id"]
        crier.wait_final([known], timeout=30)

        JSON = {"Content-Type": "application/json"}
        bad_utf8 = as_bytes(body()).replace(b"Bad Input", b"Bad \xff\xfe Input")
        overlong = as_bytes(body()).replace(b"Bad Input", b"Bad \xc0\xaf Input")
        surrogate = as_bytes(body()).replace(b"Bad Input", b"Bad \xed\xa0\x80 Input")
        # (name, request function, status, code, a value the message must not echo)
        cases = [
            ("malformed JSON",
             lambda: crier.request("POST", "/v1/communications", raw=b'{"plan_id": "x", ',
                                   headers=JSON), 400, "invalid_json", None),
            ("trailing garbage after the JSON",
             lambda: crier.request("POST", "/v1/communications", raw=as_bytes(body()) + b" }",
                                   headers=JSON), 400, "invalid_json", None),
            ("invalid UTF-8 bytes",
             lambda: crier.request("POST", "/v1/communications", raw=bad_utf8, headers=JSON),
             400, "invalid_utf8", None),
            ("overlong UTF-8",
             lambda: crier.request("POST", "/v1/communications", raw=overlong, headers=JSON),
             400, "invalid_utf8", None),
            ("UTF-8 encoded surrogate",
             lambda: crier.request("POST", "/v1/communications", raw=surrogate, headers=JSON),
             400, "invalid_utf8", None),
            ("nesting depth 100",
             lambda: crier.post_comm(body(context={"deep": nested(100)})),
             400, "json_too_deep", None),
            ("a 10,000-element array in context",
             lambda: crier.post_comm(body(context={"vendor_combinations": list(range(10000))})),
             422, "invalid_field", None),
            ("unknown message_type",
             lambda: crier.post_comm(body(message_type="birthday_card")),
             422, "invalid_field", None),
            ("unknown urgency",
             lambda: crier.post_comm(body(urgency="whenever")), 422, "invalid_field", None),
            ("unknown preferred_channel",
             lambda: crier.post_comm(body(preferred_channel="pigeon")), 422, "invalid_field", None),
            ("bad email",
             lambda: crier.post_comm(body(**{"client.email": "asha.at.example.com"})),
             422, "invalid_field", "asha.at.example.com"),
            ("email with a header injection",
             lambda: crier.post_comm(body(**{"client.email": "asha@example.com\r\nBcc: x@evil.test"})),
             422, "invalid_field", "evil.test"),
            ("non-E.164 phone",
             lambda: crier.post_comm(body(**{"client.phone": "0044 20 7946 0958"})),
             422, "invalid_field", "7946"),
            ("unknown timezone",
             lambda: crier.post_comm(body(**{"client.timezone": "Mars/Olympus_Mons"})),
             422, "invalid_field", None),
            ("timezone that walks out of the zone folder",
             lambda: crier.post_comm(body(**{"client.timezone": "../../etc/passwd"})),
             422, "invalid_field", None),
            ("a javascript: link in context",
             lambda: crier.post_comm(body(context={"event_type": "wedding",
                                                   "plan_url": "javascript:alert(document.cookie)"})),
             422, "invalid_field", "alert"),
            ("a data: link inside a list in context",
             lambda: crier.post_comm(body(message_type="vendor_options", context={
                 "event_type": "wedding", "options_url": "https://app.planiva.example/o",
                 "vendor_combinations": [
                     {"name": "A", "total_cost": "1", "vendors": [],
                      "select_url": "https://app.planiva.example/o/1"},
                     {"name": "B", "total_cost": "2", "vendors": [],
                      "select_url": "data:text/html;base64,PHNjcmlwdD4="}]})),
             422, "invalid_field", "PHNjcmlwdD4"),
            ("client name over 200 characters",
             lambda: crier.post_comm(body(**{"client.name": "N" * 201})),
             422, "invalid_field", None),
            ("Content-Length over 1 MiB",
             lambda: (lambda r: (r[0], {}, r[1]))(oversized_with_length(crier.port, harness.TOKEN_WORKFLOW)),
             413, "body_too_large", None),
            ("chunked body over 1 MiB",
             lambda: (lambda r: (r[0], {}, r[1]))(oversized_chunked(crier.port, harness.TOKEN_WORKFLOW)),
             413, "body_too_large", None),
            ("no token",
             lambda: crier.post_comm(body(), token=None), 401, "unauthorized", None),
            ("wrong token",
             lambda: crier.post_comm(body(), token="not-a-known-token-0000000000000000"),
             401, "unauthorized", None),
            ("wrong token on GET",
             lambda: crier.request("GET", "/v1/communications/" + known, token="wrong"),
             401, "unauthorized", None),
            ("operator token on POST",
             lambda: crier.post_comm(body(), token=harness.TOKEN_OPERATOR), 403, "forbidden", None),
            ("missing plan_id",
             lambda: crier.post_comm(body(plan_id=None)), 422, "invalid_field", None),
            ("non-UUID client_id",
             lambda: crier.post_comm(body(client_id="client-42")), 422, "invalid_field", None),
            ("unknown client without a client object",
             lambda: crier.post_comm(body(client=None)), 422, "unknown_client", None),
            ("wrong Content-Type",
             lambda: crier.request("POST", "/v1/communications", raw=as_bytes(body()),
                                   headers={"Content-Type": "text/plain"}),
             415, "unsupported_media_type", None),
            ("invalid base64 attachment",
             lambda: crier.post_comm(body(attachments=[{
                 "filename": "blueprint.pdf", "content_type": "application/pdf",
                 "content_base64": "JVBERi0x!!!not base64***"}])), 422, "invalid_field", None),
            ("Idempotency-Key over 200 characters",
             lambda: crier.post_comm(body(), key="k" * 201), 422, "invalid_field", None),
            ("GET of a non-UUID id",
             lambda: crier.request("GET", "/v1/communications/not-a-uuid"),
             422, "invalid_field", None),
            ("GET of an unknown id",
             lambda: crier.request("GET", "/v1/communications/" + str(uuid.uuid4())),
             404, "not_found", None),
            ("plan list with limit 0",
             lambda: crier.request("GET", "/v1/plans/%s/communications?limit=0" % uuid.uuid4()),
             422, "invalid_field", None),
            ("plan list with limit 501",
             lambda: crier.request("GET", "/v1/plans/%s/communications?limit=501" % uuid.uuid4()),
             422, "invalid_field", None),
            ("DELETE on the collection",
             lambda: crier.request("DELETE", "/v1/communications"), 405, "method_not_allowed", None),
        ]

        for name, send, want_status, want_code, secret in cases:
            before = row_counts(db)
            try:
                status, _h, answer = send()
            except Exception as e:  # a dropped connection is a wrong answer too
                status, answer = None, "exception: %r" % (e,)
            after = row_counts(db)
            check(status == want_status, "%s: status %s, expected %d (%r)"
                  % (name, status, want_status, answer))
            shaped = (isinstance(answer, dict) and set(answer) == {"error"}
                      and isinstance(answer["error"], dict)
                      and set(answer["error"]) == {"code", "message"}
                      and isinstance(answer["error"]["message"], str)
                      and answer["error"]["message"] != "")
            check(shaped, "%s: body is {\"error\":{\"code\",\"message\"}} (%r)" % (name, answer))
            code = answer["error"].get("code") if shaped else None
            check(code == want_code, "%s: code %r, expected %r" % (name, code, want_code))
            if secret and shaped:
                check(secret not in answer["error"]["message"],
                      "%s: the message does not echo the value" % name)
            check(after == before, "%s: rows unchanged (%r -> %r)" % (name, before, after))

        # A refused link is named by its place in context, with the rule.
        before = row_counts(db)
        st, _h, js = crier.post_comm(body(context={"options": [
            {"select_url": "https://app.planiva.example/o/1"},
            {"select_url": " JAVASCRIPT:alert(1)"}]}))
        check(st == 422 and js == {"error": {
            "code": "invalid_field",
            "message": "context.options[1].select_url: only http, https and mailto URLs are accepted"}},
            "a bad link names its field (%s %r)" % (st, js))
        check(row_counts(db) == before, "a bad link changes nothing")

        # The server survived all of it and still takes good requests.
        st, _h, js = crier.request("GET", "/healthz", token=None)
        check(st == 200, "healthy after the bad input (%s)" % st)
        st, _h, js = crier.post_comm(body())
        check(st == 202, "a good request is still accepted (%s %r)" % (st, js))
    finally:
        if crier is not None:
            try:
                crier.stop()
            except Exception as e:
                check(False, "crier stopped cleanly: %s" % e)
        harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
