"""The deterministic checks between guided stages: what is trusted, what is asked again.

Each is a pure function of the conversation and the tools, so a journal that records
the stages' replies replays them exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.guided.arguments import span_schema
from pilothouse.guided.render import flattened
from pilothouse.messages import Message, ToolCall, call_identity
from pilothouse.models.base import ModelRequest, ToolSpec
from pilothouse.tools.select import STOP_WORDS, rank_texts, tool_text, words

__all__ = [
    "Turn",
    "extracted_answer",
    "grounded_answer",
    "grounding",
    "invented_numbers",
    "narrowed",
    "ungrounded",
]


@dataclass(slots=True)
class Turn:
    """The latest user message, and the calls made and results read since it."""

    query: str
    calls: list[ToolCall]
    results: list[str]

    @classmethod
    def of(cls, messages: Sequence[Message]) -> Turn:
        last = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        query = messages[last].content if last >= 0 else ""
        calls = [c for m in messages[last + 1 :] if m.role == "assistant" for c in m.tool_calls]
        results = [m.content for m in messages[last + 1 :] if m.role == "tool"]
        return cls(query, calls, results)

    def repeats(self, call: ToolCall) -> bool:
        """Whether `call` is one already made since the user's message (the same rule,
        `call_identity`, as the run's loop detector)."""
        seen = {call_identity(c.name, c.arguments) for c in self.calls}
        return call_identity(call.name, call.arguments) in seen


_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:\.[0-9]+)?")
_SPAN_ITEMS = 3  # items a narrowed array of strings may hold
_GROUNDED_MAX_CHARS = 80  # longer strings (programs, letters) are written, not extracted


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def grounding(request: ModelRequest, spec: ToolSpec) -> set[str]:
    """Every token the conversation holds (not the model's own turns).

    The tool's own text does not count: its examples ("the gaming platform, e.g.
    Xbox, Playstation, PC") are what a small model copies into a call when the user
    said something else ("Playstation"), as measured on BFCL's tune cases.
    """
    del spec  # the same grounding for every tool; kept for callers' symmetry
    texts = [m.content for m in request.messages if m.role != "assistant"]
    return {t for text in texts for t in _tokens(text)}


def _free_string(prop: Any) -> bool:
    return (
        isinstance(prop, dict)
        and prop.get("type") == "string"
        and "enum" not in prop
        and "const" not in prop
        and "format" not in prop
    )


def _checked_strings(spec: ToolSpec) -> dict[str, dict[str, Any]]:
    """The parameters worth grounding: free strings (no enum/const), the short kind, and
    arrays of them."""
    properties: dict[str, Any] = (spec.parameters or {}).get("properties") or {}
    return {
        name: prop
        for name, prop in properties.items()
        if _free_string(prop)
        or (
            isinstance(prop, dict)
            and prop.get("type") == "array"
            and _free_string(prop.get("items"))
        )
    }


def ungrounded(
    arguments: dict[str, Any], spec: ToolSpec, known: set[str], text: str = ""
) -> list[str]:
    """Short string arguments that are empty or hold a word or number nobody said.

    Items of an array of strings are checked alike, and a snake_case value
    ("pet_food") that `text` (the conversation) does not hold as written is flagged:
    the user wrote those words apart. Common function words are let through. A value
    the model knows but nobody said (a time-zone name) is flagged too; `narrowed` then
    finds nothing to narrow it to unless the request holds a match of its pattern, and
    the call stands.
    """
    required = set((spec.parameters or {}).get("required") or ())
    said = text.lower()
    bad: list[str] = []
    for name in _checked_strings(spec):
        value = arguments.get(name)
        raw: list[Any] = value if isinstance(value, list) else [value]
        items = [v for v in raw if isinstance(v, str)]
        if len(items) != len(raw):
            continue
        if not items:
            if name in required:
                bad.append(name)
            continue
        for item in items:
            if "\n" in item or len(item) > _GROUNDED_MAX_CHARS:
                continue
            tokens = _tokens(item)
            if not tokens:
                if name in required:
                    bad.append(name)
                    break
                continue
            if any(t not in known and t not in STOP_WORDS for t in tokens):
                bad.append(name)
                break
            if "_" in item and item.lower() not in said:
                bad.append(name)  # snake_case of words the user wrote apart ("pet_food")
                break
    return bad


def narrowed(spec: ToolSpec, names: list[str], query: str) -> ToolSpec | None:
    """`spec` with the named string parameters limited to what the user's message holds.

    A parameter without a pattern may only be one of the message's word spans, in its
    own form (`arguments.spans`: "Legend of Zelda: Breath of the Wild", "05-12-2022";
    an array of strings: items that are spans); one with a pattern only one of the
    message's substrings that match it. None when nothing could be narrowed.
    """
    parameters = json.loads(json.dumps(spec.parameters or {}))
    properties: dict[str, Any] = parameters.get("properties") or {}
    changed = False

    for name in names:
        prop = properties.get(name)
        if not isinstance(prop, dict):
            continue
        pattern = prop.get("pattern")
        if isinstance(pattern, str):
            inner = pattern.removeprefix("^").removesuffix("$")
            try:
                found = [m.group(0) for m in re.finditer(inner, query) if m.group(0)]
            except re.error:
                found = []
            found = [f for f in dict.fromkeys(found) if re.search(pattern, f)]
            if found:
                properties[name] = {"type": "string", "enum": found}
                changed = True
        elif (found_spans := span_schema(query)) is not None:
            if prop.get("type") == "array":
                # bounded: held to a few spans, a small model repeats one until cut off
                most = min(_SPAN_ITEMS, int(prop.get("maxItems") or _SPAN_ITEMS))
                properties[name] = {
                    **prop,
                    "items": found_spans,
                    "minItems": 1,
                    "maxItems": max(1, most),
                }
            else:
                properties[name] = found_spans
            changed = True
    if not changed:
        return None
    return ToolSpec(spec.name, spec.description, parameters)


_ANSWER_EXTRAS = ("yes", "no", "not", "=", "+", "-", "*", "/", "%", "answer", "result")
_ANSWER_WORDS = 40  # at most this many words: a small model that runs on stops here


_REGEX_SPECIAL = set(".^$*+?()[]{}|-/")


def _literal(word: str) -> str:
    """`word` as a regex the grammar converter reads literally.

    The converter copies backslash escapes into the grammar, where llama.cpp rejects
    them (``\\.``), so special characters go into one-character classes instead.
    """
    return "".join(f"[{c}]" if c in _REGEX_SPECIAL else c for c in word)


def grounded_answer(texts: Sequence[str]) -> dict[str, Any]:
    """A string schema whose words all come from `texts` (plus common function words).

    Used for the answer that follows a tool result: a 135M model that answers in its
    own words tends to drift into invention ("built by the British in 1887 ...");
    held to the words of the question and the result, it restates what the result
    says. Words are whitespace-separated runs stripped of edge punctuation, in their
    own, lower and capitalised case; between words go spaces and punctuation.
    """
    vocabulary: dict[str, None] = {}
    for text in texts:
        for raw in re.split(r'[\s"\\]+', text):
            word = raw.strip(",.;:!?()[]'`")
            if not word or len(word) > 60 or any(ord(c) < 32 or c in "]^" for c in word):
                continue
            for variant in (word, word.lower(), word[:1].upper() + word[1:]):
                vocabulary[variant] = None
    for word in (*sorted(STOP_WORDS), *_ANSWER_EXTRAS):
        vocabulary[word] = None
        vocabulary[word[:1].upper() + word[1:]] = None
    alternation = "(" + "|".join(_literal(w) for w in vocabulary) + ")"
    pattern = f"^{alternation}([,.;:!?]? {alternation}){{0,{_ANSWER_WORDS - 1}}}[.!?]?$"
    return {"type": "string", "pattern": pattern}


_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)*")


def invented_numbers(text: str, messages: Sequence[Message]) -> list[str]:
    """The numbers in `text` that no user message of the conversation holds.

    Numbers in the system prompt do not count: that is where a worked example's
    numbers are, the ones a small model copies into its answer.
    """
    said = {n for m in messages if m.role == "user" for n in _NUMBER.findall(m.content)}
    return [n for n in _NUMBER.findall(text) if n not in said]


_EXTRACTED_LINES = 3


def extracted_answer(
    query: str,
    results: Sequence[str],
    sources: Sequence[ToolSpec] = (),
    limit: int = _EXTRACTED_LINES,
) -> dict[str, Any] | None:
    """For JSON results: a string schema whose value is one of their best-matching lines.

    Asked which method and path of an OpenAPI document cancel an order, SmolLM2-135M
    composes "Cancel an order" (the summary) from the words it may use; it cannot
    put a method and a path together out of nested JSON. So the answer to a JSON
    result is extracted instead of written: the results are flattened into
    ``key path: value`` lines (`readable_result`), ranked by BM25 against the
    user's question, and the model picks one of the `limit` best; lines scoring
    under half the best are dropped, as a 135M model picks among what it is offered
    nearly at random. Words of the
    question that also describe the tools that produced the results (`sources`:
    "the shop's API specification") said where to look, not what to pick, and are
    left out of the ranking. None when no result is a JSON object or array (then
    `grounded_answer` applies).
    """
    flat_results = [flat for flat in map(flattened, results) if flat is not None]
    if not flat_results:
        return None
    lines = list(dict.fromkeys(line for flat in flat_results for line in flat.splitlines()))
    pointers = {w for spec in sources for w in words(tool_text(spec))}
    focus = " ".join(w for w in words(query) if w not in pointers) or query
    ranked = rank_texts(focus, lines)
    top = ranked[0][1]
    best = [lines[i] for i, score in ranked if score > 0 and score >= top / 2][:limit]
    return {"type": "string", "enum": best or lines[:limit]}
