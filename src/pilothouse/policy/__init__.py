"""Deterministic privilege control for tool calls: `Policy.check(call, context) -> Decision`.

See `pilothouse.policy.engine` for the semantics and `pilothouse.policy.loader`
for the YAML form. The loop calls `Policy.check` once per tool call, after the
arguments are validated and before the tool runs.
"""

from __future__ import annotations

from pilothouse.policy.decision import Decision
from pilothouse.policy.engine import (
    Approver,
    CallRecord,
    Policy,
    Predicate,
    Principal,
    Rule,
    RunContext,
    ToolInfo,
    compile_schema,
)
from pilothouse.policy.propose import Proposal, propose_task_policy

__all__ = [
    "Approver",
    "CallRecord",
    "Decision",
    "Policy",
    "Predicate",
    "Principal",
    "Proposal",
    "Rule",
    "RunContext",
    "ToolInfo",
    "compile_schema",
    "propose_task_policy",
]
