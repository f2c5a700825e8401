"""Compaction: a journaled view that fits a long conversation into a context window.

A long session outgrows the model's context. `Compaction` is a `prepare_step` hook:
below its token threshold it does nothing; above it, it builds a *view* of the
conversation, and the loop journals that view on the step's `model_request` (positions
of the messages kept as they are, the text of the ones it rewrote). The session's
stored messages and the run's journal are never changed: compaction decides what one
request sends, nothing else.

Two stages, cheapest first:
1. no model: the content of old tool results is cut to its head and tail, with a
   marker naming the call (`recall_result(call_id)` reads the whole result back from the
   journal, so an exact value is never lost for good);
2. a model summary (only with a `summarizer`): the oldest turns are replaced by one
   message summarising them. Summaries are kept per covered prefix, so a conversation
   that keeps growing is summarised again only when the view is over the threshold
   once more, and then from the previous summary plus the new turns. The summariser's
   call is a model call on the record (`hook_model_call`: request, response, usage,
   keyed by the digest of the turns it covers), made through the step's
   `StepContext.models`: a resumed run, or a replay, is served the recorded summary and
   never asks the summariser again. A summary reused from an earlier turn of the
   session (this process's cache, or that turn's journal when the hook has the `store`)
   is put on this run's record too, as a `hook_model_call` answered by the record
   (model ``reuse:<run>``, no usage): a later turn resumed or replayed alone is served
   the same summary, and no model is asked.

What is never done: split a tool call from its result (the view is cut only between
*units*: a message, or an assistant's tool calls with their results), or drop or
rewrite a unit whose calls are still pending (no result yet). The last `keep_recent`
units are always sent as they are.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.messages import Message, ModelResponse, ToolResult
from pilothouse.models.base import Capabilities, Model, ModelRequest, ModelSettings
from pilothouse.prompts import Prompts
from pilothouse.runtime.journal import Store
from pilothouse.runtime.step import HookModels, StepContext, StepOptions
from pilothouse.tools.tool import Tool, ToolContext, tool

__all__ = [
    "REUSE_MODEL",
    "SUMMARY_PURPOSE",
    "Compaction",
    "Unit",
    "estimate_tokens",
    "recall_result_tool",
    "trim_results",
    "units",
]


SUMMARY_PURPOSE = "compaction_summary"
"""The `purpose` of the summariser's `hook_model_call` events."""

REUSE_MODEL = "reuse:"
"""How the `model` of a `hook_model_call` begins when the summary was not asked for but
reused from an earlier turn of the session (the run that recorded it follows)."""


class _Recorded:
    """A `Model` answering with a summary already on the record: asked through the
    step's `HookModels`, it puts the reuse on this run's journal (no model is asked, no
    usage is spent). Nothing reaches it when this run's journal already holds the key."""

    def __init__(self, summary: str, source: str) -> None:
        self.summary = summary
        self.name = REUSE_MODEL + source
        self.capabilities = Capabilities()

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return ModelResponse(self.summary, model=self.name, finish_reason="stop")

    def stream(self, request: ModelRequest) -> AsyncIterator[Any]:
        raise NotImplementedError("a recorded summary is not streamed")

    def render(self, request: ModelRequest) -> str:
        return self.summary


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A model-free token estimate: 4 characters a token, 4 tokens of overhead a message.

    Deterministic and cheap; providers' tokenisers differ by tens of percent, so set
    the threshold with that margin below the real context length.
    """
    total = 0
    for m in messages:
        chars = len(m.content)
        for call in m.tool_calls:  # repr, not JSON: as long, give or take, and 5x cheaper
            chars += len(call.name) + len(repr(call.arguments))
        total += 4 + (chars + 3) // 4
    return total


@dataclass(frozen=True, slots=True)
class Unit:
    """Messages that stay together: one message, or tool calls with their results.

    `pending` says some call of the unit has no result yet.
    """

    start: int
    end: int
    pending: bool = False


def units(messages: Sequence[Message]) -> list[Unit]:
    """The conversation cut into units, in order, covering every message once."""
    out: list[Unit] = []
    i, n = 0, len(messages)
    while i < n:
        m = messages[i]
        if m.role == "assistant" and m.tool_calls:
            wanted = {c.id for c in m.tool_calls}
            j = i + 1
            while j < n and messages[j].role == "tool" and messages[j].tool_call_id in wanted:
                wanted.discard(messages[j].tool_call_id)
                j += 1
            out.append(Unit(i, j, pending=bool(wanted)))
            i = j
        else:
            out.append(Unit(i, i + 1))
            i += 1
    return out


def trim_results(
    messages: Sequence[Message],
    upto: int,
    *,
    head: int,
    tail: int,
    prompts: Prompts | None = None,
    memo: dict[int, tuple[Message, Message]] | None = None,
) -> list[Message]:
    """`messages` with the tool results before index `upto` cut to `head` + `tail`
    characters; every other message is the same object (the journal records its place).
    `memo` keeps each trimmed message by its original (held, so its id is not reused):
    the loop hands the same message objects to every step, and a step costs no re-cut."""
    prompts = prompts or Prompts.default()
    out = list(messages)
    for i in range(min(upto, len(out))):
        m = out[i]
        if m.role != "tool" or len(m.content) <= head + tail + 80:
            continue
        if memo is not None:
            known = memo.get(id(m))
            if known is not None and known[0] is m:  # the same message object as before
                out[i] = known[1]
                continue
        omitted = len(m.content) - head - tail
        marker = prompts.render(
            "compaction_trimmed", omitted=omitted, call_id=m.tool_call_id or "?"
        )
        text = m.content[:head] + marker + (m.content[-tail:] if tail else "")
        out[i] = Message("tool", text, (), m.tool_call_id, m.name, m.is_error)
        if memo is not None:
            memo[id(m)] = (m, out[i])
    return out


def _render(messages: Sequence[Message]) -> str:
    """The turns to summarise, as plain text the summariser reads."""
    lines: list[str] = []
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            calls = "; ".join(
                f"{c.name}({json.dumps(c.arguments, ensure_ascii=False, default=str)}) "
                f"[call {c.id}]"
                for c in m.tool_calls
            )
            lines.append(f"assistant: {m.content} calls {calls}".replace(":  calls", ": calls"))
        elif m.role == "tool":
            lines.append(f"tool {m.name} [call {m.tool_call_id}]: {m.content}")
        else:
            lines.append(f"{m.role}: {m.content}")
    return "\n".join(lines)


def _changed(body: Sequence[Message], view: list[Message]) -> list[Message] | None:
    """The view, or None when it is the conversation unchanged (nothing to record)."""
    if len(view) == len(body) and all(a is b for a, b in zip(view, body, strict=True)):
        return None
    return view


class Compaction:
    """A `prepare_step` hook: above `max_tokens`, send a compacted view of the conversation.

    `keep_recent` units at the end are always sent as they are; older tool results are
    cut to `head` + `tail` characters; then, if still too long and a `summarizer`
    model is given, the oldest turns become one summary message (`summary_tokens`
    caps its length). Give the agent `recall_result_tool(store)` too, so the model can
    read a trimmed result whole. `store` (the agent's) lets a later turn of a session
    reuse a summary an earlier turn recorded even in a new process, instead of asking
    the summariser again; a reuse is journaled in the run that reuses it either way.
    """

    def __init__(
        self,
        max_tokens: int,
        *,
        keep_recent: int = 6,
        head: int = 500,
        tail: int = 200,
        summarizer: Model | None = None,
        summary_tokens: int = 400,
        prompts: Prompts | None = None,
        store: Store | None = None,
    ) -> None:
        if max_tokens < 1 or keep_recent < 0 or head < 0 or tail < 0:
            raise ValueError("max_tokens must be positive; keep_recent, head, tail not negative")
        self.max_tokens = max_tokens
        self.keep_recent = keep_recent
        self.head = head
        self.tail = tail
        self.summarizer = summarizer
        self.summary_tokens = summary_tokens
        self.prompts = prompts or Prompts.default()
        self.store = store
        # digest of the messages a summary covers -> (the summary, the run that recorded
        # it; "" off the record), the last 256: a cache of model output keyed by exactly
        # what it summarised, shared by every session. A run that uses an entry it has
        # not recorded journals the reuse (`_journal_reuse`), so the cache never decides
        # what a run sent without the run's journal saying so.
        self._summaries: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.summaries_made = 0
        self.summaries_reused = 0  # reuses journaled (from the cache or the session)
        # run id -> the loop's conversation at the run's latest step (a reference, not a
        # copy): the journal's content for results not committed yet (a read-only step
        # is written within 50 ms, not at once), for `recall_result`. The last 64 runs.
        self._conversations: OrderedDict[str, Sequence[Message]] = OrderedDict()
        self._trimmed: dict[int, tuple[Message, Message]] = {}  # see `trim_results`
        self._cut_by = (head, tail)

    def _cut(self, body: Sequence[Message]) -> int:
        """Where the protected tail begins: the last `keep_recent` units, and nothing
        from the first unit with a pending call onwards."""
        spans = units(body)
        protected = max(len(spans) - self.keep_recent, 0)  # index of the first kept unit
        first = spans[protected].start if protected < len(spans) else len(body)
        for u in spans:
            if u.pending:
                first = min(first, u.start)
                break
        return max(first, 0)

    async def view(
        self, messages: Sequence[Message], models: HookModels | None = None, run_id: str = ""
    ) -> list[Message] | None:
        """The conversation to send (system prompt excluded), or None to send it whole.

        `models` (the step's `StepContext.models`) puts the summariser's calls on the
        run's record and serves recorded ones; without it the summariser is asked
        directly (off the record: for use outside a run). `run_id` (the step's) finds
        the run's session for summaries its earlier turns recorded (with `store`)."""
        head = list(messages[:1]) if messages and messages[0].role == "system" else []
        body = list(messages[len(head) :])
        if estimate_tokens(messages) <= self.max_tokens:
            return None
        cut = self._cut(body)
        if len(self._trimmed) > 4_096 or self._cut_by != (self.head, self.tail):
            self._trimmed.clear()  # bounded; and a change of head or tail cuts anew
            self._cut_by = (self.head, self.tail)
        trimmed = trim_results(
            body, cut, head=self.head, tail=self.tail, prompts=self.prompts, memo=self._trimmed
        )
        if estimate_tokens([*head, *trimmed]) <= self.max_tokens or self.summarizer is None:
            return _changed(body, trimmed)
        return _changed(body, await self._summarised(head, body, trimmed, cut, models, run_id))

    async def _summarised(
        self,
        head: list[Message],
        body: list[Message],
        trimmed: list[Message],
        cut: int,
        models: HookModels | None = None,
        run_id: str = "",
    ) -> list[Message]:
        # Unit boundaries before the cut (a summary covers whole units only), each with
        # the digest of the messages before it, hashed once front to back.
        running = hashlib.sha256()
        bounds: list[tuple[int, str]] = []
        for u in units(body):
            if u.end > cut:
                break
            for m in body[u.start : u.end]:
                running.update(json.dumps(m.to_dict(), sort_keys=True, default=str).encode())
                running.update(b"\n")
            bounds.append((u.end, running.copy().hexdigest()))
        if not bounds:
            return trimmed
        # Reuse the longest earlier summary that still covers a prefix of this body:
        # recorded in this run's journal (a resumed run, a replay), or made in this
        # process (then the reuse is journaled: `reused`).
        recorded = models.recorded(SUMMARY_PURPOSE) if models is not None else {}
        covered, summary, reused, source = 0, "", "", ""
        for n, digest in reversed(bounds):
            if digest in recorded:
                response = recorded[digest]
                covered, summary = n, response.text.strip()
                self._remember(digest, summary, _source(response, run_id))
                break
            if digest in self._summaries:
                covered, (summary, source) = n, self._summaries[digest]
                self._summaries.move_to_end(digest)
                reused = digest
                break
        upto, digest = bounds[-1]
        view = self._with_summary(summary, trimmed, covered) if covered else trimmed
        fits = estimate_tokens([*head, *view]) <= self.max_tokens
        if not fits and covered < upto and self.store is not None and models is not None:
            # about to ask the summariser: an earlier turn of the session may have
            # recorded a longer summary (this process did not make it: a new process)
            earlier = self._session_summaries(run_id)
            for n, key in reversed(bounds):
                if n <= covered:
                    break
                if key in earlier:
                    covered, (summary, source), reused = n, earlier[key], key
                    self._remember(key, summary, source)
                    break
            view = self._with_summary(summary, trimmed, covered) if covered else trimmed
            fits = estimate_tokens([*head, *view]) <= self.max_tokens
        if reused and models is not None:
            await self._journal_reuse(models, reused, summary, source, trimmed[:covered])
        if fits or covered == upto:
            return view
        earlier_turns = ([Message.user(self._summary_text(summary))] if covered else []) + trimmed[
            covered:upto
        ]
        summary = await self._summarise(earlier_turns, digest, models)
        self._remember(digest, summary, run_id if models is not None else "")
        return self._with_summary(summary, trimmed, upto)

    def _remember(self, digest: str, summary: str, source: str) -> None:
        self._summaries[digest] = (summary, source)
        self._summaries.move_to_end(digest)
        while len(self._summaries) > 256:
            self._summaries.popitem(last=False)

    async def _journal_reuse(
        self,
        models: HookModels,
        digest: str,
        summary: str,
        source: str,
        covered: Sequence[Message],
    ) -> None:
        """Put a summary this run did not ask for on its record (key: the digest of the
        turns it covers), answered by `_Recorded`: no model, no usage. The request is
        the one that would summarise those turns, for the reader of the trace."""
        if digest in models.recorded(SUMMARY_PURPOSE):
            return
        await models.generate(
            _Recorded(summary, source or "unrecorded"),
            self._request(covered),
            purpose=SUMMARY_PURPOSE,
            key=digest,
        )
        self.summaries_reused += 1

    def _session_summaries(self, run_id: str) -> dict[str, tuple[str, str]]:
        """Summaries the other turns of `run_id`'s session recorded: key -> (text, run)."""
        from pilothouse.events import HookModelCalled, RunStarted

        if self.store is None or not run_id:
            return {}
        events = self.store.events(run_id)
        started = next((e for e in events if isinstance(e, RunStarted)), None)
        if started is None or not started.session_id:
            return {}
        found: dict[str, tuple[str, str]] = {}
        for turn in self.store.list_runs(None, session_id=started.session_id):
            if turn.run_id == run_id:
                continue
            for event in self.store.events(turn.run_id):
                if isinstance(event, HookModelCalled) and event.purpose == SUMMARY_PURPOSE:
                    text = event.response.text.strip()
                    found.setdefault(event.key, (text, _source(event.response, turn.run_id)))
        return found

    def _summary_text(self, summary: str) -> str:
        return self.prompts.render("compaction_summary", summary=summary)

    def _with_summary(self, summary: str, trimmed: list[Message], covered: int) -> list[Message]:
        return [Message.user(self._summary_text(summary)), *trimmed[covered:]]

    async def _summarise(
        self, earlier: Sequence[Message], digest: str, models: HookModels | None
    ) -> str:
        assert self.summarizer is not None
        request = self._request(earlier)
        if models is None:
            response = await self.summarizer.generate(request)
            self.summaries_made += 1
        else:
            served = models.recorded(SUMMARY_PURPOSE).get(digest)
            response = await models.generate(
                self.summarizer, request, purpose=SUMMARY_PURPOSE, key=digest
            )
            self.summaries_made += served is None
        return response.text.strip()

    def _request(self, earlier: Sequence[Message]) -> ModelRequest:
        prompt = self.prompts.render("compaction_summary_request", conversation=_render(earlier))
        return ModelRequest(
            [Message.user(prompt)],
            settings=ModelSettings(max_tokens=self.summary_tokens, temperature=0),
        )

    def conversation(self, run_id: str) -> Sequence[Message]:
        """The conversation of run `run_id` as of its latest step this hook saw."""
        return self._conversations.get(run_id, ())

    async def __call__(self, ctx: StepContext[object]) -> StepOptions | None:
        self._conversations[ctx.run_id] = ctx.messages
        self._conversations.move_to_end(ctx.run_id)
        while len(self._conversations) > 64:
            self._conversations.popitem(last=False)
        view = await self.view(ctx.messages, ctx.models, ctx.run_id)
        return None if view is None else StepOptions(messages=view)


def _source(response: ModelResponse, run_id: str) -> str:
    """The run whose journal holds a summary first: `run_id`, unless that record is a
    reuse itself (then the run it names)."""
    if response.model.startswith(REUSE_MODEL):
        return response.model[len(REUSE_MODEL) :]
    return run_id


def recall_result_tool(store: Store, compaction: Compaction | None = None) -> Tool:
    """The `recall_result(call_id)` tool: the whole result of an earlier call, from the journal.

    It reads the run's own journal, then the journals of the other turns of its session
    (newest first): a result trimmed from a compacted view is never out of reach, and
    a call id of another conversation finds nothing. A result of this run not yet on
    disk (a read-only step is committed within 50 ms, not at once) is read from the
    conversation `compaction` last saw for this run: the same messages the journal
    is about to hold.
    """

    @tool(name="recall_result")
    def recall_result(ctx: ToolContext, call_id: str) -> str:
        """The whole result of an earlier tool call, by its call id (for a trimmed result).

        Args:
            call_id: the id named in the trimmed result
        """
        found = find_result(store, ctx.run_id, call_id)
        if found is None and compaction is not None:
            for m in reversed(compaction.conversation(ctx.run_id)):
                if m.role == "tool" and m.tool_call_id == call_id:
                    return m.content
        if found is None:
            from pilothouse.exceptions import ToolError

            raise ToolError(f"no result of a call {call_id!r} in this conversation")
        return found.full if found.full is not None else found.content

    return recall_result


def find_result(store: Store, run_id: str, call_id: str) -> ToolResult | None:
    """The recorded result of call `call_id` in run `run_id` or another turn of its session."""
    from pilothouse.events import RunStarted, ToolReturned

    events = store.events(run_id)
    runs = [run_id]
    started = next((e for e in events if isinstance(e, RunStarted)), None)
    if started is not None and started.session_id:
        turns = store.list_runs(None, session_id=started.session_id)
        runs += [r.run_id for r in reversed(turns) if r.run_id != run_id]
    for i, rid in enumerate(runs):
        for event in reversed(events if i == 0 else store.events(rid)):
            if isinstance(event, ToolReturned) and event.result.call_id == call_id:
                return event.result
    return None
