"""Every exception Pilothouse raises, in one place.

The hierarchy is shallow on purpose: catch `PilothouseError` for everything,
`ModelError` for anything a model endpoint did, `ConfigurationError` for a
mistake the user can fix before running. Each message names the cause and the fix.
"""

from __future__ import annotations

from typing import ClassVar, Literal

# What a `FallbackModel` does after a model error (the taxonomy, in one place: each
# `ModelError` class says it with `recovery`): "retry" the same model (timeouts, 429,
# 5xx), then fall back once its retries are spent; "fallback" to the next model at once
# (nothing listening, a conversation too long for this model); "raise": no other model
# should see this request (a bad request, bad credentials, a content-policy refusal).
Recovery = Literal["retry", "fallback", "raise"]


class PilothouseError(Exception):
    """Base class of every error Pilothouse raises."""


class ConfigurationError(PilothouseError):
    """The agent, model or store was configured in a way that cannot work."""


class UnknownModelError(ConfigurationError):
    """A model string did not match any registered form."""


class ToolDefinitionError(ConfigurationError):
    """A Python function could not be turned into a tool (its signature has no schema)."""


class ModelError(PilothouseError):
    """A model endpoint failed. `retryable` says whether trying again could help.

    `kind` names the failure in the journal (`model_fallback` events) and in traces;
    `recovery` is what a `FallbackModel` does about it (see `Recovery`); `retry_after`
    is the wait in seconds the server asked for (`Retry-After`), when it asked.
    """

    retryable: bool = False
    kind: ClassVar[str] = "model_error"
    recovery: ClassVar[Recovery] = "raise"  # (each subclass says its own)

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = body
        self.retry_after: float | None = None


class AuthenticationError(ModelError):
    """The endpoint refused the credentials (HTTP 401/403) or none were given."""

    kind = "authentication"


class BadRequestError(ModelError):
    """The endpoint rejected the request itself (HTTP 400/404/422)."""

    kind = "bad_request"


class ContextLengthError(BadRequestError):
    """The conversation no longer fits the model's context window."""

    kind = "context_length"
    recovery: ClassVar[Recovery] = "fallback"  # a model with a longer context may take it


class ContentPolicyError(BadRequestError):
    """The provider refused the request under its content policy (HTTP 400 with a
    ``content_policy_violation`` / ``content_filter`` code). Never sent on to another
    model: a refusal is an answer, not an outage."""

    kind = "content_policy"


class RateLimitError(ModelError):
    """HTTP 429 after every retry was spent."""

    retryable = True
    kind = "rate_limit"
    recovery: ClassVar[Recovery] = "retry"


class ServerError(ModelError):
    """HTTP 5xx after every retry was spent."""

    retryable = True
    kind = "server_error"
    recovery: ClassVar[Recovery] = "retry"


class ModelUnreachableError(ModelError):
    """No connection could be made, or the endpoint timed out, after every retry."""

    retryable = True
    kind = "unavailable"
    recovery: ClassVar[Recovery] = "fallback"  # nothing listening there: another, at once


class ModelTimeoutError(ModelUnreachableError):
    """The endpoint did not answer in time (a read timeout, HTTP 408, or a
    `FallbackModel`'s own per-attempt deadline)."""

    kind = "timeout"
    recovery: ClassVar[Recovery] = "retry"


def model_error_recovery(exc: BaseException) -> tuple[str, Recovery]:
    """The failure kind and the recovery for any exception a model call raised.

    A `ModelError` says both itself; a bare `TimeoutError` is a timeout; anything
    else (a bug, a cancellation) is raised as it is.
    """
    if isinstance(exc, ModelError):
        return exc.kind, exc.recovery
    if isinstance(exc, TimeoutError):
        return "timeout", "retry"
    return type(exc).__name__, "raise"


class ModelOutputError(ModelError):
    """The model answered with something that is neither text nor a usable tool call."""

    kind = "bad_output"


class TelemetryExportError(PilothouseError):
    """A collector did not accept the spans `pilothouse.telemetry.export_run` sent."""


class StoreError(PilothouseError):
    """The journal store could not be opened, read or written."""


class RunNotFoundError(StoreError):
    """No run with the given id exists in the store."""


class WriteConflictError(StoreError):
    """Another writer already appended events at these sequence numbers: two processes
    drove the same run. Not transient: retrying cannot help, and the loser must write
    nothing more into the run."""


class RunLeasedError(StoreError):
    """Another live process holds the run's lease (it is driving or resuming the run);
    `holder` names it and `expires` (epoch seconds) says when the lease runs out unless
    renewed. Nothing was written into the run."""

    def __init__(self, message: str, *, run_id: str, holder: str, expires: float):
        super().__init__(message)
        self.run_id, self.holder, self.expires = run_id, holder, expires


class LeaseLostError(StoreError):
    """This process could not renew its lease on a run and another one took it over;
    this process stopped driving the run without writing anything more into it."""


class SessionNotFoundError(StoreError):
    """No session with the given id exists in the store (`session_id` names it)."""

    def __init__(self, message: str, *, session_id: str):
        super().__init__(message)
        self.session_id = session_id


class SessionExistsError(StoreError):
    """`create_session` was given the id of a session the store already has: ids are
    chosen by the caller, and two conversations must never share one."""

    def __init__(self, message: str, *, session_id: str):
        super().__init__(message)
        self.session_id = session_id


class SessionBusyError(StoreError):
    """A turn of the session could not begin: another run of it (`run_id`) holds a live
    lease, so two turns would append to the same conversation at once. Nothing was
    written. Wait for that run to end, or resume or settle it if its process died."""

    def __init__(self, message: str, *, session_id: str, run_id: str):
        super().__init__(message)
        self.session_id, self.run_id = session_id, run_id


class RunInterrupted(PilothouseError):
    """The run stopped before its end without a decision about it: its journal could
    not be written (the store stayed down through every retry), or its process was
    told to stop. Everything committed before is kept and the run is resumable with
    `Agent.resume(run_id)` once the cause is gone."""

    def __init__(self, message: str, *, run_id: str):
        super().__init__(message)
        self.run_id = run_id


class ToolCallInDoubtError(PilothouseError):
    """On resume, a side-effecting call started but has no recorded result, and its
    tool's `on_doubt` strategy is "ask" (the default): a human must decide. The run
    is left resumable (status ``in_doubt``); nothing was executed a second time. A
    person who checked the world settles it: `Agent.resume(run_id, settle={key: ...})`
    with `idempotency_key`."""

    def __init__(self, message: str, *, run_id: str, step: int, tool: str, key: str):
        super().__init__(message)
        self.run_id, self.step, self.tool, self.idempotency_key = run_id, step, tool, key


class ToolTimeoutError(PilothouseError):
    """A tool that changes the world did not answer within its `timeout`: its call was
    stopped (an async tool cancelled, a thread's result abandoned), and whether the
    effect happened is unknown. The run applies the tool's `on_doubt` to the call, as a
    resume would (`pilothouse.runtime.loop`); a read-only tool's timeout is instead an
    error the model reads."""

    def __init__(self, message: str, *, tool: str, seconds: float):
        super().__init__(message)
        self.tool, self.seconds = tool, seconds


class RunStopped(PilothouseError):
    """A run ended without a final output; raised when reading `RunResult.output`."""

    def __init__(self, message: str, *, run_id: str, outcome: str):
        super().__init__(message)
        self.run_id = run_id
        self.outcome = outcome


class RunPaused(RunStopped):
    """The run waits for a human (an approval or an answer); resume it with the decisions."""


class ApprovalError(PilothouseError):
    """An approval named a call that is not waiting, or gave the wrong kind of answer."""

    def __init__(self, message: str, *, run_id: str, step: int | None = None):
        super().__init__(message)
        self.run_id, self.step = run_id, step


class RunFinishedError(RunStopped):
    """`resume` was asked to continue a run whose journal already records its end."""


class BudgetExceeded(RunStopped):
    """A hard budget (steps, tokens, time or cost) stopped the run."""


class LoopDetected(RunStopped):
    """The model repeated the same tool call with the same arguments too often."""


class OutputValidationError(RunStopped):
    """The final output failed validation against `output_type` after every retry."""


class ReplayDivergence(PilothouseError):
    """A replayed run did something its recording did not (see `pilothouse.runtime.replay`).

    `kind` names what differed (``messages``, ``tools``, ``tool_call``, ``decision``,
    ``tool_result``, ``approval``, ``output``, ``final``, ``outcome``, ``recording``,
    ``error``); `expected` and `got` are short renderings of the recorded and the
    replayed value; `step` is the step where they first differ.
    """

    def __init__(
        self,
        detail: str,
        *,
        run_id: str,
        step: int,
        kind: str,
        expected: str = "",
        got: str = "",
    ):
        super().__init__(f"run {run_id}, step {step}: {detail}")
        self.detail, self.run_id, self.step, self.kind = detail, run_id, step, kind
        self.expected, self.got = expected, got


class ToolError(PilothouseError):
    """Raise inside a tool to hand the model a message it can act on (not a crash)."""


class ModelRetry(ToolError):
    """Ask the model again with this message: from an output validator (the answer is
    refused and the retry uses up one of `output_retries`) or from a tool (the message
    is the call's error result, which the model reads)."""


class ChildRunError(PilothouseError):
    """A child run (`ToolContext.run_child`) failed with an error; its journal says why.

    `run_id` is the child's run, `parent_run_id` the run that started it."""

    def __init__(self, message: str, *, run_id: str, parent_run_id: str):
        super().__init__(message)
        self.run_id, self.parent_run_id = run_id, parent_run_id


class MCPServerError(PilothouseError):
    """An MCP server failed a request: it timed out, exited, closed its output, wrote
    something that is not JSON-RPC, answered with an HTTP error, or changed its tool list.

    `kind` says which (``timeout``, ``closed``, ``protocol``, ``http``, ``error``,
    ``changed``, ``connect``); the message names the server and the tool.
    """

    def __init__(self, message: str, *, server: str, tool: str | None = None, kind: str) -> None:
        super().__init__(message)
        self.server = server
        self.tool = tool
        self.kind = kind


class SchemaError(ConfigurationError, ValueError):
    """A JSON schema is malformed or, checked strictly, uses an unknown keyword.

    `path` is the place of the bad keyword inside the schema, so a caller that knows
    where the schema came from (a policy file's line) can say so.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        at = ".".join(str(p) for p in path) or "(schema)"
        super().__init__(f"{at}: {message}")
        self.path = path
        self.message = message


class PolicyError(ConfigurationError):
    """A policy is malformed (its file, rule and line say where) and cannot be used."""


class PolicyLayerError(PolicyError):
    """A lower policy layer tried to allow what a higher layer denies (layers only narrow)."""


class PolicyCheckFailed(PilothouseError):
    """Raised inside a policy check to deny the call outright (fail-closed), with the reason.

    The engine catches it and turns it into a deny naming the rule; it never reaches
    a caller of `Policy.check`. Condition kinds raise it (a predicate that raised, a
    condition on an argument the call lacks).
    """


class PolicyDenied(RunStopped):
    """A policy rule with fallback ``abort`` stopped the run."""


class RequestRejected(PilothouseError):
    """The agent endpoint (`pilothouse.serving`) refuses an HTTP request: its `status`,
    and the OpenAI error fields a client reads (`type`, `code`, `param`). Raised inside
    the server and turned into OpenAI's error JSON; it never carries internals."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.type, self.code, self.param = status, type, code, param
        self.headers = dict(headers or {})


class PlanError(PilothouseError):
    """A planner's plan cannot run (`pilothouse.flows.plan`): not a plan, a cycle, a
    dangling reference, an unknown tool, arguments that do not fit, a refused call; or a
    reference that does not resolve on the results. `reasons` lists every problem found.
    """

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


# Flows (`pilothouse.flows`): chains and graphs.


class FlowDefinitionError(ConfigurationError):
    """A chain or graph is malformed (a state key without a reducer, an edge to an
    unknown node, a cycle without a bound, ...): raised when it is built, not run."""


class FlowError(PilothouseError):
    """A flow run failed; `run_id` is the flow's run, `node` and `key` the execution
    that failed (empty when the flow itself failed), `cause` what it raised."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        node: str = "",
        key: str = "",
        cause: BaseException | None = None,
    ):
        super().__init__(message)
        self.run_id, self.node, self.key, self.cause = run_id, node, key, cause


class StepValidationError(FlowError):
    """A value between two steps of a chain (or a node's state update) did not fit
    the declared type; the message names the step and what did not fit."""


class CycleLimitError(FlowError):
    """A node in a cycle would run more often than its declared `max_visits`."""


class NodeInDoubtError(FlowError):
    """On resume, a node declared ``on_doubt="fail"`` had started and has no recorded
    end: it may have acted. Nothing ran again; resume with ``rerun=[key]`` once checked."""


class ChatError(PilothouseError):
    """A team pattern's run (group chat, SOP pipeline, role-play) failed: a selector
    rule chose a non-member, a role produced an artefact of the wrong type, a member's
    run failed. `run_id` is the team's run; its journal ends with the `error`."""

    def __init__(self, message: str, *, run_id: str):
        super().__init__(message)
        self.run_id = run_id


class ArtefactTypeError(ChatError):
    """An SOP role produced something that is not the artefact type it declares."""


class KnowledgeError(PilothouseError):
    """A knowledge base refused a document or a request; the message says what to do."""


class DocumentError(KnowledgeError):
    """A document cannot be ingested: too large, not text (binary), an unknown kind,
    or a parser that is not installed."""


class IndexMismatchError(KnowledgeError):
    """An index was built with other settings (chunking, embedder) than the knowledge
    base that opens it asks for; the message says how to reindex."""
