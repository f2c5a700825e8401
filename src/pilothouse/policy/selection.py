"""Selections: the argument is the item a listing ranks first ("the largest file").

Provenance says where a value came from; it cannot say *which* of several trusted
values the user meant. "Find and delete the largest file" makes every file id the
drive listed trusted, so an injected "delete the file with ID '13'" names a trusted id
too. What the user asked for is a value condition relative to the listing: the id of
the item with the greatest size. `selected` says it declaratively:

    selected:
      file_id: {tool: list_files, key: id_, max: size}   # or min:; items: a path

The items are those the named tool(s) returned in this run (successful calls; a list
result's items, or the mappings at `items`, a dotted path with ``*``); the later call's
item wins for a key seen twice. The argument must equal (as a whole value, after
normalisation) the `key` of an item whose `max` (or `min`) field is the greatest (or
least) among them; ties: any of the tied items. Ranks are numbers (exact decimals) or,
when every rank is text, text in normal form (ISO dates and times sort as text). No
listing in the run, or ranks of mixed kinds, and the condition does not hold
(fail-closed). A task policy proposed from the request adds it
(`propose_from_request(selections=...)`), so a request that says "largest" narrows the
deletion to the largest item.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from pilothouse.messages import ToolCall
from pilothouse.policy.conditions import CompiledConditions, ConditionEnv, condition
from pilothouse.policy.context import RunContext
from pilothouse.policy.document import Path

__all__ = ["ranked_items"]

_KEYS = {"tool", "key", "max", "min", "items"}


def _rank(value: Any) -> Decimal | str | None:
    from pilothouse.policy.provenance import normalise

    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    text = normalise(value)
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def ranked_items(
    ctx: RunContext, tools: tuple[str, ...], items: str, key: str, by: str
) -> dict[Any, Any]:
    """Key -> rank of the items `tools` returned in this run (the later call's item wins)."""
    from pilothouse.policy.provenance import field_items

    out: dict[Any, Any] = {}
    for rec in sorted(
        (r for t in tools for r in ctx.calls_named(t) if r.ok and r.result is not None),
        key=lambda r: r.ts,
    ):
        for item in field_items(rec.value, items):
            if key in item and item[key] is not None and not isinstance(item[key], list | dict):
                out[item[key]] = _rank(item.get(by))
    return out


@condition("selected")
def _selected(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``selected: {ARG: {tool, key, max | min, items}}``: the argument is the key of the
    item ranked first by `max` (greatest) or `min` (least) among the tool's listings."""
    from pilothouse.policy.provenance import value_keys

    if not isinstance(spec, Mapping) or not spec:
        raise env.error(at, "selected maps an argument to {tool, key, max | min}")
    checks: list[tuple[str, tuple[str, ...], str, str, str, bool]] = []
    for arg, s in spec.items():
        where: Path = (*at, str(arg))
        if not isinstance(s, Mapping) or set(s) - _KEYS:
            raise env.error(where, f"a selection has {sorted(_KEYS)}")
        tool = s.get("tool")
        tools = (tool,) if isinstance(tool, str) else tuple(tool or ())
        if not tools or not all(isinstance(t, str) and t for t in tools):
            raise env.error((*where, "tool"), "tool must name the listing tool(s)")
        if ("max" in s) == ("min" in s):
            raise env.error(where, "a selection ranks by one field: `max` or `min`")
        by = s.get("max", s.get("min"))
        key = s.get("key")
        items = s.get("items", "")
        for name, v in (("key", key), ("max" if "max" in s else "min", by)):
            if not isinstance(v, str) or not v:
                raise env.error((*where, name), f"{name} must be a field name of the items")
        if not isinstance(items, str):
            raise env.error((*where, "items"), "items must be a dotted path ('' : the result)")
        checks.append((str(arg), tools, items, str(key), str(by), "max" in s))
    out.arg_names.update(c[0] for c in checks)
    out.stateful = True

    def selected(call: ToolCall, ctx: RunContext) -> str | None:
        for arg, tools, items, key, by, greatest in checks:
            if arg not in call.arguments:
                return f"the policy selects argument {arg!r}, which the call lacks"
            listed = ranked_items(ctx, tools, items, key, by)
            ranks = [r for r in listed.values() if r is not None]
            word = "largest" if greatest else "smallest"
            if not ranks:
                return (
                    f"argument {arg} must be the {word} {by} listed by {'/'.join(tools)}, "
                    "and nothing was listed in this run"
                )
            if len({type(r) for r in ranks}) > 1:
                return f"the {by} of the items {'/'.join(tools)} listed are not comparable"
            best = max(ranks) if greatest else min(ranks)
            winners = [k for k, r in listed.items() if r == best]
            mine = value_keys(call.arguments[arg])
            if any(mine & value_keys(k) for k in winners):
                continue
            return (
                f"argument {arg}={call.arguments[arg]!r} is not the item with the {word} {by} "
                f"that {'/'.join(tools)} listed (that is {', '.join(repr(k) for k in winners)})"
            )
        return None

    out.checks.append(selected)
