"""Text action formats in the agent loop, with ScriptedModel replaying real corpus outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pilothouse import Agent, ScriptedModel, tool
from pilothouse.actions import ReactFormat
from pilothouse.events import (
    BudgetStopped,
    ParseFailed,
    ToolCalled,
    ToolReturned,
    event_from_dict,
)
from pilothouse.exceptions import ConfigurationError, OutputValidationError
from pilothouse.messages import ToolCall
from pilothouse.models.base import Capabilities, ModelRequest, ModelResponse

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "agent-outputs"
CORPUS_FILE = CORPUS / "corpus.jsonl"


def corpus_raw(entry_id: str) -> str:
    if not CORPUS_FILE.exists():
        pytest.skip(f"the shared corpus is not present at {CORPUS_FILE}")
    for line in CORPUS_FILE.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["id"] == entry_id:
            return str(entry["raw"])
    raise AssertionError(f"corpus entry {entry_id} is missing")


seen: list[tuple[str, dict[str, Any]]] = []


@tool
def look_up_wikipedia(pages: list[str], query_str: str) -> str:
    """Look pages up on Wikipedia."""
    seen.append(("look_up_wikipedia", {"pages": pages, "query_str": query_str}))
    return "Coca-Cola is a carbonated soft drink."


@tool
def get_current_weather(location: str) -> str:
    """Current weather for a place."""
    seen.append(("get_current_weather", {"location": location}))
    return f"Sunny in {location}"


@tool
def edit_image(image_path: str, prompt: str) -> str:
    """Edit an image."""
    seen.append(("edit_image", {"image_path": image_path, "prompt": prompt}))
    return "edited"


@tool(name="draft_email", title="Create Draft")
def create_draft(to: str) -> str:
    """Create an email draft."""
    seen.append(("draft_email", {"to": to}))
    return "draft created"


@tool
def current_date() -> str:
    """Today's date."""
    seen.append(("current_date", {}))
    return "2026-11-22"


@pytest.fixture(autouse=True)
def _clear() -> None:
    seen.clear()


class TextOnlyModel(ScriptedModel):
    """A scripted model that, like many local models, has no native tool calling."""

    capabilities = Capabilities(native_tools=False, json_schema=False, grammar=False)


def events(agent: Agent[Any, Any], run_id: str) -> list[Any]:
    return list(agent.store.events(run_id))


@pytest.mark.parametrize(
    ("fmt", "entry_id", "expected"),
    [
        (
            "react",
            "llamaindex-10322-python-dict-action-input",
            ("look_up_wikipedia", {"pages": ["Coca-Cola"], "query_str": ""}),
        ),
        (
            "xml",
            "llamacpp-15012-qwen3coder-xml-with-preamble",
            ("get_current_weather", {"location": "Tokyo, Japan"}),
        ),
        (
            "json",
            "langchain-pr7511-unclosed-fence",
            (
                "edit_image",
                {
                    "image_path": "sandbox:/images/new_image_image-0_a900627a-ec15-485e-9a87-"
                    "32e18a40f114.png",
                    "prompt": "Make the cat look at the camera",
                },
            ),
        ),
        # the model names the tool by its title
        ("react", "crewai-923-fenced-json-in-action-input", ("draft_email", {"to": "<email>"})),
        ("react", "llamaindex-12699-schema-echo-type-object", ("current_date", {})),
    ],
)
def test_real_outputs_drive_the_loop(fmt: str, entry_id: str, expected: Any) -> None:
    final = {"react": "Final Answer: done", "xml": "done", "json": "done"}[fmt]
    model = ScriptedModel([corpus_raw(entry_id), final])
    agent = Agent(
        model,
        tools=[look_up_wikipedia, get_current_weather, edit_image, create_draft, current_date],
        action_format=fmt,
        store=":memory:",
    )
    result = agent.run_sync("go")
    assert result.output == "done"
    assert seen == [expected]
    first, second = model.requests
    assert first.tools == [] and second.tools == []  # tools are described, not sent
    system = first.messages[0].content
    assert "edit_image" in system and "look_up_wikipedia" in system
    # the model reads the result in the format's own observation form
    assert second.messages[-1].role == "user"
    assert second.messages[-2].content == corpus_raw(entry_id)
    calls = [e for e in events(agent, result.run_id) if isinstance(e, ToolCalled)]
    assert [(e.call.name, e.call.arguments) for e in calls] == [expected]


def test_react_observation_and_final_answer_text() -> None:
    model = ScriptedModel(
        [
            'Thought: check\nAction: get_current_weather\nAction Input: {"location": "Oslo"}\n'
            "Observation: invented by the model",
            "Thought: I know\nFinal Answer: Sunny in Oslo.",
        ]
    )
    agent = Agent(model, tools=[get_current_weather], action_format="react", store=":memory:")
    result = agent.run_sync("weather?")
    assert result.output == "Sunny in Oslo."
    assert model.requests[1].messages[-1].content == "Observation: Sunny in Oslo"


def test_unreadable_reply_is_re_asked_then_recovers() -> None:
    model = ScriptedModel(
        [
            corpus_raw("crewai-1070-action-none"),
            'Action: get_current_weather\nAction Input: {"location": "Rome"}',
            "Final Answer: warm",
        ]
    )
    agent = Agent(model, tools=[get_current_weather], action_format="react", store=":memory:")
    result = agent.run_sync("weather in Rome?")
    assert result.output == "warm"
    failed = [e for e in events(agent, result.run_id) if isinstance(e, ParseFailed)]
    assert len(failed) == 1 and failed[0].format == "react" and "tool" in failed[0].reason
    corrective = model.requests[1].messages[-1]
    assert corrective.role == "user" and "could not be read" in corrective.content
    assert event_from_dict(failed[0].to_dict()).to_dict() == failed[0].to_dict()


@pytest.mark.parametrize(
    ("fmt", "leak", "marker"),
    [
        (
            "xml",
            '<function_calls>\n<invoke name="get_forecast">\n'
            '<parameter name="location">Rome</parameter>\n</invoke>\n</function_calls>',
            "<function_calls>",
        ),
        ("json", '<|tool_call_start|>[get_forecast(city="Rome")]<|tool_call_end|>', "<|tool_"),
        (
            "react",
            "<|channel|>analysis<|message|>We need the weather in Rome; call the tool.<|end|>",
            "<|channel|>",
        ),
    ],
)
def test_markup_reply_is_re_asked_not_answered(fmt: str, leak: str, marker: str) -> None:
    call = {
        "xml": '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Rome"}}'
        "\n</tool_call>",
        "json": '```json\n{"action": "get_current_weather", "action_input": {"location": "Rome"}}'
        "\n```",
        "react": 'Action: get_current_weather\nAction Input: {"location": "Rome"}',
    }[fmt]
    answer = {
        "xml": "Sunny in Rome.",
        "json": "Sunny in Rome.",
        "react": "Final Answer: Sunny in Rome.",
    }
    model = TextOnlyModel([leak, call, answer[fmt]])
    agent = Agent(model, tools=[get_current_weather], action_format=fmt, store=":memory:")
    result = agent.run_sync("weather in Rome?")
    assert result.output == "Sunny in Rome."  # the markup never reached the user
    assert seen == [("get_current_weather", {"location": "Rome"})]
    failed = [e for e in events(agent, result.run_id) if isinstance(e, ParseFailed)]
    assert len(failed) == 1 and marker in failed[0].reason and "markup" in failed[0].reason
    corrective = model.requests[1].messages[-1]
    assert corrective.role == "user" and "could not be read" in corrective.content
    assert "get_current_weather" in corrective.content


def test_parse_retries_are_bounded() -> None:
    model = ScriptedModel(["Thought: hmm"] * 10)
    agent = Agent(
        model, tools=[get_current_weather], action_format="react", parse_retries=2, store=":memory:"
    )
    result = agent.run_sync("?")
    assert result.outcome == "output_invalid"
    assert len(model.requests) == 3  # the first ask and two re-asks
    stops = [e for e in events(agent, result.run_id) if isinstance(e, BudgetStopped)]
    assert stops[0].limit == "parse_retries"
    with pytest.raises(OutputValidationError):
        _ = result.output


def test_several_actions_run_as_parallel_calls() -> None:
    model = ScriptedModel(
        [
            '<tool_call>{"name": "get_current_weather", "arguments": {"location": "A"}}'
            '</tool_call>\n<tool_call>{"name": "get_current_weather", "arguments": '
            '{"location": "B"}}</tool_call>',
            "Both sunny.",
        ]
    )
    agent = Agent(model, tools=[get_current_weather], action_format="xml", store=":memory:")
    result = agent.run_sync("?")
    assert result.output == "Both sunny."
    assert sorted(a["location"] for _, a in seen) == ["A", "B"]
    returned = [e for e in events(agent, result.run_id) if isinstance(e, ToolReturned)]
    assert len(returned) == 2
    assert model.requests[1].messages[-1].content.count("<tool_response>") == 2


def test_auto_uses_native_calls_where_the_model_has_them() -> None:
    model = ScriptedModel(["plain answer"])
    agent = Agent(model, tools=[get_current_weather], store=":memory:")
    assert agent.run_sync("?").output == "plain answer"
    assert [t.name for t in model.requests[0].tools] == ["get_current_weather"]


def test_auto_uses_json_for_a_model_without_tool_calling() -> None:
    model = TextOnlyModel(
        [
            '```json\n{"action": "get_current_weather", "action_input": {"location": "Y"}}\n```',
            '{"action": "Final Answer", "action_input": "sunny"}',
        ]
    )
    agent = Agent(model, tools=[get_current_weather], store=":memory:")
    assert agent.run_sync("?").output == "sunny"
    assert model.requests[0].tools == []
    assert '"action"' in model.requests[0].messages[0].content
    assert seen == [("get_current_weather", {"location": "Y"})]
    rendered = agent.render_prompt("?")
    assert '"tools": []' in rendered and "action_input" in rendered


def test_custom_format_object_and_bad_name() -> None:
    fmt = ReactFormat(template="Tools: $tool_names. Answer with Final Answer:.")
    model = ScriptedModel(["Final Answer: ok"])
    agent = Agent(model, tools=[get_current_weather], action_format=fmt, store=":memory:")
    assert agent.run_sync("?").output == "ok"
    assert "Tools: get_current_weather. Answer" in model.requests[0].messages[0].content
    with pytest.raises(ConfigurationError, match="action_format"):
        Agent(model, action_format="yaml")


def test_broken_native_arguments_are_repaired() -> None:
    broken = "{'location': 'Lima',}"
    calls = [ToolCall("c1", "get_current_weather", {}, "not valid JSON", broken)]
    model = ScriptedModel([ModelResponse(tool_calls=tuple(calls)), "ok"])
    agent = Agent(model, tools=[get_current_weather], store=":memory:")
    result = agent.run_sync("?")
    assert result.output == "ok"
    assert seen == [("get_current_weather", {"location": "Lima"})]
    called = [e for e in events(agent, result.run_id) if isinstance(e, ToolCalled)]
    assert called[0].call.parse_error is None


def test_unrepairable_native_arguments_still_go_back_to_the_model() -> None:
    calls = [ToolCall("c1", "edit_image", {}, "not valid JSON", '{"image_path": "x", "prom')]

    def reply(request: ModelRequest) -> Any:
        if len(request.messages) == 1:
            return ModelResponse(tool_calls=tuple(calls))
        return "gave up"

    agent = Agent(ScriptedModel(reply), tools=[edit_image], store=":memory:")
    result = agent.run_sync("?")
    assert result.output == "gave up" and seen == []
    returned = [e for e in events(agent, result.run_id) if isinstance(e, ToolReturned)]
    assert returned[0].result.is_error and "Could not parse" in returned[0].result.content


class GrammarModel(ScriptedModel):
    """A scripted stand-in for a model that decodes under a grammar (like the embedded one)."""

    capabilities = Capabilities(native_tools=False, json_schema=True, grammar=True)


def test_json_format_is_enforced_as_a_schema_for_grammar_models() -> None:
    model = GrammarModel(['{"action": "Final Answer", "action_input": "ok"}'])
    agent = Agent(model, tools=[get_current_weather], action_format="json", store=":memory:")
    assert agent.run_sync("?").output == "ok"
    schema = model.requests[0].output_schema
    assert schema is not None
    actions = [alt["properties"]["action"]["const"] for alt in schema["oneOf"]]
    assert actions == ["get_current_weather", "Final Answer"]
    assert '"oneOf"' in agent.render_prompt("?")  # what the model would receive, exactly
    # react cannot be said as a JSON schema: no constraint, and auto stays native-equivalent
    model = GrammarModel(["Final Answer: ok"])
    Agent(model, tools=[get_current_weather], action_format="react", store=":memory:").run_sync("?")
    assert model.requests[0].output_schema is None
    model = GrammarModel(["ok"])
    Agent(model, tools=[get_current_weather], store=":memory:").run_sync("?")
    assert [t.name for t in model.requests[0].tools] == ["get_current_weather"]


async def test_openai_adapter_keeps_broken_arguments_for_the_native_repair() -> None:
    import httpx

    from pilothouse.models.openai import OpenAIModel

    replies = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_current_weather",
                        "arguments": "{'location': 'Lima',}",
                    },
                }
            ],
        },
        {"role": "assistant", "content": "Sunny in Lima."},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        message = replies.pop(0)
        return httpx.Response(
            200,
            json={
                "id": "x",
                "model": "m",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            },
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    model = OpenAIModel("m", base_url="http://127.0.0.1:9/v1", http_client=client)
    agent = Agent(model, tools=[get_current_weather], store=":memory:")
    result = await agent.run("weather in Lima?")
    assert result.output == "Sunny in Lima."
    assert seen == [("get_current_weather", {"location": "Lima"})]
    responded = [e for e in events(agent, result.run_id) if type(e).__name__ == "ModelResponded"]
    broken = responded[0].response.tool_calls[0]
    assert broken.parse_error and broken.raw_arguments == "{'location': 'Lima',}"
    await client.aclose()


def test_a_structured_answer_shaped_like_a_call_is_an_answer_not_markup() -> None:
    from pydantic import BaseModel

    class Greeting(BaseModel):
        name: str
        input: str

    answer = '{"name": "Alice", "input": "hello"}'
    model = TextOnlyModel([answer])
    agent = Agent(
        model,
        tools=[get_current_weather],
        output_type=Greeting,
        action_format="xml",
        store=":memory:",
    )
    result = agent.run_sync("greet Alice")
    assert result.output == Greeting(name="Alice", input="hello")
    # the same text where a plain-text answer was asked for reads as a call to a tool
    # that is not offered: re-asked, never the answer
    plain = Agent(
        TextOnlyModel([answer, "Hello, Alice."]),
        tools=[get_current_weather],
        action_format="xml",
        store=":memory:",
    )
    again = plain.run_sync("greet Alice")
    assert again.output == "Hello, Alice."
    failed = [e for e in events(plain, again.run_id) if isinstance(e, ParseFailed)]
    assert len(failed) == 1 and "'Alice' is not an available tool" in failed[0].reason
