"""`crier templates check` and `crier templates render` as an operator runs
them before a deploy:

* check passes on the shipped templates and names every type and channel
  it rendered; on a copy with a broken edit it fails, naming the file and
  the line, and on an email that lost its unsubscribe link it fails too;
* render prints the email's subject, text and HTML parts with the given
  context, the SMS with its encoding and segments, the WhatsApp free text
  and approved template; an unknown type, a missing or malformed context
  file and a bad channel are refused with exit 2 and a message that names
  what was wrong.
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def crier(args, templates, cwd):
    env = h.base_env({"CRIER_TEMPLATES_DIR": templates})
    return subprocess.run([h.crier_bin(), "templates"] + args, capture_output=True, text=True,
                          timeout=60, env=env, cwd=cwd)


def shipped():
    return os.path.join(h.source_dir(), "templates")


def test_check_passes_on_the_shipped_set(tmp):
    r = crier(["check"], shipped(), tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    for line in ("ok   email/welcome", "ok   sms/welcome", "ok   whatsapp/welcome",
                 "ok   email/digest"):
        assert line in r.stdout, (line, r.stdout[-1500:])
    assert "unsubscribe link" in r.stdout


def test_check_names_a_broken_file_and_line(tmp):
    copy = os.path.join(tmp, "templates")
    shutil.copytree(shipped(), copy)
    path = os.path.join(copy, "email", "reminder.html")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    lines.insert(3, "{{#due_date}} never closed")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    r = crier(["check"], copy, tmp)
    assert r.returncode != 0, r.stdout
    out = r.stdout + r.stderr
    assert "email/reminder.html" in out and "line" in out, out[-1500:]

    # an email that lost its unsubscribe link fails the check as well
    copy2 = os.path.join(tmp, "templates2")
    shutil.copytree(shipped(), copy2)
    layout = os.path.join(copy2, "email", "layout.txt")
    with open(layout, encoding="utf-8") as f:
        text = f.read()
    with open(layout, "w", encoding="utf-8") as f:
        f.write("\n".join(line for line in text.split("\n") if "unsubscribe" not in line.lower()))
    r = crier(["check"], copy2, tmp)
    assert r.returncode != 0 and "unsubscribe" in (r.stdout + r.stderr).lower(), r.stdout[-800:]


def test_render_each_channel(tmp):
    ctx = os.path.join(tmp, "ctx.json")
    with open(ctx, "w", encoding="utf-8") as f:
        json.dump({"client_name": "Asha Rao", "plan_id": "5b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
                   "event_type": "wedding"}, f)
    r = crier(["render", "welcome", "--context", ctx], shipped(), tmp)
    assert r.returncode == 0, r.stderr
    assert "Asha Rao" in r.stdout and "<html" in r.stdout.lower(), r.stdout[:800]
    r = crier(["render", "welcome", "--context", ctx, "--channel", "sms"], shipped(), tmp)
    assert r.returncode == 0, r.stderr
    assert "GSM-7" in r.stdout and "segment" in r.stdout, r.stdout
    r = crier(["render", "welcome", "--context", ctx, "--channel", "whatsapp"], shipped(), tmp)
    assert r.returncode == 0, r.stderr
    assert "5b1d2c3e" in r.stdout, r.stdout


def test_render_refuses_bad_input(tmp):
    ctx = os.path.join(tmp, "ctx.json")
    with open(ctx, "w", encoding="utf-8") as f:
        json.dump({"client_name": "Asha"}, f)
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w", encoding="utf-8") as f:
        f.write("{not json")
    cases = [
        (["render", "nosuch", "--context", ctx], "nosuch"),
        (["render", "welcome", "--context", os.path.join(tmp, "missing.json")], "missing.json"),
        (["render", "welcome", "--context", bad], "bad.json"),
        (["render", "welcome", "--context", ctx, "--channel", "fax"], "fax"),
        (["render", "welcome"], "--context"),
        (["frobnicate"], "frobnicate"),
    ]
    for args, named in cases:
        r = crier(args, shipped(), tmp)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert named in r.stderr, (args, r.stderr)
        assert r.stdout == "" or "usage" in r.stdout.lower(), (args, r.stdout[:300])


h.run([test_check_passes_on_the_shipped_set, test_check_names_a_broken_file_and_line,
       test_render_each_channel, test_render_refuses_bad_input])
