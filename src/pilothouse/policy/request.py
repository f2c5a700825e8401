"""Task policies from the request, without a model (issue #14 item 4, deterministic).

`propose_from_request(request, base, intents=..., roles=...)` narrows `base` for one
task from the user's words alone:

- **Consequential tools the request does not ask for are denied.** The application
  says, per `side_effect`/`irreversible` tool, which words ask for it (`intents`: a
  regular expression, searched case-insensitively in the request); a tool whose words
  the request does not contain gets a deny rule in the task layer. A tool without an
  entry in `intents` is left to `base` (the proposer cannot tell whether it is asked
  for, so it does not guess).
- **The item the request selects is the one acted on.** `selections` maps words (a
  regex: "largest|biggest") to, per tool, the `selected` condition they imply
  (``{"delete_file": {"file_id": {"tool": "list_files", "key": "id_", "max": "size"}}}``,
  see `policy.selection`); when the request has the words, the task layer denies that
  tool on any other item.
- **Values the user gave are bound to their roles.** `roles` maps a role to a regular
  expression whose first group is the value ("landlord's (?:account|iban) is (\\S+)"):
  each match is returned in `Proposal.bindings` (role -> values), for the principal's
  `roles` attribute (journaled with the run). A bound value is trusted only for the
  arguments that ask for its role (see docs/policy.md, *Provenance*).

The task layer is applied only when it narrows: with nothing to deny the proposal is
not accepted and `base` is used as is; a layer that would widen `base` cannot be built
(deny rules never widen, and the check of `Policy.narrow` still runs). Same input, same
proposal: nothing here depends on a model, a clock or the run.

    proposal = propose_from_request(
        "Pay my rent to my new landlord's account DE89370400440532013000",
        base, intents={"send_money": r"\\b(pay|send|transfer)\\b", "update_password": r"password"},
        roles={"landlord": r"landlord'?s? (?:account|iban)(?: is)? (\\S+)"},
    )
    principal = Principal("u", attributes={"roles": proposal.bindings})
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pilothouse.exceptions import PolicyError, PolicyLayerError
from pilothouse.policy.engine import Policy, Rule
from pilothouse.policy.propose import Proposal

#: At most this much of the request is read (the patterns are the application's).
MAX_REQUEST = 20_000


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise PolicyError(f"{what}: not a regular expression: {exc}") from None


def propose_from_request(
    request: str,
    base: Policy,
    *,
    intents: Mapping[str, str],
    roles: Mapping[str, str] | None = None,
    effects: Mapping[str, str] | None = None,
    selections: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> Proposal:
    """The task policy the request implies, applied to `base` only when it narrows it.

    `intents`: tool -> the words (a regex) that ask for it; `roles`: role -> a regex whose
    first group is a value the user gives for that role; `effects`: tool -> effect kind
    for tools `base` does not declare (the agent's tools carry it); `selections`: regex ->
    {tool: {argument: `selected` spec}}. Raises `PolicyError`
    only for a malformed pattern (the application's mistake, not the request's).
    """
    text = request[:MAX_REQUEST]
    kinds = {name: info.effect for name, info in base.tools.items()}
    kinds.update({k: v for k, v in (effects or {}).items() if k not in kinds})
    rules: list[Rule] = []
    for tool, pattern in sorted(intents.items()):
        rx = _compile(pattern, f"intents.{tool}")
        if kinds.get(tool) not in ("side_effect", "irreversible"):
            continue  # reading is never narrowed here: the request need not name it
        if rx.search(text) is None:
            rules.append(
                Rule(
                    tool,
                    "deny",
                    id=f"task-does-not-ask-for-{tool}",
                    description=f"the request does not ask for {tool}",
                    fallback={"message": f"The user's request does not ask for {tool}."},
                )
            )
    for pattern, chosen in sorted((selections or {}).items()):
        rx = _compile(pattern, f"selections[{pattern!r}]")
        if rx.search(text) is None:
            continue
        for tool, spec in sorted(chosen.items()):  # "the largest file": that one only
            rules.append(
                Rule(
                    tool,
                    "deny",
                    id=f"task-selects-{tool}",
                    description=f"the request selects which item {tool} acts on",
                    when={"not": {"selected": dict(spec)}},
                    fallback={
                        "message": f"The user's request selects which item {tool} acts on, "
                        "and this is not it."
                    },
                )
            )
    bindings: dict[str, list[str]] = {}
    for role, pattern in sorted((roles or {}).items()):
        rx = _compile(pattern, f"roles.{role}")
        if rx.groups < 1:
            raise PolicyError(f"roles.{role}: the pattern needs a group (the value)")
        for m in rx.finditer(text):
            value = (m.group(1) or "").strip().rstrip(".,;:!?")
            if value and value not in bindings.setdefault(role, []):
                bindings[role].append(value)
    bindings = {r: v for r, v in bindings.items() if v}
    if not rules:
        return _proposal(False, base, "not applied: the request asks for every tool", bindings)
    proposed = Policy(rules, name="task-from-request")
    try:
        layered = base.narrow(proposed)
    except PolicyLayerError as exc:  # cannot happen with deny rules; fail to base
        return _proposal(False, base, f"rejected: {exc}", bindings, proposed)
    names = {id(r): r.tools if isinstance(r.tools, str) else "/".join(r.tools) for r in rules}
    denied = ", ".join(names[id(r)] for r in rules if r.when is None)
    picked = ", ".join(names[id(r)] for r in rules if r.when is not None)
    said = "; ".join(
        x for x in (denied and f"denies {denied}", picked and f"selects the item of {picked}") if x
    )
    return _proposal(True, layered, f"accepted: {said}", bindings, proposed)


def _proposal(
    accepted: bool,
    policy: Policy,
    reason: str,
    bindings: dict[str, list[str]],
    proposed: Policy | None = None,
) -> Proposal:
    return Proposal(accepted, policy, reason, proposed, "", bindings)


def roles_attribute(bindings: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The principal attributes that carry `bindings` (``{"roles": {role: [values]}}``)."""
    return {"roles": {role: list(values) for role, values in bindings.items()}}
