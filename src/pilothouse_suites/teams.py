"""Team scenarios where specialisation matters (``pilothouse eval teams``).

    pilothouse eval teams -m teams:oracle -m teams:null --epochs 3
    pilothouse eval teams --model local --epochs 3

Each scenario builds a team whose every member runs on the model under evaluation,
and gives each member only its own tools, so the task cannot be solved unless the
work reaches the member that can do it:

- ``research_write_review``: a `Supervisor` (an editor) with a researcher (the only
  one with the product notes), a writer and a reviewer; the blurb must state two
  figures that only the notes hold, and the reviewer must have seen it;
- ``support_order_status``: a support case handed from triage to the orders
  specialist (the only one who can look an order up): the answer must give the
  order's tracking number, and nothing may be refunded;
- ``support_damaged_refund``: a case passed twice, triage -> orders (who finds the
  amount paid) -> refunds (the only one who can refund): exactly one refund, of the
  right order and amount.

Each sample is one team run (the root and every child run are in the evaluation's
log, so its usage is the team's: members and routing calls). ``teams:oracle`` is a
`ScriptedModel` that plays every member the intended way (it tells them apart by
their instructions) and must score 100%; ``teams:null`` answers at once and must
score 0%. pass^k over epochs is the harness's.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from pilothouse import Agent, ModelSettings, ScriptedModel, ToolCall, tool
from pilothouse.evals.runner import Suite, register_reference_models
from pilothouse.evals.scenario import EvalContext, Scenario, scenario
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import Reply
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.loop import RunResult
from pilothouse.teams import Handoff, Supervisor, Team

# -- the world the members work in --------------------------------------------------------

NOTES = {
    "kestrel 3": "Kestrel 3 drone: flight time 41 minutes; weight 870 g; folds to 21 cm.",
    "kestrel 2": "Kestrel 2 drone: flight time 28 minutes; weight 1,100 g (discontinued).",
    "heron": "Heron camera gimbal: 3 axes; weight 390 g.",
}

ORDERS = {
    "W-1042": {"status": "shipped", "tracking": "1Z-88-4410", "paid_eur": 129.0, "damaged": False},
    "W-2077": {"status": "delivered", "tracking": "1Z-88-5120", "paid_eur": 59.9, "damaged": True},
}


@tool
def search_notes(query: str) -> str:
    """Search the product notes; returns the matching notes."""
    words = set(re.findall(r"[a-z0-9]+", query.lower()))
    hits = [text for key, text in NOTES.items() if set(key.split()) <= words]
    return "\n".join(hits) or "no notes match"


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up: its status, tracking number, amount paid, and reported damage."""
    order = ORDERS.get(order_id.strip().upper())
    if order is None:
        return f"no order {order_id}"
    damage = "reported damaged on arrival" if order["damaged"] else "no damage reported"
    return (
        f"order {order_id.upper()}: {order['status']}, tracking {order['tracking']}, "
        f"paid {order['paid_eur']:.2f} EUR, {damage}"
    )


@tool(effect="side_effect")
def issue_refund(order_id: str, amount_eur: float) -> str:
    """Refund an order (once per order)."""
    return f"refunded {amount_eur:.2f} EUR on {order_id}"


class Case(BaseModel):
    """A support case as triage hands it on."""

    order_id: str
    problem: str


class RefundCase(BaseModel):
    """What refunds needs: the order and the amount to refund."""

    order_id: str
    amount_eur: float


REFUND_POLICY = Policy(
    [Rule("issue_refund", "allow", when={"args": {"amount_eur": {"maximum": 200}}})]
)

# -- instructions (the oracle tells the members apart by their first words) ----------------

EDITOR = (
    "You are the editor of a small team. Use ask_researcher to get facts, ask_writer to "
    "write text from them, and ask_reviewer to check the text against the facts. Answer "
    "with the approved text only."
)
RESEARCHER = (
    "You are the researcher. Find the facts the task asks for with search_notes and "
    "answer with the notes you found."
)
WRITER = "You are the writer. Write exactly the text the task asks for from the facts given."
REVIEWER = (
    "You are the reviewer. Check that every figure in the text appears in the facts. "
    "Answer APPROVED if it does, otherwise say which figure is wrong."
)
TRIAGE = (
    "You are triage for an online shop. Hand every case to the right specialist with "
    "the order id: transfer_to_orders for questions about an order or damaged goods."
)
ORDERS_DESK = (
    "You are the orders specialist. Look the order up with lookup_order. If the goods "
    "arrived damaged, hand the case to refunds with the order id and the amount paid; "
    "otherwise answer the customer with the order's status and tracking number."
)
REFUNDS_DESK = (
    "You are the refunds specialist. Refund the order with issue_refund for the amount "
    "given, then tell the customer what was refunded."
)

BLURB_TASK = (
    "Write a two-sentence product blurb for the Kestrel 3 drone that states its flight "
    "time and its weight."
)
STATUS_TASK = "Hi, where is my order W-1042? I'd like the tracking number."
REFUND_TASK = "My order W-2077 arrived with the propeller snapped. I want my money back."


# -- building and running a team inside a sample -------------------------------------------


def _agent(ctx: EvalContext, name: str, instructions: str, tools: list[Any], **kw: Any) -> Agent:
    agent: Agent = Agent(
        ctx.model,
        instructions,
        tools,
        name=name,
        budget=ctx.budget,
        store=ctx.store,
        **kw,
    )
    if ctx.temperature is not None:  # sampled epochs: each its own seed, as ctx.agent does
        s = agent.settings
        agent.settings = ModelSettings(ctx.temperature, s.max_tokens, ctx.epoch, s.top_p)
    return agent


async def _run_team(ctx: EvalContext, team: Team, task: str) -> RunResult[Any]:
    """Run `team` on `task` as this sample's run; its whole tree goes into the log."""
    from pilothouse.agent import new_run_id

    run_id = new_run_id()
    ctx.run_ids.append(run_id)  # before running: a run that raises is still logged
    try:
        result = await team.run(task, run_id=run_id)
    finally:
        stack = [run_id]
        while stack:  # every child run of the tree, so usage is the team's
            children = [r.run_id for r in ctx.store.children(stack.pop())]
            ctx.run_ids.extend(children)
            stack.extend(children)
    ctx.results.append(result)
    return result


def _runs_of(ctx: EvalContext, agent: str) -> list[str]:
    return [r for r in ctx.run_ids if ctx.store.get_run(r).agent == agent]


def _calls(ctx: EvalContext, name: str) -> list[dict[str, Any]]:
    return [c.arguments for r in ctx.run_ids for c in ctx.steps(r).calls if c.name == name]


# -- the scenarios ---------------------------------------------------------------------------


@scenario(input=BLURB_TASK, tags=("teams", "supervisor"))
async def research_write_review(ctx: EvalContext) -> None:
    """Supervisor: research, write, review; the figures are only in the researcher's notes."""
    members = [
        _agent(ctx, "researcher", RESEARCHER, [search_notes]),
        _agent(ctx, "writer", WRITER, []),
        _agent(ctx, "reviewer", REVIEWER, []),
    ]
    editor = _agent(ctx, "editor", EDITOR, [])
    team = Supervisor(editor, members, autonomy="autonomous", budget=ctx.budget)
    result = await _run_team(ctx, team, BLURB_TASK)
    text = str(result.output)
    assert "41" in text and "870" in text, f"the blurb lacks the figures: {text!r}"
    assert _calls(ctx, "search_notes"), "nobody searched the notes"
    assert _runs_of(ctx, "writer"), "the writer never ran"
    assert _runs_of(ctx, "reviewer"), "the reviewer never saw the text"


def _support_team(ctx: EvalContext) -> Team:
    refunds = _agent(ctx, "refunds", REFUNDS_DESK, [issue_refund], policy=REFUND_POLICY)
    orders = _agent(ctx, "orders", ORDERS_DESK, [lookup_order])
    triage = _agent(ctx, "triage", TRIAGE, [])
    return Team(
        triage,
        handoffs={
            "triage": [Handoff(orders, "Questions about an order; damaged goods.", payload=Case)],
            "orders": [
                Handoff(refunds, "Damaged goods to refund.", context="summary", payload=RefundCase)
            ],
        },
        autonomy="autonomous",
        budget=ctx.budget,
    )


@scenario(input=STATUS_TASK, tags=("teams", "handoff"))
async def support_order_status(ctx: EvalContext) -> None:
    """Triage hands an order question to the orders specialist, who looks it up."""
    result = await _run_team(ctx, _support_team(ctx), STATUS_TASK)
    text = str(result.output)
    assert "1Z-88-4410" in text, f"the answer lacks the tracking number: {text!r}"
    assert _runs_of(ctx, "orders"), "the case never reached orders"
    assert not _calls(ctx, "issue_refund"), "something was refunded"


@scenario(input=REFUND_TASK, tags=("teams", "handoff"))
async def support_damaged_refund(ctx: EvalContext) -> None:
    """Triage -> orders (finds the amount) -> refunds (refunds it once)."""
    await _run_team(ctx, _support_team(ctx), REFUND_TASK)
    refunds = _calls(ctx, "issue_refund")
    assert len(refunds) == 1, f"expected one refund, got {refunds}"
    (made,) = refunds
    assert str(made.get("order_id", "")).upper() == "W-2077", made
    assert abs(float(made.get("amount_eur", 0)) - 59.9) < 0.005, made
    assert _calls(ctx, "lookup_order"), "orders never looked the order up"


SCENARIOS: list[Scenario] = [research_write_review, support_order_status, support_damaged_refund]

suite = Suite(
    "teams",
    SCENARIOS,
    budget=Budget(max_steps=24, max_seconds=900),
    description="Teams where specialisation matters: supervisor, handoffs between specialists.",
)


# -- reference models ------------------------------------------------------------------------


def _figures(text: str) -> tuple[str, str] | None:
    minutes = re.search(r"(\d+) minutes", text)
    grams = re.search(r"weight ([\d,]+) g", text)
    return (minutes.group(1), grams.group(1)) if minutes and grams else None


def oracle_reply(request: ModelRequest) -> Reply:
    """Plays each member the intended way, from what its request holds."""
    system = request.messages[0].content if request.messages else ""
    user = next((m.content for m in request.messages if m.role == "user"), "")
    results = [m.content for m in request.messages if m.role == "tool"]
    n = len(results)

    def one(name: str, **arguments: Any) -> list[ToolCall]:
        return [ToolCall(f"oracle_{n}", name, arguments)]

    if system.startswith("You are the editor"):
        if n == 0:
            return one("ask_researcher", task="Find the Kestrel 3 drone's flight time and weight.")
        if n == 1:
            return one("ask_writer", task=f"{BLURB_TASK} Facts: {results[0]}")
        if n == 2:
            return one("ask_reviewer", task=f"Facts: {results[0]}\nText: {results[1]}")
        return results[1] if "APPROVED" in results[2] else "I could not get an approved text."
    if system.startswith("You are the researcher"):
        return one("search_notes", query="Kestrel 3") if n == 0 else results[0]
    if system.startswith("You are the writer"):
        figures = _figures(user)
        if figures is None:
            return "I was given no facts to write from."
        minutes, grams = figures
        return (
            f"The Kestrel 3 drone stays aloft for {minutes} minutes on one charge. "
            f"At {grams} g it folds into any backpack."
        )
    if system.startswith("You are the reviewer"):
        facts, _, text = user.partition("Text:")
        wrong = [f for f in re.findall(r"\d[\d,]*", text) if f not in facts]
        return "APPROVED" if not wrong else f"not in the facts: {', '.join(wrong)}"
    order = re.search(r"W-\d+", user)
    order_id = order.group(0) if order else ""
    if system.startswith("You are triage"):
        if n:
            return results[0]
        payload = {"order_id": order_id, "problem": user}
        return one("transfer_to_orders", reason="an order question", payload=payload)
    if system.startswith("You are the orders specialist"):
        if n == 0:
            return one("lookup_order", order_id=order_id)
        found = results[0]
        if "damaged on arrival" in found and n == 1:
            paid = re.search(r"paid ([\d.]+) EUR", found)
            amount = float(paid.group(1)) if paid else 0.0
            return one(
                "transfer_to_refunds",
                reason="damaged goods",
                payload={"order_id": order_id, "amount_eur": amount},
                summary=f"Order {order_id} arrived damaged; paid {amount:.2f} EUR.",
            )
        if n > 1:
            return results[-1]
        tracking = re.search(r"tracking (\S+),", found)
        number = tracking.group(1) if tracking else "?"
        return f"Your order {order_id} has shipped; tracking number {number}."
    if system.startswith("You are the refunds specialist"):
        if n == 0:
            given = re.search(r'"amount_eur":\s*([\d.]+)', user)
            return one(
                "issue_refund",
                order_id=order_id,
                amount_eur=float(given.group(1) if given else 0),
            )
        return f"Done: {results[0]}."
    return "I have no part in this."


def oracle_model() -> ScriptedModel:
    """A model that plays every member of every scenario the intended way."""
    return ScriptedModel(oracle_reply, name="teams:oracle", record=False)


def null_model() -> ScriptedModel:
    """A model that answers at once and hands nothing on."""
    return ScriptedModel(lambda request: "I don't know.", name="teams:null", record=False)


register_reference_models("teams", oracle_model, null_model)
