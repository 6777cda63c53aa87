"""P2: SMS delivery throughput, crier against wrk on the same provider stub.

crier side: N SMS requests (error_notification, CRITICAL, clients with a
phone and SMS consent) are posted through the API to a crier without
workers, which accepts and commits them; then a crier with workers claims,
renders, sends each to the local Twilio stub over the live transport and
marks it sent. The rate is N over the time from that crier answering its
health check to the last row marked sent: delivery alone, not the Python
client that posts the requests (slower than delivery). Reference: wrk
POSTing the same request (path, form body, Basic auth copied from one crier
made) to the same stub with as many connections as crier can have sends in
flight (workers x claim batch). Prints one line ending with the ratio.
Run by tests/bench/p2_delivery.sh (make bench-p2), which starts the services.
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402

N = int(os.environ.get("P2_MESSAGES", "2000"))
WORKERS = int(os.environ.get("P2_WORKERS", "8"))
CLAIM_BATCH = int(os.environ.get("P2_CLAIM_BATCH", "16"))
IN_FLIGHT = WORKERS * CLAIM_BATCH
DURATION = int(os.environ.get("P2_DURATION", "10"))
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"


def start_stub(folder):
    os.makedirs(folder, exist_ok=True)
    proc = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(h.source_dir(), "tests", "support", "provider_stub.py"),
         # no auth token: the stub then posts no receipts, which the wrk side
         # could not match
         "--port", "0", "--dir", folder, "--twilio-account-sid", ACCOUNT_SID],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "READY":
        proc.kill()
        raise RuntimeError("provider stub did not start")
    return proc, int(line[1])


def main():
    tmp = tempfile.mkdtemp(prefix="crier-p2-")
    db = h.new_database("p2")
    stub, port = start_stub(os.path.join(tmp, "stub"))
    base = "http://127.0.0.1:%d" % port
    crier = None
    try:
        env = {
            "CRIER_TRANSPORT_SMS": "live", "TWILIO_API_BASE": base,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "CRIER_CLAIM_BATCH": str(CLAIM_BATCH), "CRIER_LOG_LEVEL": "warning",
            # throughput, not the per-sender quota (1/s by default) is measured
            "CRIER_RATE_TWILIO": "off"}
        # Phase 1: the requests are accepted by a crier without workers, so
        # the HTTP client posting them (slower than delivery) is not timed.
        crier = h.Crier(db, os.path.join(tmp, "crier-intake"),
                        env=dict(env, CRIER_WORKERS="0"))
        bodies = [h.comm_body(i, phone="+1555%07d" % (1000000 + i),
                              consent={"sms": True, "whatsapp": False},
                              message_type="error_notification", urgency="critical")
                  for i in range(N)]
        t_post = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            answers = list(ex.map(crier.post_comm, bodies))
        posted_s = time.monotonic() - t_post
        bad = [a for a in answers if a[0] != 202 or a[2].get("decision", {}).get(
            "primary_channel") != "sms"]
        if bad:
            raise RuntimeError("%d requests not accepted for SMS, e.g. %r" % (len(bad), bad[0]))
        crier.stop()
        # Phase 2: a crier with workers drains the queue; timed from the
        # moment it answers its health check to the last row marked sent.
        crier = h.Crier(db, os.path.join(tmp, "crier"), env=dict(env, CRIER_WORKERS=str(WORKERS)))
        t0 = time.monotonic()

        def all_sent():
            rows = h.psql(db, "SELECT count(*) FROM communications"
                                  " WHERE status IN ('sent', 'delivered')")
            return int(rows[0][0]) >= N
        h.wait_until(all_sent, timeout=600, interval=0.05, what="%d SMS sent" % N)
        crier_s = time.monotonic() - t0
        with open(os.path.join(tmp, "stub", "requests.jsonl"), encoding="utf-8") as f:
            sample = json.loads(f.readline())
        crier.stop()
        crier = None

        env = dict(os.environ, P2_PATH=sample["path"], P2_BODY=sample["body"],
                   P2_AUTH=sample["headers"]["Authorization"])
        wrk = subprocess.run(
            ["timeout", str(DURATION + 30), "wrk", "-t2", "-c%d" % IN_FLIGHT, "-d%ds" % DURATION,
             "-s", os.path.join(h.source_dir(), "tests", "bench", "p2_wrk.lua"), base],
            env=env, capture_output=True, text=True, check=True)
        wrk_rate = next(float(line.split()[1]) for line in wrk.stdout.splitlines()
                        if line.startswith("Requests/sec:"))
        non2xx = [line for line in wrk.stdout.splitlines() if "Non-2xx" in line]
        if non2xx:
            raise RuntimeError("wrk got errors from the stub: %s" % non2xx)
        crier_rate = N / crier_s
        print("p2: crier: %d SMS queued (posted in %.1f s), then %d workers drained them in %.2f s"
              % (N, posted_s, WORKERS, crier_s))
        print("p2: wrk: %d connections, %d s against the same stub" % (IN_FLIGHT, DURATION))
        print("P2 sms delivery: crier %.0f msg/s, wrk %.0f req/s, ratio %.2f"
              % (crier_rate, wrk_rate, crier_rate / wrk_rate))
    finally:
        if crier is not None:
            crier.stop()
        stub.terminate()
        stub.wait(timeout=10)
        h.drop_database(db)


if __name__ == "__main__":
    main()
