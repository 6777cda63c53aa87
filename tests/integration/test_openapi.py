"""docs/openapi.yaml describes the server as it is: every answer the running
server gives (successes and each error we can provoke) has a status the
operation documents and a body that validates against the documented
schema; every documented path exists; the document's own examples validate
against their schemas."""
import base64
import json
import os
import shutil
import sys
import tempfile
import time
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
                media.append(("request", spec.deref(rb)["content"]["application/json"]))
            for code, resp in op["responses"].items():
                for _ct, m in spec.deref(resp).get("content", {}).items():
                    media.append((code, m))
            for where, m in media:
                for name, ex in (m.get("examples") or {}).items():
                    errs = spec.errors(m["schema"], spec.deref(ex)["value"])
                    n += 1
                    check(not errs, "example %s of %s %s %s: %s" % (name, method, path, where, errs[:3]))
    check(n >= 15, "the document carries examples (%d checked)" % n)


def main():
    spec = Spec(os.path.join(harness.source_dir(), "docs", "openapi.yaml"))
    check(spec.doc.get("openapi", "").startswith("3.1"), "OpenAPI 3.1")
    check_examples(spec)

    tmp = tempfile.mkdtemp(prefix="crier-openapi-")
    db = harness.new_database("openapi")
    crier = None
    db_dropped = False
    try:
        crier = harness.Crier(db, tmp)
        P_COMMS = "/v1/communications"
        P_COMM = "/v1/communications/{id}"
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

        # A client's export and erasure (admin scope), on a client of its own.
        P_EXPORT = "/v1/clients/{client_id}/export"
        P_CLIENT = "/v1/clients/{client_id}"
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
        for what, p, m, status, code, send in [
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
                 lambda: crier.request("GET", export_path, token=AD))]:
            answer = send()
            check(answer[0] == status, "%s: answered %s (%r)" % (what, answer[0], answer[2]))
            spec.conforms(what, p, m, answer)
            got = answer[2].get("error", {}).get("code") if isinstance(answer[2], dict) else None
            check(got == code, "%s: code %r, expected %r" % (what, got, code))

        errors = [
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
        ]
        for what, p, m, status, code, send in errors:
            answer = send()
            check(answer[0] == status, "%s: answered %s (%r)" % (what, answer[0], answer[2]))
            spec.conforms(what, p, m, answer)
            body = answer[2]
            got = body.get("error", {}).get("code") if isinstance(body, dict) else None
            check(got == code, "%s: code %r, expected %r" % (what, got, code))

        # 405 is not an operation's answer, but it is an error like the others.
        st, hdrs, body = crier.request("PUT", "/healthz", token=None, raw=b"")
        check(st == 405, "PUT /healthz answered %s" % st)
        err_schema = spec.doc["components"]["schemas"]["ErrorInvalidField"]
        shape = json.loads(json.dumps(err_schema).replace('"invalid_field"', '"method_not_allowed"'))
        check(not spec.errors(shape, body), "405 body is a documented error (%r)" % body)
        check("GET" in hdrs.get("allow", ""), "405 says Allow: GET (%r)" % hdrs.get("allow"))

        # Every documented path answers a valid call with a documented status.
        params = {"{id}": comm_id, "{plan_id}": good["plan_id"], "{client_id}": gone["client_id"]}
        for p, item in spec.doc["paths"].items():
            concrete = p
            for k, v in params.items():
                concrete = concrete.replace(k, v)
            for m in item:
                token = (OP if p.startswith(P_RULES) else
                         AD if p.startswith("/v1/clients/") else harness.TOKEN_WORKFLOW)
                if m == "post" and p == P_DRY:
                    answer = crier.request("POST", concrete, dry_body, token=token)
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
        for m, p, concrete in (("get", P_EXPORT, export_path), ("delete", P_CLIENT, client_path)):
            got = crier.request(m.upper(), concrete, token=AD)
            check(got[0] == 503, "%s %s while the database is gone answered %s" % (m, p, got[0]))
            spec.conforms("%s down" % m, p, m, got)

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
