"""Approvals over HTTP: a person decides a served run that waits, and it continues.

A served run whose policy answers ``ask`` pauses, and its client reads which tools wait
(`pilothouse.outcome` / `pending`). Without this module a person had to decide on the
server's machine (`pilothouse resume`). With approver keys (`create_app(approvers=...)`,
``serve-agent --approver-keys FILE``) two routes let people decide from anywhere:

* ``GET /v1/runs?status=paused``: approver keys only, the queue: the served agents'
  runs waiting for a person, newest first, each in full (``limit``, at most 100).
* ``GET /v1/runs/{run_id}``: a run's state. An approver sees what waits in full (tool,
  arguments, the policy's reason, whom the run acts for); the client that started the
  run (keyed mode: the key's owner is the run's principal) sees its status, the
  waiting tools' names, and the answer once there is one; anyone else reads 404, as
  for a run that does not exist.
* ``POST /v1/runs/{run_id}/approvals`` with ``{"decisions": {KEY: true | false |
  "answer text"}}``: approver keys only. Each decision is journaled
  (``approval_given``, ``by="approver:<name>"``) before anything runs, then the run
  continues in the server (`Agent.resume`, `Team.resume`) and the response says how it ended: its
  answer, or what still waits.
* A run stopped ``in_doubt`` (a side effect that may have happened and has no recorded
  result, whose tool says "ask") is listed with ``GET /v1/runs?status=in_doubt``, its
  view names the calls in doubt (``in_doubt``: key and tool; an approver also reads the
  arguments), and ``POST /v1/runs/{run_id}/settlements`` with ``{"settle": {KEY: "the
  result found" | true | false}}`` journals what a person found (``doubt_settled``,
  ``by="approver:<name>"``) with the result the model reads, and continues the run:
  the call is never run again (`Agent.resume(settle=...)`).

The trust boundary, each point tested as an attack:

* Approver keys are a set of their own: a client key is never an approver key (the
  same key in both files is refused at start), so a client cannot approve its own
  request by sending its key to the approval route (403).
* Separation of duties: an approver may not decide a run that acts for their own name
  (403), whatever keys they hold.
* Only runs of the served agents in their stores are reachable; a run that is not
  waiting (or not in doubt), a key that is not waiting (or not in doubt), or a decision
  of the wrong type is refused with a clear error (409, 400) and decides nothing. Two
  approvers deciding one run at once: the run's lease lets one resume it; the other
  reads 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.events import ApprovalGiven, ApprovalRequested, RunStarted, ToolCalled
from pilothouse.exceptions import (
    ApprovalError,
    ConfigurationError,
    PilothouseError,
    RequestRejected,
    RunFinishedError,
    RunLeasedError,
    RunNotFoundError,
    ToolCallInDoubtError,
)
from pilothouse.runtime.journal import Store
from pilothouse.runtime.loop import PendingRequest, RunSpec
from pilothouse.runtime.resume import in_doubt_calls, state_from_events
from pilothouse.runtime.rows import RunInfo
from pilothouse.serving.access import ApiKeys
from pilothouse.serving.agents import Served, served_stores

MAX_ANSWER_CHARS = 10_000
"""Longest answer text a decision may carry (a question's answer)."""
APPROVER_PREFIX = "approver:"


def check_disjoint(clients: ApiKeys | None, approvers: ApiKeys) -> None:
    """Refuse a key that is both a client's and an approver's (at start)."""
    if clients is not None and clients.digests() & approvers.digests():
        raise ConfigurationError(
            "a key is both a client key and an approver key: approvers need keys of their own"
        )


@dataclass(frozen=True, slots=True)
class ServedRun:
    """A root run of a served model, as the approval routes read it from its journal.

    For a team, `info` is the root run's and `waiting` the requests of the member run
    that waits (whose id is `waiting_id`); the root's status reads ``paused`` then."""

    model: Served
    info: RunInfo
    acts_for: str | None  # the principal's user (keyed mode: the client's owner)
    waiting: list[PendingRequest]
    waiting_agent: str | None = None  # whose run waits or is in doubt (a member, the agent)
    doubtful: tuple[ToolCalled, ...] = ()  # the calls in doubt (the root's, or a member's)

    @property
    def name(self) -> str:
        """The served model's name (the client's `model`)."""
        return self.model.name

    @property
    def status(self) -> str:
        return "paused" if self.waiting else self.info.status


def find_run(models: Mapping[str, Served], run_id: str) -> ServedRun | None:
    """The served root run `run_id` (None: no served model's store holds a root run of
    that model by that id)."""
    if not run_id or len(run_id) > 128:
        return None
    for store in served_stores(models):
        try:
            info = store.get_run(run_id)
        except RunNotFoundError:
            continue
        run = _served(models, info, store)
        if run is not None:
            return run
    return None


MAX_LISTED = 100
"""Most runs one queue request lists."""


QUEUES = ("paused", "in_doubt")
"""The statuses the approvers' queue lists: runs waiting for a decision, runs in doubt."""


def waiting_runs(
    models: Mapping[str, Served], limit: int, status: str = "paused"
) -> list[ServedRun]:
    """The served models' runs waiting for a person, newest first (at most `limit`):
    the approvers' queue, read from each store's run index (`status`, one of `QUEUES`;
    a team's waiting member run stands for its root). Every such run of a store is
    listed, so other agents' runs cannot crowd served ones out of the window; only the
    runs returned have their journals read."""
    paused = [
        (info, store)
        for store in served_stores(models)
        for info in store.list_runs(None, status=status)  # type: ignore[arg-type]
    ]
    paused.sort(key=lambda pair: pair[0].created, reverse=True)
    found: list[ServedRun] = []
    seen: set[str] = set()
    for info, store in paused:
        root = info if info.parent_run_id is None else _root(info, store)
        if root is None or root.run_id in seen:
            continue
        seen.add(root.run_id)
        run = _served(models, root, store)
        if run is not None and (run.waiting if status == "paused" else run.doubtful):
            found.append(run)
            if len(found) == limit:
                break
    return found


def _root(info: RunInfo, store: Store) -> RunInfo | None:
    try:
        return store.get_run(info.root_run_id) if info.root_run_id else None
    except RunNotFoundError:
        return None


def _served(models: Mapping[str, Served], info: RunInfo, store: Store) -> ServedRun | None:
    """`info`'s run (found in `store`) as a served run: a root run of a served model of
    that store, read from its journal (None for another agent's run or a child run)."""
    for model in models.values():
        if not model.owns(info, store):
            continue
        events = store.events(info.run_id)
        started = next((e for e in events if isinstance(e, RunStarted)), None)
        acts_for = started.principal.get("user") if started and started.principal else None
        waiting = model.waiting_run(info)
        if waiting is None:
            found = model.doubtful_run(info)
            doubtful = _doubtful(store, found, events) if found is not None else ()
            agent = found[0].agent if found is not None else None
            return ServedRun(model, info, acts_for, [], agent, doubtful)
        member_events = events if waiting.run_id == info.run_id else store.events(waiting.run_id)
        return ServedRun(model, info, acts_for, _waiting(member_events), waiting.agent)
    return None


def _doubtful(
    store: Store, found: tuple[RunInfo, RunSpec[Any]], root_events: list[Any]
) -> tuple[ToolCalled, ...]:
    """The in-doubt calls of the run `found` (the root, or a team's member, with the
    spec that reads it); none if the served definition can no longer resume it: the
    view then shows the status only."""
    info, spec = found
    events = root_events if info.parent_run_id is None else store.events(info.run_id)
    try:
        state = state_from_events(spec, info.run_id, events, info.created)
    except PilothouseError:
        return ()
    return tuple(in_doubt_calls(state).values())


def _waiting(events: list[Any]) -> list[PendingRequest]:
    requested = {e.key: e for e in events if isinstance(e, ApprovalRequested)}
    for e in events:
        if isinstance(e, ApprovalGiven):
            requested.pop(e.key, None)
    return [PendingRequest.from_event(e) for e in requested.values()]


def run_view(run: ServedRun, *, approver: bool) -> dict[str, Any]:
    """A run's state as the caller may read it (see the module docs)."""
    data: dict[str, Any] = {
        "object": "pilothouse.run",
        "id": run.info.run_id,
        "model": run.name,
        "status": run.status,
    }
    if run.info.status == "final":
        data["answer"] = run.info.output  # as journaled: text, or a structured output's JSON
    if run.waiting:
        data["pending"] = [
            {"key": p.key, "kind": p.kind, "tool": p.tool}
            | (
                {"arguments": p.arguments, "reason": p.reason, "agent": run.waiting_agent}
                if approver
                else {}
            )
            for p in run.waiting
        ]
    if run.doubtful:
        data["in_doubt"] = [
            {"key": c.idempotency_key, "tool": c.call.name}
            | ({"arguments": c.call.arguments, "agent": run.waiting_agent} if approver else {})
            for c in run.doubtful
        ]
    if approver:
        data["acts_for"] = run.acts_for
        data["input"] = run.info.input
    return data


def parse_decisions(body: dict[str, Any], run: ServedRun) -> dict[str, bool | str]:
    """The body's decisions, checked against what the run waits for (400 otherwise)."""
    decisions = body.get("decisions")
    if not isinstance(decisions, dict) or not decisions:
        raise RequestRejected(
            400, 'send {"decisions": {KEY: true | false | "answer"}}', param="decisions"
        )
    waiting = {p.key: p for p in run.waiting}
    out: dict[str, bool | str] = {}
    for key, value in decisions.items():
        pending = waiting.get(key)
        if pending is None:
            raise RequestRejected(
                400,
                f"the run does not wait for {str(key)[:80]!r}: GET the run for its pending keys",
                param="decisions",
                code="not_waiting",
            )
        if pending.kind == "approval" and not isinstance(value, bool):
            raise RequestRejected(400, f"{key}: an approval is true or false", param="decisions")
        if pending.kind == "question":
            if not isinstance(value, str) or not value.strip():
                raise RequestRejected(
                    400, f"{key}: a question's answer is a non-empty text", param="decisions"
                )
            if len(value) > MAX_ANSWER_CHARS:
                raise RequestRejected(
                    400,
                    f"{key}: an answer is at most {MAX_ANSWER_CHARS} characters",
                    param="decisions",
                )
        out[key] = value
    return out


def parse_settlements(body: dict[str, Any], run: ServedRun) -> dict[str, bool | str]:
    """The body's settlements, checked against the run's in-doubt calls (400 otherwise)."""
    settle = body.get("settle")
    if not isinstance(settle, dict) or not settle:
        raise RequestRejected(
            400, 'send {"settle": {KEY: "the result found" | true | false}}', param="settle"
        )
    doubtful = {c.idempotency_key for c in run.doubtful}
    out: dict[str, bool | str] = {}
    for key, value in settle.items():
        if key not in doubtful:
            raise RequestRejected(
                400,
                f"no call {str(key)[:80]!r} of the run is in doubt: GET the run for its keys",
                param="settle",
                code="not_in_doubt",
            )
        if (isinstance(value, str) and not value.strip()) or not isinstance(value, bool | str):
            raise RequestRejected(
                400,
                f"{key}: the result found (a non-empty text), true (it took effect) or false "
                "(it did not)",
                param="settle",
            )
        if isinstance(value, str) and len(value) > MAX_ANSWER_CHARS:
            raise RequestRejected(
                400, f"{key}: a result is at most {MAX_ANSWER_CHARS} characters", param="settle"
            )
        out[key] = value
    return out


def check_may_decide(run: ServedRun, approver: str, *, settling: bool = False) -> None:
    """403 for an approver deciding a run that acts for them; 409 for a run that is
    not waiting (`settling`: not in doubt)."""
    if run.acts_for is not None and run.acts_for == approver:
        raise RequestRejected(
            403,
            "an approver may not decide a run that acts for them: another person must",
            code="self_approval",
        )
    if settling and not run.doubtful:
        raise RequestRejected(409, f"the run is {run.status}, not in doubt", code="not_in_doubt")
    if not settling and not run.waiting:
        raise RequestRejected(
            409, f"the run is {run.status}, not waiting for a decision", code="not_waiting"
        )


async def decide(
    run: ServedRun, decisions: dict[str, bool | str], approver: str, *, settling: bool = False
) -> str:
    """Journal the decisions (`settling`: the settlements) and continue the run; its
    outcome, or ``in_doubt`` when a call of the continued run is in doubt in its turn
    (409 if another process holds the run, it ended meanwhile, or it no longer waits)."""
    by = APPROVER_PREFIX + approver
    try:
        result = await run.model.decide(
            run.info.run_id,
            by,
            approvals=None if settling else decisions,
            settle=decisions if settling else None,
        )
        return result.outcome
    except ToolCallInDoubtError:
        return "in_doubt"  # the run stands in doubt again: the queue lists it
    except RunLeasedError:
        raise RequestRejected(
            409, "another request is deciding or running this run", code="run_busy"
        ) from None
    except RunFinishedError:
        raise RequestRejected(409, "the run has already ended", code="not_waiting") from None
    except ApprovalError as exc:
        raise RequestRejected(409, str(exc), code="not_waiting") from None
