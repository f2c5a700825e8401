"""OpenTelemetry from the journal: spans following the GenAI semantic conventions.

Off unless asked for: nothing here is imported by the core, no exporter is created
unless one is passed or the standard ``OTEL_EXPORTER_OTLP_*`` variables are set and
`Telemetry.from_env` is called, and message content is recorded only with
``content=True``. Needs the ``otel`` extra (``pip install 'pilothouse[otel]'``).

- `Telemetry`: a journal subscriber (``agent.run(..., subscribers=[telemetry])``) that
  turns a run's events into spans as they are appended (`spans.SpanBuilder`), handed to
  the SDK's `BatchSpanProcessor`, whose thread does the exporting;
- `export_run`: the spans of a finished run read back from its store
  (``pilothouse trace export-otel RUN_ID``).
"""

from __future__ import annotations

from pilothouse.telemetry.setup import Telemetry, export_run

__all__ = ["Telemetry", "export_run"]
