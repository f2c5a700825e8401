"""Replay: run an agent again against its recorded journal and report the first divergence.

A journal records everything a run saw and did, so it is also a cassette: `replay`
runs the agent's current definition (instructions, tools, policy, output type,
budget) on the recorded input, in a `MemoryStore`, with

- the model answered from the journal by a `ReplayModel`, which checks each request
  (messages, tools offered) against the recorded one;
- every tool call served its recorded `tool_result` instead of running (nothing in
  the world is touched), or, with ``live_tools=True``, read-only tools run for real
  and their results are compared (side-effecting tools are always served);
- the policy deciding every call again, compared per call with the recorded decision;
- approvals (a paused run) given from the recorded `approval_given` decisions, and
  in-process approvers answered with the recorded decisions;
- the final output, or the way the run stopped, compared with the recorded one.

The first difference becomes a `ReplayDivergence` in the `ReplayReport` (step, kind,
expected and got): a changed prompt shows up at the step it changes, a tool that now
answers differently at its call, a policy change at the decision. After a divergence
the run stops at its next model or tool call: what follows would compare nothing.

`replay_run` takes the agent as the run spec it builds around the recorded model;
`pilothouse.testing.replay(agent, recording)` is the form that takes an `Agent`.
`load_journal` and `export_journal` read and write the cassette form, JSON Lines of
`Event.to_dict()` (the same lines `pilothouse trace show --json` prints).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pilothouse.events import (
    ApprovalGiven,
    ApprovalRequested,
    ErrorOccurred,
    Event,
    FinalOutput,
    HookModelCalled,
    ModelResponded,
    Outcome,
    OutputValidated,
    ParseFailed,
    RunStarted,
    StageRequested,
    Stopped,
    ToolCalled,
    ToolReturned,
    event_from_dict,
)
from pilothouse.exceptions import (
    ConfigurationError,
    PilothouseError,
    ReplayDivergence,
    RunNotFoundError,
    StoreError,
    UnknownModelError,
)
from pilothouse.messages import ToolCall, ToolResult
from pilothouse.models.base import Capabilities, Model, ModelResponse, Staged, ToolSpec
from pilothouse.models.replay import (
    DEFAULT_CAPABILITIES,
    RecordedModelError,
    ReplayModel,
    shorten,
    text_difference,
)
from pilothouse.policy.decision import Decision
from pilothouse.policy.engine import Approver, Principal, RunContext
from pilothouse.runtime.drive import resume_run, start_run
from pilothouse.runtime.journal import MemoryStore, Store, open_store
from pilothouse.runtime.loop import HookModelJournal, RunSpec
from pilothouse.runtime.step import PrepareStep, StepContext, StepOptions, call_maybe_async
from pilothouse.tools.tool import Effect, Interrupt, Tool, ToolContext

_ENDS = (FinalOutput, Stopped, ErrorOccurred)


# --------------------------------------------------------------------------- the cassette


def load_journal(path: str | os.PathLike[str]) -> list[Event]:
    """Read one run's journal from a JSON Lines file (`export_journal`'s form).

    Raises `StoreError` naming the file and line for anything that is not a whole,
    ordered journal: unreadable JSON (a cut-off last line), an unknown event, events
    of two runs, a gap in the sequence numbers, a file that does not begin with
    `run_started`, or no events at all.
    """
    where = os.fspath(path)
    try:
        text = Path(where).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read journal file {where!r}: {exc}") from exc
    events: list[Event] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"{where}:{n}: not valid JSON ({exc.msg} at column {exc.colno}); the "
                "file is truncated or corrupted"
            ) from None
        if not isinstance(data, dict):
            raise StoreError(f"{where}:{n}: expected a JSON object (one event per line)")
        try:
            event = event_from_dict(data)
        except KeyError as exc:
            raise StoreError(f"{where}:{n}: not a journal event (missing {exc})") from None
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{where}:{n}: not a journal event ({exc})") from None
        if not events and not isinstance(event, RunStarted):
            raise StoreError(
                f"{where}:{n}: the first event is {event.type!r}, not 'run_started'; the "
                "file does not hold a whole run (export it with `pilothouse trace export`)"
            )
        if events and event.run_id != events[0].run_id:
            raise StoreError(
                f"{where}:{n}: event of run {event.run_id!r} in the journal of run "
                f"{events[0].run_id!r}; a cassette holds one run"
            )
        if event.seq != len(events):
            raise StoreError(
                f"{where}:{n}: event seq {event.seq} where {len(events)} was expected; "
                "events are missing or out of order (the file is truncated or corrupted)"
            )
        events.append(event)
    if not events:
        raise StoreError(
            f"{where}: no events; write one with `pilothouse trace export RUN_ID -o {where}`"
        )
    return events


def export_journal(
    store: Store | str | os.PathLike[str] | None, run_id: str, path: str | os.PathLike[str]
) -> int:
    """Write run `run_id`'s journal from `store` to `path` as JSON Lines; return the count.

    The file is written whole or not at all (a temporary file renamed into place), so
    an interrupted export never leaves a truncated cassette behind. A session's turn
    is exported self-contained: the session messages it saw become its `history`
    (a cassette must replay without the store it was recorded in).
    """
    opened = open_store(store)
    events = opened.events(run_id)
    started = events[0] if events else None
    if isinstance(started, RunStarted) and started.session_id is not None:
        seen = opened.session_messages(started.session_id, limit=started.session_upto)
        events[0] = dataclasses.replace(
            started, history=[m.message for m in seen], session_id=None, session_upto=0
        )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(e.to_dict(), ensure_ascii=False, default=str) for e in events]
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StoreError(f"cannot write journal file {os.fspath(path)!r}: {exc}") from exc
    return len(events)


# --------------------------------------------------------------------------- the recording


@dataclass(slots=True)
class _Recording:
    """A recorded journal indexed the way the replay looks things up."""

    started: RunStarted
    calls: dict[tuple[int, int], ToolCalled] = field(default_factory=dict)
    results: dict[tuple[int, int], ToolResult] = field(default_factory=dict)
    validated: dict[int, OutputValidated] = field(default_factory=dict)
    parse_failed: dict[int, ParseFailed] = field(default_factory=dict)
    requested: dict[str, ApprovalRequested] = field(default_factory=dict)
    given: dict[str, ApprovalGiven] = field(default_factory=dict)
    # A guided step's stages by (step, index); a step asked again (resume) keeps the last.
    stages: dict[tuple[int, int], StageRequested] = field(default_factory=dict)
    # what step hooks got from models (a compaction summary), by key: served, not asked
    hook_calls: dict[str, tuple[str, ModelResponse]] = field(default_factory=dict)
    end: Event | None = None
    steps: int = 0

    @classmethod
    def of(cls, events: Sequence[Event]) -> _Recording:
        if not events or not isinstance(events[0], RunStarted):
            raise StoreError(
                "a replay needs a whole run's journal, starting with its run_started event"
            )
        rec = cls(events[0])
        for e in events:
            if e.run_id != rec.started.run_id:
                raise StoreError(
                    f"the journal of run {rec.started.run_id!r} holds an event of run "
                    f"{e.run_id!r}; a replay needs one run's events"
                )
            if isinstance(e, ToolCalled):
                rec.calls[(e.step, e.index)] = e
            elif isinstance(e, ToolReturned):
                rec.results[(e.step, e.index)] = e.result
            elif isinstance(e, OutputValidated):
                rec.validated[e.step] = e
            elif isinstance(e, ParseFailed):
                rec.parse_failed[e.step] = e
            elif isinstance(e, ApprovalRequested):
                rec.requested[e.key] = e
            elif isinstance(e, ApprovalGiven):
                rec.given[e.key] = e
            elif isinstance(e, ModelResponded):
                rec.steps = max(rec.steps, e.step)
            elif isinstance(e, StageRequested):
                rec.stages[(e.step, e.index)] = e
            elif isinstance(e, HookModelCalled):
                rec.hook_calls[e.key] = (e.purpose, e.response)
            elif isinstance(e, _ENDS):
                rec.end = e
        return rec

    @property
    def run_id(self) -> str:
        return self.started.run_id

    def ending(self) -> str:
        """How the recorded run ended, in words."""
        end = self.end
        if isinstance(end, FinalOutput):
            return f"final output at step {end.step}"
        if isinstance(end, Stopped):
            return f"{end.reason} stop at step {end.step}"
        if isinstance(end, ErrorOccurred):
            return f"{end.kind} at step {end.step}"
        if any(key not in self.given for key in self.requested):
            return "a pause for a person"
        return (
            f"no outcome after step {self.steps} (the run was interrupted, or the file is "
            "truncated)"
        )

    def decisions(self, keys: Sequence[str]) -> dict[str, bool | str]:
        """The recorded decisions for waiting calls, in the form `Agent.resume` takes."""
        out: dict[str, bool | str] = {}
        for key in keys:
            given = self.given.get(key)
            if given is None:
                continue
            request = self.requested.get(key)
            question = request is not None and request.kind == "question"
            out[key] = given.answer if question and given.answer is not None else given.approved
        return out


def _effect(decision: Decision | None) -> str:
    return "not checked" if decision is None else decision.effect


class _Tracker:
    """A journal subscriber comparing each replayed event with the recorded one.

    Subscribers cannot stop a run (a failing one is ignored), so the first divergence
    is kept here and handed to the `ReplayModel` and the served tools, which raise it
    at the next model or tool call.
    """

    def __init__(self, rec: _Recording, model: ReplayModel) -> None:
        self.rec = rec
        self.model = model
        self.first: ReplayDivergence | None = None
        self.step = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, ModelResponded):
            self.step = event.step
        if self.first is None:
            found = self._check(event)
            if found is not None:
                self.first = found
                self.model.halt(found)

    def diverge(
        self, step: int, kind: str, detail: str, expected: Any, got: Any
    ) -> ReplayDivergence:
        want, have = shorten(expected), shorten(got)
        return ReplayDivergence(
            f"{detail}: expected {want!r}, got {have!r}",
            run_id=self.rec.run_id,
            step=step,
            kind=kind,
            expected=want,
            got=have,
        )

    def _check(self, event: Event) -> ReplayDivergence | None:
        rec, step = self.rec, event.step
        if isinstance(event, ToolCalled):
            return self._check_call(event)
        if isinstance(event, ToolReturned):
            return self._check_result(event)
        if isinstance(event, StageRequested):
            return self._check_stage(event)
        if isinstance(event, ApprovalRequested):
            recorded = rec.requested.get(event.key)
            if recorded is None:
                call = rec.calls.get((step, event.index))
                how = "ran without one" if call is not None else "has no such call"
                return self.diverge(
                    step,
                    "approval",
                    f"call #{event.index} ({event.call.name}) now waits for a person "
                    f"({event.kind}); the recording {how}",
                    "no pause",
                    f"{event.kind}: {event.reason}",
                )
            if recorded.kind != event.kind:
                return self.diverge(
                    step,
                    "approval",
                    f"call #{event.index} ({event.call.name}) waits for a different answer",
                    recorded.kind,
                    event.kind,
                )
            return None
        if isinstance(event, OutputValidated):
            recorded_check = rec.validated.get(step)
            if recorded_check is None:
                return self.diverge(
                    step,
                    "output",
                    "the final answer was checked here; the recording did not check one at "
                    f"this step (it has {rec.ending()})",
                    "no check",
                    "valid" if event.ok else f"invalid: {event.error}",
                )
            if recorded_check.ok != event.ok:
                return self.diverge(
                    step,
                    "output",
                    "the final answer's validation differs",
                    "valid" if recorded_check.ok else f"invalid: {recorded_check.error}",
                    "valid" if event.ok else f"invalid: {event.error}",
                )
            return None
        if isinstance(event, ParseFailed) and step not in rec.parse_failed:
            return self.diverge(
                step,
                "output",
                f"the reply could not be read as a {event.format} action; the recording read it",
                "a readable reply",
                event.reason,
            )
        if isinstance(event, FinalOutput):
            end = rec.end
            if not isinstance(end, FinalOutput) or end.step != step:
                return self.diverge(
                    step, "outcome", "the run ended differently", rec.ending(), "final output"
                )
            if end.output != event.output:
                return self.diverge(
                    step, "final", "the final output differs", end.output, event.output
                )
            return None
        if isinstance(event, Stopped):  # a recorded `budget_stop` reads as one too
            end = rec.end
            if not (isinstance(end, Stopped) and end.reason == event.reason and end.step == step):
                return self.diverge(
                    step,
                    "outcome",
                    "the run ended differently",
                    rec.ending(),
                    f"{event.reason} stop: {event.message}",
                )
        return None

    def _check_call(self, event: ToolCalled) -> ReplayDivergence | None:
        step, index, call = event.step, event.index, event.call
        recorded = self.rec.calls.get((step, index))
        if recorded is None:
            return self.diverge(
                step,
                "tool_call",
                f"call #{index} is not in the recording",
                "(none)",
                f"{call.name}({shorten(call.arguments, 60)})",
            )
        was = recorded.call
        if was.name != call.name or was.arguments != call.arguments:
            return self.diverge(
                step,
                "tool_call",
                f"call #{index} differs",
                f"{was.name}({shorten(was.arguments, 60)})",
                f"{call.name}({shorten(call.arguments, 60)})",
            )
        if recorded.effect != event.effect:
            return self.diverge(
                step,
                "tool_call",
                f"the effect of tool {call.name!r} (call #{index}) differs",
                recorded.effect,
                event.effect,
            )
        before, now = _effect(recorded.decision), _effect(event.decision)
        if before != now:
            why = (
                f" (rule {event.decision.rule}: {event.decision.reason})"
                if event.decision
                else " (the call no longer reaches the policy: unknown tool or invalid arguments)"
            )
            return self.diverge(
                step,
                "decision",
                f"the policy decision on call #{index} {call.name}({shorten(call.arguments, 40)})"
                f" differs{why}",
                before,
                now,
            )
        return None

    def _check_stage(self, event: StageRequested) -> ReplayDivergence | None:
        """A guided stage against the recorded one: name, tools, added text, schemas."""
        step, index = event.step, event.index
        recorded = self.rec.stages.get((step, index))
        where = f"guided stage #{index} ({event.stage})"
        if recorded is None:
            return self.diverge(
                step, "stage", f"{where} is not in the recording", "(none)", event.stage
            )
        if recorded.stage != event.stage:
            return self.diverge(
                step, "stage", f"guided stage #{index} differs", recorded.stage, event.stage
            )
        if recorded.tools != event.tools:
            return self.diverge(
                step, "stage", f"{where} shows other tools", recorded.tools, event.tools
            )
        if recorded.added != event.added:
            want, have = text_difference(recorded.added, event.added)
            return self.diverge(step, "stage", f"{where}: its prompt text differs", want, have)
        if recorded.output_schema != event.output_schema:
            return self.diverge(
                step,
                "stage",
                f"{where}: the schema its reply is held to differs",
                recorded.output_schema,
                event.output_schema,
            )
        if recorded.schemas != event.schemas:
            return self.diverge(
                step,
                "stage",
                f"{where}: narrowed parameters differ",
                recorded.schemas,
                event.schemas,
            )
        if recorded.digest and recorded.digest != event.digest:
            return self.diverge(
                step,
                "stage",
                f"{where}: the request sent differs (the conversation as text, or settings)",
                recorded.digest,
                event.digest,
            )
        return None

    def _check_result(self, event: ToolReturned) -> ReplayDivergence | None:
        step, index, result = event.step, event.index, event.result
        recorded = self.rec.results.get((step, index))
        if recorded is None:
            return self.diverge(
                step,
                "tool_result",
                f"call #{index} ({result.name}) returned a result; the recording has none",
                "(no result)",
                result.content,
            )
        if recorded.is_error != result.is_error:
            return self.diverge(
                step,
                "tool_result",
                f"call #{index} ({result.name}) "
                + (
                    "failed; it succeeded in the recording"
                    if result.is_error
                    else "succeeded; it failed in the recording"
                ),
                recorded.content,
                result.content,
            )
        if recorded.content != result.content:
            want, have = text_difference(recorded.content, result.content)
            return self.diverge(
                step,
                "tool_result",
                f"call #{index} ({result.name}) returned something else",
                want,
                have,
            )
        return None


# --------------------------------------------------------------------------- served tools


class _ServedTool(Tool):
    """One of the agent's tools, answered from the recording instead of run.

    Validation (`prepare`) and the tool's description stay the original's, so a
    changed schema or effect still shows; only execution is replaced. With `live`
    (read-only tools under ``live_tools=True``) the original runs and the tracker
    compares its result with the recorded one.
    """

    __slots__ = ("_live", "_original", "_tracker")

    def __init__(self, original: Tool, tracker: _Tracker, live: bool) -> None:
        for name in Tool.__slots__:
            setattr(self, name, getattr(original, name))
        self._original = original
        self._tracker = tracker
        self._live = live

    def spec(self) -> ToolSpec:
        return self._original.spec()

    def prepare(self, call: ToolCall) -> dict[str, Any] | ToolResult:
        return self._original.prepare(call)

    async def invoke(
        self, call: ToolCall, kwargs: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        tracker = self._tracker
        if tracker.first is not None:
            raise tracker.first  # never run anything after a divergence
        if self._live:
            return await self._original.invoke(call, kwargs, context)
        key = (context.step, context.index)
        result = tracker.rec.results.get(key)
        if result is None:
            raise tracker.diverge(
                context.step,
                "tool_result",
                f"call #{context.index} ({call.name}) has no recorded result to serve (it "
                "was in doubt, or the recording ends here); replay read-only tools with "
                "live_tools=True",
                "(no result)",
                f"{call.name}({shorten(call.arguments, 60)})",
            )
        return ToolResult(call.id, call.name, result.content, result.is_error)


class _RecordedTool(Tool):
    """A stand-in for a recorded tool whose code is not at hand (`recorded_tools`).

    It takes any arguments (the recorded ones were valid for the real tool), has the
    recorded effect, and is only ever served from the recording, never run.
    """

    __slots__ = ()

    def prepare(self, call: ToolCall) -> dict[str, Any] | ToolResult:
        if call.parse_error is not None:
            return super().prepare(call)
        return dict(call.arguments)


def _unavailable() -> str:
    """Served from the recording."""
    raise ConfigurationError("a recorded tool stand-in cannot run; pass the real tool")


def recorded_tools(events: Sequence[Event]) -> list[Tool]:
    """Stand-ins for the tools a recorded run offered, built from its journal alone.

    For replaying without the tools' code (`pilothouse replay RUN_ID` without
    ``--tools``): each has the recorded name and effect and accepts any arguments, so
    the replay checks the prompt, the policy and the outcome, but not argument
    validation nor the tools' results. A tool whose calls paused for approval or a
    question is declared so.
    """
    rec = _Recording.of(events)
    effects: dict[str, str] = {}
    interrupts: dict[str, Interrupt] = {}
    for event in rec.calls.values():
        effects.setdefault(event.call.name, event.effect)
        d = event.decision
        if (
            d is not None
            and d.effect == "ask"
            and d.reason == f"{event.call.name} requires a person's approval"
        ):
            interrupts[event.call.name] = "approval"
    for request in rec.requested.values():
        if request.kind == "question":
            interrupts[request.call.name] = "question"
    tools: list[Tool] = []
    for name in rec.started.tools:
        recorded = effects.get(name)
        effect: Effect = (
            "side_effect"
            if recorded == "side_effect"
            else "irreversible"
            if recorded == "irreversible"
            else "read_only"
        )
        tools.append(
            _RecordedTool(
                _unavailable,
                name=name,
                description="",
                effect=effect,
                interrupt=interrupts.get(name),
            )
        )
    return tools


# --------------------------------------------------------------------------- replay


@dataclass(slots=True)
class ReplayReport:
    """What a replay found. `ok` when the run matched its recording to the end.

    `steps`: model calls answered from the recording (the steps compared);
    `recorded_steps`: the recording's; `divergence`: the first difference, if any;
    `outcome`: how the replayed run ended; `events`: what it journaled;
    `definition_changed`: the agent's definition hash differs from the recorded one
    (informational: a change that alters nothing the run did is not a divergence).
    """

    run_id: str
    steps: int
    recorded_steps: int
    divergence: ReplayDivergence | None = None
    # the replayed run's outcome; "diverged", or "error" when it failed
    outcome: Outcome | Literal["diverged", "error", ""] = ""
    events: list[Event] = field(default_factory=list)
    definition_changed: bool = False

    @property
    def ok(self) -> bool:
        return self.divergence is None

    def summary(self) -> str:
        """One line: ``replayed N steps: identical`` or where and how it diverged."""
        d = self.divergence
        if d is None:
            return f"replayed {self.steps} steps: identical"
        return f"run {self.run_id} diverged at step {d.step} ({d.kind}): {d.detail}"

    def __str__(self) -> str:
        return self.summary()


def capabilities_of(model: Model | str | None, *, fallback: bool = False) -> Capabilities:
    """What a model can do, without loading it or connecting to it.

    Only the agent's choice of action format depends on it, and the built-in
    adapters' flags are class attributes, so a replay needs neither the model file
    nor an API key. Another registered prefix is resolved; with `fallback`, an
    unknown model string (a recorded name such as ``scripted``) gets native tool
    calling, as every built-in adapter has under ``action_format="auto"``.
    """
    if model is not None and not isinstance(model, str):
        return model.capabilities
    text = model or os.environ.get("PILOTHOUSE_MODEL") or "local"
    prefix = text.partition(":")[0]
    if prefix == "local":
        from pilothouse.models.local import LocalModel

        return LocalModel.capabilities
    if prefix == "openai":
        from pilothouse.models.openai import OpenAIModel

        return OpenAIModel.capabilities
    from pilothouse.models.registry import resolve_model

    try:
        return resolve_model(text).capabilities
    except UnknownModelError:
        if fallback:
            return DEFAULT_CAPABILITIES
        raise


def replay_guide(model: Model | str | None) -> Callable[[Model], Staged] | None:
    """The agent's guidance over another inner model (the replay's stage server), if any.

    A `GuidedModel` keeps its own settings; a model that asks for guidance (the
    embedded one, also as an unresolved model string) gets the guidance it asks for.
    """
    caps = capabilities_of(model, fallback=True)
    is_guided = hasattr(model, "over") and isinstance(model, Staged)
    if not caps.guided and not is_guided:
        return None
    from pilothouse.guided import GuidedModel

    if isinstance(model, GuidedModel):
        return model.over
    guidance = getattr(model, "guidance", None)
    return lambda inner: GuidedModel.of(inner, guidance)


def _recorded_approver(tracker: _Tracker) -> Approver:
    """An in-process approver that answers as the recording's decision did."""

    def approve(call: ToolCall, decision: Decision, ctx: RunContext) -> bool:
        for (step, _), event in tracker.rec.calls.items():
            if step == tracker.step and event.call.id == call.id and event.call.name == call.name:
                return event.decision is not None and event.decision.allowed
        return False  # the call is not in the recording: the tracker reports it

    return approve


def _served_spec(spec: RunSpec[Any], tracker: _Tracker, live_tools: bool) -> RunSpec[Any]:
    """`spec` with its tools served from the recording and its approvers answering as the
    recording's decisions did (the definition hash is the agent's: served tools keep
    their tools' schemas and effects)."""
    served = copy.copy(spec)
    served.tools = {
        name: _ServedTool(
            t,
            tracker,
            live_tools and t.effect == "read_only" and not isinstance(t, _RecordedTool),
        )
        for name, t in spec.tools.items()
    }
    if spec.prepare_step is not None and tracker.rec.hook_calls:
        served.prepare_step = _served_hook(spec.prepare_step, tracker.rec.hook_calls)
    approve = _recorded_approver(tracker)
    if spec.approver is not None:
        served.approver = approve
    if spec.policy is not None and spec.policy.approvers:
        policy = copy.copy(spec.policy)
        policy.approvers = {name: approve for name in spec.policy.approvers}
        served.policy = policy
    if served.policy is not None:
        # what the recorded checks read from aggregate sources (other runs' calls, in a
        # store the replay does not have): served again, so the decisions are the same
        policy = served.policy if served.policy is not spec.policy else copy.copy(spec.policy)
        policy.replayed = RunContext.recorded_answers(tracker.rec.calls.values())
        served.policy = policy
    return served


def _served_hook(hook: PrepareStep, recorded: dict[str, tuple[str, ModelResponse]]) -> PrepareStep:
    """The agent's step hook, its model calls served from the recording (a summary the
    recorded run got is the one the replay gets; no model is asked)."""

    async def served(ctx: StepContext[Any]) -> StepOptions | None:
        if isinstance(ctx.models, HookModelJournal):
            ctx.models.preload(recorded)
        options: StepOptions | None = await call_maybe_async(hook, ctx)
        return options

    return served


async def replay_run(
    spec_for: Callable[[Model], RunSpec[Any]],
    recording: Sequence[Event] | str | os.PathLike[str],
    *,
    capabilities: Capabilities = DEFAULT_CAPABILITIES,
    guide: Callable[[Model], Staged] | None = None,
    live_tools: bool = False,
    principal: Principal | None = None,
    deps: Any = None,
) -> ReplayReport:
    """Replay a recorded run with the definition `spec_for(model)` gives for the
    recording's model, and compare (see the module).

    `spec_for` builds the run spec of the agent under test around the `ReplayModel`
    (`Agent.run_spec(model)`), whose `capabilities` are those of the agent's own model
    (they decide the action format). `guide` (`replay_guide` of the agent's model) wraps
    the stage server in the agent's guided construction, so a guided step's stages
    run for real over their recorded replies. The run is driven like any other
    (`drive.start_run`, then `drive.resume_run` with the recorded approvals) in a
    `MemoryStore` under the recorded run id. `pilothouse.testing.replay` is the form
    that takes an `Agent`.
    """
    events = (
        load_journal(recording) if isinstance(recording, (str, os.PathLike)) else list(recording)
    )
    rec = _Recording.of(events)
    started = rec.started
    if started.session_id is not None:
        raise ConfigurationError(
            f"run {rec.run_id} is a turn of session {started.session_id!r}, whose messages "
            "are in the store, not in these events: replay its export (export_journal or "
            "`pilothouse trace export`), which carries them"
        )
    if principal is None and started.principal is not None:
        principal = Principal.from_dict(started.principal)
    model = ReplayModel(events, capabilities=capabilities, guide=guide)
    tracker = _Tracker(rec, model)
    spec = _served_spec(spec_for(model), tracker, live_tools)
    model.native_tools = spec.action_format is None
    store = MemoryStore()
    report = ReplayReport(
        rec.run_id,
        0,
        rec.steps,
        definition_changed=spec.definition_hash != started.definition_hash,
    )
    divergence: ReplayDivergence | None = None
    try:
        result = await start_run(
            spec,
            store,
            started.input,
            rec.run_id,
            subscribers=[tracker],
            principal=principal,
            history=started.history,
            deps=deps,
        )
        while result.outcome == "paused" and tracker.first is None:
            decisions = rec.decisions([p.key for p in result.pending])
            if not decisions:
                break
            result = await resume_run(
                spec,
                store,
                rec.run_id,
                approvals=decisions,
                subscribers=[tracker],
                principal=principal,
                deps=deps,
            )
        report.outcome = result.outcome
        if result.outcome == "paused" and tracker.first is None:
            waiting = sorted(p.key for p in result.pending)
            undecided = sorted(k for k in rec.requested if k not in rec.given)
            if rec.end is not None or waiting != undecided:
                divergence = tracker.diverge(
                    result.steps,
                    "outcome",
                    "the run paused for a person",
                    rec.ending() if rec.end is not None else ", ".join(undecided),
                    ", ".join(waiting),
                )
    except ReplayDivergence as exc:
        report.outcome = "diverged"
        divergence = exc
    except RecordedModelError:
        report.outcome = "error"  # the recording's model failure, reproduced: not a divergence
    except PilothouseError as exc:
        report.outcome = "error"
        divergence = tracker.diverge(
            tracker.step,
            "error",
            "the replay failed",
            rec.ending(),
            f"{type(exc).__name__}: {exc}",
        )
    report.divergence = tracker.first or divergence
    report.steps = model.answered
    try:
        report.events = store.events(rec.run_id)
    except RunNotFoundError:  # refused before its first write (deps missing, say)
        report.events = []
    return report
