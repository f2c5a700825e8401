"""The outcome of one policy check: allow, deny (with a fallback) or ask an approver.

A data type on the floor (beside `messages`): the journal's `tool_call` event
carries it, so `events` must not import the policy package above it. The policy
engine, the loop and the journal all use it; it imports nothing of Pilothouse.
`pilothouse.policy.decision` and `pilothouse.policy` re-export it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Effect = Literal["allow", "deny", "ask"]
Fallback = Literal["error", "abort", "ask"]
Source = Literal["rule", "default", "engine", "approver", "tool", "schema"]
"""Who decided: a policy rule, the default for the tool's effect kind, the engine
failing closed, an in-process approver, the tool's own ``interrupt="approval"``, or
the argument schema (policy replay)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one call, which rule decided it, and why.

    `source` says who decided (`Source`); `rule` is the id of the deciding rule, or
    ``default:<effect kind>`` when no rule applied (source ``default``), or ``engine``
    when the engine itself failed (fail-closed, source ``engine``). For a deny,
    `fallback` says what the loop does: hand the model `message` as an error result
    (``error``), stop the run (``abort``) or ask a human (``ask``). For ``ask``,
    `approver` names who should be asked.
    """

    effect: Effect
    rule: str | None = None
    reason: str = ""
    fallback: Fallback = "error"
    message: str = ""
    approver: str | None = None
    source: Source = "rule"
    observed: tuple[tuple[str, int, str], ...] = ()
    """What the check read beyond the run (an `aggregate` condition's answer from its
    source: the other runs' matching calls, as (query, count, sum)). Journaled with the
    decision, so a replay decides from the same answer (see `policy.aggregate`)."""
    looked_up: tuple[tuple[str, str], ...] = ()
    """What the check's `lookup` conditions read from the application, as (query, value
    as JSON text, or ``!`` and the error a lookup raised): the state a decision rested
    on, journaled with it, so a replay or an audit reads the same answers without the
    application's store (see `policy.conditions`)."""

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"

    @classmethod
    def allow(cls, rule: str | None = None, reason: str = "", source: Source = "rule") -> Decision:
        """An allow decision."""
        return cls("allow", rule, reason, source=source)

    @classmethod
    def deny(
        cls,
        reason: str,
        rule: str | None = None,
        fallback: Fallback = "error",
        message: str = "",
        source: Source = "rule",
    ) -> Decision:
        """A deny decision; `message` (default: the reason) is what the model reads."""
        return cls("deny", rule, reason, fallback, message, source=source)

    @classmethod
    def ask(
        cls, approver: str | None, reason: str, rule: str | None = None, source: Source = "rule"
    ) -> Decision:
        """A decision that needs an approver's yes before the call runs."""
        return cls("ask", rule, reason, "ask", "", approver, source)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"effect": self.effect, "rule": self.rule, "reason": self.reason}
        if self.source != "rule":
            d["source"] = self.source
        if self.effect != "allow":
            d["fallback"] = self.fallback
            if self.message:
                d["message"] = self.message
            if self.approver:
                d["approver"] = self.approver
        if self.observed:
            d["observed"] = [list(o) for o in self.observed]
        if self.looked_up:
            d["looked_up"] = [list(o) for o in self.looked_up]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        rule = d.get("rule") or ""
        # journals from before `source` existed: the rule id said it
        inferred: Source = (
            "default" if rule.startswith("default:") else "engine" if rule == "engine" else "rule"
        )
        return cls(
            d["effect"],
            d.get("rule"),
            d.get("reason", ""),
            d.get("fallback", "error"),
            d.get("message", ""),
            d.get("approver"),
            d.get("source", inferred),
            tuple(
                (str(o[0]), int(o[1]), str(o[2]))
                for o in d.get("observed") or ()
                if isinstance(o, list | tuple) and len(o) == 3
            ),
            tuple(
                (str(o[0]), str(o[1]))
                for o in d.get("looked_up") or ()
                if isinstance(o, list | tuple) and len(o) == 2
            ),
        )
