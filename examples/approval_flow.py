"""A refund that waits for a person: the run pauses, the process exits, a decision resumes it.

    python examples/approval_flow.py                 # start: the run pauses at the refund
    python examples/approval_flow.py approve KEY     # later, any process: approve and finish
    python examples/approval_flow.py deny KEY        # ... or decline (the agent is told)

The journal (./.pilothouse/approvals.db) holds the paused run; nothing waits in memory.
The model is scripted here so the flow is the same on every machine; pass
`--model local` (or `openai:...`) to let a real model choose the calls.
"""

from __future__ import annotations

import sys
from typing import Any

from pilothouse import Agent, PilothouseError, ScriptedModel, tool
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import call
from pilothouse.policy import Policy, Rule
from pilothouse.trace import describe

STORE = ".pilothouse/approvals.db"


@tool
def order_total(order_id: str) -> str:
    """The amount paid for an order."""
    return f"Order {order_id} was paid 250.00 USD by card."


@tool(effect="irreversible", on_doubt="ask")
def refund(order_id: str, amount: float) -> str:
    """Refund an amount of an order to the card it was paid with."""
    return f"Refunded {amount:.2f} USD on order {order_id}."


def scripted(request: ModelRequest) -> Any:
    """Stands in for a model: look the order up, refund it, then answer."""
    turn = sum(1 for m in request.messages if m.role == "assistant")
    script: list[Any] = [
        call("order_total", order_id="A17"),
        call("refund", order_id="A17", amount=250.0),
        "Your refund of 250.00 USD is on its way.",
    ]
    return script[min(turn, 2)]


def build(model: str | None) -> Agent[None, str]:
    # Refunds over 100 need a person; smaller ones are allowed outright.
    policy = Policy(
        [
            Rule(
                "refund",
                "ask",
                id="big-refunds",
                when={"args": {"amount": {"exclusiveMinimum": 100}}},
            ),
            Rule("refund", "allow", id="small-refunds"),
        ]
    )
    return Agent(
        model or ScriptedModel(scripted),
        "You help customers with refunds.",
        tools=[order_total, refund],
        policy=policy,
        store=STORE,
        name="refunds",
    )


def main(argv: list[str]) -> int:
    model = None
    if "--model" in argv:
        i = argv.index("--model")
        model, argv = argv[i + 1], argv[:i] + argv[i + 2 :]
    agent = build(model)
    show = [lambda e: print("  " + describe(e))]
    if not argv:
        result = agent.run_sync("Please refund my order A17.", subscribers=show)
    elif len(argv) == 2 and argv[0] in ("approve", "deny"):
        verb, key = argv
        try:
            result = agent.resume_sync(
                key.split(":")[0],
                approvals={key: verb == "approve"},
                approved_by="example",
                subscribers=show,
            )
        except PilothouseError as exc:  # not waiting, unknown run, already finished, ...
            print(f"error: {exc}", file=sys.stderr)
            return 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if result.outcome == "paused":
        for p in result.pending:
            print(f"\npaused: {p.tool}({p.arguments}) needs a person: {p.reason}")
            print(f"  approve: python examples/approval_flow.py approve {p.key}")
            print(f"  deny:    python examples/approval_flow.py deny {p.key}")
        return 0
    print(f"\nanswer: {result.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
