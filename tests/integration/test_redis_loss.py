"""Redis killed under load and started again, on a private Redis of the
test's own (the shared one serves the other tests):

* while it is gone, delivery goes on under the in-process limiter: grants
  are decided by the local clock, the fallback is counted, a warning is
  logged once;
* after it is back, the limiter returns to Redis (a grant decided by
  Redis's clock, "redis_restored" logged);
* every message accepted reaches its final state, each sent exactly once.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CONSENT_ALL = {"sms": True, "whatsapp": True}
POST_EVERY_S = 0.05
MAX_POSTS = 800
BEFORE_S = 2.0   # load with Redis
OUTAGE_S = 5.0   # load without it
AFTER_S = 3.0    # load after it is back


class PrivateRedis:
    """redis-server in the foreground on a fixed 127.0.0.1 port, so it can be
    killed and started again where crier expects it."""

    def __init__(self, dir, port):
        self.dir, self.port, self.proc = dir, port, None
        os.makedirs(dir, exist_ok=True)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                              capture_output=True, text=True, timeout=10).stdout.strip()

    def start(self):
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        h.wait_until(lambda: self.cli("ping") == "PONG", 15, what="redis-server answering")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self):
        if self.proc:
            self.kill()


class Poster(threading.Thread):
    """Posts an SMS message every POST_EVERY_S until stopped; each to a phone
    of its own, so the provider's requests can be counted per message."""

    def __init__(self, crier):
        super().__init__(daemon=True)
        self.crier = crier
        self.stop_flag = threading.Event()
        self.accepted = {}  # communication id -> phone
        self.refused = []

    def run(self):
        i = 0
        while not self.stop_flag.is_set() and i < MAX_POSTS:
            phone = "+1555557%04d" % i
            body = h.comm_body(i, phone=phone, consent=CONSENT_ALL,
                               message_type="error_notification", urgency="critical")
            status, _, js = self.crier.post_comm(body, key="redis-loss-%d" % i)
            if status == 202:
                self.accepted[js["communication_id"]] = phone
            else:
                self.refused.append((status, js))
            i += 1
            time.sleep(POST_EVERY_S)


def grant_clocks(log_path):
    """The deciding clock of every rate-limit grant, in log order, and the
    ratelimit warnings and notices by event name."""
    clocks, events = [], []
    with open(log_path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            if '"ratelimit"' not in line:
                continue
            ev = json.loads(line)
            if ev.get("component") != "ratelimit":
                continue
            if ev.get("event") == "granted":
                clocks.append(ev["clock"])
            else:
                events.append(ev["event"])
    return clocks, events


def test_redis_killed_under_load(tmp):
    db = h.new_database("redis_loss")
    redis = PrivateRedis(os.path.join(tmp, "redis"), h.free_port())
    redis.start()
    sender = "+1500556%04d" % random.randrange(10000)
    try:
        with h.ProviderStub(os.path.join(tmp, "stub"),
                            ["--twilio-account-sid", h.STUB_ACCOUNT_SID]) as stub:
            env = dict(h.stub_env(stub, whatsapp=False, from_number=sender),
                       CRIER_TRANSPORT_SMS="live",
                       CRIER_REDIS_URL="redis://127.0.0.1:%d/0" % redis.port,
                       # above the posting rate: the limiter decides every
                       # send but does not hold the load back
                       CRIER_RATE_TWILIO="50/s,10",
                       CRIER_LOG_LEVEL="debug")
            with h.Crier(db, tmp, env=env) as crier:
                poster = Poster(crier)
                poster.start()
                time.sleep(BEFORE_S)
                redis.kill()
                time.sleep(OUTAGE_S)
                redis.start()  # empty: no bucket until crier writes one again
                restarted = len(grant_clocks(crier.log_path)[0])
                time.sleep(AFTER_S)
                # the handles retry Redis at most once a second (the bucket
                # itself lives a fraction of a second: its key expires once
                # the bucket is full again, so the log is what to watch)
                h.wait_until(lambda: "redis" in grant_clocks(crier.log_path)[0][restarted:], 15,
                             what="a send decided by the restarted Redis")
                poster.stop_flag.set()
                poster.join(60)

                accepted = poster.accepted
                assert not poster.refused, poster.refused[:3]
                finals = crier.wait_final(list(accepted), timeout=120)
                statuses = sorted({f["status"] for f in finals.values()})
                assert statuses == ["sent"], statuses

                sent = {}
                for req in stub.requests("twilio"):
                    to = urllib.parse.parse_qs(req["body"])["To"][0]
                    sent[to] = sent.get(to, 0) + 1
                doubled = {p: n for p, n in sent.items() if n != 1}
                assert not doubled, doubled
                assert sorted(sent) == sorted(accepted.values()), \
                    (len(sent), len(accepted))

                clocks, events = grant_clocks(crier.log_path)
                first_local = clocks.index("local") if "local" in clocks else -1
                back = "redis" in clocks[first_local:] if first_local >= 0 else False
                print("posts accepted %d, sent %d; grants: %d by Redis, %d local; "
                      "ratelimit events %s"
                      % (len(accepted), len(sent), clocks.count("redis"), clocks.count("local"),
                         sorted(set(events))))
                assert clocks and clocks[0] == "redis", clocks[:3]
                assert first_local > 0, "no send was decided locally while Redis was gone"
                assert back, "no send was decided by Redis after it came back"
                assert events.count("redis_unavailable") >= 1, events
                assert "redis_restored" in events, events
                status, _, text = crier.request("GET", "/metrics", token=None)
                assert status == 200
                line = [x for x in text.splitlines()
                        if x.startswith("crier_ratelimit_local_fallback_total ")]
                assert line and float(line[0].split()[1]) > 0, line
    finally:
        redis.stop()
        if not h._keep():
            shutil.rmtree(redis.dir, ignore_errors=True)


h.run([test_redis_killed_under_load])
