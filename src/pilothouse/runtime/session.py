"""Sessions: a conversation kept once in the store, each turn a run that appends to it.

Before sessions, a conversation was copied whole into every run (`run_started`'s
``history``), so storage grew with the square of its length and the conversation
itself existed nowhere but inside its last run. Now the store keeps each session's
messages once, in order (``seq`` 0, 1, 2, ...), each tagged with the run that appended
it; a turn's run writes only its new messages, in the same transaction as its events
(`SessionWrite`, queued with `Journal.add_session`), and history is rebuilt by reading
the session.

`Session` is a small handle on one session of a store, for applications and the CLI:
create or open it, read its messages (paged, for long conversations), append messages
that no run wrote (a human agent's reply), list its runs, export it. Agents drive
sessions through the store API directly (see `pilothouse.runtime.journal.Store`).

The data types are defined in `pilothouse.runtime.rows` (the stores build them, and
this module opens stores) and re-exported here, which is where users import them from.
`store` arguments take a store or a spec as `Agent(store=...)` does (`open_store`).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from typing import Any

from pilothouse.messages import Message
from pilothouse.runtime.journal import Store, open_store
from pilothouse.runtime.rows import (
    RunInfo,
    SessionInfo,
    SessionMessage,
    SessionWrite,
    check_session_id,
    encode_metadata,
)

__all__ = ["Session", "SessionInfo", "SessionMessage", "SessionWrite", "new_session_id"]


def new_session_id() -> str:
    """A short, time-sortable, collision-resistant session id (the run ids' scheme:
    milliseconds in hex, then 40 random bits)."""
    return f"{int(time.time() * 1000):x}-{secrets.token_hex(5)}"


class Session:
    """A handle on one session (conversation) in a store.

    Made with `Session.create` (a new session) or `Session.open` (an existing one,
    `SessionNotFoundError` otherwise): deliberately no "open or create", so that a
    mistyped id is an error rather than a new, empty conversation. The handle holds
    only the store and the id; every read goes to the store, so several handles (in
    several processes) on one session see the same conversation.
    """

    __slots__ = ("_id", "_store")

    def __init__(self, store: Store, session_id: str) -> None:
        """Prefer `create` or `open`: this does not check that the session exists."""
        self._store = store
        self._id = check_session_id(session_id)

    @classmethod
    def create(
        cls,
        store: Store | str | os.PathLike[str] | None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Session:
        """Record a new session and return its handle. `session_id` defaults to a new
        time-sortable id; a taken id raises `SessionExistsError`. `metadata` must be
        JSON (checked before the store is touched, like the id)."""
        sid = new_session_id() if session_id is None else check_session_id(session_id)
        encode_metadata(metadata)
        resolved = open_store(store)
        resolved.create_session(sid, metadata)
        return cls(resolved, sid)

    @classmethod
    def open(cls, store: Store | str | os.PathLike[str] | None, session_id: str) -> Session:
        """The handle of an existing session; `SessionNotFoundError` if there is none."""
        check_session_id(session_id)
        resolved = open_store(store)
        resolved.get_session(session_id)
        return cls(resolved, session_id)

    @property
    def id(self) -> str:
        """The session's id."""
        return self._id

    @property
    def store(self) -> Store:
        """The store that keeps the session."""
        return self._store

    def info(self) -> SessionInfo:
        """The session's record as stored now (message count, last update, metadata)."""
        return self._store.get_session(self._id)

    def messages(self, start: int = 0, limit: int | None = None) -> list[SessionMessage]:
        """The messages from seq `start` on, at most `limit` (None: all): one page."""
        return self._store.session_messages(self._id, start=start, limit=limit)

    def history(self) -> list[Message]:
        """Every message of the conversation, in order: what a next turn builds on."""
        return [m.message for m in self._store.session_messages(self._id)]

    def append(self, messages: Sequence[Message], author: str = "") -> int:
        """Append messages no run wrote (a human agent's reply, an imported transcript),
        labelled with `author`; returns the session's new message count."""
        return self._store.append_session(self._id, messages, author=author)

    def runs(self, limit: int | None = None) -> list[RunInfo]:
        """The session's runs (its turns), oldest first; all of them unless `limit`."""
        return self._store.list_runs(limit, session_id=self._id)

    def export(self) -> dict[str, Any]:
        """The whole session as JSON-able data: its record, every message (with seq,
        run, author and time) and the ids of its runs, oldest first. Three reads, not
        one snapshot: a turn that appends meanwhile may show in some and not others."""
        info = self.info()
        return {
            "session": {
                "session_id": info.session_id,
                "created": info.created,
                "updated": info.updated,
                "messages": info.messages,
                "metadata": info.metadata,
            },
            "messages": [
                {
                    "seq": m.seq,
                    "run_id": m.run_id,
                    "author": m.author,
                    "ts": m.ts,
                    "message": m.message.to_dict(),
                }
                for m in self.messages()
            ],
            "runs": [r.run_id for r in self.runs()],
        }

    def __repr__(self) -> str:
        return f"Session({self._id!r}, store={self._store!r})"
