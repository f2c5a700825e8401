"""Retrieval-augmented answers: an agent that searches a knowledge base and answers
with citations the checker verifies, and a retrieval function for chains.

`rag_agent(kb, model)` is an ordinary `Agent` whose tool is `kb.as_tool()` (read-only,
through the policy, each call a `retrieval` event in the journal) and whose output is
an `Answer`; an output validator runs `check_answer` and refuses an answer with a bad
citation with `ModelRetry` (journaled as `output_validated` with the reason, so the
model is told what to fix and the trace shows it). Nothing here calls a model besides
the agent's own.

`retriever(kb)` is a plain function ``question -> Retrieved passages`` for a `Chain`
(`Chain([retriever(kb), prompt_step(...)])`): the flow journals its result, the hits
with their ids, scores and the index version, as the step's state update, so a
resumed or replayed chain reads it back instead of searching again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from pilothouse.agent import Agent
from pilothouse.exceptions import ModelRetry
from pilothouse.models.base import Model
from pilothouse.prompts import Prompts

from .base import KnowledgeBase, format_hits
from .citations import Answer, check_answer

__all__ = ["Passages", "rag_agent", "retriever"]


def rag_agent(
    kb: KnowledgeBase,
    model: Model | str | None = None,
    *,
    k: int = 5,
    instructions: str = "",
    tool_name: str = "search_knowledge",
    output_retries: int = 2,
    **agent_options: Any,
) -> Agent[Any, Answer]:
    """An agent answering from `kb` with verified citations (see the module)."""
    system = Prompts.default().render("rag_instructions", tool=tool_name, instructions=instructions)
    agent: Agent[Any, Answer] = Agent(
        model,
        system.strip(),
        tools=[kb.as_tool(name=tool_name, k=k)],
        output_type=Answer,
        output_retries=output_retries,
        **agent_options,
    )

    @agent.output_validator
    def citations_verified(answer: Answer) -> Answer:
        report = check_answer(answer, kb)
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


def retriever(kb: KnowledgeBase, k: int = 5) -> Callable[[str], Awaitable[Passages]]:
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
