"""One client cannot take the HTTP server.

Connections per client address are capped (CRIER_HTTP_PER_IP_LIMIT): past
the cap a new connection from that address is closed unserved, and served
again once one of its others is released. A request must arrive whole
within CRIER_HTTP_REQUEST_TIMEOUT_S however steadily its bytes trickle in
(libmicrohttpd's own timeout restarts on every byte): a request line,
headers or body dripped one byte at a time is cut off after the limit,
logged without the client's data, never handled, while other connections
are answered meanwhile. On a keep-alive connection the clock starts again
with each request, and an idle connection is closed after the limit."""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_IP = 8
BEYOND = 4          # connections tried past the cap
REQUEST_S = 2       # the deadline of the drip tests
DRIP_S = 0.3        # one byte this often
# The server's clock starts after the client's connect, so it cannot cut a
# connection sooner than the limit; a little slack for clock granularity.
CLOSE_MIN_S = REQUEST_S - 0.2
# Limit + the sweeper's 0.25 s + whatever a loaded machine adds.
CLOSE_MAX_S = REQUEST_S + 6.0
# Each drip loop ends by this time whatever the server does.
DRIP_BOUND_S = CLOSE_MAX_S + 2.0
# Dripped in a header value and a body: it must never reach the log.
MARK = "dripmark7f3a"

_db = None


def database():
    global _db
    if _db is None:
        _db = h.new_database("http_limits")
    return _db


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def get_request(port, path="/healthz"):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, port)).encode()


def read_answer(s, timeout=5.0):
    """Reads one HTTP answer (headers and a Content-Length body) off s.
    Returns (status, body bytes), or None when the server closed or reset
    the connection before a whole answer."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(data) >= head_end + 4 + length:
                status = int(head.split(" ", 2)[1])
                return status, data[head_end + 4:head_end + 4 + length]
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            got = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return None
        if not got:
            return None
        data += got
    return None


def exchange(s, request):
    """Sends request on s and reads the answer; None when the connection is
    refused, closed or reset instead."""
    try:
        s.sendall(request)
    except (BrokenPipeError, ConnectionResetError):
        return None
    return read_answer(s)


def closed_within(s, timeout):
    """Waits up to timeout for the server to close s; returns the seconds
    it took, or None when it stayed open (data arriving counts as open)."""
    start = time.monotonic()
    s.settimeout(timeout)
    try:
        got = s.recv(4096)
    except ConnectionResetError:
        return time.monotonic() - start
    except socket.timeout:
        return None
    return time.monotonic() - start if not got else None


def probe_status(crier):
    """GET /healthz on a fresh connection: its status, or None when the
    connection is refused."""
    s = connect(crier.port)
    try:
        r = exchange(s, get_request(crier.port))
    finally:
        s.close()
    return r[0] if r else None


def drip(s, data, t0, probe):
    """Sends data one byte every DRIP_S until the server closes s, data runs
    out or DRIP_BOUND_S has passed since t0. Once 1 s has passed, calls
    probe() once (a normal request on another connection). Returns (seconds
    from t0 until the server closed s or None, the probe's result)."""
    probed = None
    i = 0
    while time.monotonic() - t0 < DRIP_BOUND_S:
        s.settimeout(DRIP_S)
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            return time.monotonic() - t0, probed
        except socket.timeout:
            got = None
        if got == b"":
            return time.monotonic() - t0, probed
        if got:
            raise AssertionError("the server answered a dripped request: %r" % got[:200])
        if probed is None and time.monotonic() - t0 >= 1.0:
            probed = probe()
        if i < len(data):
            try:
                s.sendall(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0, probed
            i += 1
    return None, probed


def slow_events(crier, phase, count=1):
    """The request_too_slow log lines of phase, once count of them are
    written (the sweeper logs just after it closes)."""
    def found():
        ev = [e for e in h.log_events(crier.log(), "request_too_slow") if e.get("phase") == phase]
        return ev if len(ev) >= count else None
    return h.wait_until(found, timeout=5, what="%d request_too_slow (%s) line(s)" % (count, phase))


def assert_cut(closed_at, what):
    assert closed_at is not None, "%s: still open after %.0f s" % (what, DRIP_BOUND_S)
    assert CLOSE_MIN_S <= closed_at <= CLOSE_MAX_S, \
        "%s: closed after %.2f s, want %.1f..%.1f s" % (what, closed_at, CLOSE_MIN_S, CLOSE_MAX_S)
    print("  %s: closed after %.2f s (limit %d s)" % (what, closed_at, REQUEST_S), flush=True)


def test_per_ip_limit(tmp):
    env = {"CRIER_HTTP_PER_IP_LIMIT": str(PER_IP), "CRIER_WORKERS": "0",
           # the held connections idle through the test: not this test's limit
           "CRIER_HTTP_REQUEST_TIMEOUT_S": "300"}
    with h.Crier(database(), tmp, env=env) as crier:
        held = []
        try:
            for i in range(PER_IP):
                # The harness's health checks may still be counted for a
                # moment while the server tidies them up: retry briefly.
                def admitted():
                    s = connect(crier.port)
                    r = exchange(s, get_request(crier.port))
                    if r and r[0] == 200:
                        return s
                    s.close()
                    return None
                held.append(h.wait_until(admitted, timeout=5, interval=0.1,
                                         what="connection %d of %d served" % (i + 1, PER_IP)))
            extra = [connect(crier.port) for _ in range(BEYOND)]
            try:
                for i, s in enumerate(extra):
                    r = exchange(s, get_request(crier.port))
                    assert r is None, "connection %d past the cap of %d was served: %r" % (
                        i + 1, PER_IP, r)
            finally:
                for s in extra:
                    s.close()
            assert probe_status(crier) is None, "a new connection past the cap was served"
            # the held connections are served still (keep-alive)
            for i, s in enumerate(held):
                r = exchange(s, get_request(crier.port))
                assert r and r[0] == 200, "held connection %d: %r" % (i + 1, r)
            for s in held[:2]:
                s.close()
            del held[:2]
            status = h.wait_until(lambda: probe_status(crier), timeout=10, interval=0.1,
                                  what="/healthz once two connections are released")
            assert status == 200, status
        finally:
            for s in held:
                s.close()


def test_slow_request_line(tmp):
    env = {"CRIER_HTTP_REQUEST_TIMEOUT_S": str(REQUEST_S), "CRIER_WORKERS": "0"}
    with h.Crier(database(), tmp, env=env) as crier:
        s = connect(crier.port)
        try:
            t0 = time.monotonic()
            line = ("GET /healthz?%s HTTP/1.1\r\n" % ("a" * 60)).encode()
            closed_at, probed = drip(s, line, t0, lambda: probe_status(crier))
        finally:
            s.close()
        assert_cut(closed_at, "dripped request line")
        assert probed == 200, "a normal request meanwhile: %r" % probed
        slow_events(crier, "request_line")


def test_slow_headers(tmp):
    env = {"CRIER_HTTP_REQUEST_TIMEOUT_S": str(REQUEST_S), "CRIER_WORKERS": "0"}
    with h.Crier(database(), tmp, env=env) as crier:
        s = connect(crier.port)
        try:
            t0 = time.monotonic()
            # the request line at once, so the headers are what is timed
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            # more bytes than DRIP_BOUND_S lets through, never the blank line
            headers = ("Host: 127.0.0.1:%d\r\nX-Drip: %s%s\r\n"
                       % (crier.port, MARK, "d" * 40)).encode()
            closed_at, probed = drip(s, headers, t0, lambda: probe_status(crier))
        finally:
            s.close()
        assert_cut(closed_at, "dripped headers")
        assert probed == 200, "a normal request meanwhile: %r" % probed
        ev = slow_events(crier, "headers")
        assert ev[0].get("level") == "WARNING", ev[0]
        assert int(ev[0]["limit_s"]) == REQUEST_S, ev[0]
        assert REQUEST_S * 1000 <= int(ev[0]["waited_ms"]) <= CLOSE_MAX_S * 1000, ev[0]
        assert MARK not in crier.log(), "the client's data reached the log"


def test_slow_body(tmp):
    env = {"CRIER_HTTP_REQUEST_TIMEOUT_S": str(REQUEST_S), "CRIER_WORKERS": "0"}
    db = database()
    with h.Crier(db, tmp, env=env) as crier:
        before = int(h.psql(db, "SELECT count(*) FROM communications")[0][0])
        # A valid request, which would be accepted if it arrived in time.
        body = h.comm_body(1, name="Drip " + MARK)
        raw = json.dumps(body).encode("utf-8")
        head = ("POST /v1/communications HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (crier.port, h.TOKEN_WORKFLOW, len(raw))).encode()
        assert len(raw) * DRIP_S > DRIP_BOUND_S, "the body must outlast the drip loop"

        def normal_post():
            st, _, js = crier.post_comm(h.comm_body(2))
            return st if st == 202 else (st, js)

        s = connect(crier.port)
        try:
            t0 = time.monotonic()
            s.sendall(head)
            closed_at, probed = drip(s, raw, t0, normal_post)
        finally:
            s.close()
        assert_cut(closed_at, "dripped body")
        assert probed == 202, "a normal POST meanwhile: %r" % (probed,)
        ev = slow_events(crier, "body")
        assert ev[0].get("level") == "WARNING", ev[0]
        # only the normal request was written: the dripped one never reached the intake
        after = int(h.psql(db, "SELECT count(*) FROM communications")[0][0])
        assert after == before + 1, "communications %d -> %d" % (before, after)
        assert MARK not in crier.log(), "the client's data reached the log"


def test_keep_alive(tmp):
    limit = 3  # wider than the drip tests: this one checks a request is NOT cut
    env = {"CRIER_HTTP_REQUEST_TIMEOUT_S": str(limit), "CRIER_WORKERS": "0"}
    with h.Crier(database(), tmp, env=env) as crier:
        s = connect(crier.port)
        try:
            r = exchange(s, get_request(crier.port))
            assert r and r[0] == 200, r
            # Idle for most of the limit, then a request whose headers take
            # most of it again: more than the limit since the answer, less
            # since its request line, so it is served.
            time.sleep(limit - 1.0)
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            rest = b"Host: 127.0.0.1\r\n\r\n"
            t_line = time.monotonic()
            sent = 0
            while sent < len(rest) - 1 and time.monotonic() - t_line < limit - 1.0:
                s.sendall(rest[sent:sent + 1])
                sent += 1
                time.sleep(DRIP_S)
            s.sendall(rest[sent:])
            r = read_answer(s)
            assert r and r[0] == 200, "a slow request within the limit on a kept-alive " \
                                      "connection: %r" % (r,)
            # Then idle: the next request's clock started with that answer.
            took = closed_within(s, limit + 6.0)
            assert took is not None, "an idle kept-alive connection was never closed"
            assert limit - 0.2 <= took <= limit + 6.0, "idle connection closed after %.2f s" % took
            print("  idle kept-alive connection: closed after %.2f s (limit %d s)"
                  % (took, limit), flush=True)
        finally:
            s.close()
        ev = slow_events(crier, "request_line")
        assert ev[0].get("level") == "INFO", ev[0]


def test_bad_settings(tmp):
    for key, value, want in (("CRIER_HTTP_PER_IP_LIMIT", "0", "from 1 to 2048"),
                             ("CRIER_HTTP_PER_IP_LIMIT", "lots", "from 1 to 2048"),
                             ("CRIER_HTTP_REQUEST_TIMEOUT_S", "0", "from 1 to 3600"),
                             ("CRIER_HTTP_REQUEST_TIMEOUT_S", "3601", "from 1 to 3600")):
        proc = subprocess.run([h.crier_bin(), "serve"], cwd=tmp, capture_output=True, text=True,
                              timeout=30,
                              env=h.base_env({"CRIER_DATABASE_URL": database(),
                                              "CRIER_LISTEN": "127.0.0.1:%d" % h.free_port(),
                                              key: value}))
        assert proc.returncode == 2, "%s=%s: exit %d\n%s" % (key, value, proc.returncode,
                                                              proc.stderr)
        assert key in proc.stderr and want in proc.stderr, "%s=%s: %s" % (key, value, proc.stderr)


h.run([test_per_ip_limit, test_slow_request_line, test_slow_headers, test_slow_body,
       test_keep_alive, test_bad_settings])
