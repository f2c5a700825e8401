"""Static checks of a policy: unknown tools and arguments, shadowed rules, conflicts.

`lint(policy, tools)` returns findings; it never raises for a policy that loaded.
`tools` maps tool names to `ToolInfo` (the policy's own `tools:` section, a
tools.json of OpenAI function schemas, or an agent's tools).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.policy.document import ToolInfo
from pilothouse.policy.engine import CompiledRule, Policy


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding: ``error`` (the policy is wrong) or ``warning`` (probably wrong)."""

    level: str
    rule: str | None
    message: str

    def __str__(self) -> str:
        where = f"rule {self.rule!r}: " if self.rule else ""
        return f"{self.level}: {where}{self.message}"


def tools_from_openai_json(text: str) -> dict[str, ToolInfo]:
    """Tool declarations from a list of OpenAI function schemas (effects unknown)."""
    out: dict[str, ToolInfo] = {}
    for item in json.loads(text):
        fn = item.get("function", item)
        params = fn.get("parameters") or {}
        out[fn["name"]] = ToolInfo(
            "unknown", tuple(params.get("properties") or {}), tuple(params.get("required") or [])
        )
    return out


def _covers(a: str, b: str) -> bool:
    """Whether every name matching pattern `b` also matches pattern `a` (conservative)."""
    return a == b or a == "*" or (not any(c in b for c in "*?[") and fnmatch.fnmatchcase(b, a))


def _overlap(a: str, b: str) -> bool:
    return _covers(a, b) or _covers(b, a) or fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a)


def lint(policy: Policy, tools: Mapping[str, ToolInfo] | None = None) -> list[Finding]:
    """Everything suspicious about `policy`, given the tools it is meant for."""
    known: dict[str, ToolInfo] = {**policy.tools, **(tools or {})}
    findings: list[Finding] = []
    rules: list[CompiledRule] = policy.compiled_rules  # sorted: priority, deny first, order
    for rule in rules:
        matched: list[str] = []
        for pattern in rule.patterns:
            names = [n for n in known if fnmatch.fnmatchcase(n, pattern)]
            if known and not names:
                findings.append(Finding("error", rule.id, f"{pattern!r} matches no known tool"))
            matched.extend(names)
        for name in matched:
            args = known[name].args
            if args is None:
                continue
            for arg in sorted(rule.arg_names - set(args)):
                findings.append(
                    Finding(
                        "error",
                        rule.id,
                        f"argument {arg!r} is not a parameter of {name!r} (it has {list(args)})",
                    )
                )
    for i, rule in enumerate(rules):
        for earlier in rules[:i]:
            if not earlier.unconditional:
                continue
            if all(any(_covers(e, p) for e in earlier.patterns) for p in rule.patterns):
                findings.append(
                    Finding(
                        "warning",
                        rule.id,
                        f"never decides: rule {earlier.id!r} ({earlier.effect}, priority "
                        f"{earlier.priority}, no conditions) always applies first",
                    )
                )
                break
    for i, a in enumerate(rules):
        for b in rules[i + 1 :]:
            if a.priority != b.priority or {a.effect, b.effect} != {"allow", "deny"}:
                continue
            if a.unconditional or b.unconditional:
                continue  # reported as shadowing, or a plain exception to a rule
            if any(_overlap(p, q) for p in a.patterns for q in b.patterns):
                findings.append(
                    Finding(
                        "warning",
                        b.id if b.effect == "allow" else a.id,
                        f"conflicts with rule {(a if b.effect == 'allow' else b).id!r} at "
                        f"priority {a.priority}: when both apply, deny wins; give one a "
                        "higher priority to make the intent explicit",
                    )
                )
    return findings


def describe_tools(tools: Mapping[str, ToolInfo]) -> dict[str, Any]:
    """Tools as plain data, for messages."""
    return {n: {"effect": t.effect, "args": list(t.args or ())} for n, t in tools.items()}
