"""Values and where they came from: normalisation, entities, and a run's trusted values.

`trusted` (and `trusted_entities`) ask one question of a value: did it come from
trusted input as a *whole value*? Never as a substring: "13" is not in "June 13"
(that is a date), "1" is not in "2021", "a" is not in any sentence. So values are
compared by their keys (`value_keys`): a canonical form after normalisation (case,
whitespace, numbers: ``100.0`` == ``"100"`` == ``"100.00"``; dates: ``"June 13, 2024"``
== ``"2024-06-13"``), plus the canonical form of the one entity the
whole value is (an IBAN with or without spaces, a phone number however punctuated).

Trusted input is:
- the user's messages, read as the set of their whole text and the entities in it
  (`text_keys`: e-mail addresses, URLs, IBANs, phone numbers, dates, numbers, ids
  such as ``W2378156`` or ``mia_li_36689``, quoted strings, capitalised names);
- the fields a tool declares trusted (`ToolInfo.trusted`: ids, senders, participants),
  read from its structured result (`CallRecord.value`), minus the values the result
  only echoes from the call's own arguments (propagation: an argument the model chose
  does not become trusted by a tool repeating it);
- role bindings (`RunContext.bind` or the principal's ``roles`` attribute, and trusted
  fields declared with a role): a value bound to a role is trusted only for
  arguments that ask for that role.

Everything else (result bodies, pages, recalled memory, retrieved documents) is
untrusted. `Provenance` is the index of one run, kept on the `RunContext` and brought
up to date incrementally (a new user message or a completed call adds its keys).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from pilothouse.dates import MONTH_NUMBERS
from pilothouse.policy.context import CallRecord, RunContext

__all__ = [
    "ENDORSED",
    "ENTITY_KINDS",
    "REQUEST_ROLES",
    "Provenance",
    "entities",
    "field_items",
    "field_values",
    "normalise",
    "provenance",
    "text_keys",
    "value_keys",
]

MAX_TEXT = 200_000
"""Entities are read from the first 200,000 characters of a text (a value further on is
not trusted: fail-closed), so a hostile megabyte costs a bounded, linear amount of work."""

ENTITY_KINDS = ("email", "url", "iban", "phone", "date", "number", "id", "quoted", "name")
"""What `entities` finds in free text, in the order spans are claimed."""

_WS = re.compile(r"\s+")
_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_NUMBER_WHOLE = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^[+-]?\.\d+$")
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_MONTH_NUM = MONTH_NUMBERS
# Every repetition is bounded and every pattern starts at a word boundary or a fixed
# prefix, so a hostile text (a megabyte of digits and spaces, one endless word) is read
# in linear time: an unbounded `[\w.]+@` would try every start position to the end.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("url", re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]{1,2000}", re.I)),
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")),
    # a web address without a scheme: www.example.com, example.com/path
    (
        "url",
        re.compile(
            r"(?<![\w.@/-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}(?-i:[a-z]{2,24})\b"
            r"(?:/[^\s<>\"'`]{0,2000})?",
            re.I,
        ),
    ),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", re.I)),
    (
        "date",
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?\b"
            rf"|\b(?:{_MONTHS})\.? \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?\b"
            rf"|\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTHS})\.?(?:,? \d{{4}})?\b",
            re.I,
        ),
    ),
    ("phone", re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{5,22}\d\b")),
    (
        "id",
        re.compile(
            r"(?<![\w-])#?(?=[\w-]{0,63}\d)(?=[\w-]{0,63}[A-Za-z_])[A-Za-z0-9][\w-]{0,62}"
            r"[A-Za-z0-9](?![\w-])"
        ),
    ),
    (
        "number",
        re.compile(r"(?<![\w.,])[+-]?(?:\d{1,3}(?:,\d{3}){1,10}|\d{1,40})(?:\.\d{1,20})?(?![\w])"),
    ),
    (
        "quoted",
        re.compile(
            r"\"([^\"\n]{1,200})\"|“([^”\n]{1,200})”|\u2018([^\u2019\n]{1,200})\u2019|`([^`\n]{1,200})`"
            r"|(?<![\w'])'([^'\n]{1,200})'(?![\w'])"  # 'single quotes', not it's or Dora's
        ),
    ),
    ("name", re.compile(r"\b[A-Z][\w'-]*(?: [A-Z][\w'-]*)*")),
)


# --------------------------------------------------------------------------- values


def _number(s: str) -> str | None:
    """A number's canonical text (``100.0``, ``"100"``, ``"1,000.00"`` -> ``100``/``1000``)."""
    if not _NUMBER_WHOLE.match(s):
        return None
    try:
        d = Decimal(s.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the regex admits only numbers
        return None
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "+0") else text


def _date(s: str) -> str | None:
    """An ISO date (``2024-06-13``), or ``--06-13`` for a date without a year."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:[t ](\d{2}):(\d{2})(?::(\d{2}))?)?", s)
    if m:
        try:
            datetime(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return None
        iso = f"{m[1]}-{m[2]}-{m[3]}"
        return iso if m[4] is None else f"{iso}t{m[4]}:{m[5]}:{m[6] or '00'}"
    words = re.sub(r"(\d)(?:st|nd|rd|th)\b", r"\1", s.replace(",", " ").replace(".", " "))
    parts = [p for p in words.split() if p != "of"]
    month = day = year = None
    for p in parts:
        if p in _MONTH_NUM and month is None:
            month = _MONTH_NUM[p]
        elif p.isdigit() and len(p) <= 2 and day is None:
            day = int(p)
        elif p.isdigit() and len(p) == 4 and year is None:
            year = int(p)
        else:
            return None
    if month is None or day is None:
        return None
    try:
        datetime(year or 2000, month, day)  # 2000: a leap year, so 29 February is a date
    except ValueError:
        return None
    return f"{year:04d}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"


def normalise(value: Any) -> str | None:
    """The canonical text of a whole value; None for None (not a value at all).

    Strings are case-folded with whitespace collapsed; numbers (and strings that are
    numbers) become their canonical decimal text; dates become ISO; booleans ``true``
    and ``false``; other values their canonical JSON.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value).casefold()
        return _number(repr(value)) or str(value)
    if isinstance(value, str):
        s = _WS.sub(" ", value).strip().casefold()
        return _number(s) or _date(s) or s
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).casefold()
    except (TypeError, ValueError):  # pragma: no cover - JSON-able by contract
        return repr(value).casefold()


def _entity_key(kind: str, text: str) -> str | None:
    """The canonical form of one entity of `kind`, or None when it is not one after all."""
    if kind == "email":
        return text.casefold()
    if kind == "url":  # scheme, "www." and a trailing slash do not tell two sites apart
        url = text.rstrip(".,;:!?)]}'\"").casefold()
        url = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url)
        url = url[4:] if url.startswith("www.") else url
        return url.rstrip("/") or None
    if kind == "iban":
        compact = text.replace(" ", "").upper()
        if not 15 <= len(compact) <= 34:
            return None
        rotated = compact[4:] + compact[:4]
        digits = "".join(str(int(ch, 36)) for ch in rotated)
        return compact.casefold() if int(digits) % 97 == 1 else None
    if kind == "phone":
        digits = re.sub(r"\D", "", text)
        if not 7 <= len(digits) <= 15:
            return None
        return ("+" if text.startswith("+") else "") + digits
    if kind == "date":
        return _date(_WS.sub(" ", text).strip().casefold())
    if kind == "number":
        return _number(text)
    if kind == "id":
        return text.lstrip("#").casefold()
    if kind == "name":  # "City Hub'" (a closing quote) is the name City Hub
        return normalise(text.strip("'-"))
    return normalise(text)


def entities(text: str, kinds: Iterable[str] = ENTITY_KINDS) -> Iterator[tuple[str, str]]:
    """The entities in free text as ``(kind, canonical form)``, each span claimed once.

    Kinds are tried in `ENTITY_KINDS` order; a span an earlier kind claimed (the date
    "June 13") is not read again by a later one (the number 13).
    """
    wanted = set(kinds)
    text = text[:MAX_TEXT]
    claimed = bytearray(len(text))  # 1 where an earlier entity claimed the character
    for kind, rx in _PATTERNS:
        for m in rx.finditer(text):
            start, end = m.span()
            if kind != "quoted" and claimed.find(1, start, end) != -1:
                continue  # a quoted value is the user's exact words, whatever is inside
            if kind == "quoted":
                raw = next(g for g in m.groups() if g is not None)
                key = normalise(raw)
            else:
                raw = m.group(0)
                key = _entity_key(kind, raw)
            if key is None or key == "":
                continue
            if kind not in ("name", "quoted"):  # they claim no span: the entities stay
                claimed[start:end] = b"\x01" * (end - start)
            if kind in wanted:
                yield kind, key
                if kind == "id" and raw.startswith("#"):
                    yield kind, raw.casefold()
                if kind == "name" and " " in raw:
                    for word in raw.split():
                        word = word.strip("'-")
                        if len(word) > 1:
                            yield kind, word.casefold()


def value_keys(value: Any) -> frozenset[str]:
    """The keys a whole value is known by: its normal form, and the entity it is, if one.

    Empty for None and for empty or blank strings: they carry nothing to trust.
    """
    if isinstance(value, str | int | float):  # bool is an int: the type is in the key
        return _cached_keys(type(value).__name__, value)
    return _value_keys(value)


@lru_cache(maxsize=8192)
def _cached_keys(kind: str, value: Any) -> frozenset[str]:
    return _value_keys(value)


def _value_keys(value: Any) -> frozenset[str]:
    key = normalise(value)
    if not key:
        return frozenset()
    keys = {key}
    if isinstance(value, str):
        text = _WS.sub(" ", value).strip()
        for kind, rx in _PATTERNS:  # the one entity the whole value is, if it is one
            if kind in ("number", "quoted", "name"):
                continue
            if rx.fullmatch(text):
                ek = _entity_key(kind, text)
                if ek:
                    keys.add(ek)
                    if kind == "date" and len(ek) >= 10 and not ek.startswith("--"):
                        keys.add("--" + ek[5:10])  # "2024-06-13" is also what "June 13" says
                break
    return frozenset(keys)


def text_keys(text: str) -> frozenset[str]:
    """What a trusted text vouches for: its whole normal form and every entity in it."""
    keys = {k for _, k in entities(text)}
    whole = normalise(text)
    if whole:
        keys.add(whole)
    return frozenset(keys)


_PLACEHOLDER = re.compile(r"\{[A-Za-z_][\w ]{0,40}\}")
_QUOTED = dict(_PATTERNS)["quoted"]


def templates(text: str) -> list[re.Pattern[str]]:
    """The templates a user's message gives: quoted text with ``{placeholders}``.

    "The event title should be 'Dinner at {restaurant_name}'" gives ``Dinner at (.+)``:
    the user wrote the frame and left the slot to the agent. Literal parts match after
    case folding and whitespace collapsing; each slot is one value (checked by the caller).
    """
    out: list[re.Pattern[str]] = []
    for m in _QUOTED.finditer(text[:MAX_TEXT]):
        quoted = next(g for g in m.groups() if g is not None)
        parts = _PLACEHOLDER.split(_WS.sub(" ", quoted).strip())
        if len(parts) < 2 or len(parts) > 5:
            continue  # no slot (a plain quoted value), or too many to be a frame
        literal = [re.escape(p).replace("\\ ", "\\s+") for p in parts]
        out.append(re.compile("(.{1,200}?)".join(literal), re.IGNORECASE | re.DOTALL))
    return out


def field_values(value: Any, path: str) -> list[Any]:
    """The leaves of `value` at a dotted `path` (``*`` or a list on the way: every item).

    ``"sender"``, ``"emails.*.sender"``, ``"participants"`` (a list: each item),
    ``"shared_with.keys()"`` (a mapping's keys, not its values). A string that is JSON is
    read as such (a tool returning JSON text).
    """
    current = [value]
    for part in path.split(".") if path else []:
        nxt: list[Any] = []
        for v in current:
            if part == "keys()":  # a mapping's keys (`shared_with: {address: permission}`)
                if isinstance(v, Mapping):
                    nxt.append([str(k) for k in v])
                elif isinstance(v, list):
                    nxt.extend([str(k) for k in x] for x in v if isinstance(x, Mapping))
            elif isinstance(v, list):
                items = v if part == "*" else [x.get(part) for x in v if isinstance(x, Mapping)]
                nxt.extend(i for i in items if i is not None)
            elif isinstance(v, Mapping) and part in v and v[part] is not None:
                nxt.append(v[part])
        current = nxt
    out: list[Any] = []
    stack = list(reversed(current))
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, Mapping):
            stack.extend(reversed(list(v.values())))
        else:
            out.append(v)
    return out


def _leaf_keys(value: Any) -> set[str]:
    """Keys of a trusted field's leaf: the value itself and, for text, its entities."""
    keys = set(value_keys(value))
    if isinstance(value, str) and len(value) > 3:
        keys.update(k for kind, k in entities(value) if kind not in ("name", "number"))
    return keys


def _argument_keys(arguments: Mapping[str, Any]) -> set[str]:
    """Everything a call's arguments say (their values and the entities in their text)."""
    keys: set[str] = set()
    for v in field_values(arguments, ""):
        keys |= value_keys(v)
        if isinstance(v, str):
            keys.update(k for _, k in entities(v))
    return keys


# --------------------------------------------------------------------------- a run's index

Declarations = Mapping[str, Mapping[str, str | None]]
"""Tool name -> {trusted field path -> role (None: trusted for any argument)}; under
`REQUEST_ROLES`, role -> the pattern that binds a value of the user's words to it."""

REQUEST_ROLES = "<request>"
"""The declarations' entry for roles bound from the user's words (the document's
``roles:``): ``{role: regex with one group}``. No tool can have this name."""

ENDORSED = "<endorsed>"
"""The declarations' entry for content the user's request points at (a tool's
``endorsed:``): ``{"TOOL\tFIELD PATH": regex with named groups}``."""


def field_items(value: Any, parent: str) -> list[Mapping[str, Any]]:
    """The mappings at `parent` (a dotted path, ``*`` for every item; ``""``: the result
    itself, or each item of a list result): the items a field path's last part is in."""
    current = [value]
    for part in parent.split(".") if parent else []:
        nxt: list[Any] = []
        for v in current:
            if isinstance(v, list):
                nxt.extend(v if part == "*" else (x.get(part) for x in v if isinstance(x, Mapping)))
            elif isinstance(v, Mapping) and v.get(part) is not None:
                nxt.append(v[part])
        current = [x for x in nxt if x is not None]
    out: list[Mapping[str, Any]] = []
    for v in current:
        if isinstance(v, Mapping):
            out.append(v)
        elif isinstance(v, list):
            out.extend(x for x in v if isinstance(x, Mapping))
    return out


@dataclass(slots=True)
class Provenance:
    """The trusted values of one run, by key, brought up to date as the run grows.

    `user`: keys from the user's messages; `fields`: keys from trusted result fields
    (with the tool that vouched for them); `roles`: role -> keys bound to it, and
    `bound`: key -> the roles it is bound to (a bound value is trusted only for them).
    """

    declarations: Declarations
    user: set[str] = field(default_factory=set)
    fields: dict[str, str] = field(default_factory=dict)  # key -> the tool that vouched
    roles: dict[str, set[str]] = field(default_factory=dict)
    bound: dict[str, set[str]] = field(default_factory=dict)
    echoed: dict[str, str] = field(default_factory=dict)  # key -> the tool that echoed it
    messages: int = 0
    done: list[bool] = field(default_factory=list)  # per history record: read (final)
    bindings: int = 0
    principal_roles: Any = None
    declared: int = 0  # how many tools were declared when the index was built
    seen: list[frozenset[str] | None] = field(default_factory=list)  # per record: all its keys
    frames: list[re.Pattern[str]] = field(default_factory=list)  # the user's templates
    # (tool, field path, {group: keys}): items the user's messages point at by metadata
    pointers: list[tuple[str, str, dict[str, frozenset[str]]]] = field(default_factory=list)
    pointed: dict[str, str] = field(default_factory=dict)  # key -> the tool it was read from

    def update(self, ctx: RunContext) -> Provenance:
        """Read what the run added since the last check (messages, calls, bindings)."""
        msgs = ctx.user_messages
        if len(msgs) != self.messages:
            if len(msgs) < self.messages:
                return self._reset(ctx)
            bound_by = self.declarations.get(REQUEST_ROLES)
            endorse = self.declarations.get(ENDORSED)
            pointers = len(self.pointers)
            for m in msgs[self.messages :]:
                self.user |= text_keys(m)
                self.frames.extend(templates(m))
                if bound_by:  # "my landlord's account is X": X is bound to `landlord`
                    for role, pattern in bound_by.items():
                        for found in re.finditer(str(pattern), m[:MAX_TEXT]):
                            if found.group(1):
                                self._bind(role, value_keys(found.group(1).strip()))
                if endorse:  # "the message from Bob to Alice": that item's body
                    for where, pattern in endorse.items():
                        tool, _, path = where.partition("\t")
                        for found in re.finditer(str(pattern), m[:MAX_TEXT]):
                            groups = {
                                g: value_keys(v.strip().rstrip(".,;:!?"))
                                for g, v in found.groupdict().items()
                                if v is not None
                            }
                            if groups and all(groups.values()):
                                self.pointers.append((tool, path, groups))
            if len(self.pointers) != pointers:  # read the calls so far again for them
                self.done = [False] * len(self.done)
            self.messages = len(msgs)
        history = ctx.history
        if len(history) < len(self.done):
            return self._reset(ctx)
        self.done.extend([False] * (len(history) - len(self.done)))
        if self.declarations:
            for i, rec in enumerate(history):
                if not self.done[i] and rec.ok and rec.result is not None:
                    self.done[i] = True
                    self._read(rec)
        else:
            self.done = [True] * len(history)
        if len(ctx.bindings) != self.bindings:
            for role, value in ctx.bindings[self.bindings :]:
                self._bind(role, value_keys(value))
            self.bindings = len(ctx.bindings)
        roles = ctx.principal.attributes.get("roles")
        if roles is not self.principal_roles:
            if self.principal_roles is not None:
                return self._reset(ctx)
            self.principal_roles = roles
            if isinstance(roles, Mapping):
                for role, values in roles.items():
                    for v in values if isinstance(values, list) else [values]:
                        self._bind(str(role), value_keys(v))
        return self

    def _reset(self, ctx: RunContext) -> Provenance:
        fresh = Provenance(self.declarations, declared=len(self.declarations))
        if ctx.provenance is None:
            ctx.provenance = {}
        ctx.provenance[id(self.declarations)] = fresh
        return fresh.update(ctx)

    def untrusted_source(self, ctx: RunContext, keys: frozenset[str]) -> str | None:
        """The latest tool whose output holds the value (whole or as an entity): for a
        reason only (each record's keys are read once, when a reason first needs them)."""
        history = ctx.history
        self.seen.extend([None] * (len(history) - len(self.seen)))
        for i in range(len(history) - 1, -1, -1):
            rec = history[i]
            if rec.result is None:
                continue
            found = self.seen[i]
            if found is None:
                acc: set[str] = set()
                for leaf in field_values(rec.value, ""):
                    acc |= value_keys(leaf)
                    if isinstance(leaf, str):
                        acc |= text_keys(leaf)
                found = frozenset(acc)
                if rec.ok:  # final: a provisional record is read again once it has run
                    self.seen[i] = found
            if keys & found:
                return rec.name
        return None

    def fills(self, ctx: RunContext, value: str) -> str | None:
        """The user's template `value` fills, each slot with one value the run read (from
        the user or any tool's output), or None. The frame is the user's words; the slot
        is what the user left to the agent ("Dinner at {restaurant_name}")."""
        text = _WS.sub(" ", value).strip()
        for frame in self.frames:
            m = frame.fullmatch(text)
            if m is None:
                continue
            slots = [value_keys(g.strip()) for g in m.groups()]
            if all(k and (self.source(k, None) or self.untrusted_source(ctx, k)) for k in slots):
                return frame.pattern
        return None

    def _bind(self, role: str, keys: Iterable[str]) -> None:
        for k in keys:
            self.roles.setdefault(role, set()).add(k)
            self.bound.setdefault(k, set()).add(role)

    def _read(self, rec: CallRecord) -> None:
        fields = self.declarations.get(rec.name)
        if not fields:
            return
        for tool, path, groups in self.pointers:
            if tool != rec.name:
                continue
            parent, _, leaf = path.rpartition(".")
            for item in field_items(rec.value, parent):
                if all(
                    any(value_keys(v) & keys for v in field_values(item, g))
                    for g, keys in groups.items()
                ):
                    for text in field_values(item, leaf):
                        for k in text_keys(text) if isinstance(text, str) else value_keys(text):
                            self.pointed.setdefault(k, rec.name)
        echo = _argument_keys(rec.arguments)
        value = rec.value
        for path, role in fields.items():
            for leaf in field_values(value, path):
                for k in _leaf_keys(leaf):
                    if k in echo:
                        self.echoed.setdefault(k, rec.name)
                    elif role is not None:
                        self._bind(role, (k,))
                    else:
                        self.fields.setdefault(k, rec.name)

    def source(self, keys: frozenset[str], role: str | None) -> str | None:
        """Why a value with `keys` is trusted (None: it is not), for `role` if given."""
        if role is not None:
            mine = self.roles.get(role, ())
            return f"bound to role {role!r}" if any(k in mine for k in keys) else None
        for k in keys:
            if k in self.bound:
                continue
            if k in self.user:
                return "the user's messages"
            if k in self.fields:
                return f"a trusted field of {self.fields[k]!r}"
            if k in self.pointed:
                return f"content of {self.pointed[k]!r} the user's request points at"
        return None

    def roles_of(self, keys: frozenset[str]) -> set[str]:
        """The roles a value is bound to (empty: it is not bound)."""
        out: set[str] = set()
        for k in keys:
            out |= self.bound.get(k, set())
        return out


def provenance(ctx: RunContext, declarations: Declarations) -> Provenance:
    """The run's index for these declarations, up to date (kept on the context, one per
    set of declarations: the layers of a policy may declare different trusted fields)."""
    cache = ctx.provenance
    if cache is None:
        cache = ctx.provenance = {}
    p = cache.get(id(declarations))
    if p is None or p.declarations is not declarations or p.declared != len(declarations):
        p = cache[id(declarations)] = Provenance(declarations, declared=len(declarations))
    return p.update(ctx)
