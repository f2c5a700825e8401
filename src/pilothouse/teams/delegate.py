"""Agents as tools: a parent calls a member and reads its typed output.

A thin layer over `ToolContext.run_child`: the member's run is a child run of the
caller (exactly once, within the caller's remaining budget, its usage rolled up),
and the call is a tool call like any other, so the policy decides it and the journal
records it. The member's output comes back as the call's result: the output's JSON
for a typed output, its text otherwise (a Python caller that wants the object calls
`ctx.run_child` itself: `RunResult.output` is typed).

A supervisor reviews what a member returns: calling the tool again with `feedback`
sends the member's last answer back with the reason (the member sees its previous
answer and why it was refused), at most `max_revisions` times per member and run,
counted from the journal.
"""

from __future__ import annotations

from typing import Any

from pilothouse.events import ToolCalled
from pilothouse.exceptions import ToolError
from pilothouse.prompts import Prompts
from pilothouse.runtime.journal import Store
from pilothouse.tools.tool import Tool, ToolContext

from .members import TeamPaused, output_text


def agent_tool(
    agent: Any,
    *,
    name: str | None = None,
    description: str | None = None,
    store: Store | None = None,
    max_revisions: int | None = None,
    prompts: Prompts | None = None,
) -> Tool:
    """`agent` as a tool named `name` (default ``ask_<agent name>``).

    With a `store` (the one the runs are written to) the tool takes an optional
    `feedback` argument: a supervisor's review sending the member's last answer back,
    at most `max_revisions` times (None: unbounded) per run. A member that pauses for
    a person pauses every run above it (see `Team`).
    """
    member_name = str(agent.name)
    tool_name = name or f"ask_{member_name}"
    about = description or f"Ask {member_name} to do a task; returns its answer."
    texts = prompts or Prompts.default()

    async def ask(ctx: ToolContext[Any], task: str) -> str:
        return await _run(ctx, task, "")

    async def ask_again(ctx: ToolContext[Any], task: str, feedback: str = "") -> str:
        return await _run(ctx, task, feedback)

    async def _run(ctx: ToolContext[Any], task: str, feedback: str) -> str:
        text = task
        if feedback.strip():
            assert store is not None
            text = _revision(store, ctx, task, feedback)
        result = await ctx.run_child(agent, text)
        if result.outcome == "paused":
            raise TeamPaused(result)
        if result.outcome != "final":
            said = result.stop.message if result.stop is not None else result.outcome
            raise ToolError(f"{member_name} stopped ({result.outcome}): {said}")
        return output_text(result.output)

    def _revision(store: Store, ctx: ToolContext[Any], task: str, feedback: str) -> str:
        """The member's input when its work is sent back: bounded, with its last answer."""
        flush = getattr(ctx.runner, "flush", None)
        if flush is not None:
            flush()  # this run's record on disk: its earlier calls are counted from it
        sent_back = sum(
            1
            for e in store.events(ctx.run_id)
            if isinstance(e, ToolCalled)
            and e.call.name == tool_name
            and (e.step, e.index) < (ctx.step, ctx.index)
            and str(e.call.arguments.get("feedback", "")).strip()
        )
        if max_revisions is not None and sent_back >= max_revisions:
            raise ToolError(
                f"not done: {member_name}'s work was sent back {sent_back} times already "
                f"(the most allowed); accept it or answer without it"
            )
        answers = [
            run
            for run in store.children(ctx.run_id)
            if run.agent == member_name and run.status == "final"
        ]
        if not answers:
            raise ToolError(f"not done: {member_name} has no answer to send back yet")
        previous = output_text(answers[-1].output)
        return texts.render("team_delegate", task=task, previous=previous, feedback=feedback)

    function = ask_again if store is not None else ask
    return Tool(
        function,
        name=tool_name,
        description=about,
        # read-only for the policy's defaults (a rule on its name still decides it), so
        # run again on resume: run_child re-attaches to the member's run, exactly once
        effect="read_only",
    )
