"""P1: email delivery throughput, crier against smtp-source on the same sink.

crier side: N welcome emails are posted through the API to a crier without
workers, which accepts and commits them; then a crier with W workers of B
claim slots each claims, renders, sends each over SMTP (live transport, no
TLS, no rate limit) to postfix's smtp-sink on 127.0.0.1 and marks it sent.
The rate is N over the time from that crier answering its health check to
the last row marked sent (the database is polled). Reference: postfix's
smtp-source sending N messages of the size crier's welcome email has, over
as many sessions as crier opened at most (counted at the sink's port while
it drained), each session reused for its messages (-d), to the same sink.
Prints one line ending with the ratio; asserts no speed, fails only when a
row is missing or failed. Run by tests/bench/p1_email.sh (make bench-p1).
"""
import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402

N = int(os.environ.get("P1_MESSAGES", "20000"))
WORKERS = int(os.environ.get("P1_WORKERS", "8"))
CLAIM_BATCH = int(os.environ.get("P1_CLAIM_BATCH", "16"))
PERF = os.environ.get("P1_PERF", "")
# seconds the sink waits before answering the end of each message's data:
# a mail server farther away than loopback, which shows whether crier's
# SMTP sessions wait for that answer concurrently (0: answer at once)
DOT_DELAY = os.environ.get("P1_DOT_DELAY", "")
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(port):
    """postfix's smtp-sink on 127.0.0.1:port; it drops privileges when root."""
    args = [SMTP_SINK]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    if DOT_DELAY:
        args += ["-W", ".:" + DOT_DELAY]
    proc = subprocess.Popen(args + ["127.0.0.1:%d" % port, "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("smtp-sink exited: %s" % proc.stderr.read().decode())
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("smtp-sink did not start")


def sessions_at(port):
    """Established TCP connections to the sink's port, counted once."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True, check=False).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def sample_size(db, tmp, env):
    """The size of one welcome email as crier sends it: one message through
    a crier with one worker into the harness's SMTP sink (which stores it)."""
    sink = h.SmtpSink(os.path.join(tmp, "probe-sink"))
    crier = None
    try:
        crier = h.Crier(db, os.path.join(tmp, "crier-probe"),
                        env=dict(env, CRIER_WORKERS="1",
                                 CRIER_SMTP_URL="smtp://127.0.0.1:%d" % sink.port))
        status, _, _ = crier.post_comm(h.comm_body(0, email="probe@example.com"))
        if status != 202:
            raise RuntimeError("probe request refused: %s" % status)
        files = sink.wait_for(1, timeout=30)
        return os.path.getsize(files[0])
    finally:
        if crier is not None:
            crier.stop()
        sink.stop()


def count(db, where):
    return int(h.psql(db, "SELECT count(*) FROM communications WHERE " + where)[0][0])


def main():
    if not shutil.which("ss"):
        raise RuntimeError("ss not found (Debian's iproute2): it counts crier's SMTP sessions")
    tmp = tempfile.mkdtemp(prefix="crier-p1-")
    db = h.new_database("p1")
    crier = sink = perf = None
    try:
        env = {"CRIER_TRANSPORT_EMAIL": "live", "CRIER_SMTP_TLS": "off",
               "CRIER_RATE_SMTP": "off", "CRIER_CLAIM_BATCH": str(CLAIM_BATCH),
               "CRIER_LOG_LEVEL": "warning"}
        size = sample_size(db, tmp, env)
        base_sent = count(db, "status IN ('sent', 'delivered')")

        # Phase 1: the requests are accepted by a crier without workers, so
        # the HTTP client posting them (slower than delivery) is not timed.
        crier = h.Crier(db, os.path.join(tmp, "crier-intake"), env=dict(env, CRIER_WORKERS="0"))
        bodies = (h.comm_body(i + 1) for i in range(N))
        t_post = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            answers = list(ex.map(crier.post_comm, bodies, chunksize=64))
        posted_s = time.monotonic() - t_post
        bad = [a for a in answers if a[0] != 202 or a[2].get("decision", {}).get(
            "primary_channel") != "email"]
        if bad:
            raise RuntimeError("%d requests not accepted for email, e.g. %r" % (len(bad), bad[0]))
        crier.stop()
        crier = None

        # Phase 2: a crier with workers drains the queue into smtp-sink;
        # timed from its health check to the last row marked sent.
        port = free_port()
        sink = start_sink(port)
        crier = h.Crier(db, os.path.join(tmp, "crier"),
                        env=dict(env, CRIER_WORKERS=str(WORKERS),
                                 CRIER_SMTP_URL="smtp://127.0.0.1:%d" % port))
        t0 = time.monotonic()
        if PERF:
            perf = subprocess.Popen(["perf", "record", "-g", "-o", PERF, "-p",
                                     str(crier.proc.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = [0]
        stop = threading.Event()

        def watch_sessions():
            while not stop.is_set():
                peak[0] = max(peak[0], sessions_at(port))
                stop.wait(0.05)
        watcher = threading.Thread(target=watch_sessions, daemon=True)
        watcher.start()

        def drained():
            return count(db, "status IN ('sent', 'delivered')") - base_sent >= N
        try:
            h.wait_until(drained, timeout=1800, interval=0.05, what="%d emails sent" % N)
        finally:
            stop.set()
            watcher.join()
        crier_s = time.monotonic() - t0
        if perf is not None:
            perf.send_signal(2)
            perf.wait(timeout=60)
            perf = None
        failed = count(db, "status NOT IN ('sent', 'delivered')")
        crier.stop()
        crier = None
        if failed:
            raise RuntimeError("%d communications were not sent" % failed)

        # Reference: smtp-source into the same sink, same count and size,
        # as many sessions as crier had open at most, each one reused.
        sessions = max(1, peak[0])
        t1 = time.monotonic()
        subprocess.run([SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(N), "-l", str(size),
                        "-f", "hello@planiva.example", "-t", "client@example.com",
                        "127.0.0.1:%d" % port], check=True, stdout=subprocess.DEVNULL,
                       timeout=1800)
        ref_s = time.monotonic() - t1

        crier_rate, ref_rate = N / crier_s, N / ref_s
        print("p1: crier: %d emails of %d bytes queued (posted in %.1f s), then %d workers x %d"
              " slots drained them in %.2f s over at most %d SMTP sessions"
              % (N, size, posted_s, WORKERS, CLAIM_BATCH, crier_s, peak[0]))
        print("p1: smtp-source: %d messages of %d bytes, %d sessions reused (-d), %.2f s"
              % (N, size, sessions, ref_s))
        print("P1 email: crier %.0f msg/s (%d workers x %d), smtp-source %.0f msg/s, ratio %.2f"
              % (crier_rate, WORKERS, CLAIM_BATCH, ref_rate, crier_rate / ref_rate))
    finally:
        if perf is not None:
            perf.kill()
        if crier is not None:
            crier.stop()
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
        h.drop_database(db)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
