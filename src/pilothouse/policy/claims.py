"""Verified claims: who the principal has *proved* to be, and the `claims` condition.

A claim (``customer_id``) is set by an authentication tool's result (the document's
``claims:`` declares which tool and which result field), never by matching the
conversation's text: with "my id is mia_li_36689 and my friend is omar_davis_3817"
both ids are the user's words, but only the id `verify_identity` returned is a claim.
A condition then checks it: ``claims: {customer_id: $lookup.order.customer_id}``
("acts only on the verified customer's data").

Claims are derived, never stored: from the run's successful calls (`CallRecord.value`,
the result's structure read back from the journal's text) and from the principal
(journaled with the run: `Claim.principal` carries a claim an earlier run verified).
So `RunContext.from_events` on a journal (a resume, a replay, `pilothouse policy
check --trace`) gives the same claims the live run had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pilothouse.exceptions import PolicyCheckFailed
from pilothouse.messages import ToolCall
from pilothouse.policy.conditions import (
    CompiledConditions,
    ConditionEnv,
    bound_ref,
    condition,
)
from pilothouse.policy.context import RunContext
from pilothouse.policy.document import Claim, Path

__all__ = ["claim_values", "claims_of"]


def claim_values(ctx: RunContext, claim: Claim) -> list[Any]:
    """The distinct values a claim has in this run, in the order they were verified:
    the principal's (an earlier run's verification), then each successful call's."""
    from pilothouse.policy.provenance import field_values

    out: list[Any] = []
    seen: set[str | None] = set()

    def add(value: Any) -> None:
        if value is None or isinstance(value, dict | list | bool):
            return
        key = _key(value)
        if key and key not in seen:
            seen.add(key)
            out.append(value)

    if claim.principal is not None:
        add(ctx.principal.get(claim.principal))
    arg = claim.field[len("$args.") :] if claim.field.startswith("$args.") else None
    records = [r for t in claim.tool_names for r in ctx.calls_named(t)]
    records.sort(key=lambda r: r.ts)
    for rec in records:
        if not rec.ok or rec.result is None:
            continue  # failed, or allowed but not yet run: it verified nothing
        if arg is not None:
            add(rec.arguments.get(arg))
            continue
        value = rec.value
        if not isinstance(value, Mapping | list):
            continue  # a text result has no fields: nothing is read from its wording
        for leaf in field_values(value, claim.field)[:1]:
            add(leaf)
    return out


def _key(value: Any) -> str:
    """A claim value's comparison key: ids compare without case and outer whitespace
    (``c001`` is ``C001``), numbers by value (``7`` is ``7.0``)."""
    if isinstance(value, int | float):
        return repr(float(value))
    return " ".join(str(value).split()).casefold()


def claims_of(ctx: RunContext, claims: Mapping[str, Claim]) -> dict[str, Any]:
    """Every claim that holds (exactly one value) in this run: ``{"customer_id": "C001"}``.

    A claim with no value or with two conflicting values is left out. For the
    application (a router, a greeting); the policy checks claims with `claims:`."""
    out: dict[str, Any] = {}
    for name, claim in claims.items():
        values = claim_values(ctx, claim)
        if len(values) == 1:
            out[name] = values[0]
    return out


def _held(ctx: RunContext, name: str, claim: Claim) -> tuple[Any, str | None]:
    """The claim's one value, or why it does not hold."""
    values = claim_values(ctx, claim)
    if not values:
        return None, (
            f"no verified {name}: it is set only by a successful "
            f"{' or '.join(claim.tool_names)} call"
        )
    if len(values) > 1:
        shown = ", ".join(repr(v) for v in values)
        return None, f"the run verified conflicting {name} values ({shown}); none is trusted"
    return values[0], None


@condition("claims")
def _claims(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``claims: [NAME]`` (held) or ``{NAME: $args.x | $lookup.L.path | literal | SCHEMA}``:
    the principal's verified claim holds and equals the value (or satisfies the schema)."""
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, list):
        spec = dict.fromkeys(spec)
    if not isinstance(spec, Mapping) or not spec:
        raise env.error(at, "claims must list claim names or map them to a value or condition")
    for name, want in spec.items():
        where = (*at, str(name))
        claim = env.claims.get(str(name))
        if claim is None:
            known = ", ".join(sorted(env.claims)) or "none declared"
            raise env.error(where, f"unknown claim {name!r} (declared under `claims:`: {known})")
        test = env.schema(want, where) if isinstance(want, Mapping) else None
        ref = (
            bound_ref(want, where, env) if isinstance(want, str) and want.startswith("$") else None
        )
        literal = want
        out.stateful = True
        out.claim_names.add(str(name))

        def check(
            call: ToolCall,
            ctx: RunContext,
            n: str = str(name),
            claim: Claim = claim,
            test: Any = test,
            ref: Any = ref,
            literal: Any = literal,
        ) -> str | None:
            value, why = _held(ctx, n, claim)
            if why is not None:
                return why
            if test is not None:
                bad = test(value)
                return None if bad is None else f"verified {n}: {bad}"
            if ref is None and literal is None:
                return None
            other = ref(call, ctx) if ref is not None else literal
            if other is None:
                return f"verified {n} is {value!r}, and there is nothing to compare it with"
            if isinstance(other, dict | list):
                raise PolicyCheckFailed(f"claim {n} is compared with a {type(other).__name__}")
            if _key(value) == _key(other):
                return None
            return f"verified {n} is {value!r}, not {other!r}"

        out.checks.append(check)
