"""A support team that hands a case from triage to refunds, and asks a person first.

Runs offline as written (scripted models stand in for real ones; swap in
``"openai:gpt-4o-mini"`` or ``"local"``):

    python examples/team_handoff.py

What it shows:
- `Handoff`: triage transfers the case to refunds with a typed payload (`Refund`) and
  a context policy (`summary`: refunds sees triage's summary and the payload, not
  triage's tools or its conversation); the transfer is the tool `transfer_to_refunds`,
  which the policy decides like any call;
- `autonomy="on_risk"`: the policy says refunds above 50 EUR need a person, so the
  team pauses (durably: the store has it), and the approval resumes exactly the
  pending refund, once;
- the loop guard: two agents passing a case back and forth without doing anything
  stop after three transfers, with stop reason `handoff_loop`.
"""

from __future__ import annotations

from pydantic import BaseModel

from pilothouse import Agent, ScriptedModel, SQLiteStore, call, tool
from pilothouse.policy import Policy, Rule
from pilothouse.teams import Handoff, Team


class Refund(BaseModel):
    """What refunds needs to act: the order and the amount."""

    order_id: str
    amount_eur: float


@tool(effect="side_effect")
def issue_refund(order_id: str, amount_eur: float) -> str:
    """Refund an order."""
    return f"refunded {amount_eur} EUR on {order_id}"


store = SQLiteStore("team_handoff.db")
refunds = Agent(
    ScriptedModel([call("issue_refund", order_id="A-7", amount_eur=80.0), "Refunded 80 EUR."]),
    "You refund orders.",
    [issue_refund],
    name="refunds",
    store=store,
    policy=Policy(
        [
            Rule(
                "issue_refund",
                "ask",
                when={"args": {"amount_eur": {"exclusiveMinimum": 50}}},
                id="big-refund",
            ),
            Rule("issue_refund", "allow"),
        ]
    ),
)
summary = "Bo's lamp A-7 arrived broken; wants the 80 EUR back."
triage = Agent(
    ScriptedModel(
        [
            call(
                "transfer_to_refunds",
                reason="a refund",
                payload={"order_id": "A-7", "amount_eur": 80.0},
                summary=summary,
            )
        ]
    ),
    "You triage support cases.",
    name="triage",
    store=store,
)
team = Team(
    triage,
    handoffs={"triage": [Handoff(refunds, "Refund requests.", context="summary", payload=Refund)]},
    autonomy="on_risk",
)

paused = team.run_sync("My lamp A-7 arrived broken, I want my 80 EUR back.", run_id="case-1")
print("team:", paused.outcome)
for request in paused.pending:
    print(f"  waits for a person: {request.tool}({request.arguments}) [{request.key}]")
done = team.resume_sync("case-1", approvals={paused.pending[0].key: True}, approved_by="ann")
print("after approval:", done.outcome, "->", done.output)
print("usage (triage + refunds):", done.usage.total_tokens, "tokens")
for run_id in [r.run_id for r in [store.get_run("case-1"), *store.children("case-1")]]:
    info = store.get_run(run_id)
    print(f"  {run_id} · {info.agent} · {info.status}")

# The loop guard: a and b hand the case back and forth and do nothing else.
ping = Agent(
    ScriptedModel([call("transfer_to_pong", reason="yours", payload={"request": "?"})] * 3),
    "A.",
    name="ping",
    store=store,
)
pong = Agent(
    ScriptedModel([call("transfer_to_ping", reason="yours", payload={"request": "?"})] * 3),
    "B.",
    name="pong",
    store=store,
)
looping = Team(ping, handoffs={"ping": [Handoff(pong)], "pong": [Handoff(ping)]})
stopped = looping.run_sync("help", run_id="case-2")
assert stopped.stop is not None
print("ping-pong:", stopped.outcome, "·", stopped.stop.reason, "·", stopped.stop.message)
