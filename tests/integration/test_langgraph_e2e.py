"""The LangGraph.js example (examples/langgraph) against a real crier
(sandbox transports, a real PostgreSQL): the graph sends the welcome, the
budget and the vendor options, and stops at its interrupt; the test clicks
the second option's link in the vendor options email from the outbox; crier
sends one signed client_action callback, the example verifies it with the
JS client and resumes the run with its value; the graph confirms the second
combination and delivers the blueprint. No callback fails verification.

Then the Python example (examples/python) runs the seed's
budget_allocation_node twice: one communication, the same id both times.
"""
import email
import email.policy
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SECRET = "langgraph-e2e-callback-secret-0123456789"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Workflow:
    """node examples/langgraph/run.mjs, its JSON lines read as they come."""

    def __init__(self, env):
        script = os.path.join(h.source_dir(), "examples", "langgraph", "run.mjs")
        self.proc = subprocess.Popen(["node", script], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, text=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(json.loads(line))
                self.cond.notify_all()
        with self.cond:
            self.lines.append({"exited": True})
            self.cond.notify_all()

    def wait_for(self, key, timeout):
        with self.cond:
            ok = self.cond.wait_for(lambda: any(key in m or "exited" in m for m in self.lines),
                                    timeout)
            got = [m for m in self.lines if key in m]
        if not ok or not got:
            self.stop()
            raise AssertionError("no %r from the workflow: %r\nstderr: %s"
                                 % (key, self.lines, self.proc.stderr.read()))
        return got[0]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def plan_file(tmp, email_addr):
    ctx = {t: h._example_context(t) for t in ("welcome", "budget_summary", "vendor_options",
                                              "blueprint_delivery", "error_notification")}
    plan = {
        "plan_id": str(uuid.uuid4()),
        "client_id": str(uuid.uuid4()),
        "client": {"name": "Asha Rao", "email": email_addr, "timezone": "UTC", "locale": "en",
                   "consent": {"sms": False, "whatsapp": False}},
        "event": {"type": "wedding", "date": "14 February 2027", "contexts": ctx},
        "vendor_combinations": ctx["vendor_options"]["vendor_combinations"],
    }
    path = os.path.join(tmp, "plan.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(plan, f)
    return path, plan


def mail(crier, comm_id):
    with open(os.path.join(crier.outbox, comm_id + ".eml"), "rb") as f:
        return email.message_from_bytes(f.read(), policy=email.policy.default)


def text_of(msg):
    return msg.get_body(preferencelist=("plain",)).get_content()


def test_langgraph_resumes_on_a_click(tmp):
    db = h.new_database("langgraph")
    port = h.free_port()
    env = {"CRIER_WORKFLOW_CALLBACK_URL": "http://127.0.0.1:%d/crier" % port,
           "CRIER_WORKFLOW_CALLBACK_SECRET": SECRET, "CRIER_CALLBACK_RETRY_SECONDS": "1"}
    path, plan = plan_file(tmp, "asha@example.com")
    with h.Crier(db, tmp, env=env) as crier:
        wenv = dict(h.base_env(), CRIER_URL=crier.url, CRIER_TOKEN=h.TOKEN_WORKFLOW,
                    CRIER_CALLBACK_SECRET=SECRET, RECEIVER_PORT=str(port), PLAN_FILE=path)
        wf = Workflow(wenv)
        try:
            stopped = wf.wait_for("interrupted", 60)
            sent = {c["message_type"]: c["communication_id"] for c in stopped["communications"]}
            assert set(sent) == {"welcome", "budget_summary", "vendor_options"}, stopped
            options = stopped["communication_id"]
            assert options == sent["vendor_options"], stopped
            h.wait_until(lambda: os.path.exists(os.path.join(crier.outbox, options + ".eml")),
                         30, what="the vendor options email in the outbox")
            links = re.findall(re.escape(crier.url) + r"/a/[A-Za-z0-9_-]{56}",
                               text_of(mail(crier, options)))
            links = list(dict.fromkeys(links))  # in order, once each
            assert len(links) == 2, links
            with _opener.open(links[1], timeout=10) as resp:
                assert resp.status == 200
                page = resp.read().decode("utf-8")
            assert "Modern courtyard" in page, page

            done = wf.wait_for("done", 60)
            resumed = wf.wait_for("resumed", 1)
            assert resumed["action"] == "choose" and resumed["channel"] == "email", resumed
            assert done["selection"] == 2 and done["error"] is None, done
            kinds = [c["message_type"] for c in done["communications"]]
            assert kinds == ["welcome", "budget_summary", "vendor_options",
                             "selection_confirmation", "blueprint_delivery"], kinds
            by_type = {c["message_type"]: c["communication_id"] for c in done["communications"]}
            final = crier.wait_final(list(by_type.values()), timeout=30)
            assert all(final[i]["status"] in ("sent", "delivered") for i in final), final
            confirmed = text_of(mail(crier, by_type["selection_confirmation"]))
            assert "The Haveli Courtyard" in confirmed and "Jag Niwas" not in confirmed, confirmed
            assert os.path.exists(os.path.join(crier.outbox,
                                               by_type["blueprint_delivery"] + ".eml"))
            # a second click changes nothing: one client_action row
            with _opener.open(links[0], timeout=10) as resp:
                assert "Modern courtyard" in resp.read().decode("utf-8")
            rows = h.psql(db, "SELECT count(*) FROM workflow_callbacks"
                              " WHERE event_type = 'client_action'")
            assert rows == [["1"]], rows
            assert not any("refused" in m for m in wf.lines), wf.lines
        finally:
            wf.stop()

        # the Python client in the seed's budget_allocation_node
        script = os.path.join(h.source_dir(), "examples", "python", "budget_node.py")
        out = subprocess.run(["/usr/bin/python3", script, plan["plan_id"], str(uuid.uuid4()),
                              "ravi@example.com"],
                             env=dict(h.base_env(), CRIER_URL=crier.url,
                                      CRIER_TOKEN=h.TOKEN_WORKFLOW),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (out.stdout, out.stderr)
        state = json.loads(out.stdout)
        ids = [c["communication_id"] for c in state["communications"]]
        assert len(ids) == 2 and ids[0] == ids[1], state


h.run([test_langgraph_resumes_on_a_click])
