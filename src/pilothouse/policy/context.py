"""What the policy knows of a run: who it acts for and what has happened so far.

`Principal` (the end user, role and attributes), `CallRecord` (one executed call)
and `RunContext` (the run's principal, trusted user messages and call history, kept
by the loop and rebuilt from the journal by `RunContext.from_events`). Conditions
read it; nothing here decides. `Predicate` is the signature of an application's
named check over a call and this context.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pilothouse.messages import ToolCall

__all__ = ["CallRecord", "Lookup", "Predicate", "Principal", "RunContext"]


@dataclass(slots=True)
class Principal:
    """Who the run acts for: the end user, their role, and any other attributes."""

    user: str | None = None
    role: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the journal keeps (attributes must be JSON values)."""
        return {"user": self.user, "role": self.role, "attributes": dict(self.attributes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Principal:
        return cls(d.get("user"), d.get("role"), dict(d.get("attributes") or {}))

    def get(self, key: str) -> Any:
        """`user`, `role` or an attribute; None when absent."""
        if key == "user":
            return self.user
        if key == "role":
            return self.role
        return self.attributes.get(key)


_UNREAD: Any = object()


@dataclass(slots=True)
class CallRecord:
    """One executed call as the policy sees it: arguments, result, when, after which turn.

    `result` is the text the journal holds (what the model read); `value` is its
    structure: the JSON a tool's dict, list or model was serialised to, read back
    (once, on first use), or the text itself. Provenance conditions read fields of
    `value`; the journal stays the one source of truth.
    """

    name: str
    arguments: dict[str, Any]
    result: str | None = None
    ok: bool = True
    ts: float = 0.0
    effect: str = "unknown"
    turn: int = 0  # how many user messages had been seen when the call ran
    _value: Any = field(default=_UNREAD, repr=False, compare=False)
    _read: str | None = field(default=None, repr=False, compare=False)

    @property
    def value(self) -> Any:
        """The result as structured data (parsed JSON), or its text when it is not JSON."""
        text = self.result
        if self._value is _UNREAD or self._read is not text:
            value: Any = text
            if text and text[0] in "[{":
                try:
                    value = json.loads(text)
                except ValueError:
                    value = text
            self._value, self._read = value, text
        return self._value


@dataclass(slots=True)
class RunContext:
    """What the policy knows of the run so far: principal, user messages, executed calls.

    The loop keeps one per run (rebuilt from the journal by `from_events`). User
    messages are trusted input; tool results (`history[i].result`) are not, except the
    fields a policy declares trusted (`ToolInfo.trusted`). `bindings` tie values the user
    gave to roles (`bind`); `unset` names the checked call's arguments the caller left to
    their defaults (the loop sets it), which provenance conditions skip. `env` is
    application state for predicates (for example a shop database); `deps` the run's
    typed dependencies (`agent.run(..., deps=...)`), for predicates that read them.
    """

    principal: Principal = field(default_factory=Principal)
    user_messages: list[str] = field(default_factory=list)
    history: list[CallRecord] = field(default_factory=list)
    env: Any = None
    clock: Callable[[], float] = time.time
    denied: list[CallRecord] = field(default_factory=list)  # refused consequential calls
    deps: Any = None
    bindings: list[tuple[str, Any]] = field(default_factory=list)  # (role, value) the user gave
    unset: frozenset[str] = frozenset()  # the checked call's arguments left to their defaults
    provenance: dict[int, Any] | None = field(default=None, repr=False)  # provenance.py's index
    run_id: str | None = None  # the run being checked (aggregates leave it to `history`)
    session: str | None = None  # its session, if any (aggregates `over: session`)
    aggregates: dict[str, Any] | None = None  # name -> AggregateSource (the loop: "journal")
    secret_cache: dict[int, Any] = field(default_factory=dict, repr=False)  # secrecy.py's
    lookup_memo: dict[Any, Any] | None = field(default=None, repr=False)  # one check's lookups
    # one check's reasons why the `not` blocks that hold hold (a deny rule's reason says it)
    held: list[str] | None = field(default=None, repr=False)
    # one check's answers from aggregate sources: query -> (count, sum) (journaled)
    observed: dict[str, tuple[int, str]] | None = field(default=None, repr=False)
    # one check's lookups: query -> the value as JSON, or "!" and the error (journaled)
    looked_up: dict[str, str] | None = field(default=None, repr=False)
    # a replay: call id -> what the recorded check read (served instead of asking): an
    # aggregate's query -> (count, sum), a lookup's ("lookup:...") -> its recorded text
    replayed: Mapping[str, Mapping[str, Any]] | None = field(default=None, repr=False)
    _index: dict[str, list[CallRecord]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=0, repr=False)

    def calls_named(self, name: str) -> list[CallRecord]:
        """The executed calls of one tool, in order (an index kept in step with `history`)."""
        n = len(self.history)
        if n != self._indexed:
            if n < self._indexed:
                self._index, self._indexed = {}, 0
            for r in self.history[self._indexed :]:
                self._index.setdefault(r.name, []).append(r)
            self._indexed = n
        return self._index.get(name, [])

    def calls_by_name(self) -> dict[str, list[CallRecord]]:
        """Every executed call grouped by tool name (the index `calls_named` reads)."""
        self.calls_named("")  # bring the index up to date
        return self._index

    def record_denied(self, name: str, arguments: dict[str, Any], effect: str) -> None:
        """Record a refused call: it did not happen, but it used up the latest confirmation."""
        self.denied.append(
            CallRecord(name, arguments, None, False, self.clock(), effect, len(self.user_messages))
        )

    def bind(self, role: str, value: Any) -> None:
        """Bind a value the user gave to a role (a payee, a recipient): from now on it is
        trusted only for arguments a `trusted` condition asks to be of that role."""
        self.bindings.append((role, value))

    def add_user_message(self, text: str) -> None:
        """Record a message from the user (trusted input; resets confirmation)."""
        self.user_messages.append(text)

    def record(
        self,
        name: str,
        arguments: dict[str, Any],
        result: str | None = None,
        *,
        ok: bool = True,
        effect: str = "unknown",
        ts: float | None = None,
    ) -> CallRecord:
        """Record a call (denied calls are not recorded: they did not happen).

        The loop records an allowed call provisionally (`ok=False`, no result) before it
        runs, and fills in the returned record when it returns: counts and rate limits
        see the call at once, `after` conditions only once it has succeeded.
        """
        record = CallRecord(
            name,
            arguments,
            result,
            ok,
            self.clock() if ts is None else ts,
            effect,
            len(self.user_messages),
        )
        self.history.append(record)
        return record

    @staticmethod
    def recorded_answers(events: Iterable[Any]) -> dict[str, dict[str, Any]]:
        """Call id -> what its recorded check read: aggregate sources' answers (the
        decision's `observed`) and lookups' values (`looked_up`), which a replay serves
        instead of asking a store it does not have."""
        out: dict[str, dict[str, Any]] = {}
        for e in events:
            decision = getattr(e, "decision", None)
            if getattr(e, "type", "") != "tool_call" or decision is None:
                continue
            if decision.observed or decision.looked_up:
                read: dict[str, Any] = {q: (n, t) for q, n, t in decision.observed}
                read.update(decision.looked_up)
                out[e.call.id] = read
        return out

    @classmethod
    def from_events(cls, events: Iterable[Any], principal: Principal | None = None) -> RunContext:
        """Rebuild the context of a recorded run from its journal events.

        Trusted input is the run's input, as in the loop: later user-role messages
        of a run are the loop's own corrective messages, not the user's words.
        """
        ctx = cls(principal or Principal())
        pending: dict[tuple[int, int], tuple[ToolCall, str, float, bool]] = {}
        for e in events:
            kind = getattr(e, "type", "")
            if kind == "run_started":
                ctx.add_user_message(e.input)
            elif kind == "tool_call":
                decision = getattr(e, "decision", None)
                allowed = decision is None or decision.allowed
                pending[(e.step, e.index)] = (e.call, e.effect, e.ts, allowed)
            elif kind == "approval_given" and e.approved:
                got = pending.get((e.step, e.index))
                if got is not None:  # a person allowed it: it ran (or runs) as allowed
                    pending[(e.step, e.index)] = (*got[:3], True)
            elif kind == "tool_result":
                got = pending.pop((e.step, e.index), None)
                if got is not None and got[3]:
                    call, effect, ts, _ = got
                    ctx.record(
                        call.name,
                        call.arguments,
                        e.result.content,
                        ok=not e.result.is_error,
                        effect=effect,
                        ts=ts,
                    )
        return ctx


Predicate = Callable[[ToolCall, RunContext], bool]
"""An application's named check (`predicates:` in a rule): True when the rule may apply."""


Lookup = Callable[..., Any]
"""An application's named lookup (`lookup:` and ``$lookup.NAME`` in a rule): called as
``fn(context, **params)`` with the rule's parameters, it returns JSON data the policy
checks (the order of ``$args.order_id``, read from `context.deps`). It must not change
anything; an exception denies the call (fail-closed)."""
