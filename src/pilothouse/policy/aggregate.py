"""Aggregates beyond the run: sums and counts over a session, a principal or everyone.

`total` sums an argument over *this run*. A limit that matters often spans runs:
refunds of one order across every conversation, failed verifications of one e-mail
per hour across conversations. The `aggregate` condition says it declaratively:

    aggregate:
      source: journal            # a source the policy declares (`aggregates: [journal]`)
      over: all                  # session | principal | all
      tool: verify_identity      # default: the rule's own tools
      per: email                 # only calls with the same value(s) as this call
      ok: false                  # only failed calls (true: successful; null: all)
      within: 1h                 # only calls in the last hour (the context's clock)
      max: 3                     # count (or, with `field:`, sum) including this call

The engine stays pure: it does not read a store. A **source** serves the recorded
calls of *other* runs (`AggregateSource.calls(query)`: the runtime's journal source,
`pilothouse.runtime.policy_source.JournalCalls`, reads them from any journal store; an
application may serve its own ledger); the engine filters them, adds this run's own
calls from the context (including calls allowed earlier in the same step) and the call
being checked, and compares. Sums are exact decimals. A source that raises denies the
call (fail-closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

from pilothouse.exceptions import PolicyCheckFailed
from pilothouse.messages import ToolCall
from pilothouse.policy.conditions import (
    CompiledConditions,
    ConditionEnv,
    bound_ref,
    condition,
)
from pilothouse.policy.context import CallRecord, RunContext
from pilothouse.policy.document import Path

__all__ = ["AggregateQuery", "AggregateSource", "Scope"]

Scope = Literal["session", "principal", "all"]
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    """What an aggregate asks its source for: the recorded calls of `tools` in the
    other runs of the scope (`exclude_run` is the run being checked: its calls come from
    the context), optionally only those at or after `since` (seconds since the epoch)."""

    tools: tuple[str, ...]
    over: Scope
    session: str | None
    principal: str | None
    since: float | None
    exclude_run: str | None
    key: tuple[tuple[str, Any], ...] = ()
    """The `per` arguments and this call's values: a source may serve only the calls
    with these arguments (an index); the engine filters again."""


class AggregateSource(Protocol):
    """Serves recorded calls of other runs to `aggregate` conditions (read-only)."""

    def calls(self, query: AggregateQuery) -> Iterable[CallRecord]: ...


def _number(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyCheckFailed(f"{what} is {value!r}, not a number")
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


@condition("aggregate")
def _aggregate(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``aggregate: {source, over, max, field, per, tool, ok, within}``: the count (or the
    sum of `field`) of matching calls in the scope, this call included, is at most `max`."""
    from pilothouse.policy.timing import duration

    keys = {"source", "over", "max", "field", "per", "tool", "ok", "within"}
    if not isinstance(spec, Mapping) or set(spec) - keys:
        raise env.error(at, f"aggregate has {sorted(keys)}")
    source = spec.get("source")
    if not isinstance(source, str) or source not in env.aggregates:
        known = ", ".join(env.aggregates) or "none declared"
        raise env.error((*at, "source"), f"unknown aggregate source {source!r} (known: {known})")
    over = spec.get("over")
    if over not in ("session", "principal", "all"):
        raise env.error((*at, "over"), "over must be session, principal or all")
    if "max" not in spec:
        raise env.error(at, "aggregate needs `max`")
    bound = bound_ref(spec["max"], (*at, "max"), env)
    fname = spec.get("field")
    if fname is not None and (not isinstance(fname, str) or not fname):
        raise env.error((*at, "field"), "field must be an argument name (its values are summed)")
    raw_per = spec.get("per") or []
    per: list[str] = [raw_per] if isinstance(raw_per, str) else raw_per
    if not isinstance(per, list) or not all(isinstance(p, str) for p in per):
        raise env.error((*at, "per"), "per must be an argument name or a list of them")
    raw_tool = spec.get("tool")
    tools = [raw_tool] if isinstance(raw_tool, str) else list(raw_tool or env.own_tools)
    if not tools or not all(isinstance(t, str) for t in tools):
        raise env.error((*at, "tool"), "tool must be a tool name or a list of them")
    if any(ch in t for t in tools for ch in "*?["):
        raise env.error((*at, "tool"), "an aggregate names its tools (no glob patterns)")
    ok = spec.get("ok")
    if ok is not None and not isinstance(ok, bool):
        raise env.error((*at, "ok"), "ok must be true, false or null (any)")
    window: float | None = None
    if spec.get("within") is not None:
        window = duration(spec["within"])
        if window is None:
            raise env.error((*at, "within"), "within must be a duration (90s, 15m, 24h, 30d)")
    out.arg_names.update([*(p for p in per), *([fname] if fname else [])])
    out.stateful = True
    out.aggregate_names.add(source)
    names = tuple(tools)
    src_name = source
    given = env.aggregates.get(source)  # the policy's own source, else the context's

    pairs_of = tuple(per)

    def counts(rec: CallRecord, key: list[Any], since: float | None) -> bool:
        a = rec.arguments
        for q, k in zip(pairs_of, key, strict=True):
            if q not in a or a[q] != k:
                return False
        if since is not None and rec.ts < since:
            return False
        if ok is True and not rec.ok:
            return False
        return not (ok is False and (rec.ok or rec.result is None))  # ran and failed

    def from_source(call: ToolCall, ctx: RunContext, key: list[Any]) -> tuple[int, Decimal]:
        """How many matching calls the other runs of the scope hold, and their sum."""
        if over == "session" and ctx.session is None:
            raise PolicyCheckFailed("an aggregate over the session needs a run in a session")
        if over == "principal" and ctx.principal.user is None:
            raise PolicyCheckFailed("an aggregate over the principal needs a principal's user")
        src = given
        if src is None and ctx.aggregates:
            src = ctx.aggregates.get(src_name)
        if src is None:
            raise PolicyCheckFailed(
                f"aggregate source {src_name!r} is not available to this run "
                "(give it to the policy context: `RunContext.aggregates`, or the agent's store)"
            )
        since = None if window is None else ctx.clock() - window
        query = AggregateQuery(
            names,
            over,
            ctx.session,
            ctx.principal.user,
            since,
            ctx.run_id,
            tuple(zip(pairs_of, key, strict=True)),
        )
        try:
            others = src.calls(query)
            if pairs_of:  # the key first, inline: a source may serve many other calls
                q0, k0 = pairs_of[0], key[0]
                others = [r for r in others if r.arguments.get(q0, _MISSING) == k0]
            matched = [r for r in others if r.name in names and counts(r, key, since)]
        except Exception as exc:
            raise PolicyCheckFailed(
                f"aggregate source {src_name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        total = Decimal(0)
        if fname is not None:
            for r in matched:
                total += _number(r.arguments.get(fname, 0), f"an earlier {r.name}'s {fname}")
        return len(matched), total

    def aggregate(call: ToolCall, ctx: RunContext) -> str | None:
        args = call.arguments
        for name in (*per, *([fname] if fname else [])):
            if name not in args:
                raise PolicyCheckFailed(
                    f"the policy aggregates over argument {name!r}, which the call lacks"
                )
        key = [args[p] for p in per]
        # the query as the journal names it: a replay serves the recorded answer to it
        asked = f"{src_name}:{over}:{'/'.join(names)}:{fname or ''}:{ok}:{window}:" + repr(
            tuple(zip(pairs_of, key, strict=True))
        )
        if ctx.replayed is not None:  # a replay: the answer the recorded check got
            recorded = ctx.replayed.get(call.id, {}).get(asked)
            if not isinstance(recorded, tuple):
                raise PolicyCheckFailed(
                    f"replay: the recording holds no answer of aggregate source {src_name!r} "
                    "for this call (the policy or the call changed)"
                )
            n_other, sum_other = recorded[0], Decimal(recorded[1])
        else:
            n_other, sum_other = from_source(call, ctx, key)
        if ctx.observed is None:
            ctx.observed = {}
        ctx.observed[asked] = (n_other, str(sum_other))
        since = None if window is None else ctx.clock() - window
        matched = [r for t in names for r in ctx.calls_named(t) if counts(r, key, since)]
        limit = _number(bound(call, ctx), "the bound")
        if fname is None:
            value = Decimal(n_other + len(matched) + 1)
            what = "calls"
        else:
            value = _number(args[fname], f"argument {fname}") + sum_other
            for r in matched:
                value += _number(r.arguments.get(fname, 0), f"an earlier {r.name}'s {fname}")
            what = f"total {fname}"
        if value <= limit:
            return None
        scope = ", ".join(f"{q}={k!r}" for q, k in zip(per, key, strict=True))
        kind = {True: "successful ", False: "failed ", None: ""}[ok]
        span = f" in the last {spec['within']}" if window is not None else ""
        return (
            f"{what} of {kind}{'/'.join(names)}{' for ' + scope if scope else ''} over the "
            f"{over if over != 'all' else 'whole deployment'}{span} would be {value:g} "
            f"(this call included), above {limit:g}"
        )

    out.checks.append(aggregate)
