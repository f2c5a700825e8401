"""`ReplayModel`: a model whose answers come from a recorded run's journal.

The journal records, for every step, what was sent to the model (the
`new_messages` of each `model_request`, whose concatenation is the step's full
request) and what it answered (`model_response`). A `ReplayModel` answers the
k-th request of a new run with the k-th recorded answer, but only after checking
that the request is the one that was recorded: same messages, same tools on
offer. A request that differs raises `ReplayDivergence` naming the step and the
first difference, because answering it with the recorded reply would test
nothing. So an agent run against a `ReplayModel` is deterministic, offline and
fast, and any change in what the agent sends shows up at the step it first
changes. `pilothouse.runtime.replay.replay` drives a whole agent this way (tools
served from the journal too); the model alone is useful wherever a `Model` is.

A guided step (`pilothouse.guided`) recorded its stages (``stage_request`` /
``stage_response``). Given the agent's guidance (`guide`), the replay runs the real
guided construction over a stage server that answers each stage with its recorded
reply after checking the stage's request against the recorded digest, so a changed
stage prompt or schema diverges. A step recorded without stages (a journal from
before stages were journaled) is answered whole, as before.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilothouse.events import (
    ErrorOccurred,
    Event,
    ModelRequested,
    ModelResponded,
    RunStarted,
    StageRequested,
    StageResponded,
)
from pilothouse.exceptions import ModelError, ModelOutputError, ReplayDivergence, StoreError
from pilothouse.messages import Message
from pilothouse.models.base import (
    Capabilities,
    Model,
    ModelRequest,
    ModelResponse,
    Staged,
    StageLog,
    StreamItem,
    TextDelta,
    request_digest,
)

# What a replayed model claims it can do when the caller does not say: native tool
# calls, as the built-in adapters do under action_format "auto" (the embedded model
# through its grammar), so an agent replays in the format it was recorded in.
DEFAULT_CAPABILITIES = Capabilities(native_tools=True, json_schema=True, grammar=False)


@dataclass(slots=True)
class Exchange:
    """One answered model call of a recording: the full request and the reply."""

    step: int
    messages: list[Message]
    tools: list[str]
    response: ModelResponse
    # A guided step's stages, in order: what each was sent (its record) and answered.
    stages: list[tuple[StageRequested, StageResponded]] = field(default_factory=list)


class RecordedModelError(ModelError):
    """The recorded run's model call failed here; the replay fails the same way."""


def exchanges_from_events(
    events: Sequence[Event], session: Sequence[Message] = ()
) -> list[Exchange]:
    """The answered model calls of a journal, in order, each with its full request.

    The request is the run's context (`RunStarted.context`: for a session's turn,
    `session` holds the session messages it saw) followed by every `new_messages`
    so far, as a step hook shaped it (`ModelRequested.sent`); steps a hook answered
    itself are not model calls and are left out. A step
    asked twice (a run resumed after a crash before the answer) counts once, with
    the request (and the stages) that were answered.
    """
    messages: list[Message] = []
    sent: list[Message] = []
    tools: list[str] = []
    answered = False
    stages: list[tuple[StageRequested, StageResponded]] = []
    asked: StageRequested | None = None
    out: list[Exchange] = []
    for event in events:
        if isinstance(event, RunStarted):
            messages = event.context(session)
        elif isinstance(event, ModelRequested):
            messages.extend(event.new_messages)
            tools = list(event.tools)
            answered = event.answered  # a hook's own answer: no model call to replay
            plain = event.view is None and event.instructions is None
            sent = messages if plain else event.sent(messages)
            stages, asked = [], None
        elif isinstance(event, StageRequested):
            asked = event
        elif isinstance(event, StageResponded) and asked is not None:
            stages.append((asked, event))
            asked = None
        elif isinstance(event, ModelResponded) and not answered:
            out.append(Exchange(event.step, list(sent), tools, event.response, stages))
    return out


def shorten(value: Any, width: int = 80) -> str:
    """A one-line rendering of a value, cut to `width` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def text_difference(expected: str, got: str, width: int = 60) -> tuple[str, str]:
    """Both texts cut around their first difference, so a long prompt shows where it changed."""
    at = next(
        (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
        min(len(expected), len(got)),
    )
    start = max(0, at - 20)

    def window(text: str) -> str:
        part = text[start : start + width].replace("\n", "\\n")
        return ("…" if start else "") + part + ("…" if start + width < len(text) else "")

    return window(expected), window(got)


def _describe(message: Message) -> str:
    if message.tool_calls:
        calls = ", ".join(f"{c.name}({shorten(c.arguments, 40)})" for c in message.tool_calls)
        return f"{message.role}: {calls}"
    return f"{message.role}: {shorten(message.content, 60)}"


def message_difference(
    expected: Sequence[Message], got: Sequence[Message]
) -> tuple[str, str, str] | None:
    """The first difference between two requests: (what, expected, got), or None if equal."""
    for i, (a, b) in enumerate(zip(expected, got, strict=False)):
        da, db = a.to_dict(), b.to_dict()
        if da == db:
            continue
        if a.role != b.role:
            return f"message {i} differs", _describe(a), _describe(b)
        if a.content != b.content:
            want, have = text_difference(a.content, b.content)
            return f"message {i} ({a.role}) content differs", want, have
        key = next(k for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k))
        return (
            f"message {i} ({a.role}) {key} differs",
            shorten(da.get(key)),
            shorten(db.get(key)),
        )
    if len(expected) == len(got):
        return None
    if len(got) > len(expected):
        extra = got[len(expected)]
        return (
            f"the request has {len(got)} messages, the recording {len(expected)}; "
            f"first extra message {len(expected)}",
            "(none)",
            _describe(extra),
        )
    missing = expected[len(got)]
    return (
        f"the request has {len(got)} messages, the recording {len(expected)}; "
        f"missing message {len(got)}",
        _describe(missing),
        "(none)",
    )


class ReplayModel:
    """A model that answers from a journal and checks each request against it.

    `events` is one run's journal (from a store or `load_journal`). `name` defaults to
    the recorded model's name and `capabilities` to native tool calling; pass the
    original model's capabilities to replay an agent that used a text action format
    by default. `native_tools`: whether the agent offers tools natively, so an empty
    tool list in a request is a difference (None: compare only when tools are offered).
    """

    def __init__(
        self,
        events: Sequence[Event],
        *,
        name: str | None = None,
        capabilities: Capabilities | None = None,
        native_tools: bool | None = None,
        guide: Callable[[Model], Staged] | None = None,
    ) -> None:
        if not events or not isinstance(events[0], RunStarted):
            raise StoreError(
                "a replay needs a whole run's journal, starting with its run_started event"
            )
        started = events[0]
        self.run_id = started.run_id
        self._name = name or started.model
        self.capabilities = capabilities or DEFAULT_CAPABILITIES
        self.native_tools = native_tools
        self.exchanges = exchanges_from_events(events)
        # A recorded model failure after the last answer is reproduced, not reported.
        self._error: ErrorOccurred | None = None
        last = events[-1]
        if isinstance(last, ErrorOccurred) and not any(
            isinstance(e, ModelResponded) and e.step == last.step for e in events
        ):
            self._error = last
        self.answered = 0
        self._halted: ReplayDivergence | None = None
        # The agent's guidance over another inner model: recorded stages are re-run.
        self.guide = guide

    @property
    def name(self) -> str:
        return self._name

    def halt(self, divergence: ReplayDivergence) -> None:
        """Refuse every later request with `divergence` (found elsewhere in the run)."""
        self._halted = divergence

    def _diverged(self, step: int, kind: str, detail: str, expected: str, got: str) -> None:
        raise ReplayDivergence(
            f"{detail}: expected {expected!r}, got {got!r}",
            run_id=self.run_id,
            step=step,
            kind=kind,
            expected=expected,
            got=got,
        )

    def _answer(self, request: ModelRequest) -> ModelResponse:
        exchange = self._exchange(request)
        self.answered += 1
        return dataclasses.replace(exchange.response)

    def _exchange(self, request: ModelRequest) -> Exchange:
        """The recorded exchange the next request must match (checked), not yet consumed."""
        if self._halted is not None:
            raise self._halted
        k = self.answered
        if k >= len(self.exchanges):
            step = self.exchanges[-1].step + 1 if self.exchanges else 1
            if self._error is not None:
                raise RecordedModelError(
                    f"replayed from the recording: {self._error.kind}: {self._error.message}"
                )
            raise ReplayDivergence(
                f"the agent asked the model again (call {k + 1}), but the recording has only "
                f"{k} answered model call(s)",
                run_id=self.run_id,
                step=step,
                kind="recording",
                expected=f"{k} model call(s)",
                got=f"call {k + 1}",
            )
        exchange = self.exchanges[k]
        difference = message_difference(exchange.messages, request.messages)
        if difference is not None:
            self._diverged(exchange.step, "messages", *difference)
        offered = [t.name for t in request.tools]
        if (request.tools or self.native_tools) and offered != exchange.tools:
            self._diverged(
                exchange.step,
                "tools",
                "the tools offered to the model differ",
                ", ".join(exchange.tools) or "(none)",
                ", ".join(offered) or "(none)",
            )
        return exchange

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return self._answer(request)

    async def staged(self, request: ModelRequest, log: StageLog | None = None) -> ModelResponse:
        """A guided step: the guided construction again, its stages served as recorded.

        Without recorded stages (an older journal, or an unguided model) the step is
        answered whole. Tool call ids are the recorded ones (an id is not behaviour).
        """
        exchange = self._exchange(request)
        if not exchange.stages or self.guide is None:
            self.answered += 1
            return dataclasses.replace(exchange.response)
        server = _StageServer(self, exchange)
        response = await self.guide(server).staged(request, log)
        if server.served < len(exchange.stages):
            recorded = exchange.stages[server.served][0]
            self._diverged(
                exchange.step,
                "stage",
                f"the guided step ended after {server.served} stage(s); the recording also "
                f"asked stage #{server.served} ({recorded.stage})",
                recorded.stage,
                "(none)",
            )
        self.answered += 1
        recorded_calls = exchange.response.tool_calls
        if len(recorded_calls) == len(response.tool_calls):
            calls = tuple(
                dataclasses.replace(c, id=r.id)
                for c, r in zip(response.tool_calls, recorded_calls, strict=True)
            )
            response = dataclasses.replace(response, tool_calls=calls)
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        response = self._answer(request)
        if response.text:
            yield TextDelta(response.text)
        yield response

    def render(self, request: ModelRequest) -> str:
        body = {
            "replaying": self.run_id,
            "messages": [m.to_dict() for m in request.messages],
            "tools": [t.to_dict() for t in request.tools],
            "output_schema": request.output_schema,
        }
        return json.dumps(body, indent=2, ensure_ascii=False)

    def __repr__(self) -> str:
        return f"ReplayModel({self.run_id!r}, {len(self.exchanges)} answers)"


class _StageServer:
    """The inner model of a replayed guided step: each stage's recorded reply, in order.

    A stage whose request does not hash to the recorded digest diverges (the journal
    subscriber of `pilothouse.runtime.replay` has usually named the field already);
    a stage the recording does not have diverges too.
    """

    capabilities = Capabilities(json_schema=True, grammar=True, streaming=False, guided=True)

    def __init__(self, replay: ReplayModel, exchange: Exchange) -> None:
        self.replay = replay
        self.exchange = exchange
        self.served = 0

    @property
    def name(self) -> str:
        return self.replay.name

    async def generate(self, request: ModelRequest) -> ModelResponse:
        replay, exchange, k = self.replay, self.exchange, self.served
        if replay._halted is not None:
            raise replay._halted
        if k >= len(exchange.stages):
            replay._diverged(
                exchange.step,
                "stage",
                f"the guided step asked stage #{k}; the recording has {len(exchange.stages)}",
                f"{len(exchange.stages)} stage(s)",
                f"stage #{k}",
            )
        asked, answered = exchange.stages[k]
        digest = request_digest(request)
        if asked.digest and digest != asked.digest:
            replay._diverged(
                exchange.step,
                "stage",
                f"stage #{k} ({asked.stage}) was sent a different request (digest)",
                asked.digest,
                digest,
            )
        self.served += 1
        response = dataclasses.replace(answered.response)
        if answered.error is not None:  # the recorded reply was cut off: fail the same way
            error = ModelOutputError(f"{self.name}: {answered.error}", body=response.text)
            error.reason = answered.error  # type: ignore[attr-defined]
            error.usage = response.usage  # type: ignore[attr-defined]
            raise error
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        yield await self.generate(request)

    def render(self, request: ModelRequest) -> str:
        return self.replay.render(request)
