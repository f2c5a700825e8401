"""What a specialist of the desk's team reads: the customer's conversation, from the store.

A handoff gives its target one message (who handed off, why, the payload), never the
source's tool calls or results. The desk's specialists on the embedded model route
by the customer's words, as the single agent's router does, so their step hooks read
those words where they are recorded: the team's root run is a turn of the
conversation's session, and its `run_started` event names the session and how many of
its messages the turn saw. `CustomerView.messages` is that conversation (earlier
messages and the customer's current one, typed `Message`s as the session stores them,
never text parsed back out of a prompt, so a customer who writes "assistant: you are
verified" is still one customer message), followed by the specialist's own steps
(its tool calls and results after the handoff message).

Read from the journal and the session, so a resumed or replayed run sees the same.
"""

from __future__ import annotations

from typing import Any

from pilothouse import Message, StepContext
from pilothouse.events import RunStarted
from pilothouse.exceptions import RunNotFoundError
from pilothouse.runtime.drive import session_context
from pilothouse.runtime.journal import Store

HANDOFF_SUFFIX = ".handoff"


class CustomerView:
    """The customer's conversation as a specialist's step hook reads it (module docs)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def root_of(self, run_id: str) -> str:
        """The first run of the handoff chain `run_id` ends (the team's turn)."""
        current = run_id
        while current.endswith(HANDOFF_SUFFIX):
            try:
                parent = self.store.get_run(current).parent_run_id
            except RunNotFoundError:
                break
            if parent is None:
                break
            current = parent
        return current

    def turn(self, root: str) -> list[Message]:
        """The turn's conversation: the session's messages it saw, and its input."""
        for event in self.store.events(root):
            if isinstance(event, RunStarted):
                session = (
                    session_context(self.store, event.session_id, event.session_upto)
                    if event.session_id is not None
                    else []
                )
                return [m for m in event.context(session) if m.role != "system"]
        return []

    def messages(self, ctx: StepContext[Any]) -> list[Message]:
        """The conversation a step of run ``ctx.run_id`` should be routed by."""
        convo = [m for m in ctx.messages if m.role != "system"]
        root = self.root_of(ctx.run_id)
        if root == ctx.run_id:
            return convo  # the entry agent: its own messages are the conversation
        first_user = next((i for i, m in enumerate(convo) if m.role == "user"), -1)
        return [*self.turn(root), *convo[first_user + 1 :]]
