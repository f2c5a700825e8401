"""What a group chat turn costs beyond its member's run (`pilothouse.teams.groupchat`).

Run: `.venv/bin/python benchmarks/team_patterns.py [--quick]`.

Workload: `ScriptedModel`s that answer at once; sequential runs on the in-memory
journal and on the SQLite journal (a file in a temporary directory). Measured, in
microseconds, the best of N batches (the figure least disturbed by other work) and
the median beside it:

- plain run: one one-step agent run (the member's turn by itself);
- chat turn, round-robin: a chat of 8 turns among two members, per turn;
- chat turn, model selector: the same with a model choosing every speaker (two child
  runs a turn: the selector's and the member's), per turn.

A turn's overhead is (chat turn) - (plain run): the selection event, the transcript
handed to the member as history, the team's `child_started` / `child_finished` /
`chat_message` events and their commits.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TURNS = 8


async def _plain(store: Any, n: int) -> float:
    from pilothouse import Agent, ScriptedModel

    agent = Agent(ScriptedModel(lambda r: "a reply", record=False), name="m", store=store)
    start = time.perf_counter()
    for _ in range(n):
        await agent.run("hi")
    return (time.perf_counter() - start) / n


async def _chat(store: Any, n: int, model_selector: bool) -> float:
    from pilothouse import Agent, ScriptedModel
    from pilothouse.teams.groupchat import GroupChat, MaxMessages, ModelSelector

    members = [
        Agent(ScriptedModel(lambda r: "a reply", record=False), name=name, store=store)
        for name in ("a", "b")
    ]
    turn = [0]

    def choose(request: Any) -> str:
        turn[0] += 1
        return '{"speaker": "%s"}' % ("a" if turn[0] % 2 else "b")

    selector = ModelSelector(ScriptedModel(choose, record=False)) if model_selector else None
    chat = GroupChat(
        members,
        selector=selector,
        termination=MaxMessages(TURNS),
        allow_repeat=model_selector,
        store=store,
    )
    start = time.perf_counter()
    for _ in range(n):
        await chat.run("talk")
    return (time.perf_counter() - start) / (n * TURNS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, n = (3, 3) if args.quick else (7, 10)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from pilothouse.runtime.journal import MemoryStore, SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        for label, make in (
            ("memory", MemoryStore),
            ("sqlite", lambda: SQLiteStore(Path(tmp) / f"j{time.monotonic_ns()}.db")),
        ):
            figures: dict[str, list[float]] = {"plain run": [], "round-robin": [], "model": []}
            for _ in range(rounds):  # the variants in turn within each round
                figures["plain run"].append(asyncio.run(_plain(make(), n * 2)))
                figures["round-robin"].append(asyncio.run(_chat(make(), n, False)))
                figures["model"].append(asyncio.run(_chat(make(), n, True)))
            base = min(figures["plain run"])
            for name, values in figures.items():
                best, median = min(values) * 1e6, statistics.median(values) * 1e6
                extra = "" if name == "plain run" else f"  (+{best - base * 1e6:.0f} µs/turn)"
                print(f"{label:7} {name:12} best {best:8.0f} µs  median {median:8.0f} µs{extra}")


if __name__ == "__main__":
    main()
