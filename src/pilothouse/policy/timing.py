"""`now` and durations: the `age` condition, and the parsing both it and `aggregate` use.

"A return within 30 days of delivery", "a reservation cancelled less than 24 hours
after it was made": the policy reads *now* from the run context's clock
(`RunContext.clock`, `time.time` in a live run, any function in a test or a replay),
so a decision is deterministic given the clock. No condition reads the wall clock.

Durations are written ``90s``, ``15m``, ``24h``, ``30d``, ``2w`` (or a number of
seconds). A timestamp is a number (seconds since the epoch), an ISO date
(``2024-05-01``: midnight UTC) or an ISO date-time (``2024-05-01T12:00:00Z``; without
an offset it is UTC, never the machine's local time).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
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
from pilothouse.policy.document import Path

__all__ = ["duration", "seconds_since_epoch"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_EPOCH = re.compile(r"^\d{9,12}(?:\.\d+)?$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(value: Any) -> float | None:
    """A duration in seconds (``"30d"``, ``"24h"``, ``90``), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    return None


def seconds_since_epoch(value: Any) -> float:
    """A timestamp as seconds since the epoch (UTC); raises `PolicyCheckFailed` otherwise."""
    if isinstance(value, bool):
        raise PolicyCheckFailed(f"{value!r} is not a time")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _EPOCH.match(text):  # seconds since the epoch, written as text
            return float(text)
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise PolicyCheckFailed(f"{value!r} is not a time (ISO date or seconds)") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    raise PolicyCheckFailed(f"{value!r} is not a time (ISO date or seconds)")


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.4g}{unit}"
    return f"{seconds:.4g}s"


@condition("age")
def _age(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``age: {of: $lookup.order.placed, max: 30d, min: 1h}`` (or a list of them): the
    time from `of` to now (the context's clock) is at most `max` and at least `min`."""
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        raise env.error(at, "age needs {of, max and/or min}")
    for i, item in enumerate(items):
        where = (*at, i) if isinstance(spec, list) else at
        if not isinstance(item, Mapping) or set(item) - {"of", "max", "min"} or "of" not in item:
            raise env.error(where, "age has `of` (a $reference to a time) and `max` and/or `min`")
        if "max" not in item and "min" not in item:
            raise env.error(where, "age needs `max` and/or `min` (a duration: 30d, 24h, 15m)")
        of = item["of"]
        if not isinstance(of, str) or not of.startswith("$"):
            raise env.error((*where, "of"), "of must be a $reference ($lookup.order.placed)")
        when = bound_ref(of, (*where, "of"), env)
        limits: dict[str, float] = {}
        for key in ("max", "min"):
            if key in item:
                d = duration(item[key])
                if d is None:
                    raise env.error(
                        (*where, key), f"{key} must be a duration (90s, 15m, 24h, 30d, 2w)"
                    )
                limits[key] = d
        out.stateful = True

        def age(
            call: ToolCall,
            ctx: RunContext,
            when: Any = when,
            limits: dict[str, float] = limits,
            of: str = of,
        ) -> str | None:
            value = when(call, ctx)
            if value is None:
                return f"{of} has no time to measure from"
            elapsed = ctx.clock() - seconds_since_epoch(value)
            if "max" in limits and elapsed > limits["max"]:
                return (
                    f"{of} ({value}) was {_human(elapsed)} ago, more than {_human(limits['max'])}"
                )
            if "min" in limits and elapsed < limits["min"]:
                return (
                    f"{of} ({value}) was {_human(max(elapsed, 0.0))} ago, "
                    f"less than {_human(limits['min'])}"
                )
            return None

        out.checks.append(age)
