"""Fenced code in a reply: where its ``` fences are, and whether a place is outside them.

A reply that shows markup inside fenced code is an answer about that markup (a
documentation example), not a call or a leaked token; the gate and the readers look
past it with these.
"""

from __future__ import annotations

FENCE = "```"


def fence_positions(text: str) -> list[int]:
    """Where the text's ``` fences start (at most 128 of them: bounded work)."""
    out: list[int] = []
    pos = text.find(FENCE)
    while pos >= 0 and len(out) < 128:
        out.append(pos)
        pos = text.find(FENCE, pos + len(FENCE))
    return out


def outside_fences(pos: int, fences: list[int]) -> bool:
    """Whether `pos` is outside fenced code, given the positions of the fences."""
    return sum(1 for f in fences if f < pos) % 2 == 0
