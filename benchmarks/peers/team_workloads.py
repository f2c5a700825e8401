"""Overhead per handoff on Pilothouse's `Team`, the OpenAI Agents SDK and LangGraph swarm.

    python benchmarks/peers/team_workloads.py [--runs 200] [--handoffs 8] [--json PATH]

Run with the peers' virtual environment (`make bench-peers` creates it; `run.py` calls
this script after the flows). The workload, in each framework's own idiom, with an
instant scripted model per agent (no network):

- a chain of `--handoffs` + 1 agents ``a0 .. aN``: each ``a<i>``'s model hands the
  conversation to ``a<i+1>`` (its handoff tool: Pilothouse's ``transfer_to_a<i+1>``
  with a payload, the SDK's `handoffs=[...]`, langgraph-swarm's `create_handoff_tool`),
  and the last agent answers;
- the same with one agent answering at once (no handoff).

Per handoff = (median run of the chain - median run of the single agent) / handoffs:
what one handoff adds, its target's model call included (each framework's cost of a
step with an instant model). Medians over `--runs` sequential runs after 20 warm-up
runs; beside it the same from the process's CPU time (mean per run), the figure a
loaded machine disturbs least. Every run is checked (the answer, and that every
agent spoke).

Pilothouse runs with its in-memory journal and with a SQLite journal (each handoff a
child run, journaled before it starts); the SDK with tracing off; the swarm without a
checkpointer and with LangGraph's `InMemorySaver`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ANSWER = "done"
WARMUP = 20

Run = Callable[[], Awaitable[tuple[str, list[str]]]]
"""One run: returns the answer and the names of the agents whose model was called."""


def build_pilothouse(handoffs: int, store: str) -> Run:
    from pilothouse import Agent, MemoryStore, ScriptedModel, SQLiteStore, call
    from pilothouse.teams import Handoff, Team

    journal: Any = MemoryStore() if store == ":memory:" else SQLiteStore(store)
    spoke: list[str] = []

    def model(i: int) -> ScriptedModel:
        def reply(request: Any) -> Any:
            spoke.append(f"a{i}")
            if i < handoffs:
                return call(f"transfer_to_a{i + 1}", reason="next", payload={"request": "go"})
            return ANSWER

        return ScriptedModel(reply, record=False)

    agents = [
        Agent(model(i), f"You are a{i}.", name=f"a{i}", store=journal) for i in range(handoffs + 1)
    ]
    team = Team(
        agents[0],
        handoffs={f"a{i}": [Handoff(agents[i + 1])] for i in range(handoffs)},
        autonomy="autonomous",
        loop_limit=handoffs + 1,
    )

    async def run() -> tuple[str, list[str]]:
        spoke.clear()
        result = await team.run("help me")
        return str(result.output), list(spoke)

    return run


def build_openai_agents(count: int) -> Run:
    from agents import Agent, RunConfig, Runner, set_tracing_disabled
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents_sdk_replies import sdk_reply

    set_tracing_disabled(True)
    spoke: list[str] = []

    class ScriptedAgentsModel(Model):
        """An instant model: hands off to the next agent, or answers (the last one)."""

        def __init__(self, i: int) -> None:
            self.i = i

        async def get_response(
            self,
            system_instructions: str | None,
            input: Any,
            model_settings: Any,
            tools: Any,
            output_schema: Any,
            handoffs: Any,
            tracing: Any,
            *,
            previous_response_id: str | None = None,
            conversation_id: str | None = None,
            prompt: Any = None,
            **_: Any,
        ) -> ModelResponse:
            spoke.append(f"a{self.i}")
            if self.i < count:
                return sdk_reply((f"c{self.i}", f"transfer_to_a{self.i + 1}", "{}"), ANSWER)
            return sdk_reply(None, ANSWER)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("the benchmark runs the agents without streaming")

    agents: list[Any] = [None] * (count + 1)
    for i in reversed(range(count + 1)):
        later = [agents[i + 1]] if i < count else []
        agents[i] = Agent(
            name=f"a{i}",
            instructions=f"You are a{i}.",
            model=ScriptedAgentsModel(i),
            handoffs=later,
        )
    config = RunConfig(tracing_disabled=True)

    async def run() -> tuple[str, list[str]]:
        spoke.clear()
        result = await Runner.run(agents[0], "help me", max_turns=count + 2, run_config=config)
        return str(result.final_output), list(spoke)

    return run


def build_swarm(handoffs: int, checkpointer: bool) -> Run:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.utils.function_calling import convert_to_openai_tool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent is deprecated, still langgraph's
        from langgraph.prebuilt import create_react_agent
    from langgraph_swarm import create_handoff_tool, create_swarm

    spoke: list[str] = []

    class ScriptedChatModel(BaseChatModel):
        """An instant chat model: hands off to the next agent, or answers (the last one)."""

        i: int = 0

        @property
        def _llm_type(self) -> str:
            return "scripted"

        def _reply(self) -> ChatResult:
            spoke.append(f"a{self.i}")
            if self.i < handoffs:
                call = {
                    "name": f"transfer_to_a{self.i + 1}",
                    "args": {},
                    "id": f"c{self.i}",
                    "type": "tool_call",
                }
                message = AIMessage(content="", tool_calls=[call])
            else:
                message = AIMessage(content=ANSWER)
            return ChatResult(generations=[ChatGeneration(message=message)])

        def _generate(self, messages: list[BaseMessage], stop: Any = None, **_: Any) -> ChatResult:
            return self._reply()

        async def _agenerate(
            self, messages: list[BaseMessage], stop: Any = None, **_: Any
        ) -> ChatResult:
            return self._reply()

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    agents = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(handoffs + 1):
            tools = [create_handoff_tool(agent_name=f"a{i + 1}")] if i < handoffs else []
            agents.append(
                create_react_agent(
                    ScriptedChatModel(i=i), tools, prompt=f"You are a{i}.", name=f"a{i}"
                )
            )
    workflow = create_swarm(agents, default_active_agent="a0")
    saver = None
    if checkpointer:
        from langgraph.checkpoint.memory import InMemorySaver

        saver = InMemorySaver()
    graph = workflow.compile(checkpointer=saver)
    count = [0]

    async def run() -> tuple[str, list[str]]:
        spoke.clear()
        count[0] += 1
        config: Any = {"configurable": {"thread_id": f"t{count[0]}"}, "recursion_limit": 100}
        state = await graph.ainvoke({"messages": [("user", "help me")]}, config)
        return str(state["messages"][-1].content), list(spoke)

    return run


def build(framework: str, handoffs: int, tmp: Path) -> Run:
    if framework == "pilothouse":
        return build_pilothouse(handoffs, ":memory:")
    if framework == "pilothouse, SQLite journal":
        return build_pilothouse(handoffs, str(tmp / f"teams-{handoffs}.db"))
    if framework == "openai-agents":
        return build_openai_agents(handoffs)
    if framework == "langgraph-swarm":
        return build_swarm(handoffs, False)
    if framework == "langgraph-swarm, InMemorySaver":
        return build_swarm(handoffs, True)
    raise ValueError(framework)


FRAMEWORKS = [
    "pilothouse",
    "pilothouse, SQLite journal",
    "openai-agents",
    "langgraph-swarm",
    "langgraph-swarm, InMemorySaver",
]
DISTRIBUTION = {
    "pilothouse": "pilothouse",
    "openai": "openai-agents",
    "langgraph": "langgraph-swarm",
}


async def median_run(run: Run, runs: int, handoffs: int) -> tuple[float, float]:
    """(median wall seconds of a run, mean CPU seconds of a run) over `runs` runs."""
    expected = [f"a{i}" for i in range(handoffs + 1)]
    for _ in range(WARMUP):
        await run()
    times = []
    cpu = time.process_time()
    for _ in range(runs):
        began = time.perf_counter()
        answer, spoke = await run()
        times.append(time.perf_counter() - began)
        if answer != ANSWER or spoke != expected:
            raise SystemExit(f"a run went wrong: answer {answer!r}, agents {spoke}")
    return statistics.median(times), (time.process_time() - cpu) / runs


def version(framework: str) -> str:
    name = next(v for k, v in DISTRIBUTION.items() if framework.startswith(k))
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--handoffs", type=int, default=8)
    parser.add_argument("--only", action="append", help="a framework's row label (repeatable)")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    chosen = [f for f in FRAMEWORKS if not args.only or f in args.only]
    print(
        f"Handoffs: a chain of {args.handoffs} handoffs against one agent answering at once, "
        f"median of {args.runs} runs"
    )
    print(
        f"{'framework':<32} {'version':>9} {'single µs':>10} {'chain µs':>10} "
        f"{'µs/handoff':>11} {'CPU µs/handoff':>15}"
    )
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for framework in chosen:
            if version(framework) == "not installed":
                print(f"{framework:<32} {'not installed':>9}")
                continue
            single, single_cpu = asyncio.run(
                median_run(build(framework, 0, Path(tmp)), args.runs, 0)
            )
            chain, chain_cpu = asyncio.run(
                median_run(build(framework, args.handoffs, Path(tmp)), args.runs, args.handoffs)
            )
            per = (chain - single) / args.handoffs
            per_cpu = (chain_cpu - single_cpu) / args.handoffs
            figures[framework] = {
                "single_us": single * 1e6,
                "chain_us": chain * 1e6,
                "per_handoff_us": per * 1e6,
                "per_handoff_cpu_us": per_cpu * 1e6,
            }
            print(
                f"{framework:<32} {version(framework):>9} {single * 1e6:>10.0f} "
                f"{chain * 1e6:>10.0f} {per * 1e6:>11.0f} {per_cpu * 1e6:>15.0f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
