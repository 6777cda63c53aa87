"""docs/openapi.yaml describes the server as it is: every answer the running
server gives (successes and each error we can provoke) has a status the
operation documents and a body that validates against the documented
schema; every documented path exists; the document's own examples validate
against their schemas."""
import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import re
import struct
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import jsonschema
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_bad_input import oversized_with_length, raw_exchange  # noqa: E402  (raw-socket clients)

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


class Spec:
    def __init__(self, path):
        with open(path, "r", encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        # $refs in the document are all local ("#/components/..."): resolve
        # them against the whole document.
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.covered = set()

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            _url, node = self.resolver.resolve(node["$ref"])
        return node

    def errors(self, schema, value):
        v = jsonschema.Draft202012Validator(schema, resolver=self.resolver,
                                            format_checker=jsonschema.FormatChecker())
        return ["%s at %s" % (e.message, "/".join(str(p) for p in e.absolute_path))
                for e in v.iter_errors(value)]

    def response(self, path, method, status):
        op = self.doc["paths"][path][method]
        return self.deref(op["responses"].get(str(status)))

    def conforms(self, what, path, method, answer):
        status, headers, body = answer
        resp = self.response(path, method, status)
        if not check(resp is not None, "%s: %s %s answered %s, which it does not document (%r)"
                     % (what, method.upper(), path, status, body)):
            return
        self.covered.add((path, method, str(status)))
        content = resp.get("content", {})
        # an answer in another of the documented types (analytics' CSV)
        ctype = headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/json" and ctype in content:
            return
        if "application/json" not in content:
            return
        check("application/json" in headers.get("content-type", ""),
              "%s: Content-Type %r" % (what, headers.get("content-type")))
        errs = self.errors(content["application/json"]["schema"], body)
        check(not errs, "%s: %s %s %s body does not match the schema: %s\nbody: %s"
              % (what, method.upper(), path, status, errs[:3], json.dumps(body)[:600]))


def check_examples(spec):
    """Every example in the document validates against its own schema."""
    n = 0
    for path, item in spec.doc["paths"].items():
        for method, op in item.items():
            media = []
            rb = op.get("requestBody")
            if rb:
                for _ct, m in spec.deref(rb)["content"].items():
                    media.append(("request", m))
            for code, resp in op["responses"].items():
                for _ct, m in spec.deref(resp).get("content", {}).items():
                    media.append((code, m))
            for where, m in media:
                for name, ex in (m.get("examples") or {}).items():
                    errs = spec.errors(m["schema"], spec.deref(ex)["value"])
                    n += 1
                    check(not errs, "example %s of %s %s %s: %s" % (name, method, path, where, errs[:3]))
    check(n >= 15, "the document carries examples (%d checked)" % n)


def request_schema(spec, path, method):
    rb = spec.deref(spec.doc["paths"][path][method]["requestBody"])
    return rb["content"]["application/json"]["schema"]


def too_large(crier, method, path, token):
    """A body over the 1 MiB limit, announced by its Content-Length: the
    server refuses it before reading it to the end."""
    head = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % (method, path, crier.port, token, 2 * 1024 * 1024))
    st, body = raw_exchange(crier.port, head.encode(), [b"{" + b" " * 65535] * 32)
    return st, {"content-type": "application/json"}, body


def expect_all(spec, cases):
    """Each case (what, path, method, status, code, send): the answer has
    that status and error code, and is as documented."""
    for what, p, m, status, code, send in cases:
        answer = send()
        check(answer[0] == status, "%s: answered %s (%r)" % (what, answer[0], answer[2]))
        spec.conforms(what, p, m, answer)
        body = answer[2]
        got = body.get("error", {}).get("code") if isinstance(body, dict) else None
        check(got == code, "%s: code %r, expected %r" % (what, got, code))


P_COMMS = "/v1/communications"
P_COMM = "/v1/communications/{id}"
P_CLIENT = "/v1/clients/{client_id}"
P_CLIENT_COMMS = "/v1/clients/{client_id}/communications"
P_PREFS = "/v1/clients/{client_id}/preferences"
P_SEED = "/api/crm/preferences"


def clients_api(spec, crier):
    """A client's profile, communications and preferences (and the seed's
    form of a change): every answer as documented, and every body the
    server refuses for a field is one the document refuses too. Returns the
    client's id."""
    WF, OP, AD = harness.TOKEN_WORKFLOW, harness.TOKEN_OPERATOR, harness.TOKEN_ADMIN
    JSON = {"Content-Type": "application/json"}
    client_req = request_schema(spec, P_CLIENT, "put")
    prefs_req = request_schema(spec, P_PREFS, "put")
    seed_req = request_schema(spec, P_SEED, "post")

    cid = str(uuid.uuid4())
    cpath = "/v1/clients/" + cid
    comms_path = cpath + "/communications"
    prefs_path = cpath + "/preferences"
    body = {"name": "Ines Okafor", "email": "ines.okafor@example.com", "phone": "+15555550177",
            "timezone": "Europe/Lisbon", "locale": "pt-PT",
            "consent": {"sms": True, "whatsapp": True}}
    check(not spec.errors(client_req, body), "a valid client matches the PUT body schema: %s"
          % spec.errors(client_req, body)[:3])
    made = crier.request("PUT", cpath, body)
    check(made[0] == 201, "PUT of a new client answered %s (%r)" % (made[0], made[2]))
    spec.conforms("client made", P_CLIENT, "put", made)
    check(isinstance(made[2], dict) and made[2].get("has_phone") is True
          and not {"name", "email", "phone"} & set(made[2]),
          "the answer says a phone is held and carries no contact details: %r" % (made[2],))
    updated = crier.request("PUT", cpath, {"locale": "en"}, token=AD)
    check(updated[0] == 200 and updated[2].get("locale") == "en"
          and updated[2].get("has_email") is True,
          "PUT of a known client updates it (%s %r)" % (updated[0], updated[2]))
    spec.conforms("client updated", P_CLIENT, "put", updated)
    read = crier.request("GET", cpath, token=OP)
    spec.conforms("client read", P_CLIENT, "get", read)
    check(read[0] == 200 and read[2].get("email") == body["email"]
          and read[2].get("consent") == {"email": False, "sms": True, "whatsapp": True},
          "GET shows the contact details and consents: %r" % (read[2],))
    spec.conforms("client read as admin", P_CLIENT, "get", crier.request("GET", cpath, token=AD))

    prefs = crier.request("GET", prefs_path)
    spec.conforms("preferences", P_PREFS, "get", prefs)
    check(prefs[0] == 200 and (prefs[2].get("quiet_hours_start"), prefs[2].get("timezone"))
          == ("22:00", "Europe/Lisbon"), "the default preferences: %r" % (prefs[2],))
    change = {"preferred_channels": ["whatsapp", "email"]}
    check(not spec.errors(prefs_req, change), "a valid change matches the PUT body schema")
    changed = crier.request("PUT", prefs_path, change)
    spec.conforms("preferences changed", P_PREFS, "put", changed)
    conf = changed[2].get("confirmation") if changed[0] == 200 else None
    check(isinstance(conf, dict) and changed[2]["preferences"]["preferred_channels"]
          == ["whatsapp", "email"], "a change is confirmed: %r" % (changed[2],))
    same = crier.request("PUT", prefs_path, change, token=OP)
    spec.conforms("preferences unchanged", P_PREFS, "put", same)
    check(same[0] == 200 and same[2].get("confirmation") is None,
          "the same values again confirm nothing: %r" % (same[2],))
    none = {"quiet_hours_start": None, "quiet_hours_end": None, "opt_out_sms": True}
    check(not spec.errors(prefs_req, none), "no quiet hours matches the PUT body schema")
    quiet = crier.request("PUT", prefs_path, none, token=AD)
    spec.conforms("no quiet hours", P_PREFS, "put", quiet)
    check(quiet[0] == 200 and quiet[2]["preferences"]["quiet_hours_start"] is None
          and quiet[2]["preferences"]["opt_out_sms"] is True, "no quiet hours: %r" % (quiet[2],))
    seed_body = {"client_id": cid, "preferred_channels": ["sms"], "timezone": "Europe/London"}
    check(not spec.errors(seed_req, seed_body), "a valid seed change matches its schema")
    seeded = crier.request("POST", P_SEED, seed_body)
    spec.conforms("seed change", P_SEED, "post", seeded)
    check(seeded[0] == 200 and seeded[2]["preferences"]["timezone"] == "Europe/London"
          and isinstance(seeded[2].get("confirmation"), dict), "the seed's form: %r" % (seeded[2],))

    # A confirmation is a communication like the others, of crier's own type.
    if isinstance(conf, dict):
        got = crier.request("GET", "/v1/communications/" + conf["communication_id"])
        spec.conforms("confirmation", P_COMM, "get", got)
        check(got[0] == 200 and got[2].get("message_type") == "preferences_updated",
              "the confirmation reads back as preferences_updated: %r" % (got[2],))
    sent = crier.post_comm(harness.comm_body(6, message_type="reminder", client_id=cid,
                                             client=False))
    check(sent[0] == 202, "a request for the client: %s %r" % (sent[0], sent[2]))

    # Its communications, page by page: 4 (the request and 3 confirmations).
    listed = crier.request("GET", comms_path)
    spec.conforms("client communications", P_CLIENT_COMMS, "get", listed)
    items = listed[2].get("communications", []) if listed[0] == 200 else []
    check(len(items) == 4 and listed[2].get("next_before") is None
          and [c["message_type"] for c in items].count("preferences_updated") == 3,
          "the client's 4 communications on one page: %r" % (listed[2],))
    first = crier.request("GET", comms_path + "?limit=3")
    spec.conforms("client communications limit=3", P_CLIENT_COMMS, "get", first)
    nxt = first[2].get("next_before") if first[0] == 200 else None
    check(nxt is not None and len(first[2]["communications"]) == 3, "a first page of 3: %r"
          % (first[2],))
    rest = crier.request("GET", "%s?limit=3&before=%s" % (comms_path, nxt))
    spec.conforms("client communications next page", P_CLIENT_COMMS, "get", rest)
    check(rest[0] == 200 and len(rest[2]["communications"]) == 1 and rest[2]["next_before"] is None
          and bool(items) and rest[2]["communications"][0]["communication_id"]
          == items[-1]["communication_id"],
          "the last page holds the oldest: %r" % (rest[2],))
    stranger = crier.request("GET", "%s?before=%s" % (comms_path, uuid.uuid4()))
    spec.conforms("client communications before a stranger", P_CLIENT_COMMS, "get", stranger)
    check(stranger[0] == 422 and stranger[2]["error"]["message"].startswith("before"),
          "an unknown before is refused naming it: %r" % (stranger,))

    # Bodies the server refuses naming the field, which the document refuses
    # too; none of them changes anything.
    client_before = crier.request("GET", cpath, token=OP)
    for what, schema, bad, field in [
            ("client email", client_req, {"email": "not an address"}, "email"),
            ("client phone", client_req, {"phone": "0800 123"}, "phone"),
            ("client consent", client_req, {"consent": {"sms": "yes"}}, "consent.sms"),
            ("prefs time", prefs_req, {"quiet_hours_start": "25:00", "quiet_hours_end": "07:00"},
             "quiet_hours_start"),
            ("prefs one end", prefs_req, {"quiet_hours_start": "23:00"}, "quiet_hours_start"),
            ("prefs one null", prefs_req, {"quiet_hours_start": None, "quiet_hours_end": "07:00"},
             "quiet_hours_start"),
            ("prefs channels", prefs_req, {"preferred_channels": ["sms", "sms"]},
             "preferred_channels"),
            ("prefs no channel", prefs_req, {"preferred_channels": []}, "preferred_channels"),
            ("prefs pigeon", prefs_req, {"preferred_channels": ["pigeon"]}, "preferred_channels"),
            ("prefs opt-out", prefs_req, {"opt_out_sms": "yes"}, "opt_out_sms"),
            ("prefs unknown", prefs_req, {"favourite_colour": "teal"}, "favourite_colour"),
            ("prefs empty", prefs_req, {}, "body"),
            ("prefs client_id", prefs_req, {"client_id": cid, "opt_out_sms": True}, "client_id"),
            ("seed no client", seed_req, {"opt_out_sms": True}, "client_id"),
            ("seed only client", seed_req, {"client_id": cid}, "body"),
            ("seed bad client", seed_req, {"client_id": "nope", "opt_out_sms": True}, "client_id")]:
        check(spec.errors(schema, bad), "the document refuses %s: %r" % (what, bad))
        if schema is client_req:
            answer = crier.request("PUT", cpath, bad)
            p, m = P_CLIENT, "put"
        elif schema is prefs_req:
            answer = crier.request("PUT", prefs_path, bad)
            p, m = P_PREFS, "put"
        else:
            answer = crier.request("POST", P_SEED, bad)
            p, m = P_SEED, "post"
        err = answer[2].get("error", {}) if isinstance(answer[2], dict) else {}
        message = err.get("message", "")
        check(answer[0] == 422 and message.startswith(field),
              "the server refuses %s naming %s: %s %r" % (what, field, answer[0], answer[2]))
        spec.conforms("refused " + what, p, m, answer)
    after = crier.request("GET", prefs_path)
    check(seeded[0] == 200 and after[0] == 200 and after[2] == seeded[2].get("preferences"),
          "refused changes changed no preference: %r" % (after[2],))
    client_after = crier.request("GET", cpath, token=OP)
    check(client_before[0] == 200 and client_after[2] == client_before[2],
          "refused changes changed nothing of the client: %r" % (client_after[2],))

    other = "/v1/clients/%s" % uuid.uuid4()
    expect_all(spec, [
        ("client put 400", P_CLIENT, "put", 400, "invalid_json",
         lambda: crier.request("PUT", cpath, raw=b'{"name":', headers=JSON)),
        ("client put 401", P_CLIENT, "put", 401, "unauthorized",
         lambda: crier.request("PUT", cpath, {"locale": "en"}, token=None)),
        ("client put 403", P_CLIENT, "put", 403, "forbidden",
         lambda: crier.request("PUT", cpath, {"locale": "en"}, token=OP)),
        ("client put 413", P_CLIENT, "put", 413, "body_too_large",
         lambda: too_large(crier, "PUT", cpath, WF)),
        ("client put 415", P_CLIENT, "put", 415, "unsupported_media_type",
         lambda: crier.request("PUT", cpath, raw=b'{"locale":"en"}',
                               headers={"Content-Type": "text/plain"})),
        ("client put 422 id", P_CLIENT, "put", 422, "invalid_field",
         lambda: crier.request("PUT", "/v1/clients/nope", {"locale": "en"})),
        ("client get 401", P_CLIENT, "get", 401, "unauthorized",
         lambda: crier.request("GET", cpath, token=None)),
        ("client get 403", P_CLIENT, "get", 403, "forbidden",
         lambda: crier.request("GET", cpath, token=WF)),
        ("client get 404", P_CLIENT, "get", 404, "not_found",
         lambda: crier.request("GET", other, token=OP)),
        ("client get 422", P_CLIENT, "get", 422, "invalid_field",
         lambda: crier.request("GET", "/v1/clients/12345", token=OP)),
        ("client comms 401", P_CLIENT_COMMS, "get", 401, "unauthorized",
         lambda: crier.request("GET", comms_path, token=None)),
        ("client comms 404", P_CLIENT_COMMS, "get", 404, "not_found",
         lambda: crier.request("GET", other + "/communications")),
        ("client comms 422 id", P_CLIENT_COMMS, "get", 422, "invalid_field",
         lambda: crier.request("GET", "/v1/clients/nope/communications")),
        ("client comms 422 limit=0", P_CLIENT_COMMS, "get", 422, "invalid_field",
         lambda: crier.request("GET", comms_path + "?limit=0")),
        ("client comms 422 limit=501", P_CLIENT_COMMS, "get", 422, "invalid_field",
         lambda: crier.request("GET", comms_path + "?limit=501")),
        ("client comms 422 before", P_CLIENT_COMMS, "get", 422, "invalid_field",
         lambda: crier.request("GET", comms_path + "?before=nope")),
        ("prefs get 401", P_PREFS, "get", 401, "unauthorized",
         lambda: crier.request("GET", prefs_path, token=None)),
        ("prefs get 404", P_PREFS, "get", 404, "not_found",
         lambda: crier.request("GET", other + "/preferences")),
        ("prefs get 422", P_PREFS, "get", 422, "invalid_field",
         lambda: crier.request("GET", "/v1/clients/nope/preferences")),
        ("prefs put 400", P_PREFS, "put", 400, "invalid_json",
         lambda: crier.request("PUT", prefs_path, raw=b"{nope", headers=JSON)),
        ("prefs put 401", P_PREFS, "put", 401, "unauthorized",
         lambda: crier.request("PUT", prefs_path, change, token=None)),
        ("prefs put 404", P_PREFS, "put", 404, "not_found",
         lambda: crier.request("PUT", other + "/preferences", change)),
        ("prefs put 413", P_PREFS, "put", 413, "body_too_large",
         lambda: too_large(crier, "PUT", prefs_path, OP)),
        ("prefs put 415", P_PREFS, "put", 415, "unsupported_media_type",
         lambda: crier.request("PUT", prefs_path, raw=json.dumps(change).encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})),
        ("prefs put 422 id", P_PREFS, "put", 422, "invalid_field",
         lambda: crier.request("PUT", "/v1/clients/nope/preferences", change)),
        ("seed 400", P_SEED, "post", 400, "json_too_deep",
         lambda: crier.request("POST", P_SEED,
                               dict(seed_body, deep=json.loads("[" * 64 + "]" * 64)))),
        ("seed 401", P_SEED, "post", 401, "unauthorized",
         lambda: crier.request("POST", P_SEED, seed_body, token=None)),
        ("seed 404", P_SEED, "post", 404, "not_found",
         lambda: crier.request("POST", P_SEED, dict(seed_body, client_id=str(uuid.uuid4())))),
        ("seed 413", P_SEED, "post", 413, "body_too_large",
         lambda: too_large(crier, "POST", P_SEED, AD)),
        ("seed 415", P_SEED, "post", 415, "unsupported_media_type",
         lambda: crier.request("POST", P_SEED, raw=json.dumps(seed_body).encode(),
                               headers={"Content-Type": "text/plain"})),
    ])
    return cid


def erased_client(spec, crier, cid):
    """An erased client: every client route and a request naming it answer
    410 as documented, until a PUT with a consent makes it again (201)."""
    OP = harness.TOKEN_OPERATOR
    cpath = "/v1/clients/" + cid
    expect_all(spec, [
        ("client get 410", P_CLIENT, "get", 410, "client_erased",
         lambda: crier.request("GET", cpath, token=OP)),
        ("client put 410", P_CLIENT, "put", 410, "client_erased",
         lambda: crier.request("PUT", cpath, {"email": "back@example.com"})),
        ("client comms 410", P_CLIENT_COMMS, "get", 410, "client_erased",
         lambda: crier.request("GET", cpath + "/communications")),
        ("prefs get 410", P_PREFS, "get", 410, "client_erased",
         lambda: crier.request("GET", cpath + "/preferences")),
        ("prefs put 410", P_PREFS, "put", 410, "client_erased",
         lambda: crier.request("PUT", cpath + "/preferences", {"opt_out_sms": True})),
        ("seed 410", P_SEED, "post", 410, "client_erased",
         lambda: crier.request("POST", P_SEED, {"client_id": cid, "opt_out_sms": True})),
        ("create 410", P_COMMS, "post", 410, "client_erased",
         lambda: crier.post_comm(harness.comm_body(7, client_id=cid, client=False))),
    ])
    again = crier.request("PUT", cpath, {"email": "back@example.com", "consent": {"email": True}})
    check(again[0] == 201, "PUT with a consent makes an erased client again: %s %r"
          % (again[0], again[2]))
    spec.conforms("client made again", P_CLIENT, "put", again)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_no_redirect = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def fetch(crier, method, path):
    """A tracking URL as a mail client opens it: no token, no redirect
    followed. (status, headers with lower-case names, JSON or bytes)."""
    req = urllib.request.Request(crier.url + path, method=method,
                                 headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    try:
        with _no_redirect.open(req, timeout=30) as resp:
            status, hdrs, body = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, body = e.code, e.headers, e.read()
    rh = {k.lower(): v for k, v in hdrs.items()}
    if "json" in rh.get("content-type", ""):
        body = json.loads(body.decode("utf-8"))
    return status, rh, body


def tracking_tokens(crier, comm_id):
    """The first click token and the open token of a sandboxed email."""
    with open(os.path.join(crier.outbox, comm_id + ".eml"), "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    markup = msg.get_body(preferencelist=("html",)).get_content()
    click = re.search(re.escape(crier.url) + r"/t/c/([A-Za-z0-9_-]{56})\"", markup)
    opened = re.search(re.escape(crier.url) + r"/t/o/([A-Za-z0-9_-]{56})\.gif\"", markup)
    check(click and opened, "the sandboxed email has a tracked link and the open pixel")
    return (click.group(1) if click else "x"), (opened.group(1) if opened else "x")


def action_token(crier, comm_id):
    """The first action link's token of a sandboxed email."""
    try:
        with open(os.path.join(crier.outbox, comm_id + ".eml"), "rb") as f:
            msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    except OSError:
        check(False, "the sandboxed email of %s is in the outbox" % comm_id)
        return "x"
    markup = msg.get_body(preferencelist=("html",)).get_content()
    found = re.search(re.escape(crier.url) + r"/a/([A-Za-z0-9_-]{56})\"", markup)
    check(found, "the sandboxed vendor_options email has an action link")
    return found.group(1) if found else "x"


P_LINK = "/u/{token}"
P_LINK_FORM = "/u/{token}/preferences"
LINK_KEY = bytes(range(200, 232))
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def link_token(comm_id, day=None, key=LINK_KEY):
    """An unsubscribe token of comm_id (crypto/linktok.h), under key."""
    day = int(time.time()) // 86400 if day is None else day
    body = bytes([1, ord("u")]) + uuid.UUID(comm_id).bytes + struct.pack(">II", 0, day)
    mac = hmac.new(key, b"crier link v1\0" + body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).decode("ascii").rstrip("=")


def page_form_token(crier, path):
    got = crier.request("GET", path, token=None)
    m = re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', got[2] if got[0] == 200 else "")
    return m.group(1) if m else "none"


def links(spec, crier, comm_id):
    """The client's own links: every answer as documented."""
    path = "/u/" + link_token(comm_id)
    gone = "/u/" + link_token(comm_id, day=int(time.time()) // 86400 - 4000)
    page = crier.request("GET", path, token=None)
    check(page[0] == 200 and page[1].get("content-type", "").startswith("text/html"),
          "the preference page: %s %r" % (page[0], page[1]))
    spec.conforms("page", P_LINK, "get", page)
    spec.conforms("page 404", P_LINK, "get", crier.request("GET", gone, token=None))
    expect_all(spec, [
        ("one-click 400", P_LINK, "post", 400, "invalid_body",
         lambda: crier.request("POST", path, raw=b"List-Unsubscribe=Yes", token=None,
                               headers=FORM)),
        ("one-click 404", P_LINK, "post", 404, "not_found",
         lambda: crier.request("POST", gone, raw=b"List-Unsubscribe=One-Click", token=None,
                               headers=FORM)),
        ("form 415", P_LINK_FORM, "post", 415, "unsupported_media_type",
         lambda: crier.request("POST", path + "/preferences", raw=b"{}", token=None,
                               headers={"Content-Type": "application/json"})),
    ])
    form = path + "/preferences"
    tok = page_form_token(crier, path)
    for what, status, body in (
            ("form 400", 400, "form_token=%s&quiet=sometimes" % tok),
            ("form 403", 403, "form_token=forged&quiet=none"),
            ("form 200", 200, "form_token=%s&quiet=hours&quiet_start=21:30&quiet_end=06:45" % tok),
            ("form 409", 409, "form_token=%s&quiet=none" % tok)):
        got = crier.request("POST", form, raw=body.encode("ascii"), token=None, headers=FORM)
        check(got[0] == status, "%s: answered %s" % (what, got[0]))
        spec.conforms(what, P_LINK_FORM, "post", got)
    spec.conforms("form 404", P_LINK_FORM, "post",
                  crier.request("POST", gone + "/preferences", raw=b"form_token=x", token=None,
                                headers=FORM))
    done = crier.request("POST", path, raw=b"List-Unsubscribe=One-Click", token=None,
                         headers=FORM)
    check(done[0] == 200 and "text/plain" in done[1].get("content-type", ""),
          "one-click: %s %r" % (done[0], done[1]))
    spec.conforms("one-click", P_LINK, "post", done)


def main():
    spec = Spec(os.path.join(harness.source_dir(), "docs", "openapi.yaml"))
    check(spec.doc.get("openapi", "").startswith("3.1"), "OpenAPI 3.1")
    check_examples(spec)

    tmp = tempfile.mkdtemp(prefix="crier-openapi-")
    db = harness.new_database("openapi")
    crier = None
    db_dropped = False
    try:
        crier = harness.Crier(db, tmp,
                              env={"CRIER_LINK_KEY": base64.b64encode(LINK_KEY).decode()})
        P_PLAN = "/v1/plans/{plan_id}/communications"
        JSON = {"Content-Type": "application/json"}

        # What the tests send is what the document says a request is.
        good = harness.comm_body(1, message_type="welcome", urgency="critical")
        req_schema = spec.deref(spec.doc["paths"][P_COMMS]["post"]["requestBody"])
        req_schema = req_schema["content"]["application/json"]["schema"]
        check(not spec.errors(req_schema, good), "a valid request matches CreateCommunication: %s"
              % spec.errors(req_schema, good)[:3])

        spec.conforms("healthz", "/healthz", "get", crier.request("GET", "/healthz", token=None))
        ready = harness.wait_until(
            lambda: (lambda r: r if r[0] == 200 else None)(crier.request("GET", "/readyz", token=None)),
            timeout=15, what="/readyz 200")
        spec.conforms("readyz", "/readyz", "get", ready)

        created = crier.post_comm(good, key="openapi-1")
        spec.conforms("create", P_COMMS, "post", created)
        comm_id = created[2]["communication_id"]
        pdf = b"%PDF-1.4\n" + bytes(range(256)) + b"\n%%EOF\n"
        with_pdf = harness.comm_body(2, message_type="blueprint_delivery", urgency="low",
                                     plan_id=good["plan_id"],
                                     attachments=[{"filename": "blueprint.pdf",
                                                   "content_type": "application/pdf",
                                                   "content_base64": base64.b64encode(pdf).decode()}])
        check(not spec.errors(req_schema, with_pdf), "a request with an attachment matches the schema")
        spec.conforms("create with attachment", P_COMMS, "post", crier.post_comm(with_pdf))
        spec.conforms("idempotent replay", P_COMMS, "post", crier.post_comm(good, key="openapi-1"))
        crier.wait_final([comm_id], timeout=30)

        path = "/v1/communications/" + comm_id
        spec.conforms("get", P_COMM, "get", crier.request("GET", path))

        # Tracking: the welcome's link and pixel, then forged tokens.
        P_CLICK, P_OPEN = "/t/c/{token}", "/t/o/{token}.gif"
        click_tok, open_tok = tracking_tokens(crier, comm_id)
        opened = fetch(crier, "GET", "/t/o/%s.gif" % open_tok)
        spec.conforms("open pixel", P_OPEN, "get", opened)
        check(opened[0] == 200 and opened[1].get("content-type") == "image/gif"
              and len(opened[2]) == 43, "the pixel is a 43-byte GIF: %r" % (opened[:2],))
        clicked = fetch(crier, "GET", "/t/c/" + click_tok)
        spec.conforms("click", P_CLICK, "get", clicked)
        check(clicked[0] == 302 and clicked[1].get("location", "").startswith("https://"),
              "the click redirects: %r" % (clicked[:2],))
        forged = click_tok[:-1] + ("A" if click_tok[-1] != "A" else "B")
        spec.conforms("click 404", P_CLICK, "get", fetch(crier, "GET", "/t/c/" + forged))
        spec.conforms("open 404", P_OPEN, "get", fetch(crier, "GET", "/t/o/%s.gif" % forged))
        # Action links: a vendor_options message's, answered once, then forged.
        P_ACTION = "/a/{token}"
        offer = harness.comm_body(3, message_type="vendor_options", urgency="critical")
        offered = crier.post_comm(offer)
        check(offered[0] == 202, "vendor_options accepted: %r" % (offered[:1],))
        offer_id = offered[2].get("communication_id", "") if offered[0] == 202 else ""
        crier.wait_final([offer_id], timeout=30)
        action_tok = action_token(crier, offer_id)
        answered = fetch(crier, "GET", "/a/" + action_tok)
        spec.conforms("action", P_ACTION, "get", answered)
        check(answered[0] == 200 and answered[1].get("content-type", "").startswith("text/html"),
              "the action answers a page: %r" % (answered[:2],))
        forged_action = action_tok[:-1] + ("A" if action_tok[-1] != "A" else "B")
        spec.conforms("action 404", P_ACTION, "get", fetch(crier, "GET", "/a/" + forged_action))
        spec.conforms("get as operator", P_COMM, "get",
                      crier.request("GET", path, token=harness.TOKEN_OPERATOR))
        plan = "/v1/plans/%s/communications" % good["plan_id"]
        listed = crier.request("GET", plan)
        spec.conforms("plan list", P_PLAN, "get", listed)
        check(isinstance(listed[2], dict) and len(listed[2].get("communications", [])) == 2,
              "the plan lists its 2 communications")
        limited = crier.request("GET", plan + "?limit=1")
        spec.conforms("plan list limit=1", P_PLAN, "get", limited)
        check(isinstance(limited[2], dict) and len(limited[2].get("communications", [])) == 1,
              "limit=1 lists 1")
        spec.conforms("empty plan", P_PLAN, "get",
                      crier.request("GET", "/v1/plans/%s/communications" % uuid.uuid4()))

        # /metrics: open, and text in the Prometheus format, as documented.
        metrics = crier.request("GET", "/metrics", token=None)
        spec.conforms("metrics", "/metrics", "get", metrics)
        check(metrics[0] == 200 and "text/plain" in metrics[1].get("content-type", "")
              and "text/plain" in spec.response("/metrics", "get", 200).get("content", {}),
              "GET /metrics answers the documented text/plain (%s %r)"
              % (metrics[0], metrics[1].get("content-type")))
        check(isinstance(metrics[2], str) and "# TYPE crm_communications_total counter" in metrics[2],
              "the metrics text carries the seed's families")

        # The rules endpoints (operator scope).
        P_RULES = "/v1/rules"
        P_DRY = "/v1/rules/dry-run"
        OP = harness.TOKEN_OPERATOR
        rules = crier.request("GET", P_RULES, token=OP)
        spec.conforms("rules status", P_RULES, "get", rules)
        check(rules[0] == 200 and rules[2].get("active_version") not in (None, "builtin-1"),
              "GET /v1/rules shows the loaded rules: %r" % (rules[2],))
        dry_body = {"request": harness.comm_body(4, message_type="vendor_options"),
                    "client": {"quiet_hours_start": "23:00", "preferred_channels": ["email"]},
                    "now": "2026-03-10T15:00:00Z"}
        dry_schema = spec.deref(spec.doc["paths"][P_DRY]["post"]["requestBody"])
        dry_schema = dry_schema["content"]["application/json"]["schema"]
        check(not spec.errors(dry_schema, dry_body), "a valid dry-run matches DryRunRequest: %s"
              % spec.errors(dry_schema, dry_body)[:3])
        dry = crier.request("POST", P_DRY, dry_body, token=OP)
        spec.conforms("dry-run", P_DRY, "post", dry)
        check(dry[0] == 200 and dry[2].get("rules_version") == rules[2].get("active_version"),
              "the dry-run decides with the active rules: %r" % (dry[2],))
        spec.conforms("dry-run as admin", P_DRY, "post",
                      crier.request("POST", P_DRY, dry_body, token=harness.TOKEN_ADMIN))

        # The live templates (operator scope).
        P_TPL = "/v1/templates"
        tpl = crier.request("GET", P_TPL, token=OP)
        spec.conforms("templates status", P_TPL, "get", tpl)
        check(tpl[0] == 200 and len(tpl[2].get("templates", [])) > 0,
              "GET /v1/templates lists the live templates: %r" % (tpl[0],))
        spec.conforms("templates status without a token", P_TPL, "get",
                      crier.request("GET", P_TPL, token=None))
        spec.conforms("templates status as the workflow", P_TPL, "get",
                      crier.request("GET", P_TPL, token=harness.TOKEN_WORKFLOW))

        # Analytics (operator scope): JSON, CSV, and the refusals.
        rng = "from=2020-01-01&to=2020-12-31T00:00:00Z"
        for P_AN, q in (("/v1/analytics/summary", rng),
                        ("/v1/analytics/breakdown", "by=channel&" + rng)):
            got = crier.request("GET", "%s?%s" % (P_AN, q), token=OP)
            spec.conforms("analytics", P_AN, "get", got)
            check(got[0] == 200, "GET %s answered %s" % (P_AN, got[0]))
            got = crier.request("GET", "%s?%s" % (P_AN, q), token=OP,
                                headers={"Accept": "text/csv"})
            spec.conforms("analytics as CSV", P_AN, "get", got)
            check(got[0] == 200 and got[1].get("content-type", "").startswith("text/csv"),
                  "GET %s as CSV: %s %r" % (P_AN, got[0], got[1].get("content-type")))
            check("text/csv" in spec.response(P_AN, "get", 200)["content"],
                  "%s documents its CSV" % P_AN)
            for token in (None, harness.TOKEN_WORKFLOW):
                spec.conforms("analytics refused", P_AN, "get",
                              crier.request("GET", "%s?%s" % (P_AN, q), token=token))
            got = crier.request("GET", "%s?%s&format=pdf" % (P_AN, q), token=OP)
            check(got[0] == 422, "GET %s with format=pdf answered %s" % (P_AN, got[0]))
            spec.conforms("analytics bad format", P_AN, "get", got)

        # A client's export and erasure (admin scope), on a client of its own.
        P_EXPORT = "/v1/clients/{client_id}/export"
        AD = harness.TOKEN_ADMIN
        gone = harness.comm_body(5, message_type="welcome", urgency="critical",
                                 phone="+15555550155", consent={"sms": True, "whatsapp": False})
        gone_id = crier.post_comm(gone)[2]["communication_id"]
        crier.wait_final([gone_id], timeout=30)
        export_path = "/v1/clients/%s/export" % gone["client_id"]
        client_path = "/v1/clients/%s" % gone["client_id"]
        exported = crier.request("GET", export_path, token=AD)
        spec.conforms("export", P_EXPORT, "get", exported)
        check(exported[0] == 200 and exported[2]["client"]["name"] == gone["client"]["name"]
              and len(exported[2]["communications"]) == 1, "the export: %r" % (exported[2],))
        expect_all(spec, [
                ("export 401", P_EXPORT, "get", 401, "unauthorized",
                 lambda: crier.request("GET", export_path, token=None)),
                ("export 403", P_EXPORT, "get", 403, "forbidden",
                 lambda: crier.request("GET", export_path, token=OP)),
                ("export 404", P_EXPORT, "get", 404, "not_found",
                 lambda: crier.request("GET", "/v1/clients/%s/export" % uuid.uuid4(), token=AD)),
                ("export 422", P_EXPORT, "get", 422, "invalid_field",
                 lambda: crier.request("GET", "/v1/clients/nope/export", token=AD)),
                ("erase 401", P_CLIENT, "delete", 401, "unauthorized",
                 lambda: crier.request("DELETE", client_path, token=None)),
                ("erase 403", P_CLIENT, "delete", 403, "forbidden",
                 lambda: crier.request("DELETE", client_path)),
                ("erase 404", P_CLIENT, "delete", 404, "not_found",
                 lambda: crier.request("DELETE", "/v1/clients/%s" % uuid.uuid4(), token=AD)),
                ("erase 422", P_CLIENT, "delete", 422, "invalid_field",
                 lambda: crier.request("DELETE", "/v1/clients/12345", token=AD)),
                ("erase", P_CLIENT, "delete", 200, None,
                 lambda: crier.request("DELETE", client_path, token=AD)),
                ("erase 410", P_CLIENT, "delete", 410, "client_erased",
                 lambda: crier.request("DELETE", client_path, token=AD)),
                ("export 410", P_EXPORT, "get", 410, "client_erased",
                 lambda: crier.request("GET", export_path, token=AD))])

        # The clients API on a client of its own; then the erased one.
        live = clients_api(spec, crier)
        live_path = "/v1/clients/" + live
        erased_client(spec, crier, gone["client_id"])
        links(spec, crier, comm_id)

        expect_all(spec, [
            ("rules 401", P_RULES, "get", 401, "unauthorized",
             lambda: crier.request("GET", P_RULES, token=None)),
            ("rules 403", P_RULES, "get", 403, "forbidden",
             lambda: crier.request("GET", P_RULES, token=harness.TOKEN_WORKFLOW)),
            ("dry-run 400", P_DRY, "post", 400, "invalid_json",
             lambda: crier.request("POST", P_DRY, raw=b'{"request":', headers=JSON, token=OP)),
            ("dry-run 400 too deep", P_DRY, "post", 400, "json_too_deep",
             lambda: crier.request("POST", P_DRY, dict(dry_body, request=dict(
                 good, context={"deep": json.loads("[" * 64 + "]" * 64)})), token=OP)),
            ("dry-run 401", P_DRY, "post", 401, "unauthorized",
             lambda: crier.request("POST", P_DRY, dry_body, token=None)),
            ("dry-run 403", P_DRY, "post", 403, "forbidden",
             lambda: crier.request("POST", P_DRY, dry_body, token=harness.TOKEN_WORKFLOW)),
            ("dry-run 413", P_DRY, "post", 413, "body_too_large",
             lambda: (lambda r: (r[0], {"content-type": "application/json"}, r[1]))(
                 raw_exchange(crier.port, (
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n" % (P_DRY, crier.port, OP, 2 * 1024 * 1024)
                 ).encode(), [b"{" + b" " * 65535] * 32))),
            ("dry-run 415", P_DRY, "post", 415, "unsupported_media_type",
             lambda: crier.request("POST", P_DRY, raw=json.dumps(dry_body).encode(), token=OP,
                                   headers={"Content-Type": "text/plain"})),
            ("dry-run 422 request", P_DRY, "post", 422, "invalid_field",
             lambda: crier.request("POST", P_DRY, dict(dry_body, request=dict(
                 good, message_type="nope")), token=OP)),
            ("dry-run 422 now", P_DRY, "post", 422, "invalid_field",
             lambda: crier.request("POST", P_DRY, dict(dry_body, now="soon"), token=OP)),
            ("400 invalid_json", P_COMMS, "post", 400, "invalid_json",
             lambda: crier.request("POST", "/v1/communications", raw=b"{nope", headers=JSON)),
            ("400 invalid_utf8", P_COMMS, "post", 400, "invalid_utf8",
             lambda: crier.request("POST", "/v1/communications", headers=JSON,
                                   raw=json.dumps(good).encode().replace(b"welcome", b"welc\xffome"))),
            ("400 json_too_deep", P_COMMS, "post", 400, "json_too_deep",
             lambda: crier.post_comm(dict(good, context={"deep": json.loads("[" * 64 + "]" * 64)}))),
            ("401 post", P_COMMS, "post", 401, "unauthorized", lambda: crier.post_comm(good, token=None)),
            ("401 get", P_COMM, "get", 401, "unauthorized",
             lambda: crier.request("GET", path, token="nope")),
            ("401 plan list", P_PLAN, "get", 401, "unauthorized",
             lambda: crier.request("GET", plan, token=None)),
            ("403 post", P_COMMS, "post", 403, "forbidden",
             lambda: crier.post_comm(good, token=harness.TOKEN_OPERATOR)),
            ("404 get", P_COMM, "get", 404, "not_found",
             lambda: crier.request("GET", "/v1/communications/%s" % uuid.uuid4())),
            ("409 conflict", P_COMMS, "post", 409, "idempotency_conflict",
             lambda: crier.post_comm(dict(good, urgency="high"), key="openapi-1")),
            ("413 too large", P_COMMS, "post", 413, "body_too_large",
             lambda: (lambda r: (r[0], {"content-type": "application/json"}, r[1]))(
                 oversized_with_length(crier.port, harness.TOKEN_WORKFLOW))),
            ("415 media type", P_COMMS, "post", 415, "unsupported_media_type",
             lambda: crier.request("POST", "/v1/communications", raw=json.dumps(good).encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})),
            ("422 invalid_field", P_COMMS, "post", 422, "invalid_field",
             lambda: crier.post_comm(dict(good, message_type="nope"))),
            ("422 unknown_client", P_COMMS, "post", 422, "unknown_client",
             lambda: crier.post_comm({k: v for k, v in harness.comm_body(3).items() if k != "client"})),
            ("422 get", P_COMM, "get", 422, "invalid_field",
             lambda: crier.request("GET", "/v1/communications/12345")),
            ("422 plan id", P_PLAN, "get", 422, "invalid_field",
             lambda: crier.request("GET", "/v1/plans/not-a-plan/communications")),
            ("422 plan limit", P_PLAN, "get", 422, "invalid_field",
             lambda: crier.request("GET", plan + "?limit=501")),
        ])

        # 405 is not an operation's answer, but it is an error like the others.
        st, hdrs, body = crier.request("PUT", "/healthz", token=None, raw=b"")
        check(st == 405, "PUT /healthz answered %s" % st)
        err_schema = spec.doc["components"]["schemas"]["ErrorInvalidField"]
        shape = json.loads(json.dumps(err_schema).replace('"invalid_field"', '"method_not_allowed"'))
        check(not spec.errors(shape, body), "405 body is a documented error (%r)" % body)
        check("GET" in hdrs.get("allow", ""), "405 says Allow: GET (%r)" % hdrs.get("allow"))

        # Every documented path answers a valid call with a documented status
        # (the erasure on the client made again above, the rest on the live one).
        params = {"{id}": comm_id, "{plan_id}": good["plan_id"], "{token}": link_token(comm_id)}
        for p, item in spec.doc["paths"].items():
            for m in item:
                concrete = p.replace("{client_id}", gone["client_id"] if m == "delete" else live)
                for k, v in params.items():
                    concrete = concrete.replace(k, v)
                token = (OP if p.startswith(P_RULES) else
                         AD if p.startswith("/v1/clients/") else harness.TOKEN_WORKFLOW)
                if m == "post" and p == P_DRY:
                    answer = crier.request("POST", concrete, dry_body, token=token)
                elif p == P_SEED:
                    answer = crier.request("POST", concrete,
                                           {"client_id": live, "opt_out_email": False})
                elif m == "put" and p == P_CLIENT:
                    answer = crier.request("PUT", concrete, {"locale": "en"}, token=token)
                elif p == P_LINK_FORM:
                    answer = crier.request(
                        "POST", concrete, token=None, headers=FORM,
                        raw=("form_token=%s&quiet=none"
                             % page_form_token(crier, concrete[:-len("/preferences")])).encode())
                elif m == "post" and p == P_LINK:
                    answer = crier.request("POST", concrete, raw=b"List-Unsubscribe=One-Click",
                                           token=None, headers=FORM)
                elif m == "put" and p == P_PREFS:
                    answer = crier.request("PUT", concrete, {"opt_out_whatsapp": False},
                                           token=token)
                elif p == P_ACTION:
                    answer = fetch(crier, "GET", "/a/" + action_tok)
                elif p in (P_CLICK, P_OPEN):
                    # "{token}" is the unsubscribe link's above; these take their own
                    answer = fetch(crier, "GET", p.replace(
                        "{token}", click_tok if p == P_CLICK else open_tok))
                elif m == "post":
                    answer = crier.request("POST", concrete, harness.comm_body(9, urgency="low"))
                else:
                    answer = crier.request(m.upper(), concrete, token=token)
                check(answer[0] != 404, "%s %s exists (answered %s)" % (m.upper(), p, answer[0]))
                spec.conforms("path exists", p, m, answer)

        # PostgreSQL gone: readiness and writes say so, as documented.
        harness.drop_database(db)
        db_dropped = True
        try:
            down = harness.wait_until(
                lambda: (lambda r: r if r[0] == 503 else None)(crier.request("GET", "/readyz", token=None)),
                timeout=30, interval=0.5, what="/readyz 503 once the database is gone")
        except TimeoutError as e:
            down = crier.request("GET", "/readyz", token=None)
            check(False, str(e))
        spec.conforms("readyz down", "/readyz", "get", down)
        spec.conforms("healthz while down", "/healthz", "get", crier.request("GET", "/healthz", token=None))
        t0 = time.time()
        posted = crier.post_comm(harness.comm_body(10, urgency="critical"))
        check(posted[0] == 503, "POST while the database is gone answered %s (%r)" % (posted[0], posted[2]))
        check(time.time() - t0 < 20, "the 503 came without a long hang (%.1f s)" % (time.time() - t0))
        spec.conforms("post down", P_COMMS, "post", posted)
        got = crier.request("GET", path)
        check(got[0] == 503, "GET while the database is gone answered %s" % got[0])
        spec.conforms("get down", P_COMM, "get", got)
        got = crier.request("GET", plan)
        check(got[0] == 503, "plan list while the database is gone answered %s" % got[0])
        spec.conforms("plan list down", P_PLAN, "get", got)
        for p, concrete in ((P_CLICK, "/t/c/" + click_tok), (P_OPEN, "/t/o/%s.gif" % open_tok),
                            (P_ACTION, "/a/" + action_tok)):
            got = fetch(crier, "GET", concrete)
            check(got[0] == 503, "%s while the database is gone answered %s" % (p, got[0]))
            spec.conforms("%s down" % p, p, "get", got)
        for m, p, concrete, body in (
                ("get", P_EXPORT, export_path, None), ("delete", P_CLIENT, client_path, None),
                ("put", P_CLIENT, live_path, {"locale": "en"}), ("get", P_CLIENT, live_path, None),
                ("get", P_CLIENT_COMMS, live_path + "/communications", None),
                ("get", P_PREFS, live_path + "/preferences", None),
                ("put", P_PREFS, live_path + "/preferences", {"opt_out_sms": False}),
                ("post", P_SEED, P_SEED, {"client_id": live, "opt_out_sms": False})):
            got = crier.request(m.upper(), concrete, body, token=AD)
            check(got[0] == 503, "%s %s while the database is gone answered %s" % (m, p, got[0]))
            spec.conforms("%s %s down" % (m, p), p, m, got)

        # What was covered, for the log: every operation answered something.
        for p, item in spec.doc["paths"].items():
            for m, op in item.items():
                seen = sorted(s for (pp, mm, s) in spec.covered if pp == p and mm == m)
                print("%-7s %-38s documented %-40s seen %s"
                      % (m.upper(), p, ",".join(sorted(op["responses"])), ",".join(seen)))
                check(seen, "%s %s was exercised" % (m.upper(), p))
    finally:
        if crier is not None:
            try:
                crier.stop()
            except Exception as e:
                check(False, "crier stopped cleanly: %s" % e)
        if not db_dropped:
            harness.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.summary(passed, failed)


if __name__ == "__main__":
    main()
