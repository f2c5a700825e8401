"""`Memory`: a principal's long-term facts as two tools under the policy.

    memory = Memory(store)                       # the agent's store (or its spec)
    agent = Agent(model, tools=[*memory.tools(), ...], store=store, policy=policy)
    memory.write_for_person("alice", "landlord_iban", "DE89...", by="alice")

`remember(key, value)` is a side-effecting tool (the default policy refuses it until a
rule allows it) and idempotent per call (a resumed run writing again gets the fact its
call wrote: `on_doubt="retry"`). `recall(key=None, query=None)` is read-only. Whose
memory a call reads is never an argument: it is the principal the run acts for, read
from the run's own `run_started` in the journal (the record a resumed run also acts
on), so a model cannot ask for someone else's facts by name.

Provenance. A recall's result has two lists: `recalled` (facts runs wrote: model output,
possibly copied from an injected page) and `from_people` (facts a person wrote through
the application). No field of a tool's result is trusted unless its policy declares it,
so a recalled value is untrusted by default: a policy that needs a value from the user
(`trusted: [iban]`) refuses an IBAN a run once "remembered". To let what people wrote
count as theirs, declare ``recall: {trusted: [from_people.*.value]}``; `recalled` stays
untrusted whatever is declared, unless a rule names it explicitly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from pilothouse.exceptions import ToolError
from pilothouse.memory.facts import Fact, FactStore
from pilothouse.memory.store import open_facts
from pilothouse.runtime.journal import Store
from pilothouse.tools.tool import Tool, ToolContext, tool

__all__ = ["Memory"]


class Memory:
    """Long-term facts per principal, beside the journal in `store`."""

    def __init__(self, store: Store | str | None = None, *, facts: FactStore | None = None):
        if facts is None and store is None:
            raise ValueError("Memory needs the agent's store (or facts=...)")
        self.store: Store | None = None
        if store is not None:
            from pilothouse.runtime.journal import open_store

            self.store = open_store(store)
        self.facts: FactStore = facts if facts is not None else open_facts(self.store)
        self._principals: OrderedDict[str, str | None] = OrderedDict()  # the last 1,024 runs

    def principal_of(self, run_id: str) -> str | None:
        """Whom run `run_id` acts for (`Principal.user`), from its journal; fixed per run."""
        if run_id not in self._principals:
            if self.store is None:
                raise ToolError("this Memory has no journal store to read the principal from")
            from pilothouse.events import RunStarted

            user = None
            for event in self.store.events(run_id):
                if isinstance(event, RunStarted):
                    user = (event.principal or {}).get("user")
                    break
            self._principals[run_id] = user if isinstance(user, str) and user else None
            while len(self._principals) > 1024:
                self._principals.popitem(last=False)
        return self._principals[run_id]

    def _principal(self, ctx: ToolContext[Any]) -> str:
        principal = self.principal_of(ctx.run_id)
        if principal is None:
            raise ToolError(
                "memory is per person and this run acts for no one: run the agent with "
                "principal=Principal('user-id')"
            )
        return principal

    def write_for_person(self, principal: str, key: str, value: str, *, by: str) -> Fact:
        """Keep a fact a person gave the application (trusted where the policy says so)."""
        return self.facts.write(principal, key, value, author="person", by=by)

    def remember(self, ctx: ToolContext[Any], key: str, value: str) -> dict[str, Any]:
        principal = self._principal(ctx)
        try:
            fact = self.facts.write(
                principal,
                key,
                value,
                author="agent",
                run_id=ctx.run_id,
                event=ctx.idempotency_key,
            )
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        return {"remembered": fact.key, "fact_id": fact.fact_id, "supersedes": fact.supersedes}

    def recall(
        self, ctx: ToolContext[Any], key: str | None = None, query: str | None = None
    ) -> dict[str, Any]:
        principal = self._principal(ctx)
        if not key and not query:
            raise ToolError("give a key to read, or a query to search memory")
        try:
            if key:
                found = self.facts.get(principal, key)
                facts: Sequence[Fact] = [] if found is None else [found]
            else:
                facts = self.facts.search(principal, query or "", 5)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        return split_by_author(facts)

    def tools(self) -> list[Tool]:
        """`remember` (side-effecting, idempotent per call) and `recall` (read-only)."""
        memory = self

        @tool(name="remember", effect="side_effect", on_doubt="retry")
        def remember(ctx: ToolContext, key: str, value: str) -> dict[str, Any]:
            """Keep a fact about the user for later conversations; a key written again
            is superseded (the old value stays in the history).

            Args:
                key: a short name for the fact, such as "preferred_airport"
                value: the fact
            """
            return memory.remember(ctx, key, value)

        @tool(name="recall")
        def recall(
            ctx: ToolContext, key: str | None = None, query: str | None = None
        ) -> dict[str, Any]:
            """Read facts kept from earlier conversations: by key, or by searching words.

            Args:
                key: the exact key of a fact
                query: words to search the facts for
            """
            return memory.recall(ctx, key, query)

        return [remember, recall]

    def close(self) -> None:
        self.facts.close()


def split_by_author(facts: Sequence[Fact]) -> dict[str, Any]:
    """A recall's result: facts runs wrote and facts people wrote, in separate fields,
    so a policy can trust the second without trusting the first."""
    return {
        "recalled": [f.to_dict() for f in facts if f.author == "agent"],
        "from_people": [f.to_dict() for f in facts if f.author == "person"],
    }
