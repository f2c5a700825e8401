"""The desk team's supervisor: it decides what the policy sends for approval, before a person.

The policy answers ``ask`` for the refunds a person must see (above $200, adding up
past $200 in a run, an order refunded before). In the team, such a call pauses the
team as before; the desk then gives the waiting request to the supervisor first
(`review`), an agent whose output is a `Review`: ``approve``, ``refuse`` or
``escalate``. Approve and refuse are the desk's decision, journaled like a person's
(the paused run resumes with the approval, ``approved_by="supervisor"``); escalate
leaves the request in the human queue, with the supervisor's reason for staff. The
human queue stays the last resort.

The review is a run of its own in the run tree: a child of the waiting member's run,
named after the call it is about (``<run>.<step>.<index>.review``), started once
(a desk restarted mid-review resumes it or reads its recorded verdict, never asks
twice). On the embedded model its step hook (`SupervisorRouter`) answers with the
rules of `rule_review` without a model call, journaled as the step's answer; a
capable model reads the request and the order (``order_status``) and decides itself,
under the same policy.

The rules (`rule_review`): only refunds are the supervisor's; a refund is approved
when it is the order's first refund, goes to the verified customer's own delivered
order, does not exceed what was paid, and is at most the supervisor's limit; refused when
it asks for more than is left to refund or names another customer's order; anything
else (an order refunded before, above the limit, not delivered) is escalated.

The limit is configuration, not code: `SupportTeam(supervisor_limit=...)` and
`Desk(supervisor_limit=...)` (``pilothouse serve --supervisor-limit``), by default
`SUPERVISOR_LIMIT`. It is on the record: the supervisor's instructions name it (each
step's ``model_request``) and so does its review run's input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from pilothouse import Agent, Budget, Model, Policy, Principal, RunResult, StepContext, StepOptions
from pilothouse.exceptions import ConfigurationError, RunNotFoundError
from pilothouse.runtime.drive import resume_run, start_run
from pilothouse.runtime.journal import Store
from pilothouse.runtime.loop import PendingRequest, RunLink

from .deps import SupportDeps
from .tools import order_status

SUPERVISOR_LIMIT = 500.0
"""The default largest refund the supervisor approves alone; above it, a person decides."""
SUPERVISOR = "supervisor"
INSTRUCTIONS = """\
You are the support team's supervisor. A refund or another change waits for approval. \
Read the request (and the order with order_status) and decide: "approve" a first refund \
of the verified customer's own delivered order that is no more than was paid and at \
most ${limit:.2f}; "refuse" a request for more than is left to refund or for \
someone else's order; "escalate" anything else to a person. Give a one-line reason."""
REVIEW_KEY = "review"


class Review(BaseModel):
    """The supervisor's verdict on one waiting request."""

    verdict: Literal["approve", "refuse", "escalate"]
    reason: str


@dataclass(slots=True)
class ReviewDeps(SupportDeps):
    """A review run's deps: the conversation's shop and verified customer, and the
    request under review (also written in the run's input, which the journal keeps)."""

    request: PendingRequest | None = None


def check_limit(limit: float) -> float:
    """`limit` as a supervisor's limit: a finite amount of dollars, zero or more."""
    if isinstance(limit, bool) or not isinstance(limit, (int, float)):
        raise ConfigurationError(f"supervisor_limit must be a number, not {limit!r}")
    if not math.isfinite(limit) or limit < 0:
        raise ConfigurationError(f"supervisor_limit must be a finite amount >= 0, not {limit!r}")
    return float(limit)


def rule_review(
    request: PendingRequest | None, deps: SupportDeps, limit: float = SUPERVISOR_LIMIT
) -> Review:
    """The supervisor's rules (see the module docs), with `limit` its largest approval;
    pure, deterministic."""
    if request is None or request.tool != "refund":
        return Review(verdict="escalate", reason="only refunds are the supervisor's to decide")
    args = request.arguments
    order = deps.shop.order(str(args.get("order_id", "")))
    try:
        amount = float(args.get("amount", 0))
    except (TypeError, ValueError):
        return Review(verdict="refuse", reason="the amount is not a number")
    if order is None or order["customer_id"] != deps.verified:
        return Review(verdict="refuse", reason="not an order of the verified customer")
    left = round(order["paid"] - order["refunded"], 2)
    if amount > left + 0.005:
        return Review(verdict="refuse", reason=f"more than is left to refund (${left:.2f})")
    if order["refunded"] > 0:
        return Review(verdict="escalate", reason="the order was refunded before: a person checks")
    if order["status"] != "delivered":
        return Review(verdict="escalate", reason=f"the order is {order['status']}, not delivered")
    if amount > limit:
        return Review(
            verdict="escalate",
            reason=f"${amount:.2f} is above the supervisor's limit of ${limit:.2f}",
        )
    return Review(
        verdict="approve",
        reason=f"a first refund of ${amount:.2f} of a delivered order, within what was paid",
    )


class SupervisorRouter:
    """The supervisor's step hook on the embedded model: the rules' verdict (under its
    `limit`) as the step's answer."""

    def __init__(self, limit: float = SUPERVISOR_LIMIT) -> None:
        self.limit = check_limit(limit)

    def __call__(self, ctx: StepContext[Any]) -> StepOptions:
        deps = ctx.deps
        request = deps.request if isinstance(deps, ReviewDeps) else None
        verdict = rule_review(request, deps, self.limit)
        return StepOptions(tools=[], answer=verdict.model_dump_json())


def build_supervisor(
    *,
    model: Model,
    store: Store | None,
    policy: Policy,
    route: bool,
    limit: float = SUPERVISOR_LIMIT,
) -> Agent[SupportDeps, Review]:
    """The supervisor agent (see the module docs), approving refunds up to `limit`."""
    limit = check_limit(limit)
    return Agent(
        model=model,
        instructions=INSTRUCTIONS.format(limit=limit),
        tools=[order_status],
        name=SUPERVISOR,
        output_type=Review,
        budget=Budget(max_steps=4, max_seconds=120.0),
        store=store,
        policy=policy,
        deps_type=SupportDeps,
        prepare_step=SupervisorRouter(limit) if route else None,
    )


def review_input(
    request: PendingRequest, customer: str | None, limit: float = SUPERVISOR_LIMIT
) -> str:
    """What the supervisor is asked (journaled as its run's input), its limit included."""
    return (
        f"Waiting for approval: {request.tool} {json.dumps(request.arguments, sort_keys=True)}. "
        f"Why the policy asks: {request.reason}. Verified customer: {customer or 'none'}. "
        f"Your limit: ${limit:.2f}."
    )


async def review(
    agent: Agent[SupportDeps, Review],
    waiting_run: str,
    root: str,
    request: PendingRequest,
    deps: SupportDeps,
    limit: float = SUPERVISOR_LIMIT,
) -> tuple[str, Review]:
    """The supervisor's verdict on `request` of `waiting_run` (a run of `root`'s tree):
    its review run is started once, resumed if a stop cut it off, read back if done.
    `limit` is the one the agent was built with (`build_supervisor`), for the record."""
    store = agent.store
    run_id = f"{waiting_run}.{request.step}.{request.index}.{REVIEW_KEY}"
    review_deps = ReviewDeps(deps.shop, deps.verified, request)
    try:
        info = store.get_run(run_id)
    except RunNotFoundError:
        info = None
    result: RunResult[Review]
    if info is not None and info.status == "final":
        return run_id, Review.model_validate(info.output)
    if info is not None:
        result = await resume_run(agent.run_spec(), store, run_id, deps=review_deps)
    else:
        result = await start_run(
            agent.run_spec(),
            store,
            review_input(request, deps.verified, limit),
            run_id,
            principal=Principal(user=SUPERVISOR, role="staff"),
            deps=review_deps,
            link=RunLink(waiting_run, root, request.key),
        )
    if result.outcome != "final" or not isinstance(result.output, Review):
        why = result.stop.message if result.stop is not None else result.outcome
        return run_id, Review(verdict="escalate", reason=f"the review did not finish: {why}")
    return run_id, result.output
