"""A request that asks for several calls, split into its sub-requests, without the model.

"Find the area of a rectangle with length 7 and breadth 3. Also, calculate the area of
a circle with radius 5." asks for two calls; SmolLM2-135M, shown the whole request,
writes one (the rectangle's), and `parallel.expanded` cannot write the other: it only
repeats a call over an enumeration of values. Each sub-request alone is a single-call
request the guided construction already handles, so the request is cut into its
clauses (`sub_requests`) and the single-call construction is run once per clause, held
to that clause's own spans and numbers (`GuidedModel` builds each as a stage).

A clause boundary is a word that starts another request:

- a sentence that begins "Also", "And", "Then", "Additionally", "In addition",
  "Plus", "Furthermore", "Moreover", "Next", "Finally", "Lastly" or "After that";
- within a sentence ", also", "and also", "and then", ", then", "; ", "as well as";
- "and" followed by an imperative verb (`_VERBS`: "find", "calculate", "book", ...)
  or by a word of an offered tool's name ("... and withdraw $1000 from Apple" with
  ``investment.withdraw``).

When to split is decided from the request and the tools, deterministically: only when
every clause fits an offered tool by the relevance gate's rules (`relevance.fits`: a
word of its name, or two of its description, and the numbers its required parameters
need). A clause that fits no tool ("and sort by its rating") is not a request of its
own: it stays with the clause before it. A request whose clauses then number fewer than
two is not split, and nothing changes for it.

Counted without the model on the tune pool (every non-live case outside split.json's
holdout ids; `benchmarks/bfcl_split.py`): see docs/bfcl.md, "Eighth round, part 2".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from pilothouse.guided.relevance import fits
from pilothouse.messages import Message, ToolCall, call_identity
from pilothouse.models.base import ModelRequest, ToolSpec
from pilothouse.tools.select import words

__all__ = ["clauses", "holds_values", "joined_calls", "parts_of", "sub_request", "sub_requests"]

_MOST = 6  # sub-requests one request may be split into

_OPENERS = (
    r"also|and|then|additionally|in addition(?: to (?:that|this))?|plus|furthermore|"
    r"moreover|next|finally|lastly|after that|afterwards|besides|later|"
    r"second(?:ly)?|third(?:ly)?|fourth(?:ly)?|fifth|last"
)
# a sentence end, then an opener ("... 1000. Also find ...", "...? And can you ...")
_SENTENCE = re.compile(rf"(?<=[.?!])\s+(?:{_OPENERS})\b[,:]?\s*", re.I)
# within a sentence
# "and" before a verb: the verb is kept (it starts the next clause)
_VERBS = (
    "find|calculate|compute|get|give|book|buy|reserve|order|make|generate|convert|"
    "determine|estimate|predict|fetch|retrieve|search|look|locate|identify|check|show|"
    "list|tell|provide|translate|analyze|analyse|perform|send|create|schedule|play|"
    "plot|draw|measure|evaluate|solve|suggest|recommend|transfer|invest|withdraw|"
    "deposit|display|count|sort|add|remove|update|delete|set|use|fit|return|run|"
    "what|how|who|which|where|when"
)
# within a sentence; "then" only before a verb ("then display it", not "then accelerates")
_INNER = re.compile(
    r"\s*;\s*(?:and\s+|also\s+)?|,\s*(?:and\s+)?also\b,?\s*|\s+and\s+also\b,?\s*|"
    rf"(?:,\s*|\s+)(?:and\s+)?then,?\s+(?=(?:{_VERBS})\b)",
    re.I,
)
_AND_VERB = re.compile(rf",?\s+and\s+(?=(?:{_VERBS})\b)", re.I)
_AND_WORD = re.compile(r",?\s+and\s+(?=([a-z]+)\b)", re.I)


def _name_words(tools: Sequence[ToolSpec]) -> set[str]:
    return {w for t in tools for w in words(re.sub(r"[_.\-]+", " ", t.name))}


# a parallel clause: "the second circle has ...", "and the other with a radius of 10"
_ORDINAL = re.compile(
    r"(?:(?<=[.?!])\s+|,\s*(?:and\s+)?|\s+and\s+)"
    r"(?=(?:(?:in|for)\s+)?(?:the|a)\s+(?:second|third|fourth|fifth|last|other)\b)",
    re.I,
)
# a group of values asking for the same again: "..., $52.33 in Sacramento, California and
# $11.23 in Portland", "and for 'Royal Hotel' in Paris", "and another flight from Tokyo"
_GROUP = re.compile(
    r",\s+(?=\$\d)|(?:,\s+|\s+)and\s+(?=(?:for\s+)?(?:\$?\d|'[A-Z]|\"[A-Z])|another\b)|"
    r"\s+as well as\s+|(?:,\s*|\s+)(?:and\s+)?(?:then|finally),?\s+(?=(?:from|for|in|to|at)\s)|"
    r"(?:,\s+|\s+)and\s+(?=(?:a|an)\s+(?:[a-z]+\s+){0,3}?(?:'|\"|[A-Z]))|"
    r"(?:,\s*|\s+)(?:and\s+)?(?:then\s+)?(?:do|repeat|perform)\s+the\s+same(?:\s+[a-z]+)??"
    r"(?:\s+but)?\s+(?=for\s|with\s|in\s|using\s)|"
    r"(?:,\s*|\s+)(?:and\s+)?then\s+repeat(?:\s+it)?\s+(?=with\s|for\s)"
)
_VALUES = re.compile(
    r"\d+(?:[.,:/]\d+)*|'[^']+'|\"[^\"]+\"|"
    r"(?<!^)(?<![.?!]\s)\b(?!I\b)[A-Z][\w'-]*(?:\s+(?:of\s+)?[A-Z][\w'-]*)*"
)
_LINKS = frozenset(["for", "in", "at", "on", "of", "with", "to", "from", "a", "an", "the"])


def _cuts(text: str, tools: Sequence[ToolSpec]) -> list[tuple[int, int, bool]]:
    """(start, end, grouped) of every boundary in `text`, in order, not overlapping;
    `grouped`: the clause after it is a group of values (it takes the verb before)."""
    found: list[tuple[int, int, bool]] = []
    for pattern in (_SENTENCE, _INNER, _AND_VERB, _ORDINAL):
        found += [(m.start(), m.end(), False) for m in pattern.finditer(text)]
    found += [(m.start(), m.end(), True) for m in _GROUP.finditer(text)]
    found = [f for f in found if not _nested(text, f[0]) and not (f[2] and _listed(text, f[0]))]
    named = _name_words(tools)
    for m in _AND_WORD.finditer(text):
        if any(w in named for w in words(m.group(1))):
            found.append((m.start(), m.end(), False))
    out: list[tuple[int, int, bool]] = []
    for start, end, grouped in sorted(found):
        if out and start < out[-1][1]:
            continue
        out.append((start, end, grouped))
    return out


def _values(text: str) -> int:
    return len(_VALUES.findall(text.strip(" \"'")))


def _group(text: str) -> bool:
    """Whether `text` is a group of values of its own: two values at least, one of
    them a name or a quoted string ("$52.33 in Sacramento"; not "2e-9 of distance 0.05")."""
    sentence = re.split(r"(?<=[.?!])\s+(?=[A-Z])", text.strip(" \"'"), maxsplit=1)[0]
    found = _VALUES.findall(sentence)
    return len(found) >= 2 and any(not v[0].isdigit() for v in found)


def _listed(text: str, at: int) -> bool:
    """Whether the "and" at `at` ends a list of single values ("'Age', 'Income' and
    'Education'"; "5, 10 and 15"): an enumeration, not groups."""
    return re.search(r",\s*(?:'[^']*'|\"[^\"]*\"|\$?\d[\d.]*)\s*$", text[:at]) is not None


def _nested(text: str, at: int) -> bool:
    """Whether position `at` is inside brackets ("[10, 15, 12] and [18, 16]", "(3, 4)")."""
    head = text[:at]
    return head.count("[") > head.count("]") or head.count("(") > head.count(")")


def _prefix(clause: str, group: str) -> str:
    """What a group of values takes from the clause before: its words up to its first
    value ("Calculate the sales tax on a purchase amount of "), less a last linking
    word the group starts with itself ("for", "a")."""
    m = _VALUES.search(clause.strip(" \"'"))
    head = clause.strip(" \"'")[: m.start()] if m else ""
    kept = head.rstrip(" $€£").split()
    first = group.split()[0].lower() if group.split() else ""
    while kept and kept[-1].lower() in _LINKS and (first in _LINKS or first == "another"):
        kept.pop()
    return " ".join(kept)


def clauses(text: str, tools: Sequence[ToolSpec]) -> list[str]:
    """`text` cut at every boundary of this module's docstring (one clause: not cut).

    A group of values is a clause only when it and the clause before each hold two
    values at least ("and 2018" is an enumeration, `parallel.expanded`'s); it is
    given the words of the clause before up to its first value (`_prefix`)."""
    spans: list[tuple[int, int, bool]] = []  # (start, end, grouped) of each clause
    at, grouped = 0, False
    for start, end, group in _cuts(text, tools):
        spans.append((at, start, grouped))
        at, grouped = end, group
    spans.append((at, len(text), grouped))
    kept: list[tuple[int, int, bool]] = []
    for start, end, group in spans:
        piece = text[start:end]
        if group and kept and not (_group(piece) and _group(text[kept[-1][0] : kept[-1][1]])):
            kept[-1] = (kept[-1][0], end, kept[-1][2])  # not a group: back into its clause
            continue
        kept.append((start, end, group))
    out: list[str] = []
    head = ""
    for start, end, group in kept:
        piece = text[start:end].strip(" ,;")
        if not piece.strip(" ,;.?!\"'"):
            continue
        if group and out:
            piece = f"{_prefix(head, piece)} {piece}".strip()
        else:
            head = piece
        out.append(piece)
    return out


def holds_values(clause: str) -> bool:
    """Whether `clause` names values of its own: a number, a quoted string, a file name,
    or a capitalised word that does not start it ("in Boston", not "Find ...")."""
    return _values(clause) > 0


def sub_requests(text: str, tools: Sequence[ToolSpec], instructions: str = "") -> list[str]:
    """The sub-requests `text` asks for ([] when it asks for one call): its clauses,
    each joined to the one before when it names no value of its own ("what was the
    method used?") or fits no offered tool ("and sort by its rating"); split only when
    at least two of them fit a tool."""
    if not tools:
        return []
    cut = clauses(text, tools)
    if len(cut) < 2:  # the common case, one clause: no tool is matched against it
        return []
    out: list[str] = []
    for clause in cut:
        fitting = any(fits(clause, t, instructions) for t in tools)
        if out and not (fitting and holds_values(clause)):
            out[-1] = f"{out[-1]} and {clause}"
        else:
            out.append(clause)
    if len(out) > 1 and not holds_values(out[0]):
        out[:2] = [f"{out[0]} {out[1]}"]  # a preamble ("Can you help me with this?")
    if len(out) < 2 or len(out) > _MOST:
        return []
    return out


def parts_of(request: ModelRequest) -> list[str]:
    """The sub-requests of a request's first decision after its user message ([]: one
    call, or not a request this applies to: tools none, calls or results since the
    user's message, an output schema, an assistant or tool turn last)."""
    if not request.tools or request.tool_choice == "none" or request.output_schema is not None:
        return []
    if not request.messages or request.messages[-1].role != "user":
        return []
    instructions = "\n".join(m.content for m in request.messages if m.role == "system")
    return sub_requests(request.messages[-1].content, request.tools, instructions)


def sub_request(request: ModelRequest, part: str) -> ModelRequest:
    """`request` asking for `part` alone: its last user message is the sub-request, a
    tool is required (the split found a tool that fits it), and the tools offered are
    those that fit `part` by the relevance gate's rules (all of them when none does).

    Counted without the model on the tune pool's parallel_multiple cases split into as
    many sub-requests as calls: one tool fits 182 of 246 sub-requests, always one the
    case calls; the model's `choose` among the three best-matching tools picked a tool
    the case does not call in 4 of the tune set's split cases."""
    messages = [*request.messages[:-1], Message.user(part)]
    instructions = "\n".join(m.content for m in request.messages if m.role == "system")
    fitting = [t for t in request.tools if fits(part, t, instructions)]
    return replace(
        request, messages=messages, tools=fitting or list(request.tools), tool_choice="required"
    )


def joined_calls(calls: Sequence[ToolCall]) -> tuple[ToolCall, ...]:
    """The sub-requests' calls in order, each distinct call once (two clauses that
    yield the same call asked for it once)."""
    seen: set[object] = set()
    out: list[ToolCall] = []
    for call in calls:
        key = call_identity(call.name, call.arguments)
        if key in seen:
            continue
        seen.add(key)
        out.append(call)
    return tuple(out)
