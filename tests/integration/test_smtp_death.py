"""The SMTP server dies in the middle of DATA, then refuses connections for
10 s, then comes back (the real sink, tests/support/smtp_sink.py, on the same
port):

* the message cut mid-DATA and every message sent while nothing listens
  are retried on the shipped fallback rules' schedule (its delays cut to
  2, 5, 10 and 20 s, less their jitter): no retry comes sooner than the
  rules said;
* every message accepted reaches "sent", and the sink holds each exactly
  once: a message the server never acknowledged is sent again, none twice.

The dying server is a few lines of socket code here: it speaks SMTP up to
DATA, reads part of the message and drops the connection, and then stops
listening, as a crashed MTA would.
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

DELAYS = [2, 5, 10, 20]
JITTER = 0.10  # fallback.lua's: whole seconds, up to 10 % either way
REFUSING_S = 10.0
BEFORE = 4   # messages posted while the server is up (and dies)
DURING = 6   # messages posted while it refuses connections


class DyingSmtp(threading.Thread):
    """Answers SMTP on port until DATA, takes a few bytes of the message and
    closes the connection; every connection that reaches DATA dies so. Stops
    listening when told to (stop()), leaving the port refusing."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.cut = 0           # connections dropped mid-DATA
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        conn.settimeout(10)
        f = conn.makefile("rb")
        try:
            conn.sendall(b"220 dying.example ESMTP\r\n")
            for line in f:
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-dying.example\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    f.readline()  # part of the message, never its end
                    self.cut += 1
                    return
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            f.close()
            # RST, not FIN: the way a killed process's socket goes
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()

    def stop(self):
        self.stopping.set()
        self.sock.close()
        self.join(5)


def retry_gaps(db, comm_id):
    """[(attempt, seconds from its retry_scheduled event to the next
    attempt's event)] of one message, from delivery_events."""
    rows = h.psql(db, "SELECT event_type, attempt, extract(epoch FROM event_timestamp) "
                      "FROM delivery_events WHERE communication_id = :'id' AND attempt IS NOT NULL "
                      "AND event_type IN ('retry_scheduled', 'sent') ORDER BY id", id=comm_id)
    gaps = []
    for (kind, attempt, at), (_, nxt_attempt, nxt_at) in zip(rows, rows[1:]):
        if kind == "retry_scheduled" and int(nxt_attempt) == int(attempt) + 1:
            gaps.append((int(attempt), float(nxt_at) - float(at)))
    return gaps


def test_smtp_dies_mid_data(tmp):
    db = h.new_database("smtp_death")
    port = h.free_port()
    dying = DyingSmtp(port)
    dying.start()
    env = {
        "CRIER_TRANSPORT": "live",
        "CRIER_SMTP_URL": "smtp://127.0.0.1:%d" % port,
        "CRIER_SMTP_TLS": "off",
        "CRIER_MAIL_FROM": "Planiva <hello@planiva.example>",
        "CRIER_RULES_DIR": h.rules_dir(retry_delays=DELAYS),
    }
    sink = None
    zone = h.daytime_zone()
    ids = {}  # communication id -> recipient

    def post(i):
        rcpt = "death%d@example.com" % i
        status, _, js = crier.post_comm(h.comm_body(i, email=rcpt, urgency="high", timezone=zone),
                                        key="smtp-death-%d" % i)
        assert status == 202, (status, js)
        assert js["decision"].get("fallback_channels") == [], js["decision"]
        ids[js["communication_id"]] = rcpt

    try:
        with h.Crier(db, os.path.join(tmp, "crier"), env=env) as crier:
            for i in range(BEFORE):
                post(i)
            h.wait_until(lambda: dying.cut >= 1, 30, what="a connection cut mid-DATA")
            dying.stop()
            refusing_at = time.monotonic()
            for i in range(BEFORE, BEFORE + DURING):
                post(i)
                time.sleep(REFUSING_S / DURING / 2)
            # nothing listens: nothing can have been sent yet
            time.sleep(max(0.0, REFUSING_S - (time.monotonic() - refusing_at)))
            n_sent = int(h.psql(db, "SELECT count(*) FROM communications WHERE status = 'sent'")[0][0])
            assert n_sent == 0, n_sent
            sink = h.SmtpSink(os.path.join(tmp, "sink"), port=port)

            finals = crier.wait_final(list(ids), timeout=120)
            statuses = {i: f["status"] for i, f in finals.items()}
            assert set(statuses.values()) == {"sent"}, statuses

            got = {}
            for eml in sink.files():
                for rcpt in sink.envelope(eml)["rcpt_tos"]:
                    got[rcpt] = got.get(rcpt, 0) + 1
            doubled = {r: n for r, n in got.items() if n != 1}
            assert not doubled, doubled
            assert sorted(got) == sorted(ids.values()), (sorted(got), sorted(ids.values()))

            attempts = {i: f["attempts"] for i, f in finals.items()}
            assert all(a >= 2 for a in attempts.values()), attempts
            early = []
            for comm in ids:
                for attempt, gap in retry_gaps(db, comm):
                    # 0.2 s for the two events' own clocks (each is its
                    # transaction's start, the retry's a little before the due time)
                    least = DELAYS[attempt - 1] - int(DELAYS[attempt - 1] * JITTER)
                    if gap < least - 0.2:
                        early.append((comm, attempt, gap))
            assert not early, early
            errors = h.psql(db, "SELECT DISTINCT error_details FROM delivery_events "
                                "WHERE event_type = 'retry_scheduled'")
            print("cut mid-DATA: %d connection(s); %d messages, attempts %s; sink holds %d; "
                  "retry errors: %s"
                  % (dying.cut, len(ids), sorted(attempts.values()), len(got),
                     sorted(e[0] for e in errors if e[0])[:4]))
    finally:
        if sink:
            sink.stop()
        if not dying.stopping.is_set():
            dying.stop()


h.run([test_smtp_dies_mid_data])
