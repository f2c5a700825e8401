"""The same agent workload on Pilothouse and on each peer framework.

Workload: one plain sync tool `lookup(key: str) -> str` and an instant scripted model,
plugged in through each framework's own supported extension point, that makes nine
tool calls (one per reply, `lookup(key="k0")` ... `lookup(key="k8")`) and then gives
the final text answer "final answer": 10 model calls per run. The scripted model
decides from the request alone (it counts the tool results it is shown), so one
agent object can serve many concurrent runs, and every framework's model does the
same small amount of work per call.

Extension points used:
- pilothouse: `ScriptedModel` (a reply function of the request).
- langgraph: `create_react_agent` (langgraph.prebuilt) with a langchain-core
  `BaseChatModel` subclass that implements `bind_tools`, `_generate` and `_agenerate`.
- pydantic-ai: `FunctionModel` (pydantic_ai.models.function).
- openai-agents: a custom `agents.models.interface.Model` passed to `Agent(model=...)`,
  tracing disabled.
- smolagents: a custom `smolagents.Model` subclass driving a `ToolCallingAgent`. Its
  protocol ends a run with a call of its built-in `final_answer` tool, so the scripted
  tenth reply is `final_answer(answer="final answer")`, not plain text.

Run by `benchmarks/peers/run.py`, one fresh interpreter per measurement:

    python benchmarks/peers/workloads.py FRAMEWORK seq|conc [--store PATH]

prints one JSON line. Frameworks are imported only inside their builder, so importing
this module loads none of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

TOOL_CALLS = 9
STEPS_PER_RUN = TOOL_CALLS + 1  # model calls per run
ANSWER = "final answer"
SEQUENTIAL_RUNS = 200
WARMUP_RUNS = 20
CONCURRENT_RUNS = 200

# What each workload imports: `run.py` times these statements in fresh interpreters.
IMPORTS: dict[str, str] = {
    "pilothouse": "from pilothouse import Agent, ScriptedModel, ToolCall, tool",
    "langgraph": (
        "from langgraph.prebuilt import create_react_agent; "
        "from langchain_core.language_models import BaseChatModel; "
        "from langchain_core.messages import AIMessage, ToolMessage; "
        "from langchain_core.outputs import ChatGeneration, ChatResult; "
        "from langchain_core.tools import tool"
    ),
    "pydantic-ai": (
        "from pydantic_ai import Agent; "
        "from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart; "
        "from pydantic_ai.models.function import FunctionModel"
    ),
    "openai-agents": (
        "from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled; "
        "from agents.models.interface import Model; "
        "from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage"
    ),
    "smolagents": (
        "from smolagents import LogLevel, Model, ToolCallingAgent, tool; "
        "from smolagents.models import ChatMessage, ChatMessageToolCall"
    ),
}


@dataclass
class Workload:
    """A built agent: `run(prompt)` returns the final answer; `calls` logs tool calls.

    `run` is a coroutine function when the framework has an async API (`is_async`),
    a plain function otherwise. The tool appends its key to `calls` (list.append is
    atomic, and three of the peers run sync tools in worker threads).
    """

    run: Callable[[str], Awaitable[str]] | Callable[[str], str]
    is_async: bool
    calls: list[str] = field(default_factory=list)


def build_pilothouse(store: str = ":memory:", blocking: bool = False) -> Workload:
    from pilothouse import Agent, ScriptedModel, ToolCall, tool
    from pilothouse.models.base import ModelRequest

    calls: list[str] = []

    @tool(blocking=blocking)
    def lookup(key: str) -> str:
        """Look a key up."""
        calls.append(key)
        return f"value-of-{key}"

    def reply(request: ModelRequest) -> ToolCall | str:
        done = sum(1 for m in request.messages if m.role == "tool")
        if done < TOOL_CALLS:
            return ToolCall(f"c{done}", "lookup", {"key": f"k{done}"})
        return ANSWER

    agent = Agent(
        ScriptedModel(reply, record=False),
        tools=[lookup],
        store=store,
        max_steps=STEPS_PER_RUN + 1,
    )

    async def run(prompt: str) -> str:
        result = await agent.run(prompt)
        return str(result.output)

    return Workload(run, True, calls)


def build_langgraph() -> Workload:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool
    from langchain_core.utils.function_calling import convert_to_openai_tool

    with warnings.catch_warnings():
        # create_react_agent is deprecated in favour of langchain's create_agent (a
        # separate package); it is still langgraph's own prebuilt agent.
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

    calls: list[str] = []

    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        calls.append(key)
        return f"value-of-{key}"

    def reply(messages: list[BaseMessage]) -> ChatResult:
        done = sum(1 for m in messages if isinstance(m, ToolMessage))
        if done < TOOL_CALLS:
            call = {"name": "lookup", "args": {"key": f"k{done}"}, "id": f"c{done}"}
            message = AIMessage(content="", tool_calls=[{**call, "type": "tool_call"}])
        else:
            message = AIMessage(content=ANSWER)
        return ChatResult(generations=[ChatGeneration(message=message)])

    class ScriptedChatModel(BaseChatModel):
        """An instant chat model that answers from the script above."""

        @property
        def _llm_type(self) -> str:
            return "scripted"

        def _generate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **_: Any
        ) -> ChatResult:
            return reply(messages)

        async def _agenerate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **_: Any
        ) -> ChatResult:
            return reply(messages)

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            # What a provider's chat model does: convert once, send with every call.
            return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = create_react_agent(ScriptedChatModel(), [lookup])

    async def run(prompt: str) -> str:
        state = await graph.ainvoke({"messages": [("user", prompt)]})
        return str(state["messages"][-1].content)

    return Workload(run, True, calls)


def build_pydantic_ai() -> Workload:
    from pydantic_ai import Agent
    from pydantic_ai.messages import (
        ModelMessage,
        ModelRequest,
        ModelResponse,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
    )
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    calls: list[str] = []

    def lookup(key: str) -> str:
        """Look a key up."""
        calls.append(key)
        return f"value-of-{key}"

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        done = sum(
            1
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        )
        if done < TOOL_CALLS:
            part = ToolCallPart("lookup", {"key": f"k{done}"}, tool_call_id=f"c{done}")
            return ModelResponse(parts=[part])
        return ModelResponse(parts=[TextPart(ANSWER)])

    agent = Agent(FunctionModel(reply), tools=[lookup])

    async def run(prompt: str) -> str:
        result = await agent.run(prompt)
        return str(result.output)

    return Workload(run, True, calls)


def build_openai_agents() -> Workload:
    from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents_sdk_replies import sdk_reply

    set_tracing_disabled(True)
    calls: list[str] = []

    @function_tool
    def lookup(key: str) -> str:
        """Look a key up."""
        calls.append(key)
        return f"value-of-{key}"

    def item_type(item: Any) -> Any:
        return item.get("type") if isinstance(item, dict) else getattr(item, "type", None)

    class ScriptedAgentsModel(Model):
        """An instant model that answers from the script, in Responses API items."""

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
            items = [] if isinstance(input, str) else input
            done = sum(1 for item in items if item_type(item) == "function_call_output")
            if done < TOOL_CALLS:
                return sdk_reply((f"c{done}", "lookup", json.dumps({"key": f"k{done}"})), ANSWER)
            return sdk_reply(None, ANSWER)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("the benchmark runs the agent without streaming")

    agent = Agent(name="bench", model=ScriptedAgentsModel(), tools=[lookup])
    config = RunConfig(tracing_disabled=True)

    async def run(prompt: str) -> str:
        # The default max_turns (10) is exactly this run's model calls; leave room.
        result = await Runner.run(agent, prompt, max_turns=STEPS_PER_RUN + 1, run_config=config)
        return str(result.final_output)

    return Workload(run, True, calls)


def build_smolagents() -> Workload:
    from smolagents import LogLevel, Model, ToolCallingAgent, tool
    from smolagents.models import (
        ChatMessage,
        ChatMessageToolCall,
        ChatMessageToolCallFunction,
        MessageRole,
    )

    calls: list[str] = []

    @tool
    def lookup(key: str) -> str:
        """Look a key up.

        Args:
            key: The key to look up.
        """
        calls.append(key)
        return f"value-of-{key}"

    def role_of(message: Any) -> Any:
        return message["role"] if isinstance(message, dict) else message.role

    class ScriptedSmolModel(Model):
        """An instant model that answers from the script, in smolagents' messages."""

        def generate(
            self,
            messages: list[Any],
            stop_sequences: list[str] | None = None,
            response_format: dict[str, str] | None = None,
            tools_to_call_from: list[Any] | None = None,
            **kwargs: Any,
        ) -> ChatMessage:
            done = sum(1 for m in messages if role_of(m) == MessageRole.TOOL_RESPONSE)
            if done < TOOL_CALLS:
                name, arguments = "lookup", {"key": f"k{done}"}
            else:
                name, arguments = "final_answer", {"answer": ANSWER}
            function = ChatMessageToolCallFunction(name=name, arguments=arguments)
            call = ChatMessageToolCall(function=function, id=f"c{done}", type="function")
            return ChatMessage(role=MessageRole.ASSISTANT, content="", tool_calls=[call])

    agent = ToolCallingAgent(
        tools=[lookup],
        model=ScriptedSmolModel(model_id="scripted"),
        verbosity_level=LogLevel.OFF,
        max_steps=STEPS_PER_RUN + 1,
    )

    def run(prompt: str) -> str:
        return str(agent.run(prompt))

    return Workload(run, False, calls)


def build(framework: str, store: str = ":memory:") -> Workload:
    """The workload of `framework`: pilothouse, pilothouse-blocking, or a peer's name."""
    if framework == "pilothouse":
        return build_pilothouse(store)
    if framework == "pilothouse-blocking":
        return build_pilothouse(store, blocking=True)
    builders: dict[str, Callable[[], Workload]] = {
        "langgraph": build_langgraph,
        "pydantic-ai": build_pydantic_ai,
        "openai-agents": build_openai_agents,
        "smolagents": build_smolagents,
    }
    if framework not in builders:
        raise SystemExit(f"unknown framework {framework!r}")
    return builders[framework]()


async def run_once(work: Workload, prompt: str) -> str:
    if work.is_async:
        return await work.run(prompt)  # type: ignore[misc]
    return work.run(prompt)  # type: ignore[return-value]


async def checked_run(work: Workload, prompt: str) -> None:
    """One run, asserting the tool ran nine times and the answer is the scripted one."""
    before = len(work.calls)
    output = await run_once(work, prompt)
    ran = len(work.calls) - before
    if output != ANSWER or ran != TOOL_CALLS:
        raise AssertionError(f"run gave {output!r} after {ran} tool calls")


def sequential(work: Workload, runs: int = SEQUENTIAL_RUNS) -> dict[str, Any]:
    """Per step over `runs` sequential runs after a warm-up: wall and CPU microseconds.

    Each run is timed on its own, and the median run is the headline figure: on a
    machine shared with other work it is the one least moved by a burst of load (the
    mean is reported beside it). CPU time (`process_time`, all threads of this process)
    shows the work a framework does per step whatever the machine's load.
    """

    async def main() -> dict[str, Any]:
        for i in range(WARMUP_RUNS):
            await checked_run(work, f"warm-up {i}")
        per_run = []
        c0 = time.process_time()
        for i in range(runs):
            t0 = time.perf_counter()
            await checked_run(work, f"q{i}")
            per_run.append(time.perf_counter() - t0)
        cpu = time.process_time() - c0
        per_step = [t / STEPS_PER_RUN * 1e6 for t in per_run]
        return {
            "us_per_step": statistics.median(per_step),
            "us_per_step_mean": statistics.fmean(per_step),
            "cpu_us_per_step": cpu / (runs * STEPS_PER_RUN) * 1e6,
            "runs": runs,
        }

    return asyncio.run(main())


def concurrent(work: Workload, runs: int = CONCURRENT_RUNS) -> dict[str, Any]:
    """Wall time of `runs` runs at once (one after another without an async API), peak RSS.

    Peak RSS is the whole process's high-water mark (interpreter, imports and the runs),
    which is why every measurement has a fresh interpreter of its own.
    """

    async def main() -> float:
        await checked_run(work, "warm up")
        before = len(work.calls)
        t0 = time.perf_counter()
        if work.is_async:
            outputs = await asyncio.gather(
                *(work.run(f"q{i}") for i in range(runs))  # type: ignore[misc]
            )
        else:
            outputs = [work.run(f"q{i}") for i in range(runs)]
        elapsed = time.perf_counter() - t0
        ran = len(work.calls) - before
        if any(o != ANSWER for o in outputs) or ran != TOOL_CALLS * runs:
            raise AssertionError(f"{runs} runs made {ran} tool calls")
        return elapsed

    wall = asyncio.run(main())
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall_s": wall, "rss_mib": rss_mib, "concurrent": work.is_async}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework")
    parser.add_argument("mode", choices=["seq", "conc"])
    parser.add_argument("--store", default=":memory:", help="Pilothouse's journal store")
    parser.add_argument("--runs", type=int, default=200, help="runs to measure")
    args = parser.parse_args()
    work = build(args.framework, args.store)
    measure = sequential if args.mode == "seq" else concurrent
    figures = measure(work, args.runs)
    sys.stdout.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
