"""Several step hooks as one: tool retrieval decides the tools, compaction the view.

An agent has one `prepare_step`. `chain_hooks(a, b)` runs each hook on the same step
context and merges their `StepOptions` field by field; two hooks setting the same
field is a `ConfigurationError` (which one should win is the application's decision,
not an accident of order).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from pilothouse.exceptions import ConfigurationError
from pilothouse.runtime.step import PrepareStep, StepContext, StepOptions, call_maybe_async

__all__ = ["chain_hooks"]

_FIELDS = tuple(f.name for f in fields(StepOptions))


def chain_hooks(*hooks: PrepareStep) -> PrepareStep:
    """One `prepare_step` made of `hooks`, their options merged (no field set twice)."""

    async def chained(ctx: StepContext[Any]) -> StepOptions | None:
        merged: StepOptions | None = None
        setter: dict[str, int] = {}
        for i, hook in enumerate(hooks):
            options = await call_maybe_async(hook, ctx)
            if options is None:
                continue
            if not isinstance(options, StepOptions):
                raise ConfigurationError(
                    f"prepare_step hook {i} returned {type(options).__name__}, not StepOptions"
                )
            changes = {n: getattr(options, n) for n in _FIELDS if getattr(options, n) is not None}
            for name in changes:
                if name in setter:
                    raise ConfigurationError(
                        f"chained step hooks {setter[name]} and {i} both set {name!r}"
                    )
                setter[name] = i
            merged = replace(merged or StepOptions(), **changes)
        return merged

    return chained
