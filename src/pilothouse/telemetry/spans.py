"""OpenTelemetry spans made from journal events (GenAI semantic conventions).

One builder serves both paths: a live run (the journal hands each event to the
`Telemetry` subscriber as it is appended) and a finished run read back from its store
(`export_run`). Spans carry the events' own timestamps, so both paths give the same
spans. The shape, following the GenAI conventions (development status, as of
semantic-conventions 1.37+):

- ``invoke_agent {agent}`` (INTERNAL), one per run: from `run_started` to the run's
  `final`, `run_stopped`, `error`, or its pause for a person (`approval_requested`);
- ``chat {model}`` (CLIENT), one per model call: `model_request` to `model_response`,
  with requested and answering model, token usage, finish reason; a fallback
  (`model_fallback`) or a router's choice (`model_route`) is a span event on it;
- ``execute_tool {tool}`` (INTERNAL), one per tool call: `tool_call` to its
  `tool_result`, parented explicitly on the run's span, so parallel calls of one step
  are siblings whatever order they finish in;
- a child run (`ToolContext.run_child`) is read from the store when its
  `child_finished` arrives and nested under the tool span that started it.

Message content (conversation, tool arguments and results, answers) is recorded only
when `content=True`; without it spans carry names, ids, models, token counts and
outcomes, never text a user or tool wrote.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from pilothouse.events import (
    ApprovalRequested,
    ChildFinished,
    ErrorOccurred,
    Event,
    FinalOutput,
    ModelFallback,
    ModelRequested,
    ModelResponded,
    ModelRouted,
    RunStarted,
    Stopped,
    ToolCalled,
    ToolReturned,
)
from pilothouse.messages import Message, ModelResponse, Usage

__all__ = ["EventSource", "SpanBuilder", "split_model"]

_log = logging.getLogger(__name__)

# The attribute names of the GenAI conventions used here (gen_ai_attributes).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
CONVERSATION = "gen_ai.conversation.id"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
ERROR_TYPE = "error.type"


# Events that never begin the resumed part of a run (a pause's further requests, ends).
_NOT_A_RESUME = (ApprovalRequested, FinalOutput, Stopped, ErrorOccurred, ChildFinished)


class EventSource(Protocol):
    """Where a child run's events are read (a journal `Store`)."""

    def events(self, run_id: str) -> Sequence[Event]: ...


def split_model(name: str) -> tuple[str | None, str]:
    """(provider, model) from a Pilothouse model name: ``openai:gpt-4o@http://...`` gives
    ``("openai", "gpt-4o")``; a composite (``fallback(...)``) keeps its whole name."""
    if "(" in name:
        return None, name
    provider, sep, rest = name.partition(":")
    if not sep:
        return None, name
    return provider, rest.split("@", 1)[0]


CONTENT_LIMIT = 16_384  # characters of one content attribute; the journal has the rest


def _clip(text: str, limit: int = CONTENT_LIMIT) -> str:
    """Content for an attribute, cut to `limit` (a 1 MB tool result is not a span's job)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters in the journal]"


def _text(content: Any) -> dict[str, Any]:
    return {"type": "text", "content": content}


def _ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


def _messages_json(messages: Iterable[Message]) -> str:
    """Messages in the conventions' shape: role and parts (text, tool calls, results)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        parts: list[dict[str, Any]] = []
        if m.role == "tool":
            parts.append(
                {"type": "tool_call_response", "id": m.tool_call_id, "response": m.content}
            )
        elif m.content:
            parts.append({"type": "text", "content": m.content})
        for c in m.tool_calls:
            parts.append(
                {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
            )
        out.append({"role": m.role, "parts": parts})
    return json.dumps(out, ensure_ascii=False, default=str)


def _output_json(response: ModelResponse) -> str:
    parts: list[dict[str, Any]] = []
    if response.text:
        parts.append({"type": "text", "content": response.text})
    for c in response.tool_calls:
        parts.append({"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments})
    message = {"role": "assistant", "parts": parts, "finish_reason": response.finish_reason}
    return json.dumps([message], ensure_ascii=False, default=str)


@dataclass
class _Run:
    """The open spans of one run."""

    span: Span
    context: otel_context.Context
    model: str
    began: int  # ns: the run's (or its resumed part's) start
    chat: Span | None = None
    tools: dict[tuple[int, int], Span] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    conversation: list[Message] = field(default_factory=list)  # only with content=True


class SpanBuilder:
    """Turns the events of runs into spans; feed it every event of a run, in order."""

    def __init__(
        self, tracer: Tracer, *, content: bool = False, store: EventSource | None = None
    ) -> None:
        self.tracer = tracer
        self.content = content
        self.store = store
        self.runs: dict[str, _Run] = {}
        self._warned_no_store = False
        self.started = 0  # spans started so far

    # ------------------------------------------------------------------ entry points

    def handle(self, event: Event, parent: otel_context.Context | None = None) -> None:
        """Open or close the spans `event` marks; `parent` places a run's span (a child's)."""
        if isinstance(event, RunStarted):
            self._start_run(event, parent)
            return
        run = self.runs.get(event.run_id)
        if run is None:
            if isinstance(event, _NOT_A_RESUME):
                return  # a further pause of a run already ended here, or a stray end
            run = self._resumed(event)  # a resumed run: a new span for its new part
            if run is None:
                return
        if isinstance(event, ModelRequested):
            self._start_chat(run, event)
        elif isinstance(event, ModelResponded):
            self._end_chat(run, event)
        elif isinstance(event, ModelFallback):
            if run.chat is not None:
                run.chat.add_event(
                    "pilothouse.model_fallback",
                    {
                        "pilothouse.fallback.from": event.from_model,
                        "pilothouse.fallback.to": event.to_model,
                        ERROR_TYPE: event.error,
                        "pilothouse.fallback.attempts": event.attempts,
                        "pilothouse.fallback.after_output": event.after_output,
                    },
                    _ns(event.ts),
                )
        elif isinstance(event, ModelRouted):
            if run.chat is not None:
                run.chat.set_attribute("pilothouse.route.model", event.model)
                run.chat.set_attribute("pilothouse.route.tried", event.tried)
        elif isinstance(event, ToolCalled):
            self._start_tool(run, event)
        elif isinstance(event, ToolReturned):
            self._end_tool(run, event)
        elif isinstance(event, ChildFinished):
            self._child(run, event)
        elif isinstance(event, FinalOutput):
            self._end_run(event, "final", None)
        elif isinstance(event, Stopped):
            self._end_run(event, event.outcome, None)
        elif isinstance(event, ErrorOccurred):
            self._end_run(event, "error", event)
        elif isinstance(event, ApprovalRequested):
            self._end_run(event, "paused", None)

    def replay(self, events: Sequence[Event], parent: otel_context.Context | None = None) -> None:
        """Spans for a whole recorded run (and, through the store, its children)."""
        for event in events:
            self.handle(event, parent)
        if events and events[0].run_id in self.runs:  # a run that has not ended: close it
            self._close(events[0].run_id, events[-1].ts, "running")

    def close_all(self, ts: float) -> None:
        """End every span still open (at shutdown), marking the runs unfinished."""
        for run_id in list(self.runs):
            self._close(run_id, ts, "running")

    def _span(self, name: str, **kwargs: Any) -> Span:
        self.started += 1
        return self.tracer.start_span(name, **kwargs)

    # ------------------------------------------------------------------ runs

    def _start_run(self, event: RunStarted, parent: otel_context.Context | None) -> None:
        provider, model = split_model(event.model)
        attributes: dict[str, Any] = {
            OPERATION: "invoke_agent",
            AGENT_NAME: event.agent,
            AGENT_ID: event.run_id,
            REQUEST_MODEL: model,
            "pilothouse.run_id": event.run_id,
        }
        if provider:
            attributes[PROVIDER] = provider
        if event.session_id:
            attributes[CONVERSATION] = event.session_id
        if event.parent_run_id:
            attributes["pilothouse.parent_run_id"] = event.parent_run_id
        if self.content and event.instructions:
            attributes[SYSTEM_INSTRUCTIONS] = _clip(
                json.dumps([_text(event.instructions)], ensure_ascii=False)
            )
        span = self._span(
            f"invoke_agent {event.agent}",
            context=parent if parent is not None else otel_context.get_current(),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(event.ts),
        )
        run = _Run(span, trace.set_span_in_context(span), event.model, _ns(event.ts))
        if self.content:
            history = list(event.history) if event.session_id is None else []
            run.conversation = [*history, Message.user(event.input)]
        self.runs[event.run_id] = run

    def _resumed(self, event: Event) -> _Run | None:
        """The span of a run resumed in this process, named from its `run_started`."""
        started: RunStarted | None = None
        if self.store is not None:
            try:
                first = self.store.events(event.run_id)[:1]
            except Exception:
                first = []
            if first and isinstance(first[0], RunStarted):
                started = first[0]
        if started is None:
            return None
        resumed = copy.copy(started)
        resumed.ts = event.ts
        self._start_run(resumed, None)
        run = self.runs[event.run_id]
        run.span.set_attribute("pilothouse.resumed", True)
        return run

    def _end_run(self, event: Event, outcome: str, error: ErrorOccurred | None) -> None:
        run = self.runs.get(event.run_id)
        if run is None:
            return
        if isinstance(event, FinalOutput):
            run.usage = event.usage
            if self.content:
                answer = [{"role": "assistant", "parts": [_text(event.output)]}]
                text = json.dumps(answer, ensure_ascii=False, default=str)
                run.span.set_attribute(OUTPUT_MESSAGES, _clip(text))
        if error is not None:
            run.span.set_status(Status(StatusCode.ERROR, error.message[:200]))
            run.span.set_attribute(ERROR_TYPE, error.kind)
        self._close(event.run_id, event.ts, outcome)

    def _close(self, run_id: str, ts: float, outcome: str) -> None:
        run = self.runs.pop(run_id)
        end = _ns(ts)
        for span in [run.chat, *run.tools.values()]:
            if span is not None:
                span.end(end_time=end)
        run.span.set_attribute("pilothouse.outcome", outcome)
        run.span.set_attribute(INPUT_TOKENS, run.usage.input_tokens)
        run.span.set_attribute(OUTPUT_TOKENS, run.usage.output_tokens)
        run.span.end(end_time=end)

    # ------------------------------------------------------------------ model calls

    def _start_chat(self, run: _Run, event: ModelRequested) -> None:
        if run.chat is not None:  # a request the journal never saw answered
            run.chat.end(end_time=_ns(event.ts))
        provider, model = split_model(run.model)
        attributes: dict[str, Any] = {
            OPERATION: "chat",
            REQUEST_MODEL: model,
            "pilothouse.step": event.step,
        }
        if provider:
            attributes[PROVIDER] = provider
        if self.content:
            run.conversation.extend(event.new_messages)
            attributes[INPUT_MESSAGES] = _clip(_messages_json(run.conversation))
        run.chat = self._span(
            f"chat {model}",
            context=run.context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=_ns(event.ts),
        )

    def _end_chat(self, run: _Run, event: ModelResponded) -> None:
        span, run.chat = run.chat, None
        if span is None:
            return
        response = event.response
        run.usage = run.usage + response.usage
        if response.model:
            span.set_attribute(RESPONSE_MODEL, response.model)
        span.set_attribute(INPUT_TOKENS, response.usage.input_tokens)
        span.set_attribute(OUTPUT_TOKENS, response.usage.output_tokens)
        if response.finish_reason:
            span.set_attribute(FINISH_REASONS, [response.finish_reason])
        if self.content:
            span.set_attribute(OUTPUT_MESSAGES, _clip(_output_json(response)))
            run.conversation.append(Message.assistant(response.text, response.tool_calls))
        span.end(end_time=_ns(event.ts))

    # ------------------------------------------------------------------ tools

    def _start_tool(self, run: _Run, event: ToolCalled) -> None:
        call = event.call
        attributes: dict[str, Any] = {
            OPERATION: "execute_tool",
            TOOL_NAME: call.name,
            TOOL_CALL_ID: call.id,
            TOOL_TYPE: "function",
            "pilothouse.step": event.step,
            "pilothouse.idempotency_key": event.idempotency_key,
            "pilothouse.effect": event.effect,
        }
        if event.decision is not None:
            attributes["pilothouse.policy.effect"] = event.decision.effect
            if event.decision.rule:
                attributes["pilothouse.policy.rule"] = event.decision.rule
        if self.content:
            attributes[TOOL_ARGUMENTS] = _clip(
                json.dumps(call.arguments, ensure_ascii=False, default=str)
            )
        run.tools[(event.step, event.index)] = self._span(
            f"execute_tool {call.name}",
            context=run.context,  # the run's span, not whichever tool span is current
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(event.ts),
        )

    def _end_tool(self, run: _Run, event: ToolReturned) -> None:
        span = run.tools.pop((event.step, event.index), None)
        result = event.result
        if span is None:  # called before a pause, run after the resume: from the resume on
            span = self._span(
                f"execute_tool {result.name}",
                context=run.context,
                kind=SpanKind.INTERNAL,
                attributes={
                    OPERATION: "execute_tool",
                    TOOL_NAME: result.name,
                    TOOL_CALL_ID: result.call_id,
                    TOOL_TYPE: "function",
                    "pilothouse.step": event.step,
                },
                start_time=run.began,
            )
        if result.is_error:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute(ERROR_TYPE, "tool_error")
        if self.content:
            span.set_attribute(TOOL_RESULT, _clip(result.content))
            run.conversation.append(Message.tool(result))
        span.end(end_time=_ns(event.ts))

    def _child(self, run: _Run, event: ChildFinished) -> None:
        """The child run's spans, read from the store, under the tool span that started it."""
        if self.store is None:
            if not self._warned_no_store:
                self._warned_no_store = True
                _log.warning(
                    "telemetry: child run %s not traced: give Telemetry(store=agent.store) to "
                    "nest child runs under their tool spans",
                    event.child_run_id,
                )
            return
        tool = run.tools.get((event.step, event.index))
        parent = trace.set_span_in_context(tool) if tool is not None else run.context
        try:
            events = self.store.events(event.child_run_id)
        except Exception:  # a child that never started, a store gone: the parent goes on
            _log.warning("telemetry: cannot read child run %s", event.child_run_id, exc_info=True)
            return
        self.replay(events, parent)
