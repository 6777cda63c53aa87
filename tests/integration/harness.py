"""harness: what every integration test of crier builds on.

A test is a plain script run by ctest with Debian's /usr/bin/python3:

    import os, sys
    sys.path.insert(0, os.path.dirname(__file__))
    import harness as h

    def test_something(tmp):
        db = h.new_database("something")
        with h.Crier(db, tmp) as crier:
            status, _, body = crier.post_comm(h.comm_body(1))
            assert status == 202, body

    h.run([test_something])        # prints "N passed, N failed", exits 1 on failures

Environment (set by ctest, see tests/CMakeLists.txt, and by scripts/check.sh):
    CRIER_BIN                the crier binary under test
    CRIER_SOURCE_DIR         the source tree (sql/, templates/, rules/, tests/support/)
    CRIER_BUILD_DIR          the build tree
    CRIER_TEST_DATABASE_URL  a PostgreSQL superuser URL (scripts/services.sh env)
    CRIER_TEST_REDIS_URL     a private Redis (scripts/services.sh env)
    CRIER_TEST_KEEP          set to 1 to keep the databases and temporary folders
    CRIER_TEST_LOG_DIR       where every crier serve log is copied at exit, beside
                             what the test gave it that must never be logged (its
                             secrets and its clients' emails and phones):
                             tests/integration/log_scan.py reads them

Stable API:
    env_db_url(), env_redis_url(), source_dir(), build_dir(), crier_bin()
    new_database(name_prefix) -> url    a fresh database, migrated with `crier migrate`
    drop_database(url)
    psql(url, sql, **variables) -> rows (lists of strings; NULL is "")
                                 use :'name' in sql for a safely quoted variable
    migrate(url) -> CompletedProcess
    pg_dump(url) -> str              the database as plain SQL (pg_dump of the server's version)
    free_port() -> int
    SmtpSink(dir, extra_args=[])      .port .files() (*.eml, oldest first) .envelope(eml)
                                      .wait_for(count, timeout) .stop()
    Crier(db_url, tmpdir, env={}, port=None, args=())
        .url .port .request(method, path, body=None, headers=None, token=TOKEN_WORKFLOW, raw=None)
        -> (status, headers, json_or_text)   .post_comm(body, key=None)   .get_comm(id)
        .kill(sig=SIGKILL) .stop() .log() .wait_final(ids, timeout)
    TOKEN_WORKFLOW, TOKEN_OPERATOR, TOKEN_ADMIN, ENCRYPTION_KEY, FINAL_STATUSES
    STUB_ACCOUNT_SID, STUB_AUTH_TOKEN, STUB_FROM_NUMBER (Twilio), STUB_WA_PHONE_ID,
    STUB_WA_TOKEN, STUB_WA_APP_SECRET (WhatsApp): the credentials the tests give both
        the provider stub and the crier
    DkimKey(dir, selector, algorithm="rsa", domain="planiva.example", bits=None)
        a key from `crier dkim keygen`: .env (CRIER_DKIM_*), .verify(raw) with
        python3-dkim against its TXT record, .record, .name, .path
    dkim_tags(raw) -> {tag: value} of the topmost DKIM-Signature field
    stub_env(stub, twilio=True, whatsapp=True, from_number=STUB_FROM_NUMBER) -> dict
                                   TWILIO_* and WHATSAPP_* aimed at the stub (no app secret)
    live_env(stub, sink=None, twilio=True, whatsapp=True, **extra) -> dict
                                   CRIER_TRANSPORT=live, stub_env(), and with a sink
                                   CRIER_SMTP_URL, CRIER_SMTP_TLS=off, CRIER_MAIL_FROM;
                                   extra (NAME="value") added last
    log_events(text, event) -> the JSON log lines (dicts) of event; pass crier.log()
    wait_until(predicate, timeout=10, interval=0.1) -> the predicate's truthy value
    ProviderStub(dir, extra_args=()) -> tests/support/provider_stub.py on a free port:
        .url .requests(provider) .stop(); a context manager
    CallbackReceiver(dir, extra_args=(), path="/workflow/crier") -> the workflow stand-in
        (tests/support/callback_receiver.py): .url .requests() .stop(); a context manager
    callback_body(req) -> bytes;  callback_signature_ok(req, secret) -> bool
    rules_dir(retry_delays=None) -> a private copy of the tests' rules, with
        fallback.lua's retry delays (seconds) replaced when given
    comm_body(i, name=None, email=None, message_type="welcome", ...) -> dict
    attachment(path, content_type="application/pdf") -> an "attachments" entry
    tempdir(name) -> path          a fresh folder, removed at exit unless CRIER_TEST_KEEP=1
    watch(kind, value)             value ("secrets" or "pii") must be in no crier log;
                                   Crier() and request() watch env secrets and the
                                   clients' emails and phones themselves
    run(tests)                     runs each test(tmpdir), then summary()
    summary(passed, failed)        prints "N passed, N failed"; exits 1 on failures
"""

import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid

TOKEN_WORKFLOW = "test-workflow-token-0123456789abcdef"
TOKEN_OPERATOR = "test-operator-token-0123456789abcdef"
TOKEN_ADMIN = "test-admin-token-0123456789abcdef01"
# A fixed key so that a failing test can be replayed against the same rows.
ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode("ascii")

# Statuses after which a communication no longer changes by itself.
FINAL_STATUSES = ("sent", "delivered", "opened", "clicked", "failed", "bounced", "skipped", "batched")

# Fake provider credentials: the stub checks what the crier sends against the
# same values, so one definition keeps the two sides in step.
STUB_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
STUB_AUTH_TOKEN = "stub-auth-token-0123456789abcdef"
STUB_FROM_NUMBER = "+15005550006"
STUB_WA_PHONE_ID = "106540352242922"
STUB_WA_TOKEN = "stub-meta-token-0123456789abcdef"
STUB_WA_APP_SECRET = "stub-meta-app-secret-0123456789ab"

# Variables a child process may inherit; everything else it gets is explicit,
# so that a developer's shell cannot change what a test sees.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS",
              "LSAN_OPTIONS", "TSAN_OPTIONS")

_SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                    "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer")

_created_databases = []
_created_dirs = []
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _need(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            "%s is not set: run the integration tests through ctest after "
            "`scripts/services.sh start DIR` and `eval \"$(scripts/services.sh env DIR)\"` "
            "(make check does both)" % name)
    return value


def crier_bin():
    return _need("CRIER_BIN")


def source_dir():
    return _need("CRIER_SOURCE_DIR")


def build_dir():
    return _need("CRIER_BUILD_DIR")


def env_db_url():
    return _need("CRIER_TEST_DATABASE_URL")


def env_redis_url():
    return _need("CRIER_TEST_REDIS_URL")


def _keep():
    return os.environ.get("CRIER_TEST_KEEP") == "1"


def base_env(extra=None):
    """The environment of a child process: the inherited allow-list plus extra
    (a value of None removes the key)."""
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


# ---------------------------------------------------------------- databases

def psql(url, sql, **variables):
    """Runs sql with psql and returns the rows as lists of strings (one line
    per row, so values must not contain newlines or tabs). Variables are
    passed with -v and quoted by psql where sql says :'name'."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", url]
    for k, v in variables.items():
        cmd += ["-v", "%s=%s" % (k, v)]
    cmd += ["-f", "-"]
    proc = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=60,
                          env=base_env({"PGCONNECT_TIMEOUT": "10"}))
    if proc.returncode != 0:
        raise RuntimeError("psql failed (%d): %s" % (proc.returncode, proc.stderr.strip()))
    return [line.split("\t") for line in proc.stdout.splitlines() if line != ""]


def _with_dbname(url, name):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def migrate(url):
    """Runs `crier migrate` on url; raises with its output when it fails."""
    proc = subprocess.run(
        [crier_bin(), "migrate"], capture_output=True, text=True, timeout=120,
        env=base_env({"CRIER_DATABASE_URL": url,
                      "CRIER_SQL_DIR": os.path.join(source_dir(), "sql")}))
    if proc.returncode != 0:
        raise RuntimeError("crier migrate failed (%d):\n%s%s"
                           % (proc.returncode, proc.stdout, proc.stderr))
    return proc


def _pg_dump_bin(url):
    """The pg_dump of the server's major version (an older one refuses a
    newer server): Debian keeps one per version under /usr/lib/postgresql."""
    major = int(psql(url, "SHOW server_version_num")[0][0]) // 10000
    path = "/usr/lib/postgresql/%d/bin/pg_dump" % major
    if os.access(path, os.X_OK):
        return path
    found = shutil.which("pg_dump")
    if not found:
        raise RuntimeError("no pg_dump for PostgreSQL %d (scripts/deps.sh installs it)" % major)
    return found


def pg_dump(url):
    """The whole database url as plain SQL text (schema and data), as an
    operator's backup would hold it."""
    proc = subprocess.run([_pg_dump_bin(url), "--no-owner", "--no-privileges", "-d", url],
                          capture_output=True, timeout=120,
                          env=base_env({"PGCONNECT_TIMEOUT": "10"}))
    if proc.returncode != 0:
        raise RuntimeError("pg_dump failed (%d): %s"
                           % (proc.returncode, proc.stderr.decode("utf-8", "replace").strip()))
    return proc.stdout.decode("utf-8")


def new_database(name_prefix="t", migrated=True):
    """Creates a database with a unique name next to CRIER_TEST_DATABASE_URL's,
    applies the migrations (unless migrated=False) and returns its URL. It is
    dropped when the test process exits (unless CRIER_TEST_KEEP=1)."""
    base = env_db_url()
    prefix = re.sub(r"[^a-z0-9_]", "_", name_prefix.lower())[:30]
    name = "%s_%d_%s" % (prefix, os.getpid(), uuid.uuid4().hex[:8])
    psql(base, 'CREATE DATABASE "%s"' % name)
    url = _with_dbname(base, name)
    _created_databases.append(url)
    if migrated:
        migrate(url)
    return url


def drop_database(url):
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError("not a test database name: %r" % name)
    psql(env_db_url(), 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    if url in _created_databases:
        _created_databases.remove(url)


# ------------------------------------------------- secrets and PII in logs
#
# Every crier a test starts is registered; at exit its log is copied into
# CRIER_TEST_LOG_DIR with a manifest of what must not be in it: the secrets
# in its environment and the emails and phones of the clients the test sent
# (log_scan.py greps every log for every one). The provider stubs' and the
# SMTP sink's records are not logs of crier's: they receive PII by design.

_criers = []
_watched = {"secrets": set(), "pii": set()}
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|_KEYS?$")
_SHORTEST_WATCHED = 8  # shorter values would match by chance


def watch(kind, value):
    """Adds value to what must not appear in any crier log: kind is
    "secrets" or "pii"."""
    if isinstance(value, str) and len(value) >= _SHORTEST_WATCHED:
        _watched[kind].add(value)


def _watch_env(env):
    for name, value in env.items():
        if not isinstance(value, str) or not value:
            continue
        if name.endswith("_FILE") and "KEY" in name:
            try:
                with open(value, "r", encoding="ascii", errors="replace") as f:
                    for line in f:
                        if not line.startswith("-----"):
                            watch("secrets", line.strip())
            except OSError:
                pass
        elif _SECRET_NAME.search(name):
            for part in re.split(r"[,;\s]+", value):
                watch("secrets", part)
                watch("secrets", part.split(":", 1)[-1])  # scope:token, kid:key
        elif "://" in value:
            watch("secrets", urllib.parse.urlsplit(value).password)
    sid, token = env.get("TWILIO_ACCOUNT_SID"), env.get("TWILIO_AUTH_TOKEN")
    if sid and token:  # the Authorization header's form
        watch("secrets", base64.b64encode(("%s:%s" % (sid, token)).encode()).decode())


_CONTACT = re.compile(r"[^@\s]+@[^@\s]+|(whatsapp:)?\+?[0-9]{8,15}")


def _watch_contact(value):
    """An email or a phone (not, say, a "from" time) is watched as PII."""
    if _CONTACT.fullmatch(value):
        watch("pii", value.replace("whatsapp:", ""))


def _watch_body(body):
    """The clients' emails and phones in a request body (a dict, or a form
    or JSON byte string as the providers send it)."""
    if isinstance(body, dict):
        for k, v in body.items():
            if k in ("email", "phone", "from", "wa_id") and isinstance(v, str):
                _watch_contact(v)
            else:
                _watch_body(v)
    elif isinstance(body, list):
        for v in body:
            _watch_body(v)
    elif isinstance(body, (bytes, bytearray)):
        text = body.decode("utf-8", "replace")
        if text[:1] in ("{", "["):
            try:
                _watch_body(json.loads(text))
            except ValueError:
                pass
        else:
            for k, v in urllib.parse.parse_qsl(text):
                if k == "From":
                    _watch_contact(v)


def _save_logs():
    # a manifest even when no crier ran, so the scan knows this test did
    out = os.environ.get("CRIER_TEST_LOG_DIR")
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    stem = "%s-%d" % (os.path.splitext(os.path.basename(sys.argv[0]))[0], os.getpid())
    for i, c in enumerate(_criers):
        try:
            shutil.copyfile(c.log_path, os.path.join(out, "%s-%d.log" % (stem, i)))
        except OSError as e:
            print("harness: could not keep %s: %s" % (c.log_path, e), file=sys.stderr)
    with open(os.path.join(out, stem + ".watch.json"), "w", encoding="utf-8") as f:
        json.dump({k: sorted(v) for k, v in _watched.items()}, f)


def _cleanup():
    _save_logs()
    if _keep():
        return
    for url in list(_created_databases):
        try:
            drop_database(url)
        except Exception as e:  # cleanup must not hide the test's own result
            print("harness: could not drop %s: %s" % (url, e), file=sys.stderr)
    for d in _created_dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


# ---------------------------------------------------------------- processes

def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tempdir(name="t"):
    d = tempfile.mkdtemp(prefix="crier-%s-" % re.sub(r"[^A-Za-z0-9_]", "_", name))
    _created_dirs.append(d)
    return d


def rules_dir(retry_delays=None):
    """A private copy of the rules the integration tests run (the shipped
    rules, due at once: tests/integration/rules_now), with fallback.lua's
    retry schedule replaced by retry_delays (seconds) when given, so retry
    tests take seconds instead of the seed's 1, 5 and 15 minutes."""
    src = os.path.join(source_dir(), "tests", "integration", "rules_now")
    dst = os.path.join(tempdir("rules"), "rules")
    os.makedirs(dst)
    for name in sorted(os.listdir(src)):
        if name.endswith(".lua"):
            with open(os.path.join(src, name), encoding="utf-8") as f:
                text = f.read()
            if name == "fallback.lua" and retry_delays is not None:
                shipped = "local DELAYS = { 60, 300, 900 }"
                if shipped not in text:
                    raise RuntimeError("fallback.lua no longer has %r" % shipped)
                text = text.replace(shipped, "local DELAYS = { %s }"
                                    % ", ".join(str(int(d)) for d in retry_delays))
            with open(os.path.join(dst, name), "w", encoding="utf-8") as f:
                f.write(text)
    return dst


def wrap_select(rules, body):
    """Appends to rules/channels.lua a select that runs the Lua text body
    first, then the shipped select (kept in a local before it is replaced)."""
    path = os.path.join(rules, "channels.lua")
    with open(path, "a", encoding="utf-8") as f:
        f.write("\nlocal shipped_select = select\n"
                "function select(msg, client)\n%s\n"
                "    return shipped_select(msg, client)\nend\n" % body)


def wait_until(predicate, timeout=10.0, interval=0.1, what=None):
    """Calls predicate until it returns something truthy and returns that;
    raises TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1f s waiting for %s"
                               % (timeout, what or getattr(predicate, "__name__", "condition")))
        time.sleep(interval)


def _tail(path, lines=40):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(proc, timeout):
    """Reads proc's stdout until a helper server prints "READY <port>";
    returns (port or None, what it printed)."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            m = re.search(rb"READY (\d+)", buf)
            if m:
                return int(m.group(1)), buf
        if proc.poll() is not None:
            break
    return None, buf


def _stop_proc(proc):
    """Stops a helper server: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


class SmtpSink:
    """tests/support/smtp_sink.py on 127.0.0.1: a port chosen by the kernel
    (or port, when given), each accepted message stored as a file in dir."""

    def __init__(self, dir, extra_args=(), timeout=15.0, port=0):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        script = os.path.join(source_dir(), "tests", "support", "smtp_sink.py")
        self._log_path = os.path.join(os.path.dirname(os.path.abspath(dir)),
                                      os.path.basename(os.path.abspath(dir)) + ".sink.log")
        self._log = open(self._log_path, "wb")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", script, "--port", str(port), "--dir", dir] + list(extra_args),
            stdout=subprocess.PIPE, stderr=self._log, env=base_env())
        self.port = self._read_ready(timeout)

    def _read_ready(self, timeout):
        port, buf = _wait_ready(self.proc, timeout)
        if port is not None:
            return port
        self.stop()
        raise RuntimeError("smtp sink did not start: %s\n%s" % (buf, _tail(self._log_path)))

    def files(self):
        """The stored messages (.eml files), oldest first. The sink writes an
        envelope <name>.json before each <name>.eml; see envelope()."""
        try:
            names = [n for n in os.listdir(self.dir) if n.endswith(".eml") and not n.startswith(".")]
        except FileNotFoundError:
            return []
        def arrival(n):
            # "<epoch ms>-<pid>-<counter>.eml": numeric parts compare as numbers
            return [int(p) if p.isdigit() else p for p in n[:-4].split("-")]

        return [os.path.join(self.dir, n) for n in sorted(names, key=arrival)]

    @staticmethod
    def envelope(eml_path):
        """{"mail_from", "rcpt_tos", "received_at", "size"} of a stored message."""
        with open(eml_path[:-len(".eml")] + ".json", "r", encoding="utf-8") as f:
            return json.load(f)

    def wait_for(self, count, timeout=10.0):
        """Waits until at least count messages are stored; returns the files."""
        return wait_until(lambda: len(self.files()) >= count and self.files(), timeout,
                          what="%d message(s) at the SMTP sink" % count)

    def stop(self):
        _stop_proc(self.proc)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ProviderStub:
    """tests/support/provider_stub.py on 127.0.0.1, a port chosen by the
    kernel; every request it answered is in requests.jsonl under dir."""

    def __init__(self, dir, extra_args=(), timeout=15.0):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        script = os.path.join(source_dir(), "tests", "support", "provider_stub.py")
        self._log = open(os.path.join(dir, "stub.log"), "wb")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", script, "--port", "0", "--dir", dir] + list(extra_args),
            stdout=subprocess.PIPE, stderr=self._log, env=base_env())
        port, buf = _wait_ready(self.proc, timeout)
        if port is not None:
            self.url = "http://127.0.0.1:%d" % port
            return
        self.stop()
        raise RuntimeError("provider stub did not start: %r" % buf)

    def requests(self, provider):
        try:
            with open(os.path.join(self.dir, "requests.jsonl"), encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []
        return [r for r in rows if r.get("provider") == provider]

    def set_modes(self, mode, recipients):
        """POST /_stub/mode: mode for every request, recipients {SUFFIX:
        MODE}; returns the HTTP status."""
        req = urllib.request.Request(
            self.url + "/_stub/mode", method="POST",
            data=json.dumps({"mode": mode, "recipients": recipients}).encode("utf-8"),
            headers={"Content-Type": "application/json"})
        with _opener.open(req, timeout=10) as resp:
            return resp.status

    def stop(self):
        _stop_proc(self.proc)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class CallbackReceiver:
    """tests/support/callback_receiver.py on 127.0.0.1, standing in for the
    workflow: records every request (headers and raw body, see
    callback_body) and answers as extra_args say (200 by default). url is
    where crier is told to post."""

    def __init__(self, dir, extra_args=(), path="/workflow/crier", timeout=10.0):
        os.makedirs(dir, exist_ok=True)
        self.log_path = os.path.join(dir, "callbacks-%s.jsonl" % uuid.uuid4().hex[:6])
        script = os.path.join(source_dir(), "tests", "support", "callback_receiver.py")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", script, "--port", "0", "--log", self.log_path]
            + list(extra_args), stdout=subprocess.PIPE, env=base_env())
        port, buf = _wait_ready(self.proc, timeout)
        if port is None:
            self.stop()
            raise RuntimeError("callback receiver did not start: %r" % buf)
        self.port = port
        self.url = "http://127.0.0.1:%d%s" % (port, path)

    def requests(self):
        try:
            with open(self.log_path, "r", encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        _stop_proc(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def callback_body(req):
    """The raw body of a request the CallbackReceiver recorded."""
    return base64.b64decode(req["body_base64"])


def callback_signature_ok(req, secret):
    """docs/callbacks.md: X-Crier-Signature is
    sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))."""
    hd = req["headers"]
    ts = hd.get("x-crier-timestamp", "")
    sig = hd.get("x-crier-signature", "")
    if not re.fullmatch(r"[0-9]+", ts) or not re.fullmatch(r"sha256=[0-9a-f]{64}", sig):
        return False
    mac = hmac.new(secret.encode(), ts.encode() + b"." + callback_body(req),
                   hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, "sha256=" + mac)


class Crier:
    """`crier serve` on 127.0.0.1 with a clean environment (see __init__),
    ready when GET /healthz answers 200."""

    def __init__(self, db_url, tmpdir, env=None, port=None, args=(), timeout=15.0):
        self.tmpdir = tmpdir
        os.makedirs(tmpdir, exist_ok=True)
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.outbox = os.path.join(tmpdir, "outbox")
        src = source_dir()
        config = {
            "CRIER_DATABASE_URL": db_url,
            "CRIER_LISTEN": "127.0.0.1:%d" % self.port,
            "CRIER_PUBLIC_URL": self.url,
            "CRIER_API_TOKENS": "workflow:%s,operator:%s,admin:%s"
                                % (TOKEN_WORKFLOW, TOKEN_OPERATOR, TOKEN_ADMIN),
            "CRIER_ENCRYPTION_KEY": ENCRYPTION_KEY,
            "CRIER_TEMPLATES_DIR": os.path.join(src, "templates"),
            "CRIER_CONSOLE_DIR": os.path.join(src, "console"),
            # the shipped rules, but due at once: see rules_now/timing.lua.
            # A copy, because rules_now links to the shipped files and the
            # loader follows no symlink out of its folder.
            "CRIER_RULES_DIR": (env or {}).get("CRIER_RULES_DIR") or rules_dir(),
            "CRIER_SQL_DIR": os.path.join(src, "sql"),
            "CRIER_OUTBOX_DIR": self.outbox,
            "CRIER_TRANSPORT": "sandbox",
            "CRIER_SMTP_TLS": "off",
            "CRIER_POLL_MS": "200",
            # The default 100 mails an hour per relay would hold a test's
            # thousand messages for ten hours; a test that is about the
            # rate sets its own.
            "CRIER_RATE_SMTP": "off",
            # No load balancer to tell: stop at once (test_sigterm sets one).
            "CRIER_DRAIN_S": "0",
        }
        config.update(env or {})
        self.env = base_env(config)
        _watch_env(self.env)
        _criers.append(self)
        self.log_path = os.path.join(tmpdir, "crier-%d.log" % self.port)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([crier_bin(), "serve"] + list(args), env=self.env,
                                     cwd=tmpdir, stdout=self._log, stderr=subprocess.STDOUT)
        self.returncode = None
        try:
            self._wait_healthy(timeout)
        except Exception:
            self.kill()
            raise

    def _wait_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("crier serve exited with %s before it was healthy; log:\n%s"
                                   % (self.proc.returncode, _tail(self.log_path)))
            try:
                status, _, _ = self.request("GET", "/healthz", token=None, timeout=2)
                if status == 200:
                    return
                last = "status %d" % status
            except (OSError, http.client.HTTPException) as e:
                last = str(e)
            time.sleep(0.05)
        raise RuntimeError("crier serve not healthy after %.0f s (%s); log:\n%s"
                           % (timeout, last, _tail(self.log_path)))

    def request(self, method, path, body=None, headers=None, token=TOKEN_WORKFLOW, raw=None,
                timeout=30):
        """Sends one request; body is JSON-encoded, raw (bytes) is sent as is.
        Returns (status, headers with lower-case names, parsed JSON or text)."""
        data = raw
        hdrs = {}
        _watch_body(body if raw is None else raw)
        if body is not None and raw is None:
            data = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = "Bearer " + token
        for k, v in (headers or {}).items():
            if v is not None:
                hdrs[k] = v
        req = urllib.request.Request(self.url + path, data=data, headers=hdrs, method=method)
        try:
            with _opener.open(req, timeout=timeout) as resp:
                status, rheaders, payload = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, rheaders, payload = e.code, e.headers, e.read()
        rh = {k.lower(): v for k, v in rheaders.items()}
        text = payload.decode("utf-8", "replace")
        parsed = text
        if "json" in rh.get("content-type", "") or text[:1] in ("{", "["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
        return status, rh, parsed

    def post_comm(self, body, key=None, token=TOKEN_WORKFLOW):
        headers = {"Idempotency-Key": key} if key else None
        return self.request("POST", "/v1/communications", body, headers=headers, token=token)

    def get_comm(self, comm_id, token=TOKEN_WORKFLOW):
        return self.request("GET", "/v1/communications/" + comm_id, token=token)

    def wait_final(self, ids, timeout=30.0):
        """Waits until every communication in ids has a final status; returns
        {id: communication}."""
        done = {}

        def all_final():
            for cid in ids:
                if cid in done:
                    continue
                status, _, body = self.get_comm(cid)
                if status == 200 and isinstance(body, dict) and body.get("status") in FINAL_STATUSES:
                    done[cid] = body
            return len(done) == len(ids)

        wait_until(all_final, timeout, 0.2, what="%d communication(s) to finish" % len(ids))
        return done

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        """Sends sig (a crash by default) and reaps the process."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._log.close()
        return self.returncode

    def stop(self, timeout=30.0):
        """SIGTERM and wait: a clean shutdown must exit 0 and, under the
        sanitizers, without a report. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError("crier serve did not stop within %.0f s of SIGTERM; log:\n%s"
                                   % (timeout, _tail(self.log_path)))
        self.returncode = self.proc.returncode
        self._log.close()
        text = self.log()
        for mark in _SANITIZER_MARKS:
            if mark in text:
                raise AssertionError("sanitizer report in the crier log:\n%s"
                                     % _tail(self.log_path, 80))
        if self.returncode != 0:
            raise AssertionError("crier serve exited with %d after SIGTERM; log:\n%s"
                                 % (self.returncode, _tail(self.log_path)))
        return self.returncode

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.stop()
        else:
            # The test already failed; a second error would hide the first.
            self.kill(signal.SIGTERM)


def stub_env(stub, twilio=True, whatsapp=True, from_number=STUB_FROM_NUMBER):
    """The crier's Twilio and/or WhatsApp settings aimed at the ProviderStub
    stub with the STUB_* credentials. No WHATSAPP_APP_SECRET: the tests
    that want one add it themselves."""
    env = {}
    if twilio:
        env.update({"TWILIO_API_BASE": stub.url, "TWILIO_ACCOUNT_SID": STUB_ACCOUNT_SID,
                    "TWILIO_AUTH_TOKEN": STUB_AUTH_TOKEN, "TWILIO_FROM_NUMBER": from_number})
    if whatsapp:
        env.update({"WHATSAPP_API_BASE": stub.url, "WHATSAPP_PHONE_NUMBER_ID": STUB_WA_PHONE_ID,
                    "WHATSAPP_ACCESS_TOKEN": STUB_WA_TOKEN})
    return env


def live_env(stub, sink=None, twilio=True, whatsapp=True, **extra):
    """The environment of a crier whose every channel is live: SMS and
    WhatsApp against stub (see stub_env), email against the SmtpSink sink
    when given. extra (NAME="value") is the test's own, added last."""
    env = {"CRIER_TRANSPORT": "live"}
    if sink is not None:
        env.update({"CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port,
                    "CRIER_SMTP_TLS": "off",
                    "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>"})
    env.update(stub_env(stub, twilio=twilio, whatsapp=whatsapp))
    env.update(extra)
    return env


def log_events(text, event):
    """The crier's JSON log lines in text (crier.log()) whose event is
    event, as dicts, oldest first."""
    found = []
    for line in text.splitlines():
        # Most lines are other events: skip them before parsing.
        if event not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("event") == event:
            found.append(rec)
    return found


# ---------------------------------------------------------------- requests

def _example_context(message_type):
    path = os.path.join(source_dir(), "templates", "examples", message_type + ".json")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {"event_type": "wedding", "event_date": "2027-02-14"}
    if isinstance(data, dict) and isinstance(data.get("context"), dict) and len(data) <= 2:
        return data["context"]
    return data


def twilio_inbound(crier, auth_token, public_url, phone, text):
    """Posts to crier a Twilio inbound SMS from phone saying text, signed
    with auth_token for crier's public_url, as Twilio sends one. Returns
    (status, body, MessageSid)."""
    sys.path.insert(0, os.path.join(source_dir(), "tests", "support"))
    from provider_stub import twilio_signature
    sid = "SM" + uuid.uuid4().hex
    params = [("AccountSid", "AC" + "0" * 32), ("ApiVersion", "2010-04-01"), ("Body", text),
              ("From", phone), ("MessageSid", sid), ("NumMedia", "0"), ("SmsMessageSid", sid),
              ("SmsSid", sid), ("SmsStatus", "received"), ("To", "+15017250604")]
    path = "/webhooks/twilio/inbound"
    status, _, body = crier.request(
        "POST", path, raw=urllib.parse.urlencode(params).encode("ascii"), token=None,
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "X-Twilio-Signature": twilio_signature(auth_token, public_url + path, params)})
    return status, body, sid


def link_token(kind, comm_id, arg, day, key):
    """A link token as crier makes one (src/crypto/linktok.h): version 1,
    kind, the UUID's 16 bytes, arg and day big-endian, then the first 16
    bytes of HMAC-SHA256(key, "crier link v1" NUL | those 26 bytes); URL-safe
    base64 without padding."""
    body = bytes([1, ord(kind)]) + uuid.UUID(comm_id).bytes + arg.to_bytes(4, "big") \
        + day.to_bytes(4, "big")
    mac = hmac.new(key, b"crier link v1\x00" + body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).decode("ascii").rstrip("=")


def read_link_token(tok, key):
    """(kind, id, arg, day) of a token crier made under key; asserts its
    length, version and MAC."""
    raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    assert len(raw) == 42, len(raw)
    body, mac = raw[:26], raw[26:]
    want = hmac.new(key, b"crier link v1\x00" + body, hashlib.sha256).digest()[:16]
    assert hmac.compare_digest(mac, want), "the token's MAC is HMAC-SHA256 under CRIER_LINK_KEY"
    assert body[0] == 1, body[0]
    return (chr(body[1]), str(uuid.UUID(bytes=body[2:18])), int.from_bytes(body[18:22], "big"),
            int.from_bytes(body[22:26], "big"))


def daytime_zone():
    """An Etc/GMT zone where it is about 13:00 now: a HIGH or NORMAL message
    to a client there goes at once (inside business hours, outside quiet
    hours) whenever the test runs. Critical messages get one quick retry, so
    a test of the whole retry ladder sends HIGH ones to such a client."""
    offset = (13 - time.gmtime().tm_hour + 12) % 24 - 12  # local = UTC + offset
    return "Etc/GMT%+d" % -offset if offset else "Etc/UTC"  # POSIX: GMT-3 is UTC+3


def comm_body(i, name=None, email=None, message_type="welcome", urgency="normal", phone=None,
              consent=None, context=None, plan_id=None, client_id=None, timezone="UTC",
              locale="en", preferred_channel=None, attachments=None, client=True):
    """A valid POST /v1/communications body for test client number i, with
    fresh plan and client ids unless given. The context is the catalogue's
    example for message_type (templates/examples/<type>.json) unless given."""
    body = {
        "plan_id": plan_id or str(uuid.uuid4()),
        "client_id": client_id or str(uuid.uuid4()),
        "message_type": message_type,
        "urgency": urgency,
        "preferred_channel": preferred_channel,
        "context": context if context is not None else _example_context(message_type),
    }
    if client:
        c = {
            "name": name or "Test Client %d" % i,
            "email": email or "client%d@example.com" % i,
            "timezone": timezone,
            "locale": locale,
            "consent": consent or {"sms": False, "whatsapp": False},
        }
        if phone:
            c["phone"] = phone
        body["client"] = c
    if attachments:
        body["attachments"] = attachments
    return body


def attachment(path, content_type="application/pdf", filename=None):
    with open(path, "rb") as f:
        data = f.read()
    return {"filename": filename or os.path.basename(path), "content_type": content_type,
            "content_base64": base64.b64encode(data).decode("ascii")}


# ---------------------------------------------------------------- DKIM

class DkimKey:
    """A DKIM key made by `crier dkim keygen` in dir, and what a receiver
    needs to check mail signed with it: its TXT record served to Debian's
    python3-dkim from memory instead of DNS.

    .path .selector .domain .name (b"S._domainkey.D.") .record (bytes)
    .env      the CRIER_DKIM_* settings that make crier sign with it
    .verify(raw, logger=None) -> bool   dkim.verify of the topmost signature
    """

    def __init__(self, dir, selector, algorithm="rsa", domain="planiva.example", bits=None):
        os.makedirs(dir, exist_ok=True)
        self.path = os.path.join(dir, "dkim-%s.pem" % selector)
        self.selector = selector
        self.domain = domain
        args = [crier_bin(), "dkim", "keygen", "--selector", selector, "--domain", domain,
                "--algorithm", algorithm, "--out", self.path]
        if bits:
            args += ["--bits", str(bits)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=base_env())
        if proc.returncode != 0:
            raise RuntimeError("crier dkim keygen failed (%d): %s"
                               % (proc.returncode, proc.stderr.strip()))
        self.keygen_stdout = proc.stdout
        line = proc.stdout.strip()
        m = re.fullmatch(r'(\S+) IN TXT((?: "[^"]{1,255}")+)', line)
        if not m:
            raise RuntimeError("crier dkim keygen printed no TXT record: %r" % line)
        self.name = m.group(1).encode("ascii")
        self.strings = re.findall(r'"([^"]*)"', m.group(2))
        self.record = "".join(self.strings).encode("ascii")
        self.env = {"CRIER_DKIM_KEY_FILE": self.path, "CRIER_DKIM_SELECTOR": selector,
                    "CRIER_DKIM_DOMAIN": domain}

    def dnsfunc(self, name, timeout=5):
        return self.record if name == self.name else None

    def verify(self, raw, logger=None):
        import dkim
        return bool(dkim.verify(raw, logger=logger, dnsfunc=self.dnsfunc))


def dkim_tags(raw):
    """The tags of the topmost DKIM-Signature field of raw (bytes) as a dict
    of str, folding and whitespace removed; {} when there is none."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    m = re.search(r"(?im)^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head)
    if not m:
        return {}
    flat = re.sub(r"\s+", "", m.group(1))
    tags = {}
    for part in flat.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            tags[k] = v
    return tags


# ---------------------------------------------------------------- results

def summary(passed, failed):
    """The closing line ctest's log shows; exits 1 when anything failed."""
    sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    if failed:
        sys.exit(1)


def run(tests):
    """Runs each test with a fresh temporary folder, prints PASS/FAIL lines
    and the summary."""
    passed = failed = 0
    for test in tests:
        name = test.__name__
        started = time.monotonic()
        try:
            test(tempdir(name))
        except Exception:
            failed += 1
            print("FAIL %s (%.1f s)" % (name, time.monotonic() - started))
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print("PASS %s (%.1f s)" % (name, time.monotonic() - started))
        sys.stdout.flush()
    summary(passed, failed)
