"""Resume: rebuild a stopped run's state from its journal, for the one loop to continue.

The journal is the checkpoint (see docs/ARCHITECTURE.md). The request of the last
step is the concatenation of every `model_request`'s `new_messages`; usage, the
loop detector's counts, the retries left and the policy's `RunContext` are
recounted from the events. Where the journal ends decides where the run continues:

- after a `model_request` with no answer: that model call is made again (same
  step number, no new messages);
- after a `model_response`: it is acted on without asking the model again; tool
  calls with a recorded `tool_result` reuse it, calls with a `tool_call` but no
  result are in doubt (`loop._replayed` applies the tool's `on_doubt`);
- after a failed parse or output check: the corrective message is rebuilt and the
  next model call made;
- after `approval_requested` (a paused run): the step's calls wait until every
  request has a decision (`apply_approvals` journals them as `approval_given`);
  none of them ran before the pause, so none is in doubt until all were decided;
- after a side-effecting `tool_call` with no result whose tool says "ask" (the run is
  `in_doubt`): a person settles it (`apply_settlements` journals `doubt_settled` and
  the `tool_result` the model reads), and the call is never run again.

A finished run (`final`, `run_stopped` or an older journal's `budget_stop`, `error`)
is not resumed: its journal already says how it ended. That includes a model error:
start a new run instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pilothouse.events import (
    ApprovalGiven,
    ApprovalRequested,
    ChildFinished,
    DoubtSettled,
    Event,
    HookModelCalled,
    ModelRequested,
    ModelResponded,
    OutputValidated,
    ParseFailed,
    RunStarted,
    Stopped,
    ToolCalled,
    ToolReturned,
)
from pilothouse.exceptions import (
    ApprovalError,
    ConfigurationError,
    RunFinishedError,
    StoreError,
)
from pilothouse.messages import Message, ToolResult, Usage
from pilothouse.models.base import ModelResponse
from pilothouse.policy.engine import Principal, RunContext
from pilothouse.runtime.budget import LoopDetector
from pilothouse.runtime.loop import RunSpec, RunState, ToolReplay, corrective_message
from pilothouse.runtime.rows import encode_json

if TYPE_CHECKING:
    from pilothouse.runtime.journal import Store

_FINISHED = {"final", Stopped.type, "error"}  # an old `budget_stop` is read as a Stopped


def _as_stored(value: Any) -> Any:
    """`value` as a journal gives it back: JSON, with what JSON cannot hold as text."""
    return json.loads(encode_json(value))


def _principal_of(run_id: str, started: RunStarted, given: Principal | None) -> Principal | None:
    """The principal the run was started for; `given` must be that one when both exist.

    Resuming someone's run as someone else would let the policy judge the rest of
    the run (ownership rules, roles) for the wrong person, so it is refused.
    """
    if started.principal is None:
        return given
    recorded = Principal.from_dict(started.principal)
    if given is not None and _as_stored(given.to_dict()) != _as_stored(started.principal):
        raise ConfigurationError(
            f"run {run_id!r} acts for {recorded.to_dict()}, not {given.to_dict()}: a run "
            "is resumed for the principal it was started for (leave principal out to use it)"
        )
    return recorded


def state_from_events(
    spec: RunSpec[Any],
    run_id: str,
    events: Sequence[Event],
    created: float,
    principal: Principal | None = None,
    session: Sequence[Message] = (),
) -> RunState:
    """The state to continue run `run_id` from; raises if it cannot or must not resume.

    `session`: for a turn of a session, the session's messages the run saw (its
    `session_upto` first ones), which its journal references instead of copying.
    """
    if not events or not isinstance(events[0], RunStarted):
        raise StoreError(
            f"run {run_id!r}: the journal does not begin with run_started (step 0); "
            "it is truncated or corrupted and cannot be resumed"
        )
    for position, event in enumerate(events):
        if event.seq != position:
            raise StoreError(
                f"run {run_id!r}: event at step {event.step} has seq {event.seq}, expected "
                f"{position}; the journal has a gap and cannot be resumed"
            )
        if event.type in _FINISHED:
            raise RunFinishedError(
                f"run {run_id!r} already ended ({event.type} at step {event.step}); a "
                "finished run cannot be resumed: start a new run",
                run_id=run_id,
                outcome=event.outcome if isinstance(event, Stopped) else event.type,
            )
    started = events[0]
    if started.definition_hash != spec.definition_hash:
        raise ConfigurationError(
            f"run {run_id!r} was recorded by a different agent definition (hash "
            f"{started.definition_hash}, this agent's is {spec.definition_hash}): the model, "
            "instructions, tools or output type changed. Resume it with the agent that "
            "started it."
        )
    user_input = started.input
    messages: list[Message] = started.context(session)
    usage = Usage()
    child_steps = 0
    offered: list[str] | None = None
    loops = LoopDetector(spec.budget.max_repeats)
    retries_left, parse_retries_left = spec.output_retries, spec.parse_retries
    step = 0
    response: ModelResponse | None = None
    replay = ToolReplay()
    after: Event | None = None  # the last parse_failed / output_validated of the step
    hook_calls: dict[str, tuple[str, ModelResponse]] = {}
    for event in events[1:]:
        if isinstance(event, ModelRequested):
            messages.extend(event.new_messages)
            step, response, replay, after = event.step, None, ToolReplay(), None
            offered = None if event.tools == list(spec.tools) else list(event.tools)
        elif isinstance(event, ModelResponded):
            usage += event.response.usage
            response = event.response
        elif isinstance(event, ToolCalled):
            loops.see(event.call.name, event.call.arguments)
            replay.called[event.index] = event
        elif isinstance(event, ToolReturned):
            replay.results[event.index] = event.result
        elif isinstance(event, ApprovalRequested):
            replay.requested[event.index] = event
        elif isinstance(event, ApprovalGiven):
            replay.given[event.index] = event
        elif isinstance(event, HookModelCalled):  # a hook's model call: served on resume
            usage += event.response.usage
            hook_calls[event.key] = (event.purpose, event.response)
        elif isinstance(event, ChildFinished):
            usage += event.usage
            child_steps += event.steps
        elif isinstance(event, ParseFailed):
            parse_retries_left -= 1
            after = event
        elif isinstance(event, OutputValidated):
            if not event.ok:
                retries_left -= 1
            after = event
    state = RunState(
        user_input,
        messages,
        RunContext.from_events(events, _principal_of(run_id, events[0], principal)),
        loops,
        created,
        len(messages),
        usage,
        step,
        retries_left,
        parse_retries_left,
        resumed=True,
        child_steps=child_steps,
        offered=offered,
        session_id=started.session_id if started.session_writes else None,
        hook_calls=hook_calls,
    )
    replay.released = bool(replay.requested) and replay.requested.keys() <= replay.given.keys()
    if step == 0:  # stopped before the first model call: start the conversation
        context = session if started.session_id is not None else started.history
        state.messages = spec.initial_messages(user_input, context)
        state.reported = len(state.messages) if started.version >= 2 else 0
    elif response is None:  # the last model call was not answered: make it again
        state.step = step - 1
    elif isinstance(after, ParseFailed):
        messages.append(Message.assistant(response.text))
        messages.append(Message.user(corrective_message(spec.prompts, after.reason, after.format)))
    elif isinstance(after, OutputValidated) and not after.ok:
        messages.append(Message.assistant(response.text))
        messages.append(Message.user(after.error or ""))
    else:  # act on the recorded reply; its recorded tool events are replayed
        state.response, state.replay = response, replay
    return state


Approval = bool | str


def apply_approvals(
    state: RunState, run_id: str, approvals: Mapping[str, Approval], by: str = ""
) -> list[ApprovalGiven]:
    """Check decisions for a paused run's waiting calls; return the events recording them.

    Keys are the pending calls' idempotency keys. An approval takes True or False; a
    question takes the answer text (or False: no answer). Raises `ApprovalError`, naming
    the run and step, for a key that is not waiting or a value of the wrong kind; the
    journal is not touched then.
    """
    replay = state.replay
    waiting = (
        {r.key: r for i, r in replay.requested.items() if i not in replay.given}
        if replay is not None
        else {}
    )
    if not waiting:
        raise ApprovalError(
            f"run {run_id!r} is not waiting for any approval (it stands at step "
            f"{state.step}); approvals were given for {sorted(approvals)}",
            run_id=run_id,
            step=state.step,
        )
    given: list[ApprovalGiven] = []
    for key, value in approvals.items():
        request = waiting.get(key)
        if request is None:
            raise ApprovalError(
                f"run {run_id!r}, step {state.step}: no call {key!r} is waiting for a "
                f"decision; waiting: {', '.join(sorted(waiting))}",
                run_id=run_id,
                step=state.step,
            )
        if request.kind == "approval" and not isinstance(value, bool):
            raise ApprovalError(
                f"run {run_id!r}, step {request.step}: {key} ({request.call.name}) needs "
                f"approval: give True or False, not {value!r}",
                run_id=run_id,
                step=request.step,
            )
        if request.kind == "question" and not (isinstance(value, str) or value is False):
            raise ApprovalError(
                f"run {run_id!r}, step {request.step}: {key} asks a question: give the "
                f"answer text (or False for no answer), not {value!r}",
                run_id=run_id,
                step=request.step,
            )
        answer = value if isinstance(value, str) else None
        given.append(
            ApprovalGiven(
                run_id=run_id,
                step=request.step,
                index=request.index,
                key=key,
                approved=value is not False,
                answer=answer,
                by=by,
            )
        )
    assert replay is not None
    for event in given:
        replay.given[event.index] = event
    return given


Settlement = bool | str


def apply_settlements(
    spec: RunSpec[Any], state: RunState, run_id: str, settle: Mapping[str, Settlement], by: str = ""
) -> list[Event]:
    """Check a person's word on in-doubt side effects; return the events recording it.

    Keys are the in-doubt calls' idempotency keys (`ToolCallInDoubtError.idempotency_key`).
    A value says what the person found: a string, that the call took effect and this
    is its result; True, that it took effect (result unknown); False, that it did
    not (the model reads so and may call again: a new call, checked by the policy
    again). Each becomes a `doubt_settled` event and the call's `tool_result`, and the
    state takes the result as recorded, so the call is not run. Raises `ApprovalError`,
    naming the run and step, for a key that is not an in-doubt call of the step the run
    continues from, or a value of the wrong kind; the journal is not touched then.
    """
    replay = state.replay
    events = settlement_events(
        spec, in_doubt_calls(state), run_id, state.step, settle, by, state.policy_context
    )
    assert replay is not None  # there were calls in doubt
    for event in events:
        if isinstance(event, ToolReturned):
            replay.results[event.index] = event.result
    return events


def settlement_events(
    spec: RunSpec[Any],
    doubtful: Mapping[str, ToolCalled],
    run_id: str,
    step: int,
    settle: Mapping[str, Settlement],
    by: str,
    policy_context: RunContext,
) -> list[Event]:
    """The `doubt_settled` and `tool_result` events of `settle`, a person's word on the
    calls `doubtful` (in-doubt calls by key; `step` is where the run stands, for the
    errors), every key and value checked before any event is made (`ApprovalError`).
    `policy_context` counts each settled call as the policy reads it on a later resume.
    Shared by every driver whose calls can be in doubt (the agent loop, planned runs)."""
    if not doubtful:
        raise ApprovalError(
            f"run {run_id!r} has no call in doubt (it stands at step {step}); "
            f"settlements were given for {sorted(settle)}",
            run_id=run_id,
            step=step,
        )
    for key, value in settle.items():
        called = doubtful.get(key)
        if called is None:
            raise ApprovalError(
                f"run {run_id!r}, step {step}: no call {key!r} is in doubt; in doubt: "
                f"{', '.join(sorted(doubtful))}",
                run_id=run_id,
                step=step,
            )
        if not isinstance(value, bool | str):
            raise ApprovalError(
                f"run {run_id!r}, step {called.step}: settle {key} ({called.call.name}) with "
                f"its result text, True (it happened) or False (it did not), not {value!r}",
                run_id=run_id,
                step=called.step,
            )
    events: list[Event] = []
    for key, value in settle.items():
        called = doubtful[key]
        result = _settled_result(spec, called, value)
        events += [
            DoubtSettled(
                run_id=run_id,
                step=called.step,
                index=called.index,
                key=key,
                happened=value is not False,
                result=value if isinstance(value, str) else None,
                by=by,
            ),
            ToolReturned(run_id=run_id, step=called.step, index=called.index, result=result),
        ]
        # what a stateful policy counts, as `RunContext.from_events` reads it next time
        policy_context.record(
            called.call.name,
            called.call.arguments,
            result.content,
            ok=not result.is_error,
            effect=called.effect,
            ts=called.ts,
        )
    return events


def run_of_call(key: str) -> str:
    """The run a call's idempotency key (``run:step:index``) belongs to ("" for a text
    that is no such key)."""
    head, _, index = key.rpartition(":")
    run, _, step = head.rpartition(":")
    return run if run and step.isdigit() and index.isdigit() else ""


def split_settlements(
    store: Store, run_id: str, settle: Mapping[str, Settlement]
) -> tuple[dict[str, Settlement], dict[str, Settlement]]:
    """`settle` split into the keys of run `run_id`'s own calls and those of runs below
    it (children at any depth, which the run's resumed calls pass down as they re-attach).

    A key of a run below is checked against that run's journal here, before anything is
    written: the run stands in doubt and the key is a call of it with no result; and
    every value is a text, True or False. `ApprovalError` otherwise, naming the key.
    """
    own: dict[str, Settlement] = {}
    below: dict[str, Settlement] = {}
    for key, value in settle.items():
        if not isinstance(value, bool | str):
            raise ApprovalError(
                f"settle {key} with its result text, True (it happened) or False (it did "
                f"not), not {value!r}",
                run_id=run_id,
            )
        owner = run_of_call(key)
        if owner == run_id:
            own[key] = value
            continue
        if not owner.startswith(f"{run_id}.") or key not in _open_calls(store, owner):
            raise ApprovalError(
                f"{key!r} is no call in doubt of run {run_id} or of a run below it: settle "
                "the key ToolCallInDoubtError names",
                run_id=run_id,
            )
        below[key] = value
    return own, below


def _open_calls(store: Store, run_id: str) -> set[str]:
    """The keys of run `run_id`'s side-effecting calls with no result, if it stands in
    doubt (empty otherwise, or when there is no such run)."""
    try:
        if store.get_run(run_id).status != "in_doubt":
            return set()
        events = store.events(run_id)
    except StoreError:
        return set()
    answered = {(e.step, e.index) for e in events if isinstance(e, ToolReturned)}
    return {
        e.idempotency_key
        for e in events
        if isinstance(e, ToolCalled)
        and e.effect != "read_only"
        and (e.step, e.index) not in answered
    }


def in_doubt_calls(state: RunState) -> dict[str, ToolCalled]:
    """The side-effecting calls of the step `state` continues from that may have run and
    have no result, by key: what a person may settle (empty when there are none)."""
    replay = state.replay
    if replay is None or (replay.requested and not replay.released):
        return {}  # the step paused for a person before anything ran
    doubtful: dict[str, ToolCalled] = {}
    for index, called in replay.called.items():
        if index in replay.results or called.effect == "read_only" or called.decision is None:
            continue
        given = replay.given.get(index)
        if called.decision.allowed or (given is not None and given.approved):
            doubtful[called.idempotency_key] = called
    return doubtful


def _settled_result(spec: RunSpec[Any], called: ToolCalled, value: Settlement) -> ToolResult:
    """What the model reads for a settled call: the result found, or the person's word."""
    call = called.call
    if isinstance(value, str):
        return ToolResult(call.id, call.name, value, False)
    name = "doubt_settled_happened" if value else "doubt_settled_not_happened"
    return ToolResult(call.id, call.name, spec.prompts.render(name, tool=call.name), not value)
