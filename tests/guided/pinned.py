"""What the embedded model is sent, pinned: the prompts and grammars of real agent runs.

`SCENARIOS` are agent runs on SmolLM2-135M (the order-status example, the committed
cassette's agent, several tools, arithmetic, a JSON result, a structured answer).
`capture()` runs them and records every generation the model makes: the exact prompt
text, the GBNF grammar, the max_tokens and the text generated. The file
``pinned_generations.json`` was written by ``python tests/guided/pinned.py`` *before*
guided decoding moved out of `LocalModel` (into `pilothouse.guided`), and
`test_pinned.py` checks that today's code sends the model the very same prompts and
grammars, in the same order, so the refactor changed nothing the model sees.

Re-captured on purpose for issue #22 (relevance gate, arguments in the request's own
words): one scenario changed, ``notes``: the query "lookup" (the tool's own name,
which no longer counts as something the user said) is asked again among the request's
spans ("open"); the other seven scenarios send and receive exactly what they did.

Re-captured for issue #22's second round (the first arguments stage held to the
request's own values, `arguments.grounded_parameters`): the grammar of two arguments
stages changed (the order id held to the request's spans, ``a``/``b`` of ``add`` to its
numbers); every prompt and every generated call is the same as before.

Re-captured for issue #22's third round (`guided.brevity`): the first `choose` stage of
six scenarios now asks for at most 48 tokens (``max_tokens`` None -> 48); every prompt,
grammar and generated text is the same as before.

Re-captured for issue #22's fourth round (`relevance.asked_for`: a request that plainly
asks for a tool gets a tool only): two scenarios, ``example-B7788`` and ``json-result``,
no longer have their first ``choose`` stage (the tool was chosen there anyway); every
other generation is the very same prompt, grammar and text as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[2]
PINNED = Path(__file__).resolve().parent / "pinned_generations.json"
sys.path.insert(0, str(ROOT / "tests"))

from pilothouse import Agent, tool  # noqa: E402
from pilothouse.models.base import ModelSettings  # noqa: E402
from pilothouse.models.local import LocalModel  # noqa: E402


def _example() -> Any:
    path = ROOT / "examples/local_agent.py"
    spec = importlib.util.spec_from_file_location("local_agent_pinned", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _example()


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


@tool
def lookup(query: Annotated[str, Field(max_length=40)]) -> str:
    """Search the notes.

    Args:
        query: a few keywords, e.g. opening hours
    """
    return "The shop opens at 08:30."


API = {
    "info": {"title": "Harbor Shop API", "version": "2.4.0"},
    "paths": {
        "/orders/{orderId}": {"get": {"operationId": "getOrder", "summary": "Get one order"}},
        "/orders/{orderId}/cancel": {
            "post": {"operationId": "cancelOrder", "summary": "Cancel an order"}
        },
    },
}


@tool
def get_api_spec() -> str:
    """Return the OpenAPI specification of the shop's HTTP API."""
    return json.dumps(API)


class City(BaseModel):
    name: str
    country: str


def _agent(instructions: str, tools: list[Any], **kwargs: Any) -> Agent[Any, Any]:
    kwargs.setdefault("max_steps", 4)
    return Agent(LocalModel(), instructions, tools, store=":memory:", **kwargs)


def _cassette_agent() -> Agent[Any, Any]:
    from cli_tools import get_order_status

    return Agent(
        "local",
        "You are a support agent. Call get_order_status once, then answer the customer in "
        "one sentence.",
        [get_order_status],
        max_steps=4,
        name="cli",
        store=":memory:",
    )


SCENARIOS: dict[str, tuple[Callable[[], Agent[Any, Any]], str]] = {
    "example-A1234": (lambda: example.build_agent(store=":memory:"), "Where is my order A1234?"),
    "example-B7788": (lambda: example.build_agent(store=":memory:"), "Has order B7788 shipped?"),
    "cassette-agent": (_cassette_agent, "Where is my order A1234?"),
    "four-tools": (
        lambda: _agent(
            "You help customers.",
            [example.get_order_status, get_weather, add, lookup],
            settings=ModelSettings(max_tokens=64),
        ),
        "Where is my order A1234?",
    ),
    "arithmetic": (
        lambda: _agent("You answer arithmetic questions.", [add], max_steps=3),
        "What is seven plus eight?",
    ),
    "json-result": (
        lambda: _agent("You answer questions about the shop.", [get_api_spec, add], max_steps=3),
        "According to the shop's API specification, which method and path cancel an order?",
    ),
    "structured": (
        lambda: _agent("You know the weather.", [get_weather], output_type=City, max_steps=3),
        "What's the weather in Rome?",
    ),
    "notes": (
        lambda: _agent("Answer from the notes.", [lookup], max_steps=3),
        "When does the Harbor shop open?",
    ),
}


def digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


async def capture() -> dict[str, list[dict[str, Any]]]:
    """Run every scenario; return each one's generations in order."""
    seen: list[dict[str, Any]] = []
    original = LocalModel._generate_blocking

    def spy(self: LocalModel, prepared: Any, settings: Any, on_text: Any, cancelled: Any) -> Any:
        gen = original(self, prepared, settings, on_text, cancelled)
        seen.append(
            {
                "prompt": prepared.prompt,
                "grammar": digest(prepared.grammar),
                "max_tokens": settings.max_tokens,
                "text": gen.text,
            }
        )
        return gen

    LocalModel._generate_blocking = spy  # type: ignore[method-assign]
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        for name, (build, question) in SCENARIOS.items():
            seen.clear()
            agent = build()
            try:
                await agent.run(question)
            except Exception as exc:  # a model error ends the run: what was sent still counts
                seen.append({"error": type(exc).__name__})
            out[name] = list(seen)
    finally:
        LocalModel._generate_blocking = original  # type: ignore[method-assign]
    return out


if __name__ == "__main__":
    captured = asyncio.run(capture())
    PINNED.write_text(json.dumps(captured, indent=1, ensure_ascii=False) + "\n")
    for name, gens in captured.items():
        print(name, len(gens), [g.get("text", g.get("error"))[:60] for g in gens])
