"""The demo's workflow: drives the event-planning lifecycle of three sample
clients through crier's HTTP API, as the planning workflow would, and shows
what crier decided and delivered.

    CRIER_DEMO_TOKEN=<workflow token> /usr/bin/python3 tests/demo/driver.py \\
        --url http://127.0.0.1:PORT --outbox DIR --attachment tests/demo/blueprint.pdf
    /usr/bin/python3 tests/demo/driver.py --show FILE.eml

For each client: welcome -> budget_summary -> vendor_options ->
selection_confirmation -> blueprint_delivery (with the PDF attached) ->
error_notification, with the urgencies of the workflow's trigger points.
Then it waits until every message is settled (final, or scheduled for later
by the timing rules) and prints one row per message.

The channels show what the rules pick: Asha Rao asked for WhatsApp for her
vendor options and gets the error notification by SMS; Daniel Okafor gave
no phone, so everything is email; Mei Tanaka's number ends in 0000, which
the sandbox SMS transport refuses as Twilio would an invalid number
(permanent error 21211), so her error notification falls back to email and
the "fallbacks" lines after the table show both attempts.

Normal-urgency messages go out in the client's local business hours, so each
sample client is placed in a time zone where it is business hours right now:
the demo then shows the whole lifecycle whenever it is run. The time zone is
shown beside each client.
"""

import argparse
import base64
import datetime
import email
import email.policy
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
import zoneinfo

LIFECYCLE = [
    ("welcome", "normal"),
    ("budget_summary", "normal"),
    ("vendor_options", "high"),
    ("selection_confirmation", "normal"),
    ("blueprint_delivery", "high"),
    ("error_notification", "critical"),
]

FINAL = ("sent", "delivered", "opened", "clicked", "failed", "bounced", "skipped", "batched")

# Fictitious people: example domains and numbers from ranges kept for drama
# and documentation, so nothing here can reach anyone.
CLIENTS = [
    {"name": "Asha Rao", "email": "asha.rao@example.com", "phone": "+15555550101",
     "consent": {"sms": True, "whatsapp": True}, "event_type": "wedding",
     "prefers": {"vendor_options": "whatsapp"}},
    {"name": "Daniel Okafor", "email": "daniel.okafor@example.org", "phone": None,
     "consent": {"sms": False, "whatsapp": False}, "event_type": "corporate retreat"},
    {"name": "Mei Tanaka", "email": "mei.tanaka@example.net", "phone": "+447700900000",
     "consent": {"sms": True, "whatsapp": False}, "event_type": "birthday party"},
]

# Candidate zones spread around the globe: any 7-hour window of the day holds
# at least three of them.
ZONES = ["Asia/Kolkata", "Europe/London", "America/New_York", "Asia/Tokyo", "Europe/Berlin",
         "America/Los_Angeles", "Australia/Sydney", "Asia/Dubai", "America/Sao_Paulo",
         "Asia/Singapore", "Pacific/Auckland", "Pacific/Honolulu", "America/Chicago"]

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Api:
    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode("utf-8") if body is not None else None
        hdrs = {"Authorization": "Bearer " + self.token}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, headers=hdrs, method=method)
        try:
            with _opener.open(req, timeout=30) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        try:
            return status, json.loads(payload.decode("utf-8"))
        except ValueError:
            return status, payload.decode("utf-8", "replace")


def business_zones(now_utc, count):
    """The first zones of ZONES where it is between 09:30 and 17:00 now, so
    that a normal message is due at once and sent well before 18:00."""
    zones = []
    for z in ZONES:
        local = now_utc.astimezone(zoneinfo.ZoneInfo(z))
        minutes = local.hour * 60 + local.minute
        if 9 * 60 + 30 <= minutes < 17 * 60:
            zones.append(z)
    if not zones:
        zones = ["UTC"]
    while len(zones) < count:
        zones += zones
    return zones[:count]


def shown_path(path):
    """Relative to the current folder when below it, else as is."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def example_context(source, message_type):
    path = os.path.join(source, "templates", "examples", message_type + ".json")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    if isinstance(data, dict) and isinstance(data.get("context"), dict) and len(data) <= 2:
        return data["context"]
    return data if isinstance(data, dict) else {}


def with_plan(value, plan_id):
    """The example's links point at the example's plan: point them at ours."""
    if isinstance(value, str):
        return re.sub(r"/plans/[0-9a-fA-F-]{36}", "/plans/" + plan_id, value)
    if isinstance(value, list):
        return [with_plan(v, plan_id) for v in value]
    if isinstance(value, dict):
        return {k: with_plan(v, plan_id) for k, v in value.items()}
    return value


def context_for(source, message_type, client, plan_id):
    ctx = example_context(source, message_type)
    # Personalise only what the catalogue's example already has, so the
    # context keeps the shape the templates expect.
    for key, value in (("client_name", client["name"]), ("event_type", client["event_type"])):
        if key in ctx:
            ctx[key] = value
    if not ctx:
        ctx = {"client_name": client["name"], "event_type": client["event_type"],
               "event_date": "2027-02-14"}
    return with_plan(ctx, plan_id)


def decision_summary(decision, now):
    if not isinstance(decision, dict):
        return "?"
    channel = decision.get("primary_channel") or "skip"
    chain = [channel] + list(decision.get("fallback_channels") or [])
    when = "now"
    send_at = decision.get("send_at")
    if isinstance(send_at, str):
        try:
            t = datetime.datetime.fromisoformat(send_at.replace("Z", "+00:00"))
            if (t - now).total_seconds() > 5:
                when = "at " + t.strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            when = send_at
    elif isinstance(send_at, (int, float)) and send_at - now.timestamp() > 5:
        when = "at " + datetime.datetime.fromtimestamp(send_at, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC")
    return "%s %s (%s)" % (" -> ".join(chain), when, decision.get("rules_version", "?"))


def output_file(outbox, comm):
    """The sandbox file of a communication: named after its id, or named in
    one of its events."""
    cid = comm.get("communication_id", "")
    try:
        for name in sorted(os.listdir(outbox)):
            if name.startswith(cid):
                return os.path.join(outbox, name)
    except FileNotFoundError:
        pass
    for ev in comm.get("events") or []:
        resp = ev.get("provider_response") if isinstance(ev, dict) else None
        if isinstance(resp, dict) and resp.get("file"):
            return resp["file"]
    return "-"


def settled(comm, now):
    status = comm.get("status")
    if status in FINAL:
        return True
    if status == "pending":
        send_at = comm.get("send_at")
        try:
            t = datetime.datetime.fromisoformat(str(send_at).replace("Z", "+00:00"))
            return (t - now).total_seconds() > 5
        except ValueError:
            return False
    return False


def table(rows, headers):
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, headers))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, r)))


def show(path):
    """Prints a stored message as a mail client would list it."""
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
        if msg[name] is not None:
            print("%-17s %s" % (name + ":", msg[name]))
    for part in msg.walk():
        if part.is_multipart():
            print("part: %s" % part.get_content_type())
            continue
        payload = part.get_payload(decode=True) or b""
        name = part.get_filename()
        print("part: %s, %d bytes%s" % (part.get_content_type(), len(payload),
                                         ", attachment " + name if name else ""))
        if part.get_content_type() == "text/plain" and not name:
            print("  | " + part.get_content().strip().replace("\n", "\n  | "))
    return 0


def check_dkim(outbox, record_file):
    """Verifies every email of the outbox with python3-dkim, the key record
    read from record_file instead of DNS. Returns 1 when any fails."""
    import re
    import dkim
    with open(record_file, encoding="ascii") as f:
        line = f.read().strip()
    name = line.split()[0].encode("ascii")
    record = "".join(re.findall(r'"([^"]*)"', line)).encode("ascii")
    emails = sorted(n for n in os.listdir(outbox) if n.endswith(".eml"))
    bad = []
    for n in emails:
        with open(os.path.join(outbox, n), "rb") as f:
            raw = f.read()
        if not dkim.verify(raw, dnsfunc=lambda q, timeout=5: record if q == name else None):
            bad.append(n)
    print("\nDKIM: %d of %d emails verify against %s" % (len(emails) - len(bad), len(emails),
                                                        name.decode("ascii")))
    for n in bad:
        print("  does not verify: %s" % n)
    return 1 if bad or not emails else 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--show":
        return show(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--outbox", required=True)
    ap.add_argument("--attachment", required=True)
    ap.add_argument("--source", default=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    ap.add_argument("--timeout", type=float, default=90.0)
    ap.add_argument("--dkim-record", metavar="FILE",
                    help="the TXT record `crier dkim keygen` printed: every email in the "
                         "outbox must verify against it")
    args = ap.parse_args()
    token = os.environ.get("CRIER_DEMO_TOKEN")
    if not token:
        print("driver: CRIER_DEMO_TOKEN is not set", file=sys.stderr)
        return 2
    api = Api(args.url, token)
    with open(args.attachment, "rb") as f:
        pdf = base64.b64encode(f.read()).decode("ascii")

    now = datetime.datetime.now(datetime.timezone.utc)
    zones = business_zones(now, len(CLIENTS))
    posted = []  # (client, message_type, communication_id, decision)
    failures = 0
    for client, zone in zip(CLIENTS, zones):
        client["timezone"] = zone
        client_id = str(uuid.uuid4())
        plan_id = str(uuid.uuid4())
        local = now.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%H:%M")
        print("%s (%s, %s local): plan %s" % (client["name"], zone, local, plan_id))
        for message_type, urgency in LIFECYCLE:
            body = {
                "plan_id": plan_id,
                "client_id": client_id,
                "message_type": message_type,
                "urgency": urgency,
                "preferred_channel": client.get("prefers", {}).get(message_type),
                "client": {
                    "name": client["name"], "email": client["email"], "timezone": zone,
                    "locale": "en", "consent": client["consent"],
                },
                "context": context_for(args.source, message_type, client, plan_id),
            }
            if client["phone"]:
                body["client"]["phone"] = client["phone"]
            if message_type == "blueprint_delivery":
                body["attachments"] = [{"filename": "blueprint.pdf",
                                        "content_type": "application/pdf",
                                        "content_base64": pdf}]
            key = "%s-%s" % (plan_id, message_type)
            status, answer = api.call("POST", "/v1/communications", body,
                                      {"Idempotency-Key": key})
            if status != 202 or not isinstance(answer, dict):
                failures += 1
                print("  %-22s refused: HTTP %d %s" % (message_type, status,
                                                        json.dumps(answer)[:300]))
                continue
            summary = decision_summary(answer.get("decision"), now)
            print("  %-22s accepted: %s" % (message_type, summary))
            posted.append((client, message_type, answer["communication_id"], summary))

    print("\nwaiting for delivery (at most %.0f s)..." % args.timeout)
    deadline = time.monotonic() + args.timeout
    latest = {}
    while True:
        now = datetime.datetime.now(datetime.timezone.utc)
        for _, _, cid, _ in posted:
            if cid in latest and settled(latest[cid], now):
                continue
            status, comm = api.call("GET", "/v1/communications/" + cid)
            if status == 200 and isinstance(comm, dict):
                latest[cid] = comm
        if all(cid in latest and settled(latest[cid], now) for _, _, cid, _ in posted):
            break
        if time.monotonic() >= deadline:
            print("driver: some messages were not settled in time")
            failures += 1
            break
        time.sleep(0.5)

    print()
    rows = []
    for client, message_type, cid, summary in posted:
        comm = latest.get(cid, {})
        status = comm.get("status", "?")
        if status in ("failed", "bounced"):
            failures += 1
            status += ": " + str(comm.get("error_message") or "")[:40]
        rows.append((client["name"], message_type, comm.get("channel") or "-", status, summary,
                     shown_path(output_file(args.outbox, comm)) if comm else "-"))
    table(rows, ("client", "message", "channel", "status", "decision", "output"))

    # A message that moved channel: every channel it was tried on, in order.
    moved = []
    for client, message_type, cid, _ in posted:
        tried = []
        for ev in latest.get(cid, {}).get("events") or []:
            ch = ev.get("channel") if isinstance(ev, dict) else None
            if not ch or not ev.get("attempt"):
                continue
            if tried and tried[-1][0] == ch:
                tried[-1] = (ch, ev.get("event_type"))  # its latest event on that channel
            else:
                tried.append((ch, ev.get("event_type")))
        if len(tried) > 1:
            moved.append("  %s, %s: %s" % (client["name"], message_type, " -> ".join(
                "%s (%s)" % (ch, "failed" if ev == "retry_scheduled" else ev) for ch, ev in tried)))
    if moved:
        print("\nfallbacks:")
        print("\n".join(moved))

    if args.dkim_record:
        failures += check_dkim(args.outbox, args.dkim_record)

    print("""
What was "sent" is in the sandbox outbox (no message left this machine):
  ls %(o)s
  less %(o)s/<id>.eml            the exact bytes SMTP would carry
  less %(o)s/<id>.sms.json       the SMS Twilio would get (body, encoding, segments)
  less %(o)s/<id>.whatsapp.json  the WhatsApp Cloud API request (template or text)
  /usr/bin/python3 tests/demo/driver.py --show %(o)s/<id>.eml
                                 headers, parts and attachments, decoded
or open a .eml file in any mail client (Thunderbird, Evolution, Apple Mail).""" % {"o": shown_path(args.outbox)})
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
