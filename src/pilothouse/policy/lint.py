"""Static checks of a policy: what it names that does not exist, and what it cannot mean.

`lint(policy, tools)` returns findings; it never raises for a policy that loaded.
`tools` maps tool names to `ToolInfo` (the policy's own `tools:` section, a
tools.json of OpenAI function schemas, or an agent's tools: `tools_from_tools`).
It reports: patterns matching no tool, arguments a tool does not have, a tool the
policy declares with other arguments than the tool has, consequential tools no rule
can allow, predicates the document does not declare (or spelt like another one),
shadowed rules and allow/deny conflicts. `lint_yaml(text)` reads the YAML source for
what the parsed document has lost: ``yes``/``no``/``on``/``off`` read as booleans
where a string was meant (``enum: [yes, no]``).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from collections.abc import Collection, Iterable, Mapping
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


def tools_from_tools(tools: Iterable[Any]) -> dict[str, ToolInfo]:
    """Tool declarations from Pilothouse `Tool`s: effect kinds and argument names."""
    out: dict[str, ToolInfo] = {}
    for t in tools:
        params = getattr(t, "parameters", None) or {}
        out[t.name] = ToolInfo(
            t.effect, tuple(params.get("properties") or {}), tuple(params.get("required") or [])
        )
    return out


def lint(
    policy: Policy,
    tools: Mapping[str, ToolInfo] | None = None,
    *,
    stubbed: Collection[str] = (),
) -> list[Finding]:
    """Everything suspicious about `policy`, given the tools it is meant for.

    `stubbed`: predicate names the caller stood in for because it has no code for them
    (`pilothouse policy lint` without ``--predicates``): they are checked against the
    document's ``predicates:`` declaration and against each other's spelling.
    """
    known: dict[str, ToolInfo] = dict(policy.tools)
    for name, info in (tools or {}).items():
        mine = policy.tools.get(name)
        if mine is not None and info.effect == "unknown":
            info = ToolInfo(mine.effect, info.args, info.required, mine.trusted)
        known[name] = info
    findings: list[Finding] = []
    findings += _declared_args(policy, tools or {})
    findings += _predicates(policy, stubbed)
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
    findings += _never_allowed(policy, known)
    findings += _claims_and_secrets(policy, known)
    return findings


def _claims_and_secrets(policy: Policy, known: Mapping[str, ToolInfo]) -> list[Finding]:
    """Claims, secrecy labels and aggregate sources: what they name, and what uses them."""
    out: list[Finding] = []
    rules = policy.compiled_rules
    used_claims = {n for r in rules for n in r.claim_names}
    for name, claim in sorted(policy.claims.items()):
        for tool in claim.tool_names:
            info = known.get(tool)
            if known and info is None:
                out.append(Finding("error", None, f"claim {name!r}: no known tool {tool!r}"))
                continue
            arg = claim.field[len("$args.") :] if claim.field.startswith("$args.") else None
            if (
                info is not None
                and arg is not None
                and info.args is not None
                and (arg not in info.args)
            ):
                out.append(
                    Finding(
                        "error",
                        None,
                        f"claim {name!r}: {arg!r} is not an argument of {tool!r} "
                        f"(it has {list(info.args)})",
                    )
                )
            if info is not None and info.effect not in ("read_only", "unknown"):
                out.append(
                    Finding(
                        "warning",
                        None,
                        f"claim {name!r} is set by {info.effect} tool {tool!r}: an "
                        "authentication tool should only read",
                    )
                )
        if name not in used_claims:
            out.append(Finding("warning", None, f"claim {name!r} is declared but never used"))
    egress = {n: t for n, t in policy.tools.items() if t.egress}
    for name, info in sorted(egress.items()):
        if isinstance(info.egress, bool):
            continue
        have = known.get(name)
        args = have.args if have is not None and have.args is not None else info.args
        for arg in info.egress:
            if args is not None and arg not in args:
                out.append(
                    Finding(
                        "error",
                        None,
                        f"tool {name!r}: egress argument {arg!r} is not a parameter "
                        f"(it has {list(args)})",
                    )
                )
    if (
        policy.secrets
        and not egress
        and not any("no_secrets" in (r.when or {}) for r in policy.rules)
    ):
        out.append(
            Finding(
                "warning",
                None,
                f"secret fields are declared ({', '.join(sorted(policy.secrets))}) but no tool "
                "is declared `egress` and no rule has `no_secrets`: nothing keeps them in",
            )
        )
    used_sources = {n for r in rules for n in r.aggregate_names}
    for name in sorted(set(policy.declared_aggregates) - used_sources):
        out.append(
            Finding("warning", None, f"aggregate source {name!r} is declared but never used")
        )
    return out


def _declared_args(policy: Policy, tools: Mapping[str, ToolInfo]) -> list[Finding]:
    """The policy's `tools:` declarations against the tools themselves."""
    out: list[Finding] = []
    for name, mine in policy.tools.items():
        theirs = tools.get(name)
        if theirs is None or mine.args is None or theirs.args is None:
            continue
        missing = [a for a in mine.args if a not in theirs.args]
        extra = [a for a in theirs.args if a not in mine.args]
        if missing or extra:
            parts = [f"declares {list(mine.args)}", f"the tool has {list(theirs.args)}"]
            out.append(Finding("error", None, f"tool {name!r}: the policy " + ", ".join(parts)))
        elif set(mine.required) != set(theirs.required) and name in tools:
            out.append(
                Finding(
                    "warning",
                    None,
                    f"tool {name!r}: the policy declares required {list(mine.required)}, "
                    f"the tool requires {list(theirs.required)}",
                )
            )
    return out


def _predicates(policy: Policy, stubbed: Collection[str]) -> list[Finding]:
    """Predicates and lookups nobody can vouch for: undeclared, or spelt like another."""
    rules = policy.compiled_rules
    return _named(
        "predicate",
        sorted({n for r in rules for n in r.predicate_names}),
        set(policy.declared_predicates),
        stubbed,
    ) + _named(
        "lookup",
        sorted({n for r in rules for n in r.lookup_names}),
        set(policy.declared_lookups),
        stubbed,
    )


def _named(
    what: str, used: list[str], declared: set[str], stubbed: Collection[str]
) -> list[Finding]:
    out: list[Finding] = []
    unchecked: list[str] = []
    for name in used:
        if declared and name not in declared:
            near = difflib.get_close_matches(name, sorted(declared), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            out.append(Finding("error", None, f"unknown {what} {name!r}: not declared{hint}"))
        elif name in stubbed and not declared:
            others = [n for n in used if n != name]
            near = difflib.get_close_matches(name, others, n=1, cutoff=0.85)
            if near:
                out.append(
                    Finding(
                        "error",
                        None,
                        f"{what} {name!r} looks like a misspelling of {near[0]!r}",
                    )
                )
            else:
                unchecked.append(name)
    if unchecked:
        out.append(
            Finding(
                "warning",
                None,
                f"{what}(s) {', '.join(unchecked)} cannot be checked: declare the "
                f"{what}s under `{what}s:` or pass --{what}s",
            )
        )
    for name in sorted(declared - set(used)):
        out.append(Finding("warning", None, f"{what} {name!r} is declared but never used"))
    return out


def _never_allowed(policy: Policy, known: Mapping[str, ToolInfo]) -> list[Finding]:
    """Consequential tools that no rule can allow: every call of them is refused."""
    out: list[Finding] = []
    permitting = [r for r in policy.compiled_rules if r.effect != "deny"]
    for name, info in sorted(known.items()):
        if info.effect not in ("side_effect", "irreversible"):
            continue
        if policy.defaults.get(info.effect) != "deny":
            continue
        if not any(r.covers(name) for r in permitting):
            out.append(
                Finding(
                    "warning",
                    None,
                    f"{info.effect} tool {name!r} has no allow or ask rule: every call is "
                    "denied (add a rule, or remove the tool from the agent)",
                )
            )
    return out


_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n"}
_BOOLEAN_KEYS = {"confirmed", "ok", "uniqueItems"}  # where a YAML boolean is meant


def lint_yaml(text: str) -> list[Finding]:
    """What YAML turned into something else: ``yes``/``no``/``on``/``off`` as booleans.

    YAML 1.1 (PyYAML) reads unquoted ``yes``, ``no``, ``on``, ``off`` (any case) as
    booleans, so ``enum: [yes, no]`` holds True and False and never matches the strings
    the model sends. Reported with the line, except as the value of a key that takes a
    boolean (``confirmed``, ``ok``).
    """
    import yaml  # type: ignore[import-untyped,unused-ignore]

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []  # the loader reports syntax errors with their line
    out: list[tuple[int, int, Finding]] = []
    stack: list[tuple[Any, str | None]] = [(root, None)]
    while stack:
        node, key = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack.append((k, None))
                stack.append((v, k.value if isinstance(k, yaml.ScalarNode) else None))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, None) for item in node.value)
        elif (
            isinstance(node, yaml.ScalarNode)
            and node.tag == "tag:yaml.org,2002:bool"
            and node.style is None
            and str(node.value).lower() in _BOOL_WORDS
            and key not in _BOOLEAN_KEYS
        ):
            mark = node.start_mark
            message = (
                f"line {mark.line + 1}: {node.value} is read as the boolean "
                f"{str(node.value).lower() in ('yes', 'on', 'y')}; quote it "
                f"('{node.value}') if you meant the string"
            )
            out.append((mark.line, mark.column, Finding("warning", None, message)))
    return [f for _, _, f in sorted(out, key=lambda t: (t[0], t[1]))]


def describe_tools(tools: Mapping[str, ToolInfo]) -> dict[str, Any]:
    """Tools as plain data, for messages."""
    return {n: {"effect": t.effect, "args": list(t.args or ())} for n, t in tools.items()}
