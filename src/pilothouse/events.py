"""The journal's vocabulary: one event type per arrow of the agent step.

Every run is an append-only sequence of these events. The same sequence is the
trace a developer reads, the checkpoint a run resumes from, the cassette a test
replays and the transcript an evaluation scores, so each event carries enough to
reconstruct what happened without any other state.

Events are slotted dataclasses; `seq` and `ts` are stamped by the journal when
the event is appended. `to_dict`/`event_from_dict` give the stored JSON form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pilothouse.decision import Decision
from pilothouse.messages import Message, ModelResponse, ToolCall, ToolResult, Usage

# How a run ended without an error (`RunResult.outcome`): its output, a stop (a budget,
# the loop detector, an answer that never validated, a policy abort) or a pause for a
# person. The run's index row also says where a run that has not ended stands.
Outcome = Literal["final", "budget_stop", "loop_stop", "output_invalid", "policy_stop", "paused"]
RunStatus = Literal[
    "running",
    "interrupted",
    "in_doubt",
    "error",
    "final",
    "budget_stop",
    "loop_stop",
    "output_invalid",
    "policy_stop",
    "paused",
]
# Why a `run_stopped` event ended the run: a budget (steps, tokens, cost, seconds), the
# loop detector, answers or replies that never validated or parsed, a policy abort.
# (`replans`: a planned run's planner never wrote a plan that validated, `pilothouse.flows`)
StopReason = Literal[
    "steps",
    "tokens",
    "cost",
    "seconds",
    "loop",
    "output_retries",
    "parse_retries",
    "policy",
    "replans",
    "handoff_loop",  # teams: transfers going round without progress (pilothouse.teams)
    "handoffs",  # teams: Budget.max_handoffs reached
]
STOP_OUTCOMES: dict[StopReason, Outcome] = {
    "steps": "budget_stop",
    "tokens": "budget_stop",
    "cost": "budget_stop",
    "seconds": "budget_stop",
    "loop": "loop_stop",
    "output_retries": "output_invalid",
    "parse_retries": "output_invalid",
    "policy": "policy_stop",
    "replans": "output_invalid",
    "handoff_loop": "loop_stop",
    "handoffs": "budget_stop",
}


@dataclass(slots=True, kw_only=True)
class Event:
    """Base of all events. `type` is the stable name stored in the journal."""

    type: ClassVar[str] = "event"
    run_id: str
    step: int = 0
    seq: int = -1
    ts: float = 0.0

    def data(self) -> dict[str, Any]:
        """The event's own fields as JSON-able values (envelope fields excluded)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "run_id": self.run_id,
            "seq": self.seq,
            "ts": self.ts,
            "step": self.step,
            **self.data(),
        }


@dataclass(slots=True, kw_only=True)
class RunStarted(Event):
    """A run began: who, with which model and tools, on what input."""

    type: ClassVar[str] = "run_started"
    agent: str
    model: str
    input: str
    instructions: str = ""
    tools: list[str] = field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    definition_hash: str = ""
    # The earlier conversation the run continues (user and assistant turns), if any.
    history: list[Message] = field(default_factory=list)
    # Who the run acts for (`Principal.to_dict`): a resumed run acts for the same one.
    principal: dict[str, Any] | None = None
    # The run tree: the run that started this one, the tree's root, and the parent
    # call's idempotency key (a child run is started by a tool call of its parent).
    parent_run_id: str | None = None
    root_run_id: str | None = None
    parent_key: str | None = None
    # A conversation turn: the session, and how many of its messages the run saw
    # (its context; the session's later messages belong to later turns).
    session_id: str | None = None
    session_upto: int = 0
    # False: the run only reads the session (its first `session_upto` messages are its
    # context) and appends nothing: a team member's turn, whose team writes the session.
    session_writes: bool = True
    # 1: the first `model_request` repeated the system prompt, `history` and input;
    # 2: they are recorded once, here (see `context`), and not in `new_messages`.
    version: int = 1
    # A flow run (`pilothouse.flows`): its graph as Mermaid source, so a trace or the
    # web console can draw the flow from the journal alone, without its Python objects.
    mermaid: str = ""

    def context(self, session: Sequence[Message] = ()) -> list[Message]:
        """The messages the run's first request sent that no `model_request` repeats:
        the system prompt, the earlier conversation (`history`, or the session's first
        `session_upto` messages, which the caller reads from the store) and the input.
        Empty for a version-1 journal, whose first request carries them all."""
        if self.version < 2:
            return []
        head = [Message.system(self.instructions)] if self.instructions else []
        earlier = session if self.session_id is not None else self.history
        return [*head, *earlier, Message.user(self.input)]

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "agent": self.agent,
            "model": self.model,
            "input": self.input,
            "instructions": self.instructions,
            "tools": self.tools,
            "output_schema": self.output_schema,
            "definition_hash": self.definition_hash,
        }
        if self.history:
            d["history"] = [m.to_dict() for m in self.history]
        if self.principal is not None:
            d["principal"] = self.principal
        if self.parent_run_id is not None:
            d["parent_run_id"] = self.parent_run_id
            d["root_run_id"] = self.root_run_id
            d["parent_key"] = self.parent_key
        if self.session_id is not None:
            d["session_id"] = self.session_id
            d["session_upto"] = self.session_upto
            if not self.session_writes:
                d["session_writes"] = False
        if self.version != 1:
            d["version"] = self.version
        if self.mermaid:
            d["mermaid"] = self.mermaid
        return d


@dataclass(slots=True, kw_only=True)
class ModelRequested(Event):
    """A model call is about to be made.

    `new_messages` holds only the messages added since the previous request, so the
    full request of any step is the concatenation of all earlier ones: nothing is
    hidden and storage stays linear in the run's length.
    """

    type: ClassVar[str] = "model_request"
    new_messages: list[Message]
    tools: list[str] = field(default_factory=list)
    tool_choice: str = "auto"
    # Set when a step hook (`prepare_step`) changed this step: the system prompt sent
    # instead of the run's, and the sampling settings sent (`ModelSettings` fields).
    instructions: str | None = None
    settings: dict[str, Any] | None = None
    # The conversation the hook sent after the system prompt, when it sent a view: the
    # position of each message in the run's conversation, or a message of its own.
    view: list[int | dict[str, Any]] | None = None
    # Tool parameters the hook narrowed for this step (tool name -> JSON schema).
    schemas: dict[str, dict[str, Any]] | None = None
    # The hook answered this step itself: the model was not called (see the response).
    answered: bool = False

    def sent(self, messages: Sequence[Message]) -> list[Message]:
        """The messages this request sent, given the run's conversation up to it."""
        head = list(messages[:1]) if messages and messages[0].role == "system" else []
        body = list(messages[len(head) :])
        if self.view is not None:
            body = [messages[v] if isinstance(v, int) else Message.from_dict(v) for v in self.view]
        if self.instructions is not None:
            head = [Message.system(self.instructions)] if self.instructions else []
        return [*head, *body]

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "new_messages": [m.to_dict() for m in self.new_messages],
            "tools": self.tools,
            "tool_choice": self.tool_choice,
        }
        if self.instructions is not None:
            d["instructions"] = self.instructions
        if self.settings is not None:
            d["settings"] = self.settings
        if self.view is not None:
            d["view"] = self.view
        if self.schemas is not None:
            d["schemas"] = self.schemas
        if self.answered:
            d["answered"] = True
        return d


@dataclass(slots=True, kw_only=True)
class ModelResponded(Event):
    """The model answered (text and/or tool calls) with its usage and latency."""

    type: ClassVar[str] = "model_response"
    response: ModelResponse
    duration: float = 0.0

    def data(self) -> dict[str, Any]:
        return {"response": self.response.to_dict(), "duration": self.duration}


@dataclass(slots=True, kw_only=True)
class ModelFallback(Event):
    """A `FallbackModel` gave up on one model of its list and asked the next.

    `from_model` failed with `error` (its `kind` from the taxonomy in
    `pilothouse.exceptions`: ``rate_limit``, ``server_error``, ``timeout``,
    ``unavailable``, ``context_length``) after `attempts` tries; `to_model` is asked
    the same request. `after_output`: the failed model had already streamed text,
    which the reader of the stream must discard (the answer starts again); before
    the first token a fallback is invisible in the stream, but still journaled.
    """

    type: ClassVar[str] = "model_fallback"
    from_model: str
    to_model: str
    error: str
    message: str = ""
    attempts: int = 1
    after_output: bool = False

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "from_model": self.from_model,
            "to_model": self.to_model,
            "error": self.error,
            "message": self.message,
            "attempts": self.attempts,
        }
        if self.after_output:
            d["after_output"] = True
        return d


@dataclass(slots=True, kw_only=True)
class ModelRouted(Event):
    """A `RouterModel` chose which model answers this step, and why.

    `model` answered; `tried` are the cheaper models asked before it whose replies
    met the escalation condition (`reason` says which), in order.
    """

    type: ClassVar[str] = "model_route"
    model: str
    reason: str = ""
    tried: list[str] = field(default_factory=list)

    def data(self) -> dict[str, Any]:
        return {"model": self.model, "reason": self.reason, "tried": self.tried}


@dataclass(slots=True, kw_only=True)
class StageRequested(Event):
    """One generation of a guided step is about to be made (`pilothouse.guided`).

    The step's conversation is on its `model_request`; a stage records only what it
    adds: its name (``choose``, ``arguments``, ...), its position in the step
    (`index`), the tools it shows, the system text it appends (`added`: tool list and
    reply forms), tool parameters it narrowed (`schemas`), the schema its reply is held
    to, the settings sent, why it was asked (`note`), and a digest of the exact request
    the inner model received (`pilothouse.models.base.request_digest`), which replay
    compares. So the journal stays linear in the run's length.
    """

    type: ClassVar[str] = "stage_request"
    stage: str
    index: int = 0
    tools: list[str] = field(default_factory=list)
    added: str = ""
    schemas: dict[str, dict[str, Any]] | None = None
    output_schema: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    note: str = ""
    digest: str = ""

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "stage": self.stage,
            "index": self.index,
            "tools": self.tools,
            "added": self.added,
            "output_schema": self.output_schema,
            "digest": self.digest,
        }
        if self.schemas is not None:
            d["schemas"] = self.schemas
        if self.settings:
            d["settings"] = self.settings
        if self.note:
            d["note"] = self.note
        return d


@dataclass(slots=True, kw_only=True)
class StageResponded(Event):
    """The inner model answered one stage: its raw reply (text), usage and latency.

    The step's composed result (a tool call or an answer, usage of all its stages) is
    the ordinary `model_response` that follows the last stage.
    """

    type: ClassVar[str] = "stage_response"
    stage: str
    index: int = 0
    response: ModelResponse
    duration: float = 0.0
    # The reply could not be used as it stands (cut off before its JSON was complete):
    # why, as the inner model said it; `response.text` holds the partial reply.
    error: str | None = None

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "stage": self.stage,
            "index": self.index,
            "response": self.response.to_dict(),
            "duration": self.duration,
        }
        if self.error is not None:
            d["error"] = self.error
        return d


@dataclass(slots=True, kw_only=True)
class ToolCalled(Event):
    """A tool call was requested, validated and decided by the policy.

    `decision` is the policy's decision (effect, rule, reason; None when the call
    never reached the policy: unknown tool, unparsable or invalid arguments). An
    allowed call without a result marks it in doubt.
    """

    type: ClassVar[str] = "tool_call"
    index: int
    call: ToolCall
    idempotency_key: str
    effect: str = "read_only"
    decision: Decision | None = None

    def data(self) -> dict[str, Any]:
        d = {
            "index": self.index,
            "call": self.call.to_dict(),
            "idempotency_key": self.idempotency_key,
            "effect": self.effect,
        }
        if self.decision is not None:
            d["decision"] = self.decision.to_dict()
        return d


@dataclass(slots=True, kw_only=True)
class ToolReturned(Event):
    """A tool call finished: its result text, or the error the model will read."""

    type: ClassVar[str] = "tool_result"
    index: int
    result: ToolResult
    duration: float = 0.0

    def data(self) -> dict[str, Any]:
        return {"index": self.index, "result": self.result.to_dict(), "duration": self.duration}


@dataclass(slots=True, kw_only=True)
class ApprovalRequested(Event):
    """A call waits for a human: an approval (`kind="approval"`) or an answer (`"question"`).

    The run pauses after this event; none of the step's calls has run. `key` is the
    call's idempotency key, the handle `Agent.resume(run_id, approvals={key: ...})`
    answers with. `reason` is why approval is needed, or the question asked.
    """

    type: ClassVar[str] = "approval_requested"
    index: int
    key: str
    kind: str
    call: ToolCall
    reason: str = ""

    def data(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "kind": self.kind,
            "call": self.call.to_dict(),
            "reason": self.reason,
        }


@dataclass(slots=True, kw_only=True)
class ApprovalGiven(Event):
    """A human decided a waiting call: approved or not, and the answer to a question."""

    type: ClassVar[str] = "approval_given"
    index: int
    key: str
    approved: bool
    answer: str | None = None
    by: str = ""

    def data(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "approved": self.approved,
            "answer": self.answer,
            "by": self.by,
        }


@dataclass(slots=True, kw_only=True)
class DoubtSettled(Event):
    """A person settled an in-doubt side effect: whether the call took effect, and (if
    it did and they found it) its result. Journaled with the `tool_result` the model
    reads, in one write, before the resumed run goes on; the call is never run again."""

    type: ClassVar[str] = "doubt_settled"
    index: int
    key: str
    happened: bool
    result: str | None = None
    by: str = ""

    def data(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "happened": self.happened,
            "result": self.result,
            "by": self.by,
        }


@dataclass(slots=True, kw_only=True)
class ChildStarted(Event):
    """A tool call of this run started a child run (`ToolContext.run_child`).

    `key` is the calling tool call's idempotency key; `capped` names the child's
    limits that were lowered to what remained of this run's budget
    (limit -> [the child's own, the one it got]).
    """

    type: ClassVar[str] = "child_started"
    index: int
    key: str
    child_run_id: str
    agent: str
    capped: dict[str, list[float]] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "key": self.key,
            "child_run_id": self.child_run_id,
            "agent": self.agent,
        }
        if self.capped:
            d["capped"] = self.capped
        return d


@dataclass(slots=True, kw_only=True)
class ChildFinished(Event):
    """A child run ended; its usage (its own children's included) rolls up into this run."""

    type: ClassVar[str] = "child_finished"
    index: int
    child_run_id: str
    outcome: RunStatus  # an `Outcome`, or "error"
    usage: Usage
    steps: int = 0

    def data(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "child_run_id": self.child_run_id,
            "outcome": self.outcome,
            "usage": self.usage.to_dict(),
            "steps": self.steps,
        }


@dataclass(slots=True, kw_only=True)
class OutputValidated(Event):
    """The final answer was checked against the output type; `error` says why it failed."""

    type: ClassVar[str] = "output_validated"
    ok: bool
    error: str | None = None

    def data(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error}


@dataclass(slots=True, kw_only=True)
class ParseFailed(Event):
    """A text action format could not read the model's reply; the model is asked again.

    `reason` is what the model is told; `text` is the start of the unreadable reply.
    """

    type: ClassVar[str] = "parse_failed"
    format: str
    reason: str
    text: str = ""
    retries_left: int = 0

    def data(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "reason": self.reason,
            "text": self.text,
            "retries_left": self.retries_left,
        }


@dataclass(slots=True, kw_only=True)
class FinalOutput(Event):
    """The run produced its validated output."""

    type: ClassVar[str] = "final"
    output: Any
    usage: Usage

    def data(self) -> dict[str, Any]:
        return {"output": self.output, "usage": self.usage.to_dict()}


@dataclass(slots=True, kw_only=True)
class ErrorOccurred(Event):
    """The run failed; `kind` is the exception class, `message` names cause and fix."""

    type: ClassVar[str] = "error"
    kind: str
    message: str

    def data(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message}


@dataclass(slots=True, kw_only=True)
class Stopped(Event):
    """Something other than an error ended the run before its output: see `reason`.

    `value` and `maximum` say how far a budget or a retry count went (steps, tokens,
    cost, seconds, loop, output_retries, parse_retries); a policy abort has none, and
    names the `rule` that aborted instead. Journals written before this event read
    their `budget_stop` events as this one (its `limit` is the reason).
    """

    type: ClassVar[str] = "run_stopped"
    reason: StopReason
    message: str
    value: float | None = None
    maximum: float | None = None
    rule: str | None = None

    @property
    def outcome(self) -> Outcome:
        """The run's outcome for this stop (``budget_stop``, ``loop_stop``, ...)."""
        return STOP_OUTCOMES.get(self.reason, "budget_stop")

    @property
    def limit(self) -> str:
        """The old name of `reason` (the `budget_stop` event's field)."""
        return self.reason

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"reason": self.reason, "message": self.message}
        if self.value is not None:
            d["value"] = self.value
            d["maximum"] = self.maximum
        if self.rule is not None:
            d["rule"] = self.rule
        return d


@dataclass(slots=True, kw_only=True)
class PlanAccepted(Event):
    """A planner's plan validated as a whole and is about to run (`pilothouse.flows.plan`).

    `tasks` is the plan as it runs (id, tool, arguments with their `$n` references,
    dependencies); task k of the plan runs as step `first_step + k`, one tool call, so
    its idempotency key is `run:step:0`. `attempt` counts the plans of this run (1 first).
    """

    type: ClassVar[str] = "plan_accepted"
    attempt: int
    tasks: list[dict[str, Any]]
    first_step: int

    def data(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "tasks": self.tasks, "first_step": self.first_step}


@dataclass(slots=True, kw_only=True)
class PlanRejected(Event):
    """A planner's plan failed validation before anything of it ran: `reasons` says why
    (a cycle, a dangling reference, an unknown tool, arguments that do not fit, a call
    the policy refuses); the planner is asked again with them, a bounded number of times.
    """

    type: ClassVar[str] = "plan_rejected"
    attempt: int
    reasons: list[str]

    def data(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "reasons": self.reasons}


@dataclass(slots=True, kw_only=True)
class NodeStarted(Event):
    """A flow's node began one execution (`pilothouse.flows`).

    `key` is the execution's stable name within the flow run (``node-n``: the n-th
    execution of the node; ``node-m-k``: item k of the node's m-th fan-out), so a
    resumed flow knows which executions already happened. `after` lists the keys of
    the executions whose results it waited for, `item` the fan-out item it got,
    `capped` the limits of an agent node lowered to what remained of the flow's
    budget. `step` is the execution's depth in the flow (its longest chain of causes).
    """

    type: ClassVar[str] = "node_started"
    key: str
    node: str
    kind: str = "function"
    after: list[str] = field(default_factory=list)
    item: Any = None
    capped: dict[str, list[float]] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "node": self.node, "kind": self.kind}
        if self.after:
            d["after"] = self.after
        if self.item is not None:
            d["item"] = self.item
        if self.capped:
            d["capped"] = self.capped
        return d


@dataclass(slots=True, kw_only=True)
class NodeFinished(Event):
    """A flow's node execution ended: the state updates it made (JSON, in order), the
    nodes its conditional edges chose (`routes`), the items of each fan-out it started
    (`fanout`: target node -> items), and the usage of its model or agent calls.
    A resumed flow reuses this record instead of running the node again."""

    type: ClassVar[str] = "node_finished"
    key: str
    node: str
    updates: list[dict[str, Any]] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    fanout: dict[str, list[Any]] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    duration: float = 0.0

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "key": self.key,
            "node": self.node,
            "updates": self.updates,
            "duration": self.duration,
        }
        if self.routes:
            d["routes"] = self.routes
        if self.fanout:
            d["fanout"] = self.fanout
        if self.usage.total_tokens or self.usage.cost is not None:
            d["usage"] = self.usage.to_dict()
        if self.steps:
            d["steps"] = self.steps
        return d


@dataclass(slots=True, kw_only=True)
class NodeFailed(Event):
    """A flow's node execution raised (`kind`, `message`: its cause), or was cancelled
    because a sibling failed or the flow's budget ran out (`cancelled`)."""

    type: ClassVar[str] = "node_failed"
    key: str
    node: str
    kind: str
    message: str
    cancelled: bool = False

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "key": self.key,
            "node": self.node,
            "kind": self.kind,
            "message": self.message,
        }
        if self.cancelled:
            d["cancelled"] = True
        return d


@dataclass(slots=True, kw_only=True)
class Retrieved(Event):
    """A knowledge base answered a query (`pilothouse.knowledge`): what was asked, the
    chunks found with their scores, and the index they came from (its name and
    version), so the trace shows what the model was given and a replay needs no index.
    `index` is the call's position in its step when a tool retrieved (-1 otherwise)."""

    type: ClassVar[str] = "retrieval"
    query: str
    knowledge_base: str
    index_version: str
    hits: list[dict[str, Any]] = field(default_factory=list)
    index: int = -1

    def data(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "knowledge_base": self.knowledge_base,
            "index_version": self.index_version,
            "hits": self.hits,
            "index": self.index,
        }


@dataclass(slots=True, kw_only=True)
class HookModelCalled(Event):
    """A step hook asked a model for something of its own before the step's model call
    (compaction's summary of older turns: `purpose` says what): the request it sent, the
    response with its usage, the latency. `key` names what was asked (compaction: the
    digest of the turns summarised), so a resumed run or a replay is served the recorded
    response instead of asking again; the usage counts toward the run's."""

    type: ClassVar[str] = "hook_model_call"
    purpose: str
    key: str
    model: str
    request: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] | None = None
    response: ModelResponse
    duration: float = 0.0

    def data(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "key": self.key,
            "model": self.model,
            "request": self.request,
            "settings": self.settings,
            "response": self.response.to_dict(),
            "duration": self.duration,
        }


# The event's name before `run_stopped` (journals and code of earlier versions).
BudgetStopped = Stopped
# The stored type of `Stopped` in journals written before `run_stopped`.
LEGACY_STOP_TYPE = "budget_stop"


def _stop_from_dict(env: dict[str, Any], d: dict[str, Any]) -> Stopped:
    """A `run_stopped` event, or a `budget_stop` one of an older journal (`limit`, and
    a value and maximum of 0 for a policy abort, which had none)."""
    if "reason" in d:
        return Stopped(
            **env,
            reason=d["reason"],
            message=d.get("message", ""),
            value=d.get("value"),
            maximum=d.get("maximum"),
            rule=d.get("rule"),
        )
    reason = d["limit"]
    budget = reason != "policy"
    return Stopped(
        **env,
        reason=reason,
        message=d.get("message", ""),
        value=d.get("value") if budget else None,
        maximum=d.get("maximum") if budget else None,
    )


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStarted,
        ModelRequested,
        ModelResponded,
        ModelFallback,
        ModelRouted,
        StageRequested,
        StageResponded,
        ToolCalled,
        ToolReturned,
        ApprovalRequested,
        ApprovalGiven,
        DoubtSettled,
        ChildStarted,
        ChildFinished,
        OutputValidated,
        ParseFailed,
        FinalOutput,
        ErrorOccurred,
        Stopped,
        NodeStarted,
        NodeFinished,
        NodeFailed,
        PlanAccepted,
        PlanRejected,
        Retrieved,
    )
}
EVENT_TYPES[LEGACY_STOP_TYPE] = Stopped  # read as `run_stopped`
EVENT_TYPES[HookModelCalled.type] = HookModelCalled


# -- team patterns (`pilothouse.teams.groupchat`, `sop`, `roleplay`) ----------------------


@dataclass(slots=True, kw_only=True)
class SpeakerSelected(Event):
    """A group chat chose who speaks at turn `step` (`pilothouse.teams.groupchat`).

    `how`: ``round_robin``, ``rule`` (a function of the transcript), ``model`` (a model
    chose among the candidates' descriptions under a JSON schema) or ``fallback`` (the
    model's choice never validated, or the rule chose nobody: the deterministic
    fallback chose; `note` says why). `usage` is what the selector's model call cost
    (its child run is `selector_run_id`); it counts in the team's usage.
    """

    type: ClassVar[str] = "speaker_selected"
    candidates: list[str]
    chosen: str
    how: str
    usage: Usage = field(default_factory=Usage)
    selector_run_id: str | None = None
    note: str = ""

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"candidates": self.candidates, "chosen": self.chosen, "how": self.how}
        if self.usage.total_tokens or self.usage.cost is not None:
            d["usage"] = self.usage.to_dict()
        if self.selector_run_id is not None:
            d["selector_run_id"] = self.selector_run_id
        if self.note:
            d["note"] = self.note
        return d


@dataclass(slots=True, kw_only=True)
class ChatMessage(Event):
    """A message joined a team's shared transcript: who said it, the text, and the
    child run whose answer it is (a resumed chat reuses it instead of the turn).
    `outcome` is the turn's (``paused``: the member asked a person, the chat hands off)."""

    type: ClassVar[str] = "chat_message"
    speaker: str
    text: str
    child_run_id: str | None = None
    outcome: str = "final"

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"speaker": self.speaker, "text": self.text}
        if self.child_run_id is not None:
            d["child_run_id"] = self.child_run_id
        if self.outcome != "final":
            d["outcome"] = self.outcome
        return d


@dataclass(slots=True, kw_only=True)
class ArtefactPublished(Event):
    """An SOP role's typed artefact entered the message pool (`pilothouse.teams.sop`):
    its kind, its version (1 for the first of its kind), who produced it, its data
    (JSON), and the roles it was routed to (only those that subscribe to its kind)."""

    type: ClassVar[str] = "artefact_published"
    kind: str
    version: int
    producer: str
    content: Any = None
    routed_to: list[str] = field(default_factory=list)
    child_run_id: str | None = None

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "version": self.version,
            "producer": self.producer,
            "content": self.content,
            "routed_to": self.routed_to,
        }
        if self.child_run_id is not None:
            d["child_run_id"] = self.child_run_id
        return d


@dataclass(slots=True, kw_only=True)
class TeamEnded(Event):
    """Why a team pattern's run stopped taking turns: the termination condition that
    fired (``text_mention('TERMINATE')``, ``max_messages(10)``, ...), or the pipeline
    ran out of messages (``idle``) or hit its bound. Followed by its `final`."""

    type: ClassVar[str] = "team_ended"
    reason: str
    messages: int = 0

    def data(self) -> dict[str, Any]:
        return {"reason": self.reason, "messages": self.messages}


EVENT_TYPES.update(
    {cls.type: cls for cls in (SpeakerSelected, ChatMessage, ArtefactPublished, TeamEnded)}
)


def event_from_dict(d: dict[str, Any]) -> Event:
    """Rebuild an event from its stored form; raises `ValueError` on an unknown type."""
    kind = d.get("type")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    env = {
        "run_id": d["run_id"],
        "step": d.get("step", 0),
        "seq": d.get("seq", -1),
        "ts": d.get("ts", 0.0),
    }
    if cls is ModelRequested:
        return ModelRequested(
            **env,
            new_messages=[Message.from_dict(m) for m in d["new_messages"]],
            tools=d.get("tools", []),
            tool_choice=d.get("tool_choice", "auto"),
            instructions=d.get("instructions"),
            settings=d.get("settings"),
            view=d.get("view"),
            schemas=d.get("schemas"),
            answered=d.get("answered", False),
        )
    if cls is ModelResponded:
        return ModelResponded(
            **env, response=ModelResponse.from_dict(d["response"]), duration=d.get("duration", 0.0)
        )
    if cls is HookModelCalled:
        return HookModelCalled(
            **env,
            purpose=d["purpose"],
            key=d["key"],
            model=d.get("model", ""),
            request=d.get("request", []),
            settings=d.get("settings"),
            response=ModelResponse.from_dict(d["response"]),
            duration=d.get("duration", 0.0),
        )
    if cls is StageResponded:
        return StageResponded(
            **env,
            stage=d["stage"],
            index=d.get("index", 0),
            response=ModelResponse.from_dict(d["response"]),
            duration=d.get("duration", 0.0),
            error=d.get("error"),
        )
    if cls is ToolCalled:
        return ToolCalled(
            **env,
            index=d["index"],
            call=ToolCall.from_dict(d["call"]),
            idempotency_key=d["idempotency_key"],
            effect=d.get("effect", "read_only"),
            decision=Decision.from_dict(d["decision"]) if d.get("decision") else None,
        )
    if cls is ToolReturned:
        return ToolReturned(
            **env,
            index=d["index"],
            result=ToolResult.from_dict(d["result"]),
            duration=d.get("duration", 0.0),
        )
    if cls is ApprovalRequested:
        return ApprovalRequested(
            **env,
            index=d["index"],
            key=d["key"],
            kind=d.get("kind", "approval"),
            call=ToolCall.from_dict(d["call"]),
            reason=d.get("reason", ""),
        )
    if cls is RunStarted and "history" in d:
        fields = {k: v for k, v in d.items() if k not in ("type", "run_id", "step", "seq", "ts")}
        fields["history"] = [Message.from_dict(m) for m in fields["history"]]
        return RunStarted(**env, **fields)
    if cls is FinalOutput:
        return FinalOutput(**env, output=d.get("output"), usage=Usage.from_dict(d.get("usage", {})))
    if cls is Stopped:
        return _stop_from_dict(env, d)
    if cls is ChildFinished:
        return ChildFinished(
            **env,
            index=d["index"],
            child_run_id=d["child_run_id"],
            outcome=d["outcome"],
            usage=Usage.from_dict(d.get("usage", {})),
            steps=d.get("steps", 0),
        )
    if cls is SpeakerSelected:
        fields = {k: v for k, v in d.items() if k not in ("type", "run_id", "step", "seq", "ts")}
        fields["usage"] = Usage.from_dict(fields.get("usage", {}))
        return SpeakerSelected(**env, **fields)
    if cls is NodeFinished:
        return NodeFinished(
            **env,
            key=d["key"],
            node=d["node"],
            updates=d.get("updates", []),
            routes=d.get("routes", []),
            fanout=d.get("fanout", {}),
            usage=Usage.from_dict(d.get("usage", {})),
            steps=d.get("steps", 0),
            duration=d.get("duration", 0.0),
        )
    fields = {k: v for k, v in d.items() if k not in ("type", "run_id", "step", "seq", "ts")}
    return cls(**env, **fields)
