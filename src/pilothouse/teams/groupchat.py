"""Group chat: members take turns on a shared transcript; a selector picks who speaks.

    chat = GroupChat(
        [Member(researcher, "finds facts"), Member(writer, "writes the text")],
        selector=ModelSelector(model),
        termination=TextMention("TERMINATE") | MaxMessages(8),
        store="team.db",
    )
    result = await chat.run("Write a note on tides.")

Why it is built this way:

- **Each turn is a child run** of the chat's run (``<chat>.<n>.0.turn``), each
  selector call too (``<chat>.<n>.0.select``), so a chat resumed after a crash re-runs
  no finished turn and asks no selector again (see `pilothouse.teams._chat_run`).
- **A selection is a journaled event** (`speaker_selected`: candidates, chosen, how,
  the selector call's usage): the trace and replay show who chose whom and why.
- **What a member sees** is the transcript as user-role messages naming their
  speakers, then its own turn prompt: only the messages, never another member's tool
  calls and results (the full history of other agents makes a model call tools it
  does not have).
- **Termination conditions compose** (`|`: any, `&`: all) and are functions of the
  journaled state (transcript, usage, time), so a resumed chat stops where the
  uninterrupted one would; the reason is journaled (`team_ended`). A hard bound
  (`max_turns`) holds even without a condition: no chat is endless.
- **Team usage** is the sum of every child's (members and selector calls), to the token.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_core import to_json

from pilothouse.events import ChatMessage as ChatMessageEvent
from pilothouse.events import SpeakerSelected, TeamEnded
from pilothouse.exceptions import ChatError, ConfigurationError
from pilothouse.messages import Message, Usage
from pilothouse.models.base import Model
from pilothouse.policy.engine import Principal
from pilothouse.prompts import Prompts
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import Store, Subscriber, open_store
from pilothouse.runtime.loop import RunResult

from ._chat_run import TeamDrive, drive_team

USER = "user"  # the speaker of the task


@dataclass(slots=True, frozen=True)
class Said:
    """One message of the shared transcript: who said it and what (text only)."""

    speaker: str
    text: str
    outcome: str = "final"  # the turn's outcome: ``paused`` when the member asked a person


@dataclass(slots=True, frozen=True)
class ChatState:
    """What termination conditions and selector rules read: the transcript (the task
    first, spoken by ``user``), what the team used so far, and seconds since it began."""

    transcript: tuple[Said, ...]
    usage: Usage
    elapsed: float

    @property
    def messages(self) -> int:
        """How many messages members wrote (the task is not counted)."""
        return len(self.transcript) - 1

    @property
    def last(self) -> Said:
        return self.transcript[-1]


# -- termination -------------------------------------------------------------------------


class Termination:
    """A condition that ends a chat; combine with ``|`` (either) and ``&`` (both)."""

    def check(self, state: ChatState) -> str | None:
        """The reason to stop (journaled), or None to go on."""
        raise NotImplementedError

    def describe(self) -> str:
        """A stable description (it joins the chat's definition hash)."""
        raise NotImplementedError

    def __or__(self, other: Termination) -> Termination:
        return AnyOf((self, other))

    def __and__(self, other: Termination) -> Termination:
        return AllOf((self, other))


@dataclass(slots=True, frozen=True)
class AnyOf(Termination):
    """Stops when any part stops (``a | b``); the reason is the first part's that fired."""

    parts: tuple[Termination, ...]

    def check(self, state: ChatState) -> str | None:
        for part in self.parts:
            reason = part.check(state)
            if reason is not None:
                return reason
        return None

    def describe(self) -> str:
        return "(" + " | ".join(p.describe() for p in self.parts) + ")"


@dataclass(slots=True, frozen=True)
class AllOf(Termination):
    """Stops when every part stops at once (``a & b``); the reasons joined by ``&``."""

    parts: tuple[Termination, ...]

    def check(self, state: ChatState) -> str | None:
        reasons = [part.check(state) for part in self.parts]
        if all(r is not None for r in reasons):
            return " & ".join(r for r in reasons if r is not None)
        return None

    def describe(self) -> str:
        return "(" + " & ".join(p.describe() for p in self.parts) + ")"


@dataclass(slots=True, frozen=True)
class MaxMessages(Termination):
    """Stops once members have written `n` messages."""

    n: int

    def check(self, state: ChatState) -> str | None:
        return f"max_messages({self.n})" if state.messages >= self.n else None

    def describe(self) -> str:
        return f"max_messages({self.n})"


@dataclass(slots=True, frozen=True)
class TextMention(Termination):
    """Stops when a member's last message contains `text` (e.g. ``TERMINATE``)."""

    text: str

    def check(self, state: ChatState) -> str | None:
        if state.messages and self.text in state.last.text:
            return f"text_mention({self.text!r})"
        return None

    def describe(self) -> str:
        return f"text_mention({self.text!r})"


@dataclass(slots=True, frozen=True)
class TokenBudget(Termination):
    """Stops once the team (members and selector calls) has used `n` tokens."""

    n: int

    def check(self, state: ChatState) -> str | None:
        return f"token_budget({self.n})" if state.usage.total_tokens >= self.n else None

    def describe(self) -> str:
        return f"token_budget({self.n})"


@dataclass(slots=True, frozen=True)
class Timeout(Termination):
    """Stops once `seconds` have passed since the chat began (checked between turns).
    `clock` is the wall clock by default; a test gives its own."""

    seconds: float
    clock: Callable[[], float] | None = field(default=None, compare=False)

    def check(self, state: ChatState) -> str | None:
        return f"timeout({self.seconds:g})" if state.elapsed >= self.seconds else None

    def describe(self) -> str:
        return f"timeout({self.seconds:g})"


@dataclass(slots=True, frozen=True)
class HandoffToUser(Termination):
    """Stops when a member hands the conversation to the person: its turn asked a
    person (`ask_human`, an approval) and paused; the question is its message."""

    def check(self, state: ChatState) -> str | None:
        return "handoff_to_user" if state.messages and state.last.outcome == "paused" else None

    def describe(self) -> str:
        return "handoff_to_user"


def _clock_of(termination: Termination) -> Callable[[], float] | None:
    if isinstance(termination, Timeout):
        return termination.clock
    if isinstance(termination, AnyOf | AllOf):
        for part in termination.parts:
            found = _clock_of(part)
            if found is not None:
                return found
    return None


# -- speaker selection --------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Member:
    """A member of a team: an agent, what it is good at (the model selector reads it),
    its name in the chat (default: the agent's), and its turn prompt (default:
    the `chat_turn` prompt)."""

    agent: Any
    description: str = ""
    name: str = ""
    prompt: str | None = None

    @property
    def id(self) -> str:
        return self.name or str(self.agent.name)


@dataclass(slots=True, frozen=True)
class Selection:
    """A selector's answer: the member, how it was chosen, and what choosing cost."""

    chosen: str
    how: str
    usage: Usage = field(default_factory=Usage)
    selector_run_id: str | None = None
    note: str = ""


class Selector:
    """Chooses the next speaker among `candidates` (names, in the chat's order)."""

    def describe(self) -> str:
        raise NotImplementedError

    async def select(
        self, drive: TeamDrive, step: int, state: ChatState, candidates: list[Member]
    ) -> Selection:
        raise NotImplementedError


def next_in_turn(state: ChatState, candidates: Sequence[Member], order: Sequence[str]) -> str:
    """The candidate after the last speaker in the chat's order (the first at the start):
    round-robin, and every fallback's deterministic choice."""
    names = [c.id for c in candidates]
    last = state.last.speaker
    if last not in order:
        return names[0]
    start = order.index(last)
    for k in range(1, len(order) + 1):
        name = order[(start + k) % len(order)]
        if name in names:
            return name
    return names[0]


class RoundRobin(Selector):
    """Members speak in the order given."""

    def describe(self) -> str:
        return "round_robin"

    async def select(
        self, drive: TeamDrive, step: int, state: ChatState, candidates: list[Member]
    ) -> Selection:
        return Selection(next_in_turn(state, candidates, _order(drive)), "round_robin")


Rule = Callable[[ChatState, list[str]], str | None]


class RuleSelector(Selector):
    """A function of the transcript chooses: ``rule(state, candidates) -> name | None``.
    None falls back to round-robin (journaled ``fallback``); a name that is not a
    candidate is a `ChatError` (a bug in the rule, not a choice)."""

    def __init__(self, rule: Rule, *, name: str = "") -> None:
        self.rule = rule
        self.name = name or getattr(rule, "__name__", "rule")

    def describe(self) -> str:
        return f"rule:{self.name}"

    async def select(
        self, drive: TeamDrive, step: int, state: ChatState, candidates: list[Member]
    ) -> Selection:
        names = [c.id for c in candidates]
        chosen = self.rule(state, names)
        if chosen is None:
            fallback = next_in_turn(state, candidates, _order(drive))
            return Selection(fallback, "fallback", note=f"rule {self.name} chose nobody")
        if chosen not in names:
            raise ChatError(
                f"the selector rule {self.name!r} chose {chosen!r}, which is not a candidate "
                f"({', '.join(names)})",
                run_id=drive.run_id,
            )
        return Selection(chosen, "rule")


class ModelSelector(Selector):
    """A model chooses from the candidates' descriptions; its reply is held to a JSON
    schema whose ``speaker`` is an enum of their names (a grammar on the embedded
    model), validated, and asked again up to `retries` times; a choice that never
    validates falls back to round-robin (journaled ``fallback`` with the reason).

    Each choice is a child run of the chat (``<chat>.<n>.0.select``): its prompt, its
    replies and its usage are in the journal, and a resumed chat does not ask again.
    With one candidate left there is nothing to choose: it speaks, without a model
    call (journaled ``only_candidate``)."""

    def __init__(
        self,
        model: Model | str,
        *,
        retries: int = 2,
        prompts: Prompts | None = None,
        name: str = "speaker-selector",
    ) -> None:
        if retries < 0:
            raise ConfigurationError("retries must be 0 or more")
        self.model, self.retries, self.name = model, retries, name
        self.prompts = prompts or Prompts.default()
        self._agents: dict[tuple[str, ...], Any] = {}

    def describe(self) -> str:
        model = self.model if isinstance(self.model, str) else self.model.name
        return f"model:{model}:{self.retries}"

    def _agent(self, names: tuple[str, ...]) -> Any:
        agent = self._agents.get(names)
        if agent is None:
            from pydantic import create_model

            from pilothouse.agent import Agent

            enum: Any = Literal.__getitem__(names)  # the schema's enum of the names
            choice = create_model("SpeakerChoice", speaker=(enum, ...))
            agent = Agent(
                self.model,
                self.prompts.render("speaker_selector"),
                output_type=choice,
                name=self.name,
                output_retries=self.retries,
                max_steps=self.retries + 1,
            )
            self._agents[names] = agent
        return agent

    async def select(
        self, drive: TeamDrive, step: int, state: ChatState, candidates: list[Member]
    ) -> Selection:
        names = tuple(c.id for c in candidates)
        if len(names) == 1:  # nothing to choose: no model call
            return Selection(names[0], "only_candidate")
        roster = "\n".join(f"- {c.id}: {c.description or '(no description)'}" for c in candidates)
        if drive.session_id is not None:  # the conversation is the session it reads
            question = self.prompts.render("speaker_selector_question", candidates=roster)
            result = await drive.child(
                step, "select", self._agent(names), question, from_session=True
            )
        else:
            transcript = "\n".join(f"[{s.speaker}] {s.text}" for s in state.transcript)
            question = self.prompts.render(
                "speaker_selector_input", transcript=transcript, candidates=roster
            )
            result = await drive.child(step, "select", self._agent(names), question)
        run_id = result.run_id
        if result.outcome == "final":
            return Selection(str(result.output.speaker), "model", result.usage, run_id)
        fallback = next_in_turn(state, candidates, _order(drive))
        note = result.stop.message if result.stop is not None else result.outcome
        return Selection(fallback, "fallback", result.usage, run_id, note)


def _order(drive: TeamDrive) -> list[str]:
    return drive.order


# -- the chat -----------------------------------------------------------------------------


@dataclass(slots=True)
class ChatResult:
    """How a chat ended: its transcript (the task first), why it stopped, its usage
    (every member turn and selector call), and the run id of its journal."""

    run_id: str
    transcript: list[Said]
    reason: str
    usage: Usage
    steps: int

    @property
    def messages(self) -> list[Said]:
        """The members' messages (the task left out)."""
        return self.transcript[1:]

    def to_json(self) -> dict[str, Any]:
        return {
            "transcript": [{"speaker": s.speaker, "text": s.text} for s in self.transcript],
            "reason": self.reason,
        }


class GroupChat:
    """Members taking turns on one transcript (see the module). `selector`: who speaks
    next (`RoundRobin` by default); `termination`: when to stop; `max_turns`: a bound
    that holds whatever the conditions say; `allow_repeat`: whether the last speaker
    may be chosen again; `budget`: the team's limits (tokens, cost, steps, seconds):
    each turn and selector call is capped to what remains of them, and the chat stops
    once one is used up (``budget(tokens: ...)``)."""

    kind = "groupchat"

    def __init__(
        self,
        members: Sequence[Member | Any],
        *,
        selector: Selector | None = None,
        termination: Termination | None = None,
        max_turns: int = 50,
        allow_repeat: bool = False,
        budget: Budget | None = None,
        name: str = "group-chat",
        store: Store | str | None = None,
        prompts: Prompts | None = None,
    ) -> None:
        self.members = [m if isinstance(m, Member) else Member(m) for m in members]
        if not self.members:
            raise ConfigurationError("a group chat needs at least one member")
        ids = [m.id for m in self.members]
        if len(set(ids)) != len(ids) or USER in ids:
            raise ConfigurationError(
                f"member names must be distinct and not {USER!r}: {', '.join(ids)}"
            )
        if max_turns < 1:
            raise ConfigurationError("max_turns must be at least 1")
        self.selector = selector or RoundRobin()
        self.termination = termination
        self.max_turns = max_turns
        self.allow_repeat = allow_repeat
        self.budget = budget
        self.name = name
        self.prompts = prompts or Prompts.default()
        self._store_spec = store
        self._store: Store | None = None
        self._clock = (_clock_of(termination) if termination is not None else None) or time.time

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self._store_spec)
        return self._store

    @property
    def definition_hash(self) -> str:
        """What a resume checks: the members, the selector, the conditions, the bound."""
        body = {
            "members": [[m.id, m.description, m.prompt] for m in self.members],
            "selector": self.selector.describe(),
            "termination": self.termination.describe() if self.termination else None,
            "max_turns": self.max_turns,
            "allow_repeat": self.allow_repeat,
            "budget": None if self.budget is None else repr(self.budget),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    async def run(
        self,
        task: str,
        *,
        run_id: str | None = None,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> ChatResult:
        """Run the chat on `task` to its end (a condition, or `max_turns`)."""
        from pilothouse.agent import new_run_id

        result: ChatResult = await drive_team(
            self.kind,
            self.name,
            self.definition_hash,
            [m.id for m in self.members],
            self.store,
            task,
            run_id or new_run_id(),
            self._body(task),
            resume=False,
            subscribers=subscribers,
            principal=principal,
            deps=deps,
        )
        return result

    async def resume(
        self,
        run_id: str,
        *,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> ChatResult:
        """Continue a chat that stopped (a crash, a kill) from its journal: journaled
        messages and selections are reused, a finished turn is read back, never re-run."""
        task = self.store.get_run(run_id).input
        result: ChatResult = await drive_team(
            self.kind,
            self.name,
            self.definition_hash,
            [m.id for m in self.members],
            self.store,
            task,
            run_id,
            self._body(task),
            resume=True,
            subscribers=subscribers,
            principal=principal,
            deps=deps,
        )
        return result

    def _body(self, task: str) -> Callable[[TeamDrive], Any]:
        async def body(drive: TeamDrive) -> ChatResult:
            return await self._drive(drive, task)

        return body

    def _state(self, drive: TeamDrive, transcript: list[Said]) -> ChatState:
        return ChatState(tuple(transcript), drive.usage, self._clock() - drive.started)

    async def _drive(self, drive: TeamDrive, task: str) -> ChatResult:
        drive.order = [m.id for m in self.members]
        drive.budget, drive.clock = self.budget, self._clock
        selections = {e.step: e for e in drive.recorded(SpeakerSelected)}
        said = {e.step: e for e in drive.recorded(ChatMessageEvent)}
        transcript = [Said(USER, task)]
        if drive.open_transcript(self.kind) is not None and not said:
            # the task opens the session: written with the next commit, which comes before
            # any turn reads it (a child's start is committed before the child runs)
            drive.say(0, _shown(transcript[0]))
        bound = MaxMessages(self.max_turns)
        step = 0
        while True:
            state = self._state(drive, transcript)
            reason = self.termination.check(state) if self.termination is not None else None
            if reason is None:
                reason = bound.check(state) or drive.exhausted()
            if reason is not None:
                break
            step += 1
            message = said.get(step)
            if message is None:
                selected = selections.get(step)
                if selected is None:
                    selected = await self._select(drive, step, state)
                member = self._member(drive, selected.chosen)
                message = await self._turn(drive, step, member, transcript)
            transcript.append(Said(message.speaker, message.text, message.outcome))
        drive.emit(TeamEnded(run_id=drive.run_id, step=step, reason=reason, messages=step))
        result = ChatResult(drive.run_id, transcript, reason, drive.usage, drive.steps)
        await drive.finish(result.to_json())
        return result

    def _member(self, drive: TeamDrive, name: str) -> Member:
        for m in self.members:
            if m.id == name:
                return m
        raise ChatError(f"no member is named {name!r}", run_id=drive.run_id)

    async def _select(self, drive: TeamDrive, step: int, state: ChatState) -> SpeakerSelected:
        candidates = list(self.members)
        if not self.allow_repeat and len(candidates) > 1 and state.messages:
            candidates = [m for m in candidates if m.id != state.last.speaker]
        selection = await self.selector.select(drive, step, state, candidates)
        names = [c.id for c in candidates]
        if selection.chosen not in names:  # a selector of one's own that misbehaves
            raise ChatError(
                f"the selector chose {selection.chosen!r}, which is not a candidate "
                f"({', '.join(names)})",
                run_id=drive.run_id,
            )
        event = SpeakerSelected(
            run_id=drive.run_id,
            step=step,
            candidates=names,
            chosen=selection.chosen,
            how=selection.how,
            usage=selection.usage,
            selector_run_id=selection.selector_run_id,
            note=selection.note,
        )
        drive.emit(event)
        await drive.commit()
        return event

    async def _turn(
        self, drive: TeamDrive, step: int, member: Member, transcript: list[Said]
    ) -> ChatMessageEvent:
        others = ", ".join(m.id for m in self.members if m.id != member.id) or "nobody"
        prompt = member.prompt or self.prompts.render("chat_turn", member=member.id, others=others)
        if drive.session_id is not None:  # the transcript so far is the session
            result = await drive.child(step, "turn", member.agent, prompt, from_session=True)
        else:
            history = [_shown(s) for s in transcript]
            result = await drive.child(step, "turn", member.agent, prompt, history)
        text, outcome = _text_of(result, member)
        event = ChatMessageEvent(
            run_id=drive.run_id,
            step=step,
            speaker=member.id,
            text=text,
            child_run_id=result.run_id,
            outcome=outcome,
        )
        drive.emit(event)
        drive.say(step, _shown(Said(member.id, text, outcome)))  # in the same transaction
        await drive.commit()
        return event


def _shown(said: Said) -> Message:
    """A transcript message as every member reads it: a user message naming its speaker."""
    return Message.user(f"[{said.speaker}] {said.text}")


def _text_of(result: RunResult[Any], member: Member) -> tuple[str, str]:
    """A turn's message: its output as text (JSON for a typed output), or for a turn
    that paused, the question it asked the person."""
    if result.outcome == "final":
        output = result.output
        return (output if isinstance(output, str) else to_json(output).decode()), "final"
    if result.outcome == "paused":
        asked = "; ".join(p.reason or p.tool for p in result.pending)
        return asked, "paused"
    note = result.stop.message if result.stop is not None else result.outcome
    return f"({member.id} stopped: {note})", result.outcome
