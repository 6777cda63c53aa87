"""Client for the crier HTTP API (docs/openapi.yaml) and verifier of the
workflow callbacks crier sends (docs/callbacks.md).

Standard library only, so it drops into any Python 3.8+ workflow service.
"""

import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = [
    "Client",
    "CrierError",
    "CallbackVerificationError",
    "DEFAULT_TOLERANCE_SECONDS",
    "derive_idempotency_key",
    "verify_callback",
    "parse_callback",
]

#: Seconds a callback timestamp may be away from our clock (docs/callbacks.md).
DEFAULT_TOLERANCE_SECONDS = 300

# ASCII digits only: str.isdigit() would also accept digits such as "²".
_TIMESTAMP = re.compile(r"[0-9]+")


class CrierError(Exception):
    """A non-2xx answer from crier.

    ``code`` is the stable ``error.code`` of the body (meant for programs),
    ``message`` is for people; ``body`` is the parsed body, or its text when
    it is not JSON.
    """

    def __init__(self, status, code, message, body=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body = body

    def __repr__(self):
        return "CrierError(status=%r, code=%r, message=%r)" % (self.status, self.code, self.message)


class CallbackVerificationError(Exception):
    """Raised by parse_callback when a callback must be refused (answer 401)."""


def derive_idempotency_key(plan_id, message_type, step=None):
    """The automatic Idempotency-Key of one workflow step.

    Lower-case hex SHA-256 of the UTF-8 string
    ``plan_id + ":" + message_type + ":" + step`` (step "" when None).
    Deterministic, so a retried step sends the same key and crier answers it
    with the first answer instead of creating a second message. The
    JavaScript client derives the same key.
    """
    s = "" if step is None else str(step)
    return hashlib.sha256(("%s:%s:%s" % (plan_id, message_type, s)).encode("utf-8")).hexdigest()


class Client:
    """Calls crier with one bearer token (``CRIER_API_TOKENS``)."""

    def __init__(self, base_url, api_key, timeout=30.0, opener=None):
        if not base_url:
            raise ValueError("base_url is required")
        if not api_key:
            raise ValueError("api_key is required")
        # Strip trailing slashes so "http://host/" and "http://host" build the same paths.
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        # crier never answers with a redirect; a default opener is enough,
        # and an injected one lets callers add proxies or TLS settings.
        self._open = (opener or urllib.request.build_opener()).open

    def create_communication(self, request, idempotency_key=None, step=None):
        """POST /v1/communications; returns the 202 answer (communication_id, status, decision).

        ``step`` (or ``request["step"]``) names the workflow step for the
        automatic key. It is never sent: the request schema refuses unknown
        fields.
        """
        if not isinstance(request, dict):
            raise TypeError("request must be a dict")
        body = dict(request)
        body_step = body.pop("step", None)
        if idempotency_key is None:
            idempotency_key = derive_idempotency_key(
                body.get("plan_id"), body.get("message_type"), step if step is not None else body_step
            )
        return self._request("POST", "/v1/communications", body=body,
                             headers={"Idempotency-Key": idempotency_key})

    def get_communication(self, communication_id):
        """GET /v1/communications/{id}: the communication with its events."""
        return self._request("GET", "/v1/communications/" + _segment(communication_id))

    def list_for_plan(self, plan_id, status=None, limit=None):
        """GET /v1/plans/{plan_id}/communications, newest first.

        The API has no status filter, so ``status`` (one status or a list) is
        applied here to the page the server returned; ``limit`` (1 to 500)
        bounds that page before the filter.
        """
        path = "/v1/plans/%s/communications" % _segment(plan_id)
        if limit is not None:
            path += "?" + urllib.parse.urlencode({"limit": limit})
        data = self._request("GET", path)
        if status is not None and isinstance(data, dict) and isinstance(data.get("communications"), list):
            wanted = {status} if isinstance(status, str) else set(status)
            data["communications"] = [c for c in data["communications"] if c.get("status") in wanted]
        return data

    #: list_communications' keyword arguments, by the API's query names.
    _FILTERS = ("status", "review", "plan_id", "client_id", "message_type", "since", "until",
                "limit")

    def list_communications(self, **filters):
        """GET /v1/communications: the review queue and other listings
        (operator or admin token). Filters: status, review ("open",
        "retried", "resolved"), plan_id, client_id, message_type, since,
        until ("2026-11-24T22:33:50Z") and limit; the server applies them.
        """
        unknown = set(filters) - set(self._FILTERS)
        if unknown:
            raise TypeError("unknown filter: %s" % ", ".join(sorted(unknown)))
        query = [(k, filters[k]) for k in self._FILTERS if filters.get(k) is not None]
        path = "/v1/communications" + ("?" + urllib.parse.urlencode(query) if query else "")
        return self._request("GET", path)

    def retry_communication(self, communication_id):
        """POST /v1/communications/{id}/retry: decided again and sent."""
        return self._request("POST", "/v1/communications/%s/retry" % _segment(communication_id))

    def resolve_communication(self, communication_id, note=None):
        """POST /v1/communications/{id}/resolve: out of the review queue."""
        body = {} if note is None else {"note": str(note)}
        return self._request("POST", "/v1/communications/%s/resolve" % _segment(communication_id),
                             body=body)

    def _request(self, method, path, body=None, headers=None):
        hdrs = {"Accept": "application/json", "Authorization": "Bearer " + self.api_key}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.base_url + path, data=data, headers=hdrs, method=method)
        try:
            with self._open(req, timeout=self.timeout) as res:
                status, raw = res.status, res.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
            e.close()
            _raise_for(status, raw, e.reason)
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise CrierError(status, "invalid_response", "response is not JSON", raw.decode("utf-8", "replace"))


def _segment(value):
    # Escape everything, "/" included, so an id cannot reach another path.
    return urllib.parse.quote(str(value), safe="")


def _raise_for(status, raw, reason):
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None  # e.g. an HTML page from a proxy in front of crier
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        err = {}
    # A body that is not crier's error shape still becomes a CrierError,
    # so callers have one thing to catch.
    code = err.get("code") if isinstance(err.get("code"), str) else "http_error"
    message = err.get("message") if isinstance(err.get("message"), str) else (
        "HTTP %d%s" % (status, " " + reason if reason else ""))
    raise CrierError(status, code, message, data if data is not None else text)


def _get_header(headers, name):
    """One header from a dict with keys in any case, an http.client /
    email.message headers object, or a list of (name, value) pairs.
    Returns None when it is absent or given more than once (ambiguous)."""
    if headers is None:
        return None
    if hasattr(headers, "get_all"):  # http.client.HTTPMessage, email.message.Message
        values = headers.get_all(name) or []
    else:
        items = headers.items() if hasattr(headers, "items") else headers
        lower = name.lower()
        values = [v for k, v in items if str(k).lower() == lower]
    if len(values) != 1:
        return None
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if isinstance(value, str) else None


def _to_bytes(value, what):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    # A parsed JSON object cannot be verified: its bytes are gone.
    raise TypeError("%s must be str or bytes" % what)


def _check_callback(headers, raw_body, secret, tolerance_seconds, now):
    key = _to_bytes(secret, "secret")
    if not key:
        raise ValueError("secret must not be empty")
    body = _to_bytes(raw_body, "raw_body")

    ts = _get_header(headers, "X-Crier-Timestamp")
    sig = _get_header(headers, "X-Crier-Signature")
    if ts is None or sig is None:
        return "missing or repeated signature headers"
    if not _TIMESTAMP.fullmatch(ts):
        return "malformed timestamp"
    current = time.time() if now is None else float(now)
    if abs(current - int(ts)) > tolerance_seconds:
        return "timestamp outside the tolerance window"

    # Signed message: the timestamp's ASCII digits, ".", the body, byte for byte.
    mac = hmac.new(key, ts.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sig.encode("utf-8"), ("sha256=" + mac).encode("ascii")):
        return "signature mismatch"
    return None


def verify_callback(headers, raw_body, secret, tolerance_seconds=DEFAULT_TOLERANCE_SECONDS, now=None):
    """True when the callback carries a valid X-Crier-Signature for this body
    and a timestamp within ``tolerance_seconds`` of ``now`` (Unix seconds,
    default the current time). Refuse the request with 401 otherwise.

    Replays inside the window are not detected here: deduplicate on
    X-Crier-Callback-Id.
    """
    return _check_callback(headers, raw_body, secret, tolerance_seconds, now) is None


def parse_callback(headers, raw_body, secret, tolerance_seconds=DEFAULT_TOLERANCE_SECONDS, now=None):
    """Verifies, then parses a callback.

    Returns a dict with ``callback_id``, ``event``, ``timestamp`` and
    ``payload``; raises CallbackVerificationError when it must be refused.
    """
    reason = _check_callback(headers, raw_body, secret, tolerance_seconds, now)
    if reason is not None:
        raise CallbackVerificationError(reason)
    try:
        payload = json.loads(_to_bytes(raw_body, "raw_body").decode("utf-8"))
    except ValueError:
        raise CallbackVerificationError("body is not JSON")
    event = _get_header(headers, "X-Crier-Event")
    if event is None and isinstance(payload, dict):
        event = payload.get("type")
    return {
        "callback_id": _get_header(headers, "X-Crier-Callback-Id"),
        "event": event,
        "timestamp": int(_get_header(headers, "X-Crier-Timestamp")),
        "payload": payload,
    }
