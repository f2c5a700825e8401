"""The endpoint tests' world: real agents (scripted models, real tools, a real SQLite
journal) behind the real endpoint on a loopback uvicorn, called with the official
`openai` client.

`world_model` reacts to the last user message like a model would:

- "gate" in it          -> calls `wait_for_gate` (blocks until the test opens the gate),
                           then answers "gate opened"
- "weather in CITY"     -> calls `weather(city)`, then answers with its result
- "pay N"               -> calls `send_money(amount=N)`, which needs a person's approval
- "transfer N"          -> calls `transfer_money(amount=N)`, whose bank takes the money
                           and never answers: its timeout leaves the run in doubt
- "explode"             -> raises an error whose text must never reach a client
- anything else         -> "echo: <text> [<n> earlier]", n the messages before it
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai

from pilothouse import Agent, tool
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.serving import BackgroundServer

SECRET = "/srv/secret/credentials.db"  # in the model's error: must never reach a client


@dataclass
class Gate:
    """A tool call the test holds open: `entered` once the tool runs, `release` to let
    it return, `cancelled` if the run was cancelled while it waited."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    transfers: list[int] = field(default_factory=list)  # what `transfer_money` sent


def world_model(counter: Iterator[int] | None = None) -> ScriptedModel:
    numbers = counter or iter(range(1_000_000))

    def reply(request: ModelRequest) -> Any:
        last = max(i for i, m in enumerate(request.messages) if m.role == "user")
        text = request.messages[last].content
        done = [m for m in request.messages[last + 1 :] if m.role == "tool"]
        n = next(numbers)
        if "explode" in text:
            raise RuntimeError(f"cannot open {SECRET}")
        if "gate" in text:
            return "gate opened" if done else ToolCall(f"g{n}", "wait_for_gate", {})
        weather = re.search(r"weather in (\w+)", text)
        if weather:
            if done:
                return f"The forecast: {done[0].content}"
            return ToolCall(f"w{n}", "weather", {"city": weather.group(1)})
        transfer = re.search(r"transfer (\d+)", text)
        if transfer:
            if done:
                return f"transfer: {done[0].content}"
            return ToolCall(f"t{n}", "transfer_money", {"amount": int(transfer[1])})
        pay = re.search(r"pay (\d+)", text)
        if pay:
            return "paid" if done else ToolCall(f"p{n}", "send_money", {"amount": int(pay[1])})
        earlier = sum(1 for m in request.messages[:last] if m.role in ("user", "assistant"))
        return f"echo: {text} [{earlier} earlier]"

    return ScriptedModel(reply, record=False)


def make_agents(store: SQLiteStore, gate: Gate) -> dict[str, Agent[Any, Any]]:
    @tool
    async def wait_for_gate() -> str:
        """Wait until the test opens the gate."""
        gate.entered.set()
        try:  # polled rather than waited for in a thread, so a cancelled call leaves none
            while not gate.release.is_set():  # noqa: ASYNC110 (a threading.Event)
                await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            gate.cancelled.set()
            raise
        return "open"

    @tool
    def weather(city: str) -> str:
        """Today's weather in a city."""
        return f"sunny in {city}"

    @tool(effect="side_effect", requires_approval=True)
    def send_money(amount: int) -> str:
        """Send money (a person approves each payment)."""
        return f"sent {amount}"

    @tool(effect="side_effect", timeout=0.2)
    async def transfer_money(amount: int) -> str:
        """Transfer money (the bank takes it, and its answer never comes back)."""
        gate.transfers.append(amount)
        await asyncio.sleep(3600)
        return f"transferred {amount}"

    tools = [wait_for_gate, weather, send_money, transfer_money]
    policy = Policy([Rule("transfer_money", "allow")])  # the rest: the default policy
    echo = Agent(world_model(), "Be helpful.", tools, name="echo", store=store, policy=policy)
    checked = Agent(world_model(), "Be helpful.", tools, name="checked", store=store, policy=policy)

    @checked.output_validator
    def shout(output: str) -> str:  # an output validator: the answer is not streamed live
        return output.upper()

    return {"echo": echo, "checked": checked}


@dataclass
class World:
    store: SQLiteStore
    gate: Gate
    agents: dict[str, Agent[Any, Any]]
    serve: Callable[..., Any]


def client(server: BackgroundServer, key: str = "unused", **options: Any) -> Any:
    """The official client against `server`, without retries unless asked."""
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 60)
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, **options)


def post_decision(
    server: BackgroundServer, run_id: str, route: str, key: str | None, body: Any
) -> httpx.Response:
    """POST `body` (JSON, or raw bytes as given) to a run's `route` (``approvals``,
    ``settlements``) with `key` as the bearer token (none: no header)."""
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{server.url}/v1/runs/{run_id}/{route}",
        content=content,
        headers=headers | {"content-type": "application/json"},
        timeout=60,
    )
