"""Handoffs: control passes from one agent of a team to another, with a typed payload.

A handoff is offered to the model as a tool, `transfer_to_<name>`, so the policy
engine decides it like any call (a rule on that name forbids the transfer) and the
journal records it like any call: the `tool_call` event is the handoff's record
(from = the run's agent, to = the tool's target, reason and payload = its checked
arguments, with the policy's decision), and the target's run is a child run of the
source (`child_started`, id `<source>.<step>.<index>.handoff`). Why no event of its
own: the call already carries every field a `handoff` event would, decided and
checked once; a second record of the same fact could only disagree with it.

When the target ends, the source run ends with the target's output without another
model call: the team's step hook answers the next step with it (journaled as a
`prepare_step` answer). The same hook ends the run with a `run_stopped` event when
the loop guard or `Budget.max_handoffs` refused the transfer.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import to_json

from pilothouse.events import STOP_OUTCOMES
from pilothouse.exceptions import ToolError
from pilothouse.prompts import Prompts
from pilothouse.runtime.journal import Store
from pilothouse.runtime.step import StepContext, StepOptions
from pilothouse.tools.tool import Tool, ToolContext

from .members import (
    HANDOFF_KEY,
    TRANSFER_PREFIX,
    TeamPaused,
    conversation,
    handoff_chain,
    made_progress,
    output_text,
)

ContextPolicy = Literal["full", "summary", "payload"]
CONTEXT_POLICIES: tuple[ContextPolicy, ...] = ("full", "summary", "payload")
# How a refused or stopped transfer's result begins: the hook reads it back.
NOT_DONE = "not done: "
STOPPED = "handoff stopped: "


class Request(BaseModel):
    """The payload of a handoff that declares no type of its own."""

    request: str


@dataclass(frozen=True, slots=True)
class Handoff:
    """A transfer a team member may make: to `target`, with a payload of type `payload`.

    `context` says what the target sees besides the payload: ``"payload"`` nothing
    else, ``"summary"`` a summary the source writes as part of the transfer (an
    argument of the call: journaled, no hidden summarising call), ``"full"`` the
    words of the conversation so far (user and assistant text; never the source's
    system prompt, tool calls or tool results). `description` tells the model when
    to transfer.
    """

    target: Any  # an Agent
    description: str = ""
    context: ContextPolicy = "payload"
    payload: type[BaseModel] = Request

    @property
    def tool_name(self) -> str:
        return f"{TRANSFER_PREFIX}{self.target.name}"


@dataclass(frozen=True, slots=True)
class Guard:
    """The team's limits on transfers: the loop guard and `max_handoffs`."""

    loop_limit: int = 3
    max_handoffs: int | None = None


def stalled_transfers(store: Store, chain: Sequence[tuple[str, str]], target: str) -> int:
    """How many transfers in a row, ending with the one to `target`, went back to an
    agent already in the chain from a run that made no progress (a tool other than a
    transfer returning a result): A→B→A→B without work counts 1, 2, 3."""
    stalled = 0
    seen: set[str] = set()
    hops = [*chain, ("", target)]
    for (run_id, source), (_, to) in itertools.pairwise(hops):
        seen.add(source)
        if to in seen and not made_progress(store, run_id):
            stalled += 1
        else:
            stalled = 0
    return stalled


class Claims:
    """Which call of a step hands off: the first transfer of the reply, by index.

    A step's calls start in index order (the loop gathers them in order and each
    runs until its first `await`), and a transfer claims before it awaits anything,
    so the lowest index always claims first; a resumed step re-runs its unfinished
    transfers in the same order. Only the last step of each run is kept.
    """

    __slots__ = ("_steps",)

    def __init__(self) -> None:
        self._steps: dict[str, tuple[int, int]] = {}

    def claim(self, run_id: str, step: int, index: int) -> int:
        """The index of the call that hands off in this step (`index` if it is the first)."""
        held = self._steps.get(run_id)
        if held is not None and held[0] == step and held[1] <= index:
            return held[1]
        if len(self._steps) > 4096:
            self._steps.clear()  # (old runs' steps; a live step re-claims in order)
        self._steps[run_id] = (step, index)
        return index


def transfer_tool(
    handoff: Handoff,
    store: Store,
    member: Any,
    guard: Guard,
    prompts: Prompts,
    claims: Claims,
) -> Tool:
    """The `transfer_to_<name>` tool of one handoff (see the module).

    Read-only for the policy's defaults (it changes nothing outside the run tree; a
    rule on its name still forbids it) and so run again on resume: `run_child` is
    exactly-once, so a resumed source re-attaches to the target it had started.
    """
    target_name = str(handoff.target.name)
    summary = handoff.context == "summary"

    async def transfer(ctx: ToolContext[Any], reason: str, payload: Any, summary: str = "") -> str:
        first = claims.claim(ctx.run_id, ctx.step, ctx.index)  # before any await
        if first != ctx.index:
            raise ToolError(f"{NOT_DONE}one handoff per reply (call {first} hands off)")
        flush = getattr(ctx.runner, "flush", None)
        if flush is not None:  # this run's record on disk: the chain reads it (and its
            flush()  # ancestors flushed theirs before they handed off)
        # A resumed step re-runs only its calls without a result: one whose sibling's
        # handoff already started must not hand off too (the store knows who did).
        mine = f"{ctx.run_id}.{ctx.step}.{ctx.index}.{HANDOFF_KEY}"
        for child in store.children(ctx.run_id):
            started = child.run_id
            if (
                started != mine
                and started.startswith(f"{ctx.run_id}.{ctx.step}.")
                and started.endswith("." + HANDOFF_KEY)
                and started.count(".") == mine.count(".")
            ):
                raise ToolError(f"{NOT_DONE}one handoff per reply ({started} was started)")
        chain = handoff_chain(store, ctx.run_id)
        source = chain[-1][1]
        if guard.max_handoffs is not None and len(chain) - 1 >= guard.max_handoffs:
            raise ToolError(
                f"{STOPPED}handoffs: {guard.max_handoffs} handoffs made, the most the "
                f"team's budget allows (Budget(max_handoffs=...))"
            )
        stalled = stalled_transfers(store, chain, target_name)
        if stalled >= guard.loop_limit:
            path = " -> ".join([*(a for _, a in chain), target_name])
            raise ToolError(
                f"{STOPPED}handoff_loop: {stalled} transfers back and forth without "
                f"progress ({path})"
            )
        data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        context = ""
        if handoff.context == "summary":
            context = f"Summary: {summary}"
        elif handoff.context == "full":
            lines = [f"{m.role}: {m.content}" for m in conversation(store, ctx.run_id)]
            context = "Conversation so far:\n" + "\n".join(lines)
        text = prompts.render(
            "team_handoff",
            source=source,
            reason=reason,
            payload=to_json(data).decode(),
            context=context,
        )
        result = await ctx.run_child(member, text, key=HANDOFF_KEY)
        if result.outcome == "paused":
            raise TeamPaused(result)
        if result.outcome != "final":
            stop = result.stop
            why = stop.reason if stop is not None else result.outcome
            said = stop.message if stop is not None else ""
            raise ToolError(f"{STOPPED}{why}: {said}")  # the first stop says why
        return output_text(result.output)

    local = {"Payload": handoff.payload, "ToolContext": ToolContext, "Any": Any}
    if summary:
        transfer.__annotations__ = {
            "ctx": ToolContext[Any],
            "reason": str,
            "payload": handoff.payload,
            "summary": str,
            "return": str,
        }
    else:

        async def transfer_plain(ctx: ToolContext[Any], reason: str, payload: Any) -> str:
            result: str = await transfer(ctx, reason, payload)
            return result

        transfer_plain.__annotations__ = {
            "ctx": ToolContext[Any],
            "reason": str,
            "payload": handoff.payload,
            "return": str,
        }
        transfer_plain.__doc__ = None
        return Tool(
            transfer_plain,
            name=handoff.tool_name,
            description=_description(handoff),
            localns=local,
        )
    return Tool(
        transfer,
        name=handoff.tool_name,
        description=_description(handoff),
        localns=local,
    )


def _description(handoff: Handoff) -> str:
    what = handoff.description or f"Hand the conversation to {handoff.target.name}."
    if handoff.context == "summary":
        return f"{what} Give the reason, the payload and a summary of the conversation."
    return f"{what} Give the reason and the payload."


def finish_hook(ctx: StepContext[Any]) -> StepOptions | None:
    """The team's step hook: after a transfer, end the run with the target's output,
    or stop it when the transfer was refused by the loop guard or the handoff limit.

    Read from the conversation's last tool results, so a resumed run decides the same.
    """
    results = []
    for message in reversed(ctx.messages):
        if message.role != "tool":
            break
        results.append(message)
    for message in reversed(results):
        if not (message.name or "").startswith(TRANSFER_PREFIX):
            continue
        if not message.is_error:
            return StepOptions(answer=message.content)
        if message.content.startswith(STOPPED):
            reason, _, text = message.content[len(STOPPED) :].partition(": ")
            if reason in STOP_OUTCOMES:  # the target's own stop ends its source alike
                return StepOptions(stop=(reason, text))
    return None
