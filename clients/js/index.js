// Client for the crier HTTP API (docs/openapi.yaml) and verifier of the
// workflow callbacks crier sends (docs/callbacks.md). No dependencies: it
// uses the global fetch and node:crypto of Node 18+.

import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** Seconds a callback timestamp may be away from our clock (docs/callbacks.md). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * A non-2xx answer from crier. `code` is the stable `error.code` of the body
 * (meant for programs); `message` is for people.
 */
export class CrierError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = "CrierError";
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** Thrown by parseCallback when a callback must be refused (answer 401). */
export class CallbackVerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = "CallbackVerificationError";
  }
}

/**
 * The automatic Idempotency-Key of one workflow step:
 * lower-case hex SHA-256 of the UTF-8 string
 *   plan_id + ":" + message_type + ":" + step
 * (step "" when absent). Deterministic, so a retried step sends the same key
 * and crier answers it with the first answer instead of creating a second
 * message. The Python client derives the same key.
 */
export function deriveIdempotencyKey(planId, messageType, step) {
  const s = step === undefined || step === null ? "" : String(step);
  return createHash("sha256")
    .update(`${planId}:${messageType}:${s}`, "utf8")
    .digest("hex");
}

/**
 * @param {{baseUrl: string, apiKey: string, fetch?: typeof fetch, timeoutMs?: number}} options
 */
export function createClient({ baseUrl, apiKey, fetch: fetchImpl, timeoutMs } = {}) {
  if (!baseUrl) throw new TypeError("baseUrl is required");
  if (!apiKey) throw new TypeError("apiKey is required");
  const doFetch = fetchImpl ?? globalThis.fetch;
  if (typeof doFetch !== "function") {
    throw new TypeError("no fetch available: pass options.fetch");
  }
  // Strip trailing slashes so "http://host/" and "http://host" build the same paths.
  const root = String(baseUrl).replace(/\/+$/, "");

  async function request(method, path, { body, headers = {} } = {}) {
    const init = {
      method,
      headers: {
        Accept: "application/json",
        Authorization: `Bearer ${apiKey}`,
        ...headers,
      },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (timeoutMs) init.signal = AbortSignal.timeout(timeoutMs);

    const res = await doFetch(root + path, init);
    const text = await res.text();
    let data = null;
    if (text !== "") {
      try {
        data = JSON.parse(text);
      } catch {
        data = null; // e.g. an HTML page from a proxy in front of crier
      }
    }
    if (!res.ok) {
      const err = data && typeof data === "object" ? data.error : null;
      // A body that is not crier's error shape (a proxy, a load balancer)
      // still becomes a CrierError, so callers have one thing to catch.
      const code = err && typeof err.code === "string" ? err.code : "http_error";
      const message =
        err && typeof err.message === "string"
          ? err.message
          : `HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}`;
      throw new CrierError(res.status, code, message, data ?? text);
    }
    if (data === null && text !== "") {
      throw new CrierError(res.status, "invalid_response", "response is not JSON", text);
    }
    return data;
  }

  return {
    /**
     * POST /v1/communications. `step` (in options, or as request.step) names
     * the workflow step for the automatic key; it is never sent, because the
     * request schema refuses unknown fields.
     */
    async createCommunication(req, { idempotencyKey, step } = {}) {
      if (!req || typeof req !== "object") throw new TypeError("request must be an object");
      const { step: bodyStep, ...body } = req;
      const key =
        idempotencyKey ??
        deriveIdempotencyKey(body.plan_id, body.message_type, step ?? bodyStep);
      return request("POST", "/v1/communications", {
        body,
        headers: { "Idempotency-Key": key },
      });
    },

    /** GET /v1/communications/{id}: the communication with its events. */
    async getCommunication(id) {
      return request("GET", `/v1/communications/${encodeURIComponent(id)}`);
    },

    /**
     * GET /v1/plans/{plan_id}/communications, newest first. The API has no
     * status filter, so `status` is applied here to the page the server
     * returned; `limit` bounds that page before the filter.
     */
    async listForPlan(planId, { status, limit } = {}) {
      const qs = limit === undefined || limit === null ? "" : `?limit=${encodeURIComponent(limit)}`;
      const data = await request(
        "GET",
        `/v1/plans/${encodeURIComponent(planId)}/communications${qs}`,
      );
      if (status !== undefined && status !== null && Array.isArray(data?.communications)) {
        const wanted = Array.isArray(status) ? status : [status];
        data.communications = data.communications.filter((c) => wanted.includes(c.status));
      }
      return data;
    },

    /**
     * GET /v1/communications: the review queue and other listings
     * (operator or admin token). Filters: status, review ("open",
     * "retried", "resolved"), planId, clientId, messageType, since, until
     * ("2026-11-24T22:33:50Z") and limit; the server applies them.
     */
    async listCommunications(filters = {}) {
      const names = {
        status: "status",
        review: "review",
        planId: "plan_id",
        clientId: "client_id",
        messageType: "message_type",
        since: "since",
        until: "until",
        limit: "limit",
      };
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(filters)) {
        if (!(k in names)) throw new TypeError(`unknown filter: ${k}`);
        if (v !== undefined && v !== null) qs.append(names[k], String(v));
      }
      const q = qs.toString();
      return request("GET", `/v1/communications${q ? "?" + q : ""}`);
    },

    /** POST /v1/communications/{id}/retry: decided again and sent (202). */
    async retryCommunication(id) {
      return request("POST", `/v1/communications/${encodeURIComponent(id)}/retry`);
    },

    /** POST /v1/communications/{id}/resolve: out of the review queue, with a note. */
    async resolveCommunication(id, note) {
      return request("POST", `/v1/communications/${encodeURIComponent(id)}/resolve`, {
        body: note === undefined || note === null ? {} : { note: String(note) },
      });
    },
  };
}

// Reads one header from a Headers instance, a Map, or a plain object whose
// keys may be in any case (node:http lower-cases them, other stacks do not).
function getHeader(headers, name) {
  if (!headers) return undefined;
  if (typeof headers.get === "function") {
    const v = headers.get(name);
    return v === null ? undefined : v;
  }
  const lower = name.toLowerCase();
  for (const k of Object.keys(headers)) {
    if (k.toLowerCase() === lower) return headers[k];
  }
  return undefined;
}

function toBuffer(value, what) {
  if (typeof value === "string") return Buffer.from(value, "utf8");
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  // A parsed JSON object cannot be verified: its bytes are gone.
  throw new TypeError(`${what} must be a string or bytes`);
}

function nowSeconds(now) {
  if (now === undefined || now === null) return Date.now() / 1000;
  if (now instanceof Date) return now.getTime() / 1000;
  return Number(now);
}

// Why a callback is refused, or null when it is genuine.
function checkCallback(headers, rawBody, secret, { toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now } = {}) {
  const key = toBuffer(secret, "secret");
  if (key.length === 0) throw new TypeError("secret must not be empty");
  const body = toBuffer(rawBody, "rawBody");

  const ts = getHeader(headers, "X-Crier-Timestamp");
  const sig = getHeader(headers, "X-Crier-Signature");
  // An array means the header came twice: ambiguous, so refused.
  if (typeof ts !== "string" || typeof sig !== "string") return "missing or repeated signature headers";
  if (!/^[0-9]+$/.test(ts)) return "malformed timestamp";
  if (Math.abs(nowSeconds(now) - Number(ts)) > toleranceSeconds) return "timestamp outside the tolerance window";

  // Signed message: the timestamp's ASCII digits, ".", the body, byte for byte.
  const mac = createHmac("sha256", key)
    .update(Buffer.from(ts + ".", "ascii"))
    .update(body)
    .digest("hex");
  const expected = Buffer.from("sha256=" + mac, "utf8");
  const given = Buffer.from(sig, "utf8");
  // timingSafeEqual throws on unequal lengths; the length is public anyway.
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return "signature mismatch";
  return null;
}

/**
 * True when the callback carries a valid X-Crier-Signature for this body and
 * a timestamp within the window. Refuse the request with 401 otherwise.
 * Replays inside the window are not detected here: deduplicate on
 * X-Crier-Callback-Id.
 */
export function verifyCallback(headers, rawBody, secret, options) {
  return checkCallback(headers, rawBody, secret, options) === null;
}

/**
 * Verifies, then parses a callback. Throws CallbackVerificationError when
 * it must be refused.
 * @returns {{callbackId: string|undefined, event: string|undefined, timestamp: number, payload: any}}
 */
export function parseCallback(headers, rawBody, secret, options) {
  const reason = checkCallback(headers, rawBody, secret, options);
  if (reason !== null) throw new CallbackVerificationError(reason);
  let payload;
  try {
    payload = JSON.parse(toBuffer(rawBody, "rawBody").toString("utf8"));
  } catch {
    throw new CallbackVerificationError("body is not JSON");
  }
  return {
    callbackId: getHeader(headers, "X-Crier-Callback-Id"),
    event: getHeader(headers, "X-Crier-Event") ?? payload?.type,
    timestamp: Number(getHeader(headers, "X-Crier-Timestamp")),
    payload,
  };
}
