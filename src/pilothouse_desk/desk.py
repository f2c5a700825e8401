"""`Desk`: the support desk as a conversation service (pure Python; the HTTP server wraps it).

A conversation is a sequence of entries (customer, agent, human, system) and, in
the journal store, a session with the same id: what the agent reads (customer,
agent and human messages, each kept once). Each customer message is one agent run,
a turn of that session (`agent.run(text, session=conversation id)`); the run's
journal (in the desk's `Store`) is the record of what the agent did, and the desk
reads its outcome from the journal, not from the agent's words:

- an allowed, successful ``transfer_to_human`` call escalates the conversation
  (its ``summary`` argument becomes the escalation summary);
- a successful ``verify_identity`` call makes the conversation verified. That is
  typed state, not text: each run gets a `SupportDeps` whose ``verified`` starts
  from the conversation's stored customer (``customer_id``), the tool sets it, the
  policy's predicates read it, and after the run the desk writes it back. Later
  runs act for that customer (their `Principal`'s ``user``, journaled with the
  run) and, for a model that chooses its own steps, a step hook names the verified
  customer in the instructions (`verified_note`);
- a run paused by the policy (a refund above $200 is ``ask``) pauses the
  conversation and lists the call under `pending_approvals` until a human decides
  (`decide`, which resumes the run);
- any failure (a model error, a tool raising an unexpected exception, a budget
  stop) escalates the conversation: the conversation stays readable and goes to a
  human instead of being lost. The customer reads a neutral sentence with a short
  reference id; the detail (exception, run id) goes to a staff note, the escalation
  summary and the log (``pilothouse.support.desk``), all under that reference, because
  exception text carries endpoints, model names and sometimes credentials;
- a human closing a conversation refuses its calls still waiting for approval, in
  the runs' journals, so a later decision finds nothing to approve.

Staff notes (author ``staff``) and the escalation summary are for the console only:
`transcript` leaves the notes out unless asked for them (``staff=True``).

A reply is never lost to a crash or a stop (`recover`). ``desk_runs`` marks each
run ``delivered`` in the same transaction that writes its outcome into the
conversation, and the customer's message and its run's row are written together
before the run starts; so after a ``kill -9`` or an interrupted drain, the runs
whose outcome the conversation still owes are exactly those not delivered. A new
desk on the same files (`recover`, which the server runs at start) resumes each of
them from its journal (`Agent.resume`: finished tool calls are reused, an in-doubt
cancel or refund is reconciled from the shop's idempotency record, never done
twice), or, for a run that had already ended, reads its outcome from the journal,
and delivers it like any reply; a run that cannot be resumed (another live process
holds it, the model fails, ...) escalates its conversation like any failure. A
customer's next message first settles such runs of its conversation, so replies
land in order.

Storage: the desk's tables (``desk_conversations``, ``desk_entries``,
``desk_runs``, ``desk_approvals``) live in the shop's SQLite file, beside the data
they are about, so a restarted server (a new `Desk` on the same files) keeps every
conversation; the journal stays in its own store.

Statuses: ``open`` (the agent is answering), ``paused`` (waiting for an approval),
``escalated`` (in the human queue), ``claimed`` (a human is on it), ``resolved``
(ended by the customer without a human), ``closed`` (closed by a human).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pilothouse import Message, Model, Principal, RunResult, Session, Usage
from pilothouse.agent import new_run_id
from pilothouse.events import (
    ApprovalGiven,
    ApprovalRequested,
    ErrorOccurred,
    Event,
    FinalOutput,
    Stopped,
    ToolCalled,
    ToolReturned,
)
from pilothouse.exceptions import (
    PilothouseError,
    RunNotFoundError,
    SessionExistsError,
    SessionNotFoundError,
)
from pilothouse.runtime.journal import Store, Subscriber, open_store
from pilothouse.runtime.loop import PendingRequest

from .deps import SupportDeps, verified_in
from .shop import Shop, open_shop
from .supervisor import SUPERVISOR_LIMIT, check_limit
from .watch import WriteListener, watched

AgentFactory = Callable[[Shop, Store], Any]
"""Makes the desk's responder: an `Agent[SupportDeps, str]` or a `SupportTeam` (anything
with their `run` and `resume`)."""
SubscribersFor = Callable[[str], Sequence[Subscriber]]
T = TypeVar("T")
STATUSES = ("open", "paused", "escalated", "claimed", "resolved", "closed")
AUTHORS = ("customer", "agent", "human", "system", "staff")
STAFF_ONLY = frozenset({"staff"})
"""Authors of entries the customer never sees: internal detail for the console."""
HANDOVER = (
    "Sorry, something went wrong on our side; a person from our team will take over this "
    "conversation. Reference: {reference}"
)
"""What a customer reads when the assistant fails: no internals, a reference to quote."""
WAITING = "Your request is waiting for a team member's approval."
MAX_CANCEL_ROUNDS = 5
MAX_TREE_RUNS = 200
"""Runs read from one turn's run tree (a team's handoffs are bounded far below this)."""
SUPERVISOR = "agent:supervisor"
"""Who the team's supervisor agent decides as (``decided_by``, the journal's ``by``): not
a person, so its decisions never mark a conversation as handled by a human."""
"""Resumes tried when closing a conversation whose refused run asks for approval again."""

_log = logging.getLogger("pilothouse.support.desk")

SCHEMA = """
CREATE TABLE IF NOT EXISTS desk_conversations (
    id TEXT PRIMARY KEY, token TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL,
    updated REAL NOT NULL, resolved_at REAL, escalated_at REAL, customer_email TEXT,
    customer_id TEXT, summary TEXT, claimed_by TEXT, human_involved INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS desk_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL, author TEXT NOT NULL,
    text TEXT NOT NULL, ts REAL NOT NULL, run_id TEXT);
CREATE INDEX IF NOT EXISTS desk_entries_conv ON desk_entries (conversation_id, seq);
CREATE TABLE IF NOT EXISTS desk_runs (
    run_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, ts REAL NOT NULL, delivered REAL);
CREATE INDEX IF NOT EXISTS desk_runs_conv ON desk_runs (conversation_id, ts);
CREATE TABLE IF NOT EXISTS desk_approvals (
    key TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, run_id TEXT NOT NULL,
    tool TEXT NOT NULL, arguments TEXT NOT NULL, reason TEXT NOT NULL, requested REAL NOT NULL,
    approved INTEGER, decided_by TEXT, decided REAL);
"""


_recovery_log = logging.getLogger("pilothouse.support.recovery")
# Index statuses of runs that ended with an outcome the desk reads from the journal;
# every other status (running, interrupted, paused, in_doubt) is resumed.
_STOPS = ("budget_stop", "loop_stop", "output_invalid", "policy_stop")


class DeskError(PilothouseError):
    """A request the desk cannot serve: unknown conversation, wrong state, bad approval key."""


def new_reference() -> str:
    """A short id for one failure: the customer quotes it, staff find it in notes and log."""
    return secrets.token_hex(4).upper()


class ReplyNotRecovered(DeskError):
    """A reply interrupted by a crash or a stop could not be finished on restart (its
    conversation goes to a human with this as the reason)."""


class NotFound(DeskError):
    """A request names something the desk does not have (the server answers 404).

    Deliberately not a `KeyError`: a `KeyError` from a bug (a dict, a row) must stay a
    500, not pass for an unknown conversation."""


class ConversationNotFound(NotFound):
    """No conversation has this id."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation's state. `token` is the customer's secret for this conversation."""

    id: str
    token: str
    status: str
    created: float
    updated: float
    resolved_at: float | None
    escalated_at: float | None
    customer_email: str | None
    customer_id: str | None  # set once the customer's identity is verified
    summary: str | None  # the escalation summary
    claimed_by: str | None
    human_involved: bool

    def to_dict(self, *, with_token: bool = False) -> dict[str, Any]:
        d = {
            "id": self.id,
            "status": self.status,
            "created": self.created,
            "updated": self.updated,
            "resolved_at": self.resolved_at,
            "escalated_at": self.escalated_at,
            "customer_email": self.customer_email,
            "customer_id": self.customer_id,
            "summary": self.summary,
            "claimed_by": self.claimed_by,
            "human_involved": self.human_involved,
        }
        if with_token:
            d["token"] = self.token
        return d


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a transcript."""

    author: str  # customer | agent | human | system
    text: str
    ts: float
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"author": self.author, "text": self.text, "ts": self.ts, "run_id": self.run_id}


@dataclass(frozen=True, slots=True)
class Reply:
    """What `send` (or `decide`) produced: the agent's text, its run, the conversation status."""

    conversation_id: str
    run_id: str | None
    text: str
    status: str
    outcome: str  # the run's outcome ("final", "paused", ...), "error", or "human" (no run)

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "run_id": self.run_id,
            "text": self.text,
            "status": self.status,
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class Approval:
    """A tool call waiting for a human's decision (a policy ``ask``)."""

    conversation_id: str
    run_id: str
    key: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    requested: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "run_id": self.run_id,
            "key": self.key,
            "tool": self.tool,
            "arguments": self.arguments,
            "reason": self.reason,
            "requested": self.requested,
        }


@dataclass(frozen=True, slots=True)
class Figures:
    """The desk's figures (the issue's list), computed from the desk's tables and journals."""

    conversations: int
    resolved_without_human: int
    resolved_share: float  # resolved_without_human / conversations (0 when none)
    median_resolution_seconds: float | None  # over conversations resolved or closed
    escalations: int
    policy_blocks: int  # tool calls the policy denied, from the journals' tool_call events
    approvals: int  # calls that waited for an approval (the supervisor's or a human's)
    supervisor_decisions: int = 0  # of those, approved or refused by the team's supervisor

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "resolved_without_human": self.resolved_without_human,
            "resolved_share": self.resolved_share,
            "median_resolution_seconds": self.median_resolution_seconds,
            "escalations": self.escalations,
            "policy_blocks": self.policy_blocks,
            "approvals": self.approvals,
            "supervisor_decisions": self.supervisor_decisions,
        }


@dataclass(frozen=True, slots=True)
class Recovered:
    """One interrupted reply `Desk.recover` settled."""

    run_id: str
    conversation_id: str
    found: str  # the run's journal status at restart ("running", "interrupted", ..., "missing")
    outcome: str  # "delivered" (the reply or a pause is in the conversation) | "escalated"
    detail: str = ""  # for an escalation: why the run could not be finished

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "conversation_id": self.conversation_id,
            "found": self.found,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What `Desk.recover` did: one entry per reply the conversations were owed."""

    runs: tuple[Recovered, ...] = ()
    seconds: float = 0.0

    @property
    def delivered(self) -> int:
        return sum(1 for r in self.runs if r.outcome == "delivered")

    @property
    def escalated(self) -> int:
        return sum(1 for r in self.runs if r.outcome == "escalated")

    def summary(self) -> str:
        """One line for the log."""
        if not self.runs:
            return "no interrupted replies to recover"
        return (
            f"recovered {len(self.runs)} interrupted repl{'y' if len(self.runs) == 1 else 'ies'} "
            f"in {self.seconds:.2f} s: {self.delivered} delivered, {self.escalated} escalated "
            "to the human queue"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [r.to_dict() for r in self.runs],
            "delivered": self.delivered,
            "escalated": self.escalated,
            "seconds": self.seconds,
        }


_COLUMNS = (
    "id, token, status, created, updated, resolved_at, escalated_at, customer_email, "
    "customer_id, summary, claimed_by, human_involved"
)


def _conversation(row: Sequence[Any]) -> Conversation:
    values = list(row)
    values[-1] = bool(values[-1])
    return Conversation(*values)


class Desk:
    """The conversation service over one shop, one journal store and one agent.

    `model` is handed to `build_support_agent` (default: the embedded model);
    `team=True` answers with the `SupportTeam`, whose supervisor approves refunds up to
    `supervisor_limit` dollars without a person (default $500; see `supervisor`);
    `agent_factory(shop, store)` replaces the whole agent (tests, other models). The
    agent is built on first use. Methods are safe to call from one event loop; each
    conversation's sends are serialised by a lock.
    """

    def __init__(
        self,
        shop_path: str | Path,
        store: Store | str | None,
        *,
        model: Model | str | None = None,
        agent_factory: AgentFactory | None = None,
        team: bool = False,
        supervisor_limit: float = SUPERVISOR_LIMIT,
    ) -> None:
        self.supervisor_limit = check_limit(supervisor_limit)
        self.shop = open_shop(shop_path)
        # every run written (a team's children too) can be watched as it lands: `watch`
        self._watched = watched(open_store(store))
        self.store: Store = self._watched
        self._model = model
        self._factory = agent_factory
        self.team = team
        self._agent: Any = None
        self._help_base: Any = None
        self._db = sqlite3.connect(str(shop_path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL is set by the shop; see Shop
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._conv_locks: dict[str, asyncio.Lock] = {}
        self._migrate()

    def _migrate(self) -> None:
        """Add ``desk_runs.delivered`` to a desk written before it existed. Its runs were
        delivered by the code of the time, except those its journal says were left
        running or interrupted (the crash this column is for): those stay owed."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(desk_runs)")}
        if "delivered" in columns:
            return
        with self._tx():
            self._db.execute("ALTER TABLE desk_runs ADD COLUMN delivered REAL")
            for (run_id,) in self._db.execute("SELECT run_id FROM desk_runs").fetchall():
                status: str
                try:
                    status = self.store.get_run(run_id).status
                except RunNotFoundError:
                    status = "missing"
                if status not in ("running", "interrupted"):
                    self._exec("UPDATE desk_runs SET delivered = ts WHERE run_id = ?", run_id)

    @property
    def agent(self) -> Any:
        """The responder: the single agent, or with ``team=True`` the `SupportTeam`."""
        if self._agent is None:
            if self._factory is not None:
                self._agent = self._factory(self.shop, self.store)
            elif self.team:
                from .team import SupportTeam

                self._agent = SupportTeam(
                    model=self._model, store=self.store, supervisor_limit=self.supervisor_limit
                )
            else:
                from .agent import build_support_agent

                self._agent = build_support_agent(
                    model=self._model, store=self.store, base=self._shipped_help()
                )
        return self._agent

    @property
    def is_team(self) -> bool:
        """Whether the responder is a team (its supervisor reviews approvals first)."""
        return callable(getattr(self.agent, "review", None))

    def watch(self, listener: WriteListener) -> Callable[[], None]:
        """Tell `listener` each batch of events the desk's journal commits, for every run
        (a team's handoffs and the supervisor's reviews too, which a run's subscribers
        do not hear); returns how to stop. See `pilothouse_desk.watch`."""
        return self._watched.listen(listener)

    def tree(self, run_id: str) -> list[str]:
        """The run and every run under it (handoffs, delegations, reviews), depth first."""
        found: list[str] = []
        stack = [run_id]
        while stack and len(found) < MAX_TREE_RUNS:
            current = stack.pop()
            found.append(current)
            stack.extend(r.run_id for r in reversed(self.store.children(current)))
        return found

    def tree_events(self, run_id: str) -> list[Event]:
        """The events of every run of `run_id`'s tree, each run's in order, depth first
        (a single agent's run: its own events)."""
        events: list[Event] = []
        for member in self.tree(run_id):
            try:
                events.extend(self.store.events(member))
            except RunNotFoundError:
                continue
        return events

    def shutdown(self) -> None:
        """Close the desk's database connections (the journal store is the caller's)."""
        self._db.close()
        self.shop.close()

    # ------------------------------------------------------------------ storage helpers

    def _exec(self, sql: str, *args: Any) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """The desk writes inside are one transaction (nested uses join the outer one):
        a crash keeps all of them or none."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _deliver(self, run_id: str, write: Callable[[], T]) -> T:
        """`write` a run's outcome into its conversation and mark the run delivered, in
        one transaction, so that recovery delivers every run exactly once."""
        with self._tx():
            reply = write()
            self._exec("UPDATE desk_runs SET delivered = ? WHERE run_id = ?", time.time(), run_id)
        return reply

    def _add(self, conv_id: str, author: str, text: str, run_id: str | None = None) -> Entry:
        entry = Entry(author, text, time.time(), run_id)
        self._exec(
            "INSERT INTO desk_entries (conversation_id, author, text, ts, run_id) "
            "VALUES (?,?,?,?,?)",
            conv_id,
            author,
            text,
            entry.ts,
            run_id,
        )
        return entry

    def _set(self, conv_id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._exec(f"UPDATE desk_conversations SET {cols} WHERE id = ?", *fields.values(), conv_id)

    def _lock_for(self, conv_id: str) -> asyncio.Lock:
        lock = self._conv_locks.get(conv_id)
        if lock is None:
            lock = self._conv_locks[conv_id] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------------ customers

    async def open(self, customer_email: str | None = None) -> Conversation:
        """Start a conversation; the returned `token` is the customer's secret for it."""
        now = time.time()
        conv_id = f"c{int(now * 1000):x}{secrets.token_hex(3)}"
        self._exec(
            f"INSERT INTO desk_conversations ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            conv_id,
            secrets.token_urlsafe(24),
            "open",
            now,
            now,
            None,
            None,
            customer_email.strip().lower() if customer_email else None,
            None,
            None,
            None,
            0,
        )
        return self.get(conv_id)

    def authorize(self, conv_id: str, token: str) -> bool:
        """Whether `token` is this conversation's customer token (constant-time compare)."""
        rows = self._rows("SELECT token FROM desk_conversations WHERE id = ?", conv_id)
        expected = rows[0][0] if rows else secrets.token_urlsafe(24)  # same work when unknown
        return hmac.compare_digest(expected.encode(), token.encode()) and bool(rows)

    async def send(
        self, conv_id: str, text: str, *, subscribers: Sequence[Subscriber] = ()
    ) -> Reply:
        """The customer's next message: the agent answers it (or a human will, if escalated).

        Journal events of the run go to `subscribers` as they happen (for live views).
        Never raises for a failure of the agent: the conversation escalates instead.
        Raises `DeskError` for an empty message or a closed conversation.
        """
        text = text.strip()
        if not text:
            raise DeskError("the message is empty")
        async with self._lock_for(conv_id):
            # An earlier reply interrupted by a crash or a stop lands first, in order.
            await self._recover_conversation(conv_id, subscribers)
            conv = self.get(conv_id)
            if conv.status == "closed":
                raise DeskError(f"conversation {conv_id} is closed")
            self._session_of(conv)
            if conv.status in ("escalated", "claimed", "paused"):
                self._add(conv_id, "customer", text)
                self.store.append_session(conv_id, [Message.user(text)], author="customer")
                self._set(conv_id)
                waiting = (
                    "A human agent will answer here."
                    if conv.status != "paused"
                    else "Your request is waiting for a team member's approval."
                )
                return Reply(conv_id, None, waiting, conv.status, "human")
            run_id = new_run_id()
            with self._tx():  # the message and its owed reply are recorded together
                if conv.status == "resolved":  # the customer came back: it reopens
                    self._set(conv_id, status="open", resolved_at=None)
                self._add(conv_id, "customer", text)
                self._exec(
                    "INSERT INTO desk_runs (run_id, conversation_id, ts) VALUES (?,?,?)",
                    run_id,
                    conv_id,
                    time.time(),
                )
            deps = self._deps(conv)
            try:
                result = await self.agent.run(
                    text,
                    session=conv_id,
                    deps=deps,
                    run_id=run_id,
                    subscribers=subscribers,
                    principal=self._principal(conv),
                )
                result = await self._supervise(conv_id, result, deps, subscribers)
            except Exception as exc:  # model failure, bug: keep the conversation, hand it over
                return self._deliver(run_id, partial(self._failed, conv_id, run_id, exc))
            return self._deliver(run_id, partial(self._after_run, conv_id, result, deps))

    def _principal(self, conv: Conversation) -> Principal:
        """Who the run acts for (journaled with it): the verified customer, if any."""
        return Principal(
            user=conv.customer_id, role="customer", attributes={"conversation": conv.id}
        )

    def _deps(self, conv: Conversation, run_id: str | None = None) -> SupportDeps:
        """A run's deps: the shop, and the conversation's verified customer.

        For a run being resumed (`run_id`), a verification its journal recorded before
        the stop counts too: recorded calls are reused, not run again, so they do not
        set the deps themselves (see `verified_in`).
        """
        verified = conv.customer_id
        if run_id is not None:
            verified = verified_in(self.tree_events(run_id), self.shop) or verified
        return SupportDeps(self.shop, verified)

    def _session_of(self, conv: Conversation) -> None:
        """Make sure the conversation has its session in the journal store.

        Each turn is a run of the session (`agent.run(..., session=conv.id)`): the
        session holds what the agent reads (customer, agent and human messages), once,
        instead of a copy in every run. A conversation opened before sessions gets one
        here, filled from its transcript.
        """
        try:
            self.store.get_session(conv.id)
            return
        except SessionNotFoundError:
            pass
        try:
            Session.create(self.store, conv.id, metadata={"desk": "conversation"})
        except SessionExistsError:  # another request made it meanwhile
            return
        earlier = [
            (Message.user(e.text) if e.author == "customer" else Message.assistant(e.text), e)
            for e in self.transcript(conv.id)
            if e.author in ("customer", "agent", "human")
        ]
        for message, entry in earlier:
            self.store.append_session(conv.id, [message], author=entry.author)

    def _failed(self, conv_id: str, run_id: str | None, exc: BaseException) -> Reply:
        note = self._hand_over(conv_id, run_id, f"{type(exc).__name__}: {exc}", exc)
        return Reply(conv_id, run_id, note, "escalated", "error")

    def _hand_over(
        self, conv_id: str, run_id: str | None, detail: str, exc: BaseException | None = None
    ) -> str:
        """Escalate after a failure; return the neutral sentence the customer reads.

        `detail` (exception text, a budget stop) names endpoints, models, limits and
        sometimes secrets, so it goes only to the log, a staff note and the escalation
        summary, each with the reference id the customer's sentence gives.
        """
        reference = new_reference()
        _log.error(
            "conversation %s, run %s: the assistant failed (reference %s): %s",
            conv_id,
            run_id,
            reference,
            detail,
            exc_info=exc,
        )
        note = HANDOVER.format(reference=reference)
        self._add(conv_id, "system", note, run_id)
        self._add(
            conv_id,
            "staff",
            f"Assistant failure (reference {reference}, run {run_id}): {detail[:2000]}",
            run_id,
        )
        self._escalate(conv_id, f"Assistant failure (reference {reference}): {detail[:200]}")
        return note

    def _escalate(self, conv_id: str, summary: str) -> None:
        conv = self.get(conv_id)
        if conv.status in ("escalated", "claimed", "closed"):
            return
        self._set(conv_id, status="escalated", escalated_at=time.time(), summary=summary)

    def _after_run(self, conv_id: str, result: RunResult[str], deps: SupportDeps) -> Reply:
        """Read the run's journal and move the conversation on (see the module docs); keep
        the customer the run's deps say is verified."""
        run_id = result.run_id
        if deps.verified is not None:
            self._set(conv_id, customer_id=deps.verified)
        transfer: str | None = None
        failures: list[str] = []
        calls: dict[tuple[str, int, int], ToolCalled] = {}
        for e in self.tree_events(run_id):
            if isinstance(e, ToolCalled):
                calls[(e.run_id, e.step, e.index)] = e
            elif isinstance(e, ToolReturned):
                called = calls.get((e.run_id, e.step, e.index))
                # an "ask" call with a result was approved (a refused one is an error result)
                allowed = called is not None and (
                    called.decision is None or called.decision.effect != "deny"
                )
                if not allowed or called is None:
                    continue
                name, content = e.result.name, e.result.content
                if e.result.is_error:
                    if content.startswith(f"Tool {name!r} failed:"):
                        failures.append(content)
                    continue
                if name == "transfer_to_human":
                    transfer = str(called.call.arguments.get("summary") or "Customer asked")
        if result.outcome == "paused":
            self._record_pending(conv_id, result)
            # The customer learns that a person decides, not the tool, its arguments or the
            # policy's reason: those are on the console.
            self._add(conv_id, "system", WAITING, run_id)
            self._set(conv_id, status="paused")
            return Reply(conv_id, run_id, WAITING, "paused", "paused")
        if result.outcome == "final":
            text = self._answer_text(conv_id, result)
            self._add(conv_id, "agent", text, run_id)
        else:
            stop = result.stop.message if result.stop is not None else result.outcome
            failures.append(f"the run stopped ({result.outcome}): {stop}")
            text = ""
        if failures:
            note = self._hand_over(conv_id, run_id, "; ".join(failures))
            if not text:
                text = note
        elif transfer is not None:
            self._add(conv_id, "system", f"Transferred to a human: {transfer}", run_id)
            self._escalate(conv_id, transfer)
        else:
            self._set(conv_id)
        return Reply(conv_id, run_id, text, self.get(conv_id).status, result.outcome)

    def _answer_text(self, conv_id: str, result: RunResult[Any]) -> str:
        """The customer's reply from a finished run. A help answer (the single agent's
        reply, or for a team the help specialist's output, read from the journal) is
        shown with its sources' titles (never chunk ids), and its citations, checked
        again against the knowledge base, go to a staff note."""
        from .help import help_reply

        text = str(result.output).strip() or "(no answer)"
        output: Any = result.output
        answered_by = result.run_id
        if self.is_team:
            answering = self._answering_run(result.run_id)
            if answering is None or answering.agent != "help" or answering.output is None:
                return text
            output, answered_by = answering.output, answering.run_id
        shown = help_reply(output, self.help_base)
        if shown is None:
            return text
        customer, note = shown
        self._add(conv_id, "staff", note, answered_by)
        return customer

    @property
    def help_base(self) -> Any:
        """The help articles' knowledge base the responder searches (a team's or single
        agent's own; else the shipped articles: chunk ids are content hashes, so any
        copy resolves the same citations)."""
        return getattr(self.agent, "base", None) or self._shipped_help()

    def _shipped_help(self) -> Any:
        if self._help_base is None:
            from .help import help_base

            self._help_base = help_base()
        return self._help_base

    def _answering_run(self, run_id: str) -> Any:
        """The run whose output ended a team's turn: the last finished handoff, followed
        down from the root (None: the root answered itself)."""
        current = None
        for _ in range(MAX_TREE_RUNS):
            parent = run_id if current is None else current.run_id
            handed = [
                r
                for r in self.store.children(parent)
                if r.run_id.endswith(".handoff") and r.status == "final"
            ]
            if not handed:
                break
            current = handed[-1]
        return current

    async def _supervise(
        self,
        conv_id: str,
        result: RunResult[Any],
        deps: SupportDeps,
        subscribers: Sequence[Subscriber],
    ) -> RunResult[Any]:
        """A team's paused run: its supervisor decides each waiting request first.

        Approve and refuse are recorded as the desk's decisions (``decided_by`` the
        supervisor, before the run resumes: a stop in between is finished by
        `recover` from them) and the run resumes with them; an escalated request
        stays pending for a person. Staff notes name every verdict and its review
        run. Bounded: a resumed run asking again is reviewed at most
        `MAX_CANCEL_ROUNDS` times.
        """
        reviewed: set[str] = set()
        for _ in range(MAX_CANCEL_ROUNDS):
            if result.outcome != "paused" or not self.is_team:
                return result
            decided: dict[str, bool] = {}
            for p in result.pending:
                if p.key in reviewed or p.kind != "approval":
                    continue
                reviewed.add(p.key)
                review_run, verdict = await self.agent.review(result.run_id, p, deps)
                what = f"{p.tool} {json.dumps(p.arguments)}"
                self._add(
                    conv_id,
                    "staff",
                    f"Supervisor {verdict.verdict}{'d' if verdict.verdict != 'escalate' else 's'}"
                    f" {what}: {verdict.reason} (review run {review_run})",
                    result.run_id,
                )
                if verdict.verdict == "escalate":
                    continue
                approve = verdict.verdict == "approve"
                decided[p.key] = approve
                self._store_request(conv_id, result.run_id, p, (approve, SUPERVISOR))
            if not decided:
                return result
            result = await self.agent.resume(
                result.run_id,
                approvals=decided,
                approved_by=SUPERVISOR,
                deps=deps,
                subscribers=subscribers,
            )
        return result

    def _store_request(
        self,
        conv_id: str,
        run_id: str,
        p: PendingRequest,
        decision: tuple[bool, str] | None = None,
    ) -> None:
        """A waiting call's row in ``desk_approvals``: listed for a person (a row already
        there is kept), or with the desk's `decision` (approved, by whom), which replaces
        any listing."""
        now = time.time()
        row: dict[str, Any] = {
            "key": p.key,
            "conversation_id": conv_id,
            "run_id": run_id,
            "tool": p.tool,
            "arguments": json.dumps(p.arguments),
            "reason": p.reason,
            "requested": now,
        }
        if decision is not None:
            row.update(approved=int(decision[0]), decided_by=decision[1], decided=now)
        verb = "IGNORE" if decision is None else "REPLACE"
        self._exec(
            f"INSERT OR {verb} INTO desk_approvals ({', '.join(row)}) "
            f"VALUES ({', '.join('?' * len(row))})",
            *row.values(),
        )

    def _record_pending(self, conv_id: str, result: RunResult[str]) -> None:
        """List a paused run's waiting calls for a human, with a staff note naming them."""
        for p in result.pending:
            self._store_request(conv_id, result.run_id, p)
        what = "; ".join(f"{p.tool} {json.dumps(p.arguments)} ({p.reason})" for p in result.pending)
        self._add(conv_id, "staff", f"Waiting for approval: {what}", result.run_id)

    def resolve(self, conv_id: str) -> Conversation:
        """The customer ended an open conversation: resolved (by the agent alone, unless a
        human was involved)."""
        conv = self.get(conv_id)
        if conv.status != "open":
            raise DeskError(f"conversation {conv_id} is {conv.status}; only an open one resolves")
        self._set(conv_id, status="resolved", resolved_at=time.time())
        return self.get(conv_id)

    # ------------------------------------------------------------------ reading

    def get(self, conv_id: str) -> Conversation:
        rows = self._rows(f"SELECT {_COLUMNS} FROM desk_conversations WHERE id = ?", conv_id)
        if not rows:
            raise ConversationNotFound(f"no conversation {conv_id!r}")
        return _conversation(rows[0])

    def conversations(self, limit: int = 100) -> list[Conversation]:
        """The most recent conversations, newest first."""
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM desk_conversations ORDER BY created DESC LIMIT ?", limit
        )
        return [_conversation(r) for r in rows]

    def transcript(self, conv_id: str, *, staff: bool = False) -> list[Entry]:
        """The conversation's entries, oldest first; staff notes only with ``staff=True``.

        The default is what the customer may read, so a caller that forgets the flag
        shows less, never more.
        """
        self.get(conv_id)
        rows = self._rows(
            "SELECT author, text, ts, run_id FROM desk_entries WHERE conversation_id = ? "
            "ORDER BY seq",
            conv_id,
        )
        return [Entry(*r) for r in rows if staff or r[0] not in STAFF_ONLY]

    def runs(self, conv_id: str) -> list[str]:
        """The conversation's run ids, oldest first (their journals show steps and decisions)."""
        rows = self._rows(
            "SELECT run_id FROM desk_runs WHERE conversation_id = ? ORDER BY ts, rowid", conv_id
        )
        return [r[0] for r in rows]

    def queue(self) -> list[Conversation]:
        """Conversations waiting for or held by a human (escalated or claimed), oldest first."""
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM desk_conversations WHERE status IN ('escalated', 'claimed') "
            "ORDER BY escalated_at"
        )
        return [_conversation(r) for r in rows]

    # ------------------------------------------------------------------ humans

    def claim(self, conv_id: str, human: str) -> Conversation:
        conv = self.get(conv_id)
        if conv.status not in ("escalated", "claimed"):
            raise DeskError(f"conversation {conv_id} is {conv.status}, not in the queue")
        if conv.status == "claimed" and conv.claimed_by != human:
            raise DeskError(f"conversation {conv_id} is already claimed by {conv.claimed_by}")
        self._set(conv_id, status="claimed", claimed_by=human, human_involved=1)
        self._add(conv_id, "system", f"{human} joined the conversation.")
        return self.get(conv_id)

    def reply(self, conv_id: str, human: str, text: str) -> Entry:
        """A human's message to the customer (claims the conversation if still unclaimed)."""
        if not text.strip():
            raise DeskError("the message is empty")
        conv = self.get(conv_id)
        if conv.status == "closed":
            raise DeskError(f"conversation {conv_id} is closed")
        if conv.status == "escalated" or (conv.status == "claimed" and not conv.claimed_by):
            self.claim(conv_id, human)
        elif conv.status == "claimed" and conv.claimed_by != human:
            raise DeskError(f"conversation {conv_id} is claimed by {conv.claimed_by}")
        self._set(conv_id, human_involved=1)
        self._session_of(conv)
        self.store.append_session(
            conv_id, [Message.assistant(text.strip())], author=f"human:{human}"
        )
        return self._add(conv_id, "human", text.strip())

    async def close(
        self, conv_id: str, human: str = "", *, subscribers: Sequence[Subscriber] = ()
    ) -> Conversation:
        """A human closes the conversation (it leaves the queue; its resolution time ends).

        Calls still waiting for approval are refused in the closer's name: left pending,
        a later approval would pay out and reopen a conversation nobody watches. The
        refusal is journaled the way any refusal is (the run resumes with the approval
        False and `approved_by` naming the closer); the resumed run's answer becomes a
        staff note, since the customer's conversation has ended.
        """
        async with self._lock_for(conv_id):
            conv = self.get(conv_id)
            if conv.status == "closed":
                return conv
            self._set(conv_id, status="closed", resolved_at=time.time())
            cancelled = await self._cancel_approvals(conv_id, human or "console", subscribers)
            if cancelled:
                self._add(conv_id, "system", "The request waiting for approval was cancelled.")
            self._add(conv_id, "system", "The conversation was closed.")
        return self.get(conv_id)

    async def _cancel_approvals(
        self, conv_id: str, closer: str, subscribers: Sequence[Subscriber]
    ) -> int:
        """Refuse the conversation's pending calls (see `close`); return how many."""
        cancelled = 0
        for _ in range(MAX_CANCEL_ROUNDS):  # a resumed run may ask again: refuse that too
            rows = self._rows(
                "SELECT key, run_id FROM desk_approvals "
                "WHERE conversation_id = ? AND approved IS NULL",
                conv_id,
            )
            if not rows:
                break
            by_run: dict[str, list[str]] = {}
            for key, run_id in rows:
                by_run.setdefault(run_id, []).append(key)
            # Refused in the desk first: whatever the resume does, nothing is approved later;
            # and the runs are owed until refused in their journals (see `recover`).
            with self._tx():
                self._exec(
                    "UPDATE desk_approvals SET approved = 0, decided_by = ?, decided = ? "
                    "WHERE conversation_id = ? AND approved IS NULL",
                    closer,
                    time.time(),
                    conv_id,
                )
                for run_id in by_run:
                    self._exec("UPDATE desk_runs SET delivered = NULL WHERE run_id = ?", run_id)
            cancelled += len(rows)
            for run_id, keys in by_run.items():
                await self._refuse(conv_id, run_id, keys, closer, subscribers)
                self._exec(
                    "UPDATE desk_runs SET delivered = ? WHERE run_id = ?", time.time(), run_id
                )
        return cancelled

    async def _refuse(
        self,
        conv_id: str,
        run_id: str,
        keys: list[str],
        closer: str,
        subscribers: Sequence[Subscriber],
    ) -> None:
        """Resume `run_id` with `keys` refused by `closer`; notes for staff, nothing for the
        customer."""
        try:
            result = await self.agent.resume(
                run_id,
                approvals=dict.fromkeys(keys, False),
                approved_by=closer,
                deps=self._deps(self.get(conv_id), run_id),
                subscribers=subscribers,
            )
        except Exception as exc:  # the desk's refusal stands; the journal may lack it
            reference = new_reference()
            _log.error(
                "conversation %s, run %s: recording the refusal of %s failed (reference %s)",
                conv_id,
                run_id,
                ", ".join(keys),
                reference,
                exc_info=exc,
            )
            self._add(
                conv_id,
                "staff",
                f"Closing refused {', '.join(keys)}, but resuming run {run_id} failed "
                f"(reference {reference}): {type(exc).__name__}: {str(exc)[:2000]}",
                run_id,
            )
            return
        if result.outcome == "paused":
            self._record_pending(conv_id, result)
        said = str(result.output).strip() if result.outcome == "final" else result.outcome
        self._add(
            conv_id,
            "staff",
            f"Closing the conversation refused {', '.join(keys)} ({closer}); the run "
            f"ended {result.outcome}: {said[:2000]}",
            run_id,
        )

    def approvals_of(self, conv_id: str) -> list[tuple[str, int | None, str | None]]:
        """(key, approved: 1, 0 or None while pending, decided by) of the conversation's
        requests for approval, oldest first."""
        rows = self._rows(
            "SELECT key, approved, decided_by FROM desk_approvals WHERE conversation_id = ? "
            "ORDER BY requested",
            conv_id,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def pending_approvals(self) -> list[Approval]:
        rows = self._rows(
            "SELECT conversation_id, run_id, key, tool, arguments, reason, requested "
            "FROM desk_approvals WHERE approved IS NULL ORDER BY requested"
        )
        return [Approval(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]

    async def decide(
        self,
        conv_id: str,
        key: str,
        approve: bool,
        *,
        human: str = "",
        subscribers: Sequence[Subscriber] = (),
    ) -> Reply:
        """Approve or refuse a waiting call; the paused run resumes and the agent answers."""
        async with self._lock_for(conv_id):
            if self.get(conv_id).status == "closed":
                raise DeskError(f"conversation {conv_id} is closed; its requests were cancelled")
            rows = self._rows(
                "SELECT run_id FROM desk_approvals WHERE key = ? AND conversation_id = ? "
                "AND approved IS NULL",
                key,
                conv_id,
            )
            if not rows:
                raise DeskError(f"no pending approval {key!r} in conversation {conv_id}")
            run_id = rows[0][0]
            verdict = "approved" if approve else "refused"
            with self._tx():  # the decision, and the run's outcome owed again (see recover)
                self._exec(
                    "UPDATE desk_approvals SET approved = ?, decided_by = ?, decided = ? "
                    "WHERE key = ?",
                    int(approve),
                    human,
                    time.time(),
                    key,
                )
                self._add(
                    conv_id, "system", f"{human or 'A team member'} {verdict} the request.", run_id
                )
                self._set(conv_id, status="open", human_involved=1)
                self._exec("UPDATE desk_runs SET delivered = NULL WHERE run_id = ?", run_id)
            try:
                deps = self._deps(self.get(conv_id), run_id)
                result = await self.agent.resume(
                    run_id,
                    approvals={key: approve},
                    approved_by=human,
                    deps=deps,
                    subscribers=subscribers,
                )  # for the principal the run was started for (its journal holds it)
                result = await self._supervise(conv_id, result, deps, subscribers)
            except Exception as exc:
                return self._deliver(run_id, partial(self._failed, conv_id, run_id, exc))
            return self._deliver(run_id, partial(self._after_run, conv_id, result, deps))

    # ------------------------------------------------------------------ recovery

    def owed(self) -> list[tuple[str, str]]:
        """(run id, conversation id) of every run whose outcome its conversation has not
        received yet, oldest first: runs in flight, and runs a crash or a stop cut off."""
        rows = self._rows(
            "SELECT run_id, conversation_id FROM desk_runs WHERE delivered IS NULL "
            "ORDER BY ts, rowid"
        )
        return [(r[0], r[1]) for r in rows]

    async def recover(self, *, subscribers: SubscribersFor | None = None) -> RecoveryReport:
        """Finish the replies a crash or a stop interrupted (call once at start).

        For each run the conversations are still owed (`owed`), in order and under
        its conversation's lock: a run left ``running``, ``interrupted``, ``paused``
        or ``in_doubt`` is resumed from its journal (`Agent.resume`: nothing done is
        done again) and its outcome delivered like any reply; a run that had already
        ended is read from its journal and delivered; a run that cannot be finished
        (another live process holds it, the model fails, no journal was written)
        escalates its conversation to the human queue with the reason. Journal
        events of the resumed runs go to ``subscribers(conversation_id)`` (live
        views). Logs each run and a summary (logger ``pilothouse.support.recovery``).
        """
        started = time.monotonic()
        done: list[Recovered] = []
        conversations = list(dict.fromkeys(conv for _, conv in self.owed()))
        for conv_id in conversations:
            async with self._lock_for(conv_id):  # a customer's send waits, then sees it
                chosen = subscribers(conv_id) if subscribers is not None else ()
                done.extend(await self._recover_conversation(conv_id, chosen))
        report = RecoveryReport(tuple(done), time.monotonic() - started)
        if report.runs:
            _recovery_log.warning("%s", report.summary())
        return report

    async def _recover_conversation(
        self, conv_id: str, subscribers: Sequence[Subscriber]
    ) -> list[Recovered]:
        """Settle the conversation's owed runs (the caller holds its lock)."""
        rows = self._rows(
            "SELECT run_id FROM desk_runs WHERE conversation_id = ? AND delivered IS NULL "
            "ORDER BY ts, rowid",
            conv_id,
        )
        return [await self._recover_run(conv_id, row[0], subscribers) for row in rows]

    async def _recover_run(
        self, conv_id: str, run_id: str, subscribers: Sequence[Subscriber]
    ) -> Recovered:
        found: str
        try:
            found = self.store.get_run(run_id).status
        except RunNotFoundError:
            found = "missing"
        # A human closed the conversation meanwhile (its waiting calls refused, see
        # `close`): the run is still finished, and staff read its outcome.
        closed = self.get(conv_id).status == "closed"
        try:
            if found == "missing":  # stopped before the run's first write: nothing ran
                raise ReplyNotRecovered(
                    "the server stopped before the assistant started on the customer's "
                    "message; nothing was done for it"
                )
            deps = self._deps(self.get(conv_id), run_id)
            result = self._ended(run_id, found)
            if result is None:
                decided, by = self._decided(run_id)
                result = await self.agent.resume(
                    run_id,
                    approvals=decided or None,
                    approved_by=by,
                    deps=deps,
                    subscribers=subscribers,
                )
            if not closed:
                result = await self._supervise(conv_id, result, deps, subscribers)
            if closed:
                said = str(result.output).strip() if result.outcome == "final" else ""
                note = f"After a restart, run {run_id} ended {result.outcome}: {said[:2000]}"
                self._deliver(run_id, partial(self._add, conv_id, "staff", note, run_id))
            else:
                self._deliver(run_id, partial(self._after_run, conv_id, result, deps))
        except Exception as exc:
            if not isinstance(exc, ReplyNotRecovered):
                exc = ReplyNotRecovered(
                    f"the server stopped while the assistant was answering (run {run_id}, "
                    f"left {found}), and finishing the reply on restart failed: "
                    f"{type(exc).__name__}: {exc}"
                )
            if closed:
                note = f"Reply not recovered (run {run_id}): {exc}"[:2000]
                self._deliver(run_id, partial(self._add, conv_id, "staff", note, run_id))
            else:
                self._deliver(run_id, partial(self._failed, conv_id, run_id, exc))
            _recovery_log.warning(
                "conversation %s: run %s (%s) escalated: %s", conv_id, run_id, found, exc
            )
            return Recovered(run_id, conv_id, found, "escalated", str(exc))
        _recovery_log.warning(
            "conversation %s: run %s (%s) delivered after the restart", conv_id, run_id, found
        )
        return Recovered(run_id, conv_id, found, "delivered")

    def _ended(self, run_id: str, status: str) -> RunResult[str] | None:
        """The result of a run that ended before its outcome reached the conversation (read
        from its journal), or None if the run is to be resumed."""
        if status != "final" and status != "error" and status not in _STOPS:
            return None
        events = self.store.events(run_id)
        steps = max((e.step for e in events), default=0)
        for e in reversed(events):
            if isinstance(e, FinalOutput) and status == "final":
                return RunResult(run_id, "final", e.usage, steps, [], e.output)
            if isinstance(e, Stopped) and status in _STOPS:
                return RunResult(run_id, e.outcome, Usage(), steps, [], None, e)
            if isinstance(e, ErrorOccurred):
                raise ReplyNotRecovered(f"the assistant failed: {e.kind}: {e.message}")
        raise ReplyNotRecovered(f"run {run_id} says {status!r} but its journal does not show it")

    def _decided(self, run_id: str) -> tuple[dict[str, bool], str]:
        """Decisions the desk recorded that the run's journal does not have yet (a stop
        between `decide`'s or `close`'s record and the resumed run's first write), and
        who made them."""
        rows = self._rows(
            "SELECT key, approved, decided_by FROM desk_approvals "
            "WHERE run_id = ? AND approved IS NOT NULL",
            run_id,
        )
        if not rows:
            return {}, ""
        requested: set[str] = set()
        given: set[str] = set()
        for e in self.tree_events(run_id):
            if isinstance(e, ApprovalRequested):
                requested.add(e.key)
            elif isinstance(e, ApprovalGiven):
                given.add(e.key)
        open_keys = requested - given
        decided = {key: bool(approved) for key, approved, _ in rows if key in open_keys}
        by = next((who or "" for key, _, who in rows if key in open_keys), "")
        return decided, by

    # ------------------------------------------------------------------ figures

    def policy_blocks(self, run_ids: Sequence[str] | None = None) -> int:
        """Tool calls the policy denied, counted from the journals' tool_call decisions."""
        if run_ids is None:
            run_ids = [r[0] for r in self._rows("SELECT run_id FROM desk_runs")]
        blocks = 0
        for run_id in run_ids:
            try:
                events = self.tree_events(run_id)
            except PilothouseError:
                continue
            for e in events:
                if isinstance(e, ToolCalled) and e.decision and e.decision.effect == "deny":
                    blocks += 1
        return blocks

    def figures(self) -> Figures:
        """The dashboard's figures over conversations in which the customer said something.

        A conversation opened and left (or resolved) without a message is no work done:
        counted, it would inflate "resolved without a human".
        """
        rows = self._rows(
            "SELECT status, created, resolved_at, escalated_at, human_involved "
            "FROM desk_conversations c WHERE EXISTS (SELECT 1 FROM desk_entries e "
            "WHERE e.conversation_id = c.id AND e.author = 'customer')"
        )
        total = len(rows)
        alone = sum(1 for s, _, _, esc, human in rows if s == "resolved" and not esc and not human)
        durations = [end - start for _, start, end, _, _ in rows if end is not None]
        approvals = self._rows("SELECT COUNT(*) FROM desk_approvals")[0][0]
        by_supervisor = self._rows(
            "SELECT COUNT(*) FROM desk_approvals WHERE decided_by = ?", SUPERVISOR
        )[0][0]
        return Figures(
            conversations=total,
            resolved_without_human=alone,
            resolved_share=alone / total if total else 0.0,
            median_resolution_seconds=statistics.median(durations) if durations else None,
            escalations=sum(1 for r in rows if r[3] is not None),
            policy_blocks=self.policy_blocks(),
            approvals=int(approvals),
            supervisor_decisions=int(by_supervisor),
        )
