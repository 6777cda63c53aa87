"""Secrets and PII in crier's logs, across the whole integration suite.

Run by ctest after every integration test (the "logs" fixture's cleanup,
see tests/CMakeLists.txt). Each test's harness copied the log of every
crier it started into CRIER_TEST_LOG_DIR, with a manifest of what must not
be in them: every secret it set (API tokens, provider tokens, webhook and
callback secrets, the encryption, blind-index and link keys, the DKIM
private keys' lines, passwords in URLs) and every email and phone of the
clients it sent to crier. This script greps every log for every one of
them, and finds none.

GNU grep -F (many fixed strings at once) does the searching: the suite's
logs are tens of megabytes and the watched values thousands.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def hits(needles, logs):
    """[(log file, the value found)] for every watched value in logs."""
    if not needles or not logs:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".needles", delete=False) as f:
        f.write("\n".join(sorted(needles)) + "\n")
        path = f.name
    try:
        r = subprocess.run(["grep", "-F", "-o", "-H", "-f", path, "--"] + sorted(logs),
                           capture_output=True, text=True, errors="replace", timeout=600)
    finally:
        os.unlink(path)
    if r.returncode not in (0, 1):
        raise RuntimeError("grep failed (%d): %s" % (r.returncode, r.stderr.strip()))
    found = []
    for line in r.stdout.splitlines():
        name, _, value = line.partition(":")
        found.append((os.path.basename(name), value))
    return found


def masked(value):
    return "%s... (%d chars)" % (value[:4], len(value))


def test_the_scan_finds_what_is_there(tmp):
    # The scanner itself, on a log that does hold a secret and an email.
    log = os.path.join(tmp, "planted.log")
    with open(log, "w", encoding="utf-8") as f:
        f.write('{"event":"x","detail":"token plantedsecret0123 for asha@example.com"}\n')
    found = hits({"plantedsecret0123", "asha@example.com", "notthere0123"}, [log])
    assert sorted(v for _, v in found) == ["asha@example.com", "plantedsecret0123"], found


def test_no_secret_or_pii_in_any_log(tmp):
    out = os.environ.get("CRIER_TEST_LOG_DIR")
    assert out, "CRIER_TEST_LOG_DIR is not set: run through ctest"
    manifests = glob.glob(os.path.join(out, "*.watch.json"))
    logs = glob.glob(os.path.join(out, "*.log"))
    secrets, pii = set(), set()
    for m in manifests:
        with open(m, encoding="utf-8") as f:
            w = json.load(f)
        secrets.update(w["secrets"])
        pii.update(w["pii"])
    size = sum(os.path.getsize(p) for p in logs)
    print("%d logs (%.1f MB) from %d test processes; watching %d secrets and %d emails "
          "and phones" % (len(logs), size / 1e6, len(manifests), len(secrets), len(pii)))
    assert manifests, "no test left a manifest: did the integration tests run?"
    if logs:
        # the harness's own credentials are among them: the manifests are real
        assert h.TOKEN_WORKFLOW in secrets, sorted(secrets)[:5]
        assert pii, "no client email or phone was recorded"
    found = hits(secrets, logs)
    for name, value in found[:20]:
        print("secret in %s: %s" % (name, masked(value)))
    leaked_pii = hits(pii, logs)
    for name, value in leaked_pii[:20]:
        print("PII in %s: %s" % (name, masked(value)))
    assert not found, "%d secret(s) in the logs" % len(found)
    assert not leaked_pii, "%d email(s) or phone(s) in the logs" % len(leaked_pii)


h.run([test_the_scan_finds_what_is_there, test_no_secret_or_pii_in_any_log])
