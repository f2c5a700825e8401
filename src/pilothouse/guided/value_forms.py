"""Argument values in the parameter's own form, read from the request and the schema.

Held to the request's spans and numbers (`arguments.grounded_parameters`), SmolLM2-135M
writes a value the request holds, but not always in the form the parameter wants:
"June 30th 2023" where the description says "in the format of yyyy-mm-dd", 213 for
"213 million", the first three numbers of a seven-number list, "Angeles" for "Los
Angeles" (BFCL tune pool, docs/bfcl.md, ninth round). The functions here are pure
functions of the value, the parameter's schema and the request's text, applied by
`arguments.settle` after the arguments stage, so replaying the recorded stage replies
re-runs them exactly. Nothing is looked up in a table of cases:

- `request_dates` / `date_form` / `formed_date`: a date the request writes is given in
  the form the parameter's description states ("YYYY-MM-DD", "MM-DD-YYYY", "e.g.,
  2022-04-28"); with no form stated the value is left as it is;
- `scaled_number`: a number the request writes with a scale word ("213 million", "1.267
  billion", "5 thousand") is the scaled number; a unit ("300K", "50 mH") is not a scale;
- `whole_list`: an array whose items begin a list the request enumerates ("12, 15, 18,
  ..., 35") is that whole list, in order, each item typed as the item schema says;
- `whole_name`: a capitalised value the request writes inside a longer capitalised name
  ("Angeles" in "Los Angeles") is that name.

Each rule was counted without the model over BFCL's whole tune pool before it was
kept (`benchmarks/bfcl_values.py --forms`): how many right calls it breaks and how
many values in the request's own form it puts in the parameter's.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pilothouse.dates import MONTH_NUMBERS

__all__ = [
    "as_floats",
    "date_form",
    "formed_date",
    "is_request_date",
    "request_dates",
    "scaled_number",
    "whole_list",
    "whole_name",
]

# ---------------------------------------------------------------------------
# Dates

_MONTHS = MONTH_NUMBERS
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:1[6-9]|2[0-9])\d\d)"
_DATE_PATTERNS = [
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+(?:of\s+)?{_YEAR}\b", re.IGNORECASE),
    re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE),
    re.compile(r"\b(?P<year>\d{4})[-/.](?P<month>\d{1,2})[-/.](?P<day>\d{1,2})\b"),
    # a numeric day-month order is not knowable; the month first, as US requests write
    re.compile(r"\b(?P<month>\d{1,2})[-/](?P<day>\d{1,2})[-/](?P<year>\d{4})\b"),
]


def _month(raw: str) -> int:
    return int(raw) if raw.isdigit() else _MONTHS[raw.lower().rstrip(".")]


def request_dates(text: str) -> list[tuple[int, int, date]]:
    """The whole dates `text` writes (day, month and year), with their character span:
    "June 30th 2023", "30 June, 2023", "Jan. 15, 2021", "2022/08/16", "08-16-2022"."""
    found: list[tuple[int, int, date]] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e, _ in found):
                continue
            try:
                day = date(int(m.group("year")), _month(m.group("month")), int(m.group("day")))
            except ValueError:
                continue
            found.append((m.start(), m.end(), day))
    return sorted(found)


_FORM = re.compile(
    r"\b(yyyy|mm|dd)([-/.])(yyyy|mm|dd)\2(yyyy|yyy|mm|dd)\b|\b(\d{4})-(\d{2})-(\d{2})\b",
    re.IGNORECASE,
)
_SPELLED = re.compile(r"\((month)-(day)-(year)\)|\((year)-(month)-(day)\)", re.IGNORECASE)
_CODES = {"yyyy": "%Y", "yyy": "%Y", "mm": "%m", "dd": "%d"}


def date_form(description: str) -> str | None:
    """The `strftime` form a parameter's description states for a date, or None:
    "Format: yyyy-mm-dd", "in MM-DD-YYYY format", "DD-MM-YYYY", "(month-day-year)",
    or an example date ("e.g., 2022-04-28")."""
    m = _FORM.search(description)
    if m is not None:
        if m.group(5):
            return "%Y-%m-%d"
        parts = [m.group(1).lower(), m.group(3).lower(), m.group(4).lower()]
        if sorted(p[0] for p in parts) != ["d", "m", "y"]:
            return None
        return m.group(2).join(_CODES[p] for p in parts)
    spelled = _SPELLED.search(description)
    if spelled is not None:
        order = [g.lower() for g in spelled.groups() if g]
        codes = {"year": "%Y", "month": "%m", "day": "%d"}
        return "-".join(codes[p] for p in order)
    return None


def formed_date(value: Any, description: str, text: str, schema_format: Any = None) -> str | None:
    """`value` as the date its description's form (or a JSON Schema ``"format": "date"``,
    ISO 8601) asks for, or None (no form stated,
    or no date it stands for). The date is the value itself when it is a whole date in
    another form, else the request's one date the value is part of ("June 30th" or
    "2023" of "June 30th 2023")."""
    form = "%Y-%m-%d" if schema_format == "date" else date_form(description)
    if form is None or not isinstance(value, str) or not value.strip():
        return None
    own = request_dates(value)
    if len(own) == 1 and own[0][1] - own[0][0] == len(value.strip()):
        chosen = [own[0][2]]  # a whole date in another form ("June 4, 2022")
    else:
        chosen = [d for s, e, d in request_dates(text) if _overlaps(value, text[s:e])]
    if len(set(chosen)) != 1:
        return None
    formed = chosen[0].strftime(form)
    return None if formed == value else formed


def is_request_date(value: Any, text: str) -> bool:
    """Whether `value` is wholly a date `text` writes, in any form ("2023-06-30" for
    "June 30th 2023"): the request's value in its parameter's form, not words nobody
    said (so the arguments are not asked again for it)."""
    if not isinstance(value, str):
        return False
    own = request_dates(value)
    if len(own) != 1 or own[0][1] - own[0][0] != len(value.strip()):
        return False
    return own[0][2] in {d for _, _, d in request_dates(text)}


def _overlaps(value: str, written: str) -> bool:
    """Whether `value` is the written date or part of it. A value holding more than the
    date ("2024-03-15 09:00", a date and a time) is not: formed, it would lose the rest."""
    v, w = value.strip().lower(), written.strip().lower()
    if v in w:
        return True
    return any(d == v for d in re.findall(r"\d+", w)) if v.isdigit() else False


# ---------------------------------------------------------------------------
# Numbers with a scale word

_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_SCALED = re.compile(
    r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?)\s*(thousand|million|billion)\b", re.IGNORECASE
)


def scaled_number(value: Any, kind: str | None, text: str) -> int | float | None:
    """The number `value` stands for when the request writes it with a scale word
    ("213 million": 213000000), or None. Only when the request does not also write the
    same number without one (then the plain number may be meant); a unit ("300K",
    "50 mH") is not a scale."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    scaled = []
    for m in _SCALED.finditer(text):
        number = float(m.group(1).replace(",", ""))
        if number == value:
            scaled.append(number * _SCALES[m.group(2).lower()])
    if len(set(scaled)) != 1:
        return None
    plain = re.findall(
        r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])(?!\s*(?:thousand|million|billion))", text
    )
    if any(float(p) == value for p in plain):
        return None
    out = scaled[0]
    return int(out) if out.is_integer() else out


# ---------------------------------------------------------------------------
# A list the request enumerates

_ITEM = r"-?\d+(?:\.\d+)?"
_NUMBER_LIST = re.compile(rf"{_ITEM}(?:\s*,\s*(?:and\s+)?{_ITEM}|\s+and\s+{_ITEM})+")


def _typed(raw: str, kind: str | None) -> int | float | None:
    number = float(raw)
    if kind == "integer":
        return int(number) if number.is_integer() else None
    return int(number) if number.is_integer() and "." not in raw else number


def _number_lists(text: str, kind: str | None) -> list[list[Any]]:
    out = []
    for m in _NUMBER_LIST.finditer(text):
        items = [_typed(r, kind) for r in re.findall(_ITEM, m.group(0))]
        if all(i is not None for i in items):
            out.append(items)
    return out


def whole_list(value: Any, item_kind: str | None, text: str) -> list[Any] | None:
    """The whole list the request enumerates when `value`'s items begin it and stop
    short ("[23, 45, 12]" of "[23, 45, 12, 89, 34, 67, 29]", "efficient, organized,
    easy going" of "efficient, organized, easy going and compassionate"), typed as the
    item schema says (an "integer" list of whole numbers), or None. The arguments
    stage holds a list of strings to three of the request's spans, and SmolLM2-135M
    stops a list of numbers early. Only the request's own separators ("," and "and")
    are read."""
    if not isinstance(value, list) or not value:
        return None
    if item_kind in ("integer", "number"):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return None
        lists = _number_lists(text, item_kind)
    elif (
        item_kind == "string"
        and len(value) == _STRING_ITEMS_HELD
        and all(isinstance(v, str) and v.strip() for v in value)
    ):
        lists = _word_lists(text, value[0])
    else:
        return None
    found = [
        items
        for items in lists
        if len(items) > len(value) and _same_items(items[: len(value)], value)
    ]
    if len(found) != 1:
        return None
    return found[0]


def _same_items(written: list[Any], value: list[Any]) -> bool:
    if all(isinstance(v, str) for v in value):
        return [str(w).lower() for w in written] == [v.strip().lower() for v in value]
    return written == value


# `arguments.grounded_parameters` holds a list of strings to three spans: a list of
# three may be cut, a shorter one was not
_STRING_ITEMS_HELD = 3
_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+")
_LIST_ITEM_WORDS = 3
_NOT_IN_ITEM = r"(?!(?:and|or|from|in|at|for|with|to|of|on|by|the|over|given|that|respectively)\b)"
_LIST_ITEM = re.compile(
    rf"{_NOT_IN_ITEM}[A-Za-z][\w'-]*(?: {_NOT_IN_ITEM}[A-Za-z][\w'-]*){{0,{_LIST_ITEM_WORDS - 1}}}"
)


def _word_lists(text: str, first: str) -> list[list[str]]:
    """The enumerations of `text` that start with `first` ("milk, bread, eggs and
    apples"): items of at most three words between "," and "and"; the last item ends
    at the first word that is not a letter word or at punctuation."""
    out = []
    for m in re.finditer(rf"(?<![\w-]){re.escape(first.strip())}(?![\w-])", text, re.IGNORECASE):
        items = [m.group(0)]
        rest = text[m.end() :]
        while True:
            sep = _SEPARATOR.match(rest)
            if sep is None:
                break
            item = _LIST_ITEM.match(rest[sep.end() :])
            if item is None:
                break
            words = item.group(0).split()
            after = rest[sep.end() + item.end() :]
            last = sep.group(0).strip(" ,") in ("and", "or")
            ends = after[:1] in ("", ",", ".", "?", "!", ";", ")", "]")
            if not last and not ends and not _SEPARATOR.match(after):
                break  # the item runs on past three words: not a list of short items
            items.append(" ".join(words))
            rest = after
            if last:
                break
        if len(items) > 1:
            out.append(items)
    return out


def as_floats(value: Any, items: Any) -> list[float] | None:
    """A number list whose item schema says ``"format": "float"`` with its whole numbers
    written as floats ([12, 15] as [12.0, 15.0]), or None when nothing changes. JSON
    does not tell 12 from 12.0, but a typed consumer does: BFCL's checker fails a float
    list holding an int (simple_python_82 on the seed-15 pool sample)."""
    if not isinstance(items, dict) or items.get("format") != "float" or not isinstance(value, list):
        return None
    if not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    if all(isinstance(v, float) for v in value):
        return None
    return [float(v) for v in value]


# ---------------------------------------------------------------------------
# A name cut at a word

_CAPITALISED = re.compile(r"[A-Z][\w'.-]*")
_RUN_BEFORE = re.compile(r"(?:(?<=[\s'\"“(])|^)(?:[A-Z][\w'-]* )+$")


def whole_name(value: Any, text: str, other_words: frozenset[str] = frozenset()) -> str | None:
    """The request's whole capitalised name when `value` is its last words only
    ("Angeles" of "Los Angeles", "York" of "New York"), or None. The name is the run of
    capitalised words (no punctuation between) ending where the value ends; its first
    word does not open a sentence, so "Find Paris" stays "Paris". Only a value the
    request writes once, and only leftwards: a name is not extended into the words after
    it ("Glucose" is not "Glucose C6H12O6"). Words in `other_words` (the words of the
    other arguments' values, of the tool's and the parameter's names) end the run: "Fender"
    is the ``brand`` of "Fender Stratocaster", "Lawyer" the tool's word in "Lawyer John
    Doe" (BFCL tune pool: without this, 6 right calls broken)."""
    if not isinstance(value, str) or not value[:1].isupper():
        return None
    words = value.split()
    if not all(_CAPITALISED.fullmatch(w) for w in words):
        return None
    hits = list(re.finditer(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text))
    if len(hits) != 1:
        return None
    prefix = text[: hits[0].start()]
    run = _RUN_BEFORE.search(prefix)
    if run is None:
        return None
    extra = run.group(0).split()
    for i in range(len(extra) - 1, -1, -1):
        if extra[i].lower().strip(".") in other_words:
            extra = extra[i + 1 :]
            break
    opening = prefix[: run.start()].rstrip()
    if not opening or opening[-1] in ".!?:\n":
        extra = extra[1:]  # the run's first word opens a sentence: not part of the name
    if not extra:
        return None
    return " ".join([*extra, value])
