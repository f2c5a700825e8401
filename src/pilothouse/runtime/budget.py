"""Hard limits on a run, and the loop detector.

Limits are checked before every model call; time is also enforced *during* model
and tool calls (they are cancelled at the deadline). Token and cost limits can be
overshot by at most the one call in flight, whose `max_tokens` is capped to what
remains of the token budget.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Literal

from pilothouse.messages import Usage, call_identity

# The limits of a `Budget` (a `run_stopped` event's reason when one ends a run).
BudgetLimit = Literal["steps", "tokens", "cost", "seconds"]


@dataclass(slots=True, frozen=True)
class Budget:
    """Limits for one run; `None` means unlimited. `max_repeats` drives loop detection."""

    max_steps: int | None = 20
    max_tokens: int | None = None
    max_seconds: float | None = None
    max_cost: float | None = None
    max_repeats: int = 3
    # a team's limit on transfers of control between its agents (pilothouse.teams)
    max_handoffs: int | None = None

    def exceeded(
        self, steps: int, usage: Usage, elapsed: float
    ) -> tuple[BudgetLimit, float, float] | None:
        """Return (limit, value, maximum) for the first limit reached, else None."""
        if self.max_steps is not None and steps >= self.max_steps:
            return "steps", steps, self.max_steps
        if self.max_tokens is not None and usage.total_tokens >= self.max_tokens:
            return "tokens", usage.total_tokens, self.max_tokens
        if self.max_cost is not None and usage.cost is not None and usage.cost >= self.max_cost:
            return "cost", usage.cost, self.max_cost
        if self.max_seconds is not None and elapsed >= self.max_seconds:
            return "seconds", round(elapsed, 3), self.max_seconds
        return None


def split_evenly(left: int, n: int, at: int) -> int:
    """The `at`-th of `n` even shares of `left` (none when nothing is left; the first
    ``left % n`` shares get one more): how calls, tasks or fan-out items that run at
    once split a parent's steps or tokens, so that together they get exactly what is
    left, and each the same share however the scheduler orders them."""
    left = max(0, left)
    return left // n + (1 if at < left % n else 0)


class LoopDetector:
    """Counts identical calls (same tool, same arguments) within one run."""

    __slots__ = ("_counts", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[Hashable, int] = {}

    def see(self, name: str, arguments: dict[str, Any]) -> int:
        """Record one call and return how many times it has now been made."""
        key = call_identity(name, arguments)  # the one definition of "the same call"
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count
