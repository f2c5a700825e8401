"""Spans from the journal: names, parents and attributes (GenAI conventions), checked
with the SDK's in-memory exporter and with an OTLP/HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from otlp_receiver import receiving, refused_base

from pilothouse import Agent, Policy, ScriptedModel, call, tool
from pilothouse.exceptions import ModelUnreachableError, TelemetryExportError
from pilothouse.models.base import ModelRequest, ModelResponse
from pilothouse.models.fallback import FallbackModel
from pilothouse.runtime.journal import MemoryStore, SQLiteStore, Store
from pilothouse.telemetry import Telemetry, export_run
from pilothouse.telemetry.setup import otlp_exporter
from pilothouse.tools import ToolContext


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return {"a": "apple", "b": "banana"}.get(key, "unknown")


@tool
def broken(key: str) -> str:
    """Always fails."""
    raise ValueError("no such shelf")


def two_parallel_calls(store: Store | str = ":memory:") -> Agent[None, str]:
    model = ScriptedModel(
        [
            [call("lookup", key="a"), call("lookup", key="b"), call("broken", key="c")],
            "apple and banana",
        ]
    )
    return Agent(model, "Look things up.", [lookup, broken], name="librarian", store=store)


def memory_telemetry(**kwargs: Any) -> tuple[Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Telemetry(exporter=exporter, **kwargs), exporter


def finished(telemetry: Telemetry, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    assert telemetry.force_flush()
    return list(exporter.get_finished_spans())


def by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_run_is_an_agent_span_with_chat_and_parallel_tool_spans_under_it() -> None:
    telemetry, exporter = memory_telemetry()
    agent = two_parallel_calls()
    result = await agent.run("a and b?", subscribers=[telemetry])
    spans = by_name(finished(telemetry, exporter))
    [root] = spans["invoke_agent librarian"]
    chats = spans["chat scripted"]
    tools = spans["execute_tool lookup"] + spans["execute_tool broken"]
    assert len(chats) == 2 and len(tools) == 3
    root_id = root.context.span_id
    assert root.parent is None and root.kind is SpanKind.INTERNAL
    assert all(parent_of(s) == root_id for s in chats + tools)  # parallel calls: siblings
    assert {s.context.trace_id for s in chats + tools} == {root.context.trace_id}
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.agent.name"] == "librarian"
    assert root.attributes["gen_ai.agent.id"] == result.run_id
    assert root.attributes["pilothouse.outcome"] == "final"
    assert root.attributes["gen_ai.usage.input_tokens"] == result.usage.input_tokens
    chat = chats[0]
    assert chat.kind is SpanKind.CLIENT and chat.attributes is not None
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == "scripted"
    assert chat.attributes["gen_ai.response.model"] == "scripted"
    assert chat.attributes["gen_ai.usage.output_tokens"] >= 1
    assert chat.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    ids = sorted(str((s.attributes or {})["gen_ai.tool.call.id"]) for s in tools)
    assert len(set(ids)) == 3
    for s in tools:
        assert s.attributes is not None
        assert s.attributes["gen_ai.operation.name"] == "execute_tool"
        assert s.attributes["gen_ai.tool.type"] == "function"
        assert s.start_time is not None and s.end_time is not None
        assert s.start_time <= s.end_time
    [failed] = spans["execute_tool broken"]
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "tool_error"


async def test_no_message_content_unless_opted_in() -> None:
    telemetry, exporter = memory_telemetry()
    await two_parallel_calls().run("a secret question", subscribers=[telemetry])
    dump = json.dumps([dict(s.attributes or {}) for s in finished(telemetry, exporter)])
    assert "secret" not in dump and "apple" not in dump
    assert "gen_ai.input.messages" not in dump and "gen_ai.tool.call.arguments" not in dump

    telemetry, exporter = memory_telemetry(content=True)
    await two_parallel_calls().run("a secret question", subscribers=[telemetry])
    spans = by_name(finished(telemetry, exporter))
    second = spans["chat scripted"][1].attributes or {}
    sent = json.loads(str(second["gen_ai.input.messages"]))
    assert sent[0] == {"role": "user", "parts": [{"type": "text", "content": "a secret question"}]}
    assert any(p["type"] == "tool_call_response" for m in sent for p in m["parts"])
    tool_attrs = [s.attributes or {} for s in spans["execute_tool lookup"]]
    assert {json.loads(str(a["gen_ai.tool.call.arguments"]))["key"] for a in tool_attrs} == {
        "a",
        "b",
    }
    assert {a["gen_ai.tool.call.result"] for a in tool_attrs} == {"apple", "banana"}


async def test_a_child_run_nests_under_the_tool_span_that_started_it() -> None:
    store = MemoryStore()
    child = Agent(
        ScriptedModel(["figs grow on trees"]), "Research.", name="researcher", store=store
    )

    @tool(on_doubt="retry")
    async def research(ctx: ToolContext, topic: str) -> str:
        """Delegate research."""
        return str((await ctx.run_child(child, f"research {topic}")).output)

    lead = Agent(
        ScriptedModel([call("research", topic="figs"), "Figs grow on trees."]),
        "Lead.",
        [research],
        name="lead",
        store=store,
        policy=Policy.allow_all(),
    )
    telemetry, exporter = memory_telemetry(store=store)
    await lead.run("figs?", subscribers=[telemetry])
    spans = by_name(finished(telemetry, exporter))
    [lead_span] = spans["invoke_agent lead"]
    [tool_span] = spans["execute_tool research"]
    [child_span] = spans["invoke_agent researcher"]
    assert parent_of(tool_span) == lead_span.context.span_id
    assert parent_of(child_span) == tool_span.context.span_id
    child_chats = [s for s in spans["chat scripted"] if parent_of(s) == child_span.context.span_id]
    assert len(child_chats) == 1
    assert child_span.context.trace_id == lead_span.context.trace_id
    assert (child_span.attributes or {})["pilothouse.parent_run_id"] == (
        lead_span.attributes or {}
    )["pilothouse.run_id"]


class Down:
    """A model whose endpoint refuses connections."""

    name = "openai:down"
    capabilities = ScriptedModel([]).capabilities

    async def generate(self, request: ModelRequest) -> ModelResponse:
        raise ModelUnreachableError("connection refused")

    def render(self, request: ModelRequest) -> str:
        return ""


async def test_a_fallback_is_an_event_on_the_chat_span() -> None:
    telemetry, exporter = memory_telemetry()
    model = FallbackModel([Down(), ScriptedModel(["fine"], name="backup")])  # type: ignore[list-item]
    agent = Agent(model, "Answer.", store=":memory:")
    await agent.run("hi", subscribers=[telemetry])
    spans = by_name(finished(telemetry, exporter))
    [chat] = spans["chat fallback(openai:down,backup)"]
    assert (chat.attributes or {})["gen_ai.response.model"] == "backup"
    [event] = chat.events
    assert event.name == "pilothouse.model_fallback"
    assert dict(event.attributes or {})["error.type"] == "unavailable"


async def test_the_agent_span_joins_the_callers_current_span() -> None:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    telemetry = Telemetry(tracer_provider=provider)
    with provider.get_tracer("app").start_as_current_span("http request") as outer:
        await two_parallel_calls().run("a?", subscribers=[telemetry])
    [root] = by_name(list(memory.get_finished_spans()))["invoke_agent librarian"]
    assert parent_of(root) == outer.get_span_context().span_id


async def test_export_of_a_recorded_run_matches_the_live_spans(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    telemetry, exporter = memory_telemetry(store=store)
    result = await two_parallel_calls(store).run("a and b?", subscribers=[telemetry])
    live = finished(telemetry, exporter)

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    count = export_run(store, result.run_id, tracer_provider=provider)
    exported = list(memory.get_finished_spans())
    assert count == len(exported) == len(live)

    def shape(spans: list[ReadableSpan]) -> list[tuple[str, int | None, int | None]]:
        return sorted((s.name, s.start_time, s.end_time) for s in spans)

    assert shape(exported) == shape(live)  # the journal's timestamps, both ways


# --------------------------------------------------------------------------- the network


async def test_spans_reach_an_otlp_http_receiver() -> None:
    with receiving() as receiver:
        telemetry = Telemetry(exporter=otlp_exporter(receiver.url))
        await two_parallel_calls().run("a?", subscribers=[telemetry])
        telemetry.shutdown()  # flushes the batch processor
    assert set(receiver.paths) == {"/v1/traces"}
    spans = {s.name: s for s in receiver.spans}
    root = spans["invoke_agent librarian"]
    assert root.parent_span_id == b"" and root.service == "pilothouse"
    tools = [s for s in receiver.spans if s.name.startswith("execute_tool")]
    assert len(tools) == 3 and {s.parent_span_id for s in tools} == {root.span_id}
    assert {s.trace_id for s in receiver.spans} == {root.trace_id}
    chat = spans["chat scripted"]
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.kind == 3  # SPAN_KIND_CLIENT
    assert chat.attributes["gen_ai.response.finish_reasons"] in (["tool_calls"], ["stop"])


def test_nothing_is_exported_without_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    telemetry = Telemetry.from_env()
    assert telemetry.force_flush()  # no provider of its own, nothing to send
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)  # global stays no-op
    run = two_parallel_calls().run_sync("a?", subscribers=[telemetry])
    assert run.ok


async def test_the_standard_variables_configure_the_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with receiving() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "desk")
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        Telemetry.from_env().shutdown()
        assert receiver.paths == []  # disabled: no exporter
        monkeypatch.delenv("OTEL_SDK_DISABLED")
        telemetry = Telemetry.from_env()
        await two_parallel_calls().run("a?", subscribers=[telemetry])
        telemetry.shutdown()
    assert receiver.spans and {s.service for s in receiver.spans} == {"desk"}


async def test_a_stuck_collector_never_blocks_the_loop() -> None:
    with receiving(hold=True) as receiver:
        telemetry = Telemetry(exporter=otlp_exporter(receiver.url))
        await two_parallel_calls().run("first", subscribers=[telemetry])
        flusher = threading.Thread(target=telemetry.force_flush, daemon=True)
        flusher.start()  # the exporter's thread posts and the collector never answers...
        assert await asyncio.to_thread(receiver.got_request.wait, 30)
        again = await two_parallel_calls().run("second", subscribers=[telemetry])
        assert again.ok  # ...while the next run goes on to its end
        assert not receiver.release.is_set()
        receiver.release.set()
        await asyncio.to_thread(flusher.join, 30)
        telemetry.shutdown()


async def test_the_cli_exports_a_recorded_run(tmp_path: Path, cli: Any) -> None:
    db = tmp_path / "j.db"
    result = await two_parallel_calls(SQLiteStore(db)).run("a?")
    with receiving() as receiver:
        done = await asyncio.to_thread(
            cli,
            "trace",
            "export-otel",
            result.run_id,
            "--store",
            str(db),
            "--endpoint",
            receiver.url,
        )
    assert done.returncode == 0, done.stderr
    assert "exported 6 spans" in done.stdout
    assert sorted(s.name for s in receiver.spans)[0] == "chat scripted"
    missing = cli("trace", "export-otel", "nope", "--store", str(db), "--endpoint", receiver.url)
    assert missing.returncode != 0 and "nope" in (missing.stdout + missing.stderr)
    no_endpoint = cli("trace", "export-otel", result.run_id, "--store", str(db))
    assert no_endpoint.returncode != 0 and "OTEL_EXPORTER_OTLP_ENDPOINT" in (
        no_endpoint.stdout + no_endpoint.stderr
    )


def test_a_refused_export_is_an_error_not_a_success(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    result = two_parallel_calls(store).run_sync("a?")
    exporter = otlp_exporter(refused_base(), timeout=1.0)
    with pytest.raises(TelemetryExportError):
        export_run(store, result.run_id, exporter=exporter)


async def test_a_paused_run_ends_its_span_and_the_resume_gets_a_new_one() -> None:
    @tool(effect="side_effect", requires_approval=True)
    def ship(order: str) -> str:
        """Ship an order."""
        return f"shipped {order}"

    store = MemoryStore()
    agent = Agent(
        ScriptedModel([call("ship", order="A-1"), "Shipped."]),
        "Ship.",
        [ship],
        name="shipper",
        store=store,
        policy=Policy.allow_all(),
    )
    telemetry, exporter = memory_telemetry(store=store)
    paused = await agent.run("ship A-1", subscribers=[telemetry])
    assert paused.outcome == "paused"
    [key] = [p.key for p in paused.pending]
    done = await agent.resume(paused.run_id, approvals={key: True}, subscribers=[telemetry])
    assert done.output == "Shipped."
    spans = by_name(finished(telemetry, exporter))
    first, second = sorted(spans["invoke_agent shipper"], key=lambda s: s.start_time or 0)
    assert (first.attributes or {})["pilothouse.outcome"] == "paused"
    assert (second.attributes or {})["pilothouse.outcome"] == "final"
    assert (second.attributes or {})["pilothouse.resumed"] is True
    assert (second.attributes or {})["gen_ai.agent.id"] == paused.run_id
    # the call that waited for approval under the first, its execution under the second
    waited, shipped = sorted(spans["execute_tool ship"], key=lambda s: s.start_time or 0)
    assert parent_of(waited) == first.context.span_id
    assert parent_of(shipped) == second.context.span_id
    assert (shipped.attributes or {})["gen_ai.tool.call.id"] == (waited.attributes or {})[
        "gen_ai.tool.call.id"
    ]


async def test_oversized_content_is_clipped_and_a_forged_child_is_skipped() -> None:
    from pilothouse.events import ChildFinished
    from pilothouse.messages import Usage
    from pilothouse.telemetry.spans import CONTENT_LIMIT

    @tool
    def dump(key: str) -> str:
        """Return a huge blob."""
        return "x" * 1_000_000

    store = MemoryStore()
    agent = Agent(
        ScriptedModel([call("dump", key="k"), "done"]), "Dump.", [dump], name="d", store=store
    )
    telemetry, exporter = memory_telemetry(content=True, store=store)
    result = await agent.run("go", subscribers=[telemetry])
    spans = by_name(finished(telemetry, exporter))
    value = str((spans["execute_tool dump"][0].attributes or {})["gen_ai.tool.call.result"])
    assert CONTENT_LIMIT < len(value) < CONTENT_LIMIT + 100
    assert value.endswith("more characters in the journal]")
    assert all(
        len(str(v)) < CONTENT_LIMIT + 100 for s in exporter.get_finished_spans()
        for v in (s.attributes or {}).values()
    )  # fmt: skip
    # a journal naming a child run that does not exist: the parent's spans still come
    events = list(store.events(result.run_id))
    forged = ChildFinished(
        run_id=result.run_id, step=1, index=0, child_run_id="nobody", outcome="final",
        usage=Usage(),
    )  # fmt: skip
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    builder = Telemetry(tracer_provider=provider, store=store).builder
    builder.replay([*events[:-1], forged, events[-1]])
    assert {s.name for s in memory.get_finished_spans()} >= {"invoke_agent d", "execute_tool dump"}


async def test_concurrent_runs_through_one_subscriber_keep_their_own_trees() -> None:
    telemetry, exporter = memory_telemetry()
    agents = [two_parallel_calls() for _ in range(5)]
    results = await asyncio.gather(*(a.run(f"q{i}", subscribers=[telemetry])
                                     for i, a in enumerate(agents)))  # fmt: skip
    spans = finished(telemetry, exporter)
    roots = {
        str((s.attributes or {})["gen_ai.agent.id"]): s
        for s in spans
        if s.name == "invoke_agent librarian"
    }
    assert set(roots) == {r.run_id for r in results}
    by_root = {root.context.span_id: root for root in roots.values()}
    others = [s for s in spans if not s.name.startswith("invoke_agent")]
    assert len(others) == 5 * 5  # 2 chats and 3 tools a run
    for s in others:
        root = by_root[parent_of(s)]  # every span under one of the runs...
        assert s.context.trace_id == root.context.trace_id  # ...in that run's trace
    assert len({root.context.trace_id for root in roots.values()}) == 5


async def test_a_streamed_run_is_traced_too() -> None:
    telemetry, exporter = memory_telemetry()
    items = [i async for i in two_parallel_calls().stream("a?", subscribers=[telemetry])]
    assert getattr(items[-1], "type", "") == "final"
    names = sorted(s.name for s in finished(telemetry, exporter))
    assert names.count("execute_tool lookup") == 2 and "invoke_agent librarian" in names
