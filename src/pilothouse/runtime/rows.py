"""What every journal store checks the same way: a batch against the events already
stored, the errors that say a run's record is taken or damaged, and the session rows
(`SessionInfo`, `SessionMessage`, `SessionWrite`) with the checks on what goes in them.

Shared by `MemoryStore`, `SQLiteStore` (`pilothouse.runtime.journal`) and
`PostgresStore` (`pilothouse.runtime.postgres`), so the three stores agree on what
a duplicate event or session message is and name it in the same words. The session
types live here, below the stores, rather than in `pilothouse.runtime.session` (which
re-exports them): the stores build them, and `Session` opens stores, so defining them
beside `Session` would make the journal and the session modules import each other.
The event checks run only when a write meets a stored event or a run is missing:
never on a write's fast path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.events import Event, RunStatus, event_from_dict
from pilothouse.exceptions import (
    SessionBusyError,
    SessionExistsError,
    SessionNotFoundError,
    StoreError,
    WriteConflictError,
)
from pilothouse.messages import Message

# An event as the SQL stores keep it: (run_id, seq, ts, step, type, data).
EventRow = tuple[str, int, float, int, str, str]


@dataclass(slots=True)
class RunInfo:
    """One row of the run index: what ran, on what, and how it ended."""

    run_id: str
    agent: str
    model: str
    input: str
    status: RunStatus = "running"
    created: float = 0.0
    updated: float = 0.0
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    output: Any = None
    # The run tree and the conversation: set when the row is first written, never
    # changed by later writes of the row (a resumed run keeps its parent and session).
    parent_run_id: str | None = None
    root_run_id: str | None = None
    session_id: str | None = None


def encode_json(value: Any) -> str:
    """JSON text of an event's data: pydantic-core's encoder, ~4x faster than json.dumps."""
    from pydantic_core import to_json

    return to_json(value, fallback=str).decode()


def event_row(event: Event) -> EventRow:
    """An event as the row every SQL store keeps: (run_id, seq, ts, step, type, data)."""
    return event.run_id, event.seq, event.ts, event.step, event.type, encode_json(event.data())


def decode_event(run_id: str, row: Sequence[Any], where: str) -> Event:
    """The event a stored (seq, ts, step, type, data) row holds; a row that cannot be
    read is a `StoreError` naming the run, the event and the store (`where`)."""
    seq, ts, step, kind, data = row
    try:
        d = json.loads(data)
        return event_from_dict(
            {**d, "type": kind, "run_id": run_id, "seq": seq, "ts": ts, "step": step}
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"run {run_id!r}: event {seq} ({kind}) in {where} is corrupted: {exc}"
        ) from exc


RUN_COLUMNS = (
    "run_id, agent, model, input, status, created, updated, steps, input_tokens, "
    "output_tokens, cost, output, parent_run_id, root_run_id, session_id"
)


def run_info_of(row: tuple[Any, ...]) -> RunInfo:
    """A `RunInfo` from the `RUN_COLUMNS` of an index row (output stored as JSON)."""
    output = json.loads(row[11]) if row[11] is not None else None
    info = RunInfo(*row[:11])
    info.output = output
    info.parent_run_id, info.root_run_id, info.session_id = row[12:15]
    return info


def conflict_error(run_id: str, seqs: Iterable[int], where: str) -> WriteConflictError:
    """The error for a batch whose events `seqs` of run `run_id` meet other events
    already stored in `where` (a file name, a URL without its password)."""
    seqs = list(seqs)
    lo, hi = min(seqs), max(seqs)
    span = f"event {lo}" if lo == hi else f"events {lo}..{hi}"
    return WriteConflictError(
        f"cannot write run {run_id!r} to {where}: {span} clash with other events already "
        "stored at those sequence numbers (duplicate key): another process is driving this "
        "run; nothing was written"
    )


def index_damaged(run_id: str, where: str) -> str:
    """The message for a run that has events but no index row. Every write saves the
    row with the run's first events, so a missing row is damage, not an unknown run."""
    return (
        f"run {run_id!r} has events in {where} but no index row: the journal's run index "
        "is damaged; keep a copy of the journal and restore it from a backup"
    )


def unstored_rows(
    rows: Sequence[EventRow],
    stored: Callable[[str, list[int]], Iterable[Sequence[Any]]],
    where: str,
) -> list[EventRow]:
    """The rows of a batch that are not stored yet, after a write of it met stored
    events. `stored(run_id, seqs)` reads the stored (seq, ts, step, type, data) rows.

    A row stored exactly as it is in the batch (same time stamp, same content) is the
    batch itself, written by an earlier attempt whose answer was lost (a connection
    that broke after the server committed): it is skipped, so writing a batch again
    is safe. A different row at the same (run_id, seq) is another writer's event:
    `WriteConflictError` naming the run and the batch's sequence numbers.
    """
    by_run: dict[str, list[EventRow]] = {}
    for row in rows:
        by_run.setdefault(row[0], []).append(row)
    new: list[EventRow] = []
    for run_id, batch in by_run.items():
        have = {int(r[0]): tuple(r) for r in stored(run_id, [r[1] for r in batch])}
        for row in batch:
            old = have.get(row[1])
            if old is None:
                new.append(row)
            elif old != row[1:]:
                raise conflict_error(run_id, (r[1] for r in batch), where)
    return new


# --- sessions ---------------------------------------------------------------------

# Long enough for any id scheme (a UUID, "customer-42/chat-7"), short enough that an id
# is never a way to put a document into every log line and index entry.
MAX_SESSION_ID = 200
MAX_AUTHOR = 200


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One session (a conversation) as the store keeps it: when it began, when a
    message was last appended, how many messages it holds, and the caller's metadata."""

    session_id: str
    created: float
    updated: float
    messages: int
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SessionMessage:
    """One message of a session: its place (`seq`, 0-based and contiguous), the run
    whose turn appended it (None for an append outside any run), when it was stored,
    and who wrote it when that was not the run's agent (a human's reply)."""

    seq: int
    message: Message
    run_id: str | None
    ts: float
    author: str = ""


@dataclass(frozen=True, slots=True)
class SessionWrite:
    """The messages one run appends to its session, written with the run's events in
    one transaction (`Store.write(..., session=...)`).

    Each message carries `n`, its index among all the messages this run appends to the
    session: (session_id, run_id, n) is the dedup key, so a batch written again after a
    write whose answer was lost is not appended twice. `begin`: this write starts the
    run's turn, refused with `SessionBusyError` while another run of the session holds
    a live lease.
    """

    session_id: str
    run_id: str
    messages: tuple[tuple[int, Message], ...] = ()
    begin: bool = False

    def __post_init__(self) -> None:
        check_session_id(self.session_id)
        if not isinstance(self.run_id, str) or not self.run_id:
            raise ValueError(
                f"SessionWrite needs the id of the run that writes, not {self.run_id!r}"
            )
        messages = tuple(self.messages)
        for item in messages:
            if (
                not isinstance(item, tuple)
                or len(item) != 2
                or type(item[0]) is not int
                or item[0] < 0
                or not isinstance(item[1], Message)
            ):
                raise ValueError(
                    "SessionWrite.messages holds (n, Message) pairs, n the message's index "
                    f"(0, 1, ...) among those run {self.run_id!r} appends; got {item!r}"
                )
        object.__setattr__(self, "messages", messages)

    def merged(self, later: SessionWrite) -> SessionWrite:
        """This write followed by `later` (of the same run and session), as one write:
        messages concatenated, `begin` if either begins."""
        if (later.session_id, later.run_id) != (self.session_id, self.run_id):
            raise ValueError(
                f"cannot merge a write of session {later.session_id!r} by run {later.run_id!r} "
                f"into one of session {self.session_id!r} by run {self.run_id!r}: a journal "
                "writes into one session, for its own run"
            )
        return SessionWrite(
            self.session_id,
            self.run_id,
            self.messages + later.messages,
            self.begin or later.begin,
        )


def _bad_text(value: str, limit: int) -> str | None:
    """Why `value` cannot be an id or author (too long, a control character), or None."""
    if len(value) > limit:
        return f"it is {len(value)} characters long (at most {limit})"
    if not value.isprintable():
        return "it holds a control or other non-printable character"
    if value != value.strip():
        return "it starts or ends with white space"
    return None


def check_session_id(session_id: object) -> str:
    """`session_id` if it can name a session; `ValueError` (before any store is
    touched) if it is empty, too long or holds control characters: an id ends up in
    logs, URLs of the web console and terminal output."""
    if not isinstance(session_id, str):
        raise ValueError(f"a session id is a string, not {type(session_id).__name__}")
    problem = "it is empty" if not session_id else _bad_text(session_id, MAX_SESSION_ID)
    if problem is not None:
        raise ValueError(f"invalid session id {session_id[:60]!r}: {problem}")
    return session_id


def check_author(author: object) -> str:
    """`author` (may be empty) if it can label a message; `ValueError` otherwise."""
    if not isinstance(author, str):
        raise ValueError(f"a message's author is a string, not {type(author).__name__}")
    problem = _bad_text(author, MAX_AUTHOR) if author else None
    if problem is not None:
        raise ValueError(f"invalid author {author[:60]!r}: {problem}")
    return author


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """`messages` as a list, each checked to be a `Message` (a dict or a string would
    be stored as something no reader can rebuild)."""
    if isinstance(messages, (str, bytes, Message)):
        raise ValueError("append takes a sequence of Message objects, not a single one")
    found = list(messages)
    for m in found:
        if not isinstance(m, Message):
            raise ValueError(f"a session holds Message objects, not {type(m).__name__}: {m!r}")
    return found


def encode_metadata(metadata: Mapping[str, Any] | None) -> str:
    """The session metadata as the JSON text the stores keep; `ValueError` naming the
    problem if it is not a JSON object that reads back unchanged (a set, a date, a
    tuple or an integer key would come back different, or not at all)."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping):
        raise ValueError(f"session metadata is a dict, not {type(metadata).__name__}")
    value = dict(metadata)
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"session metadata must be JSON (dicts, lists, strings, numbers): {exc}"
        ) from exc
    if json.loads(text) != value:
        raise ValueError(
            "session metadata must read back from JSON unchanged: use string keys and lists "
            "(not tuples or integer keys)"
        )
    return text


SESSION_COLUMNS = "session_id, created, updated, messages, metadata"


def session_info_of(row: Sequence[Any]) -> SessionInfo:
    """A `SessionInfo` from a `SESSION_COLUMNS` row."""
    return SessionInfo(
        str(row[0]), float(row[1]), float(row[2]), int(row[3]), decode_metadata(row[4])
    )


def encode_message(message: Message) -> str:
    """A session message as the JSON text the SQL stores keep (`Message.to_dict()`),
    by pydantic-core's encoder like the events' data."""
    from pydantic_core import to_json

    return to_json(message.to_dict(), fallback=str).decode()


def decode_metadata(text: str | None) -> dict[str, Any]:
    """Stored metadata text back as a dict."""
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


def check_page(start: int, limit: int | None) -> None:
    """`session_messages`' window: `start` >= 0, `limit` None (all) or >= 0 (0: none).
    A negative start is refused rather than read Python-style from the end: the web
    console pages forward by seq, and a negative seq is a bug in the caller."""
    if type(start) is not int or start < 0:
        raise ValueError(f"start is a message's seq (0 or more), not {start!r}")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ValueError(
            f"limit is a count of messages (0 or more, or None for all), not {limit!r}"
        )


def check_window(limit: int | None, offset: int = 0) -> None:
    """A listing's `limit` (None: all) and `offset`, both 0 or more."""
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ValueError(f"limit is a count (0 or more, or None for all), not {limit!r}")
    if type(offset) is not int or offset < 0:
        raise ValueError(f"offset is a count (0 or more), not {offset!r}")


def session_not_found(session_id: str, where: str) -> SessionNotFoundError:
    """The error for an unknown session, naming the store and how to see the sessions."""
    return SessionNotFoundError(
        f"no session {session_id!r} in {where}; `pilothouse sessions list` shows the sessions",
        session_id=session_id,
    )


def session_exists(session_id: str, where: str) -> SessionExistsError:
    """The error for `create_session` with an id the store already has."""
    return SessionExistsError(
        f"session {session_id!r} already exists in {where}: open it (Session.open) or "
        "choose another id",
        session_id=session_id,
    )


def session_conflict(write: SessionWrite, n: int, where: str) -> WriteConflictError:
    """The error for a session message stored at (session, run, n) with other content."""
    return WriteConflictError(
        f"cannot write session {write.session_id!r} for run {write.run_id!r} to {where}: its "
        f"message {n} is already stored with other content: another process is driving this "
        "run; nothing was written"
    )


def new_session_messages(
    write: SessionWrite,
    stored: Mapping[int, str],
    encode: Callable[[Message], str],
    where: str,
) -> list[tuple[int, str]]:
    """The (n, JSON text) of the messages of `write` to append, in order, given the
    text of those already stored under its run (`stored`: n -> text, read for the
    write's n range). One stored identically is skipped (the batch's own earlier
    attempt); one stored differently, or two different messages at one n within the
    write, is a `WriteConflictError`."""
    seen = dict(stored)
    new: list[tuple[int, str]] = []
    for n, message in write.messages:
        text = encode(message)
        old = seen.get(n)
        if old is None:
            seen[n] = text
            new.append((n, text))
        elif old != text and json.loads(old) != json.loads(text):
            raise session_conflict(write, n, where)
    return new


def message_of(text: str, session_id: str, seq: int, where: str) -> Message:
    """The `Message` a stored JSON text holds; a `StoreError` naming the session and
    the message if it cannot be read."""
    try:
        return Message.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"session {session_id!r}: message {seq} in {where} is corrupted: {exc}"
        ) from exc


def session_busy(session_id: str, run_id: str, where: str) -> SessionBusyError:
    """The error for a turn that cannot begin while run `run_id` holds the session."""
    return SessionBusyError(
        f"session {session_id!r} in {where} is busy: run {run_id!r} holds a live lease on its "
        "turn, and two turns must not append to one conversation at once. Wait for that run "
        f"to end, or, if its process died, resume or settle it (`Agent.resume({run_id!r})`); "
        "nothing was written",
        session_id=session_id,
        run_id=run_id,
    )


def run_filter(
    session_id: str | None, status: str | None, mark: str
) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (with its leading space) and parameters of `list_runs`'s
    filters, in a store's parameter style (`mark`: ``?`` or ``%s``)."""
    terms: list[str] = []
    params: list[str] = []
    if session_id is not None:
        terms.append(f"session_id={mark}")
        params.append(session_id)
    if status is not None:
        terms.append(f"status={mark}")
        params.append(status)
    return (" WHERE " + " AND ".join(terms) if terms else ""), tuple(params)
