"""Tool retrieval: with hundreds of tools, each step offers the few that fit.

Tool-selection accuracy collapses past a few dozen tools, and every tool's schema costs
input tokens on every step. `ToolRetrieval` is a `prepare_step` hook that offers the
top-k tools by BM25 (`pilothouse.tools.select.ToolIndex`, the ranking guided decoding
uses) for the user's messages, plus a `find_tools` meta-tool the model calls to search
the rest. The offered set is *derived from the conversation*, not kept on the side: it is
the union of the top-k of every user message so far, every tool a `find_tools` result
named and every tool the model already called. The conversation only grows within a
run, so the set never shrinks, and a resumed or replayed run offers exactly what the
journal recorded (each step's `model_request.tools`). Nothing here opens a socket: the
ranking is a few dictionary lookups in this process.

    retrieval = ToolRetrieval(tools, k=5)
    agent = Agent(model, tools=retrieval.tools, prepare_step=retrieval)

With an embedder (`ToolRetrieval(tools, embedder=WordLlama())`, from
`pilothouse.knowledge`, the `embeddings` extra) the ranking is hybrid: BM25 and
embeddings fused by reciprocal rank (`ToolIndex`), still in this process, still no socket
(the model is a table of numbers read from the installed wheel). It is a choice made in
code, not by what happens to be installed, so a run resumed on another machine offers
the same tools.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache

from pilothouse.runtime.step import StepContext, StepOptions
from pilothouse.tools.select import Embedder, ToolIndex, ToolRanking
from pilothouse.tools.tool import Tool, ToolFunction, as_tool, tool

__all__ = ["FIND_TOOLS", "ToolRetrieval"]

FIND_TOOLS = "find_tools"
"""The meta-tool's name: its results name the tools the model may call from then on."""

_MAX_QUERY = 2_000  # characters of a query that are read: bounded work per message


class ToolRetrieval:
    """A `prepare_step` hook offering the top-`k` tools per user message, never fewer.

    `tools` is the full list (give `retrieval.tools` to the agent: it adds
    `find_tools`); `always` names tools offered at every step (e.g. `recall`);
    `embedder` adds embeddings to the ranking (hybrid by default; `ranking` chooses).
    """

    def __init__(
        self,
        tools: Iterable[Tool | ToolFunction],
        *,
        k: int = 5,
        always: Sequence[str] = (),
        find_limit: int = 5,
        embedder: Embedder | None = None,
        ranking: ToolRanking | None = None,
    ) -> None:
        if k < 1 or find_limit < 1:
            raise ValueError("k and find_limit must be at least 1")
        listed = [as_tool(t) for t in tools]
        names = [t.name for t in listed]
        if FIND_TOOLS in names:
            raise ValueError(f"a tool is already named {FIND_TOOLS!r}")
        unknown = [n for n in always if n not in names]
        if unknown:
            raise ValueError(f"always names unknown tools {unknown}")
        self.k = k
        self.always = tuple(always)
        self.find_limit = find_limit
        self.index = ToolIndex([t.spec() for t in listed], embedder=embedder, ranking=ranking)
        self._names = frozenset(names)
        self.tools: list[Tool] = [*listed, self._find_tool()]
        self._top = lru_cache(maxsize=4096)(self._top_uncached)

    def _top_uncached(self, text: str, limit: int) -> tuple[str, ...]:
        return tuple(spec.name for spec, _ in self.index.search(text[:_MAX_QUERY], limit))

    def search(self, query: str, limit: int | None = None) -> list[str]:
        """The names of the best tools for `query` (at most `limit`, default `k`)."""
        return list(self._top(query, limit or self.k))

    def _find_tool(self) -> Tool:
        retrieval = self

        @tool(name=FIND_TOOLS)
        def find_tools(query: str) -> str:
            """Search the tools not offered yet; the tools found can be called next.

            Args:
                query: what the tool should do, in a few words
            """
            found = retrieval.search(query, retrieval.find_limit)
            by_name = {s.name: s for s in retrieval.index.specs}
            return json.dumps(
                [{"name": n, "description": by_name[n].description} for n in found],
                ensure_ascii=False,
            )

        return find_tools

    def offered(self, ctx: StepContext[object]) -> list[str]:
        """The tools this step offers: a pure function of the conversation so far."""
        chosen: dict[str, None] = dict.fromkeys(self.always)
        for message in ctx.messages:
            if message.role == "user" and message.content:
                chosen.update(dict.fromkeys(self._top(message.content, self.k)))
            elif message.role == "assistant":
                for call in message.tool_calls:
                    if call.name in self._names:
                        chosen[call.name] = None
            elif message.role == "tool" and message.name == FIND_TOOLS and not message.is_error:
                chosen.update(dict.fromkeys(self._found(message.content)))
        chosen[FIND_TOOLS] = None
        return list(chosen)

    @lru_cache(maxsize=1024)  # noqa: B019 - the instance lives as long as its agent
    def _found(self, content: str) -> tuple[str, ...]:
        try:
            items = json.loads(content)
        except ValueError:
            return ()
        if not isinstance(items, list):
            return ()
        return tuple(
            item["name"]
            for item in items
            if isinstance(item, dict) and item.get("name") in self._names
        )

    def __call__(self, ctx: StepContext[object]) -> StepOptions:
        return StepOptions(tools=self.offered(ctx))
