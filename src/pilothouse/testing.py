"""Regression tests from recorded runs: record a real run once, replay it in every test run.

A run's journal is a cassette (see `pilothouse.runtime.replay`): replaying it answers
the model and the tools from the recording, so the test is offline, deterministic
and takes milliseconds, yet it fails at the first step where the agent now behaves
differently: a changed prompt, tool schema, policy decision or output.

Record once, with the real model (or export a run you already made with
``pilothouse trace export RUN_ID -o tests/cassettes/order.jsonl``)::

    from pilothouse.testing import record_cassette
    record_cassette(make_agent(), "Where is order A1234?", "tests/cassettes/order.jsonl")

Then, in a test::

    from pilothouse.testing import assert_replays

    def test_order_agent():
        assert_replays(make_agent(), "tests/cassettes/order.jsonl")

`assert_replays` raises `AssertionError` naming the cassette, the step and what
differed. This module does not import pytest: it works under any test runner.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pilothouse.events import Event
from pilothouse.exceptions import ConfigurationError
from pilothouse.runtime.replay import (
    ReplayReport,
    capabilities_of,
    export_journal,
    replay_guide,
    replay_run,
)

if TYPE_CHECKING:
    from pilothouse.agent import Agent
    from pilothouse.messages import Message
    from pilothouse.policy.engine import Principal
    from pilothouse.runtime.loop import RunResult

__all__ = ["assert_replays", "assert_replays_async", "record_cassette", "replay", "replay_async"]


async def replay_async(
    agent: Agent[Any, Any],
    recording: Sequence[Event] | str | os.PathLike[str],
    *,
    live_tools: bool = False,
    principal: Principal | None = None,
    deps: Any = None,
) -> ReplayReport:
    """`replay` for code inside an event loop."""
    return await replay_run(
        agent.run_spec,
        recording,
        # the model as given: a model string is not resolved (nor loaded) to replay it
        capabilities=capabilities_of(agent.model_given),
        guide=replay_guide(agent.model_given),
        live_tools=live_tools,
        principal=principal,
        deps=deps,
    )


def replay(
    agent: Agent[Any, Any],
    recording: Sequence[Event] | str | os.PathLike[str],
    *,
    live_tools: bool = False,
    principal: Principal | None = None,
    deps: Any = None,
) -> ReplayReport:
    """Run `agent` against a recorded run (events, or a JSON Lines file) and compare.

    The model and, unless `live_tools`, every tool are answered from the recording;
    `live_tools=True` runs read-only tools for real and compares their results.
    The run acts for the principal the recording names (runs journaled before
    principals were recorded need `principal`). `deps` are the run's dependencies
    (not journaled: a hook or tool that reads them gets them again here).
    Never touches the world: the run is journaled in a `MemoryStore` under the
    recorded run id, side-effecting tools are always served. Returns a
    `ReplayReport`; raises `StoreError` for a journal that cannot be replayed.
    (`pilothouse.runtime.replay.replay_run` is the same on a run spec.)
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(
            replay_async(agent, recording, live_tools=live_tools, principal=principal, deps=deps)
        )
    raise ConfigurationError(
        "replay() was called inside a running event loop; use `await replay_async(...)`"
    )


def _check(report: ReplayReport, cassette: str | os.PathLike[str]) -> ReplayReport:
    if report.ok:
        return report
    d = report.divergence
    assert d is not None
    lines = [f"{os.fspath(cassette)}: {report.summary()}"]
    if d.expected or d.got:
        lines += [f"  recorded: {d.expected}", f"  replayed: {d.got}"]
    raise AssertionError("\n".join(lines))


def assert_replays(
    agent: Agent[Any, Any],
    cassette: str | os.PathLike[str],
    *,
    live_tools: bool = False,
    principal: Principal | None = None,
    deps: Any = None,
) -> ReplayReport:
    """Replay `cassette` (a JSON Lines journal) with `agent`; raise AssertionError if it diverges.

    Returns the `ReplayReport` of an identical replay. `live_tools=True` runs the
    agent's read-only tools for real and compares their results too. A cassette
    that cannot be read raises `StoreError` naming the file and line.
    """
    report = replay(agent, cassette, live_tools=live_tools, principal=principal, deps=deps)
    return _check(report, cassette)


async def assert_replays_async(
    agent: Agent[Any, Any],
    cassette: str | os.PathLike[str],
    *,
    live_tools: bool = False,
    principal: Principal | None = None,
    deps: Any = None,
) -> ReplayReport:
    """`assert_replays` for async tests (inside a running event loop)."""
    report = await replay_async(
        agent, cassette, live_tools=live_tools, principal=principal, deps=deps
    )
    return _check(report, cassette)


def record_cassette(
    agent: Agent[Any, Any],
    input: str,
    path: str | os.PathLike[str],
    *,
    history: Sequence[Message] = (),
    principal: Principal | None = None,
    deps: Any = None,
) -> RunResult[Any]:
    """Run `agent` on `input` for real and write the run's journal to `path`.

    The run is journaled in the agent's own store as usual, then exported; a run that
    pauses for a person is recorded up to the pause (resume it, then export again with
    `export_journal` to record the decisions). Returns the run's result.
    """
    result = agent.run_sync(input, history=history, principal=principal, deps=deps)
    export_journal(agent.store, result.run_id, path)
    return result
