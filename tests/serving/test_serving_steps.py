"""Steps in a stream: a client that asks (``stream_options.include_steps``) reads a chunk
per tool call, tool result and child run, with names and statuses only.

Real agents behind the loopback endpoint, the official `openai` client; each note is
checked against the journal's events, and for what it must not carry (arguments,
results, the policy's reasons)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serving_world import Gate, World, client, make_agents, world_model

from pilothouse import Agent
from pilothouse.events import ToolCalled
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.serving import BackgroundServer, create_app

STEPS = {"include_steps": True}


def notes(chunks: list[Any]) -> list[dict[str, Any]]:
    return [
        c.model_extra["pilothouse"]["event"]
        for c in chunks
        if c.model_extra and "event" in c.model_extra.get("pilothouse", {})
    ]


def stream(server: BackgroundServer, model: str, text: str, **options: Any) -> list[Any]:
    return list(
        client(server).chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}], stream=True, **options
        )
    )


def test_a_client_that_asks_reads_each_tool_call_and_result(world: World) -> None:
    with world.serve() as server:
        chunks = stream(server, "echo", "weather in Oslo", stream_options=STEPS)
        plain = stream(server, "echo", "weather in Oslo")
    assert notes(chunks) == [
        {"type": "tool_call", "step": 1, "tool": "weather", "status": "running"},
        {"type": "tool_result", "step": 1, "tool": "weather", "ok": True},
    ]
    run_id = chunks[-1].id.removeprefix("chatcmpl-")
    stepped = [c for c in chunks if c.model_extra and "event" in c.model_extra["pilothouse"]]
    assert [c.model_extra["pilothouse"]["run_id"] for c in stepped] == [run_id, run_id]
    assert all(c.choices[0].delta.content is None for c in stepped)  # no text in them
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The forecast: sunny in Oslo"  # the answer is the same with steps
    assert notes(plain) == []  # nobody asked: no step chunks
    # nothing but names and statuses: no argument ("Oslo"), no result ("sunny")
    assert all("Oslo" not in str(n) and "sunny" not in str(n) for n in notes(chunks))


def test_a_call_that_waits_or_is_refused_says_so_without_the_reason(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    policy = Policy([Rule("weather", "deny", id="SECRET-7", description="no forecasts: SECRET-7")])
    agents = make_agents(store, Gate())
    tools = list(agents["echo"].tools.values())
    guarded = Agent(world_model(), "Be helpful.", tools, name="guarded", store=store, policy=policy)
    with BackgroundServer(create_app([agents["echo"], guarded])) as server:
        waiting = stream(server, "echo", "pay 20", stream_options=STEPS)
        refused = stream(server, "guarded", "weather in Oslo", stream_options=STEPS)
    assert notes(waiting) == [
        {"type": "tool_call", "step": 1, "tool": "send_money", "status": "waiting"}
    ]
    first = notes(refused)[0]
    assert first == {"type": "tool_call", "step": 1, "tool": "weather", "status": "refused"}
    assert "SECRET-7" not in str(notes(refused))
    run_id = refused[-1].id.removeprefix("chatcmpl-")
    [called] = [e for e in store.events(run_id) if isinstance(e, ToolCalled)]
    assert called.decision is not None and called.decision.effect == "deny"
    store.close()
