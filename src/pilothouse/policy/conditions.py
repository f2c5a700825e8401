"""Conditions: the ``when`` block of a rule, compiled once into checks.

Every condition kind is one function in the registry `CONDITIONS` (kind name ->
compiler), so a new kind is one registered function::

    @condition("weekday")
    def _weekday(spec, at, env, out):
        days = ...  # validate `spec`; raise env.error(at, "...") when malformed
        out.stateful = True  # it reads the run, not only the call
        out.checks.append(lambda call, ctx: None if ... else "not on a weekday")

A compiler receives the condition's value (`spec`), its place in the document
(`at`, for errors that name the line), the `ConditionEnv` (named predicates, the
rule's own tool patterns, the confirmation pattern, `env.compile` for a nested
block) and the `CompiledConditions` it adds to: `checks` (each returns None when it
holds, or why not; it raises `PolicyCheckFailed` to deny outright, fail-closed) and
what they read (`arg_names`, `predicate_names`, `stateful`) for lint and caching.
An unknown kind is a `PolicyError` that lists the registered kinds.

Value conditions (``args``, ``principal``, call-pattern ``args``/``result``) are the
shared JSON-schema validator (`pilothouse.jsonschema_check`), strict: an unknown
keyword is an error.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from pilothouse.exceptions import PolicyCheckFailed, PolicyError, SchemaError
from pilothouse.jsonschema_check import KEYWORDS, Validator
from pilothouse.jsonschema_check import compile_schema as _compile_json_schema
from pilothouse.messages import ToolCall
from pilothouse.policy.context import CallRecord, Lookup, Predicate, RunContext
from pilothouse.policy.document import DEFAULT_CONFIRMATION, Claim, Locate, Path, policy_error

__all__ = [
    "CONDITIONS",
    "SCHEMA_KEYWORDS",
    "CallPattern",
    "Check",
    "CompiledConditions",
    "ConditionCompiler",
    "ConditionEnv",
    "bound_ref",
    "call_pattern",
    "compile_conditions",
    "compile_schema",
    "condition",
]

Check = Callable[[ToolCall, RunContext], "str | None"]  # None: holds; str: why not
SCHEMA_KEYWORDS = KEYWORDS


def compile_schema(schema: Any, where: Path = (), locate: Locate | None = None) -> Validator:
    """Compile a value condition (the JSON-schema subset) into value -> None (ok) or why not.

    Strict: an unknown keyword raises `PolicyError` naming the line and the known ones.
    """
    if not isinstance(schema, Mapping):
        raise policy_error(where, locate, f"a value condition must be a mapping, not {schema!r}")
    try:
        return _compile_json_schema(schema, strict=True)
    except SchemaError as exc:
        raise policy_error((*where, *exc.path), locate, exc.message) from None


# --------------------------------------------------------------------------- registry


@dataclass(slots=True)
class CompiledConditions:
    """What compiling a `when` block gives: the checks, and what they read."""

    checks: list[Check] = field(default_factory=list)
    arg_names: set[str] = field(default_factory=set)
    predicate_names: set[str] = field(default_factory=set)
    lookup_names: set[str] = field(default_factory=set)
    stateful: bool = False
    claim_names: set[str] = field(default_factory=set)
    aggregate_names: set[str] = field(default_factory=set)

    def reads(self, inner: CompiledConditions) -> None:
        """Add what a nested block reads (its checks are wrapped by the caller)."""
        self.arg_names |= inner.arg_names
        self.predicate_names |= inner.predicate_names
        self.lookup_names |= inner.lookup_names
        self.claim_names |= inner.claim_names
        self.aggregate_names |= inner.aggregate_names
        self.stateful = self.stateful or inner.stateful


@dataclass(frozen=True, slots=True)
class ConditionEnv:
    """What a condition compiler may use besides its own value."""

    predicates: Mapping[str, Predicate]
    own_tools: Sequence[str]
    locate: Locate | None = None
    confirmation: str = DEFAULT_CONFIRMATION
    trust: Mapping[str, Mapping[str, str | None]] = field(default_factory=lambda: _NO_TRUST)
    """Tool -> its trusted result fields (and their roles), from the tool declarations."""
    lookups: Mapping[str, Lookup] = field(default_factory=dict)
    """The application's named lookups (`lookup:`, ``$lookup.NAME.path``)."""
    block: Mapping[str, Any] = field(default_factory=dict)
    """The `when` block being compiled (a ``$lookup`` reference reads its `lookup:`)."""
    claims: Mapping[str, Claim] = field(default_factory=dict)
    """The document's verified claims (`claims:`): which tool's result sets each."""
    secrets: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    """Tool -> its secret result fields, each with the words that name it (`no_secrets`)."""
    aggregates: Mapping[str, Any] = field(default_factory=dict)
    """The aggregate sources a rule may name -> the source the policy was given (None: the
    run context serves it, as the loop serves ``journal``)."""

    def error(self, where: Path, message: str) -> PolicyError:
        """A `PolicyError` at `where` (with the line, when the policy came from a file)."""
        return policy_error(where, self.locate, message)

    def schema(self, schema: Any, where: Path) -> Validator:
        """A compiled value condition (see `compile_schema`)."""
        return compile_schema(schema, where, self.locate)

    def compile(self, when: Any, where: Path) -> CompiledConditions:
        """Compile a nested block (``not``, ``any``) with the same environment."""
        return _compile_block(when, where, self)


_NO_TRUST: Mapping[str, Mapping[str, str | None]] = {}

ConditionCompiler = Callable[[Any, Path, ConditionEnv, CompiledConditions], None]
CONDITIONS: dict[str, ConditionCompiler] = {}
"""Condition kind -> its compiler, in the order the kinds are listed in errors."""


def condition(name: str) -> Callable[[ConditionCompiler], ConditionCompiler]:
    """Register `fn` as the compiler of condition kind `name` (a decorator)."""

    def register(fn: ConditionCompiler) -> ConditionCompiler:
        if name in CONDITIONS:
            raise ValueError(f"condition kind {name!r} is already registered")
        CONDITIONS[name] = fn
        return fn

    return register


def compile_conditions(
    when: Any,
    where: Path,
    predicates: Mapping[str, Predicate],
    own_tools: Sequence[str],
    locate: Locate | None = None,
    confirmation: str = DEFAULT_CONFIRMATION,
    trust: Mapping[str, Mapping[str, str | None]] | None = None,
    lookups: Mapping[str, Lookup] | None = None,
    *,
    claims: Mapping[str, Claim] | None = None,
    secrets: Mapping[str, Mapping[str, str | None]] | None = None,
    aggregates: Mapping[str, Any] | None = None,
) -> CompiledConditions:
    """Compile a rule's ``when`` block (all conditions must hold) into checks."""
    env = ConditionEnv(
        predicates,
        own_tools,
        locate,
        confirmation,
        _NO_TRUST if trust is None else trust,
        lookups or {},
        claims=claims or {},
        secrets=secrets or {},
        aggregates=aggregates or {"journal": None},
    )
    return _compile_block(when, where, env)


def _compile_block(when: Any, where: Path, env: ConditionEnv) -> CompiledConditions:
    out = CompiledConditions()
    if when is None:
        return out
    if not isinstance(when, Mapping):
        raise env.error(where, "`when` must be a mapping of condition kind to condition")
    for key in when:
        if key not in CONDITIONS:
            raise env.error(
                (*where, key), f"unknown condition {key!r}; use one of {list(CONDITIONS)}"
            )
    # Checks run, and denials list their reasons, in one fixed order of kinds (`ORDER`:
    # cheap checks of the call first, then the run's history, provenance, the
    # application's predicates), not the document's key order: the same rule gives the
    # same reason however it is written, and a cheap failing check spares the rest.
    env = replace(env, block=when)
    for key in sorted(when, key=_rank):
        CONDITIONS[key](when[key], (*where, key), env, out)
    return out


ORDER = (
    "args",
    "principal",
    "claims",
    "confirmed",
    "not_after",
    "after",
    "max_calls",
    "rate",
    "trusted",
    "trusted_entities",
    "no_secrets",
    "lookup",
    "age",
    "total",
    "aggregate",
    "predicates",
    "not",
    "any",
)
"""The order in which a rule's conditions are checked and its denial lists them; kinds
registered later follow, in the order they were registered."""


def _rank(kind: str) -> tuple[int, int]:
    try:
        return (ORDER.index(kind), 0)
    except ValueError:
        return (len(ORDER), list(CONDITIONS).index(kind))


# --------------------------------------------------------------------------- references


def resolve_ref(value: Any, call: ToolCall, ctx: RunContext) -> Any:
    """Resolve ``$args.name`` / ``$principal.key`` references; other values are literals."""
    if isinstance(value, str) and value.startswith("$"):
        head, _, key = value[1:].partition(".")
        if head == "args":
            if key not in call.arguments:
                raise PolicyCheckFailed(
                    f"the policy refers to argument {key!r}, which the call lacks"
                )
            return call.arguments[key]
        if head == "principal":
            return ctx.principal.get(key)
    return value


def _validate_ref(value: Any, where: Path, locate: Locate | None) -> None:
    if isinstance(value, str) and value.startswith("$"):
        head, dot, key = value[1:].partition(".")
        if head not in ("args", "principal") or not dot or not key:
            raise policy_error(
                where, locate, f"reference {value!r} must be $args.NAME or $principal.KEY"
            )


# --------------------------------------------------------------------------- call patterns


@dataclass(frozen=True, slots=True)
class CallPattern:
    """A pattern over executed calls (``after``, ``not_after``, ``max_calls``, ``rate``)."""

    tool: str
    args: tuple[tuple[str, Any], ...]  # name -> literal, reference, or compiled schema
    ok: bool | None
    result: Validator | None
    text: str
    name_rx: re.Pattern[str] | None  # None: `tool` is an exact name

    def bind(self, call: ToolCall, ctx: RunContext) -> Callable[[CallRecord], bool]:
        """A matcher for history records, with ``$args``/``$principal`` resolved once."""
        wanted = [
            (name, want if callable(want) else resolve_ref(want, call, ctx), callable(want))
            for name, want in self.args
        ]
        exact = self.tool if self.name_rx is None else None
        rx = self.name_rx
        ok = self.ok
        result = self.result

        def matches(rec: CallRecord) -> bool:
            if exact is not None:
                if rec.name != exact:
                    return False
            elif rx is not None and rx.match(rec.name) is None:
                return False
            if ok is not None and rec.ok != ok:
                return False
            args = rec.arguments
            for name, want, is_schema in wanted:
                if name not in args:
                    return False
                if is_schema:
                    if want(args[name]) is not None:
                        return False
                elif args[name] != want:
                    return False
            return not (result is not None and result(rec.result) is not None)

        return matches

    def seen(self, call: ToolCall, ctx: RunContext) -> bool:
        """Whether a history record matches (the same test as `bind`, without a closure)."""
        ok = self.ok
        result = self.result
        if not self.args:
            for rec in self.candidates(ctx):
                if (ok is None or rec.ok == ok) and (result is None or result(rec.result) is None):
                    return True
            return False
        wanted = [
            (name, want if callable(want) else resolve_ref(want, call, ctx), callable(want))
            for name, want in self.args
        ]  # resolved first: a reference to a missing argument fails even with no history
        for rec in self.candidates(ctx):
            if ok is not None and rec.ok != ok:
                continue
            args = rec.arguments
            for name, want, is_schema in wanted:
                if name not in args:
                    break
                if is_schema:
                    if want(args[name]) is not None:
                        break
                elif args[name] != want:
                    break
            else:
                if result is None or result(rec.result) is None:
                    return True
        return False

    def describe(self, call: ToolCall, ctx: RunContext) -> str:
        """The pattern as a reason shows it: references resolved to this call's values."""
        if not any(isinstance(w, str) and w.startswith("$") for _, w in self.args):
            return self.text
        parts = []
        for name, want in self.args:
            if callable(want):
                parts.append(f"{name}=<condition>")
                continue
            try:
                parts.append(f"{name}={resolve_ref(want, call, ctx)!r}")
            except PolicyCheckFailed:
                parts.append(f"{name}={want}")
        return f"{self.tool}({', '.join(parts)})"

    def candidates(self, ctx: RunContext) -> list[CallRecord]:
        """The history records of the tools this pattern names (not in time order)."""
        if self.name_rx is None:
            return ctx.calls_named(self.tool)
        rx = self.name_rx
        out: list[CallRecord] = []
        for name, records in ctx.calls_by_name().items():
            if rx.match(name) is not None:
                out.extend(records)
        return out


def _glob(pattern: str) -> re.Pattern[str] | None:
    """A compiled glob, or None when the pattern is a plain name (compared with ==)."""
    if not any(ch in pattern for ch in "*?["):
        return None
    return re.compile(fnmatch.translate(pattern))


def call_pattern(spec: Any, where: Path, locate: Locate | None) -> CallPattern:
    """Compile one call pattern: a tool name or glob, or ``{tool, args, ok, result}``."""
    if isinstance(spec, str):
        spec = {"tool": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("tool"), str):
        raise policy_error(where, locate, "a call pattern needs `tool: NAME-OR-GLOB`")
    unknown = set(spec) - {"tool", "args", "ok", "result"}
    if unknown:
        raise policy_error(
            where, locate, f"unknown key(s) {sorted(unknown)}; use tool, args, ok, result"
        )
    args: list[tuple[str, Any]] = []
    raw_args = spec.get("args") or {}
    if not isinstance(raw_args, Mapping):
        raise policy_error(
            (*where, "args"), locate, "args must be a mapping of argument name to value"
        )
    for name, want in raw_args.items():
        at = (*where, "args", name)
        if isinstance(want, Mapping):
            args.append((str(name), compile_schema(want, at, locate)))
        else:
            _validate_ref(want, at, locate)
            args.append((str(name), want))
    ok = spec.get("ok", True)
    if ok is not None and not isinstance(ok, bool):
        raise policy_error((*where, "ok"), locate, "ok must be true, false or null (any)")
    result = spec.get("result")
    return CallPattern(
        spec["tool"],
        tuple(args),
        ok,
        compile_schema(result, (*where, "result"), locate) if result is not None else None,
        spec["tool"] + (f"({', '.join(f'{k}={v}' for k, v in raw_args.items())})"),
        _glob(spec["tool"]),
    )


def _int(value: Any, where: Path, env: ConditionEnv, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise env.error(where, f"must be an integer >= {minimum}")
    return value


# --------------------------------------------------------------------------- the kinds
# Registered in the order errors list them. Each appends its checks to `out`.


@condition("args")
def _args(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``args: {NAME: value condition}``: the call's arguments satisfy the schemas."""
    if not isinstance(spec, Mapping):
        raise env.error(at, "args must map argument names to value conditions")
    for name in sorted(spec, key=str):
        schema = spec[name]
        f = env.schema(schema, (*at, name))
        out.arg_names.add(str(name))

        def arg_check(
            call: ToolCall, ctx: RunContext, n: str = str(name), f: Validator = f
        ) -> str | None:
            if n not in call.arguments:
                raise PolicyCheckFailed(
                    f"the policy has a condition on argument {n!r}, which the call lacks"
                )
            why = f(call.arguments[n])
            return None if why is None else f"argument {n}: {why}"

        out.checks.append(arg_check)


@condition("predicates")
def _predicates(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``predicates: [NAME, ...]``: the application's named checks all hold.

    A predicate returns True (holds), False (does not: the reason names it) or a
    non-empty string: it does not hold, and the string says why (the model reads it).
    """
    items = [spec] if isinstance(spec, str) or callable(spec) else spec
    if not isinstance(items, list | tuple):
        raise env.error(at, "predicates must be a list of predicate names")
    for i, p in enumerate(items):
        if callable(p):
            fn, pname = p, getattr(p, "__name__", repr(p))
        elif isinstance(p, str) and p in env.predicates:
            fn, pname = env.predicates[p], p
        else:
            known = ", ".join(sorted(env.predicates)) or "none registered"
            raise env.error((*at, i), f"unknown predicate {p!r} (known: {known})")
        out.predicate_names.add(pname)
        out.stateful = True

        def pred_check(
            call: ToolCall, ctx: RunContext, fn: Predicate = fn, pname: str = pname
        ) -> str | None:
            try:
                ok = fn(call, ctx)
            except Exception as exc:
                raise PolicyCheckFailed(
                    f"predicate {pname!r} raised {type(exc).__name__}: {exc}"
                ) from exc
            if ok is True:
                return None
            if ok is False:
                return f"predicate {pname} is false"
            if isinstance(ok, str) and ok:
                return f"{pname}: {ok}"
            raise PolicyCheckFailed(
                f"predicate {pname!r} returned {type(ok).__name__}, not bool or a reason"
            )

        out.checks.append(pred_check)


def _patterns(spec: Any, at: Path, env: ConditionEnv) -> list[CallPattern]:
    items = spec if isinstance(spec, list) else [spec]
    return [call_pattern(s, (*at, i), env.locate) for i, s in enumerate(items)]


@condition("after")
def _after(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``after: [call pattern, ...]``: each pattern matches an earlier successful call."""
    pats = _patterns(spec, at, env)
    out.stateful = True

    def after(call: ToolCall, ctx: RunContext) -> str | None:
        for p in pats:
            if not p.seen(call, ctx):
                return f"requires an earlier successful call {p.describe(call, ctx)}"
        return None

    out.checks.append(after)


@condition("not_after")
def _not_after(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``not_after: [call pattern, ...]``: no earlier call matches any of the patterns."""
    pats = _patterns(spec, at, env)
    out.stateful = True

    def not_after(call: ToolCall, ctx: RunContext) -> str | None:
        for p in pats:
            if p.seen(call, ctx):
                return f"not allowed after a call {p.describe(call, ctx)}"
        return None

    out.checks.append(not_after)


def _count(key: str, spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    if key == "max_calls" and isinstance(spec, int):
        spec = {"max": spec}
    if not isinstance(spec, Mapping):
        raise env.error(at, f"{key} must be a mapping with `max`")
    allowed_keys = {"max", "tool", "args"} | ({"seconds"} if key == "rate" else set())
    unknown = set(spec) - allowed_keys
    if unknown:
        raise env.error(at, f"unknown key(s) {sorted(unknown)}")
    limit = _int(spec.get("max"), (*at, "max"), env)
    seconds = float(_int(spec.get("seconds"), (*at, "seconds"), env, 1)) if key == "rate" else None
    tools = [spec["tool"]] if "tool" in spec else list(env.own_tools)
    pats = [
        call_pattern({"tool": t, "args": spec.get("args") or {}, "ok": None}, at, env.locate)
        for t in tools
    ]
    out.stateful = True

    def count(call: ToolCall, ctx: RunContext) -> str | None:
        since = ctx.clock() - seconds if seconds is not None else None
        counted: set[int] = set()  # a record matched by two patterns counts once
        for p in pats:
            m = p.bind(call, ctx)
            counted.update(
                id(r) for r in p.candidates(ctx) if (since is None or r.ts >= since) and m(r)
            )
        if len(counted) < limit:
            return None
        window = f" in the last {seconds:g} s" if seconds is not None else ""
        return f"limit of {limit} call(s){window} reached"

    out.checks.append(count)


@condition("max_calls")
def _max_calls(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``max_calls: N`` or ``{max, tool, args}``: fewer than N matching calls so far."""
    _count("max_calls", spec, at, env, out)


@condition("rate")
def _rate(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``rate: {max, seconds, tool, args}``: fewer than `max` matching calls in the window."""
    _count("rate", spec, at, env, out)


@condition("confirmed")
def _confirmed(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``confirmed: true`` (or a regex): the latest user message confirms, once per call."""
    if spec is False:
        return
    pattern = env.confirmation if spec is True else spec
    try:
        rx = re.compile(str(pattern))
    except re.error as exc:
        raise env.error(at, f"invalid regular expression: {exc}") from None
    out.stateful = True

    def confirmed(call: ToolCall, ctx: RunContext) -> str | None:
        if not ctx.user_messages or not rx.search(ctx.user_messages[-1]):
            return "requires an explicit confirmation (yes) in the latest user message"
        turn = len(ctx.user_messages)
        # One "yes" covers one consequential call. A refused attempt uses it up too,
        # unless this call is the same call again (a retry of what was confirmed).
        retry = [
            r
            for r in ctx.denied
            if r.turn == turn and not (r.name == call.name and r.arguments == call.arguments)
        ]
        for r in (*ctx.history, *retry):
            if r.turn == turn and r.effect in ("side_effect", "irreversible"):
                return (
                    "the latest confirmation was already used by a consequential call "
                    f"({r.name}); ask the user again for an explicit confirmation"
                )
        return None

    out.checks.append(confirmed)


def _arg_items(value: Any) -> list[Any]:
    """The values one argument holds: a list's items, or the value itself."""
    return list(value) if isinstance(value, list | tuple) else [value]


def _trust_spec(spec: Any, at: Path, env: ConditionEnv, kind: str) -> tuple[Any, list[str]]:
    if isinstance(spec, str | list):
        spec = {"args": [spec] if isinstance(spec, str) else spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("args"), list | Mapping):
        raise env.error(at, f"{kind} needs `args: [NAME, ...]` (or a mapping NAME: ROLE)")
    args = spec["args"]
    if isinstance(args, list) and not all(isinstance(a, str) for a in args):
        raise env.error((*at, "args"), "args must be argument names")
    return spec, [str(a) for a in args]


@condition("trusted")
def _trusted(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``trusted: {args: [NAME] | {NAME: ROLE}, allow_list}``: the values come from
    trusted input, each as a whole value or entity, never a substring (see
    `pilothouse.policy.provenance`). With a role, only values bound to that role."""
    from pilothouse.policy.provenance import provenance, value_keys

    spec, names = _trust_spec(spec, at, env, "trusted")
    unknown = set(spec) - {"args", "allow_list"}
    if unknown:
        raise env.error(at, f"unknown key(s) {sorted(unknown)}; use args, allow_list")
    raw_roles = spec["args"] if isinstance(spec["args"], Mapping) else {}
    roles: dict[str, str | None] = {}
    for n in names:
        role = raw_roles.get(n)
        if role is not None and not isinstance(role, str):
            raise env.error((*at, "args", n), "a role must be a name (or null: any trusted value)")
        roles[n] = role
    allow_list = spec.get("allow_list") or []
    if not isinstance(allow_list, list):
        raise env.error((*at, "allow_list"), "allow_list must be a list")
    allowed: set[str] = set()
    for v in allow_list:
        allowed |= value_keys(v)
    trust = env.trust
    out.arg_names.update(names)
    out.stateful = True

    def trusted(call: ToolCall, ctx: RunContext) -> str | None:
        index = None
        for n in names:
            if n not in call.arguments:
                raise PolicyCheckFailed(
                    f"the policy has a provenance condition on argument {n!r}, which the call lacks"
                )
            if n in ctx.unset:
                continue  # left to its default: not a value anyone chose
            role = roles[n]
            for item in _arg_items(call.arguments[n]):
                if item is None:
                    continue
                keys = value_keys(item)
                if role is None and keys & allowed:
                    continue
                if index is None:
                    index = provenance(ctx, trust)
                if keys and index.source(keys, role) is not None:
                    continue
                if role is None and isinstance(item, str) and index.fills(ctx, item):
                    continue  # the user's own template, its slots filled from the run
                return f"argument {n}={item!r} is not from trusted input: " + _origin(
                    index, keys, role, ctx
                )
        return None

    out.checks.append(trusted)


def _origin(index: Any, keys: frozenset[str], role: str | None, ctx: RunContext) -> str:
    """Why a value is not trusted, as the model and a person should read it."""
    if not keys:
        return "an empty value is not a value the user gave"
    bound = index.roles_of(keys)
    if bound and role not in bound:
        return (
            f"the user gave it as {', '.join(sorted(bound))}, and it is trusted only for that"
            + (f", not as {role}" if role else "")
        )
    if role is not None and (keys & index.user or any(k in index.fields for k in keys)):
        return f"it is not bound to role {role!r}"
    echo = next((index.echoed[k] for k in keys if k in index.echoed), None)
    if echo is not None:
        return f"tool {echo!r} only echoed it from its own arguments (untrusted)"
    src = index.untrusted_source(ctx, keys)
    if src is not None:
        return f"it appears only in the output of tool {src!r} (untrusted)"
    return "it does not appear in the user's messages (as a whole value or entity)"


@condition("trusted_entities")
def _trusted_entities(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``trusted_entities: {args: [NAME], kinds: [email, url, ...]}``: every entity inside
    a free-text argument (a message body, an event title) is trusted input."""
    from pilothouse.policy.provenance import entities, provenance

    spec, names = _trust_spec(spec, at, env, "trusted_entities")
    unknown = set(spec) - {"args", "kinds", "allow_list"}
    if unknown:
        raise env.error(at, f"unknown key(s) {sorted(unknown)}; use args, kinds, allow_list")
    kinds = spec.get("kinds") or ["email", "url", "iban", "phone"]
    known_kinds = ("email", "url", "iban", "phone", "date", "number", "id")
    if not isinstance(kinds, list) or not all(k in known_kinds for k in kinds):
        raise env.error((*at, "kinds"), f"kinds must be a list of {list(known_kinds)}")
    allow_list = spec.get("allow_list") or []
    if not isinstance(allow_list, list):
        raise env.error((*at, "allow_list"), "allow_list must be a list")
    allowed = {k for v in allow_list for _, k in entities(str(v), kinds)}
    trust = env.trust
    out.arg_names.update(names)
    out.stateful = True

    def trusted_entities(call: ToolCall, ctx: RunContext) -> str | None:
        for n in names:
            if n not in call.arguments:
                raise PolicyCheckFailed(
                    f"the policy has a provenance condition on argument {n!r}, which the call lacks"
                )
            if n in ctx.unset:
                continue
            for item in _arg_items(call.arguments[n]):
                if not isinstance(item, str):
                    continue
                for kind, key in entities(item, kinds):
                    if key in allowed:
                        continue
                    keys = frozenset((key,))
                    index = provenance(ctx, trust)
                    if index.source(keys, None) is not None:
                        continue
                    origin = _origin(index, keys, None, ctx)
                    return (
                        f"argument {n} holds the {kind} {key!r}, not from trusted input: {origin}"
                    )
        return None

    out.checks.append(trusted_entities)


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class _LookupCall:
    """One named lookup of a rule: its function and its parameters (literals or refs)."""

    name: str
    fn: Lookup
    params: tuple[tuple[str, Any], ...]

    def value(self, call: ToolCall, ctx: RunContext) -> Any:
        params = {k: resolve_ref(v, call, ctx) for k, v in self.params}
        memo = ctx.lookup_memo  # one check's lookups (set by `Policy.check`)
        key: Any = None
        if memo is not None:
            try:
                key = (self.name, tuple(sorted(params.items())))
                hash(key)
            except TypeError:  # a parameter that is a list or a mapping: not memoised
                key = None
            if key is not None and key in memo:
                return memo[key]
        # the query as the decision records it; a replay serves the recorded answer
        asked = f"lookup:{self.name}:{_canonical(params)}"
        recorded = ctx.replayed.get(call.id, {}).get(asked) if ctx.replayed else None
        if isinstance(recorded, str):  # a replay: what the recorded check read
            _note_lookup(ctx, asked, recorded)
            if recorded.startswith(_RAISED):
                raise PolicyCheckFailed(recorded[len(_RAISED) :])
            value = json.loads(recorded)
        else:
            try:
                value = self.fn(ctx, **params)
            except Exception as exc:
                why = f"lookup {self.name!r} raised {type(exc).__name__}: {exc}"
                _note_lookup(ctx, asked, _RAISED + why)
                raise PolicyCheckFailed(why) from exc
            _note_lookup(ctx, asked, _canonical(value))
        if memo is not None and key is not None:
            memo[key] = value
        return value


_RAISED = "!"
"""Marks a recorded lookup that raised (no JSON text starts with it)."""


_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def _canonical(value: Any) -> str:
    """A value as compact, key-sorted JSON (what is not JSON is its text)."""
    return _JSON.encode(value)


def _note_lookup(ctx: RunContext, asked: str, text: str) -> None:
    if ctx.looked_up is None:
        ctx.looked_up = {}
    ctx.looked_up[asked] = text


def _lookup_call(name: Any, spec: Any, at: Path, env: ConditionEnv) -> _LookupCall:
    if not isinstance(name, str) or name not in env.lookups:
        known = ", ".join(sorted(env.lookups)) or "none registered"
        raise env.error(at, f"unknown lookup {name!r} (known: {known})")
    params = (spec.get("args") or {}) if isinstance(spec, Mapping) else {}
    if not isinstance(params, Mapping):
        raise env.error((*at, "args"), "args must map parameter names to values or $references")
    for k, v in params.items():
        _validate_ref(v, (*at, "args", k), env.locate)
    return _LookupCall(name, env.lookups[name], tuple((str(k), v) for k, v in params.items()))


def _path(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


@condition("lookup")
def _lookup(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``lookup: {NAME: {args: {P: $args.x}, value: SCHEMA}}``: the application's data
    (the order of ``$args.order_id``) satisfies a value condition."""
    if not isinstance(spec, Mapping) or not spec:
        raise env.error(at, "lookup must map lookup names to {args, value}")
    for name, item in spec.items():
        where = (*at, str(name))
        if not isinstance(item, Mapping) or set(item) - {"args", "value"}:
            raise env.error(where, "a lookup has `args` (its parameters) and `value` (a condition)")
        lk = _lookup_call(name, item, where, env)
        test = env.schema(item["value"], (*where, "value")) if "value" in item else None
        out.lookup_names.add(lk.name)
        out.stateful = True

        def lookup_check(
            call: ToolCall, ctx: RunContext, lk: _LookupCall = lk, test: Any = test
        ) -> str | None:
            value = lk.value(call, ctx)
            if test is None:
                return None if value is not None else f"lookup {lk.name}: nothing found"
            why = test(value)
            return None if why is None else f"lookup {lk.name}: {why}"

        out.checks.append(lookup_check)


def bound_ref(value: Any, at: Path, env: ConditionEnv) -> Callable[[ToolCall, RunContext], Any]:
    """A bound: a number, ``$args.x``, ``$principal.k`` or ``$lookup.NAME.path`` (NAME
    a lookup of the same `when` block, called with its parameters)."""
    if isinstance(value, str) and value.startswith("$lookup."):
        name, *path = value[len("$lookup.") :].split(".")
        declared = env.block.get("lookup")
        if not isinstance(declared, Mapping) or name not in declared:
            raise env.error(at, f"{value!r} needs `lookup: {{{name}: ...}}` in the same block")
        lk = _lookup_call(name, declared[name], (*at[:-2], "lookup", name), env)
        return lambda call, ctx: _path(lk.value(call, ctx), path)
    if isinstance(value, str):
        _validate_ref(value, at, env.locate)
        if not value.startswith("$"):
            raise env.error(at, "a bound is a number or a $reference")
        return lambda call, ctx: resolve_ref(value, call, ctx)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise env.error(at, "a bound is a number or a $reference")
    return lambda call, ctx: value


def _number(value: Any, what: str) -> Decimal:
    """A number as an exact decimal: 0.1 + 0.2 is 0.3 here (money is summed)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyCheckFailed(f"{what} is {value!r}, not a number")
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


@condition("total")
def _total(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``total: {field, max, per, tool, ok}``: the sum of argument `field` over this run's
    calls of `tool` (default: the rule's tools) with the same `per` argument(s), this call
    included, is at most `max` (a number or a reference, ``$lookup.order.total``)."""
    if not isinstance(spec, Mapping):
        raise env.error(at, "total needs `field` and `max` (and `per`, `tool`, `ok`)")
    unknown = set(spec) - {"field", "max", "per", "tool", "ok"}
    if unknown:
        raise env.error(at, f"unknown key(s) {sorted(unknown)}; use field, max, per, tool, ok")
    fname = spec.get("field")
    if not isinstance(fname, str) or not fname:
        raise env.error((*at, "field"), "field must be an argument name")
    if "max" not in spec:
        raise env.error(at, "total needs `max`")
    bound = bound_ref(spec["max"], (*at, "max"), env)
    raw_per = spec.get("per") or []
    per: list[str] = [raw_per] if isinstance(raw_per, str) else raw_per
    if not isinstance(per, list) or not all(isinstance(p, str) for p in per):
        raise env.error((*at, "per"), "per must be an argument name or a list of them")
    tools = [spec["tool"]] if isinstance(spec.get("tool"), str) else list(env.own_tools)
    ok = spec.get("ok")  # default: every recorded call (a provisional one counts at once)
    if ok is not None and not isinstance(ok, bool):
        raise env.error((*at, "ok"), "ok must be true, false or null (any)")
    pats = [call_pattern({"tool": t, "ok": ok}, at, env.locate) for t in tools]
    out.arg_names.update([fname, *per])
    out.stateful = True

    def total(call: ToolCall, ctx: RunContext) -> str | None:
        args = call.arguments
        for name in (fname, *per):
            if name not in args:
                raise PolicyCheckFailed(f"the policy sums argument {name!r}, which the call lacks")
        key = [args[p] for p in per]
        limit = _number(bound(call, ctx), "the bound")
        amount = _number(args[fname], f"argument {fname}")
        counted: set[int] = set()
        so_far = Decimal(0)
        for p in pats:
            for rec in p.candidates(ctx):
                if id(rec) in counted or (ok is not None and rec.ok != ok):
                    continue
                a = rec.arguments
                if all(q in a and a[q] == k for q, k in zip(per, key, strict=True)):
                    counted.add(id(rec))
                    so_far += _number(a.get(fname, 0), f"an earlier {rec.name}'s {fname}")
        if so_far + amount <= limit:
            return None
        scope = ", ".join(f"{q}={k!r}" for q, k in zip(per, key, strict=True))
        return (
            f"total {fname}{' for ' + scope if scope else ''} would be {so_far + amount:g} "
            f"({so_far:g} so far in this run + {amount:g}), above {limit:g}"
        )

    out.checks.append(total)


@condition("principal")
def _principal(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``principal: {user|role|ATTRIBUTE: value condition}``: who the run acts for."""
    if not isinstance(spec, Mapping):
        raise env.error(at, "principal must map user/role/attribute to a condition")
    for pkey, schema in spec.items():
        f = env.schema(schema, (*at, pkey))

        def principal(
            call: ToolCall, ctx: RunContext, k: str = str(pkey), f: Validator = f
        ) -> str | None:
            why = f(ctx.principal.get(k))
            return None if why is None else f"principal {k}: {why}"

        out.checks.append(principal)


@condition("not")
def _not(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``not: {conditions}``: the nested block does not hold."""
    inner = env.compile(spec, at)
    out.reads(inner)
    checks = inner.checks

    def negate(call: ToolCall, ctx: RunContext) -> str | None:
        held = ctx.held
        mark = len(held) if held is not None else 0
        for f in checks:
            why = f(call, ctx)
            if why is not None:  # the block fails, so `not` holds: say why, for a deny rule
                if held is not None:
                    del held[mark:]
                    held.append(why)
                return None
        if held is not None:
            del held[mark:]
        return "a `not` condition holds"

    out.checks.append(negate)


@condition("any")
def _any(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``any: [{conditions}, ...]``: at least one nested block holds."""
    if not isinstance(spec, list) or not spec:
        raise env.error(at, "any must be a non-empty list of condition blocks")
    alts = [env.compile(s, (*at, i)) for i, s in enumerate(spec)]
    for a in alts:
        out.reads(a)

    def any_of(call: ToolCall, ctx: RunContext) -> str | None:
        reasons = []
        held = ctx.held
        mark = len(held) if held is not None else 0
        for a in alts:
            why = next((w for f in a.checks if (w := f(call, ctx)) is not None), None)
            if why is None:
                return None
            if held is not None:  # a failed alternative's `not` explains nothing
                del held[mark:]
            reasons.append(why)
        return "none of the alternatives holds: " + "; ".join(reasons)

    out.checks.append(any_of)


CONDITION_KEYS = tuple(CONDITIONS)  # the kinds of this module (the registry may grow)
"""The kinds defined here. `claims`, `no_secrets`, `age` and `aggregate` have modules of
their own (`policy.claims`, `.secrecy`, `.timing`, `.aggregate`), which register them
when the engine compiles its first rule."""
