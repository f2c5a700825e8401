"""The old home of `Decision`; it lives on the floor now (`pilothouse.decision`).

Kept so `from pilothouse.policy.decision import Decision` still works.
"""

from __future__ import annotations

from pilothouse.decision import Decision, Effect, Fallback, Source

__all__ = ["Decision", "Effect", "Fallback", "Source"]
