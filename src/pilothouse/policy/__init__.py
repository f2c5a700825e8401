"""Deterministic privilege control for tool calls: `Policy.check(call, context) -> Decision`.

The package, one job per module:
- `context`: what the policy knows of a run (`Principal`, `CallRecord`, `RunContext`);
- `document`: the policy document's vocabulary (`Rule`, `ToolInfo`, keys, errors);
- `conditions`: the condition kinds of a rule's ``when``, a registry of compilers;
- `provenance`: values and where they came from (normalisation, entities, the index of
  a run's trusted values that `trusted` and `trusted_entities` read);
- `engine`: `Policy` (rules, check/decide, defaults, layers);
- `loader` (the YAML and mapping forms), `lint`, `replay` (a trace through a
  policy), `propose` (task policies a model proposes).
`Decision` lives on the floor (`pilothouse.decision`), since the journal carries it.
The loop calls `Policy.check` once per tool call, after the arguments are validated
and before the tool runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.decision import Decision
from pilothouse.policy.context import CallRecord, Lookup, Predicate, Principal, RunContext
from pilothouse.policy.document import Rule, ToolInfo
from pilothouse.policy.engine import Approver, Policy

if TYPE_CHECKING:
    from pilothouse.policy.conditions import compile_schema
    from pilothouse.policy.propose import Proposal, propose_task_policy
    from pilothouse.policy.request import propose_from_request

__all__ = [
    "Approver",
    "CallRecord",
    "Decision",
    "Lookup",
    "Policy",
    "Predicate",
    "Principal",
    "Proposal",
    "Rule",
    "RunContext",
    "ToolInfo",
    "compile_schema",
    "propose_from_request",
    "propose_task_policy",
]


def __getattr__(name: str) -> Any:
    # loaded on first use: the conditions with the first rule, `propose` with a proposal
    if name == "compile_schema":
        from pilothouse.policy.conditions import compile_schema

        return compile_schema
    if name in ("Proposal", "propose_task_policy"):
        from pilothouse.policy import propose

        return getattr(propose, name)
    if name == "propose_from_request":
        from pilothouse.policy.request import propose_from_request

        return propose_from_request
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
