import { test, describe, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHmac } from "node:crypto";

import {
  createClient,
  deriveIdempotencyKey,
  verifyCallback,
  parseCallback,
  CrierError,
  CallbackVerificationError,
} from "../index.js";

const PLAN = "5b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d";
const CLIENT = "9c2e8f7a-6b5c-4d3e-9f1a-0b2c3d4e5f6a";
const TOKEN = "workflow-token-1";

// Shared with clients/python/test_crier_client.py: both clients must derive
// this exact key, so a step retried from either side is deduplicated.
const FIXED_KEY_INPUT = [PLAN, "vendor_options", "step-3"];
const FIXED_KEY = "4606ec296821d46aa572ef748e265184a0eaa62331a356bb7046b80b735dc695";

// Shared signature vector (docs/callbacks.md scheme), also in the Python tests.
const VEC_SECRET = "whsec_test";
const VEC_TS = "1700000000";
const VEC_BODY = '{"type":"sent","event_id":"e1"}';
const VEC_SIG = "sha256=eafba932d87fe2de1bed525ca60204d7f576911695df7785a83245e4985ebf5b";

// One outer suite: its hooks run on every Node from 18.8 on, where hooks
// at the top level of a file are less well supported.
describe("crier client", () => {
  // A real HTTP server that records each request and answers what the test queued.
  let server;
  let baseUrl;
  let requests = [];
  let replies = [];

  function reply(status, body, headers = { "Content-Type": "application/json" }) {
    replies.push({ status, body, headers });
  }

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        requests.push({ method: req.method, url: req.url, headers: req.headers, raw });
        const r = replies.shift() ?? { status: 500, body: { error: { code: "internal_error", message: "no reply queued" } } };
        res.writeHead(r.status, r.headers ?? { "Content-Type": "application/json" });
        res.end(typeof r.body === "string" ? r.body : JSON.stringify(r.body));
      });
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${server.address().port}`;
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => {
    requests = [];
    replies = [];
  });

  const accepted = {
    communication_id: "0f8c1e52-7a0b-4c1e-9d3a-5b6c7d8e9f01",
    status: "queued",
    decision: { primary_channel: "whatsapp", fallback_channels: ["sms", "email"] },
  };

  function baseRequest(extra = {}) {
    return { plan_id: PLAN, client_id: CLIENT, message_type: "vendor_options", urgency: "high", ...extra };
  }

  describe("createCommunication", () => {
    test("posts JSON with the bearer token and returns the answer", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      reply(202, accepted);
      const req = baseRequest({ context: { event_type: "wedding", event_date: "2027-02-14" } });
      const out = await c.createCommunication(req);
      assert.deepEqual(out, accepted);
      assert.equal(requests.length, 1);
      const r = requests[0];
      assert.equal(r.method, "POST");
      assert.equal(r.url, "/v1/communications");
      assert.equal(r.headers.authorization, `Bearer ${TOKEN}`);
      assert.match(r.headers["content-type"], /^application\/json/);
      assert.deepEqual(JSON.parse(r.raw), req);
    });

    test("the same step sends the same Idempotency-Key; another step another key", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      reply(202, accepted);
      reply(202, accepted);
      reply(202, accepted);
      reply(202, accepted);
      await c.createCommunication(baseRequest(), { step: "options-1" });
      await c.createCommunication(baseRequest(), { step: "options-1" });
      await c.createCommunication(baseRequest(), { step: "options-2" });
      await c.createCommunication(baseRequest({ message_type: "welcome" }), { step: "options-1" });
      const keys = requests.map((r) => r.headers["idempotency-key"]);
      assert.match(keys[0], /^[0-9a-f]{64}$/);
      assert.equal(keys[0], keys[1]);
      assert.notEqual(keys[0], keys[2]);
      assert.notEqual(keys[0], keys[3]);
      assert.equal(keys[0], deriveIdempotencyKey(PLAN, "vendor_options", "options-1"));
    });

    test("request.step drives the key but is not sent (the schema refuses unknown fields)", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      reply(202, accepted);
      await c.createCommunication(baseRequest({ step: "step-3" }));
      assert.equal(requests[0].headers["idempotency-key"], FIXED_KEY);
      assert.equal("step" in JSON.parse(requests[0].raw), false);
    });

    test("without a step the key is derived from plan and message type alone", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      reply(202, accepted);
      await c.createCommunication(baseRequest());
      assert.equal(requests[0].headers["idempotency-key"], deriveIdempotencyKey(PLAN, "vendor_options", ""));
      assert.equal(deriveIdempotencyKey(PLAN, "vendor_options"), deriveIdempotencyKey(PLAN, "vendor_options", null));
    });

    test("an explicit idempotencyKey is sent as given", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      reply(202, accepted);
      await c.createCommunication(baseRequest(), { idempotencyKey: "plan-5b1d2c3e-vendor-options-1" });
      assert.equal(requests[0].headers["idempotency-key"], "plan-5b1d2c3e-vendor-options-1");
    });

    test("maps a 409 error body to CrierError", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      reply(409, { error: { code: "idempotency_conflict", message: "key reused with another body" } });
      await assert.rejects(c.createCommunication(baseRequest()), (e) => {
        assert.ok(e instanceof CrierError);
        assert.ok(e instanceof Error);
        assert.equal(e.status, 409);
        assert.equal(e.code, "idempotency_conflict");
        assert.equal(e.message, "key reused with another body");
        return true;
      });
    });

    test("maps 422 and 401 error bodies", async () => {
      const c = createClient({ baseUrl, apiKey: "bad" });
      reply(422, { error: { code: "unknown_client", message: "unknown client" } });
      reply(401, { error: { code: "unauthorized", message: "missing or unknown token" } });
      await assert.rejects(c.createCommunication(baseRequest()), { status: 422, code: "unknown_client" });
      await assert.rejects(c.getCommunication("x"), { status: 401, code: "unauthorized", message: "missing or unknown token" });
    });

    test("a non-JSON error body still becomes a CrierError", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      reply(502, "<html>bad gateway</html>", { "Content-Type": "text/html" });
      await assert.rejects(c.createCommunication(baseRequest()), (e) => {
        assert.ok(e instanceof CrierError);
        assert.equal(e.status, 502);
        assert.equal(e.code, "http_error");
        return true;
      });
    });
  });

  describe("getCommunication and listForPlan", () => {
    test("getCommunication GETs the id, escaped", async () => {
      const c = createClient({ baseUrl: baseUrl + "/", apiKey: TOKEN });
      const comm = { ...accepted, events: [] };
      reply(200, comm);
      reply(404, { error: { code: "not_found", message: "no such communication" } });
      assert.deepEqual(await c.getCommunication(accepted.communication_id), comm);
      assert.equal(requests[0].method, "GET");
      assert.equal(requests[0].url, `/v1/communications/${accepted.communication_id}`);
      assert.equal(requests[0].headers.authorization, `Bearer ${TOKEN}`);
      assert.equal(requests[0].headers["idempotency-key"], undefined);
      await assert.rejects(c.getCommunication("a/b"), { status: 404, code: "not_found" });
      assert.equal(requests[1].url, "/v1/communications/a%2Fb");
    });

    test("listForPlan sends limit and filters by status on the answer", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      const list = {
        plan_id: PLAN,
        communications: [
          { communication_id: "c1", status: "pending" },
          { communication_id: "c2", status: "sent" },
          { communication_id: "c3", status: "sent" },
        ],
      };
      reply(200, list);
      reply(200, list);
      reply(200, list);
      const all = await c.listForPlan(PLAN);
      assert.equal(requests[0].url, `/v1/plans/${PLAN}/communications`);
      assert.equal(all.communications.length, 3);
      const sent = await c.listForPlan(PLAN, { status: "sent", limit: 50 });
      assert.equal(requests[1].url, `/v1/plans/${PLAN}/communications?limit=50`);
      assert.deepEqual(sent.communications.map((x) => x.communication_id), ["c2", "c3"]);
      const some = await c.listForPlan(PLAN, { status: ["pending", "sent"] });
      assert.equal(some.communications.length, 3);
    });
  });

  describe("the review queue", () => {
    test("listCommunications sends the filters by their API names", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      reply(200, { communications: [] });
      reply(200, { communications: [] });
      await c.listCommunications({ status: "failed", review: "open", planId: PLAN, limit: 5 });
      assert.equal(
        requests[0].url,
        `/v1/communications?status=failed&review=open&plan_id=${PLAN}&limit=5`,
      );
      await c.listCommunications();
      assert.equal(requests[1].url, "/v1/communications");
      await assert.rejects(c.listCommunications({ plan: PLAN }), TypeError);
      assert.equal(requests.length, 2);
    });

    test("retry and resolve post to the communication", async () => {
      const c = createClient({ baseUrl, apiKey: TOKEN });
      reply(202, accepted);
      reply(200, { communication_id: accepted.communication_id, review: "resolved" });
      reply(409, { error: { code: "not_in_review", message: "not waiting for review" } });
      assert.deepEqual(await c.retryCommunication(accepted.communication_id), accepted);
      assert.equal(requests[0].method, "POST");
      assert.equal(requests[0].url, `/v1/communications/${accepted.communication_id}/retry`);
      assert.equal(requests[0].raw, "");
      const done = await c.resolveCommunication(accepted.communication_id, "called the client");
      assert.equal(done.review, "resolved");
      assert.deepEqual(JSON.parse(requests[1].raw), { note: "called the client" });
      assert.equal(requests[1].headers["content-type"], "application/json");
      await assert.rejects(c.resolveCommunication("x"), { status: 409, code: "not_in_review" });
      assert.deepEqual(JSON.parse(requests[2].raw), {});
    });
  });

  test("an injected fetch is used", async () => {
    const seen = [];
    const fakeFetch = async (url, init) => {
      seen.push({ url, init });
      return new Response(JSON.stringify({ plan_id: PLAN, communications: [] }), { status: 200 });
    };
    const c = createClient({ baseUrl: "http://crier.invalid", apiKey: TOKEN, fetch: fakeFetch });
    const out = await c.listForPlan(PLAN, { limit: 1 });
    assert.deepEqual(out.communications, []);
    assert.equal(seen[0].url, `http://crier.invalid/v1/plans/${PLAN}/communications?limit=1`);
    assert.equal(seen[0].init.headers.Authorization, `Bearer ${TOKEN}`);
  });

  test("the automatic key matches the value shared with the Python client", () => {
    assert.equal(deriveIdempotencyKey(...FIXED_KEY_INPUT), FIXED_KEY);
  });

  describe("verifyCallback", () => {
    const secret = "s3cret-callback-key";
    const body = JSON.stringify({ event_id: "e-1", seq: 7, type: "delivered", status: "delivered" });
    const now = 1_760_000_000;

    // Signed exactly as docs/callbacks.md says: HMAC-SHA256(secret, ts + "." + body).
    function sign(ts, raw, key = secret) {
      return "sha256=" + createHmac("sha256", key).update(`${ts}.`).update(raw).digest("hex");
    }
    function headersFor(ts, raw, key) {
      return {
        "Content-Type": "application/json",
        "X-Crier-Timestamp": String(ts),
        "X-Crier-Signature": sign(ts, raw, key),
        "X-Crier-Callback-Id": "7d0c8e0a-0000-4000-8000-000000000001",
        "X-Crier-Event": "delivered",
      };
    }

    test("matches the fixed vector", () => {
      const h = { "X-Crier-Timestamp": VEC_TS, "X-Crier-Signature": VEC_SIG };
      assert.equal(verifyCallback(h, VEC_BODY, VEC_SECRET, { now: Number(VEC_TS) }), true);
      assert.equal(sign(VEC_TS, VEC_BODY, VEC_SECRET), VEC_SIG);
    });

    test("accepts a good signature: string or Buffer body, any header case, Headers instance", () => {
      const h = headersFor(now, body);
      assert.equal(verifyCallback(h, body, secret, { now }), true);
      assert.equal(verifyCallback(h, Buffer.from(body), secret, { now }), true);
      assert.equal(verifyCallback(h, new Uint8Array(Buffer.from(body)), Buffer.from(secret), { now }), true);
      const lower = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
      assert.equal(verifyCallback(lower, body, secret, { now }), true);
      assert.equal(verifyCallback(new Headers(h), body, secret, { now }), true);
      assert.equal(verifyCallback(h, body, secret, { now: new Date(now * 1000) }), true);
    });

    test("refuses a tampered body", () => {
      const h = headersFor(now, body);
      assert.equal(verifyCallback(h, body.replace("delivered", "failed"), secret, { now }), false);
      assert.equal(verifyCallback(h, body + " ", secret, { now }), false);
    });

    test("refuses a wrong secret", () => {
      const h = headersFor(now, body, "another-secret");
      assert.equal(verifyCallback(h, body, secret, { now }), false);
    });

    test("refuses a stale or future timestamp, honours the window and its override", () => {
      const old = now - 301;
      assert.equal(verifyCallback(headersFor(old, body), body, secret, { now }), false);
      assert.equal(verifyCallback(headersFor(now + 301, body), body, secret, { now }), false);
      assert.equal(verifyCallback(headersFor(now - 300, body), body, secret, { now }), true);
      assert.equal(verifyCallback(headersFor(old, body), body, secret, { now, toleranceSeconds: 600 }), true);
    });

    test("refuses a timestamp changed after signing", () => {
      const h = headersFor(now, body);
      h["X-Crier-Timestamp"] = String(now + 1);
      assert.equal(verifyCallback(h, body, secret, { now }), false);
    });

    test("refuses missing, malformed or repeated headers", () => {
      const h = headersFor(now, body);
      const noSig = { ...h };
      delete noSig["X-Crier-Signature"];
      const noTs = { ...h };
      delete noTs["X-Crier-Timestamp"];
      assert.equal(verifyCallback(noSig, body, secret, { now }), false);
      assert.equal(verifyCallback(noTs, body, secret, { now }), false);
      assert.equal(verifyCallback({}, body, secret, { now }), false);
      assert.equal(verifyCallback({ ...h, "X-Crier-Timestamp": `${now}.0` }, body, secret, { now }), false);
      assert.equal(verifyCallback({ ...h, "X-Crier-Timestamp": `-${now}` }, body, secret, { now }), false);
      const bare = h["X-Crier-Signature"].slice("sha256=".length);
      assert.equal(verifyCallback({ ...h, "X-Crier-Signature": bare }, body, secret, { now }), false);
      assert.equal(verifyCallback({ ...h, "X-Crier-Signature": h["X-Crier-Signature"].toUpperCase() }, body, secret, { now }), false);
      assert.equal(verifyCallback({ ...h, "X-Crier-Signature": [h["X-Crier-Signature"], h["X-Crier-Signature"]] }, body, secret, { now }), false);
    });

    test("refuses to verify a parsed object or with an empty secret", () => {
      const h = headersFor(now, body);
      assert.throws(() => verifyCallback(h, JSON.parse(body), secret, { now }), TypeError);
      assert.throws(() => verifyCallback(h, body, "", { now }), TypeError);
    });

    test("verifies against a real request received by node:http", async () => {
      const ts = Math.floor(Date.now() / 1000);
      let result;
      const receiver = http.createServer((req, res) => {
        const chunks = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
          result = verifyCallback(req.headers, Buffer.concat(chunks), secret);
          res.writeHead(result ? 204 : 401);
          res.end();
        });
      });
      await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
      try {
        const res = await fetch(`http://127.0.0.1:${receiver.address().port}/cb`, {
          method: "POST",
          headers: headersFor(ts, body),
          body,
        });
        assert.equal(res.status, 204);
        assert.equal(result, true);
      } finally {
        await new Promise((resolve) => receiver.close(resolve));
      }
    });

    test("parseCallback returns the payload and ids, or throws", () => {
      const h = headersFor(now, body);
      const cb = parseCallback(h, body, secret, { now });
      assert.equal(cb.callbackId, "7d0c8e0a-0000-4000-8000-000000000001");
      assert.equal(cb.event, "delivered");
      assert.equal(cb.timestamp, now);
      assert.equal(cb.payload.seq, 7);
      assert.throws(() => parseCallback(h, body + "x", secret, { now }), CallbackVerificationError);
    });
  });
});
