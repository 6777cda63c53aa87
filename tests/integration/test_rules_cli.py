"""crier rules test and crier rules dry-run, end to end through the binary.

Neither command may touch a database: the environment points
CRIER_DATABASE_URL at a port nothing listens on, so a connection attempt
would fail the command.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

BIN = os.environ["CRIER_BIN"]
SRC = os.environ["CRIER_SOURCE_DIR"]
RULES = os.path.join(SRC, "rules")

ENV = dict(os.environ)
ENV["CRIER_DATABASE_URL"] = "postgresql://crier@127.0.0.1:1/nothing"
ENV["CRIER_RULES_DIR"] = RULES

REQUEST = {
    "plan_id": "5b1d2c3e-0000-4000-8000-000000000001",
    "client_id": "9c2e2c3e-0000-4000-8000-000000000002",
    "message_type": "vendor_options",
    "urgency": "high",
    "preferred_channel": None,
    "client": {"name": "Asha Rao", "email": "asha@example.com", "phone": "+919812345678",
               "timezone": "Asia/Kolkata", "locale": "en",
               "consent": {"sms": True, "whatsapp": True}},
    "context": {"event_type": "wedding"},
}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args, timeout=60):
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def write(dirname, name, data):
    path = os.path.join(dirname, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))
    return path


def main():
    tmp = tempfile.mkdtemp(prefix="crier-rules-cli-")
    try:
        # the shipped cases
        r = run("rules", "test")
        m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
        check(r.returncode == 0, f"rules test exit {r.returncode}: {r.stdout[-400:]} {r.stderr}")
        check(m is not None, "rules test prints 'N passed, N failed'")
        if m:
            check(int(m.group(1)) >= 20 and m.group(2) == "0",
                  f"rules test: {m.group(0)} (want >= 20 passed, 0 failed)")

        # --help everywhere
        for args in (["rules", "--help"], ["rules", "test", "--help"],
                     ["rules", "dry-run", "--help"]):
            r = run(*args)
            check(r.returncode == 0 and "usage" in r.stdout, f"{' '.join(args)}")

        # the dry-run answer's shape
        req = write(tmp, "request.json", REQUEST)
        r = run("rules", "dry-run", "--request", req, "--now", "2026-05-10T18:00:00Z")
        check(r.returncode == 0, f"dry-run exit {r.returncode}: {r.stderr}")
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        dec = out.get("decision", {})
        for key in ("primary_channel", "fallback_channels", "send_at", "priority", "batch",
                    "skip_reason"):
            check(key in dec, f"decision has {key}")
        check(re.fullmatch(r"[0-9a-f]{16}", out.get("rules_version", "")) is not None,
              "rules_version is the content hash")
        steps = [s.get("step") for s in out.get("trace", [])]
        check(steps == ["channels.select", "fallback.chain", "timing.send_at",
                        "batching.decide"], f"trace steps {steps}")
        # 23:30 in Kolkata, HIGH: the end of quiet hours, 08:00 IST
        check(dec.get("send_at") == "2026-05-11T02:30:00Z", f"send_at {dec.get('send_at')}")
        check(dec.get("primary_channel") == "email" and
              dec.get("fallback_channels") == ["whatsapp", "sms"], f"channels {dec}")
        check(dec.get("priority") == 1 and dec.get("batch") is None, "priority and batch")

        # a client file overrides the request's client
        client = write(tmp, "client.json", {
            "client_id": "9c2e2c3e-0000-4000-8000-000000000002",
            "preferred_channels": ["whatsapp"], "timezone": "Europe/Berlin",
            "opt_out_whatsapp": True, "email": "asha@example.com", "phone": "+4915112345678",
            "consent": {"email": True, "sms": True, "whatsapp": True},
            "last_contact_at": "2026-05-10T17:00:00Z", "whatsapp_window_until": None})
        r = run("rules", "dry-run", "--request", req, "--client", client,
                "--now", "2026-05-10T18:00:00Z")
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        dec = out.get("decision", {})
        check(dec.get("fallback_channels") == ["sms"], f"opted-out WhatsApp dropped: {dec}")
        check(dec.get("send_at") == "2026-05-10T18:00:00Z", f"20:00 in Berlin is not quiet: {dec}")
        check("asha@example.com" not in r.stdout and "+4915112345678" not in r.stdout,
              "no contact details in the output")

        # --rules DIR with a modified copy changes the decision
        alt = os.path.join(tmp, "rules")
        shutil.copytree(RULES, alt)
        with open(os.path.join(alt, "channels.lua"), encoding="utf-8") as f:
            text = f.read()
        text = text.replace('vendor_options = { "email", "whatsapp" }',
                            'vendor_options = { "whatsapp", "email" }')
        write(alt, "channels.lua", text)
        r = run("rules", "dry-run", "--request", req, "--now", "2026-05-10T18:00:00Z",
                "--rules", alt)
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        check(out.get("decision", {}).get("primary_channel") == "whatsapp",
              f"--rules DIR used: {r.stdout[:300]} {r.stderr}")
        check(out.get("rules_version") not in (None, ""), "modified rules have a version")
        # ... and the shipped cases notice the change
        r = run("rules", "test", alt)
        check(r.returncode == 1 and re.search(r"^\d+ passed, [1-9]\d* failed$", r.stdout, re.M),
              f"rules test on modified rules fails: exit {r.returncode}")
        check("FAIL channels_cases.lua" in r.stdout, "the failing case is named")

        # bad input: exit 2 and the file named (with the line for JSON)
        bad = write(tmp, "bad.json", '{"message_type": "welcome",\n  "urgency": oops}\n')
        r = run("rules", "dry-run", "--request", bad)
        check(r.returncode == 2 and "bad.json" in r.stderr and "line 2" in r.stderr,
              f"bad JSON: exit {r.returncode}: {r.stderr}")
        unknown = dict(REQUEST, message_type="telegram_blast")
        r = run("rules", "dry-run", "--request", write(tmp, "unknown.json", unknown))
        check(r.returncode == 2 and "unknown.json" in r.stderr, f"unknown type: {r.stderr}")
        r = run("rules", "dry-run", "--request", os.path.join(tmp, "missing.json"))
        check(r.returncode == 2 and "missing.json" in r.stderr, f"missing file: {r.stderr}")
        r = run("rules", "dry-run", "--request", req, "--now", "yesterday")
        check(r.returncode == 2, "bad --now")
        badclient = write(tmp, "badclient.json", {"timezone": "Mars/Olympus_Mons"})
        r = run("rules", "dry-run", "--request", req, "--client", badclient)
        check(r.returncode == 2 and "badclient.json" in r.stderr, f"bad zone: {r.stderr}")

        # a broken rules file: exit 2 naming file and line
        write(alt, "timing.lua", "function send_at(msg, client, now)\n  return now +\nend\n")
        r = run("rules", "dry-run", "--request", req, "--rules", alt)
        check(r.returncode == 2 and "timing.lua:3" in r.stderr, f"syntax error: {r.stderr}")
        r = run("rules", "test", alt)
        check(r.returncode == 2 and "timing.lua:3" in r.stderr, f"rules test, syntax: {r.stderr}")

        # a broken test file: exit 2 naming it and its line
        shutil.rmtree(alt)
        shutil.copytree(RULES, alt)
        write(os.path.join(alt, "tests"), "zz_broken.lua", "return {\n  { name = 'x' \n")
        r = run("rules", "test", alt)
        check(r.returncode == 2 and "tests/zz_broken.lua:" in r.stderr,
              f"broken test file: {r.stderr}")

        # a rule that loops: the dry-run shows the error and the safe decision
        shutil.rmtree(alt)
        shutil.copytree(RULES, alt)
        with open(os.path.join(alt, "timing.lua"), "a", encoding="utf-8") as f:
            f.write("\nlocal shipped = send_at\n"
                    "function send_at(msg, client, now)\n"
                    "  if client.timezone == 'Asia/Kolkata' then while true do end end\n"
                    "  return shipped(msg, client, now)\nend\n")
        r = run("rules", "dry-run", "--request", req, "--rules", alt, timeout=20)
        out = json.loads(r.stdout) if r.stdout.strip() else {}
        check(r.returncode == 1 and "rules_error" in out, f"looping rule: exit {r.returncode}")
        check(out.get("rules_version") == "builtin-1", "the built-in decision is shown")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
