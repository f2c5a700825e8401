"""Role-play (CAMEL): a user-role agent instructs an assistant-role agent on a task,
turn by turn, until the user-role says the task is done (a marker) or a bound.

    play = RolePlay(trader, programmer, user_role="stock_trader",
                    assistant_role="python_programmer", store="team.db")
    result = await play.run("Write a trading bot for the stock market.")

It is a two-member group chat (`pilothouse.teams.groupchat`) with fixed order (the
user-role first), the CAMEL turn prompts (`roleplay_user`, `roleplay_assistant` in
prompts.toml, with the roles and the task), and the termination
``TextMention(marker) | MaxMessages(2 * max_turns)``: everything a group chat journals
(each turn a child run, the selection, the stop reason) and its resume, with a
journal whose run is marked ``roleplay``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pilothouse.exceptions import ConfigurationError
from pilothouse.policy.engine import Principal
from pilothouse.prompts import Prompts
from pilothouse.runtime.journal import Store, Subscriber, open_store

from .groupchat import ChatResult, GroupChat, MaxMessages, Member, RoundRobin, TextMention

MARKER = "<CAMEL_TASK_DONE>"


class _Play(GroupChat):
    kind = "roleplay"


class RolePlay:
    """Two agents on one task: `user` instructs, `assistant` carries out (see the module).
    `max_turns` bounds the instruction-and-reply rounds."""

    def __init__(
        self,
        user: Any,
        assistant: Any,
        *,
        user_role: str = "user_role",
        assistant_role: str = "assistant_role",
        marker: str = MARKER,
        max_turns: int = 10,
        name: str = "role-play",
        store: Store | str | None = None,
        prompts: Prompts | None = None,
    ) -> None:
        if user_role == assistant_role:
            raise ConfigurationError("the two roles need different names")
        if not marker.strip():
            raise ConfigurationError("the end marker must not be blank")
        if max_turns < 1:
            raise ConfigurationError("max_turns must be at least 1")
        self.user, self.assistant = user, assistant
        self.user_role, self.assistant_role = user_role, assistant_role
        self.marker, self.max_turns, self.name = marker, max_turns, name
        self.prompts = prompts or Prompts.default()
        self._store_spec = store
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self._store_spec)
        return self._store

    def chat(self, task: str) -> GroupChat:
        """The group chat that plays `task` (its turn prompts name the task)."""
        roles = {
            "user_role": self.user_role,
            "assistant_role": self.assistant_role,
            "task": task,
        }
        members = [
            Member(
                self.user,
                f"gives instructions as the {self.user_role}",
                self.user_role,
                self.prompts.render("roleplay_user", marker=self.marker, **roles),
            ),
            Member(
                self.assistant,
                f"carries out instructions as the {self.assistant_role}",
                self.assistant_role,
                self.prompts.render("roleplay_assistant", **roles),
            ),
        ]
        return _Play(
            members,
            selector=RoundRobin(),
            termination=TextMention(self.marker) | MaxMessages(2 * self.max_turns),
            max_turns=2 * self.max_turns,
            name=self.name,
            store=self.store,
            prompts=self.prompts,
        )

    async def run(
        self,
        task: str,
        *,
        run_id: str | None = None,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> ChatResult:
        """Play the task until the marker or the bound; the transcript is the result."""
        return await self.chat(task).run(
            task, run_id=run_id, deps=deps, principal=principal, subscribers=subscribers
        )

    async def resume(
        self,
        run_id: str,
        *,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> ChatResult:
        """Continue a role-play from its journal (see `GroupChat.resume`)."""
        task = self.store.get_run(run_id).input
        return await self.chat(task).resume(
            run_id, deps=deps, principal=principal, subscribers=subscribers
        )
