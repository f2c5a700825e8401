"""Arguments in the user's own words: request spans, enums from the request, optionals left out.

Measured on BFCL (tune cases), SmolLM2-135M's argument values drift from the request:
"2023" for "06-01-2023", ``pet_food`` for "pet food", "Xbox" (a tool's example) for
"Playstation", an optional ``price_range`` left out although the user said "cheap",
an optional argument filled with a made-up default. The functions here are pure
functions of the request and the tool's schema, applied between stages (so replaying
the recorded stage replies re-runs them exactly):

- `spans`: the request's word spans in its own form ("Legend of Zelda: Breath of the
  Wild", "05-12-2022", "R vs Adams"): what a re-asked string argument is held to
  (`span_schema`), instead of words the model strings together;
- `settle`: after the arguments are written, an enum parameter whose members the
  request names exactly one of gets that member; an optional argument the request does
  not support (a string with a word nobody said, a number nobody wrote, a flag or enum
  member not mentioned) is left out, so the tool's own default applies.

Added in the second round (BFCL tune cases, 20 per non-live category):

- a flag the request names ("the *detailed* case information" for ``details``, "in which
  *year*" for ``want_year``, "accepts *credit cards*") is true, unless negated ("without
  details"): the model wrote ``false`` for a flag the user asked for;
- a string that holds the words of one of the request's quoted strings but not as quoted
  ("Weapon Guardian Sword" for 'Guardian Sword+') becomes the quoted string;
- an array that repeats an item ("New York", "New York", "New York") keeps one of each,
  and loses items that are the tool's own parameter names ("vegan", "location");
- an optional string or number that repeats another argument's value (``region``
  "Bitcoin" next to ``topic`` "Bitcoin", ``round_to`` 30 next to ``minutes`` 30; since the
  third round compared as text: ``unit`` "10" next to ``height`` 10) is left out;
- an optional number the model left out is filled when the request names the parameter
  and gives exactly one number no other argument took ("at least a 4.5 star *rating*").

Added in the third round: an optional string the model left out is filled when its
description names values (after "e.g.", "such as") and the request says exactly one of
them; a required free string that repeats an earlier argument's
value is asked again among the spans no other argument holds (`repeated_values`,
`distinct_parameters`; the ``distinct`` stage).

Added in the fourth round (`guided.forms`): a value in the form its parameter asks for,
where the request says it in another: a currency argument is held to the codes of the
currencies the request names ("US dollars": "USD"), and a string whose description maps
the request's words ("'c' for Celsius", "'C' for C major") takes the mapped value.

Added in the sixth round (read on a seeded sample of BFCL's tune pool, each rule counted
first on the whole pool's right calls: none breaks one): a float argument the request
writes as a percentage is its fraction ("5%": 0.05); a free string that runs into a
required argument's value keeps its own part ("London 2022/08/16": "London"); an
optional free string that is a stray span (part of another value, words of the tool's
name or of another parameter's name) is left out; an enum member or a description's
quoted choice is taken when the request says it by its stem ("in detail": 'detailed');
a free string holding a numeric argument's number is asked again (`repeated_values`).

Added in the ninth round (`guided.value_forms`, counted first on the whole tune pool:
none breaks a right call): a value the request writes in another form is put in its
parameter's (`_in_own_form`): a date in the form the description states, a number with
its scale word, a list the request enumerates whole, a float list as floats, a
capitalised name cut at a word whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pilothouse.guided.forms import (
    currency_codes,
    currency_parameter,
    described_value,
    percent_fraction,
    quoted_choices,
)
from pilothouse.guided.relevance import cjk_runs, request_numbers, same_word
from pilothouse.guided.render import described_examples
from pilothouse.guided.value_forms import (
    as_floats,
    formed_date,
    scaled_number,
    whole_list,
    whole_name,
)
from pilothouse.models.base import ToolSpec
from pilothouse.tools.select import STOP_WORDS, words

__all__ = [
    "distinct_parameters",
    "flag_said",
    "free_strings",
    "grounded_parameters",
    "other_words",
    "repeated_values",
    "said_choices",
    "self_named",
    "settle",
    "span_schema",
    "spans",
    "stray_value",
]

_EDGE = "\"'`,.;:!?()[]{}"
_MAX_SPAN_WORDS = 8
_MAX_SPAN_CHARS = 80
# Chinese, Japanese and Korean write no spaces: a word is found inside a run (北京市 in
# 帮我查一下北京市的天气), so a run's substrings of 2-8 letters are spans too
_MIN_CJK_CHARS = 2
_MAX_CJK_CHARS = 8
_CROSSES_QUOTE = re.compile(r"[\"“”]|(?<!\w)'|'(?!\w)")
_QUOTED = re.compile(r"(?<!\w)'([^']{1,80})'(?!\w)|\"([^\"]{1,80})\"|“([^”]{1,80})”")


def spans(text: str, limit: int = _MAX_SPAN_WORDS) -> list[str]:
    """Contiguous word spans of `text` in its own form, quoted strings first.

    Words are whitespace-separated; a span's outer punctuation is stripped, inner
    punctuation kept ("Zelda: Breath"). A span neither starts nor ends with a common
    function word ("of the Wild" is not one; "Legend of Zelda" is). In Chinese,
    Japanese and Korean, which write no spaces, the substrings of 2-8 letters of each
    run between particles (`relevance.cjk_runs`) are spans: without them the only
    span of 帮我查一下北京市的天气 was the whole request, and a location became it.
    """
    out: dict[str, None] = {}
    for m in _QUOTED.finditer(text):
        quoted = next(g for g in m.groups() if g is not None).strip()
        if quoted:
            out[quoted] = None
    tokens = text.split()
    for i in range(len(tokens)):
        for j in range(i + 1, min(len(tokens), i + limit) + 1):
            span = " ".join(tokens[i:j]).strip(_EDGE)
            if not span or len(span) > _MAX_SPAN_CHARS:
                continue
            if _function_word(span.split()[0]) or _function_word(span.split()[-1]):
                continue
            if _CROSSES_QUOTE.search(span):
                continue  # "Weapon 'Guardian Sword+' in the game": a quote is kept whole
            out[span] = None
    for run in cjk_runs(text):
        for i in range(len(run)):
            for j in range(i + _MIN_CJK_CHARS, min(len(run), i + _MAX_CJK_CHARS) + 1):
                out[run[i:j]] = None
    return list(out)


def _function_word(token: str) -> bool:
    """A common function word ("of", "the"); an all-capitals token ("US", "IT") is a name."""
    bare = token.strip(_EDGE)
    return bare.lower() in STOP_WORDS and not (len(bare) > 1 and bare.isupper())


def span_schema(text: str) -> dict[str, Any] | None:
    """A string schema whose value is one of `text`'s `spans` (None: it has none)."""
    found = spans(text)
    return {"type": "string", "enum": found} if found else None


_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:\.[0-9]+)?")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _mentions(text: str, phrase: str) -> bool:
    """Whether `text` holds `phrase` as words (case-insensitive, ``_`` read as a space)."""
    words = [re.escape(w) for w in re.split(r"[\s_\-]+", phrase.strip()) if w]
    if not words:
        return False
    pattern = r"(?<![A-Za-z0-9])" + r"[\s_\-]+".join(words) + r"(?![A-Za-z0-9])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _supported(value: Any, text: str, said: set[str], numbers: set[str]) -> bool:
    """Whether the request supports `value`: each string's words and each number in it."""
    if isinstance(value, bool):
        return False  # a flag is supported by its parameter's name, checked by the caller
    if isinstance(value, (int, float)):
        return _number_text(value) in numbers
    if isinstance(value, str):
        tokens = _tokens(value)
        return bool(tokens) and all(t in said or t in STOP_WORDS for t in tokens)
    if isinstance(value, list):
        return bool(value) and all(_supported(v, text, said, numbers) for v in value)
    if isinstance(value, dict):
        return bool(value) and all(_supported(v, text, said, numbers) for v in value.values())
    return False


def _request_numbers(text: str) -> set[str]:
    found = set()
    for raw in re.findall(r"[0-9]+(?:,[0-9]{3}(?![0-9]))*(?:\.[0-9]+)?", text):
        plain = raw.replace(",", "")
        found.add(plain)
        try:
            found.add(_number_text(float(plain)))
        except ValueError:
            continue
    return found


_FLAG_WORDS = frozenset(
    words("include show want need return enable flag use allow get is has with only should add all")
)
_NEGATIONS = frozenset({"not", "no", "without", "don't", "dont", "exclude", "excluding", "never"})


def flag_said(name: str, text: str) -> bool | None:
    """Whether `text` asks for the flag `name`: True when it names one of the name's
    own words ("detailed" for ``details``), False when that word is negated ("without
    details"), None when it names none."""
    own = [w for w in words(re.sub(r"[_.\-]+", " ", name)) if w not in _FLAG_WORDS]
    if not own:
        return None
    tokens = text.split()
    for i, token in enumerate(tokens):
        stemmed = words(token)
        if stemmed and any(same_word(stemmed[0], w) for w in own):
            before = {t.lower().strip(_EDGE) for t in tokens[max(0, i - 3) : i]}
            return not (before & _NEGATIONS)
    return None


def _quoted(text: str) -> list[str]:
    found = (next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(text))
    return list(dict.fromkeys(q.strip() for q in found if q.strip()))


def _snapped(value: str, quotes: Sequence[str], taken: set[str]) -> str | None:
    """The quoted string of the request `value` stands for: the one sharing the most
    words with it (at least half of the quote's), when `value` is not already one."""
    if value in quotes:
        return None
    mine = set(_tokens(value))
    best, score = None, 0.0
    for quote in quotes:
        theirs = set(_tokens(quote))
        if not theirs or quote in taken:
            continue
        shared = len(mine & theirs) / len(theirs)
        if shared >= 0.5 and shared > score:
            best, score = quote, shared
    return best


def _names_a_parameter(item: Any, properties: dict[str, Any]) -> bool:
    """Whether an array item is one of the tool's parameter names ("location" among the
    dietary requirements): a name the model copied, not a value."""
    return isinstance(item, str) and item.lower().replace(" ", "_") in {
        p.lower() for p in properties
    }


def _deduplicated(value: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if item not in out:
            out.append(item)
    return out


def settle(
    arguments: dict[str, Any], spec: ToolSpec, text: str
) -> tuple[dict[str, Any], list[str]]:
    """`arguments` with enums taken from `text` and unsupported optionals left out.

    `text` is what the user (and the agent's instructions) said. Returns the settled
    arguments and one line per change, for the stage's note. Required arguments other
    than enums are never changed: a value the request does not hold may still be right
    (a unit converted, a code looked up).
    """
    parameters = spec.parameters or {}
    properties: dict[str, Any] = parameters.get("properties") or {}
    required = set(parameters.get("required") or ())
    said = set(_tokens(text))
    numbers = _request_numbers(text)
    out = dict(arguments)
    changes: list[str] = []
    quotes = _quoted(text)
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        value = out.get(name)
        if isinstance(value, list) and len(_deduplicated(value)) < len(value):
            out[name] = value = _deduplicated(value)
            changes.append(f"{name}: repeated items kept once")
        if isinstance(value, list) and any(_names_a_parameter(v, properties) for v in value):
            kept = [v for v in value if not _names_a_parameter(v, properties)]
            if kept:
                out[name] = value = kept
                changes.append(f"{name}: items naming a parameter left out")
        if isinstance(value, str) and "enum" not in prop and quotes:
            taken = {v for k, v in out.items() if k != name and isinstance(v, str)}
            quote = _snapped(value, quotes, taken)
            if quote is not None:
                out[name] = quote
                changes.append(f"{name}: {quote!r}, the request's quoted words")
        formed = _in_form(name, prop, value, text)
        if formed is not None:
            if out.get(name) != formed:
                changes.append(f"{name}: {formed!r}, the request's words in the parameter's form")
                out[name] = formed
            continue
        if prop.get("type") == "boolean":
            said_flag = flag_said(name, text)
            if said_flag is not None:
                if out.get(name) is not said_flag:
                    changes.append(f"{name}: {said_flag}, as the request says")
                    out[name] = said_flag
                continue
        members = prop.get("enum")
        if isinstance(members, list) and all(isinstance(m, str) for m in members):
            named = said_choices(text, members)
            if len(named) == 1 and out.get(name) != named[0]:
                changes.append(f"{name}: {named[0]!r}, the member the request names")
                out[name] = named[0]
                continue
            if not named and name not in required and name in out:
                changes.append(f"{name} left out: the request names none of its members")
                del out[name]
            continue
        if name in required or name not in out:
            continue
        value = out[name]
        mine = _as_text(value)
        if mine and any(_as_text(v) == mine for k, v in out.items() if k != name):
            changes.append(f"{name} left out: {str(value)[:40]!r} is another argument's value")
            del out[name]
            continue
        if isinstance(value, bool):
            supported = any(_mentions(text, w) for w in re.split(r"[_\W]+", name) if len(w) > 2)
        else:
            supported = _supported(value, text, said, numbers)
        if not supported:
            changes.append(f"{name} left out: the request does not say {json.dumps(value)[:60]}")
            del out[name]
    _in_own_form(out, properties, text, spec.name, changes)
    _as_fractions(out, properties, text, changes)
    _strays_left_out(out, spec, required, changes)
    _without_others(out, spec, required, changes)
    _fill_numbers(out, properties, required, text, changes)
    _fill_described(out, properties, required, text, changes)
    return out, changes


# ---------------------------------------------------------------------------
# Ninth round: values in the parameter's own form (`guided.value_forms`), each counted
# first without the model over BFCL's tune pool (docs/bfcl.md).

VALUE_FORMS = ("dates", "scales", "lists", "floats", "names")


def _formless(prop: dict[str, Any]) -> bool:
    """A string whose schema does not hold its form already (no enum, const or pattern:
    the builtin suite's ``time`` pattern "YYYY-MM-DD HH:MM" is a date and a time)."""
    return not any(k in prop for k in ("enum", "const", "pattern"))


def other_words(name: str, out: dict[str, Any], tool: str) -> frozenset[str]:
    """Words a name of `name`'s value does not run into: the other arguments' values',
    the tool's name's and the parameter's name's."""
    found = set(_name_words(tool)) | set(_name_words(name))
    for other, value in out.items():
        if other != name and isinstance(value, str):
            found |= {w.lower().strip(".") for w in value.split()}
    return frozenset(found)


def _in_own_form(
    out: dict[str, Any], properties: dict[str, Any], text: str, tool: str, changes: list[str]
) -> None:
    """Each value in the form its parameter asks for: a request's date in the form the
    description states, a number with its scale word, a cut list whole, a float list's
    items as floats, a name cut at a word whole."""
    for name, value in list(out.items()):
        prop = properties.get(name)
        if not isinstance(prop, dict):
            continue
        kind = prop.get("type")
        formed: Any = None
        if "dates" in _VALUE_FORMS_ON and kind == "string" and _formless(prop):
            description = str(prop.get("description") or "")
            formed = formed_date(value, description, text, prop.get("format"))
        if formed is None and "scales" in _VALUE_FORMS_ON and kind in ("integer", "number"):
            formed = scaled_number(value, kind, text)
        if formed is None and "lists" in _VALUE_FORMS_ON and kind == "array":
            items = prop.get("items")
            item_kind = items.get("type") if isinstance(items, dict) else None
            formed = whole_list(value, item_kind, text)
        if "floats" in _VALUE_FORMS_ON and kind == "array":
            floats = as_floats(value if formed is None else formed, prop.get("items"))
            formed = floats if floats is not None else formed
        if formed is None and "names" in _VALUE_FORMS_ON and _free(prop):
            formed = whole_name(value, text, other_words(name, out, tool))
        if formed is not None and formed != value:
            out[name] = formed
            changes.append(f"{name}: {str(formed)[:60]!r}, the request's value in its form")


_VALUE_FORMS_ON: set[str] = set(VALUE_FORMS)


# ---------------------------------------------------------------------------
# Sixth round: rules read on a bigger sample of BFCL's tune pool (docs/bfcl.md), each
# counted first without the model against BFCL's possible answers.


def _as_fractions(
    out: dict[str, Any], properties: dict[str, Any], text: str, changes: list[str]
) -> None:
    """A float argument the request writes as a percentage becomes its fraction
    (`forms.percent_fraction`: "a 5% annual yield", ``annual_yield`` 0.05)."""
    for name, value in list(out.items()):
        fraction = percent_fraction(properties.get(name), value, text)
        if fraction is not None:
            out[name] = fraction
            changes.append(f"{name}: {fraction}, the request's percentage as a fraction")


def _content(value: str) -> list[str]:
    return [t for t in _tokens(value) if t not in STOP_WORDS]


def _trimmed_of(value: str, other: str) -> str | None:
    """`value` without `other` written at its start or end ("London 2022/08/16" less
    "2022/08/16"; "Hello, how are you? from English" less "English", with the function
    word that joined them), or None when it does not hold `other` there as whole words,
    joined by a function word or holding a digit, or nothing of its own is left. ("New
    York City" keeps "City" next to a ``type`` "city": no function word joins them.)"""
    low, part = value.lower(), other.strip().lower()
    if not part or len(part) >= len(low):
        return None
    if low.endswith(part) and low[-len(part) - 1].isspace():
        tokens = value[: -len(part)].split()
        joined = bool(tokens) and _function_word(tokens[-1])
        if joined:
            tokens.pop()
        left = " ".join(tokens).rstrip(" ,;:-")
    elif low.startswith(part) and low[len(part)].isspace():
        tokens = value[len(part) :].split()
        joined = bool(tokens) and _function_word(tokens[0])
        if joined:
            tokens.pop(0)
        left = " ".join(tokens).lstrip(" ,;:-")
    else:
        return None
    if not (joined or re.search(r"[0-9]", part)):
        return None
    return left if _content(left) else None


def _without_others(
    out: dict[str, Any], spec: ToolSpec, required: set[str], changes: list[str]
) -> None:
    """A free string that also holds a required argument's whole value, at its start or
    end, keeps only its own part: held to the request's spans, SmolLM2-135M writes the
    span running on into the next value (``location`` "London 2022/08/16" next to
    ``date`` "2022/08/16", ``text`` "Hello, how are you? from English" next to
    ``source_language`` "English"; BFCL tune pool)."""
    for name in free_strings(spec):
        value = out.get(name)
        if not isinstance(value, str):
            continue
        for other_name, other in out.items():
            if other_name == name or other_name not in required or isinstance(other, bool):
                continue
            if not isinstance(other, (str, int, float)):
                continue
            trimmed = _trimmed_of(value, other if isinstance(other, str) else _number_text(other))
            if trimmed is not None:
                out[name] = trimmed
                changes.append(f"{name}: {trimmed!r}, without {other_name}'s value")
                break


def _name_words(identifier: str) -> list[str]:
    return words(re.sub(r"[_.\-]+", " ", identifier))


def stray_value(name: str, value: Any, arguments: dict[str, Any], spec: ToolSpec) -> str:
    """Why an optional free string is a stray span rather than a value ("": it is not):
    it is only part of another argument's value (``team`` "Brady" next to
    ``player_name`` "Tom Brady"), only words of the tool's name (``activity_level``
    "water" for `calculate_daily_water_intake`, ``difficulty`` "BoardGameGeek" for
    `BoardGameGeek.recommend`), or only names another parameter (``case_type``
    "company" next to ``company_name``). SmolLM2-135M fills an optional argument the
    request says nothing about with such a span (BFCL tune pool)."""
    if not isinstance(value, str) or re.search(r"[0-9]", value):
        return ""
    stems = words(value)  # content words of two letters or more: not "x"
    if not stems:
        return ""
    for other_name, other in arguments.items():
        if other_name != name and isinstance(other, str) and set(stems) < set(words(other)):
            return f"only part of {other_name}'s value"
    tool = _name_words(spec.name)
    if all(any(same_word(w, t) for t in tool) for w in stems):
        return "only words of the tool's name"
    properties = (spec.parameters or {}).get("properties") or {}
    for other_name in properties:
        if other_name == name:
            continue
        own = _name_words(other_name)
        if all(any(same_word(w, o) for o in own) for w in stems):
            return f"only the name of {other_name}"
    return ""


def _strays_left_out(
    out: dict[str, Any], spec: ToolSpec, required: set[str], changes: list[str]
) -> None:
    """Optional free strings that are stray spans (`stray_value`) are left out, so the
    tool's own default applies."""
    for name in free_strings(spec):
        if name in required or name not in out:
            continue
        why = stray_value(name, out[name], out, spec)
        if why:
            changes.append(f"{name} left out: {str(out[name])[:40]!r} is {why}")
            del out[name]


def _in_form(name: str, prop: dict[str, Any], value: Any, text: str) -> str | None:
    """The value in the form the parameter asks for (`guided.forms`), or None: the one
    its description maps the request's words to ("'c' for Celsius"), or the code of the
    one currency a currency argument names ("US dollars": "USD")."""
    described = described_value(prop, text)
    if described is not None:
        return described
    choices = _free(prop) and quoted_choices(str(prop.get("description") or ""))
    if choices and str(value).lower() not in {c.lower() for c in choices}:
        said = said_choices(text, choices)
        if len(said) == 1:
            return said[0]
    if isinstance(value, str) and currency_parameter(name, prop):
        codes = currency_codes(value)
        if len(codes) == 1:
            return codes[0]
    return None


def said_choices(text: str, choices: list[str]) -> list[str]:
    """The `choices` `text` says: as written, or, for a one-word choice, by a word of the
    same stem ("in detail" says 'detailed', sixth round)."""
    said = [c for c in choices if _mentions(text, c)]
    if said:
        return said
    asked = words(text)
    out = []
    for choice in choices:
        own = words(choice)
        one = len(choice.split()) == 1 and len(own) == 1
        if one and any(same_word(own[0], a) for a in asked):
            out.append(choice)
    return out


def _free(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "string" and not any(
        k in prop for k in ("enum", "const", "format", "pattern")
    )


def _fill_described(
    out: dict[str, Any],
    properties: dict[str, Any],
    required: set[str],
    text: str,
    changes: list[str],
) -> None:
    """Fill an optional string left out when its description names values ("Mode of
    analysis, e.g. 'static' or 'dynamic'") and the request says exactly one of them
    ("the structural *dynamic* analysis"), as the description writes it."""
    taken = {_as_text(v) for v in out.values()}
    for name, prop in properties.items():
        if name in out or name in required or not isinstance(prop, dict):
            continue
        if prop.get("type") != "string" or "enum" in prop:
            continue
        values = described_examples(str(prop.get("description") or ""))
        said_values = [v for v in dict.fromkeys(values) if v and _mentions(text, v)]
        if len(said_values) == 1 and _as_text(said_values[0]) not in taken:
            out[name] = said_values[0]
            changes.append(f"{name}: {said_values[0]!r}, a value its description names")


def _fill_numbers(
    out: dict[str, Any],
    properties: dict[str, Any],
    required: set[str],
    text: str,
    changes: list[str],
) -> None:
    """Fill an optional number the request names and gives, when only one is left."""
    used = {_number_text(v) for v in out.values() if _is_number(v)}
    # a percentage an argument holds as its fraction ("5%" as 0.05) is used too
    used |= {p for p in re.findall(r"([0-9.]+)\s*%", text) if _as_fraction_of(p, out)}
    for v in out.values():
        if isinstance(v, list):
            used |= {_number_text(i) for i in v if _is_number(i)}
    left: list[float] = []
    for raw in request_numbers(text):
        try:
            number = float(raw.replace(",", ""))
        except ValueError:
            continue  # a number word: said, but not as a value to copy
        if _number_text(number) not in used and number not in left:
            left.append(number)
    asked = set(words(text))
    missing = [
        name
        for name, prop in properties.items()
        if isinstance(prop, dict)
        and prop.get("type") in ("integer", "number")
        and name not in required
        and name not in out
        and any(same_word(a, w) for w in words(re.sub(r"[_.\-]+", " ", name)) for a in asked)
    ]
    if len(left) != 1 or len(missing) != 1:
        return
    name, number = missing[0], left[0]
    if properties[name].get("type") == "integer":
        if not number.is_integer():
            return
        out[name] = int(number)
    else:
        out[name] = number
    changes.append(f"{name}: {_number_text(number)}, the number the request gives for it")


def _as_fraction_of(percent: str, out: dict[str, Any]) -> bool:
    """Whether an argument holds `percent` (the number written before "%") as its
    fraction: that percentage is given, and not a number left for another argument."""
    try:
        fraction = float(percent) / 100
    except ValueError:
        return False
    return any(_is_number(v) and abs(v - fraction) < 1e-9 for v in out.values())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def free_strings(spec: ToolSpec, names: Sequence[str] | None = None) -> list[str]:
    """The parameters a span can fill: strings (or arrays of strings) without enum,
    const, format or pattern; all of them, or those among `names`."""
    properties: dict[str, Any] = (spec.parameters or {}).get("properties") or {}
    out = []
    for name, prop in properties.items():
        if names is not None and name not in names:
            continue
        if not isinstance(prop, dict):
            continue
        target = prop.get("items") if prop.get("type") == "array" else prop
        if not isinstance(target, dict) or target.get("type") != "string":
            continue
        if any(k in target for k in ("enum", "const", "format", "pattern")):
            continue
        out.append(name)
    return out


# ---------------------------------------------------------------------------
# The arguments stage held to the request's own values from the start.

_COMPOSED_TEXT = """message body content code script program query prompt expression formula
function equation sql command"""
_COMPOSED = frozenset(_COMPOSED_TEXT.split())
_CLAUSE = re.compile(r"[^,.;:!?()]+")


def _clauses(text: str) -> list[str]:
    """The request's clauses (between punctuation) as spans too: a text argument
    ("the review: I love this phone, the battery lasts") may be longer than a span."""
    out = []
    for m in _CLAUSE.finditer(text):
        clause = m.group(0).strip(_EDGE + " ")
        if _CROSSES_QUOTE.search(clause):
            # quoted strings are spans of their own; and llama-cpp-python's converter
            # made a grammar llama.cpp rejects of a clause holding a lone double quote
            # (BFCL parallel_198: the run ended on a ConfigurationError)
            continue
        if len(clause.split()) > _MAX_SPAN_WORDS and len(clause) <= 4 * _MAX_SPAN_CHARS:
            out.append(clause)
    return out


def _number_values(text: str) -> list[float]:
    out: list[float] = []
    for raw in request_numbers(text):
        try:
            number = float(raw.replace(",", ""))
        except ValueError:
            number = float(_WORD_VALUES[raw]) if raw in _WORD_VALUES else float("nan")
        if number == number and number not in out:
            out.append(number)
    return out


_SMALL_NUMBERS = "zero one two three four five six seven eight nine ten eleven twelve"
_WORD_VALUES = {w: i for i, w in enumerate(_SMALL_NUMBERS.split())} | {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "dozen": 12,
}


def _number_schema(prop: dict[str, Any], numbers: Sequence[float]) -> dict[str, Any] | None:
    """`prop` held to the request's numbers of its type (None: the request gives none)."""
    if prop.get("type") == "integer":
        found: list[Any] = [int(n) for n in numbers if n.is_integer()]
    else:
        found = [int(n) if n.is_integer() else n for n in numbers]
    if not found:
        return None
    return {k: v for k, v in prop.items() if k not in ("type", "format")} | {"enum": found}


def _grounded_property(
    name: str, prop: Any, text_spans: list[str], numbers: Sequence[float], codes: list[str]
) -> Any:
    if not isinstance(prop, dict) or any(k in prop for k in ("enum", "const", "pattern")):
        return prop
    if codes and currency_parameter(name, prop):
        return {k: v for k, v in prop.items() if k != "type"} | {"enum": codes}
    kind = prop.get("type")
    if kind in ("integer", "number"):
        return _number_schema(prop, numbers) or prop
    if kind == "string" and "format" not in prop:
        if name.lower() in _COMPOSED or not text_spans:
            return prop
        return {k: v for k, v in prop.items() if k != "type"} | {"enum": text_spans}
    if kind == "array" and isinstance(prop.get("items"), dict):
        items = _grounded_property(name, prop["items"], text_spans, numbers, codes)
        if items is prop["items"]:
            return prop
        most = len(numbers) if items.get("type") in ("integer", "number") else 3
        return {**prop, "items": items, "minItems": 1, "maxItems": max(1, most)}
    return prop


def grounded_parameters(spec: ToolSpec, text: str) -> dict[str, Any] | None:
    """`spec`'s parameters with each value held to what `text` (the request) gives.

    Strings (without enum, format or pattern, and not composed text such as a
    ``query`` or ``code``) are one of the request's spans or clauses; numbers one of
    its numbers of the parameter's type ("two" counts as 2); arrays hold such items.
    A currency parameter (`forms.currency_parameter`) is one of the codes of the
    currencies the request names ("US dollars": "USD"), when it names any.
    Measured on BFCL's non-live cases outside the held-out ids, 86% of the required
    strings and 85% of the required numbers of the right calls are the request's own
    spans and numbers, and a 135M model writing freely drifts from them ("Manchester"
    for "Manhattan"). None when nothing was held.
    """
    parameters = spec.parameters or {}
    properties: dict[str, Any] = parameters.get("properties") or {}
    if not properties:
        return None
    text_spans = list(dict.fromkeys([*spans(text), *_clauses(text)]))
    numbers = _number_values(text)
    codes = currency_codes(text)
    held = {n: _grounded_property(n, p, text_spans, numbers, codes) for n, p in properties.items()}
    if all(held[n] is properties[n] for n in properties):
        return None
    return {**parameters, "properties": held}


# ---------------------------------------------------------------------------
# One value, one argument (third round).


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return value.strip().lower() if isinstance(value, str) else _number_text(value)


def repeated_values(arguments: dict[str, Any], spec: ToolSpec) -> list[str]:
    """The free string arguments (`free_strings`) holding a value an earlier argument
    (in the schema's order) already holds, compared as text ("10" and 10 are one).

    Held to the request's spans, SmolLM2-135M often writes one span into several
    arguments: ``league`` "Manchester United" next to ``team`` "Manchester United",
    ``room_type`` and ``view`` "Las Vegas" next to ``location`` "Las Vegas", ``unit``
    "10" next to ``height`` 10 (BFCL tune cases). A request names each thing once.
    Arrays count by their items. A number written into a free string is a repeat
    whichever comes first when a numeric argument holds it (``material`` "3" before
    ``size`` 3, sixth round): a number belongs to its numeric parameter (no right call
    of BFCL's tune pool has a free string equal to a numeric argument, of 1957).
    """
    properties: dict[str, Any] = (spec.parameters or {}).get("properties") or {}
    free = set(free_strings(spec))
    numbers = {
        _as_text(v)
        for k, v in arguments.items()
        if isinstance(properties.get(k), dict)
        and properties[k].get("type") in ("integer", "number")
        and _is_number(v)
    }
    held: set[str] = set()
    out: list[str] = []
    for name in properties:
        if name not in arguments:
            continue
        value = arguments[name]
        items = value if isinstance(value, list) else [value]
        texts = {t for t in (_as_text(i) for i in items) if t}
        if name in free and texts & (held | numbers):
            out.append(name)
        held |= texts
    return out


def _names_parameter(name: str, value: str) -> bool:
    """Whether `value`'s words are only the parameter's own name ("League" for
    ``league``, "team" for ``team_name``): a label next to the value in the request,
    not the value. A value holding a digit ("dataset1") is a value."""
    if re.search(r"[0-9]", value):
        return False
    own = words(re.sub(r"[_.\-]+", " ", name))
    mine = words(value)
    return bool(mine) and all(any(same_word(m, o) for o in own) for m in mine)


def self_named(arguments: dict[str, Any], spec: ToolSpec) -> list[str]:
    """The required free string arguments whose value only names the parameter itself.

    Held to the request's spans, SmolLM2-135M sometimes writes the word that labels the
    value instead of the value: ``league`` "League" for "Manchester United in Premier
    League" (BFCL tune). Measured on the right calls of BFCL's non-live cases outside
    the held-out ids, no required free string value is only its parameter's name (of
    1959 free string values, 8 are, all optional or holding a digit: ``unit`` "units",
    ``detail_level`` "detailed", "dataset1").
    """
    parameters = spec.parameters or {}
    required = set(parameters.get("required") or ())
    out = []
    for name in free_strings(spec):
        value = arguments.get(name)
        items = value if isinstance(value, list) else [value]
        texts = [i for i in items if isinstance(i, str)]
        if name in required and texts and all(_names_parameter(name, t) for t in texts):
            out.append(name)
    return out


def _overlaps(span: str, used: set[str]) -> bool:
    """Whether `span` shares a word (not a function word) or a number with a used value."""
    taken = {t for u in used for t in _tokens(u) if t not in STOP_WORDS}
    return any(t in taken for t in _tokens(span) if t not in STOP_WORDS)


def distinct_parameters(
    spec: ToolSpec, arguments: dict[str, Any], names: Sequence[str], text: str
) -> dict[str, Any] | None:
    """The schema asking `names` again, each held to the request's spans that share no
    word with another argument's value ("Premier League", not "United in Premier" next
    to "Manchester United"; not "height 10" next to 10); every other argument is kept
    as written (``const``) and optional ones not written stay out. None when no span is
    left."""
    parameters = spec.parameters or {}
    properties: dict[str, Any] = parameters.get("properties") or {}
    used = {
        t
        for k, v in arguments.items()
        if k not in names
        for t in (_as_text(i) for i in (v if isinstance(v, list) else [v]))
        if t
    }
    choices = [
        s
        for s in dict.fromkeys([*spans(text), *_clauses(text)])
        if not _overlaps(s, used)
        and not re.fullmatch(r"[\d.,:/\-]+", s)
        and not any(_names_parameter(n, s) for n in names)
    ]
    if not choices:
        return None
    out: dict[str, Any] = {}
    for name, value in arguments.items():
        if name not in properties:
            continue
        if name not in names:
            out[name] = {"const": value}
            continue
        prop = properties[name]
        held = {"type": "string", "enum": choices}
        out[name] = (
            {"type": "array", "items": held, "minItems": 1, "maxItems": 3}
            if prop.get("type") == "array"
            else held
        )
    return {
        "type": "object",
        "properties": out,
        "required": list(out),
        "additionalProperties": False,
    }
