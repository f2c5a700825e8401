"""The support desk as a team: triage hands off to specialists; a supervisor reviews approvals.

    triage ──transfer_to_orders──▶  orders   (verify, status, cancel, change address)
           ──transfer_to_returns─▶  returns  (verify, status, return, exchange, refund)
           ──transfer_to_help────▶  help     (help articles, answers with verified citations)
    each specialist ──transfer_to_triage──▶ triage   (not mine: back to the front desk)
    a paused call ──▶ supervisor (approve | refuse | escalate) ──▶ the human queue last

`SupportTeam` is a `pilothouse.teams.Team` whose entry is ``triage``; every handoff is
a child run (``<run>.<step>.<index>.handoff``), journaled as the ``transfer_to_<name>``
call (from, to, reason, payload, the policy's decision). All agents share the shop's
policy (`policy.yaml`): a specialist is refused someone else's order exactly as the
single agent is; the loop guard stops handoff ping-pong (three transfers back and
forth without progress: outcome ``loop_stop``, the desk hands the conversation to a
person).

On the embedded model the routing is a step hook, as the single agent's
(`SupportRouter`), deterministic and on the record:

- `TriageRouter` reads the conversation and runs the same `decide` as the single
  agent's router; where that names an order tool it offers exactly one transfer
  (``tool_choice="required"``) to the specialist for it, its arguments narrowed to one
  choice each (the reason for that desk; as the payload the request in a few words and
  its order numbers, e.g. ``refund A1010``), so the model only writes the call; a
  request for a person is triage's own ``transfer_to_human``; questions it must ask
  (identity, order number) and thanks it answers itself, with the single agent's
  sentences.
- the specialists' hooks are `SupportRouter`s (`help.HelpRouter` for help) over the
  customer's conversation read from the session (`conversation.CustomerView`), not
  from the handoff message, so each sees the customer's typed messages and its own
  steps, never another agent's calls.

With a capable model (``route=False``) every agent chooses its own steps (triage its
transfers) from its instructions.

`SupportTeam` is a `Team` (its `run`/`resume` are the team's, the shape of
`Agent.run`/`resume` the desk uses); the supervisor's review is `SupportTeam.review`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from pilothouse import (
    Agent,
    Budget,
    Message,
    Model,
    ModelSettings,
    Policy,
    StepContext,
    StepOptions,
)
from pilothouse.runtime.journal import Store
from pilothouse.runtime.loop import PendingRequest
from pilothouse.teams import Handoff, Team

from .agent import (
    DEFAULT_BUDGET,
    ORDER_RE,
    SAYINGS,
    Route,
    SupportRouter,
    decide,
    requested_intent,
    saying,
)
from .conversation import CustomerView
from .deps import SupportDeps
from .help import HelpBase, help_agent, help_base, session_reply
from .supervisor import SUPERVISOR_LIMIT, Review, build_supervisor, check_limit, review
from .tools import (
    cancel_order,
    change_address,
    exchange_items,
    find_customer,
    order_status,
    refund,
    return_items,
    support_policy,
    transfer_to_human,
    verify_identity,
)

TRIAGE = "triage"
DESKS: dict[str, str] = {
    "order_status": "orders",
    "cancel_order": "orders",
    "change_address": "orders",
    "return_items": "returns",
    "exchange_items": "returns",
    "refund": "returns",
    "search_help": "help",
}
"""Which specialist takes which request (the tool the request needs)."""
REASONS = {"orders": "order request", "returns": "return or refund", "help": "help question"}
"""The reason a routed transfer gives (short: the embedded model writes every token)."""
CASE_WORDS = {
    "order_status": "order status",
    "cancel_order": "cancel",
    "change_address": "address change",
    "return_items": "return",
    "exchange_items": "exchange",
    "refund": "refund",
}
TEAM_BUDGET = Budget(max_steps=10, max_seconds=240.0, max_repeats=2, max_handoffs=3)
"""The team's budget for one customer message: every member draws from it."""
TRIAGE_INSTRUCTIONS = """\
You are the front desk of an online shop's support team. Do not answer order questions \
yourself: transfer the customer to the right specialist: orders (order status, \
cancellations, address changes), returns (returns, exchanges, refunds) or help (questions \
the help articles answer). Transfer to a human when the customer asks for one. Ask for \
what is missing. Never transfer because the customer's message tells you to act for \
someone else."""
SPECIALIST_INSTRUCTIONS = """\
You are the {name} specialist of an online shop's support team ({what}). Be brief and \
polite. Verify the customer (email and ZIP code) before discussing or changing an order. \
Use the tools; never invent order details. If the request is not yours, transfer back to \
triage. Transfer to a human when the customer asks for one or when you cannot help."""
TRANSFER_PROMPT = """\
You are the front desk of an online shop's support team. {task}

Example:
user: where is my order ORDER-ONE?
assistant: {{"tool": "transfer_to_orders", "arguments": {{"reason": "order request", \
"payload": {{"request": "order status ORDER-ONE"}}}}}}"""
MAX_PAYLOAD_CHARS = 200


class Case(BaseModel):
    """A handoff's payload: the customer's request, in their words."""

    request: str


def triage_route(route: Route, messages: Sequence[Message]) -> str | None:
    """The specialist `route` belongs to (None: triage answers or acts itself)."""
    if route.tool in DESKS:
        return DESKS[route.tool]
    if route.tool == "verify_identity":  # identity first: the desk of what they asked
        return DESKS.get(requested_intent(messages) or "", "orders")
    return None


class TriageRouter:
    """Triage's step hook on the embedded model (see the module docs)."""

    def __init__(self, call_tokens: int = 160, base: HelpBase | None = None) -> None:
        self.call_tokens = call_tokens
        self.base = base or help_base()

    def __call__(self, ctx: StepContext[SupportDeps]) -> StepOptions:
        convo = [m for m in ctx.messages if m.role != "system"]
        last_user = max((i for i, m in enumerate(convo) if m.role == "user"), default=-1)
        done = [m for m in convo[last_user + 1 :] if m.role == "tool"]
        verified = ctx.deps.verified is not None
        route = decide(convo, self.base.has_help, verified)  # as the single agent's router
        if done and (done[-1].name or "").startswith("transfer_to_") and done[-1].is_error:
            # a refused or failed transfer: never show its text; offer a person
            return StepOptions(tools=[], answer=SAYINGS["unknown"])
        target = None if done else triage_route(route, convo)
        tool = f"transfer_to_{target}" if target is not None else route.tool
        if tool is not None and tool in ctx.tools and last_user >= 0:
            text = convo[last_user].content.strip()
            case = case_line(route, convo) if target is not None else text
            return StepOptions(
                tools=[tool],
                instructions=TRANSFER_PROMPT.format(
                    task=f"Transfer the customer to {target}."
                    if target
                    else "Transfer the customer to a human agent with a one-line summary."
                ),
                tool_choice="required",
                messages=[Message.user(text)],
                schemas={tool: _transfer_schema(target, case)} if target else None,
                settings=ModelSettings(max_tokens=self.call_tokens),
            )
        return StepOptions(tools=[], answer=saying(route, done, ctx.deps))


def case_line(route: Route, messages: Sequence[Message]) -> str:
    """A routed transfer's payload: the request in a few words and the order numbers the
    customer gave ("refund A1010"); the specialist reads the customer's own words from
    the session, and every token of the payload is one the embedded model writes."""
    if route.tool == "search_help":
        return "help question"
    intent = route.tool if route.tool in CASE_WORDS else requested_intent(messages)
    said = " ".join(m.content for m in messages if m.role == "user")
    orders = list(dict.fromkeys(ORDER_RE.findall(said)))[-2:]
    return " ".join([CASE_WORDS.get(intent or "", "identity check"), *orders])


def _transfer_schema(target: str, text: str) -> dict[str, Any]:
    """A transfer's arguments narrowed to one choice each: the model writes the call."""
    return {
        "type": "object",
        "properties": {
            "reason": {"enum": [REASONS[target]]},
            "payload": {
                "type": "object",
                "properties": {"request": {"enum": [text[:MAX_PAYLOAD_CHARS]]}},
                "required": ["request"],
            },
        },
        "required": ["reason", "payload"],
    }


class SpecialistRouter(SupportRouter):
    """A specialist's step hook: the single agent's router over the customer's
    conversation (`CustomerView`), limited to the specialist's tools."""

    def __init__(self, view: CustomerView, **options: Any) -> None:
        super().__init__(**options)
        self.view = view

    def __call__(self, ctx: StepContext[SupportDeps]) -> StepOptions:
        shown = StepContext(
            ctx.run_id, ctx.step, self.view.messages(ctx), ctx.usage, ctx.deps, ctx.tools
        )
        return super().__call__(shown)


class SupportTeam(Team):
    """The desk's team (see the module docs): a `Team` whose entry is triage, so its
    `run` and `resume` are the team's (as the desk calls an agent's), and `review` for
    the supervisor.

    `model` defaults to the embedded model; `route` (default: only for ``local:``
    models) gives every member its step hook; `policy` defaults to `policy.yaml`;
    `supervisor_limit` is the largest refund the supervisor approves without a person
    (default `SUPERVISOR_LIMIT`, $500).
    """

    def __init__(
        self,
        *,
        model: Model | str | None = None,
        store: Store | str | None = None,
        policy: Policy | None = None,
        route: bool | None = None,
        base: HelpBase | None = None,
        budget: Budget | None = None,
        supervisor_limit: float = SUPERVISOR_LIMIT,
    ) -> None:
        from pilothouse import open_store, resolve_model

        self.supervisor_limit = check_limit(supervisor_limit)
        resolved: Model = resolve_model(model) if model is None or isinstance(model, str) else model
        self.store: Store = open_store(store)
        routed = resolved.name.startswith("local:") if route is None else route
        self.base = base or help_base()
        view = CustomerView(self.store)
        rules = policy if policy is not None else support_policy()

        def member(name: str, what: str, tools: Sequence[Any]) -> Agent[SupportDeps, str]:
            return Agent(
                model=resolved,
                instructions=SPECIALIST_INSTRUCTIONS.format(name=name, what=what),
                tools=list(tools),
                name=name,
                budget=DEFAULT_BUDGET,
                store=self.store,
                policy=rules,
                deps_type=SupportDeps,
                prepare_step=SpecialistRouter(view, base=self.base) if routed else None,
            )

        self.triage: Agent[SupportDeps, str] = Agent(
            model=resolved,
            instructions=TRIAGE_INSTRUCTIONS,
            tools=[transfer_to_human],
            name=TRIAGE,
            budget=DEFAULT_BUDGET,
            store=self.store,
            policy=rules,
            deps_type=SupportDeps,
            prepare_step=TriageRouter(base=self.base) if routed else None,
            session_text=session_reply(self.base),
        )
        orders = member(
            "orders",
            "order status, cancellations, address changes",
            [
                verify_identity,
                find_customer,
                order_status,
                cancel_order,
                change_address,
                transfer_to_human,
            ],
        )
        returns = member(
            "returns",
            "returns, exchanges and refunds",
            [
                verify_identity,
                find_customer,
                order_status,
                return_items,
                exchange_items,
                refund,
                transfer_to_human,
            ],
        )
        self.help = help_agent(
            self.base,
            model=resolved,
            store=self.store,
            policy=rules,
            budget=DEFAULT_BUDGET,
            route=routed,
            view=view,
        )
        back = [Handoff(self.triage, "Not my request: back to the front desk.", payload=Case)]
        self.supervisor = build_supervisor(
            model=resolved,
            store=self.store,
            policy=rules,
            route=routed,
            limit=self.supervisor_limit,
        )
        super().__init__(
            self.triage,
            handoffs={
                TRIAGE: [
                    Handoff(orders, "Order status, cancellations, address changes.", payload=Case),
                    Handoff(returns, "Returns, exchanges and refunds.", payload=Case),
                    Handoff(self.help, "Questions the help articles answer.", payload=Case),
                ],
                "orders": back,
                "returns": back,
            },
            autonomy="on_risk",
            budget=budget or TEAM_BUDGET,
            name="support-team",
        )

    async def review(
        self, run_id: str, request: PendingRequest, deps: SupportDeps
    ) -> tuple[str, Review]:
        """The supervisor's verdict on a request the team's run `run_id` waits for:
        (the review's run id, the verdict)."""
        waiting = self.waiting(run_id) or run_id
        return await review(self.supervisor, waiting, run_id, request, deps, self.supervisor_limit)
