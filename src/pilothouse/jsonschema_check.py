"""One JSON-schema validator, compiled once into closures: value -> None or why not.

Shared by the policy engine (argument and principal conditions, `compile_schema`),
the evaluation datasets (`evals.dataset.json_schema`) and the guided-decoding layer.
It covers the subset those use, not the whole specification:

- ``type`` (one name or a list), ``enum``, ``const``;
- numbers: ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``;
- strings: ``pattern`` (``re.search``, unanchored as the spec says), ``minLength``,
  ``maxLength``;
- arrays: ``items`` (one schema), ``minItems``, ``maxItems``, ``contains`` with
  ``minContains``/``maxContains`` (how many items match), ``uniqueItems`` (JSON equality:
  ``1`` and ``1.0`` are one value, ``true`` and ``1`` two);
- objects: ``properties``, ``required``, ``additionalProperties`` (bool or schema);
- combinators: ``not``, ``anyOf``, ``oneOf``, ``allOf``; ``$ref`` to
  ``#/$defs/NAME`` or ``#/definitions/NAME`` (what pydantic writes), recursion allowed;
- annotations that never fail a value (``title``, ``description``, ``default``,
  ``examples``, ``format``, ...) are accepted and ignored.

Why not the `jsonschema` library: it would be a new dependency importing in about
100 ms, and per check it is 5-15 times slower (a policy condition: 0.06-0.2 µs here
against 1-2 µs for a `jsonschema` validator built once; a tool-arguments object: 2 µs
against 33 µs; `benchmarks/jsonschema_check.py`). Its messages also name
JSON-schema internals where these name the value (``500 is not <= 100``), which is
what a model or a reviewer reads.

Differences from the specification, on purpose: ``integer`` is an `int` (not
``1.0``), tuples count as arrays (Python callers pass them), and ``format`` is not
checked. Booleans are never numbers, nor equal to one in ``enum``/``const`` (Python's
``True == 1`` is not JSON's). Checked against `jsonschema` (Draft 2020-12) on 60,000
random schema/value pairs of this subset: no disagreement
(`benchmarks/jsonschema_differential.py`). With ``strict=True`` (the policy) an unknown
keyword is an error listing the known ones, so a typo such as ``maxi`` (or a
``format`` this validator does not check) cannot silently allow everything; with
``strict=False`` (datasets, model schemas) it is ignored. A malformed schema raises
`SchemaError` with the path of the bad keyword.

Only the standard library is imported, and ``re`` patterns compile when a schema is
compiled, not at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pilothouse.exceptions import SchemaError

Validator = Callable[[Any], "str | None"]
"""A compiled schema: None when the value is valid, otherwise the first problem."""
SchemaPath = tuple[str | int, ...]

TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}

KEYWORDS: tuple[str, ...] = (
    "type",
    "enum",
    "const",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "items",
    "minItems",
    "maxItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "not",
    "properties",
    "required",
    "additionalProperties",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
)
"""The keywords that constrain a value (what an unknown keyword's error lists)."""

ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "format",
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
"""Keywords accepted and ignored: they describe a value, they never reject one."""
STRICT_ANNOTATIONS = frozenset({"title", "description", "$comment", "$defs", "definitions"})
"""What strict mode ignores: not ``format`` (an author writing ``format: uuid`` as a
policy condition expects it to be checked; ignoring it would allow everything)."""

_NUMBER = (int, float)


def compile_schema(schema: Any, *, strict: bool = False) -> Validator:
    """Compile `schema` once; the result is called per value (see the module docs).

    Raises `SchemaError` (with `.path`, the keyword's place in the schema) when the
    schema is malformed, or, with `strict`, uses a keyword outside `KEYWORDS`.
    """
    return _Compiler(schema, strict).compile(schema, ())


def validate(value: Any, schema: Any) -> str | None:
    """The first problem of `value` against `schema` (lenient), or None: a one-off check."""
    return compile_schema(schema)(value)


class _Compiler:
    """Compiles one root schema; `$ref`s resolve against that root."""

    __slots__ = ("refs", "root", "strict")

    def __init__(self, root: Any, strict: bool) -> None:
        self.root = root
        self.strict = strict
        self.refs: dict[str, Validator | None] = {}

    def compile(self, schema: Any, where: SchemaPath) -> Validator:
        if schema is True or (isinstance(schema, Mapping) and not schema):
            return _accept
        if schema is False:
            return _reject
        if not isinstance(schema, Mapping):
            raise SchemaError(where, f"a schema must be a mapping, not {schema!r}")
        checks: list[Validator] = []
        for key, arg in schema.items():
            at = (*where, key)
            build = _KEYWORD_BUILDERS.get(key)
            if build is not None:
                check = build(self, arg, at, schema)
                if check is not None:
                    checks.append(check)
            elif key in (STRICT_ANNOTATIONS if self.strict else ANNOTATIONS):
                continue
            elif self.strict:
                raise SchemaError(at, f"unknown keyword {key!r}; use one of {list(KEYWORDS)}")
        return _all(checks)

    def ref(self, target: Any, at: SchemaPath) -> Validator:
        if not isinstance(target, str) or not target.startswith("#/"):
            raise SchemaError(at, f"only local references (#/$defs/NAME) are supported: {target!r}")
        if target not in self.refs:
            node: Any = self.root
            parts = [p.replace("~1", "/").replace("~0", "~") for p in target[2:].split("/")]
            for part in parts:
                if not isinstance(node, Mapping) or part not in node:
                    raise SchemaError(at, f"reference {target!r} points at nothing")
                node = node[part]
            self.refs[target] = None  # compiling: a recursive reference finds it at call time
            self.refs[target] = self.compile(node, tuple(parts))
        refs = self.refs

        def follow(v: Any) -> str | None:
            check = refs[target]
            assert check is not None
            return check(v)

        return follow


def _accept(v: Any) -> str | None:
    return None


def _reject(v: Any) -> str | None:
    return f"{v!r} is not allowed here"


def _all(checks: list[Validator]) -> Validator:
    """One validator running `checks` in order; the first failure is the answer."""
    if not checks:
        return _accept
    if len(checks) == 1:  # the common case: no loop around a single check
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def check2(v: Any) -> str | None:
            why = first(v)
            return second(v) if why is None else why

        return check2
    all_checks = tuple(checks)

    def check(v: Any) -> str | None:
        for c in all_checks:
            why = c(v)
            if why is not None:
                return why
        return None

    return check


def _num(v: Any) -> bool:
    return isinstance(v, _NUMBER) and not isinstance(v, bool)


# --------------------------------------------------------------------------- keywords
# Each builder: (compiler, keyword's value, its path, the whole schema) -> a check, or
# None when the keyword needs no check of its own (it is read by another keyword).

Builder = Callable[[_Compiler, Any, SchemaPath, Mapping[str, Any]], "Validator | None"]


def _type(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    names = [arg] if isinstance(arg, str) else arg
    if not isinstance(names, list) or not names or any(n not in TYPES for n in names):
        raise SchemaError(at, f"type must be one of {sorted(TYPES)}")
    if len(names) == 1:
        test, name = TYPES[names[0]], names[0]
        return lambda v: None if test(v) else f"{v!r} is not of type {name}"
    tests = [TYPES[n] for n in names]
    joined = "/".join(names)
    return lambda v: None if any(f(v) for f in tests) else f"{v!r} is not of type {joined}"


def _enum(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    if not isinstance(arg, list) or not arg:
        raise SchemaError(at, "enum must be a non-empty list")
    allowed = list(arg)
    if all(_scalar(x) for x in allowed):  # the common case: one `in`, bools kept apart
        return lambda v: (
            None if v in allowed and not isinstance(v, bool) else f"{v!r} is not one of {allowed}"
        )
    return lambda v: None if any(_same(v, x) for x in allowed) else f"{v!r} is not one of {allowed}"


def _const(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    return lambda v: None if _same(v, arg) else f"{v!r} is not {arg!r}"


def _scalar(x: Any) -> bool:
    """A string, a number or null: where Python's == is JSON's equality."""
    return x is None or isinstance(x, str) or (isinstance(x, _NUMBER) and not isinstance(x, bool))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (Python says it is), ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list | tuple):
        return (
            isinstance(b, list | tuple)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b) and not isinstance(b, list | tuple | dict)


def _pattern(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    import re

    try:
        rx = re.compile(str(arg))
    except re.error as exc:
        raise SchemaError(at, f"invalid regular expression: {exc}") from None
    search = rx.search
    text = rx.pattern
    if c.strict:  # the policy: a pattern condition holds only for strings
        return lambda v: (
            None if isinstance(v, str) and search(v) else f"{v!r} does not match /{text}/"
        )
    # the specification: `pattern` says nothing about values that are not strings
    return lambda v: (
        None if not isinstance(v, str) or search(v) else f"{v!r} does not match /{text}/"
    )


def _bound(c: _Compiler, b: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    key = at[-1]
    if not _num(b):
        raise SchemaError(at, f"{key} must be a number")
    strict = c.strict  # lenient: a bound says nothing about values that are not numbers
    if key == "minimum":

        def minimum(v: Any) -> str | None:
            if isinstance(v, _NUMBER) and not isinstance(v, bool):
                if v >= b:
                    return None
            elif not strict:
                return None
            return f"{v!r} is not >= {b}"

        return minimum
    if key == "maximum":

        def maximum(v: Any) -> str | None:
            if isinstance(v, _NUMBER) and not isinstance(v, bool):
                if v <= b:
                    return None
            elif not strict:
                return None
            return f"{v!r} is not <= {b}"

        return maximum
    if key == "exclusiveMinimum":

        def exclusive_minimum(v: Any) -> str | None:
            if isinstance(v, _NUMBER) and not isinstance(v, bool):
                if v > b:
                    return None
            elif not strict:
                return None
            return f"{v!r} is not > {b}"

        return exclusive_minimum

    def exclusive_maximum(v: Any) -> str | None:
        if isinstance(v, _NUMBER) and not isinstance(v, bool):
            if v < b:
                return None
        elif not strict:
            return None
        return f"{v!r} is not < {b}"

    return exclusive_maximum


def _length(c: _Compiler, n: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    key = str(at[-1])
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise SchemaError(at, f"{key} must be a non-negative integer")
    low = key.startswith("min")
    kind: Any = str if key.endswith("Length") else (list, tuple)
    unit = "characters" if kind is str else "items"
    word = "fewer" if low else "more"
    strict = c.strict

    def length(v: Any) -> str | None:
        if isinstance(v, kind):
            if len(v) >= n if low else len(v) <= n:
                return None
        elif not strict:
            return None
        return f"{v!r} has {word} than {n} {unit}"

    return length


def _items(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    inner = c.compile(arg, at)
    strict = c.strict

    def items(v: Any) -> str | None:
        if not isinstance(v, list | tuple):
            return f"{v!r} is not a list" if strict else None
        for i, x in enumerate(v):
            why = inner(x)
            if why is not None:
                return f"item {i}: {why}"
        return None

    return items


def _count(arg: Any, at: SchemaPath) -> int:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
        raise SchemaError(at, f"{at[-1]} must be a non-negative integer")
    return arg


def _contains(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    inner = c.compile(arg, at)
    where = at[:-1]
    low = _count(schema.get("minContains", 1), (*where, "minContains"))
    high = schema.get("maxContains")
    high = None if high is None else _count(high, (*where, "maxContains"))
    strict = c.strict

    def contains(v: Any) -> str | None:
        if not isinstance(v, list | tuple):
            return f"{v!r} is not a list" if strict else None
        n = sum(1 for x in v if inner(x) is None)
        if n < low:
            return f"{n} item(s) match the `contains` schema, fewer than {low}"
        if high is not None and n > high:
            return f"{n} item(s) match the `contains` schema, more than {high}"
        return None

    return contains


def _contains_bound(
    c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]
) -> Validator | None:
    _count(arg, at)
    return None  # read by `contains`; without it, the specification ignores it


def _json_key(v: Any) -> Any:
    """A hashable key under JSON equality (``1`` is ``1.0``, ``true`` is not ``1``)."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, list | tuple):
        return ("l", tuple(_json_key(x) for x in v))
    if isinstance(v, dict):
        return ("o", frozenset((k, _json_key(x)) for k, x in v.items()))
    return ("v", v)


def _unique(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    if not isinstance(arg, bool):
        raise SchemaError(at, "uniqueItems must be true or false")
    if not arg:
        return _accept
    strict = c.strict

    def unique(v: Any) -> str | None:
        if not isinstance(v, list | tuple):
            return f"{v!r} is not a list" if strict else None
        seen: dict[Any, int] = {}
        for i, x in enumerate(v):
            try:
                key = _json_key(x)
                j = seen.setdefault(key, i)
            except TypeError:  # not a JSON value: compare the slow way
                j = next((k for k in range(i) if _same(v[k], x)), i)
            if j != i:
                return f"items {j} and {i} are equal ({x!r}); items must be unique"
        return None

    return unique


def _not(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    inner = c.compile(arg, at)
    return lambda v: f"{v!r} matches a forbidden value" if inner(v) is None else None


def _properties(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    if not isinstance(arg, Mapping):
        raise SchemaError(at, "properties must map property names to schemas")
    props = {str(k): c.compile(s, (*at, str(k))) for k, s in arg.items()}
    extra = schema.get("additionalProperties", True)
    if isinstance(extra, bool):
        other: Validator | None = None if extra else _reject
    else:
        other = c.compile(extra, (*at[:-1], "additionalProperties"))
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SchemaError((*at[:-1], "required"), "required must be a list of property names")
    return _object(props, other, tuple(required), c.strict)


def _required(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    if "properties" in schema:
        return _accept  # checked with the properties, in one pass
    if not isinstance(arg, list) or not all(isinstance(r, str) for r in arg):
        raise SchemaError(at, "required must be a list of property names")
    return _object({}, None, tuple(arg), c.strict)


def _additional(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    if "properties" in schema:
        return _accept
    if isinstance(arg, bool):
        other: Validator | None = None if arg else _reject
    else:
        other = c.compile(arg, at)
    return _object({}, other, (), c.strict)


def _object(
    props: dict[str, Validator], other: Validator | None, required: tuple[str, ...], strict: bool
) -> Validator:
    def check(v: Any) -> str | None:
        if not isinstance(v, dict):  # lenient: `type: object` says whether it must be one
            return f"{v!r} is not an object" if strict else None
        for key in required:
            if key not in v:
                return f"missing required property {key!r}"
        for key, item in v.items():
            inner = props.get(key)
            if inner is None:
                if other is None:
                    continue
                if other is _reject:
                    return f"unexpected property {key!r}"
                inner = other
            why = inner(item)
            if why is not None:
                return f"property {key!r}: {why}"
        return None

    return check


def _alternatives(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    key = at[-1]
    if not isinstance(arg, list) or not arg:
        raise SchemaError(at, f"{key} must be a non-empty list of schemas")
    alts = [c.compile(s, (*at, i)) for i, s in enumerate(arg)]
    if key == "allOf":
        return _all(alts)
    if key == "anyOf":

        def any_of(v: Any) -> str | None:
            reasons = []
            for a in alts:
                why = a(v)
                if why is None:
                    return None
                reasons.append(why)
            return "none of the alternatives holds: " + "; ".join(reasons)

        return any_of

    def one_of(v: Any) -> str | None:
        n = sum(1 for a in alts if a(v) is None)
        return None if n == 1 else f"{v!r} matches {n} of the alternatives, not exactly one"

    return one_of


def _ref(c: _Compiler, arg: Any, at: SchemaPath, schema: Mapping[str, Any]) -> Validator:
    return c.ref(arg, at)


_KEYWORD_BUILDERS: dict[str, Builder] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "minimum": _bound,
    "maximum": _bound,
    "exclusiveMinimum": _bound,
    "exclusiveMaximum": _bound,
    "minLength": _length,
    "maxLength": _length,
    "items": _items,
    "minItems": _length,
    "maxItems": _length,
    "contains": _contains,
    "minContains": _contains_bound,
    "maxContains": _contains_bound,
    "uniqueItems": _unique,
    "not": _not,
    "properties": _properties,
    "required": _required,
    "additionalProperties": _additional,
    "anyOf": _alternatives,
    "oneOf": _alternatives,
    "allOf": _alternatives,
    "$ref": _ref,
}
