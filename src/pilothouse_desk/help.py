"""The help articles as a knowledge base, and answers from it with verified citations.

`help_base()` ingests the shipped ``articles/*.md`` into a `KnowledgeBase` (SQLite
FTS5, in memory by default: ten short articles index in milliseconds, and each
search is journaled as a `retrieval` event, so replay needs no index). Each article
is one document whose id is its file name (``refunds.md``) and whose title is its
heading.

`help_agent` is the team's help-articles specialist: `rag_agent` over that base, its
search tool named ``search_help`` (the name the policy and the single agent's tool
use), its output an `Answer` whose ``[n]`` citations the checker verifies against
the passages the run was shown, without a model (a bad citation is refused with
`ModelRetry` and the model asked again). On the embedded model a step hook
(`HelpRouter`) drives it: one search with the customer's question as the only query
the grammar allows, then an answer written from the best passage: its sentence that
shares the most words with the question, quoted verbatim and cited ``[1]``.

The single agent (`agent.build_support_agent`) answers help questions with the same
pieces: the same search tool (`help_tool`: the base's own, named ``search_help``), the
same answer from the best passage (`answer_from`, its router's reply after a search),
and the same citation check (`check_help_reply`, an output validator: after a search in
the current turn, the reply must be an `Answer` whose citations hold against the
passages shown, or the model is asked again). The desk reads either agent's answer
with `help_reply`.

What the customer reads (`customer_text`) is the answer's text and, for each source,
the article's title: never a chunk id, a span or a score. Staff read the resolved
citations (`citations_note`: document, chunk, span, quote).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import ValidationError

from pilothouse import Agent, Budget, Message, Model, Policy, StepContext, StepOptions, Tool
from pilothouse.exceptions import ModelRetry
from pilothouse.knowledge import Answer, Citation, KnowledgeBase, check_answer
from pilothouse.knowledge.rag import rag_agent, shown_chunks
from pilothouse.runtime.journal import Store

from .conversation import CustomerView
from .deps import SupportDeps

HELP_TOOL = "search_help"
HELP_K = 3
"""Passages each help search shows."""
ANSWER_FORMAT = (
    "After a search_help, answer the customer as JSON: "
    '{"text": "<the answer> [1]", "citations": [{"n": 1, "chunk": "<the chunk id>", '
    '"quote": "<words copied exactly from that chunk>"}]}.'
)
"""How a model that writes its own replies answers a help question (the single agent)."""
HELP_INSTRUCTIONS = (
    "You answer customers' questions about the shop from its help articles. Be brief and "
    "polite; never mention chunks, ids or tools to the customer."
)
NOTHING_FOUND = (
    "I couldn't find that in our help articles. Would you like me to transfer you to a human agent?"
)
SEARCH_PROMPT = """\
You are the help-articles assistant of an online shop. Search the help articles for the \
customer's question.

Example:
user: how do I clean my widget?
assistant: {"tool": "search_help", "arguments": {"query": "how do I clean my widget?"}}"""
_WORD = re.compile(r"[a-z0-9$]+")
_SENTENCE = re.compile(r"\S.*?(?:[.!?](?=\s|$)|$)", re.S)  # "$4.95" stays whole
_STOP_WORDS = (
    "a an and are as at be by can do does for from have how i if in is it my of on or "
    "the to up what when where which will with you your me show"
)
_STOP = frozenset(_STOP_WORDS.split(" "))


@dataclass(frozen=True, slots=True)
class HelpBase:
    """The help articles' knowledge base and each article's title (by document id)."""

    kb: KnowledgeBase
    titles: dict[str, str]

    def has_help(self, question: str) -> bool:
        """Whether any article matches the question's words."""
        return bool(self.kb.search(question, 1))


def help_base(path: str = ":memory:") -> HelpBase:
    """The shipped articles in a knowledge base at `path` (re-ingesting is a no-op)."""
    kb = KnowledgeBase(path, name="help-articles")
    titles: dict[str, str] = {}
    folder = resources.files("pilothouse_desk") / "articles"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".md"):
            continue
        text = entry.read_text("utf-8")
        first = text.splitlines()[0] if text else ""
        title = first.lstrip("# ").strip() or entry.name
        titles[entry.name] = title
        kb.ingest(entry.name, text, kind="markdown", title=title)
    return HelpBase(kb, titles)


def help_tool(base: HelpBase) -> Tool:
    """The help search every desk agent offers: the knowledge base's search tool, named
    ``search_help`` (read-only; each call a `retrieval` event; its result lists each
    passage with the chunk id to cite)."""
    return base.kb.as_tool(name=HELP_TOOL, k=HELP_K)


def _words(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower()) if w not in _STOP}


def sentences(passage: str) -> list[str]:
    """A passage's sentences, exactly as written (headings left out)."""
    found: list[str] = []
    for line in passage.splitlines():
        if line.lstrip().startswith("#"):
            continue
        found.extend(m.group(0).strip() for m in _SENTENCE.finditer(line))
    return [s for s in found if s]


def answer_from(question: str, messages: Sequence[Message]) -> Answer:
    """The answer the hook writes from the passages this run was shown: the sentence
    sharing the most words with the question (on a tie, the better-ranked passage's,
    then the earlier sentence), quoted verbatim and cited [1]; or no answer found."""
    wanted = _words(question)
    best: tuple[int, str, str] | None = None  # (shared words, chunk id, sentence)
    for chunk in shown_chunks(messages, HELP_TOOL).by_id.values():  # in the order shown
        for sentence in sentences(chunk.text):
            shared = len(wanted & _words(sentence))
            if shared > 0 and (best is None or shared > best[0]):
                best = (shared, chunk.id, sentence)
    if best is None:
        return Answer(text=NOTHING_FOUND, citations=[])
    _, chunk_id, sentence = best
    return Answer(text=f"{sentence} [1]", citations=[Citation(n=1, chunk=chunk_id, quote=sentence)])


NOT_CITED = "Not an answer with citations."
BAD_CITATION = "Citation check failed:"


def _current_turn(messages: Sequence[Message]) -> Sequence[Message]:
    """The messages after the customer's last one. The loop adds a refused answer's
    reason as a user message: those of `check_help_reply` do not start a turn (a
    customer writing the same words only makes the check look further back)."""
    last_user = max(
        (
            i
            for i, m in enumerate(messages)
            if m.role == "user" and not m.content.startswith((NOT_CITED, BAD_CITATION))
        ),
        default=-1,
    )
    return messages[last_user + 1 :]


def searched_help(messages: Sequence[Message]) -> bool:
    """Whether the current turn (after the customer's last message) searched the help."""
    return any(m.role == "tool" and m.name == HELP_TOOL for m in _current_turn(messages))


def check_help_reply(ctx: StepContext[Any], text: str) -> str:
    """The single agent's output validator: after a help search in this turn, the reply
    is an `Answer` whose citations the checker verifies against the passages the run's
    searches showed (no model); else `ModelRetry` says what to fix. Other replies pass."""
    if not searched_help(ctx.messages):
        return text
    try:
        answer = Answer.model_validate_json(text)
    except ValidationError:
        raise ModelRetry(f"{NOT_CITED} {ANSWER_FORMAT}") from None
    report = check_answer(answer, shown_chunks(ctx.messages, HELP_TOOL))
    if not report.ok:
        raise ModelRetry(f"{BAD_CITATION} {report.message()}")
    return text


def as_answer(output: Any) -> Answer | None:
    """A run's output as an `Answer` (a help answer: the help agent's, or the single
    agent's JSON reply), or None for any other reply."""
    try:
        if isinstance(output, str):
            return Answer.model_validate_json(output)
        return Answer.model_validate(output)
    except ValidationError:
        return None


def help_reply(output: Any, base: HelpBase) -> tuple[str, str] | None:
    """For a run's output that is a help answer: (what the customer reads, the staff
    note with its citations checked again against the knowledge base); else None."""
    answer = as_answer(output)
    if answer is None:
        return None
    return customer_text(answer, base), citations_note(answer, base)


def session_reply(base: HelpBase) -> Callable[[Any], str]:
    """How a desk agent's answer reads in the conversation's session (`Agent`'s
    ``session_text``): a help answer as the customer read it (its text and each source's
    title), any other reply as it is. Later turns show the model that, never the
    answer's JSON with chunk ids and quotes; the journal keeps the `Answer` itself."""

    def reply(output: Any) -> str:
        answer = as_answer(output)
        return customer_text(answer, base) if answer is not None else str(output)

    return reply


class HelpRouter:
    """The help specialist's step hook on the embedded model (see the module docs)."""

    def __init__(self, view: CustomerView) -> None:
        self.view = view

    def __call__(self, ctx: StepContext[Any]) -> StepOptions:
        convo = self.view.messages(ctx)
        last_user = max((i for i, m in enumerate(convo) if m.role == "user"), default=-1)
        question = convo[last_user].content if last_user >= 0 else ""
        searched = [m for m in convo[last_user + 1 :] if m.role == "tool" and m.name == HELP_TOOL]
        if not searched and HELP_TOOL in ctx.tools:
            return StepOptions(
                tools=[HELP_TOOL],
                instructions=SEARCH_PROMPT,
                tool_choice="required",
                messages=[Message.user(question)],
                schemas={
                    HELP_TOOL: {
                        "type": "object",
                        "properties": {"query": {"enum": [question.strip()[:200]]}},
                        "required": ["query"],
                    }
                },
            )
        return StepOptions(tools=[], answer=answer_from(question, convo).model_dump_json())


def help_agent(
    base: HelpBase,
    *,
    model: Model,
    store: Store | None,
    policy: Policy,
    budget: Budget,
    route: bool,
    view: CustomerView,
) -> Agent[SupportDeps, Answer]:
    """The help-articles specialist (see the module docs)."""
    agent: Agent[SupportDeps, Answer] = rag_agent(
        base.kb,
        model,
        k=HELP_K,
        instructions=HELP_INSTRUCTIONS,
        tool_name=HELP_TOOL,
        name="help",
        store=store,
        policy=policy,
        deps_type=SupportDeps,
        budget=budget,
        prepare_step=HelpRouter(view) if route else None,
    )
    return agent


def customer_text(answer: Answer, base: HelpBase) -> str:
    """The answer as the customer reads it: its text, then each source by article title."""
    titles = []
    for c in sorted(answer.citations, key=lambda c: c.n):
        chunk = base.kb.chunk(c.chunk)
        title = base.titles.get(chunk.doc_id, chunk.doc_id) if chunk is not None else "?"
        titles.append(f"[{c.n}] help article '{title}'")
    if not titles:
        return answer.text
    return f"{answer.text}\n\nSources: " + "; ".join(titles)


def citations_note(answer: Answer, base: HelpBase) -> str:
    """For staff: each citation checked against the knowledge base, resolved to its
    document, chunk and span, or the checker's findings."""
    report = check_answer(answer, base.kb)
    if not report.ok:
        return f"Citation check FAILED: {report.message()}"
    if not report.resolved:
        return "Help answer without citations (no article matched)."
    quotes = {c.n: c.quote for c in answer.citations}
    lines = [
        f'[{r.n}] {r.doc_id} chunk {r.chunk_id} @{r.start}-{r.end}: "{quotes.get(r.n, "")}"'
        for r in report.resolved
    ]
    return "Citations verified (without a model): " + "; ".join(lines)
