"""First end-to-end check: a migrated database, `crier serve` healthy and
ready, and one welcome communication accepted."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402


def test_serve_answers_health_and_readiness(tmp):
    db = h.new_database("smoke")
    with h.Crier(db, tmp) as crier:
        status, _, body = crier.request("GET", "/healthz", token=None)
        assert status == 200, (status, body)
        status, _, body = h.wait_until(
            lambda: (lambda r: r if r[0] == 200 else None)(
                crier.request("GET", "/readyz", token=None)),
            timeout=10, what="/readyz to answer 200")
        assert status == 200, (status, body)


def test_welcome_is_accepted(tmp):
    db = h.new_database("smoke")
    with h.Crier(db, tmp) as crier:
        body = h.comm_body(1, message_type="welcome")
        status, _, answer = crier.post_comm(body, key="smoke-welcome-1")
        assert status == 202, (status, answer)
        assert isinstance(answer, dict) and answer.get("communication_id"), answer
        decision = answer.get("decision")
        assert isinstance(decision, dict) and decision.get("primary_channel") == "email", answer
        rows = h.psql(db, "SELECT message_type FROM communications WHERE id = :'id'",
                      id=answer["communication_id"])
        assert rows == [["welcome"]], rows


def test_requests_without_token_are_refused(tmp):
    db = h.new_database("smoke")
    with h.Crier(db, tmp) as crier:
        status, _, answer = crier.post_comm(h.comm_body(2), token=None)
        assert status == 401, (status, answer)
        rows = h.psql(db, "SELECT count(*) FROM communications")
        assert rows == [["0"]], rows


h.run([test_serve_answers_health_and_readiness, test_welcome_is_accepted,
       test_requests_without_token_are_refused])
