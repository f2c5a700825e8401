"""The policy engine: deterministic, fail-closed checks of every tool call.

A `Policy` is a list of `Rule`s plus defaults per effect kind. `Policy.check(call,
context, effect=...)` returns a `Decision`; no model is involved. Rules are
compiled once (when the policy is built) into small closures, and the rules that
concern a tool name are looked up once per name and cached, so a call to a tool
no rule mentions costs one dictionary lookup.

Semantics, in order:
1. The rules whose ``tools`` (names or glob patterns) match the call are taken in
   order of priority (high first); at equal priority ``deny`` comes before ``ask``
   before ``allow`` (deny wins ties). The first rule whose conditions all hold
   decides.
2. If none holds, the default for the tool's effect kind decides (``read_only``:
   allow, ``side_effect``/``irreversible``/``unknown``: deny, unless configured).
   A default deny names the allow rules that did not apply and why, and uses the
   fallback of the first of them, so the model learns what to do.
3. Anything that goes wrong inside the engine (a predicate that raises, a
   condition naming an argument the call lacks, a bug) is a deny whose reason
   says what happened: the engine fails closed.
4. Layers (`Policy.narrow`): every layer is checked; the most restrictive answer
   wins. A lower layer without explicit defaults abstains when none of its rules
   applies. Building a layer that would allow what its parent denies raises
   `PolicyLayerError`.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pilothouse.exceptions import PolicyError, PolicyLayerError
from pilothouse.messages import ToolCall
from pilothouse.policy.decision import Decision, Fallback

EffectKind = Literal["read_only", "side_effect", "irreversible", "unknown"]
RuleEffect = Literal["allow", "deny", "ask"]
EFFECT_KINDS: tuple[str, ...] = ("read_only", "side_effect", "irreversible", "unknown")
_DEFAULTS: dict[str, RuleEffect] = {
    "read_only": "allow",
    "side_effect": "deny",
    "irreversible": "deny",
    "unknown": "deny",
}
_RANK = {"deny": 0, "ask": 1, "allow": 2}
DEFAULT_CONFIRMATION = r"(?i)\b(yes|yep|yeah|confirm|confirmed)\b"

Predicate = Callable[[ToolCall, "RunContext"], bool]
Approver = Callable[[ToolCall, Decision, "RunContext"], bool | Awaitable[bool]]
Path = tuple[str | int, ...]
Locate = Callable[[Path], int | None]


# --------------------------------------------------------------------------- run context


@dataclass(slots=True)
class Principal:
    """Who the run acts for: the end user, their role, and any other attributes."""

    user: str | None = None
    role: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the journal keeps (attributes must be JSON values)."""
        return {"user": self.user, "role": self.role, "attributes": dict(self.attributes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Principal:
        return cls(d.get("user"), d.get("role"), dict(d.get("attributes") or {}))

    def get(self, key: str) -> Any:
        """`user`, `role` or an attribute; None when absent."""
        if key == "user":
            return self.user
        if key == "role":
            return self.role
        return self.attributes.get(key)


@dataclass(slots=True)
class CallRecord:
    """One executed call as the policy sees it: arguments, result, when, after which turn."""

    name: str
    arguments: dict[str, Any]
    result: str | None = None
    ok: bool = True
    ts: float = 0.0
    effect: str = "unknown"
    turn: int = 0  # how many user messages had been seen when the call ran


@dataclass(slots=True)
class RunContext:
    """What the policy knows of the run so far: principal, user messages, executed calls.

    The loop keeps one per run (rebuilt from the journal by `from_events`). User
    messages are trusted input; tool results (`history[i].result`) are not. `env` is
    application state for predicates (for example a shop database); `deps` the run's
    typed dependencies (`agent.run(..., deps=...)`), for predicates that read them.
    """

    principal: Principal = field(default_factory=Principal)
    user_messages: list[str] = field(default_factory=list)
    history: list[CallRecord] = field(default_factory=list)
    env: Any = None
    clock: Callable[[], float] = time.time
    denied: list[CallRecord] = field(default_factory=list)  # refused consequential calls
    deps: Any = None
    _index: dict[str, list[CallRecord]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=0, repr=False)

    def calls_named(self, name: str) -> list[CallRecord]:
        """The executed calls of one tool, in order (an index kept in step with `history`)."""
        n = len(self.history)
        if n != self._indexed:
            if n < self._indexed:
                self._index, self._indexed = {}, 0
            for r in self.history[self._indexed :]:
                self._index.setdefault(r.name, []).append(r)
            self._indexed = n
        return self._index.get(name, [])

    def record_denied(self, name: str, arguments: dict[str, Any], effect: str) -> None:
        """Record a refused call: it did not happen, but it used up the latest confirmation."""
        self.denied.append(
            CallRecord(name, arguments, None, False, self.clock(), effect, len(self.user_messages))
        )

    def add_user_message(self, text: str) -> None:
        """Record a message from the user (trusted input; resets confirmation)."""
        self.user_messages.append(text)

    def record(
        self,
        name: str,
        arguments: dict[str, Any],
        result: str | None = None,
        *,
        ok: bool = True,
        effect: str = "unknown",
        ts: float | None = None,
    ) -> CallRecord:
        """Record a call (denied calls are not recorded: they did not happen).

        The loop records an allowed call provisionally (`ok=False`, no result) before it
        runs, and fills in the returned record when it returns: counts and rate limits
        see the call at once, `after` conditions only once it has succeeded.
        """
        record = CallRecord(
            name,
            arguments,
            result,
            ok,
            self.clock() if ts is None else ts,
            effect,
            len(self.user_messages),
        )
        self.history.append(record)
        return record

    @classmethod
    def from_events(cls, events: Iterable[Any], principal: Principal | None = None) -> RunContext:
        """Rebuild the context of a recorded run from its journal events.

        Trusted input is the run's input, as in the loop: later user-role messages
        of a run are the loop's own corrective messages, not the user's words.
        """
        ctx = cls(principal or Principal())
        pending: dict[tuple[int, int], tuple[ToolCall, str, float, bool]] = {}
        for e in events:
            kind = getattr(e, "type", "")
            if kind == "run_started":
                ctx.add_user_message(e.input)
            elif kind == "tool_call":
                decision = getattr(e, "decision", None)
                allowed = decision is None or decision.allowed
                pending[(e.step, e.index)] = (e.call, e.effect, e.ts, allowed)
            elif kind == "approval_given" and e.approved:
                got = pending.get((e.step, e.index))
                if got is not None:  # a person allowed it: it ran (or runs) as allowed
                    pending[(e.step, e.index)] = (*got[:3], True)
            elif kind == "tool_result":
                got = pending.pop((e.step, e.index), None)
                if got is not None and got[3]:
                    call, effect, ts, _ = got
                    ctx.record(
                        call.name,
                        call.arguments,
                        e.result.content,
                        ok=not e.result.is_error,
                        effect=effect,
                        ts=ts,
                    )
        return ctx


# --------------------------------------------------------------------------- compiling


Check = Callable[[ToolCall, RunContext], "str | None"]  # None: holds; str: why not


class _EngineFailure(Exception):
    """Raised inside a check to deny the call outright (fail-closed), with the reason."""


def _err(where: Path, locate: Locate | None, message: str) -> PolicyError:
    line = locate(where) if locate else None
    at = ".".join(str(p) for p in where) or "(policy)"
    prefix = f"line {line}: " if line is not None else ""
    return PolicyError(f"{prefix}{at}: {message}")


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}
SCHEMA_KEYWORDS = (
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
    "not",
)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def compile_schema(
    schema: Any, where: Path = (), locate: Locate | None = None
) -> Callable[[Any], str | None]:
    """Compile the JSON-schema subset into a function: value -> None (ok) or the failure."""
    if not isinstance(schema, Mapping):
        raise _err(where, locate, f"a value condition must be a mapping, not {schema!r}")
    checks: list[Any] = []  # Callable[[Any], str | None], built from lambdas
    for key, arg in schema.items():
        at = (*where, key)
        if key == "type":
            names = [arg] if isinstance(arg, str) else arg
            if not isinstance(names, list) or any(n not in _TYPES for n in names):
                raise _err(at, locate, f"type must be one of {sorted(_TYPES)}")
            tests = [_TYPES[n] for n in names]
            checks.append(
                lambda v, t=tests, n=names: (
                    None if any(f(v) for f in t) else f"{v!r} is not of type {'/'.join(n)}"
                )
            )
        elif key == "enum":
            if not isinstance(arg, list) or not arg:
                raise _err(at, locate, "enum must be a non-empty list")
            allowed = list(arg)
            checks.append(lambda v, a=allowed: None if v in a else f"{v!r} is not one of {a}")
        elif key == "const":
            checks.append(lambda v, c=arg: None if v == c else f"{v!r} is not {c!r}")
        elif key == "pattern":
            try:
                rx = re.compile(str(arg))
            except re.error as exc:
                raise _err(at, locate, f"invalid regular expression: {exc}") from None
            checks.append(
                lambda v, r=rx: (
                    None
                    if isinstance(v, str) and r.search(v)
                    else f"{v!r} does not match /{r.pattern}/"
                )
            )
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if not _num(arg):
                raise _err(at, locate, f"{key} must be a number")
            checks.append(_bound(key, arg))
        elif key in ("minLength", "maxLength", "minItems", "maxItems"):
            if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
                raise _err(at, locate, f"{key} must be a non-negative integer")
            low = key.startswith("min")
            kind = str if key.endswith("Length") else (list, tuple)
            checks.append(
                lambda v, n=arg, lo=low, k=kind: (
                    None
                    if isinstance(v, k) and (len(v) >= n if lo else len(v) <= n)
                    else f"{v!r} has {'fewer' if lo else 'more'} than {n} "
                    f"{'characters' if k is str else 'items'}"
                )
            )
        elif key == "items":
            inner = compile_schema(arg, at, locate)

            def items(v: Any, f: Callable[[Any], str | None] = inner) -> str | None:
                if not isinstance(v, list | tuple):
                    return f"{v!r} is not a list"
                for i, x in enumerate(v):
                    why = f(x)
                    if why is not None:
                        return f"item {i}: {why}"
                return None

            checks.append(items)
        elif key == "not":
            inner = compile_schema(arg, at, locate)
            checks.append(
                lambda v, f=inner: f"{v!r} matches a forbidden value" if f(v) is None else None
            )
        else:
            raise _err(at, locate, f"unknown keyword {key!r}; use one of {list(SCHEMA_KEYWORDS)}")

    if len(checks) == 1:  # the common case: no loop around a single check
        only: Callable[[Any], str | None] = checks[0]
        return only
    if len(checks) == 2:
        first: Callable[[Any], str | None] = checks[0]
        second: Callable[[Any], str | None] = checks[1]

        def check2(v: Any) -> str | None:
            why = first(v)
            return second(v) if why is None else why

        return check2
    all_checks = tuple(checks)

    def check(v: Any) -> str | None:
        for c in all_checks:
            why: str | None = c(v)
            if why is not None:
                return why
        return None

    return check


_NUMBER = (int, float)


def _bound(key: str, b: Any) -> Callable[[Any], str | None]:
    """A numeric bound (`minimum` ... `exclusiveMaximum`) as one closure: None or why not."""
    if key == "minimum":

        def minimum(v: Any) -> str | None:
            if isinstance(v, _NUMBER) and not isinstance(v, bool) and v >= b:
                return None
            return f"{v!r} is not >= {b}"

        return minimum
    if key == "maximum":

        def maximum(v: Any) -> str | None:
            if isinstance(v, _NUMBER) and not isinstance(v, bool) and v <= b:
                return None
            return f"{v!r} is not <= {b}"

        return maximum
    if key == "exclusiveMinimum":

        def exclusive_minimum(v: Any) -> str | None:
            if isinstance(v, _NUMBER) and not isinstance(v, bool) and v > b:
                return None
            return f"{v!r} is not > {b}"

        return exclusive_minimum

    def exclusive_maximum(v: Any) -> str | None:
        if isinstance(v, _NUMBER) and not isinstance(v, bool) and v < b:
            return None
        return f"{v!r} is not < {b}"

    return exclusive_maximum


def _ref(value: Any, call: ToolCall, ctx: RunContext) -> Any:
    """Resolve ``$args.name`` / ``$principal.key`` references; other values are literals."""
    if isinstance(value, str) and value.startswith("$"):
        head, _, key = value[1:].partition(".")
        if head == "args":
            if key not in call.arguments:
                raise _EngineFailure(f"the policy refers to argument {key!r}, which the call lacks")
            return call.arguments[key]
        if head == "principal":
            return ctx.principal.get(key)
    return value


def _validate_ref(value: Any, where: Path, locate: Locate | None) -> None:
    if isinstance(value, str) and value.startswith("$"):
        head, dot, key = value[1:].partition(".")
        if head not in ("args", "principal") or not dot or not key:
            raise _err(where, locate, f"reference {value!r} must be $args.NAME or $principal.KEY")


@dataclass(frozen=True, slots=True)
class _CallPattern:
    tool: str
    args: tuple[tuple[str, Any], ...]  # name -> literal, reference, or compiled schema
    ok: bool | None
    result: Callable[[Any], str | None] | None
    text: str
    name_rx: re.Pattern[str] | None  # None: `tool` is an exact name

    def bind(self, call: ToolCall, ctx: RunContext) -> Callable[[CallRecord], bool]:
        """A matcher for history records, with ``$args``/``$principal`` resolved once."""
        wanted = [
            (name, want if callable(want) else _ref(want, call, ctx), callable(want))
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
            (name, want if callable(want) else _ref(want, call, ctx), callable(want))
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

    def candidates(self, ctx: RunContext) -> list[CallRecord]:
        """The history records of the tools this pattern names (not in time order)."""
        if self.name_rx is None:
            return ctx.calls_named(self.tool)
        ctx.calls_named("")  # bring the index up to date
        rx = self.name_rx
        out: list[CallRecord] = []
        for name, records in ctx._index.items():
            if rx.match(name) is not None:
                out.extend(records)
        return out


def _glob(pattern: str) -> re.Pattern[str] | None:
    """A compiled glob, or None when the pattern is a plain name (compared with ==)."""
    if not any(ch in pattern for ch in "*?["):
        return None
    return re.compile(fnmatch.translate(pattern))


def _call_pattern(spec: Any, where: Path, locate: Locate | None) -> _CallPattern:
    if isinstance(spec, str):
        spec = {"tool": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("tool"), str):
        raise _err(where, locate, "a call pattern needs `tool: NAME-OR-GLOB`")
    unknown = set(spec) - {"tool", "args", "ok", "result"}
    if unknown:
        raise _err(where, locate, f"unknown key(s) {sorted(unknown)}; use tool, args, ok, result")
    args: list[tuple[str, Any]] = []
    raw_args = spec.get("args") or {}
    if not isinstance(raw_args, Mapping):
        raise _err((*where, "args"), locate, "args must be a mapping of argument name to value")
    for name, want in raw_args.items():
        at = (*where, "args", name)
        if isinstance(want, Mapping):
            args.append((str(name), compile_schema(want, at, locate)))
        else:
            _validate_ref(want, at, locate)
            args.append((str(name), want))
    ok = spec.get("ok", True)
    if ok is not None and not isinstance(ok, bool):
        raise _err((*where, "ok"), locate, "ok must be true, false or null (any)")
    result = spec.get("result")
    return _CallPattern(
        spec["tool"],
        tuple(args),
        ok,
        compile_schema(result, (*where, "result"), locate) if result is not None else None,
        spec["tool"] + (f"({', '.join(f'{k}={v}' for k, v in raw_args.items())})"),
        _glob(spec["tool"]),
    )


def _int(value: Any, where: Path, locate: Locate | None, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _err(where, locate, f"must be an integer >= {minimum}")
    return value


CONDITION_KEYS = (
    "args",
    "predicates",
    "after",
    "not_after",
    "max_calls",
    "rate",
    "confirmed",
    "trusted",
    "principal",
    "not",
    "any",
)


@dataclass(slots=True)
class _Compiled:
    """What compiling a `when` block gives: the checks, and what they read."""

    checks: list[Check]
    arg_names: set[str] = field(default_factory=set)
    predicate_names: set[str] = field(default_factory=set)
    stateful: bool = False


def compile_conditions(
    when: Any,
    where: Path,
    predicates: Mapping[str, Predicate],
    own_tools: Sequence[str],
    locate: Locate | None = None,
    confirmation: str = DEFAULT_CONFIRMATION,
) -> _Compiled:
    """Compile a rule's ``when`` block (all conditions must hold) into checks."""
    out = _Compiled([])
    if when is None:
        return out
    if not isinstance(when, Mapping):
        raise _err(where, locate, "`when` must be a mapping of condition kind to condition")
    for key, spec in when.items():
        at = (*where, key)
        if key == "args":
            if not isinstance(spec, Mapping):
                raise _err(at, locate, "args must map argument names to value conditions")
            for name, schema in spec.items():
                f = compile_schema(schema, (*at, name), locate)
                out.arg_names.add(str(name))

                def arg_check(
                    call: ToolCall, ctx: RunContext, n: str = str(name), f: Any = f
                ) -> str | None:
                    if n not in call.arguments:
                        raise _EngineFailure(
                            f"the policy has a condition on argument {n!r}, which the call lacks"
                        )
                    why: str | None = f(call.arguments[n])
                    return None if why is None else f"argument {n}: {why}"

                out.checks.append(arg_check)
        elif key == "predicates":
            items = [spec] if isinstance(spec, str) or callable(spec) else spec
            if not isinstance(items, list | tuple):
                raise _err(at, locate, "predicates must be a list of predicate names")
            for i, p in enumerate(items):
                if callable(p):
                    fn, pname = p, getattr(p, "__name__", repr(p))
                elif isinstance(p, str) and p in predicates:
                    fn, pname = predicates[p], p
                else:
                    known = ", ".join(sorted(predicates)) or "none registered"
                    raise _err((*at, i), locate, f"unknown predicate {p!r} (known: {known})")
                out.predicate_names.add(pname)
                out.stateful = True

                def pred_check(
                    call: ToolCall, ctx: RunContext, fn: Predicate = fn, pname: str = pname
                ) -> str | None:
                    try:
                        ok = fn(call, ctx)
                    except Exception as exc:
                        raise _EngineFailure(
                            f"predicate {pname!r} raised {type(exc).__name__}: {exc}"
                        ) from exc
                    if not isinstance(ok, bool):
                        raise _EngineFailure(
                            f"predicate {pname!r} returned {type(ok).__name__}, not bool"
                        )
                    return None if ok else f"predicate {pname} is false"

                out.checks.append(pred_check)
        elif key in ("after", "not_after"):
            items = spec if isinstance(spec, list) else [spec]
            pats = [_call_pattern(s, (*at, i), locate) for i, s in enumerate(items)]
            out.stateful = True
            if key == "after":

                def after(
                    call: ToolCall, ctx: RunContext, pats: list[_CallPattern] = pats
                ) -> str | None:
                    for p in pats:
                        if not p.seen(call, ctx):
                            return f"requires an earlier successful call {p.text}"
                    return None

                out.checks.append(after)
            else:

                def not_after(
                    call: ToolCall, ctx: RunContext, pats: list[_CallPattern] = pats
                ) -> str | None:
                    for p in pats:
                        if p.seen(call, ctx):
                            return f"not allowed after a call {p.text}"
                    return None

                out.checks.append(not_after)
        elif key in ("max_calls", "rate"):
            if key == "max_calls" and isinstance(spec, int):
                spec = {"max": spec}
            if not isinstance(spec, Mapping):
                raise _err(at, locate, f"{key} must be a mapping with `max`")
            allowed_keys = {"max", "tool", "args"} | ({"seconds"} if key == "rate" else set())
            unknown = set(spec) - allowed_keys
            if unknown:
                raise _err(at, locate, f"unknown key(s) {sorted(unknown)}")
            limit = _int(spec.get("max"), (*at, "max"), locate)
            seconds = (
                float(_int(spec.get("seconds"), (*at, "seconds"), locate, 1))
                if key == "rate"
                else None
            )
            tools = [spec["tool"]] if "tool" in spec else list(own_tools)
            pats = [
                _call_pattern({"tool": t, "args": spec.get("args") or {}, "ok": None}, at, locate)
                for t in tools
            ]
            out.stateful = True

            def count(
                call: ToolCall,
                ctx: RunContext,
                pats: list[_CallPattern] = pats,
                limit: int = limit,
                seconds: float | None = seconds,
            ) -> str | None:
                since = ctx.clock() - seconds if seconds is not None else None
                counted: set[int] = set()  # a record matched by two patterns counts once
                for p in pats:
                    m = p.bind(call, ctx)
                    counted.update(
                        id(r)
                        for r in p.candidates(ctx)
                        if (since is None or r.ts >= since) and m(r)
                    )
                n = len(counted)
                if n < limit:
                    return None
                window = f" in the last {seconds:g} s" if seconds is not None else ""
                return f"limit of {limit} call(s){window} reached"

            out.checks.append(count)
        elif key == "confirmed":
            if spec is False:
                continue
            pattern = confirmation if spec is True else spec
            try:
                rx = re.compile(str(pattern))
            except re.error as exc:
                raise _err(at, locate, f"invalid regular expression: {exc}") from None
            out.stateful = True

            def confirmed(call: ToolCall, ctx: RunContext, rx: re.Pattern[str] = rx) -> str | None:
                if not ctx.user_messages or not rx.search(ctx.user_messages[-1]):
                    return "requires an explicit confirmation (yes) in the latest user message"
                turn = len(ctx.user_messages)
                # One "yes" covers one consequential call. A refused attempt uses it up too,
                # unless this call is the same call again (a retry of what was confirmed).
                retry = [
                    r
                    for r in ctx.denied
                    if r.turn == turn
                    and not (r.name == call.name and r.arguments == call.arguments)
                ]
                for r in (*ctx.history, *retry):
                    if r.turn == turn and r.effect in ("side_effect", "irreversible"):
                        return (
                            "the latest confirmation was already used by a consequential call "
                            f"({r.name}); ask the user again for an explicit confirmation"
                        )
                return None

            out.checks.append(confirmed)
        elif key == "trusted":
            if isinstance(spec, str | list):
                spec = {"args": [spec] if isinstance(spec, str) else spec}
            if not isinstance(spec, Mapping) or not isinstance(spec.get("args"), list):
                raise _err(at, locate, "trusted needs `args: [NAME, ...]` (and `allow_list`)")
            names = [str(n) for n in spec["args"]]
            allow_list = spec.get("allow_list") or []
            if not isinstance(allow_list, list):
                raise _err((*at, "allow_list"), locate, "allow_list must be a list")
            allowed = {str(v).casefold() for v in allow_list}
            out.arg_names.update(names)
            out.stateful = True

            def trusted(
                call: ToolCall,
                ctx: RunContext,
                names: list[str] = names,
                allowed: set[str] = allowed,
            ) -> str | None:
                texts = [m.casefold() for m in ctx.user_messages]
                for n in names:
                    if n not in call.arguments:
                        raise _EngineFailure(
                            f"the policy has a provenance condition on argument {n!r}, "
                            "which the call lacks"
                        )
                    v = call.arguments[n]
                    for item in v if isinstance(v, list | tuple) else [v]:
                        s = str(item).casefold()
                        if s in allowed or any(s in t for t in texts):
                            continue
                        src = next(
                            (r.name for r in ctx.history if r.result and s in r.result.casefold()),
                            None,
                        )
                        origin = (
                            f"it appears only in the output of tool {src!r} (untrusted)"
                            if src
                            else "it does not appear in the user's messages"
                        )
                        return f"argument {n}={item!r} is not from trusted input: {origin}"
                return None

            out.checks.append(trusted)
        elif key == "principal":
            if not isinstance(spec, Mapping):
                raise _err(at, locate, "principal must map user/role/attribute to a condition")
            for pkey, schema in spec.items():
                f = compile_schema(schema, (*at, pkey), locate)

                def principal(
                    call: ToolCall, ctx: RunContext, k: str = str(pkey), f: Any = f
                ) -> str | None:
                    why: str | None = f(ctx.principal.get(k))
                    return None if why is None else f"principal {k}: {why}"

                out.checks.append(principal)
        elif key == "not":
            inner = compile_conditions(spec, at, predicates, own_tools, locate, confirmation)
            out.arg_names |= inner.arg_names
            out.predicate_names |= inner.predicate_names
            out.stateful = out.stateful or inner.stateful

            def negate(
                call: ToolCall, ctx: RunContext, c: list[Check] = inner.checks
            ) -> str | None:
                if all(f(call, ctx) is None for f in c):
                    return "a `not` condition holds"
                return None

            out.checks.append(negate)
        elif key == "any":
            if not isinstance(spec, list) or not spec:
                raise _err(at, locate, "any must be a non-empty list of condition blocks")
            alts = [
                compile_conditions(s, (*at, i), predicates, own_tools, locate, confirmation)
                for i, s in enumerate(spec)
            ]
            for a in alts:
                out.arg_names |= a.arg_names
                out.predicate_names |= a.predicate_names
                out.stateful = out.stateful or a.stateful

            def any_of(call: ToolCall, ctx: RunContext, alts: list[_Compiled] = alts) -> str | None:
                reasons = []
                for a in alts:
                    why = next((w for f in a.checks if (w := f(call, ctx)) is not None), None)
                    if why is None:
                        return None
                    reasons.append(why)
                return "none of the alternatives holds: " + "; ".join(reasons)

            out.checks.append(any_of)
        else:
            raise _err(at, locate, f"unknown condition {key!r}; use one of {list(CONDITION_KEYS)}")
    return out


# --------------------------------------------------------------------------- rules


@dataclass(slots=True)
class Rule:
    """One rule, in its Python form (the YAML form is the same fields as a mapping).

    `tools` are names or glob patterns; `when` holds conditions that must all hold
    for the rule to apply (see the module docs and README for the kinds); `fallback`
    is ``"error"``, ``"abort"``, ``"ask"`` or ``{"action": ..., "message": ...,
    "approver": ...}``.
    """

    tools: str | Sequence[str]
    effect: RuleEffect = "allow"
    when: Mapping[str, Any] | None = None
    priority: int = 0
    fallback: str | Mapping[str, Any] = "error"
    id: str | None = None
    description: str = ""


@dataclass(slots=True)
class _CompiledRule:
    id: str
    patterns: tuple[str, ...]
    effect: RuleEffect
    priority: int
    checks: list[Check]
    fallback: Fallback
    message: str
    approver: str | None
    arg_names: set[str]
    predicate_names: set[str]
    stateful: bool
    unconditional: bool
    order: int
    decision: Decision | None = None  # what the rule decides when it applies (built once)

    def covers(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)


RULE_KEYS = ("id", "tools", "effect", "when", "priority", "fallback", "description")


def _compile_rule(
    rule: Rule,
    index: int,
    predicates: Mapping[str, Predicate],
    locate: Locate | None,
    confirmation: str,
) -> _CompiledRule:
    where: Path = ("rules", index)
    patterns = [rule.tools] if isinstance(rule.tools, str) else list(rule.tools)
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise _err((*where, "tools"), locate, "tools must be a name, a glob or a list of them")
    if rule.effect not in _RANK:
        raise _err((*where, "effect"), locate, "effect must be allow, deny or ask")
    if not isinstance(rule.priority, int) or isinstance(rule.priority, bool):
        raise _err((*where, "priority"), locate, "priority must be an integer")
    fb = rule.fallback
    if isinstance(fb, str):
        fb = {"action": fb}
    if not isinstance(fb, Mapping):
        raise _err((*where, "fallback"), locate, "fallback must be error, abort, ask or a mapping")
    unknown = set(fb) - {"action", "message", "approver"}
    if unknown:
        raise _err((*where, "fallback"), locate, f"unknown key(s) {sorted(unknown)}")
    action = fb.get("action", "error")
    if action not in ("error", "abort", "ask"):
        raise _err((*where, "fallback", "action"), locate, "action must be error, abort or ask")
    message = fb.get("message", "")
    if not isinstance(message, str):
        raise _err((*where, "fallback", "message"), locate, "message must be a string")
    compiled = compile_conditions(
        rule.when, (*where, "when"), predicates, patterns, locate, confirmation
    )
    return _CompiledRule(
        id=rule.id or f"rule{index}",
        patterns=tuple(patterns),
        effect=rule.effect,
        priority=rule.priority,
        checks=compiled.checks,
        fallback=cast(Fallback, action),
        message=message,
        approver=fb.get("approver"),
        arg_names=compiled.arg_names,
        predicate_names=compiled.predicate_names,
        stateful=compiled.stateful,
        unconditional=not compiled.checks,
        order=index,
    )


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """A tool as a policy file declares it: its effect kind and its argument names."""

    effect: str = "unknown"
    args: tuple[str, ...] | None = None
    required: tuple[str, ...] = ()


class Policy:
    """Deterministic privilege control for tool calls. See the module docs for semantics.

    Build from Python (`Policy([Rule(...)], ...)`), from a mapping (`from_dict`) or
    from YAML (`from_yaml`, `load`); all three compile to the same engine. Building
    raises `PolicyError` for anything malformed.
    """

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        defaults: Mapping[str, str] | None = None,
        predicates: Mapping[str, Predicate] | None = None,
        tools: Mapping[str, ToolInfo] | None = None,
        approvers: Mapping[str, Approver] | None = None,
        confirmation: str = DEFAULT_CONFIRMATION,
        name: str = "policy",
        _locate: Locate | None = None,
    ) -> None:
        self.name = name
        self.predicates: dict[str, Predicate] = dict(predicates or {})
        self.tools: dict[str, ToolInfo] = dict(tools or {})
        self.approvers: dict[str, Approver] = dict(approvers or {})
        self.explicit_defaults = defaults is not None
        merged = dict(_DEFAULTS)
        for kind, value in (defaults or {}).items():
            if kind not in _DEFAULTS:
                raise _err(("defaults", kind), _locate, f"unknown effect kind; use {EFFECT_KINDS}")
            if value not in ("allow", "deny", "ask"):
                raise _err(("defaults", kind), _locate, "must be allow, deny or ask")
            merged[kind] = cast(RuleEffect, value)
        self.defaults: dict[str, RuleEffect] = merged
        self.rules: list[Rule] = list(rules)
        compiled = [
            _compile_rule(r, i, self.predicates, _locate, confirmation)
            for i, r in enumerate(self.rules)
        ]
        seen: set[str] = set()
        for c in compiled:
            if c.id in seen:
                raise _err(("rules", c.order, "id"), _locate, f"two rules have the id {c.id!r}")
            seen.add(c.id)
        compiled.sort(key=lambda c: (-c.priority, _RANK[c.effect], c.order))
        for c in compiled:
            c.decision = self._apply(c)  # decisions are immutable: build each once
        self._compiled = compiled
        self._by_name: dict[str, tuple[_CompiledRule, ...]] = {}
        self._default_decisions: dict[str, Decision] = {
            kind: self._default(kind, value) for kind, value in self.defaults.items()
        }
        self._lower: tuple[Policy, ...] = ()
        self.stateful = any(c.stateful for c in compiled)

    @staticmethod
    def _default(kind: str, value: RuleEffect) -> Decision:
        if value == "allow":
            return Decision.allow(
                f"default:{kind}", f"{kind} tools are allowed by default", source="default"
            )
        if value == "ask":
            return Decision.ask(
                None, f"{kind} tools need approval by default", f"default:{kind}", "default"
            )
        return Decision.deny(
            f"{kind} tools are denied unless a rule allows them, and no rule does",
            f"default:{kind}",
            source="default",
        )

    def __repr__(self) -> str:
        layers = f", layers={len(self._lower) + 1}" if self._lower else ""
        return f"Policy({self.name!r}, rules={len(self.rules)}{layers})"

    # -- construction helpers

    @classmethod
    def allow_all(cls) -> Policy:
        """A policy that allows every call (what agents did before policies existed)."""
        return cls(defaults={k: "allow" for k in EFFECT_KINDS}, name="allow_all")

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        predicates: Mapping[str, Predicate] | None = None,
        approvers: Mapping[str, Approver] | None = None,
        locate: Locate | None = None,
    ) -> Policy:
        """Build from the mapping form (what a YAML policy file holds)."""
        from pilothouse.policy.loader import policy_from_mapping

        return policy_from_mapping(data, predicates=predicates, approvers=approvers, locate=locate)

    @classmethod
    def from_yaml(
        cls,
        text: str,
        *,
        predicates: Mapping[str, Predicate] | None = None,
        approvers: Mapping[str, Approver] | None = None,
        source: str = "<policy>",
    ) -> Policy:
        """Parse a YAML policy; errors name `source`, the line and the reason."""
        from pilothouse.policy.loader import policy_from_yaml

        return policy_from_yaml(text, predicates=predicates, approvers=approvers, source=source)

    @classmethod
    def load(
        cls,
        path: str | Any,
        *,
        predicates: Mapping[str, Predicate] | None = None,
        approvers: Mapping[str, Approver] | None = None,
    ) -> Policy:
        """Read a YAML policy file."""
        from pathlib import Path as _P

        p = _P(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{p}: cannot read the policy file ({exc})") from None
        return cls.from_yaml(text, predicates=predicates, approvers=approvers, source=str(p))

    # -- layers

    def narrow(self, lower: Policy) -> Policy:
        """This policy with `lower` as a further layer; raises if `lower` would widen it."""
        problems = self.widening(lower)
        if problems:
            raise PolicyLayerError(
                f"layer {lower.name!r} may only narrow {self.name!r}: " + "; ".join(problems)
            )
        layered = Policy.__new__(Policy)
        for slot in (
            "name",
            "predicates",
            "tools",
            "explicit_defaults",
            "defaults",
            "rules",
            "_compiled",
            "_default_decisions",
        ):
            setattr(layered, slot, getattr(self, slot))
        layered.approvers = {**self.approvers, **lower.approvers}
        layered._by_name = {}
        layered._lower = (*self._lower, lower)
        layered.stateful = self.stateful or lower.stateful
        layered.name = f"{self.name}+{lower.name}"
        return layered

    @classmethod
    def layered(cls, *layers: Policy) -> Policy:
        """Organisation, application, task, ...: each layer may only narrow the one above."""
        if not layers:
            raise PolicyError("layered() needs at least one policy")
        top = layers[0]
        for lower in layers[1:]:
            top = top.narrow(lower)
        return top

    def widening(self, lower: Policy) -> list[str]:
        """Why `lower` is not a pure narrowing of this policy (empty when it is)."""
        problems: list[str] = []
        layers = (self, *self._lower)
        if lower.explicit_defaults:
            for kind, value in lower.defaults.items():
                upper = max((p.defaults[kind] for p in layers), key=lambda v: -_RANK[v])
                if _RANK[value] > _RANK[upper]:
                    problems.append(f"default for {kind} tools is {value}, above {upper}")
        for rule in lower._compiled:
            if rule.effect == "deny":
                continue
            for pattern in rule.patterns:
                for layer in layers:
                    why = layer._denies_pattern(pattern, rule.effect)
                    if why:
                        problems.append(f"rule {rule.id!r} {rule.effect}s {pattern!r}, but {why}")
        return problems

    def _denies_pattern(self, pattern: str, effect: RuleEffect) -> str | None:
        """Why this layer denies calls matching `pattern` outright, or None if it may not."""
        for c in self._compiled:
            if (
                c.effect == "deny"
                and c.unconditional
                and any(fnmatch.fnmatchcase(pattern, p) for p in c.patterns)
            ):
                return f"rule {c.id!r} of {self.name!r} denies it unconditionally"
        known = [n for n in self.tools if fnmatch.fnmatchcase(n, pattern)]
        candidates = [c for c in self._compiled if c.effect != "deny"]
        for n in known:
            kind = self.tools[n].effect
            if self.defaults.get(kind, "deny") == "deny" and not any(
                c.covers(n) for c in candidates
            ):
                return f"{self.name!r} denies {kind} tool {n!r} and has no rule allowing it"
        return None

    # -- checking

    def _rules_for(self, name: str) -> tuple[_CompiledRule, ...]:
        rules = tuple(c for c in self._compiled if c.covers(name))
        if len(self._by_name) < 4096:
            self._by_name[name] = rules
        return rules

    def has_rules(self, name: str) -> bool:
        """Whether any rule (in any layer) concerns this tool name."""
        rules = self._by_name.get(name)
        if rules is None:
            rules = self._rules_for(name)
        if rules or not self._lower:
            return bool(rules)
        return any(p.has_rules(name) for p in self._lower)

    def check(self, call: ToolCall, context: RunContext, *, effect: str | None = None) -> Decision:
        """Decide one call (arguments already validated, defaults bound). Never raises."""
        try:
            kind = effect if effect is not None else self._effect_of(call.name)
            if not self._lower:
                rules = self._by_name.get(call.name)
                if rules is None:
                    rules = self._rules_for(call.name)
                if not rules:
                    return self._default_decisions.get(kind) or self._default_decisions["unknown"]
                return self._decide(rules, call, context, kind, True)  # type: ignore[return-value]
            decisions: list[Decision] = []
            for layer in (self, *self._lower):
                d = layer._layer_decision(call, context, kind, layer is self)
                if d is None:
                    continue
                if d.effect == "deny":
                    return d
                decisions.append(d)
            asks = [d for d in decisions if d.effect == "ask"]
            if asks:
                return asks[0]
            return decisions[0]
        except Exception as exc:
            return Decision.deny(
                f"policy engine error ({type(exc).__name__}: {exc}); denied (fail-closed)",
                "engine",
                source="engine",
            )

    def _effect_of(self, name: str) -> str:
        info = self.tools.get(name)
        return info.effect if info is not None else "unknown"

    def _layer_decision(
        self, call: ToolCall, context: RunContext, kind: str, top: bool
    ) -> Decision | None:
        rules = self._by_name.get(call.name)
        if rules is None:
            rules = self._rules_for(call.name)
        return self._decide(rules, call, context, kind, top or self.explicit_defaults)

    def _decide(
        self,
        rules: tuple[_CompiledRule, ...],
        call: ToolCall,
        ctx: RunContext,
        kind: str,
        use_default: bool,
    ) -> Decision | None:
        failed: list[tuple[_CompiledRule, str]] = []
        for rule in rules:
            why: str | None = None
            try:
                for check in rule.checks:
                    why = check(call, ctx)
                    if why is not None:
                        break
            except _EngineFailure as exc:
                return Decision.deny(f"rule {rule.id!r}: {exc}; denied (fail-closed)", rule.id)
            if why is None:
                return rule.decision or self._apply(rule)
            failed.append((rule, why))
        if not use_default:
            return None
        default = self._default_decisions.get(kind) or self._default_decisions["unknown"]
        blockers = [(r, w) for r, w in failed if r.effect != "deny"]
        if default.effect == "allow" or not blockers:
            return default
        first = blockers[0][0]
        detail = "; ".join(f"rule {r.id!r} does not apply: {w}" for r, w in blockers)
        reason = f"{default.reason} ({detail})"
        if first.fallback == "ask" or default.effect == "ask":
            return Decision.ask(first.approver, reason, first.id)
        return Decision.deny(reason, first.id, first.fallback, _message(first.message, reason))

    @staticmethod
    def _apply(rule: _CompiledRule) -> Decision:
        verb = {"allow": "allows", "deny": "denies", "ask": "asks for approval of"}[rule.effect]
        reason = f"rule {rule.id!r} {verb} it"
        if rule.effect == "allow":
            return Decision.allow(rule.id, reason)
        if rule.effect == "ask" or rule.fallback == "ask":
            return Decision.ask(rule.approver, reason, rule.id)
        return Decision.deny(reason, rule.id, rule.fallback, _message(rule.message, reason))


def _message(template: str, reason: str) -> str:
    if not template:
        return ""
    return template.replace("{reason}", reason)
