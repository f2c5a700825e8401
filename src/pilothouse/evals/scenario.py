"""Scenarios: the unit an evaluation runs, and the helpers they assert with.

A scenario is an async function of an `EvalContext` that exercises an agent and
raises `AssertionError` when the behaviour is unacceptable::

    @scenario(tools=[calculator], instructions="Use the calculator.")
    async def arithmetic(ctx: EvalContext) -> None:
        result = await ctx.run("What is 37 * 48 + 125?")
        expect_number(result, 1901)
        expect_called(ctx.steps(), "calculator")

`ctx.run` builds the agent for the model under evaluation (tools, instructions and
the per-sample budget come from the scenario and the runner) and records the run;
`ctx.steps()` reads what happened back from the journal: the transcript an
evaluation scores is the same journal a developer reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pilothouse.events import Event, FinalOutput, ToolCalled, ToolReturned
from pilothouse.messages import ToolCall, ToolResult, Usage
from pilothouse.models.base import Model, ModelSettings
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import Store
from pilothouse.runtime.loop import RunResult
from pilothouse.tools.tool import Tool, ToolFunction

if TYPE_CHECKING:
    from pilothouse.agent import Agent
    from pilothouse.policy import Policy

ScenarioFunction = Callable[["EvalContext"], Awaitable[None]]
AgentFactory = Callable[["Scenario", Model, Budget, Store], "Agent[Any, Any]"]
"""Builds the agent a scenario runs: (scenario, model, budget, store) -> Agent."""


@dataclass(slots=True)
class Oracle:
    """How a perfect agent solves a scenario: these tool calls, then an answer.

    `calls` are made one step each (a list inside is one step of parallel calls);
    `answer` receives the tool results' texts and returns the final answer, so an
    oracle's answer still depends on the tools really working.
    """

    calls: list[ToolCall | list[ToolCall]]
    answer: Callable[[list[str]], str]


@dataclass(slots=True)
class Scenario:
    """One named task: an async check of an agent, the tools and instructions it gets."""

    name: str
    fn: ScenarioFunction
    tools: list[Tool | ToolFunction] = field(default_factory=list)
    instructions: str = ""
    description: str = ""
    input: str = ""  # the main question, when there is one (used by oracles and reports)
    tags: tuple[str, ...] = ()
    oracle: Oracle | None = None
    # The policy the scenario's agent runs under (None: the default, which denies
    # side-effecting and irreversible tools); a suite whose tools need more says so here.
    policy: Policy | str | None = None


def scenario(
    *,
    name: str | None = None,
    tools: Iterable[Tool | ToolFunction] = (),
    instructions: str = "",
    input: str = "",
    tags: Iterable[str] = (),
    oracle: Oracle | None = None,
    policy: Policy | str | None = None,
) -> Callable[[ScenarioFunction], Scenario]:
    """Decorator: turn `async def f(ctx)` into a `Scenario` (the name defaults to f's)."""

    def wrap(fn: ScenarioFunction) -> Scenario:
        doc = (fn.__doc__ or "").strip().splitlines()
        return Scenario(
            name or fn.__name__,
            fn,
            list(tools),
            instructions,
            doc[0] if doc else "",
            input,
            tuple(tags),
            oracle,
            policy,
        )

    return wrap


@dataclass(slots=True)
class Steps:
    """What one run did, read from its journal: tool calls in order, results, output."""

    run_id: str
    events: list[Event]

    @property
    def calls(self) -> list[ToolCall]:
        """Every tool call the run made (validated or not), in journal order."""
        return [e.call for e in self.events if isinstance(e, ToolCalled)]

    @property
    def tools(self) -> list[str]:
        """The names of the tools called, in order (with repeats)."""
        return [c.name for c in self.calls]

    @property
    def results(self) -> list[ToolResult]:
        return [e.result for e in self.events if isinstance(e, ToolReturned)]

    @property
    def output(self) -> Any:
        """The final output, or None when the run did not produce one."""
        for e in reversed(self.events):
            if isinstance(e, FinalOutput):
                return e.output
        return None

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


def usage_of(events: Iterable[Event | dict[str, Any]]) -> Usage:
    """Total usage of the model responses in a journal (events or their dict form)."""
    total = Usage()
    for e in events:
        d = e.to_dict() if isinstance(e, Event) else e
        if d.get("type") == "model_response":
            total += Usage.from_dict((d.get("response") or {}).get("usage") or {})
    return total


class EvalContext:
    """What a scenario function gets: the model under test and a way to run agents.

    Every run goes to the evaluation's journal store; `run_ids` lists them in order,
    so the runner can copy their journals into the evaluation log.
    """

    def __init__(
        self,
        scenario: Scenario,
        model: Model,
        *,
        budget: Budget,
        store: Store,
        agent_factory: AgentFactory,
        epoch: int = 0,
        temperature: float | None = None,
    ) -> None:
        self.scenario = scenario
        self.model = model
        self.budget = budget
        self.store = store
        self.epoch = epoch
        self.temperature = temperature
        self._factory = agent_factory
        self.results: list[RunResult[Any]] = []
        self.run_ids: list[str] = []
        self._stores: dict[str, Store] = {}

    def events(self, run_id: str) -> list[Event]:
        """The journal of one of this sample's runs, from whichever store it went to."""
        return self._stores.get(run_id, self.store).events(run_id)

    def agent(
        self,
        *,
        tools: Sequence[Tool | ToolFunction] | None = None,
        instructions: str | None = None,
    ) -> Agent[Any, Any]:
        """A fresh agent for this scenario on the model under evaluation.

        `tools` / `instructions` replace the scenario's for this agent.
        """
        scenario = self.scenario
        if tools is not None or instructions is not None:
            scenario = dataclasses.replace(
                scenario,
                tools=list(tools) if tools is not None else scenario.tools,
                instructions=scenario.instructions if instructions is None else instructions,
            )
        agent = self._factory(scenario, self.model, self.budget, self.store)
        if self.temperature is not None:
            # Sampled epochs: each epoch its own seed, so epochs differ yet reruns repeat.
            s = agent.settings
            agent.settings = ModelSettings(self.temperature, s.max_tokens, self.epoch, s.top_p)
        return agent

    async def run(
        self, input: str, agent: Agent[Any, Any] | None = None, *, deps: Any = None
    ) -> RunResult[Any]:
        """Run the scenario's agent (or `agent`) on `input`, recording the run.

        `deps` are the run's dependencies (an environment such as tau-retail gives each
        sample its own database through them).
        """
        from pilothouse.agent import new_run_id

        agent = agent or self.agent()
        run_id = new_run_id()
        self.run_ids.append(run_id)  # before running: a run that raises is still logged
        self._stores[run_id] = agent.store  # a custom factory may not use ours
        result = await agent.run(input, deps=deps, run_id=run_id)
        self.results.append(result)
        return result

    def steps(self, run: RunResult[Any] | str | None = None) -> Steps:
        """The journal of a run (default: the latest) as `Steps`."""
        if run is None:
            if not self.run_ids:
                raise AssertionError("the scenario has not run the agent yet")
            run_id = self.run_ids[-1]
        else:
            run_id = run if isinstance(run, str) else run.run_id
        return Steps(run_id, self.events(run_id))


# ---------------------------------------------------------------------------
# Assertion helpers. Each raises AssertionError with a message that says what was
# expected and what happened; `result.output` raises RunStopped for a stopped run,
# which the runner classifies by its outcome.


def output_text(result: RunResult[Any] | Any) -> str:
    """The final output as text (a stopped run raises its `RunStopped`)."""
    value = result.output if isinstance(result, RunResult) else result
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def normalize_answer(text: str) -> str:
    """Text as answers are compared: lower case, no thousands commas, single spaces."""
    return " ".join(text.lower().replace(",", "").split())


def expect_equals(result: RunResult[Any] | Any, expected: str) -> str:
    """The output equals `expected` (case, commas and extra spaces ignored)."""
    text = output_text(result)
    if normalize_answer(text).strip(" .") != normalize_answer(expected).strip(" ."):
        raise AssertionError(f"expected the answer {expected!r}, got {text[:300]!r}")
    return text


def expect_contains(result: RunResult[Any] | Any, *needles: str) -> str:
    """The output contains every needle (case, commas and extra spaces ignored)."""
    text = output_text(result)
    missing = [n for n in needles if normalize_answer(n) not in normalize_answer(text)]
    if missing:
        raise AssertionError(f"the answer does not mention {missing}: {text[:300]!r}")
    return text


def expect_regex(result: RunResult[Any] | Any, pattern: str, flags: int = re.IGNORECASE) -> str:
    """The output matches `pattern` (searched, case-insensitive by default)."""
    text = output_text(result)
    if re.search(pattern, text, flags) is None:
        raise AssertionError(f"the answer does not match /{pattern}/: {text[:300]!r}")
    return text


_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?%?")


def numbers_in(text: str) -> list[float]:
    """Every number written in `text` (thousands separators, decimals, percent as /100)."""
    found: list[float] = []
    for match in _NUMBER.finditer(text):
        token = match.group(0)
        body = token.rstrip("%").replace(",", "")
        if not any(ch.isdigit() for ch in body):
            continue
        try:
            value = float(body)
        except ValueError:
            continue
        found.append(value / 100 if token.endswith("%") else value)
    return found


NumberRule = Literal["last", "any"]


def number_matches(
    text: str,
    expected: float,
    *,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
    which: NumberRule = "last",
) -> bool:
    """Whether the last number written in `text` (``which="any"``: any number) is
    `expected` within the tolerances.

    The last number is the answer's conclusion ("37 * 48 + 125 = 1901"), as in the
    usual extraction for math benchmarks. Accepting any number let an answer that
    runs on through "2, 4, 6, ..., 100" pass by listing the target among the others.
    """
    found = numbers_in(text)
    candidates = found[-1:] if which == "last" else found
    return any(math.isclose(v, expected, rel_tol=rel_tol, abs_tol=abs_tol) for v in candidates)


def expect_number(
    result: RunResult[Any] | Any,
    expected: float,
    *,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
    which: NumberRule = "last",
) -> str:
    """The output's last number (``which="any"``: some number) equals `expected`."""
    text = output_text(result)
    if not number_matches(text, expected, rel_tol=rel_tol, abs_tol=abs_tol, which=which):
        where = "as the last number" if which == "last" else ""
        raise AssertionError(
            f"expected the number {expected} {where} in the answer, got {text[:300]!r}"
        )
    return text


def expect_called(steps: Steps, tool: str, /, **arguments: Any) -> ToolCall:
    """The run called `tool`, with these arguments when given (others may be present)."""
    for c in steps.calls:
        if c.name == tool and all(c.arguments.get(k) == v for k, v in arguments.items()):
            return c
    seen = ", ".join(f"{c.name}({c.arguments})" for c in steps.calls) or "no tool calls"
    wanted = f"{tool}({arguments})" if arguments else tool
    raise AssertionError(f"expected a call of {wanted}; the run made {seen}")


def expect_not_called(steps: Steps, tool: str) -> None:
    """The run never called `tool`."""
    if tool in steps.tools:
        raise AssertionError(f"the run called {tool!r}, which it must not")


def expect_order(steps: Steps, tools: Sequence[str]) -> None:
    """The tools were called in this order (other calls may come in between)."""
    position = 0
    for name in steps.tools:
        if position < len(tools) and name == tools[position]:
            position += 1
    if position < len(tools):
        raise AssertionError(f"expected calls in the order {list(tools)}; got {steps.tools}")
