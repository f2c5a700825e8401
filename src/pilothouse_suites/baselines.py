"""A naive agent construction to measure Pilothouse's default against.

`NaiveJSONModel` wraps any model the way many agent frameworks drive a model without
native tool calling (LangChain's ConversationalChatAgent style): the tools and a
JSON "action" format are described in the system prompt, the model writes free
text (no grammar, no constrained decoding), and the first JSON object in the text
is parsed as ``{"action": <tool or "Final Answer">, "action_input": ...}``. Text
that does not parse is taken as the final answer (the lenient choice).

`naive_agent` is an `AgentFactory` using it with the scenario's task description
only (the worked examples of the default construction are left out).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from pilothouse import Agent, Budget, Message, ToolCall, Usage
from pilothouse.evals.scenario import Scenario
from pilothouse.models import (
    Capabilities,
    Model,
    ModelRequest,
    ModelResponse,
    StreamItem,
    ToolSpec,
)
from pilothouse.runtime.journal import Store

NAIVE_PROMPT = """\
TOOLS
------
Assistant can ask the user to use tools to look up information that may be helpful \
in answering the user's original question. The tools the human can use are:

{tools}

RESPONSE FORMAT INSTRUCTIONS
----------------------------
When responding to me, please output a response in one of two formats:

**Option 1:**
Use this if you want the human to use a tool.
Markdown code snippet formatted in the following schema:

```json
{{
    "action": string, \\ The action to take. Must be one of {names}
    "action_input": string \\ The input to the action
}}
```

**Option #2:**
Use this if you want to respond directly to the human. Markdown code snippet \
formatted in the following schema:

```json
{{
    "action": "Final Answer",
    "action_input": string \\ You should put what you want to return to use here
}}
```"""

TOOL_RESPONSE = """TOOL RESPONSE:
---------------------
{content}

USER'S INPUT
--------------------
Okay, so what is the response to my last comment? If using information obtained \
from the tools you must mention it explicitly without mentioning the tool names - \
I have forgotten all TOOL RESPONSES! Remember to respond with a markdown code \
snippet of a json blob with a single action, and NOTHING else."""


def _tool_line(spec: ToolSpec) -> str:
    return f"> {spec.name}: {spec.description}"


def parse_action(text: str, tools: list[ToolSpec]) -> tuple[str | None, Any]:
    """(tool name or None for a final answer, input) from the model's text."""
    for candidate in re.findall(r"\{.*\}", text, re.DOTALL):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "action" in data:
            action = str(data["action"])
            value = data.get("action_input", "")
            if action.lower() == "final answer" or action not in {t.name for t in tools}:
                return None, value if isinstance(value, str) else json.dumps(value)
            return action, value
    return None, text.strip()


def _arguments(spec: ToolSpec, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    props = list((spec.parameters.get("properties") or {}).keys())
    if not props:
        return {}
    required = spec.parameters.get("required") or props
    return {required[0]: value}


class NaiveJSONModel:
    """The naive construction around `inner`: prompt-described tools, free text, parse."""

    # To the agent this wrapper *is* a tool-calling model (it takes tools and returns
    # tool calls), so the agent must not add an action format of its own.
    capabilities = Capabilities(native_tools=True, json_schema=False, grammar=False)

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self._calls = 0

    @property
    def name(self) -> str:
        return f"naive-json({self.inner.name})"

    def convert(self, request: ModelRequest) -> ModelRequest:
        """The request the inner model gets: no tools, everything in the text."""
        messages: list[Message] = []
        prompt = NAIVE_PROMPT.format(
            tools="\n".join(_tool_line(t) for t in request.tools),
            names=", ".join(t.name for t in request.tools),
        )
        placed = False
        for m in request.messages:
            if m.role == "system" and not placed:
                messages.append(Message.system(f"{m.content.rstrip()}\n\n{prompt}".strip()))
                placed = True
            elif m.role == "assistant" and m.tool_calls:
                c = m.tool_calls[0]
                action = {"action": c.name, "action_input": c.arguments}
                messages.append(Message.assistant(f"```json\n{json.dumps(action)}\n```"))
            elif m.role == "assistant":
                text = json.dumps({"action": "Final Answer", "action_input": m.content})
                messages.append(Message.assistant(f"```json\n{text}\n```"))
            elif m.role == "tool":
                messages.append(Message.user(TOOL_RESPONSE.format(content=m.content)))
            else:
                messages.append(m)
        if not placed and request.tools:
            messages.insert(0, Message.system(prompt))
        return ModelRequest(messages, [], None, "auto", request.settings)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        response = await self.inner.generate(self.convert(request))
        usage: Usage = response.usage
        tool, value = parse_action(response.text, request.tools)
        if tool is None:
            return ModelResponse(str(value), (), usage, self.name, response.finish_reason)
        spec = next(t for t in request.tools if t.name == tool)
        self._calls += 1
        call = ToolCall(f"naive_{self._calls}", tool, _arguments(spec, value))
        return ModelResponse("", (call,), usage, self.name, "tool_calls")

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        yield await self.generate(request)

    def render(self, request: ModelRequest) -> str:
        return self.inner.render(self.convert(request))


def task_only(instructions: str) -> str:
    """`instructions` without their worked example (the built-in suite's "Example:" part)."""
    return instructions.split("\n\nExample:")[0]


def naive_agent(
    scenario: Scenario, model: Model, budget: Budget, store: Store, *, examples: bool = False
) -> Agent[Any, Any]:
    """The baseline: `NaiveJSONModel` and the task description without worked examples.

    ``examples=True`` keeps the scenario's worked examples: an ablation that shows how
    much of the default construction's lead is the examples and how much the decoding.
    """
    instructions = scenario.instructions if examples else task_only(scenario.instructions)
    return Agent(
        NaiveJSONModel(model),
        instructions,
        scenario.tools,
        name=scenario.name,
        budget=budget,
        store=store,
        policy=scenario.policy,
    )
