"""Retrieval-augmented answers: an agent that searches a knowledge base and answers
with citations the checker verifies, and a retrieval function for chains.

`rag_agent(kb, model)` is an ordinary `Agent` whose tool is `kb.as_tool()` (read-only,
through the policy, each call a `retrieval` event in the journal) and whose output is
an `Answer`; an output validator runs `check_answer` and refuses an answer with a bad
citation with `ModelRetry` (journaled as `output_validated` with the reason, so the
model is told what to fix and the trace shows it). Nothing here calls a model besides
the agent's own.

The validator checks citations against the passages the run's searches *showed* the
model (read back from the tool results in the conversation, `shown_chunks`), not
against the live index: a citation of a chunk the model never saw is refused, and
the verdict depends on the journal alone, so a replay reaches it without the index.

`retriever(kb)` is a plain function ``question -> Retrieved passages`` for a `Chain`
(`Chain([retriever(kb), prompt_step(...)])`): the flow journals its result, the hits
with their ids, scores and the index version, as the step's state update, so a
resumed or replayed chain reads it back instead of searching again.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from pilothouse.agent import Agent
from pilothouse.exceptions import ModelRetry
from pilothouse.messages import Message
from pilothouse.models.base import Model
from pilothouse.prompts import Prompts
from pilothouse.runtime.step import StepContext
from pilothouse.tools.tool import Tool

from .chunks import Chunk
from .citations import Answer, check_answer, normalise
from .common import Index, format_hits

__all__ = ["Passages", "ShownChunks", "rag_agent", "retriever", "shown_chunks"]

_HEAD = re.compile(r"^\[chunk (c[0-9a-f]{15})\] (.+?) @(\d+)-(\d+)(?: \(.*\))?\n", re.MULTILINE)


class ShownChunks:
    """The chunks a run's searches showed the model, as the checker's source of text."""

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        self.by_id = {c.id: c for c in chunks}

    def chunk(self, chunk_id: str) -> Chunk | None:
        return self.by_id.get(chunk_id)

    def find_text(self, quote: str, limit: int = 20) -> list[Chunk]:
        wanted = normalise(quote)[0]
        words = wanted.split(" ")
        return [c for c in self.by_id.values() if all(w in c.text for w in words)][:limit]


def shown_chunks(messages: Sequence[Message], tool_name: str = "search_knowledge") -> ShownChunks:
    """Parse the chunks out of the results of `tool_name` in a conversation (the text
    `format_hits` wrote: a header with the id, document and span, then exactly the
    span's length of text)."""
    found: list[Chunk] = []
    for m in messages:
        if m.role != "tool" or m.name != tool_name or m.is_error:
            continue
        content = m.content
        for head in _HEAD.finditer(content):
            start, end = int(head.group(3)), int(head.group(4))
            text = content[head.end() : head.end() + (end - start)]
            if len(text) == end - start:
                found.append(Chunk(head.group(1), head.group(2), -1, start, end, text))
    return ShownChunks(found)


def rag_agent(
    kb: Index,
    model: Model | str | None = None,
    *,
    k: int = 5,
    instructions: str = "",
    tool_name: str = "search_knowledge",
    output_retries: int = 2,
    tools: Sequence[Tool] = (),
    **agent_options: Any,
) -> Agent[Any, Answer]:
    """An agent answering from `kb` with verified citations (see the module).

    `tools` are offered beside the search (e.g. `recall_result_tool(store)` with
    compaction). Compaction never hides a passage from the checker: it reads the run's
    conversation, whose tool results are whole (a view only changes what a step sends),
    so a passage trimmed out of the model's view stays citable."""
    system = Prompts.default().render("rag_instructions", tool=tool_name, instructions=instructions)
    agent: Agent[Any, Answer] = Agent(
        model,
        system.strip(),
        tools=[kb.as_tool(name=tool_name, k=k), *tools],
        output_type=Answer,
        output_retries=output_retries,
        **agent_options,
    )

    @agent.output_validator
    def citations_verified(ctx: StepContext[Any], answer: Answer) -> Answer:
        report = check_answer(answer, shown_chunks(ctx.messages, tool_name))
        if not report.ok:
            raise ModelRetry(f"Citation check failed: {report.message()}")
        return answer

    return agent


class Passages(BaseModel):
    """What a retrieval step hands on: the question, the index version and the hits
    (chunk id, document, span, score, text), and the passages as the text a prompt shows."""

    question: str
    index_version: str
    hits: list[dict[str, Any]]
    context: str


def retriever(kb: Index, k: int = 5) -> Callable[[str], Awaitable[Passages]]:
    """A chain step function: the question in, the `Passages` found out."""

    async def retrieve(question: str) -> Passages:
        hits = kb.search(question, k)
        return Passages(
            question=question,
            index_version=kb.version,
            hits=[{**h.to_dict(), "text": h.chunk.text} for h in hits],
            context=format_hits(hits),
        )

    return retrieve
