"""PostgreSQL stopped for 10 s under load, on a private cluster of the
test's own (the shared one serves the other tests):

* while it is down, every request is answered, and answered quickly: 503
  with a JSON error (never a hang, never a crash), and /readyz is 503;
* after it is back, a new message is delivered within seconds;
* every message accepted, before, during or after, reaches a final state:
  nothing accepted is lost.
"""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

OUTAGE_S = 10.0
POST_EVERY_S = 0.05
MAX_POSTS = 1500


def services(cmd, svc):
    script = os.path.join(h.source_dir(), "scripts", "services.sh")
    r = subprocess.run([script, cmd, svc], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r.stdout


def private_database(svc):
    services("start", svc)
    env = services("env", svc)
    base = [line.split("=", 1)[1] for line in env.splitlines()
            if "CRIER_TEST_DATABASE_URL" in line][0]
    h.psql(base, "CREATE DATABASE faults")
    url = base.rsplit("/", 1)[0] + "/faults"
    h.migrate(url)
    return url


class Poster(threading.Thread):
    """Posts a message every POST_EVERY_S until stopped; records each answer
    (status, seconds it took, body)."""

    def __init__(self, crier):
        super().__init__(daemon=True)
        self.crier = crier
        self.stop_flag = threading.Event()
        self.answers = []

    def run(self):
        i = 0
        while not self.stop_flag.is_set() and i < MAX_POSTS:
            started = time.monotonic()
            try:
                status, _, js = self.crier.post_comm(h.comm_body(i), key="fault-%d" % i)
            except OSError as e:  # a refused or cut connection is a failure too
                status, js = -1, str(e)
            self.answers.append((time.time(), status, time.monotonic() - started, js))
            i += 1
            time.sleep(POST_EVERY_S)


def test_database_restart_under_load(tmp):
    svc = os.path.join(tmp, "svc")
    db = private_database(svc)
    try:
        with h.Crier(db, os.path.join(tmp, "crier")) as crier:
            poster = Poster(crier)
            poster.start()
            time.sleep(2.0)
            down_at = time.time()
            services("pg-stop", svc)
            readyz = []
            while time.time() - down_at < OUTAGE_S:
                status, _, _ = crier.request("GET", "/readyz", token=None, timeout=15)
                readyz.append(status)
                time.sleep(0.5)
            services("pg-start", svc)
            up_at = time.time()
            # a message after the restart, timed to its final state
            status, _, js = crier.post_comm(h.comm_body(9999), key="after-restart")
            while status != 202 and time.time() - up_at < 30:
                time.sleep(0.2)
                status, _, js = crier.post_comm(h.comm_body(9999), key="after-restart")
            assert status == 202, (status, js)
            probe = js["communication_id"]
            crier.wait_final([probe], timeout=60)
            resumed = time.time() - up_at
            time.sleep(2.0)
            poster.stop_flag.set()
            poster.join(60)

            during = [a for a in poster.answers if down_at + 1.0 < a[0] < up_at - 0.5]
            accepted = [a[3]["communication_id"] for a in poster.answers if a[1] == 202]
            print("posts: %d, accepted %d, during the outage %d (%s); /readyz %s; "
                  "delivery resumed %.1f s after the restart"
                  % (len(poster.answers), len(accepted), len(during),
                     sorted({a[1] for a in during}), sorted(set(readyz)), resumed))
            assert during, "no request was made while the database was down"
            for when, status, took, js in during:
                assert status == 503, (status, js)
                assert isinstance(js, dict) and "error" in js, js
                assert took < 12.0, took  # answered, not hung
            assert 503 in readyz, readyz
            assert all(a[1] in (202, 503) for a in poster.answers), \
                sorted({a[1] for a in poster.answers})
            # the database restart is seconds; its reconnect is the next poll
            assert resumed < 30.0, resumed
            finals = crier.wait_final(accepted, timeout=120)
            assert len(finals) == len(accepted)
            assert all(f["status"] == "delivered" for f in finals.values()), \
                sorted({f["status"] for f in finals.values()})
            n = int(h.psql(db, "SELECT count(*) FROM communications")[0][0])
            assert n == len(set(accepted)) + 1, (n, len(accepted))
    finally:
        services("clean", svc)


h.run([test_database_restart_under_load])
