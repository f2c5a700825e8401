"""OpenTelemetry spans from the journal, following the GenAI semantic conventions.

Runs offline as written (scripted models; the spans go to the SDK's in-memory
exporter and are printed as a tree). Needs the ``otel`` extra:

    pip install 'pilothouse[otel]'
    python examples/telemetry.py

To send them to a collector instead (Jaeger, Tempo, an OpenTelemetry Collector...):

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python examples/telemetry.py

(`Telemetry.from_env()` makes an OTLP/HTTP exporter only when that variable is set;
nothing is sent anywhere otherwise.) A recorded run can be sent later with
``pilothouse trace export-otel RUN_ID``.

What it shows: one ``invoke_agent`` span per run, a ``chat`` span per model call, an
``execute_tool`` span per tool call (the two parallel lookups are siblings under the
run), and the child run the ``research`` tool started nested under that tool's span;
no message text unless ``content=True``.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pilothouse import Agent, MemoryStore, Policy, ScriptedModel, ToolContext, call, tool
from pilothouse.telemetry import Telemetry


@tool
def lookup(key: str) -> str:
    """Look a key up in the table."""
    return {"fig": "a fruit", "oak": "a tree"}.get(key, "unknown")


store = MemoryStore()
researcher = Agent(
    ScriptedModel([call("lookup", key="fig"), "Figs are fruit."]),
    "You research.",
    [lookup],
    name="researcher",
    store=store,
)


@tool(on_doubt="retry")
async def research(ctx: ToolContext, topic: str) -> str:
    """Ask the researcher."""
    return str((await ctx.run_child(researcher, f"research {topic}")).output)


lead = Agent(
    ScriptedModel(
        [
            [call("lookup", key="fig"), call("lookup", key="oak")],  # two calls in one step
            call("research", topic="figs"),
            "Figs are fruit; oaks are trees.",
        ]
    ),
    "You lead.",
    [lookup, research],
    name="lead",
    store=store,
    policy=Policy.allow_all(),
)

if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
    telemetry = Telemetry.from_env(store=store)
    result = lead.run_sync("figs and oaks?", subscribers=[telemetry])
    telemetry.shutdown()
    print(f"run {result.run_id}: spans sent to {os.environ['OTEL_EXPORTER_OTLP_ENDPOINT']}")
    raise SystemExit(0)

exporter = InMemorySpanExporter()
telemetry = Telemetry(exporter=exporter, store=store)  # content=True would add the text
result = lead.run_sync("figs and oaks?", subscribers=[telemetry])
telemetry.force_flush()
spans = list(exporter.get_finished_spans())
print("answer:", result.output)

children: dict[int | None, list[ReadableSpan]] = {}
for span in spans:
    children.setdefault(span.parent.span_id if span.parent else None, []).append(span)


def show(span: ReadableSpan, depth: int) -> None:
    a = span.attributes or {}
    keys = ("gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.tool.call.id")
    extra = "  ".join(f"{k.removeprefix('gen_ai.')}={a[k]}" for k in keys if k in a)
    print(f"{'  ' * depth}{span.name}  [{a.get('gen_ai.operation.name')}]  {extra}")
    for child in sorted(children.get(span.context.span_id, []), key=lambda s: s.start_time or 0):
        show(child, depth + 1)


for root in children[None]:
    show(root, 0)
telemetry.shutdown()
