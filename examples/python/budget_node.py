"""The seed's budget_allocation_node with the Python client: a workflow node
does its own work, asks crier to tell the client, and keeps crier's answer
in WorkflowState.communications. Retried, the node sends nothing twice: the
step name makes the idempotency key.

    CRIER_URL=http://127.0.0.1:8080 CRIER_TOKEN=... \
        python3 examples/python/budget_node.py PLAN_ID CLIENT_ID EMAIL

prints the state after the node as JSON.
"""
import json
import os
import sys
from dataclasses import asdict, dataclass, field

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "clients", "python"))
from crier_client import Client, CrierError  # noqa: E402


@dataclass
class WorkflowState:
    plan_id: str
    client_id: str
    client: dict
    budget_allocations: list = field(default_factory=list)
    communications: list = field(default_factory=list)
    errors: list = field(default_factory=list)


def allocate_budget(total):
    """The node's own work (a stand-in): one balanced strategy."""
    shares = [("Venue", 30), ("Catering", 30), ("Decor", 15), ("Photography", 10), ("Other", 15)]
    return [{"name": "Balanced", "total": total, "recommended": True,
             "allocations": [{"category": c, "percent": p, "amount": "%d" % (total * p // 100)}
                             for c, p in shares]}]


def budget_allocation_node(state, crier):
    state.budget_allocations = allocate_budget(2500000)
    try:
        answer = crier.create_communication({
            "plan_id": state.plan_id,
            "client_id": state.client_id,
            "message_type": "budget_summary",
            "client": state.client,
            "context": {"event_type": "wedding", "total_budget": "2500000",
                        "budget_allocations": state.budget_allocations},
        }, step="budget_allocation")
        state.communications.append({"step": "budget_allocation",
                                     "communication_id": answer["communication_id"],
                                     "status": answer["status"]})
    except CrierError as e:
        # The workflow goes on: crier's refusal is the workflow's to report.
        state.errors.append({"step": "budget_allocation", "code": e.code, "status": e.status})
    return state


def main(argv):
    plan_id, client_id, email = argv[1:4]
    crier = Client(os.environ["CRIER_URL"], os.environ["CRIER_TOKEN"])
    state = WorkflowState(plan_id=plan_id, client_id=client_id,
                          client={"name": "Asha Rao", "email": email, "timezone": "UTC",
                                  "locale": "en", "consent": {"sms": False, "whatsapp": False}})
    state = budget_allocation_node(state, crier)
    state = budget_allocation_node(state, crier)  # a retried node: the same communication
    print(json.dumps(asdict(state)))
    return 0 if not state.errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
