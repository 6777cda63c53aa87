#!/usr/bin/python3
"""A local stand-in for Twilio's Messages API and the WhatsApp Cloud API.

It speaks both wire formats as the provider reference describes them, so the
engine's SMS and WhatsApp drivers can be tested without credentials or
network: the same paths, authentication checks, success and error bodies,
and signed delivery receipts posted back to the engine's webhooks.

Usage:
    /usr/bin/python3 tests/support/provider_stub.py --dir D [--port N] [--host 127.0.0.1]
        [--mode MODE] [--recipient-mode SUFFIX=MODE ...]
        [--twilio-account-sid AC...] [--twilio-auth-token T]
        [--meta-access-token T] [--meta-app-secret S] [--wa-phone-number-id ID]
        [--callback-url BASE] [--twilio-callback-url URL] [--whatsapp-callback-url URL]
        [--callback-delay SECONDS]

Prints "READY <port>" on stdout (flushed) once listening; with --port 0 (the
default) the system picks the port and the printed one is the real one.
Stops on SIGTERM or SIGINT.

Endpoints:
    POST /2010-04-01/Accounts/{AccountSid}/Messages.json      Twilio send
        Basic auth. The user must be the account SID in the path (or an SK...
        API key); with --twilio-account-sid / --twilio-auth-token given, they
        must match those. Wrong or missing credentials: 401
        {"code":20003,"message":"Authenticate","more_info":...,"status":401}.
        Body must be application/x-www-form-urlencoded with To, From (or
        MessagingServiceSid) and Body: otherwise 400 with 21604 (To missing
        or not form-encoded), 21603 (From missing), 21602 (Body missing) or
        21211 (To not E.164). Success: 201 with the Message resource (sid
        "SM" + 32 hex, status "queued", or "accepted" with a Messaging
        Service).
    POST /v{NN}.{N}/{phone-number-id}/messages                 WhatsApp send
        Bearer auth. With --meta-access-token given the token must match;
        a missing or wrong one: 401 {"error":{"message":"Invalid OAuth access
        token - Cannot parse access token","type":"OAuthException",
        "code":190,"fbtrace_id":...}}. With --wa-phone-number-id given, another
        id in the path is a 400 GraphMethodException (code 100). The body must
        be JSON with messaging_product "whatsapp", "to" (digits, optional +)
        and a "text", "template" or "interactive" (reply buttons or a list,
        within Meta's limits) message: otherwise 400 code 100 (not
        JSON, no messaging_product), 131008 (required parameter missing) or
        131009 (parameter value not valid). Success: 200
        {"messaging_product":"whatsapp","contacts":[{"input","wa_id"}],
         "messages":[{"id":"wamid...."}]} (templates add "message_status":
        "accepted").
    POST /_stub/mode    {"mode": MODE, "recipients": {SUFFIX: MODE}}
        Replaces the modes for later requests (no auth: it listens on
        loopback only). Answers 200 with the new settings.

Modes (--mode for every request; --recipient-mode SUFFIX=MODE for a
recipient whose number, digits only, ends with SUFFIX; the longest matching
suffix wins). They apply after the request passed the checks above:
    success            the normal answer (and receipts, see below)
    error:<code>       the provider's error envelope with that code: Twilio
                       {"code","message","more_info","status"} with HTTP 401
                       for 20003, 429 for 20429, 404 for 20404, 500 for 20500,
                       400 otherwise; WhatsApp {"error":{"message","type",
                       "code","error_data":{"messaging_product","details"},
                       "fbtrace_id"}} with HTTP 401 for 0/190, 500 for
                       1/2/131000/131016/131057, 400 otherwise
    fail-later:<code>  accepted like success, then the receipts report the
                       failure: Twilio "sent" then "undelivered" with
                       ErrorCode=<code>; WhatsApp "failed" with errors[].code
    text-error:<code>  WhatsApp: a free-form "text" message answers as
                       error:<code> does, any other type (a template) as
                       success -- Meta refusing free text outside the
                       client's 24 h window (131047) while it takes
                       templates; Twilio: as success
    http401            the wrong-credentials answer above
    http429:<value>    HTTP 429, "Retry-After: <value>" (seconds or an
                       HTTP-date), Twilio code 20429 / WhatsApp code 130429
    http500            HTTP 500, Twilio code 20500 / WhatsApp code 131000
    slow:<seconds>     waits (at most 600 s), then answers like success
    drop               reads the request, then closes the connection without
                       any answer
    first:<n>:<mode>   the first n requests matching this setting get <mode>,
                       later ones success (a fault that clears, for retries)

Receipts (after an accepted send, in a background thread, --callback-delay
seconds apart, default 0.2):
    Twilio: POSTs form-encoded status callbacks "sent" then "delivered" to the
        request's StatusCallback, else --twilio-callback-url (else
        BASE/webhooks/twilio/status with --callback-url BASE). Parameters
        AccountSid, ApiVersion, From, MessageSid, MessageStatus, SmsSid,
        SmsStatus, To (+ MessagingServiceSid, RawDlrDoneDate, ErrorCode when
        they apply), signed in X-Twilio-Signature per Twilio's algorithm
        (URL + sorted name/value pairs, HMAC-SHA1 under the auth token).
        Needs --twilio-auth-token.
    WhatsApp: POSTs "statuses" webhooks "sent" then "delivered" (or one
        "failed") to --whatsapp-callback-url (else BASE/webhooks/whatsapp),
        with biz_opaque_callback_data echoed, signed in X-Hub-Signature-256
        (sha256=hex HMAC-SHA256 of the raw body under the app secret). The
        JSON escapes non-ASCII as \\uXXXX, as Meta does. Needs
        --meta-app-secret.

Records (JSON Lines in --dir, one object per line, appended and flushed):
    requests.jsonl   every request: time (epoch s), method, path (with
                     query), headers, body (UTF-8 text), provider ("twilio",
                     "whatsapp", "control", "unknown"), mode, status (null
                     when dropped)
    callbacks.jsonl  every receipt posted: time, provider, url, headers, body,
                     status (the receiver's HTTP status) or error
"""

import argparse
import base64
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

MAX_BODY = 1 << 20
MAX_SLOW = 600.0
TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/([A-Za-z0-9]+)/Messages\.json$")
WA_PATH = re.compile(r"^/(v\d+\.\d+)/([^/]+)/messages$")
E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
MODE = re.compile(r"^(first:\d+:)?(success|http401|http500|drop|error:\d+|fail-later:\d+"
                  r"|text-error:\d+|http429:.+|slow:\d+(\.\d+)?)$")

TWILIO_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number "
           "for this destination/account.",
    21608: "The number {to} is unverified. Trial accounts cannot send messages to unverified "
           "numbers.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable using the 'From' phone number via "
           "SMS.",
    21614: "'To' number is not a valid mobile number",
    21635: "'To' number cannot be a landline",
}

WA_ERRORS = {
    0: ("AuthException", "We were unable to authenticate the app user"),
    1: ("API Unknown", "An unknown error occurred"),
    2: ("API Service", "Service temporarily unavailable"),
    4: ("API Too Many Calls", "The app has reached its API call rate limit"),
    190: ("Access token has expired", "Error validating access token: Session has expired"),
    130429: ("Rate limit hit", "Cloud API message throughput has been reached"),
    131000: ("Something went wrong", "Message failed to send due to an unknown error"),
    131008: ("Required parameter is missing", "A required parameter is missing"),
    131009: ("Parameter value is not valid", "One or more parameter values are invalid"),
    131026: ("Message undeliverable", "Unable to deliver message"),
    131047: ("Re-engagement message",
             "Message failed to send because more than 24 hours have passed since the customer "
             "last replied to this number."),
    131048: ("Spam rate limit hit", "Message failed to send because there are restrictions on "
             "how many messages can be sent from this phone number."),
    131050: ("Unable to deliver the message",
             "The user has stopped marketing messages from this business."),
    131056: ("(Business Account, Consumer Account) pair rate limit hit",
             "Too many messages sent from the sender phone number to the same recipient phone "
             "number in a short period of time."),
    132000: ("Number of parameters does not match the expected number of params",
             "body: number of localizable_params does not match the expected number of params"),
    132001: ("Template name does not exist in the translation",
             "template name does not exist in the translation"),
}
WA_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


# ---------------------------------------------------------------- signatures

def twilio_signature(auth_token, url, params):
    """X-Twilio-Signature for a form POST: the URL, then for each distinct
    name in sorted order each of its distinct values in sorted order as
    name + value, HMAC-SHA1 under the auth token, base64. params is a list of
    (name, value) pairs of decoded strings."""
    names = sorted({name for name, _ in params})
    parts = [url]
    for name in names:
        for value in sorted({v for n, v in params if n == name}):
            parts.append(name + value)
    mac = hmac.new(auth_token.encode("utf-8"), "".join(parts).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def meta_signature(app_secret, raw_body):
    """X-Hub-Signature-256 for a webhook body (bytes)."""
    mac = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# ---------------------------------------------------------------- state

class Recorder:
    """Appends JSON lines to files in one folder; safe across threads."""

    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.Lock()

    def write(self, name, record):
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock:
            with open(os.path.join(self.directory, name), "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()


class Modes:
    def __init__(self, default, recipients):
        self.lock = threading.Lock()
        self.default = default
        self.recipients = dict(recipients)
        self.used = {}  # a first:<n>: setting's requests so far

    def replace(self, default, recipients):
        with self.lock:
            self.default = default
            self.recipients = dict(recipients)
            self.used = {}

    def count(self, key, mode):
        """The mode for this request of a setting (called with the lock held)."""
        m = re.match(r"^first:(\d+):(.*)$", mode)
        if not m:
            return mode
        n = self.used.get(key, 0)
        self.used[key] = n + 1
        return m.group(2) if n < int(m.group(1)) else "success"

    def snapshot(self):
        with self.lock:
            return {"mode": self.default, "recipients": dict(self.recipients)}

    def for_recipient(self, number):
        digits = re.sub(r"\D", "", number or "")
        with self.lock:
            best = None
            for suffix, mode in self.recipients.items():
                if digits.endswith(suffix) and (best is None or len(suffix) > len(best[0])):
                    best = (suffix, mode)
            if best:
                return self.count(best[0], best[1])
            return self.count("", self.default)


def interactive_problem(obj):
    """Why Meta would refuse an interactive reply-button or list message
    (the limits of its reference), or None."""
    if not isinstance(obj, dict) or obj.get("type") not in ("button", "list"):
        return "Parameter 'interactive.type' must be button or list."
    body = obj.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) \
            or not 0 < len(body["text"]) <= 1024:
        return "Parameter 'interactive.body.text' is required (1024 characters at most)."
    action = obj.get("action") if isinstance(obj.get("action"), dict) else {}
    if obj["type"] == "button":
        items = action.get("buttons")
        if not isinstance(items, list) or not 1 <= len(items) <= 3:
            return "Parameter 'action.buttons' needs 1 to 3 buttons."
        if any(not isinstance(b, dict) or b.get("type") != "reply" for b in items):
            return "Every button must be of type reply."
        items, limit = [b.get("reply") for b in items], 20
    else:
        sections = action.get("sections")
        if not isinstance(action.get("button"), str) or not 0 < len(action["button"]) <= 20 \
                or not isinstance(sections, list) or not sections:
            return "Parameters 'action.button' and 'action.sections' are required."
        items = [r for s in sections if isinstance(s, dict) for r in s.get("rows") or []]
        if not 1 <= len(items) <= 10:
            return "A list holds 1 to 10 rows."
        limit = 24
    ids = [i.get("id") for i in items if isinstance(i, dict)]
    titles = [i.get("title") for i in items if isinstance(i, dict)]
    if len(ids) != len(items) or any(not isinstance(i, str) or not 0 < len(i) <= 256 for i in ids) \
            or len(set(ids)) != len(ids):
        return "Every choice needs a unique id of 1 to 256 characters."
    if any(not isinstance(t, str) or not 0 < len(t) <= limit for t in titles):
        return "A title has 1 to %d characters." % limit
    return None


def check_mode(mode):
    if not MODE.match(mode):
        raise ValueError("unknown mode %r" % mode)
    return mode


def parse_recipient_mode(text):
    suffix, sep, mode = text.partition("=")
    if not sep or not suffix.isdigit():
        raise argparse.ArgumentTypeError("expected DIGITS=MODE, got %r" % text)
    try:
        return suffix, check_mode(mode)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def rfc2822_now():
    return email.utils.formatdate(time.time(), usegmt=False).replace("-0000", "+0000")


# ---------------------------------------------------------------- receipts

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_receipt(recorder, provider, url, headers, body):
    record = {"time": time.time(), "provider": provider, "url": url, "headers": headers,
              "body": body.decode("utf-8")}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(req, timeout=5) as resp:
            resp.read(MAX_BODY)
            record["status"] = resp.status
    except urllib.error.HTTPError as e:
        record["status"] = e.code
    except (OSError, ValueError) as e:
        record["error"] = str(e)
    recorder.write("callbacks.jsonl", record)


def twilio_receipts(cfg, url, message, final, error_code):
    params_base = [("AccountSid", message["account_sid"]), ("ApiVersion", "2010-04-01"),
                   ("From", message["from"] or ""), ("MessageSid", message["sid"]),
                   ("SmsSid", message["sid"]), ("To", message["to"])]
    if message["messaging_service_sid"]:
        params_base.append(("MessagingServiceSid", message["messaging_service_sid"]))
    for status in ("sent", final):
        time.sleep(cfg.callback_delay)
        params = params_base + [("MessageStatus", status), ("SmsStatus", status)]
        if status != "sent":
            params.append(("RawDlrDoneDate", time.strftime("%y%m%d%H%M", time.gmtime())))
        if error_code and status != "sent":
            params.append(("ErrorCode", str(error_code)))
        body = urllib.parse.urlencode(params).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": twilio_signature(cfg.twilio_auth_token, url, params),
                   "User-Agent": "TwilioProxy/1.1"}
        post_receipt(cfg.recorder, "twilio", url, headers, body)


def whatsapp_receipts(cfg, url, phone_number_id, wamid, to, callback_data, error_code):
    statuses = [("failed", error_code)] if error_code else [("sent", 0), ("delivered", 0)]
    for status, code in statuses:
        time.sleep(cfg.callback_delay)
        st = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
              "recipient_id": to}
        if callback_data is not None:
            st["biz_opaque_callback_data"] = callback_data
        if code:
            title, details = WA_ERRORS.get(code, ("Error %d" % code, "Error %d" % code))
            st["errors"] = [{"code": code, "title": title, "message": title,
                             "error_data": {"details": details}, "href": WA_HREF}]
        else:
            st["conversation"] = {"id": secrets.token_hex(16),
                                  "origin": {"type": "utility"}}
            st["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "utility"}
        payload = {"object": "whatsapp_business_account",
                   "entry": [{"id": cfg.waba_id, "changes": [{"field": "messages", "value": {
                       "messaging_product": "whatsapp",
                       "metadata": {"display_phone_number": cfg.display_number,
                                    "phone_number_id": phone_number_id},
                       "statuses": [st]}}]}]}
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": meta_signature(cfg.meta_app_secret, body),
                   "User-Agent": "facebookexternalua"}
        post_receipt(cfg.recorder, "whatsapp", url, headers, body)


def spawn(fn, *args):
    threading.Thread(target=fn, args=args, daemon=True).start()


# ---------------------------------------------------------------- HTTP

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "provider-stub"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass  # the JSONL record is the log

    # -- plumbing

    def read_body(self):
        length = self.headers.get("Content-Length")
        try:
            n = int(length) if length else 0
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n) if n else b""

    def begin_record(self, provider, raw):
        self.record = {"time": time.time(), "method": self.command, "path": self.path,
                       "headers": {k: v for k, v in self.headers.items()},
                       "body": raw.decode("utf-8", errors="replace") if raw is not None else None,
                       "provider": provider, "mode": None, "status": None}

    def finish_record(self):
        self.server.cfg.recorder.write("requests.jsonl", self.record)

    def answer(self, status, obj, extra_headers=None):
        body = json.dumps(obj).encode("utf-8")
        # Recorded before the answer goes out, so a client that reads the
        # records right after its answer always finds this request there.
        self.record["status"] = status
        self.finish_record()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.finish_record()

    def apply_mode(self, mode):
        """Handles the modes shared by both providers; returns (done, mode
        after any slow wait)."""
        self.record["mode"] = mode
        if mode == "drop":
            self.drop()
            return True, mode
        if mode.startswith("slow:"):
            time.sleep(min(float(mode[5:]), MAX_SLOW))
            return False, "success"
        return False, mode

    # -- dispatch

    def do_GET(self):
        self.begin_record("unknown", b"")
        self.answer(404, {"error": "not found"})

    def do_POST(self):
        raw = self.read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_stub/mode":
            self.begin_record("control", raw)
            return self.control(raw)
        m = TWILIO_PATH.match(path)
        if m:
            self.begin_record("twilio", raw)
            return self.twilio(m.group(1), raw)
        m = WA_PATH.match(path)
        if m:
            self.begin_record("whatsapp", raw)
            return self.whatsapp(m.group(2), raw)
        self.begin_record("unknown", raw)
        self.answer(404, {"error": "not found"})

    def control(self, raw):
        try:
            req = json.loads(raw or b"{}")
            mode = check_mode(req.get("mode", "success"))
            recipients = {str(k): check_mode(v) for k, v in req.get("recipients", {}).items()}
            if not all(k.isdigit() for k in recipients):
                raise ValueError("recipient suffixes are digits")
        except (ValueError, AttributeError) as e:
            return self.answer(400, {"error": str(e)})
        self.server.modes.replace(mode, recipients)
        self.answer(200, self.server.modes.snapshot())

    # -- Twilio

    def twilio_error(self, status, code, to="", headers=None):
        text = TWILIO_MESSAGES.get(code, "Error %d" % code).replace("{to}", to)
        self.answer(status, {"code": code, "message": text,
                             "more_info": "https://www.twilio.com/docs/errors/%d" % code,
                             "status": status}, headers)

    def twilio_authorised(self, path_sid):
        cfg = self.server.cfg
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(auth[6:], validate=True).decode(
                "utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not sep:
            return False
        if not (user == path_sid or user.startswith("SK")):
            return False
        if cfg.twilio_account_sid and path_sid != cfg.twilio_account_sid:
            return False
        if cfg.twilio_auth_token is not None and not hmac.compare_digest(
                password.encode(), cfg.twilio_auth_token.encode()):
            return False
        return bool(password)

    def twilio(self, path_sid, raw):
        if raw is None:
            return self.answer(413, {"error": "body too large"})
        if not self.twilio_authorised(path_sid):
            self.record["mode"] = "auth"
            return self.twilio_error(401, 20003)
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return self.twilio_error(400, 21604)
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                           strict_parsing=bool(raw))
        except (UnicodeDecodeError, ValueError):
            return self.twilio_error(400, 21604)
        form = dict(pairs)
        to = form.get("To", "")
        if not to:
            return self.twilio_error(400, 21604)
        number = to[9:] if to.startswith("whatsapp:") else to
        if not E164.match(number):
            return self.twilio_error(400, 21211, to=to)
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self.twilio_error(400, 21603)
        if not form.get("Body") and not form.get("MediaUrl") and not form.get("ContentSid"):
            return self.twilio_error(400, 21602)

        done, mode = self.apply_mode(self.server.modes.for_recipient(number))
        if done:
            return
        if mode.startswith("text-error:"):
            mode = "success"  # an SMS has no template to fall back on
        if mode == "http401":
            return self.twilio_error(401, 20003)
        if mode.startswith("http429:"):
            return self.twilio_error(429, 20429, headers={"Retry-After": mode[8:]})
        if mode == "http500":
            return self.twilio_error(500, 20500)
        if mode.startswith("error:"):
            code = int(mode[6:])
            status = {20003: 401, 20429: 429, 20404: 404, 20500: 500}.get(code, 400)
            return self.twilio_error(status, code, to=to)
        error_code = int(mode[11:]) if mode.startswith("fail-later:") else 0

        sid = "SM" + secrets.token_hex(16)
        service = form.get("MessagingServiceSid")
        now = rfc2822_now()
        base = "/2010-04-01/Accounts/%s/Messages/%s" % (path_sid, sid)
        message = {
            "account_sid": path_sid, "api_version": "2010-04-01", "body": form.get("Body", ""),
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": form.get("From"), "messaging_service_sid": service, "num_media": "0",
            "num_segments": "0" if service else "1", "price": None, "price_unit": "USD",
            "sid": sid, "status": "accepted" if service else "queued",
            "subresource_uris": {"media": base + "/Media.json"}, "to": to, "uri": base + ".json",
        }
        self.answer(201, message)

        cfg = self.server.cfg
        url = form.get("StatusCallback") or cfg.twilio_callback_url
        if url and cfg.twilio_auth_token:
            final = "undelivered" if error_code else "delivered"
            spawn(twilio_receipts, cfg, url, message, final, error_code)

    # -- WhatsApp

    def wa_error(self, status, code, etype="OAuthException", message=None, details=None,
                 headers=None):
        title, text = WA_ERRORS.get(code, ("Error %d" % code, "Error %d" % code))
        err = {"message": message or "(#%d) %s" % (code, title), "type": etype, "code": code,
               "error_data": {"messaging_product": "whatsapp", "details": details or text},
               "fbtrace_id": base64.b64encode(secrets.token_bytes(15)).decode("ascii")}
        self.answer(status, {"error": err}, headers)

    def wa_auth_error(self):
        self.answer(401, {"error": {
            "message": "Invalid OAuth access token - Cannot parse access token",
            "type": "OAuthException", "code": 190,
            "fbtrace_id": base64.b64encode(secrets.token_bytes(15)).decode("ascii")}})

    def whatsapp(self, phone_number_id, raw):
        cfg = self.server.cfg
        if raw is None:
            return self.answer(413, {"error": "body too large"})
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if not token or (cfg.meta_access_token is not None and not hmac.compare_digest(
                token.encode(), cfg.meta_access_token.encode())):
            self.record["mode"] = "auth"
            return self.wa_auth_error()
        if cfg.wa_phone_number_id and phone_number_id != cfg.wa_phone_number_id:
            return self.wa_error(400, 100, etype="GraphMethodException",
                                 message="Unsupported post request. Object with ID '%s' does not "
                                 "exist, cannot be loaded due to missing permissions, or does "
                                 "not support this operation" % phone_number_id)
        try:
            req = json.loads(raw.decode("utf-8"))
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError):
            return self.wa_error(400, 100, message="(#100) Invalid parameter",
                                 details="The request body is not valid JSON")
        if req.get("messaging_product") != "whatsapp":
            return self.wa_error(400, 100,
                                 message="(#100) The parameter messaging_product is required.",
                                 details="messaging_product must be whatsapp")
        to = req.get("to")
        if not to:
            return self.wa_error(400, 131008, details="Parameter 'to' is required.")
        if not isinstance(to, str) or not E164.match(to if to.startswith("+") else "+" + to):
            return self.wa_error(400, 131009, details="Parameter 'to' is not a phone number.")
        mtype = req.get("type", "text")
        if mtype == "text":
            text = req.get("text")
            if not isinstance(text, dict) or not isinstance(text.get("body"), str) \
                    or not text["body"]:
                return self.wa_error(400, 131008, details="Parameter 'text.body' is required.")
        elif mtype == "template":
            tpl = req.get("template")
            if not isinstance(tpl, dict) or not tpl.get("name") or \
                    not isinstance(tpl.get("language"), dict) or not tpl["language"].get("code"):
                return self.wa_error(400, 131008,
                                     details="Parameters 'template.name' and "
                                     "'template.language.code' are required.")
        elif mtype == "interactive":
            why = interactive_problem(req.get("interactive"))
            if why:
                return self.wa_error(400, 131009, details=why)
        else:
            return self.wa_error(400, 131009, details="Unsupported message type '%s'." % mtype)

        done, mode = self.apply_mode(self.server.modes.for_recipient(to))
        if done:
            return
        if mode.startswith("text-error:"):
            mode = "error:" + mode[11:] if mtype != "template" else "success"
        if mode == "http401":
            return self.wa_auth_error()
        if mode.startswith("http429:"):
            return self.wa_error(429, 130429, headers={"Retry-After": mode[8:]})
        if mode == "http500":
            return self.wa_error(500, 131000)
        if mode.startswith("error:"):
            code = int(mode[6:])
            status = 401 if code in (0, 190) else \
                500 if code in (1, 2, 131000, 131016, 131057) else 400
            return self.wa_error(status, code)
        error_code = int(mode[11:]) if mode.startswith("fail-later:") else 0

        wa_id = to.lstrip("+")
        wamid = "wamid." + base64.b64encode(b"\x18\x0b" + secrets.token_bytes(33)).decode("ascii")
        sent = {"id": wamid}
        if mtype == "template":
            sent["message_status"] = "accepted"
        self.answer(200, {"messaging_product": "whatsapp",
                          "contacts": [{"input": to, "wa_id": wa_id}], "messages": [sent]})
        if cfg.whatsapp_callback_url and cfg.meta_app_secret:
            data = req.get("biz_opaque_callback_data")
            spawn(whatsapp_receipts, cfg, cfg.whatsapp_callback_url, phone_number_id, wamid,
                  wa_id, data if isinstance(data, str) else None, error_code)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog of 5 drops connection attempts
    # when an engine opens several at once, which a real provider never
    # does; the client would see connect timeouts that are the stub's own.
    request_queue_size = 128


def main(argv=None):
    p = argparse.ArgumentParser(description="Local Twilio and WhatsApp Cloud API stub.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", required=True, help="folder for requests.jsonl and callbacks.jsonl")
    p.add_argument("--mode", default="success")
    p.add_argument("--recipient-mode", action="append", default=[], type=parse_recipient_mode,
                   metavar="SUFFIX=MODE")
    p.add_argument("--twilio-account-sid")
    p.add_argument("--twilio-auth-token")
    p.add_argument("--meta-access-token")
    p.add_argument("--meta-app-secret")
    p.add_argument("--wa-phone-number-id")
    p.add_argument("--wa-business-account-id", dest="waba_id", default="102290129340398")
    p.add_argument("--wa-display-number", dest="display_number", default="15550000000")
    p.add_argument("--callback-url", help="base URL: /webhooks/twilio/status and "
                   "/webhooks/whatsapp are appended")
    p.add_argument("--twilio-callback-url")
    p.add_argument("--whatsapp-callback-url")
    p.add_argument("--callback-delay", type=float, default=0.2)
    cfg = p.parse_args(argv)
    try:
        check_mode(cfg.mode)
    except ValueError as e:
        p.error(str(e))
    if cfg.callback_url:
        base = cfg.callback_url.rstrip("/")
        cfg.twilio_callback_url = cfg.twilio_callback_url or base + "/webhooks/twilio/status"
        cfg.whatsapp_callback_url = cfg.whatsapp_callback_url or base + "/webhooks/whatsapp"
    if cfg.whatsapp_callback_url and not cfg.meta_app_secret:
        p.error("WhatsApp receipts need --meta-app-secret to be signed")
    if cfg.twilio_callback_url and not cfg.twilio_auth_token:
        p.error("Twilio receipts need --twilio-auth-token to be signed")
    os.makedirs(cfg.dir, exist_ok=True)
    cfg.recorder = Recorder(cfg.dir)

    server = Server((cfg.host, cfg.port), Handler)
    server.cfg = cfg
    server.modes = Modes(cfg.mode, cfg.recipient_mode)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("READY %d" % server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
