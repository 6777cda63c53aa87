"""The console's login, sessions and CSRF, against the real binary:

* without a session a console page sends the browser to the login form
  (303) and an API route answers 401; a workflow token cannot log in (403),
  an unknown one gets 401, and neither makes a session;
* an operator token logs in: the cookie is HttpOnly, SameSite=Strict and
  Path=/, the database keeps only its SHA-256, and the token is in no URL;
* with the session, pages and API reads work; a change without the
  session's X-CSRF-Token (or with another's) is 403 and changes nothing;
  with it, the change is made; an operator session cannot do an admin's
  work;
* logging out, or the session's end, refuses the cookie from then on, and
  the next login deletes the sessions that have ended.
"""
import hashlib
import http.client
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def raw(crier, method, path, body=None, headers=None):
    """One request without following redirects: (status, headers, text)."""
    conn = http.client.HTTPConnection("127.0.0.1", crier.port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def login(crier, token):
    return raw(crier, "POST", "/console/login", urllib.parse.urlencode({"token": token}),
               {"Content-Type": "application/x-www-form-urlencoded"})


def cookie_of(headers):
    sc = headers.get("set-cookie", "")
    assert sc.startswith("crier_session="), sc
    return sc.split(";", 1)[0].split("=", 1)[1], sc


def sessions(db):
    return int(h.psql(db, "SELECT count(*) FROM console_sessions")[0][0])


def failed_comm(crier, db, i):
    status, _, js = crier.post_comm(h.comm_body(i))
    assert status == 202, js
    cid = js["communication_id"]
    crier.wait_final([cid])
    h.psql(db, "UPDATE communications SET status = 'failed' WHERE id = :'id'", id=cid)
    assert h.psql(db, "SELECT review FROM communications WHERE id = :'id'", id=cid)[0][0] == "open"
    return cid


def test_console_sessions(tmp):
    db = h.new_database("console_auth")
    with h.Crier(db, tmp) as crier:
        # no session
        status, hdrs, _ = raw(crier, "GET", "/console")
        assert status == 303 and hdrs["location"] == "/console/login", (status, hdrs)
        status, _, _ = raw(crier, "GET", "/console/review")
        assert status == 303
        status, _, text = raw(crier, "GET", "/v1/communications?review=open")
        assert status == 401 and '"unauthorized"' in text, (status, text)
        status, hdrs, text = raw(crier, "GET", "/console/login")
        assert status == 200 and 'name="token"' in text and 'type="password"' in text
        assert "frame-ancestors 'none'" in hdrs["content-security-policy"]

        # tokens that may not log in make no session
        status, hdrs, text = login(crier, h.TOKEN_WORKFLOW)
        assert status == 403 and "set-cookie" not in hdrs, status
        status, hdrs, text = login(crier, "not-a-token-at-all")
        assert status == 401 and "set-cookie" not in hdrs and 'role="alert"' in text, status
        assert sessions(db) == 0

        # an operator logs in
        status, hdrs, _ = login(crier, h.TOKEN_OPERATOR)
        assert status == 303 and hdrs["location"] == "/console", (status, hdrs)
        sid, sc = cookie_of(hdrs)
        flags = [f.strip() for f in sc.split(";")[1:]]
        assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/" in flags, flags
        assert h.TOKEN_OPERATOR not in sc and h.TOKEN_OPERATOR not in hdrs["location"]
        stored = h.psql(db, "SELECT id_hash FROM console_sessions")
        assert stored == [[hashlib.sha256(sid.encode()).hexdigest()]], stored
        jar = {"Cookie": "crier_session=" + sid}

        status, hdrs, text = raw(crier, "GET", "/console/overview", headers=jar)
        assert status == 200 and "/console/assets/app.js" in text, status
        assert "script-src 'self'" in hdrs["content-security-policy"]
        status, _, text = raw(crier, "GET", "/console/nosuchview", headers=jar)
        assert status == 404, status
        status, _, text = raw(crier, "GET", "/console/session", headers=jar)
        assert status == 200, text
        me = json.loads(text)
        assert me["scope"] == "operator" and len(me["csrf"]) == 64, me
        status, _, text = raw(crier, "GET", "/v1/communications?review=open", headers=jar)
        assert status == 200, text

        # a change needs the CSRF token, and without it changes nothing
        cid = failed_comm(crier, db, 1)
        path = "/v1/communications/%s/retry" % cid
        status, _, text = raw(crier, "POST", path, headers=jar)
        assert status == 403 and '"forbidden"' in text, (status, text)
        status, _, _ = raw(crier, "POST", path, headers=dict(jar, **{"X-CSRF-Token": "0" * 64}))
        assert status == 403
        assert h.psql(db, "SELECT review FROM communications WHERE id = :'id'", id=cid)[0][0] == "open"
        status, _, text = raw(crier, "POST", path, headers=dict(jar, **{"X-CSRF-Token": me["csrf"]}))
        assert status == 202, (status, text)
        assert h.psql(db, "SELECT review FROM communications WHERE id = :'id'", id=cid)[0][0] == "retried"

        # an operator's session is not an admin's
        client_id = h.psql(db, "SELECT client_id FROM communications WHERE id = :'id'", id=cid)[0][0]
        status, _, _ = raw(crier, "DELETE", "/v1/clients/" + client_id,
                           headers=dict(jar, **{"X-CSRF-Token": me["csrf"]}))
        assert status == 403, status
        assert h.psql(db, "SELECT erased_at IS NULL FROM clients WHERE id = :'id'", id=client_id)[0][0] == "t"

        # a second login is a second session with a token of its own
        status, hdrs, _ = login(crier, h.TOKEN_ADMIN)
        admin_sid, _ = cookie_of(hdrs)
        assert admin_sid != sid and sessions(db) == 2
        status, _, text = raw(crier, "GET", "/console/session", headers={"Cookie": "crier_session=" + admin_sid})
        assert json.loads(text)["scope"] == "admin"
        # the operator's CSRF token is no good for the admin's session
        status, _, _ = raw(crier, "POST", "/console/logout",
                           headers={"Cookie": "crier_session=" + admin_sid, "X-CSRF-Token": me["csrf"]})
        assert status == 403 and sessions(db) == 2

        # logging out ends the session: its cookie is refused from then on
        status, hdrs, _ = raw(crier, "POST", "/console/logout", headers=dict(jar, **{"X-CSRF-Token": me["csrf"]}))
        assert status == 200 and "Max-Age=0" in hdrs.get("set-cookie", ""), hdrs
        assert sessions(db) == 1
        status, _, _ = raw(crier, "GET", "/v1/communications?review=open", headers=jar)
        assert status == 401
        status, hdrs, _ = raw(crier, "GET", "/console", headers=jar)
        assert status == 303 and hdrs["location"] == "/console/login"

        # an ended session, and a cookie crier never made, are no session
        h.psql(db, "UPDATE console_sessions SET expires_at = now() - interval '1 second'")
        for value in (admin_sid, "x" * 64, admin_sid.upper(), ""):
            status, _, _ = raw(crier, "GET", "/v1/communications?review=open",
                               headers={"Cookie": "other=1; crier_session=" + value})
            assert status == 401, (value[:8], status)
        # and the next login clears the ended ones away
        status, _, _ = login(crier, h.TOKEN_OPERATOR)
        assert status == 303 and sessions(db) == 1


h.run([test_console_sessions])
