"""The policy document: its vocabulary, its Python form and how its errors name a place.

A policy is written as a mapping (usually YAML, see `pilothouse.policy.loader`) or
in Python; both are made of the pieces defined here: `Rule` (one rule: tools,
effect, ``when`` conditions, priority, fallback), `ToolInfo` (a tool's declared
effect kind and arguments), the keys each level of the document may hold, and
`policy_error`, which turns a path inside the document into a `PolicyError` that
names the line when the document came from a file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pilothouse.exceptions import PolicyError

__all__ = [
    "DEFAULTS",
    "DEFAULT_CONFIRMATION",
    "EFFECT_KINDS",
    "RULE_KEYS",
    "TOP_KEYS",
    "Claim",
    "EffectKind",
    "Locate",
    "Path",
    "Rule",
    "RuleEffect",
    "ToolInfo",
    "policy_error",
    "secret_fields",
]

EffectKind = Literal["read_only", "side_effect", "irreversible", "unknown"]
RuleEffect = Literal["allow", "deny", "ask"]
EFFECT_KINDS: tuple[str, ...] = ("read_only", "side_effect", "irreversible", "unknown")
DEFAULTS: dict[str, RuleEffect] = {
    "read_only": "allow",
    "side_effect": "deny",
    "irreversible": "deny",
    "unknown": "deny",
}
"""What a policy decides for a tool no rule applies to, by effect kind: fail-closed."""
DEFAULT_CONFIRMATION = r"(?i)\b(yes|yep|yeah|confirm|confirmed)\b"

TOP_KEYS = (
    "version",
    "name",
    "description",
    "defaults",
    "tools",
    "rules",
    "confirmation",
    "predicates",
    "lookups",
    "claims",
    "aggregates",
    "roles",
)
RULE_KEYS = ("id", "tools", "effect", "when", "priority", "fallback", "description")

Path = tuple[str | int, ...]
"""A place inside the policy document: ``("rules", 2, "when", "args", "amount")``."""
Locate = Callable[[Path], int | None]
"""Maps a document path to its line in the source file (None: not from a file)."""


def secret_fields(spec: Any) -> dict[str, str | None]:
    """A tool's `secret:` declaration as {field path: words naming it (a regex) or None}."""
    if isinstance(spec, str):
        return {spec: None}
    if isinstance(spec, Mapping):
        return {str(k): (None if v is None else str(v)) for k, v in spec.items()}
    return dict.fromkeys(str(s) for s in spec)


def policy_error(where: Path, locate: Locate | None, message: str) -> PolicyError:
    """A `PolicyError` naming the line (when known), the document path and the reason."""
    line = locate(where) if locate else None
    at = ".".join(str(p) for p in where) or "(policy)"
    prefix = f"line {line}: " if line is not None else ""
    return PolicyError(f"{prefix}{at}: {message}")


@dataclass(slots=True)
class Rule:
    """One rule, in its Python form (the YAML form is the same fields as a mapping).

    `tools` are names or glob patterns; `when` holds conditions that must all hold
    for the rule to apply (see `pilothouse.policy.conditions` and the README for the
    kinds); `fallback` is ``"error"``, ``"abort"``, ``"ask"`` or ``{"action": ...,
    "message": ..., "approver": ...}``.
    """

    tools: str | Sequence[str]
    effect: RuleEffect = "allow"
    when: Mapping[str, Any] | None = None
    priority: int = 0
    fallback: str | Mapping[str, Any] = "error"
    id: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """A tool as a policy file declares it: effect kind, arguments, trusted result fields.

    `trusted` maps a field of the tool's structured result (a dotted path, ``*`` for
    every item of a list: ``sender``, ``emails.*.id``) to a role, or to None when the
    field's values may fill any argument a `trusted` condition checks. Every other part
    of a result is untrusted content. A list of paths is read as ``{path: None}``.
    """

    effect: str = "unknown"
    args: tuple[str, ...] | None = None
    required: tuple[str, ...] = ()
    trusted: Mapping[str, str | None] | Sequence[str] = ()
    secret: Mapping[str, str | None] | Sequence[str] = ()
    """Result field paths holding secrets (a passport number), each optionally mapped to
    the words (a regex) by which a user's request names it: see `policy.secrecy`."""
    egress: bool | Sequence[str] = False
    """The tool sends data out (an e-mail, a message, a payment): its arguments (all, or
    the ones named) may not carry a secret the run read, unless the user's words name it."""
    endorsed: Mapping[str, str] = field(default_factory=dict)
    """Content the user's request points at: result field path -> a regex with named
    groups ("the message from (?P<sender>\\w+) to (?P<recipient>\\w+)"). An item whose
    trusted fields named by the groups hold the values a user's message gives has that
    field read as the user's own words (see `policy.provenance`)."""

    @property
    def trusted_fields(self) -> dict[str, str | None]:
        """`trusted` as a mapping of field path to role (None: any argument)."""
        t = self.trusted
        return dict(t) if isinstance(t, Mapping) else dict.fromkeys(t)


@dataclass(frozen=True, slots=True)
class Claim:
    """Where one verified claim of the principal comes from (the document's `claims:`).

    A claim (``customer_id``) is set by an authentication tool's *result*, never by
    matching text: each successful call of one of `tools` sets it to the value at
    `field` (a dotted path of the structured result, as for trusted fields; or
    ``$args.NAME``: the argument the successful call verified). `principal` (``user``
    or an attribute) carries the claim across the runs of a conversation: the
    application puts the value it verified earlier there, and the principal is
    journaled with the run. Two different values in one run are a conflict: the claim
    does not hold (a second identity in one conversation is refused, not switched to).
    """

    tools: str | Sequence[str]
    field: str
    principal: str | None = None

    @property
    def tool_names(self) -> tuple[str, ...]:
        t = self.tools
        return (t,) if isinstance(t, str) else tuple(t)
