"""SIGTERM drains, against the binary under systemd's notify protocol:

* crier tells NOTIFY_SOCKET READY=1 once it serves and STOPPING=1 when a
  SIGTERM arrives, and answers WATCHDOG=1 at half the WATCHDOG_USEC pace;
* for CRIER_DRAIN_S after a SIGTERM, POST /v1/communications answers 503
  with a JSON error and /readyz 503 "stopping" (a load balancer's cue);
* a SIGTERM while SMS sends are in flight (the provider takes a second per
  message) exits 0; every message is then sent or back in the queue, none
  is left claimed, and a second crier on the same database finishes the
  rest: each message reached the provider exactly once.
"""
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SUFFIX = "8801"
N = 16


class NotifySocket:
    """A datagram socket that systemd would hold: what crier tells it. Read
    all the time, as systemd does: a full queue would block the sender."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.seen = []
        self.closing = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while not self.closing.is_set():
            try:
                self.seen.append(self.sock.recv(4096).decode("utf-8", "replace"))
            except socket.timeout:
                pass
            except OSError:
                return

    def wait_for(self, word, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(word in m for m in list(self.seen)):
                return True
            time.sleep(0.05)
        return any(word in m for m in list(self.seen))

    def close(self):
        self.closing.set()
        self.reader.join(5)
        self.sock.close()


def sms_body(i):
    body = h.comm_body(i, phone="+1555%04d%s" % (i, SUFFIX), consent={"sms": True},
                       message_type="reminder", preferred_channel="sms")
    del body["client"]["email"]
    return body


def statuses(db):
    rows = h.psql(db, "SELECT status, count(*) FROM communications GROUP BY status")
    return {r[0]: int(r[1]) for r in rows}


def test_sigterm_drains_and_nothing_is_lost_or_doubled(tmp):
    db = h.new_database("sigterm")
    note = NotifySocket(os.path.join(tmp, "notify.sock"))
    ids = []
    try:
        with h.ProviderStub(os.path.join(tmp, "stub"),
                            ["--recipient-mode", SUFFIX + "=slow:1"]) as stub:
            env = h.live_env(stub, whatsapp=False, NOTIFY_SOCKET=note.path,
                             WATCHDOG_USEC="400000", WATCHDOG_PID=None,
                             CRIER_WORKERS="2", CRIER_CLAIM_BATCH="4", CRIER_DRAIN_S="3")
            env = {k: v for k, v in env.items() if v is not None}
            crier = h.Crier(db, os.path.join(tmp, "first"), env=env)
            assert note.wait_for("READY=1"), note.seen
            for i in range(N):
                status, _, js = crier.post_comm(sms_body(i))
                assert status == 202, (status, js)
                ids.append(js["communication_id"])
            # some sends are in flight when the signal comes
            h.wait_until(lambda: len(stub.requests("twilio")) >= 2, timeout=60,
                         what="the first sends")
            assert note.wait_for("WATCHDOG=1", timeout=10), note.seen
            crier.proc.send_signal(signal.SIGTERM)
            assert note.wait_for("STOPPING=1", timeout=5), note.seen
            # the drain window: still answering, but not taking messages
            status, _, js = crier.post_comm(sms_body(N + 1))
            assert status == 503 and js.get("error", {}).get("code") == "service_unavailable", \
                (status, js)
            status, _, js = crier.request("GET", "/readyz", token=None)
            assert status == 503 and js.get("status") == "stopping", (status, js)
            crier.proc.wait(60)
            code = crier.stop(timeout=60)
            assert code == 0
            after_stop = statuses(db)
            print("after SIGTERM:", after_stop)
            # nothing is left claimed: sent, or back in the queue
            assert set(after_stop) <= {"sent", "queued", "pending"}, after_stop
            assert sum(after_stop.values()) == N
            # a second process finishes the rest, at the provider's usual pace
            stub.set_modes("success", {SUFFIX: "success"})
            with h.Crier(db, os.path.join(tmp, "second"), env=h.live_env(stub, whatsapp=False)) \
                    as second:
                finals = second.wait_final(ids, timeout=120)
            assert all(f["status"] == "sent" for f in finals.values()), finals
            sends = [r for r in stub.requests("twilio") if SUFFIX in r.get("body", "")]
            per_number = {}
            for r in sends:
                if r["status"] == 201:
                    for i in range(N):
                        if ("1555%04d%s" % (i, SUFFIX)) in r["body"]:
                            per_number[i] = per_number.get(i, 0) + 1
            assert per_number == {i: 1 for i in range(N)}, per_number
    finally:
        note.close()


h.run([test_sigterm_drains_and_nothing_is_lost_or_doubled])
