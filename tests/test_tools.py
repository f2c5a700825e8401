"""@tool: schema from the signature, validation errors for the model, execution modes."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from pilothouse import ToolError
from pilothouse.exceptions import ToolDefinitionError
from pilothouse.messages import ToolCall
from pilothouse.tools import ToolContext, tool

CTX = ToolContext("run", 1, 0)


def test_schema_from_signature_and_docstring() -> None:
    @tool
    def search(query: str, limit: int = 5, mode: Literal["fast", "deep"] = "fast") -> list[str]:
        """Search the knowledge base.

        Args:
            query: what to look for
            limit: most results to return
        """
        return []

    assert search.name == "search"
    assert search.description == "Search the knowledge base."
    assert search.effect == "read_only"
    assert search.parameters == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "description": "what to look for"},
            "limit": {"type": "integer", "default": 5, "description": "most results to return"},
            "mode": {"type": "string", "enum": ["fast", "deep"], "default": "fast"},
        },
        "required": ["query"],
    }


def test_annotated_field_description_and_nested_model() -> None:
    class Address(BaseModel):
        street: str
        city: str

    @tool(name="set_address", effect="side_effect")
    def change(order_id: Annotated[str, Field(description="the order")], address: Address) -> str:
        """Change the shipping address."""
        return f"{order_id}: {address.city}"

    assert change.name == "set_address"
    assert change.effect == "side_effect"
    props = change.parameters["properties"]
    assert props["order_id"]["description"] == "the order"
    assert "$defs" in change.parameters and "Address" in change.parameters["$defs"]
    result = asyncio.run(
        change.execute(
            ToolCall(
                "c1", "set_address", {"order_id": "A1", "address": {"street": "x", "city": "Oslo"}}
            ),
            CTX,
        )
    )
    assert (result.content, result.is_error) == ("A1: Oslo", False)


def test_context_parameter_is_hidden_and_injected() -> None:
    seen: list[str] = []

    @tool
    def pay(amount: float, ctx: ToolContext) -> str:
        """Pay."""
        seen.append(ctx.idempotency_key)
        return "ok"

    assert list(pay.parameters["properties"]) == ["amount"]
    asyncio.run(pay.execute(ToolCall("c", "pay", {"amount": 3}), ToolContext("r1", 4, 2)))
    assert seen == ["r1:4:2"]


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({}, "key: Field required"),
        ({"key": "a", "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"key": "a", "n": "many"}, "n: Input should be a valid integer"),
    ],
)
def test_invalid_arguments_become_error_results(
    arguments: dict[str, object], fragment: str
) -> None:
    @tool
    def lookup(key: str, n: int = 1) -> str:
        """Look up."""
        return key * n

    result = asyncio.run(lookup.execute(ToolCall("c", "lookup", arguments), CTX))
    assert result.is_error
    assert result.content.startswith("Invalid arguments for tool 'lookup'")
    assert fragment in result.content


def test_unparseable_arguments_are_reported_not_guessed() -> None:
    @tool
    def lookup(key: str) -> str:
        """Look up."""
        raise AssertionError("must not run")

    result = asyncio.run(lookup.execute(ToolCall("c", "lookup", {}, parse_error="bad JSON"), CTX))
    assert result.is_error and "bad JSON" in result.content


def test_tool_exceptions_become_error_results() -> None:
    @tool
    def broken(x: int) -> int:
        """Fails."""
        raise RuntimeError("database is down")

    @tool
    def refusing(x: int) -> int:
        """Refuses politely."""
        raise ToolError("order 7 does not exist; ask the customer for the order id")

    r1 = asyncio.run(broken.execute(ToolCall("c", "broken", {"x": 1}), CTX))
    r2 = asyncio.run(refusing.execute(ToolCall("c", "refusing", {"x": 1}), CTX))
    assert r1.is_error and r1.content == "Tool 'broken' failed: RuntimeError: database is down"
    assert r2.is_error and r2.content == "order 7 does not exist; ask the customer for the order id"


def test_return_values_are_serialised() -> None:
    @dataclass
    class Point:
        x: int
        y: int

    class Item(BaseModel):
        name: str

    @tool
    def values(kind: str) -> object:
        """Return things."""
        return {
            "point": Point(1, 2),
            "dict": {"a": [1, 2]},
            "model": Item(name="n"),
            "none": None,
            "num": 2.5,
        }[kind]

    def run(kind: str) -> str:
        return asyncio.run(values.execute(ToolCall("c", "values", {"kind": kind}), CTX)).content

    assert run("point") == '{"x":1,"y":2}'
    assert run("dict") == '{"a":[1,2]}'
    assert run("model") == '{"name":"n"}'
    assert run("none") == "null"
    assert run("num") == "2.5"


def test_sync_tools_run_inline_and_blocking_ones_in_a_thread() -> None:
    threads: dict[str, int] = {}

    @tool
    def inline() -> str:
        """Inline."""
        threads["inline"] = threading.get_ident()
        return ""

    @tool(blocking=True)
    def blocking() -> str:
        """Blocking."""
        threads["blocking"] = threading.get_ident()
        return ""

    @tool
    async def awaited() -> str:
        """Async."""
        threads["async"] = threading.get_ident()
        return ""

    async def main() -> int:
        for t in (inline, blocking, awaited):
            await t.execute(ToolCall("c", t.name, {}), CTX)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads["inline"] == loop_thread
    assert threads["async"] == loop_thread
    assert threads["blocking"] != loop_thread


def test_no_argument_tool_rejects_arguments() -> None:
    @tool
    def spec() -> str:
        """Return the spec."""
        return "openapi: 3.0.0"

    assert spec.parameters == {"type": "object", "properties": {}, "additionalProperties": False}
    ok = asyncio.run(spec.execute(ToolCall("c", "spec", {}), CTX))
    bad = asyncio.run(spec.execute(ToolCall("c", "spec", {"x": 1}), CTX))
    assert not ok.is_error and bad.is_error and "takes no arguments" in bad.content


def test_signatures_that_cannot_become_schemas() -> None:
    class Opaque:
        pass

    def unannotated(x):  # type: ignore[no-untyped-def]
        return x

    def star(*args: int) -> int:
        return 0

    def opaque(x: Opaque) -> str:
        return ""

    with pytest.raises(ToolDefinitionError, match="parameter 'x' has no type annotation"):
        tool(unannotated)
    with pytest.raises(ToolDefinitionError, match=r"\*args"):
        tool(star)
    with pytest.raises(ToolDefinitionError, match="cannot become a JSON schema"):
        tool(opaque)
    with pytest.raises(ToolDefinitionError, match="tool name"):
        tool(name="has space")(lambda: "")
    with pytest.raises(ToolDefinitionError, match="effect"):
        tool(effect="dangerous")(star)  # type: ignore[arg-type]


def test_tool_is_still_callable_as_python() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    assert add(2, 3) == 5
