"""Plan quality on the embedded model: planned graphs vs the plain agent loop.

A small suite of multi-step questions over deterministic tools (two or three tool
calls each, some with independent calls that a plan runs in parallel), split once
into `tune` (what the planner's prompts were looked at against) and `holdout`
(reported separately, never tuned on). For each question and mode:

- planned (`PlannedAgent`): was a plan accepted at all (`plan valid`), was the first
  plan accepted (`first valid`), did it use the tools the question needs, and is the
  answer right (its last number within 0.1% of the expected value);
- plain (`Agent.run`, the guided loop): is the answer right.

    python benchmarks/planning.py                 # both splits, both modes
    python benchmarks/planning.py --split tune --mode planned
    python benchmarks/planning.py --joiner free  # the joiner may answer in words (ablation)
    python benchmarks/planning.py --scheduling   # the driver alone: parallel wall time

Model: the embedded model (`local`, SmolLM2-135M, temperature 0: the same figures
on the same build). Wall times are for reading, not assertions: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
import time
from dataclasses import dataclass

from pilothouse import Agent, tool
from pilothouse.events import PlanAccepted, PlanRejected, ToolCalled
from pilothouse.exceptions import PilothouseError
from pilothouse.flows.plan import PlannedAgent
from pilothouse.runtime.journal import MemoryStore

POPULATION = {"oslo": 709000, "lima": 10719000, "cairo": 10230000, "rome": 2873000}
TEMPERATURE = {"oslo": 6.5, "lima": 19.2, "cairo": 22.1, "paris": 12.3}


@tool
def next_leap_year() -> int:
    """The next leap year after this year."""
    return 2028


@tool
def power(base: float, exponent: float) -> float:
    """Raise base to the power exponent."""
    return float(base) ** float(exponent)


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return float(a) + float(b)


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return float(a) * float(b)


@tool
def square_root(x: float) -> float:
    """The square root of a number."""
    return math.sqrt(float(x))


@tool
def population(city: str) -> int:
    """The number of people living in a city."""
    return POPULATION[city.strip().lower()]


@tool
def temperature(city: str) -> float:
    """Today's temperature in a city, in degrees Celsius."""
    return TEMPERATURE[city.strip().lower()]


TOOLS = [next_leap_year, power, add, multiply, square_root, population, temperature]


@dataclass(frozen=True)
class Question:
    text: str
    answer: float
    tools: tuple[str, ...]  # the tools a right plan calls
    parallel: bool  # it has two independent calls


TUNE = [
    Question(
        "What is the next leap year raised to the 0.43 power?",
        2028**0.43,
        ("next_leap_year", "power"),
        False,
    ),
    Question(
        "What is the population of Oslo plus the population of Lima?",
        709000 + 10719000,
        ("population", "add"),
        True,
    ),
    Question(
        "What is the temperature in Paris times 3?", 12.3 * 3, ("temperature", "multiply"), False
    ),
    Question(
        "What is the square root of the population of Cairo?",
        math.sqrt(10230000),
        ("population", "square_root"),
        False,
    ),
    Question("What is the next leap year plus 7?", 2035, ("next_leap_year", "add"), False),
]
HOLDOUT = [
    Question(
        "What is the population of Rome times 2?", 2873000 * 2, ("population", "multiply"), False
    ),
    Question(
        "What is the temperature in Oslo plus the temperature in Lima?",
        6.5 + 19.2,
        ("temperature", "add"),
        True,
    ),
    Question(
        "What is the next leap year times the temperature in Cairo?",
        2028 * 22.1,
        ("next_leap_year", "temperature", "multiply"),
        True,
    ),
    Question(
        "What is the square root of the next leap year?",
        math.sqrt(2028),
        ("next_leap_year", "square_root"),
        False,
    ),
    Question(
        "What is the population of Lima raised to the 0.5 power?",
        10719000**0.5,
        ("population", "power"),
        False,
    ),
]
INSTRUCTIONS = "Answer questions with the tools."
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def right(output: object, expected: float) -> bool:
    """The answer's last number is within 0.1% of the expected value (1% let 2028 pass
    for 2035: the tool's result before the arithmetic)."""
    found = _NUMBER.findall(str(output).replace(",", ""))
    return bool(found) and math.isclose(float(found[-1]), expected, rel_tol=0.001)


@dataclass
class Row:
    split: str
    question: str
    mode: str
    valid: bool = False
    first_valid: bool = False
    tools_ok: bool = False
    ok: bool = False
    outcome: str = ""
    model_calls: int = 0
    seconds: float = 0.0
    answer: str = ""


GROUNDED: bool | None = None  # the joiner's answer held to a result (None: the default)


async def planned_row(split: str, q: Question) -> Row:
    store = MemoryStore()
    agent = PlannedAgent(
        Agent("local", INSTRUCTIONS, TOOLS, store=store), max_replans=1, grounded=GROUNDED
    )
    began = time.perf_counter()
    result = await agent.run(q.text)
    row = Row(split, q.text, "planned", seconds=time.perf_counter() - began)
    events = store.events(result.run_id)
    plans = [e for e in events if isinstance(e, PlanAccepted | PlanRejected)]
    row.valid = any(isinstance(e, PlanAccepted) for e in plans)
    row.first_valid = bool(plans) and isinstance(plans[0], PlanAccepted)
    used = {e.call.name for e in events if isinstance(e, ToolCalled)}
    row.tools_ok = set(q.tools) <= used
    row.outcome = result.outcome
    row.model_calls = sum(e.type == "model_response" for e in events)
    row.answer = str(result._output)[:40]
    row.ok = result.outcome == "final" and right(result._output, q.answer)
    return row


async def plain_row(split: str, q: Question) -> Row:
    store = MemoryStore()
    agent = Agent("local", INSTRUCTIONS, TOOLS, store=store)
    began = time.perf_counter()
    result = await agent.run(q.text)
    row = Row(split, q.text, "plain", seconds=time.perf_counter() - began)
    events = store.events(result.run_id)
    used = {e.call.name for e in events if isinstance(e, ToolCalled)}
    row.tools_ok = set(q.tools) <= used
    row.outcome = result.outcome
    row.model_calls = sum(e.type in ("model_response", "stage_response") for e in events)
    row.answer = str(result._output)[:40]
    row.ok = result.outcome == "final" and right(result._output, q.answer)
    return row


def table(rows: list[Row]) -> str:
    lines = [
        "| split | mode | questions | plan valid | first plan valid | right tools | "
        "answer right | errors | model calls (mean) | seconds (mean) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for split in ("tune", "holdout"):
        for mode in ("planned", "plain"):
            group = [r for r in rows if r.split == split and r.mode == mode]
            if not group:
                continue
            n = len(group)
            valid = f"{sum(r.valid for r in group)}/{n}" if mode == "planned" else "-"
            first = f"{sum(r.first_valid for r in group)}/{n}" if mode == "planned" else "-"
            lines.append(
                f"| {split} | {mode} | {n} | {valid} | {first} | "
                f"{sum(r.tools_ok for r in group)}/{n} | {sum(r.ok for r in group)}/{n} | "
                f"{sum(r.outcome.startswith('error') for r in group)} | "
                f"{sum(r.model_calls for r in group) / n:.1f} | "
                f"{sum(r.seconds for r in group) / n:.0f} |"
            )
    return "\n".join(lines)


async def scheduling() -> None:
    """No model: a scripted planner, so what is measured is the driver. A plan of four
    independent 100 ms tasks and a fifth that needs two of them (critical path 200 ms),
    and the per-task overhead of instant tools (MemoryStore), medians of repeats."""
    import json
    import statistics

    from pilothouse.models.scripted import ScriptedModel

    @tool
    async def wait(ms: int) -> int:
        """Sleep."""
        await asyncio.sleep(ms / 1000)
        return ms

    @tool
    def nop(n: int) -> int:
        """Nothing."""
        return n

    def planned_run(tasks: list[dict[str, object]], tools: list[object]) -> PlannedAgent[str]:
        text = json.dumps({"tasks": tasks})
        model = ScriptedModel([text, '{"answer": "done"}'], record=False)
        return PlannedAgent(Agent(model, tools=tools, store=MemoryStore()))  # type: ignore[arg-type]

    # distinct arguments: three identical calls in one run are the loop detector's stop
    graph = [{"id": i, "tool": "wait", "args": {"ms": 99 + i}} for i in range(1, 5)]
    graph.append({"id": 5, "tool": "wait", "args": {"ms": "$1"}, "deps": [2]})
    walls = []
    for _ in range(5):
        began = time.perf_counter()
        result = await planned_run(graph, [wait]).run("go")
        assert result.outcome == "final", result.stop
        walls.append(time.perf_counter() - began)
    wall = statistics.median(walls)
    print(
        f"4 independent ~100 ms tasks + 1 after two of them (critical path 201 ms): "
        f"wall {wall * 1000:.0f} ms (median of 5; one at a time: 507 ms)"
    )
    for n in (1, 8):
        plan = [{"id": i, "tool": "nop", "args": {"n": i}} for i in range(1, n + 1)]
        times = []
        for _ in range(50):
            agent = planned_run(plan, [nop])
            began = time.perf_counter()
            result = await agent.run("go")
            assert result.outcome == "final", result.stop
            times.append(time.perf_counter() - began)
        print(
            f"a planned run of {n} instant task(s) (plan, validate, run, join; scripted "
            f"model): {statistics.median(times) * 1e6:.0f} µs (median of 50)"
        )


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["tune", "holdout", "both"], default="both")
    parser.add_argument("--mode", choices=["planned", "plain", "both"], default="both")
    parser.add_argument(
        "--scheduling", action="store_true", help="only the driver's timing (no model)"
    )
    parser.add_argument(
        "--joiner",
        choices=["default", "free"],
        default="default",
        help="free: the joiner may answer in its own words (default on this model: only "
        "with a task's result)",
    )
    args = parser.parse_args(argv)
    global GROUNDED
    GROUNDED = False if args.joiner == "free" else None
    if args.scheduling:
        await scheduling()
        return
    splits = {"tune": TUNE, "holdout": HOLDOUT}
    rows: list[Row] = []
    for split, questions in splits.items():
        if args.split not in (split, "both"):
            continue
        for q in questions:
            for mode, make in (("planned", planned_row), ("plain", plain_row)):
                if args.mode not in (mode, "both"):
                    continue
                try:
                    row = await make(split, q)
                except PilothouseError as exc:  # a model error (e.g. a cut-off reply) is a miss
                    row = Row(split, q.text, mode, outcome=f"error: {type(exc).__name__}")
                rows.append(row)
                print(
                    f"{split:7} {mode:7} ok={row.ok!s:5} valid={row.valid!s:5} "
                    f"tools={row.tools_ok!s:5} {row.outcome:14} {row.seconds:5.0f}s "
                    f"{q.text[:50]!r} -> {row.answer!r}",
                    flush=True,
                )
    print()
    print(table(rows))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
