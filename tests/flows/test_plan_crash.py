"""A planned run killed (SIGKILL) at chosen points resumes without running any
completed task again, and with every side effect done exactly once.

This file is also the worker the test kills (run as a script):

    python test_plan_crash.py run|resume --store J.db --ledger L.db --run-id ID [--kill-at N]

The plan (from a ScriptedModel planner): two reads in parallel, then a charge of
each read's value (side effects, `on_doubt="reconcile"` against the ledger), joined
by the answer "$4". Progress points are journal events (as emitted) and ledger
writes (before and after); `--kill-at N` SIGKILLs the process at its N-th point, so
where a kill lands is chosen by count, never by a clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


# ------------------------------------------------------------------------- the worker


def worker(argv: list[str]) -> None:
    from pilothouse import Agent, tool
    from pilothouse.exceptions import RunFinishedError, RunNotFoundError
    from pilothouse.flows.plan import PlannedAgent
    from pilothouse.models.base import ModelRequest
    from pilothouse.models.scripted import ScriptedModel
    from pilothouse.policy import Policy
    from pilothouse.runtime.journal import SQLiteStore
    from pilothouse.tools.tool import ToolContext

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "resume"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--kill-at", type=int, default=0)
    args = parser.parse_args(argv)
    points = 0

    def point() -> None:
        nonlocal points
        points += 1
        if points == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    ledger = sqlite3.connect(args.ledger, isolation_level=None)
    ledger.execute("CREATE TABLE IF NOT EXISTS reads (key TEXT, pid INTEGER)")
    ledger.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT, amount REAL)")

    @tool
    def read(name: str) -> int:
        """A reading."""
        point()
        ledger.execute("INSERT INTO reads VALUES (?, ?)", (name, os.getpid()))
        point()
        return {"a": 3, "b": 4}[name]

    def found(ctx: ToolContext[Any], arguments: dict[str, Any]) -> str | None:
        row = ledger.execute(
            "SELECT amount FROM effects WHERE key = ?", (ctx.idempotency_key,)
        ).fetchone()
        return None if row is None else f"charged {row[0]}"

    @tool(effect="side_effect", reconcile=found)
    def charge(amount: float, ctx: ToolContext[Any]) -> str:
        """Charge an amount."""
        point()
        ledger.execute("INSERT INTO effects VALUES (?, ?)", (ctx.idempotency_key, amount))
        point()
        return f"charged {amount}"

    plan = {
        "tasks": [
            {"id": 1, "tool": "read", "args": {"name": "a"}},
            {"id": 2, "tool": "read", "args": {"name": "b"}},
            {"id": 3, "tool": "charge", "args": {"amount": "$1"}},
            {"id": 4, "tool": "charge", "args": {"amount": "$2"}},
        ]
    }

    def reply(request: ModelRequest) -> str:
        schema = request.output_schema or {}
        if "tasks" in schema.get("properties", {}):
            return json.dumps(plan)
        return '{"answer": "$4"}'

    policy = Policy.from_dict(
        {"rules": [{"id": "charges", "tools": ["charge"], "effect": "allow"}]}
    )
    store = SQLiteStore(args.store)
    agent = Agent(ScriptedModel(reply), tools=[read, charge], store=store, policy=policy)
    planned = PlannedAgent(agent)
    counter = lambda event: point()  # noqa: E731
    how = args.mode

    async def go() -> Any:
        nonlocal how
        if args.mode == "run":
            return await planned.run("charge both", run_id=args.run_id, subscribers=[counter])
        try:
            return await planned.resume(args.run_id, subscribers=[counter])
        except RunNotFoundError:  # killed before its first commit: it never existed
            how = "fresh"
            return await planned.run("charge both", run_id=args.run_id, subscribers=[counter])
        except RunFinishedError:
            how = "finished"
            return None

    result = asyncio.run(go())
    output = None if result is None else result.output
    print(json.dumps({"how": how, "output": output, "points": points}))


# ------------------------------------------------------------------------- the test


def _run(tmp: Path, mode: str, kill_at: int = 0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(HERE), mode, "--store", str(tmp / "j.db")]
    argv += ["--ledger", str(tmp / "ledger.db"), "--run-id", "plan-run"]
    if kill_at:
        argv += ["--kill-at", str(kill_at)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=os.environ)


def _on_disk(tmp: Path) -> list[Any]:
    """The events of the run on disk after a kill (none if it never reached the disk)."""
    from pilothouse.exceptions import RunNotFoundError
    from pilothouse.runtime.journal import SQLiteStore

    if not (tmp / "j.db").exists():
        return []
    try:
        return SQLiteStore(tmp / "j.db").events("plan-run")
    except RunNotFoundError:
        return []


def test_a_killed_planned_run_resumes_without_rerunning_completed_tasks(tmp_path: Path) -> None:
    from pilothouse.flows.plan import PlannedAgent
    from pilothouse.flows.plan_replay import replay_plan
    from pilothouse.runtime.journal import SQLiteStore

    (tmp_path / "ref").mkdir()
    reference = _run(tmp_path / "ref", "run")
    assert reference.returncode == 0, reference.stderr
    total = json.loads(reference.stdout)["points"]
    assert json.loads(reference.stdout)["output"] == "charged 4.0"
    # kills spread over the whole run: before the plan, between tasks, inside a charge
    # (after its effect, before its result is journaled), at the joiner, at the end
    chosen = sorted({2, 4, total // 3, total // 2, (2 * total) // 3, total - 1})
    for kill_at in chosen:
        tmp = tmp_path / f"kill{kill_at}"
        tmp.mkdir()
        killed = _run(tmp, "run", kill_at)
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr)
        before = _on_disk(tmp)
        done_reads = {e.step for e in before if e.type == "tool_result" and e.step in (2, 3)}
        resumed = _run(tmp, "resume")
        assert resumed.returncode == 0, (kill_at, resumed.stderr)
        report = json.loads(resumed.stdout)
        with sqlite3.connect(tmp / "ledger.db") as ledger:
            effects = ledger.execute("SELECT key, COUNT(*) FROM effects GROUP BY key").fetchall()
            reads = dict(ledger.execute("SELECT key, COUNT(*) FROM reads GROUP BY key"))
        # every charge happened exactly once, whatever the kill interrupted
        assert sorted(n for _, n in effects) == [1, 1], (kill_at, effects)
        # a read whose result was on disk was not run again (task 1 is step 2, task 2 step 3)
        for step, key in ((2, "a"), (3, "b")):
            if step in done_reads:
                assert reads[key] == 1, (kill_at, reads)
        if report["how"] != "finished":
            assert report["output"] == "charged 4.0", (kill_at, report)
        # the resumed run's journal replays as the run it is
        events = SQLiteStore(tmp / "j.db").events("plan-run")
        assert events[-1].type == "final"
        assert [e.type for e in events].count("plan_accepted") == 1
        planned = _replay_agent(PlannedAgent)
        replayed = asyncio.run(replay_plan(planned, events))
        assert replayed.ok, (kill_at, replayed.difference)


def _replay_agent(planned_type: Any) -> Any:
    """The worker's agent definition for replay (tools are served from the journal)."""
    from pilothouse import Agent, tool
    from pilothouse.models.scripted import ScriptedModel
    from pilothouse.policy import Policy
    from pilothouse.tools.tool import ToolContext

    @tool
    def read(name: str) -> int:
        """A reading."""
        raise AssertionError("served from the journal")

    @tool(effect="side_effect", reconcile=lambda ctx, arguments: None)
    def charge(amount: float, ctx: ToolContext[Any]) -> str:
        """Charge an amount."""
        raise AssertionError("served from the journal")

    policy = Policy.from_dict(
        {"rules": [{"id": "charges", "tools": ["charge"], "effect": "allow"}]}
    )
    return planned_type(Agent(ScriptedModel([]), tools=[read, charge], policy=policy))


if __name__ == "__main__":
    worker(sys.argv[1:])
