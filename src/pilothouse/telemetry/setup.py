"""Where spans go: a tracer the user gives, an exporter the user gives, or the OTLP
exporter the standard environment variables describe, only when asked for.

Nothing reaches the network unless configured: `Telemetry()` without arguments uses
the process's global tracer provider (a no-op unless the application installed one);
an exporter is made only from an `exporter=` argument, or by `Telemetry.from_env`
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set
(and ``OTEL_SDK_DISABLED`` is not ``true``). The exporter runs behind the SDK's
`BatchSpanProcessor`: ending a span queues it, and a background thread exports, so a
slow or dead collector never blocks the agent loop (a full queue drops spans, it
does not wait).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pilothouse._version import __version__
from pilothouse.events import Event
from pilothouse.exceptions import ConfigurationError, TelemetryExportError

try:
    from opentelemetry import trace
except ImportError as exc:  # pragma: no cover - the extra is part of `dev`
    raise ConfigurationError(
        "OpenTelemetry export needs the otel extra: pip install 'pilothouse[otel]'"
    ) from exc

from pilothouse.telemetry.spans import EventSource, SpanBuilder

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["Telemetry", "export_run"]

CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _provider_for(exporter: SpanExporter) -> TracerProvider:
    """A tracer provider of our own, exporting through a batch processor."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # pragma: no cover - the extra is part of `dev`
        raise ConfigurationError(
            "exporting spans needs the OpenTelemetry SDK: pip install 'pilothouse[otel]'"
        ) from exc
    service = os.environ.get("OTEL_SERVICE_NAME") or "pilothouse"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Telemetry:
    """A journal subscriber that makes OpenTelemetry spans of the runs it is given.

    ``agent.run(input, subscribers=[telemetry])`` (or `resume`, `stream` through
    `start_run`). `exporter`: a `SpanExporter` (OTLP, console, in-memory) behind a
    `BatchSpanProcessor` of this object's own provider; `tracer_provider`: the
    application's own provider instead; neither: the global provider. `content`:
    record message text, tool arguments and results (off: names, ids, models and
    token counts only). `store`: where child runs' events are read, so they nest
    under the tool spans that started them (``store=agent.store``).
    """

    def __init__(
        self,
        *,
        exporter: SpanExporter | None = None,
        tracer_provider: Any = None,
        content: bool = False,
        store: EventSource | None = None,
    ) -> None:
        if exporter is not None and tracer_provider is not None:
            raise ConfigurationError("give Telemetry an exporter or a tracer_provider, not both")
        self._own: TracerProvider | None = None
        if exporter is not None:
            self._own = tracer_provider = _provider_for(exporter)
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        tracer = provider.get_tracer("pilothouse", __version__)
        self.builder = SpanBuilder(tracer, content=content, store=store)

    @classmethod
    def from_env(
        cls, *, content: bool | None = None, store: EventSource | None = None
    ) -> Telemetry:
        """An OTLP/HTTP exporter if the standard variables name an endpoint, else no exporter.

        ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the
        exporter's other ``OTEL_EXPORTER_OTLP_*`` settings) configure it;
        ``OTEL_SDK_DISABLED=true`` turns it off. `content` defaults to
        ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
        """
        if content is None:
            content = _truthy(os.environ.get(CONTENT_ENV))
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        if not endpoint or _truthy(os.environ.get("OTEL_SDK_DISABLED")):
            return cls(content=content, store=store)
        return cls(exporter=otlp_exporter(), content=content, store=store)

    def __call__(self, event: Event) -> None:
        self.builder.handle(event)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what is queued now (own provider only); True if it all went out."""
        return True if self._own is None else bool(self._own.force_flush(timeout_millis))

    def shutdown(self) -> None:
        """End spans still open (marked unfinished) and stop the own provider's exporter."""
        self.builder.close_all(time.time())
        if self._own is not None:
            self._own.shutdown()


def otlp_exporter(endpoint: str | None = None, *, timeout: float | None = None) -> SpanExporter:
    """The OTLP/HTTP (protobuf) span exporter; `endpoint` is a base URL (``/v1/traces`` is
    appended, as for ``OTEL_EXPORTER_OTLP_ENDPOINT``), default: the environment's;
    `timeout`: seconds for one export, retries included (default: the exporter's)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:  # pragma: no cover - the extra is part of `dev`
        raise ConfigurationError(
            "OTLP export needs the otel extra: pip install 'pilothouse[otel]'"
        ) from exc
    traces = None if endpoint is None else endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=traces, timeout=timeout)


def export_run(
    store: EventSource,
    run_id: str,
    *,
    exporter: SpanExporter | None = None,
    tracer_provider: Any = None,
    content: bool = False,
) -> int:
    """Export a recorded run (and its child runs) as spans; returns how many were made.

    The spans carry the journal's timestamps, so they match what a live `Telemetry`
    would have produced. With `exporter`, they are sent in one batch before this
    returns, and a refused export raises `TelemetryExportError` (a CLI must not say
    "exported" when the collector was down); with `tracer_provider` (or neither) they
    go where that provider sends them.
    """
    events: Sequence[Event] = store.events(run_id)
    if exporter is None:
        telemetry = Telemetry(tracer_provider=tracer_provider, content=content, store=store)
        telemetry.builder.replay(events)
        return telemetry.builder.started
    if tracer_provider is not None:
        raise ConfigurationError("give export_run an exporter or a tracer_provider, not both")
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    service = os.environ.get("OTEL_SERVICE_NAME") or "pilothouse"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    builder = SpanBuilder(
        provider.get_tracer("pilothouse", __version__), content=content, store=store
    )
    builder.replay(events)
    spans = memory.get_finished_spans()
    try:
        result = exporter.export(spans)
    finally:
        exporter.shutdown()
    if result is not SpanExportResult.SUCCESS:
        raise TelemetryExportError(
            f"the collector did not accept the {len(spans)} spans of run {run_id} "
            "(see the log above for its answer); check the endpoint and that it is running"
        )
    return len(spans)
