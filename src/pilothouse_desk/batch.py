"""The support desk's main job: a batch of scripted customers through the `Desk`.

    python -m pilothouse_desk            # the team on the embedded model, ./.pilothouse/support/
    python -m pilothouse_desk --single   # the single agent instead (to compare figures)
    python -m pilothouse_desk --only cancel,angry

Each scripted customer (``conversations.yaml``, shipped with the package) opens a
conversation and sends its lines one at a time, the next after the agent's reply.
When the agent transfers to a human, a scripted human claims the conversation,
replies and closes it; when a refund waits for approval, a scripted manager
decides it and the paused run resumes (as a team, the desk's supervisor agent reviews
it first; only what it escalates reaches the scripted person). A conversation still
open after its last line is resolved by the customer. The batch prints one outcome line per
conversation (with whether the agent did what the script expects: the tools it
called successfully and the calls the policy had to block) and the desk's figures.

Everything is recorded: journals in ``journal.db``, conversations and the shop in
``shop.db``, both under the working directory given by ``--dir``; the UI
(``pilothouse serve``) shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from pilothouse.events import ModelResponded, ToolCalled, ToolReturned
from pilothouse.runtime.loop import HOOK_ANSWER

from .desk import Desk, Figures

HUMAN = "sam"
MANAGER = "morgan"  # the scripted person who decides approvals (after the supervisor agent)
DEFAULT_DIR = Path(".pilothouse") / "support"


@dataclass(slots=True)
class Script:
    """One scripted customer."""

    id: str
    title: str
    lines: list[str]
    expect_tools: list[str]
    expect_blocked: list[str] = field(default_factory=list)
    expect_outcome: str = "resolved"
    approve: bool = True
    email: str | None = None


@dataclass(slots=True)
class Outcome:
    """What happened in one scripted conversation."""

    script: Script
    conversation_id: str
    status: str
    outcome: str  # resolved | approval | escalated
    tools: list[str]  # successful tool calls, in order
    blocked: list[str]  # calls the policy denied
    seconds: float
    last_reply: str
    tokens: int = 0  # every model call of every run of the conversation (a team's members)
    model_calls: int = 0

    @property
    def as_expected(self) -> bool:
        s = self.script
        return (
            self.tools == s.expect_tools
            and set(s.expect_blocked) <= set(self.blocked)
            and self.outcome == s.expect_outcome
        )


def load_scripts(text: str | None = None) -> list[Script]:
    """The shipped batch (or `text` in the same YAML form)."""
    if text is None:
        text = (resources.files("pilothouse_desk") / "conversations.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, list):
        raise ValueError("conversations.yaml must be a list of conversations")
    out = []
    for d in data:
        expect: dict[str, Any] = d.get("expect") or {}
        out.append(
            Script(
                id=str(d["id"]),
                title=str(d.get("title", d["id"])),
                lines=[str(x) for x in d["lines"]],
                expect_tools=list(expect.get("tools", [])),
                expect_blocked=list(expect.get("blocked", [])),
                expect_outcome=str(expect.get("outcome", "resolved")),
                approve=bool(d.get("approve", True)),
                email=d.get("email"),
            )
        )
    return out


def _calls(desk: Desk, conv_id: str) -> tuple[list[str], list[str]]:
    """(successful tool calls, policy-denied calls) of a conversation, from its journals:
    every run of each turn's tree (a team's handoffs are routing, not counted)."""
    ok: list[str] = []
    blocked: list[str] = []
    for run_id in desk.runs(conv_id):
        called: dict[tuple[str, int, int], ToolCalled] = {}
        for e in desk.tree_events(run_id):
            if isinstance(e, ToolCalled):
                called[(e.run_id, e.step, e.index)] = e
                if e.decision is not None and e.decision.effect == "deny":
                    blocked.append(e.call.name)
            elif isinstance(e, ToolReturned) and not e.result.is_error:
                c = called.get((e.run_id, e.step, e.index))
                # an "ask" call that has a successful result was approved and ran
                name = e.result.name
                routing = name.startswith("transfer_to_") and name != "transfer_to_human"
                if (
                    c is not None
                    and (c.decision is None or c.decision.effect != "deny")
                    and not routing
                ):
                    ok.append(name)
    return ok, blocked


def usage_of(desk: Desk, conv_id: str) -> tuple[int, int]:
    """(tokens, model calls) of a conversation: every model call of every run of its
    turns' trees, from the journals (a hook's answer is no model call)."""
    tokens = calls = 0
    for run_id in desk.runs(conv_id):
        for e in desk.tree_events(run_id):
            if isinstance(e, ModelResponded) and e.response.model != HOOK_ANSWER:
                tokens += e.response.usage.total_tokens
                calls += 1
    return tokens, calls


async def run_script(desk: Desk, script: Script, max_turns: int = 4) -> Outcome:
    """Drive one scripted customer through the desk (bounded by `max_turns` lines)."""
    started = time.perf_counter()
    conv = await desk.open(script.email)
    outcome = "resolved"
    last = ""
    for line in script.lines[:max_turns]:
        reply = await desk.send(conv.id, line)
        last = reply.text
        if reply.status == "paused":
            outcome = "approval"
            for approval in [a for a in desk.pending_approvals() if a.conversation_id == conv.id]:
                reply = await desk.decide(conv.id, approval.key, script.approve, human=MANAGER)
                last = reply.text
        if reply.status in ("escalated", "claimed"):
            outcome = "escalated"
            break
    status = desk.get(conv.id).status
    if status in ("escalated", "claimed"):
        outcome = "escalated"
        desk.claim(conv.id, HUMAN)
        desk.reply(conv.id, HUMAN, "Hi, this is Sam from the support team. I'll take it from here.")
        await desk.close(conv.id, HUMAN)
    elif status == "open":
        desk.resolve(conv.id)
    elif status == "paused":  # an approval nobody decided: leave it for the UI
        outcome = "approval"
    tools, blocked = _calls(desk, conv.id)
    if desk.approvals_of(conv.id):  # decided by the supervisor agent or a person
        outcome = "approval" if outcome == "resolved" else outcome
    tokens, model_calls = usage_of(desk, conv.id)
    return Outcome(
        script,
        conv.id,
        desk.get(conv.id).status,
        outcome,
        tools,
        blocked,
        time.perf_counter() - started,
        last,
        tokens,
        model_calls,
    )


def _short(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def outcome_line(i: int, o: Outcome) -> str:
    mark = "ok  " if o.as_expected else "MISS"
    blocked = f" blocked: {', '.join(o.blocked)}" if o.blocked else ""
    return (
        f"{i:2}. [{mark}] {o.script.title:34} {o.outcome:9} {o.seconds:5.1f}s {o.tokens:5} tok  "
        f"tools: {', '.join(o.tools) or '-'}{blocked}\n      agent: {_short(o.last_reply)}"
    )


def figures_lines(f: Figures, outcomes: list[Outcome]) -> list[str]:
    median = "-" if f.median_resolution_seconds is None else f"{f.median_resolution_seconds:.1f} s"
    expected = sum(o.as_expected for o in outcomes)
    seconds = sorted(o.seconds for o in outcomes)
    per_conversation = statistics.median(seconds) if seconds else 0.0
    tokens = sum(o.tokens for o in outcomes)
    return [
        f"conversations:                 {f.conversations}",
        f"resolved without a human:      {f.resolved_without_human} ({f.resolved_share:.0%})",
        f"median time to resolution:     {median}",
        f"escalations:                   {f.escalations}",
        f"refunds sent for approval:     {f.approvals}",
        f"policy blocks:                 {f.policy_blocks}",
        f"approvals by the supervisor:   {f.supervisor_decisions}",
        f"did what the script expects:   {expected}/{len(outcomes)}",
        f"median time per conversation:  {per_conversation:.1f} s",
        f"tokens (all model calls):      {tokens} in {sum(o.model_calls for o in outcomes)} calls",
    ]


async def run_batch(
    workdir: str | Path = DEFAULT_DIR,
    *,
    model: Any = None,
    only: list[str] | None = None,
    fresh: bool = True,
    team: bool = True,
    echo: Callable[[str], None] = print,
) -> tuple[list[Outcome], Figures]:
    """Run the shipped batch through a desk in `workdir` and print (via `echo`) the results.

    `fresh` starts from a new shop, journal and desk (so the figures are this batch's).
    `team` runs the desk as a team (triage, specialists, supervisor); False: the single
    agent.
    """
    workdir = Path(workdir)
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    desk = Desk(workdir / "shop.db", str(workdir / "journal.db"), model=model, team=team)
    scripts = [s for s in load_scripts() if not only or s.id in only]
    outcomes = []
    try:
        for i, script in enumerate(scripts, 1):
            o = await run_script(desk, script)
            outcomes.append(o)
            echo(outcome_line(i, o))
        figures = desk.figures()
    finally:
        desk.shutdown()
    echo("")
    for line in figures_lines(figures, outcomes):
        echo(line)
    return outcomes, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the support desk's scripted batch.")
    parser.add_argument("--dir", default=str(DEFAULT_DIR), help="where the shop and journal go")
    parser.add_argument("--model", default=None, help="model string (default: embedded)")
    parser.add_argument("--only", default="", help="comma-separated conversation ids")
    parser.add_argument(
        "--single", action="store_true", help="the single agent instead of the team"
    )
    args = parser.parse_args(argv)
    print(
        f"Support desk ({'single agent' if args.single else 'team'}): {len(load_scripts())} "
        f"scripted customers on {args.model or 'the embedded model (SmolLM2-135M)'}; shop and "
        f"journal in {args.dir}/"
    )
    started = time.perf_counter()
    asyncio.run(
        run_batch(
            args.dir,
            model=args.model,
            only=[x for x in args.only.split(",") if x] or None,
            team=not args.single,
        )
    )
    print(f"batch time:                    {time.perf_counter() - started:.0f} s")
    script = Path(sys.executable).parent / "pilothouse"
    command = os.path.relpath(script) if script.exists() else "pilothouse"
    print(
        f"\nOpen the UI: {command} serve, then http://127.0.0.1:8000/ "
        "(the console at /console shows these conversations; the token is printed at start)"
    )
    return 0
