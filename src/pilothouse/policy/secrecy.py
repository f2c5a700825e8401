"""Secrecy labels: a secret a tool returned may not leave through an egress tool.

`trusted` asks where a value came from; secrecy asks where a value may go. A policy
declares which result fields of which tools are secret (``tools: {get_passport:
{secret: [passport_number]}}``) and which tools send data out (``egress: true``, or
the arguments that do). Then a secret the run read (a passport number) in any egress
argument (a recipient, a message body, inside its text) is refused, unless the user's
request names it: the user wrote the value itself, or the words the declaration gives
for it (``secret: {passport_number: "passport"}``: "send my passport number to the
hotel"). The check is `leak`; the `no_secrets` condition runs it inside a rule, and the
engine runs it before any rule for a tool declared `egress`.

Unlike provenance, a leak is looked for *inside* text: a secret is found in a value
after normalisation (case, whitespace), and a long one also with its punctuation and
spaces removed ("X 123-4567" carries "X1234567"). A false alarm denies a call; a miss
leaks a secret, so containment is the safe direction here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.exceptions import PolicyCheckFailed
from pilothouse.messages import ToolCall
from pilothouse.policy.conditions import (
    CompiledConditions,
    ConditionEnv,
    condition,
)
from pilothouse.policy.context import CallRecord, RunContext
from pilothouse.policy.document import Path, secret_fields

__all__ = ["Secret", "leak", "secret_fields", "secrets_read"]

_WS = re.compile(r"\s+")
_NON_ALNUM = re.compile(r"[\W_]+")
MIN_CONTAINED = 4
"""A secret shorter than this (after normalisation) is matched as a whole value only."""
MIN_COMPACT = 6
"""A secret with at least this many letters and digits is also found with its
punctuation and spaces removed."""


@dataclass(frozen=True, slots=True)
class Secret:
    """One secret value the run read: where from, its normal and compact forms."""

    tool: str
    field: str
    text: str
    compact: str
    named_by: re.Pattern[str] | None


def _norm(value: Any) -> str:
    return _WS.sub(" ", str(value)).strip().casefold()


def _named_by(words: str | None) -> re.Pattern[str] | None:
    return None if words is None else re.compile(rf"\b(?:{words})\b", re.IGNORECASE)


def _record_secrets(
    rec: CallRecord, fields: Mapping[str, str | None], cache: dict[int, Any]
) -> list[Secret]:
    got = cache.get(id(rec))
    if got is not None and got[0] is rec:
        return list(got[1])
    from pilothouse.policy.provenance import field_values

    out: list[Secret] = []
    value = rec.value
    for path, words in fields.items():
        for leaf in field_values(value, path) if isinstance(value, Mapping | list) else []:
            if leaf is None or isinstance(leaf, bool):
                continue
            text = _norm(leaf)
            if text:
                out.append(Secret(rec.name, path, text, _NON_ALNUM.sub("", text), _named_by(words)))
    if rec.ok:  # final once it has run (a provisional record is read again)
        cache[id(rec)] = (rec, tuple(out))
    return out


def secrets_read(ctx: RunContext, declared: Mapping[str, Mapping[str, str | None]]) -> list[Secret]:
    """Every secret value the run's successful calls returned, per the declarations."""
    cache = ctx.secret_cache
    out: list[Secret] = []
    for tool, fields in declared.items():
        for rec in ctx.calls_named(tool):
            if rec.ok and rec.result is not None:
                out.extend(_record_secrets(rec, fields, cache))
    return out


def _carries(value: Any, secret: Secret) -> bool:
    from pilothouse.policy.provenance import field_values

    for leaf in field_values(value, ""):
        if leaf is None or isinstance(leaf, bool):
            continue
        text = _norm(leaf)
        if text == secret.text:
            return True
        if len(secret.text) >= MIN_CONTAINED and secret.text in text:
            return True
        if len(secret.compact) >= MIN_COMPACT and secret.compact in _NON_ALNUM.sub("", text):
            return True
    return False


def _user_named(ctx: RunContext, secret: Secret) -> bool:
    """The user's request names the secret: its value, or the declared words for it."""
    for m in ctx.user_messages:
        text = _norm(m)
        if secret.text in text or (
            len(secret.compact) >= MIN_COMPACT and secret.compact in _NON_ALNUM.sub("", text)
        ):
            return True
        if secret.named_by is not None and secret.named_by.search(m):
            return True
    return False


def leak(
    call: ToolCall,
    ctx: RunContext,
    declared: Mapping[str, Mapping[str, str | None]],
    names: Sequence[str] | None,
) -> str | None:
    """Why the call would send a secret out (None: it does not), checking the arguments
    `names` (None: all of them)."""
    if not declared:
        return None
    secrets = secrets_read(ctx, declared)
    if not secrets:
        return None
    args = call.arguments
    for n in names if names is not None else sorted(args):
        if n not in args:
            if names is not None:
                raise PolicyCheckFailed(
                    f"the policy has a secrecy condition on argument {n!r}, which the call lacks"
                )
            continue
        if n in ctx.unset:
            continue
        for s in secrets:
            if _carries(args[n], s) and not _user_named(ctx, s):
                return (
                    f"argument {n} carries the secret {s.field!r} read from tool {s.tool!r}; "
                    "it may be sent only when the user's request names it"
                )
    return None


@condition("no_secrets")
def _no_secrets(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
    """``no_secrets: true`` (every argument) or ``{args: [NAME, ...]}``: no argument
    carries a secret the run read (unless the user's request names it)."""
    names: list[str] | None
    if spec is True:
        names = None
    elif isinstance(spec, list) and all(isinstance(a, str) for a in spec):
        names = list(spec)
    elif (
        isinstance(spec, Mapping)
        and set(spec) == {"args"}
        and isinstance(spec["args"], list)
        and all(isinstance(a, str) for a in spec["args"])
    ):
        names = list(spec["args"])
    else:
        raise env.error(at, "no_secrets is true (every argument) or {args: [NAME, ...]}")
    if names is not None:
        out.arg_names.update(names)
    declared = env.secrets
    out.stateful = True

    def no_secrets(call: ToolCall, ctx: RunContext) -> str | None:
        return leak(call, ctx, declared, names)

    out.checks.append(no_secrets)
