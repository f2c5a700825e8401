"""Whether any offered tool fits a request: a deterministic, lexical relevance gate.

Asked "Who composed the Moonlight Sonata?" with only ``music_theory.get_blues_scale``
on offer, SmolLM2-135M calls the tool anyway: a small model held to a choice between
a tool and an answer picks the tool nearly always (0 of 12 BFCL irrelevance cases
answered). So before the model is asked, the guided layer looks for evidence that a
tool fits, in the words the request shares with the tool:

- a content word of the tool's *name* (split at ``_``, ``.``, ``-`` and camelCase),
  or two of its description and parameter names; words are matched after the light
  stemming of `pilothouse.tools.select.words`, or by a common prefix of five letters
  ("invented" meets "invention", "sunrise" does not meet "sunset");
- verbs and nouns every tool uses ("calculate", "get", "find", "value", ...) are no
  evidence, and neither are numbers, in digits or words ("seven plus eight");
- a tool that takes free text as its question (a string parameter named ``query``,
  ``q``, ``question``, ``search``, ``keywords``: a search over notes or a knowledge
  base) may answer anything, so it fits;
- a tool the agent's own instructions name is taken to fit: the developer said when
  to use it (the built-in suite's calculator is asked "What is 37 * 48 + 125?", which
  shares no word with it);
- a request with no content word at all ("What is 37 * 48 + 125?") gives nothing to
  judge by: every tool is kept.

A tool that fits is only *offered*: the model still chooses between it and an answer.
When none fits, the step is an answer, and the stage's note says why.

Calibrated on BFCL's non-live categories outside the held-out ids (split.json): with
it, 70% of irrelevance cases are answered without asking the model which tool, while
the right function is kept in 97-98% of the call cases (simple, multiple, parallel,
parallel multiple).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pilothouse.models.base import ToolSpec
from pilothouse.tools.select import words

__all__ = ["GENERIC_WORDS", "content_words", "fits", "relevant_tools"]

_GENERIC_TEXT = """calculate calc compute get find retrieve fetch search list create generate make
check lookup look info information detail data value result number total given specific based
using use provide perform determine estimate set update current"""
_NUMBER_TEXT = """zero one two three four five six seven eight nine ten eleven twelve thirteen
fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy
eighty ninety hundred thousand million billion half twice plus minus times divided multiplied
squared percent"""
GENERIC_WORDS = frozenset(words(_GENERIC_TEXT)) | frozenset(words(_NUMBER_TEXT))
"""Words (stemmed) that say nothing about which tool fits: most tools use them, and
numbers written as words ("seven plus eight") are numbers."""

_PREFIX = 5  # letters two different words must share to count as the same word
_DESCRIPTION_WORDS = 2  # description/parameter words needed when the name shares none


def content_words(text: str) -> set[str]:
    """The stemmed content words of `text` that may count as evidence."""
    return {w for w in words(text) if w not in GENERIC_WORDS}


def _same(a: str, b: str) -> bool:
    return a == b or (len(a) >= _PREFIX and len(b) >= _PREFIX and a[:_PREFIX] == b[:_PREFIX])


def _shared(asked: set[str], own: set[str]) -> set[str]:
    return {a for a in asked if any(_same(a, b) for b in own)}


def _name_words(spec: ToolSpec) -> set[str]:
    return content_words(re.sub(r"[_.\-]+", " ", spec.name))


def _doc_words(spec: ToolSpec) -> set[str]:
    properties = (spec.parameters or {}).get("properties") or {}
    names = " ".join(str(n) for n in properties)
    return content_words(re.sub(r"[_.\-]+", " ", f"{spec.description} {names}"))


def _named_in(instructions: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", instructions) is not None


_QUERY_PARAMETERS = frozenset({"query", "q", "question", "search", "keywords", "search_query"})


def _takes_a_query(spec: ToolSpec) -> bool:
    """Whether the tool takes free text as its question (a search over notes, a KB)."""
    parameters = spec.parameters or {}
    properties = parameters.get("properties") or {}
    return any(
        name.lower() in _QUERY_PARAMETERS
        and isinstance(prop, dict)
        and prop.get("type") == "string"
        and "enum" not in prop
        for name, prop in properties.items()
    )


def fits(query: str, spec: ToolSpec, instructions: str = "") -> bool:
    """Whether `spec` fits `query` by the rules of this module's docstring."""
    asked = content_words(query)
    if not asked or (instructions and _named_in(instructions, spec.name)):
        return True
    if _takes_a_query(spec):
        return True
    if _shared(asked, _name_words(spec)):
        return True
    return len(_shared(asked, _doc_words(spec))) >= _DESCRIPTION_WORDS


def relevant_tools(query: str, tools: Sequence[ToolSpec], instructions: str = "") -> list[ToolSpec]:
    """The tools of `tools` that fit `query` (in their order); [] when none does."""
    return [t for t in tools if fits(query, t, instructions)]
