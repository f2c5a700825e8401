"""The policy engine: deterministic, fail-closed checks of every tool call.

The engine decides; the pieces it decides with live beside it: the run context
(`pilothouse.policy.context`), the document's vocabulary and `Rule`
(`pilothouse.policy.document`), the condition kinds (`pilothouse.policy.conditions`,
a registry) and the YAML form (`pilothouse.policy.loader`).

A `Policy` is a list of `Rule`s plus defaults per effect kind. `Policy.check(call,
context, effect=...)` returns a `Decision`; no model is involved. Rules are
compiled once (when the policy is built) into small closures, and the rules that
concern a tool name are looked up once per name and cached, so a call to a tool
no rule mentions costs one dictionary lookup.

Semantics, in order:
0. A tool the document declares `egress` is checked for secrets first: a secret the run
   read (a declared `secret` result field) in its arguments denies the call, unless the
   user's request names it (`pilothouse.policy.secrecy`).
1. The rules whose ``tools`` (names or glob patterns) match the call are taken in
   order of priority (high first); at equal priority ``deny`` comes before ``ask``
   before ``allow`` (deny wins ties). The first rule whose conditions all hold
   decides.
2. If none holds, the default for the tool's effect kind decides (``read_only``:
   allow, ``side_effect``/``irreversible``/``unknown``: deny, unless configured).
   A default deny names the allow rules that did not apply and why, and uses the
   fallback of the first of them, so the model learns what to do.
3. Anything that goes wrong inside the engine (a predicate that raises, a
   condition naming an argument the call lacks, a bug) is a deny whose reason
   says what happened: the engine fails closed.
4. Layers (`Policy.narrow`): every layer is checked; the most restrictive answer
   wins. A lower layer without explicit defaults abstains when none of its rules
   applies. Building a layer that would allow what its parent denies raises
   `PolicyLayerError`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from pilothouse.decision import Decision, Fallback
from pilothouse.exceptions import PolicyCheckFailed, PolicyError, PolicyLayerError
from pilothouse.messages import ToolCall
from pilothouse.policy.context import CallRecord, Lookup, Predicate, Principal, RunContext
from pilothouse.policy.document import (
    DEFAULT_CONFIRMATION,
    DEFAULTS,
    EFFECT_KINDS,
    RULE_KEYS,
    Claim,
    EffectKind,
    Locate,
    Path,
    Rule,
    RuleEffect,
    ToolInfo,
    policy_error,
)

if TYPE_CHECKING:
    from pilothouse.policy.conditions import Check, compile_schema

__all__ = [
    # where they used to be defined (kept importable from here; prefer `pilothouse.policy`)
    "DEFAULT_CONFIRMATION",
    "EFFECT_KINDS",
    "RULE_KEYS",
    # the engine's own names
    "Approver",
    "CallRecord",
    "CompiledRule",
    "EffectKind",
    "Locate",
    "Path",
    "Policy",
    "Predicate",
    "Principal",
    "Rule",
    "RuleEffect",
    "RunContext",
    "ToolInfo",
    "compile_rule",
    "compile_schema",
]

_RANK = {"deny": 0, "ask": 1, "allow": 2}

Approver = Callable[[ToolCall, Decision, RunContext], bool | Awaitable[bool]]


def __getattr__(name: str) -> Any:
    # `compile_schema` and the condition names load with the first rule compiled
    if name in ("compile_schema", "compile_conditions", "CONDITION_KEYS", "SCHEMA_KEYWORDS"):
        from pilothouse.policy import conditions

        return getattr(conditions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- rules


@dataclass(slots=True)
class CompiledRule:
    """A rule compiled: its checks, what they read, and the decision it gives."""

    id: str
    patterns: tuple[str, ...]
    effect: RuleEffect
    priority: int
    checks: list[Check]
    fallback: Fallback
    message: str
    approver: str | None
    arg_names: set[str]
    predicate_names: set[str]
    lookup_names: set[str]
    stateful: bool
    claim_names: set[str]
    aggregate_names: set[str]
    unconditional: bool
    order: int
    decision: Decision | None = None  # what the rule decides when it applies (built once)

    def covers(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)


def compile_rule(
    rule: Rule,
    index: int,
    predicates: Mapping[str, Predicate],
    locate: Locate | None,
    confirmation: str,
    trust: Mapping[str, Mapping[str, str | None]] | None = None,
    lookups: Mapping[str, Lookup] | None = None,
    *,
    claims: Mapping[str, Claim] | None = None,
    secrets: Mapping[str, Mapping[str, str | None]] | None = None,
    aggregates: Mapping[str, Any] | None = None,
) -> CompiledRule:
    """Check one rule's fields and compile its conditions (raises `PolicyError`)."""
    # loads with the first rule, with the kinds that have modules of their own
    from pilothouse.policy import aggregate as _k1  # noqa: F401
    from pilothouse.policy import claims as _k2  # noqa: F401
    from pilothouse.policy import secrecy as _k3  # noqa: F401
    from pilothouse.policy import selection as _k5  # noqa: F401
    from pilothouse.policy import timing as _k4  # noqa: F401
    from pilothouse.policy.conditions import compile_conditions

    where: Path = ("rules", index)
    tools: Any = rule.tools  # a document may hold anything here
    patterns = [tools] if isinstance(tools, str) else tools
    if (
        not isinstance(patterns, (list, tuple))
        or not patterns
        or not all(isinstance(p, str) and p for p in patterns)
    ):
        raise policy_error(
            (*where, "tools"), locate, "tools must be a name, a glob or a list of them"
        )
    if rule.effect not in _RANK:
        raise policy_error((*where, "effect"), locate, "effect must be allow, deny or ask")
    if not isinstance(rule.priority, int) or isinstance(rule.priority, bool):
        raise policy_error((*where, "priority"), locate, "priority must be an integer")
    fb = rule.fallback
    if isinstance(fb, str):
        fb = {"action": fb}
    if not isinstance(fb, Mapping):
        raise policy_error(
            (*where, "fallback"), locate, "fallback must be error, abort, ask or a mapping"
        )
    unknown = set(fb) - {"action", "message", "approver"}
    if unknown:
        raise policy_error((*where, "fallback"), locate, f"unknown key(s) {sorted(unknown)}")
    action = fb.get("action", "error")
    if action not in ("error", "abort", "ask"):
        raise policy_error(
            (*where, "fallback", "action"), locate, "action must be error, abort or ask"
        )
    message = fb.get("message", "")
    if not isinstance(message, str):
        raise policy_error((*where, "fallback", "message"), locate, "message must be a string")
    compiled = compile_conditions(
        rule.when,
        (*where, "when"),
        predicates,
        patterns,
        locate,
        confirmation,
        trust,
        lookups,
        claims=claims,
        secrets=secrets,
        aggregates=aggregates,
    )
    return CompiledRule(
        id=rule.id or f"rule{index}",
        patterns=tuple(patterns),
        effect=rule.effect,
        priority=rule.priority,
        checks=compiled.checks,
        fallback=cast(Fallback, action),
        message=message,
        approver=fb.get("approver"),
        arg_names=compiled.arg_names,
        predicate_names=compiled.predicate_names,
        lookup_names=compiled.lookup_names,
        stateful=compiled.stateful,
        claim_names=compiled.claim_names,
        aggregate_names=compiled.aggregate_names,
        unconditional=not compiled.checks,
        order=index,
    )


# --------------------------------------------------------------------------- policy


def _with_observed(decision: Decision, context: RunContext) -> Decision:
    """The decision with what its check read from aggregate sources and lookups
    (journaled with it)."""
    seen, looked = context.observed, context.looked_up
    context.observed = context.looked_up = None
    if not seen and not looked:
        return decision
    return replace(
        decision,
        observed=tuple((q, n, t) for q, (n, t) in sorted(seen.items())) if seen else (),
        looked_up=tuple(sorted(looked.items())) if looked else (),
    )


class Policy:
    """Deterministic privilege control for tool calls. See the module docs for semantics.

    Build from Python (`Policy([Rule(...)], ...)`), from a mapping (`from_dict`) or
    from YAML (`from_yaml`, `load`); all three compile to the same engine. Building
    raises `PolicyError` for anything malformed.
    """

    replayed: Mapping[str, Mapping[str, Any]] | None = None
    """A replay's record of what each check read (call id -> query -> an aggregate
    source's (count, sum) or a lookup's recorded value, see
    `RunContext.recorded_answers`): set on the replay's copy of the policy, so a
    replayed check decides from what the recorded check read, not from stores that no
    longer hold the same state."""

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        defaults: Mapping[str, str] | None = None,
        predicates: Mapping[str, Predicate] | None = None,
        tools: Mapping[str, ToolInfo] | None = None,
        approvers: Mapping[str, Approver] | None = None,
        confirmation: str = DEFAULT_CONFIRMATION,
        name: str = "policy",
        declared_predicates: Iterable[str] = (),
        lookups: Mapping[str, Lookup] | None = None,
        declared_lookups: Iterable[str] = (),
        claims: Mapping[str, Claim] | None = None,
        aggregates: Mapping[str, Any] | None = None,
        declared_aggregates: Iterable[str] = (),
        roles: Mapping[str, str] | None = None,
        _locate: Locate | None = None,
    ) -> None:
        self.name = name
        self.claims: dict[str, Claim] = dict(claims or {})
        # name -> AggregateSource the application serves (the loop adds "journal")
        self.aggregates: dict[str, Any] = dict(aggregates or {})
        self.declared_aggregates: tuple[str, ...] = tuple(declared_aggregates)
        self.predicates: dict[str, Predicate] = dict(predicates or {})
        self.declared_predicates: tuple[str, ...] = tuple(declared_predicates)
        self.lookups: dict[str, Lookup] = dict(lookups or {})
        self.declared_lookups: tuple[str, ...] = tuple(declared_lookups)
        self.tools: dict[str, ToolInfo] = dict(tools or {})
        # tool -> {trusted result field -> role}: what provenance conditions may trust
        self.trust: dict[str, dict[str, str | None]] = {
            n: t.trusted_fields for n, t in self.tools.items() if t.trusted
        }
        # roles bound from the user's words ("my landlord's account is X"): X is trusted
        # only for arguments that ask for the role (see `policy.provenance`)
        self.roles: dict[str, str] = dict(roles or {})
        if self.roles:
            from pilothouse.policy.provenance import REQUEST_ROLES

            self.trust[REQUEST_ROLES] = dict(self.roles)
        # content the user's request points at ("the message from Bob to Alice")
        endorsed: dict[str, str | None] = {
            f"{n}\t{path}": pattern
            for n, t in self.tools.items()
            for path, pattern in t.endorsed.items()
        }
        if endorsed:
            from pilothouse.policy.provenance import ENDORSED

            self.trust[ENDORSED] = endorsed
        from pilothouse.policy.document import secret_fields

        # tool -> {secret result field -> words naming it}; tool -> egress arguments
        self.secrets: dict[str, dict[str, str | None]] = {
            n: secret_fields(t.secret) for n, t in self.tools.items() if t.secret
        }
        self._egress: dict[str, tuple[str, ...] | None] = {
            n: (None if t.egress is True else tuple(t.egress))
            for n, t in self.tools.items()
            if t.egress
        }
        self.approvers: dict[str, Approver] = dict(approvers or {})
        self.explicit_defaults = defaults is not None
        merged = dict(DEFAULTS)
        for kind, value in (defaults or {}).items():
            if kind not in DEFAULTS:
                raise policy_error(
                    ("defaults", kind), _locate, f"unknown effect kind; use {EFFECT_KINDS}"
                )
            if value not in ("allow", "deny", "ask"):
                raise policy_error(("defaults", kind), _locate, "must be allow, deny or ask")
            merged[kind] = cast(RuleEffect, value)
        self.defaults: dict[str, RuleEffect] = merged
        self.rules: list[Rule] = list(rules)
        for cname, claim in self.claims.items():
            if not isinstance(claim, Claim) or not claim.tool_names or not claim.field:
                raise policy_error(("claims", cname), _locate, "a claim needs `tool` and `field`")
        # the sources a rule may name: declared, given, and the runtime's journal
        usable = {
            "journal": None,
            **dict.fromkeys(self.declared_aggregates),
            **self.aggregates,
        }
        compiled = [
            compile_rule(
                r,
                i,
                self.predicates,
                _locate,
                confirmation,
                self.trust,
                self.lookups,
                claims=self.claims,
                secrets=self.secrets,
                aggregates=usable,
            )
            for i, r in enumerate(self.rules)
        ]
        seen: set[str] = set()
        for c in compiled:
            if c.id in seen:
                raise policy_error(
                    ("rules", c.order, "id"), _locate, f"two rules have the id {c.id!r}"
                )
            seen.add(c.id)
        compiled.sort(key=lambda c: (-c.priority, _RANK[c.effect], c.order))
        for c in compiled:
            c.decision = self._apply(c)  # decisions are immutable: build each once
        self._compiled = compiled
        self._by_name: dict[str, tuple[CompiledRule, ...]] = {}
        self._default_decisions: dict[str, Decision] = {
            kind: self._default(kind, value) for kind, value in self.defaults.items()
        }
        self._lower: tuple[Policy, ...] = ()
        self.stateful = any(c.stateful for c in compiled)

    @staticmethod
    def _default(kind: str, value: RuleEffect) -> Decision:
        if value == "allow":
            return Decision.allow(
                f"default:{kind}", f"{kind} tools are allowed by default", source="default"
            )
        if value == "ask":
            return Decision.ask(
                None, f"{kind} tools need approval by default", f"default:{kind}", "default"
            )
        return Decision.deny(
            f"{kind} tools are denied unless a rule allows them, and no rule does",
            f"default:{kind}",
            source="default",
        )

    @property
    def compiled_rules(self) -> list[CompiledRule]:
        """This layer's rules as compiled, in decision order (priority, deny first, order)."""
        return list(self._compiled)

    def __repr__(self) -> str:
        layers = f", layers={len(self._lower) + 1}" if self._lower else ""
        return f"Policy({self.name!r}, rules={len(self.rules)}{layers})"

    # -- construction helpers

    @classmethod
    def allow_all(cls) -> Policy:
        """A policy that allows every call (what agents did before policies existed)."""
        return cls(defaults={k: "allow" for k in EFFECT_KINDS}, name="allow_all")

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        predicates: Mapping[str, Predicate] | None = None,
        approvers: Mapping[str, Approver] | None = None,
        locate: Locate | None = None,
        lookups: Mapping[str, Lookup] | None = None,
        aggregates: Mapping[str, Any] | None = None,
    ) -> Policy:
        """Build from the mapping form (what a YAML policy file holds)."""
        from pilothouse.policy.loader import read_mapping

        spec = read_mapping(data, locate)
        return cls(
            spec.rules,
            defaults=spec.defaults,
            predicates=predicates,
            tools=spec.tools,
            approvers=approvers,
            confirmation=spec.confirmation,
            name=spec.name,
            declared_predicates=spec.predicates,
            lookups=lookups,
            declared_lookups=spec.lookups,
            claims=spec.claims,
            aggregates=aggregates,
            declared_aggregates=spec.aggregates,
            roles=spec.roles,
            _locate=locate,
        )

    @classmethod
    def from_yaml(
        cls,
        text: str,
        *,
        predicates: Mapping[str, Predicate] | None = None,
        approvers: Mapping[str, Approver] | None = None,
        source: str = "<policy>",
        lookups: Mapping[str, Lookup] | None = None,
        aggregates: Mapping[str, Any] | None = None,
    ) -> Policy:
        """Parse a YAML policy; errors name `source`, the line and the reason."""
        from pilothouse.policy.loader import locator, parse_yaml

        data, lines = parse_yaml(text, source)
        try:
            return cls.from_dict(
                data,
                predicates=predicates,
                approvers=approvers,
                locate=locator(lines),
                lookups=lookups,
                aggregates=aggregates,
            )
        except PolicyError as exc:
            raise PolicyError(f"{source}: {exc}") from None

    @classmethod
    def load(
        cls,
        path: str | Any,
        *,
        predicates: Mapping[str, Predicate] | None = None,
        approvers: Mapping[str, Approver] | None = None,
        lookups: Mapping[str, Lookup] | None = None,
        aggregates: Mapping[str, Any] | None = None,
    ) -> Policy:
        """Read a YAML policy file."""
        from pathlib import Path as _P

        p = _P(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{p}: cannot read the policy file ({exc})") from None
        return cls.from_yaml(
            text,
            predicates=predicates,
            approvers=approvers,
            source=str(p),
            lookups=lookups,
            aggregates=aggregates,
        )

    # -- layers

    def narrow(self, lower: Policy) -> Policy:
        """This policy with `lower` as a further layer; raises if `lower` would widen it."""
        problems = self.widening(lower)
        if problems:
            raise PolicyLayerError(
                f"layer {lower.name!r} may only narrow {self.name!r}: " + "; ".join(problems)
            )
        # The lower layer reads the trusted result fields the layers above declare (a task
        # policy a model proposes has no `tools:`), unless it declares the tool itself. Its
        # compiled conditions hold its `trust` mapping, so it is filled in place. This
        # cannot widen: every layer is checked and the most restrictive answer wins.
        for layer in (self, *self._lower):
            for tool_name, fields in layer.trust.items():
                lower.trust.setdefault(tool_name, fields)
        layered = Policy.__new__(Policy)
        for slot in (
            "name",
            "predicates",
            "declared_predicates",
            "lookups",
            "declared_lookups",
            "tools",
            "trust",
            "claims",
            "roles",
            "aggregates",
            "declared_aggregates",
            "secrets",
            "explicit_defaults",
            "defaults",
            "rules",
            "_compiled",
            "_default_decisions",
        ):
            setattr(layered, slot, getattr(self, slot))
        layered.approvers = {**self.approvers, **lower.approvers}
        layered._egress = {**lower._egress, **self._egress}
        layered._by_name = {}
        layered._lower = (*self._lower, lower)
        layered.stateful = self.stateful or lower.stateful
        layered.name = f"{self.name}+{lower.name}"
        return layered

    @classmethod
    def layered(cls, *layers: Policy) -> Policy:
        """Organisation, application, task, ...: each layer may only narrow the one above."""
        if not layers:
            raise PolicyError("layered() needs at least one policy")
        top = layers[0]
        for lower in layers[1:]:
            top = top.narrow(lower)
        return top

    def widening(self, lower: Policy) -> list[str]:
        """Why `lower` is not a pure narrowing of this policy (empty when it is)."""
        problems: list[str] = []
        layers = (self, *self._lower)
        if lower.explicit_defaults:
            for kind, value in lower.defaults.items():
                upper = max((p.defaults[kind] for p in layers), key=lambda v: -_RANK[v])
                if _RANK[value] > _RANK[upper]:
                    problems.append(f"default for {kind} tools is {value}, above {upper}")
        for rule in lower._compiled:
            if rule.effect == "deny":
                continue
            for pattern in rule.patterns:
                for layer in layers:
                    why = layer._denies_pattern(pattern, rule.effect)
                    if why:
                        problems.append(f"rule {rule.id!r} {rule.effect}s {pattern!r}, but {why}")
        return problems

    def _denies_pattern(self, pattern: str, effect: RuleEffect) -> str | None:
        """Why this layer denies calls matching `pattern` outright, or None if it may not."""
        for c in self._compiled:
            if (
                c.effect == "deny"
                and c.unconditional
                and any(fnmatch.fnmatchcase(pattern, p) for p in c.patterns)
            ):
                return f"rule {c.id!r} of {self.name!r} denies it unconditionally"
        known = [n for n in self.tools if fnmatch.fnmatchcase(n, pattern)]
        candidates = [c for c in self._compiled if c.effect != "deny"]
        for n in known:
            kind = self.tools[n].effect
            if self.defaults.get(kind, "deny") == "deny" and not any(
                c.covers(n) for c in candidates
            ):
                return f"{self.name!r} denies {kind} tool {n!r} and has no rule allowing it"
        return None

    # -- checking

    def _rules_for(self, name: str) -> tuple[CompiledRule, ...]:
        rules = tuple(c for c in self._compiled if c.covers(name))
        if len(self._by_name) < 4096:
            self._by_name[name] = rules
        return rules

    def has_rules(self, name: str) -> bool:
        """Whether any rule (in any layer) concerns this tool name."""
        rules = self._by_name.get(name)
        if rules is None:
            rules = self._rules_for(name)
        if rules or not self._lower:
            return bool(rules)
        return any(p.has_rules(name) for p in self._lower)

    def check(self, call: ToolCall, context: RunContext, *, effect: str | None = None) -> Decision:
        """Decide one call (arguments already validated, defaults bound). Never raises."""
        try:
            if self._egress and call.name in self._egress:
                leaked = self._leak(call, context)
                if leaked is not None:
                    return leaked
            kind = effect if effect is not None else self._effect_of(call.name)
            if not self._lower:
                rules = self._by_name.get(call.name)
                if rules is None:
                    rules = self._rules_for(call.name)
                if not rules:
                    return self._default_decisions.get(kind) or self._default_decisions["unknown"]
                # every condition of this check sees one answer per lookup (no torn reads)
                context.lookup_memo = {}
                context.observed = context.looked_up = None
                context.held = []
                if self.replayed is not None:
                    context.replayed = self.replayed
                try:
                    decided = self._decide(rules, call, context, kind, True)
                finally:
                    context.lookup_memo = context.held = None
                return _with_observed(cast(Decision, decided), context)
            context.lookup_memo = {}
            context.observed = context.looked_up = None
            context.held = []
            if self.replayed is not None:
                context.replayed = self.replayed
            try:
                decided = self._layered_decision(call, context, kind)
            finally:
                context.lookup_memo = context.held = None
            return _with_observed(decided, context)
        except Exception as exc:
            return Decision.deny(
                f"policy engine error ({type(exc).__name__}: {exc}); denied (fail-closed)",
                "engine",
                source="engine",
            )

    def _leak(self, call: ToolCall, context: RunContext) -> Decision | None:
        """The secrecy check of an egress tool, before any rule (see `policy.secrecy`)."""
        from pilothouse.policy.secrecy import leak

        secrets = dict(self.secrets)
        for layer in self._lower:
            for n, fields in layer.secrets.items():
                secrets.setdefault(n, fields)
        try:
            why = leak(call, context, secrets, self._egress[call.name])
        except PolicyCheckFailed as exc:
            why = str(exc)
        if why is None:
            return None
        return Decision.deny(f"{call.name} sends data out: {why}", "secrecy", source="rule")

    def _layered_decision(self, call: ToolCall, context: RunContext, kind: str) -> Decision:
        """Every layer decides; the most restrictive answer wins."""
        decisions: list[Decision] = []
        for layer in (self, *self._lower):
            d = layer._layer_decision(call, context, kind, layer is self)
            if d is None:
                continue
            if d.effect == "deny":
                return d
            decisions.append(d)
        asks = [d for d in decisions if d.effect == "ask"]
        if asks:
            return asks[0]
        return decisions[0]

    def _effect_of(self, name: str) -> str:
        info = self.tools.get(name)
        return info.effect if info is not None else "unknown"

    def _layer_decision(
        self, call: ToolCall, context: RunContext, kind: str, top: bool
    ) -> Decision | None:
        rules = self._by_name.get(call.name)
        if rules is None:
            rules = self._rules_for(call.name)
        return self._decide(rules, call, context, kind, top or self.explicit_defaults)

    def _decide(
        self,
        rules: tuple[CompiledRule, ...],
        call: ToolCall,
        ctx: RunContext,
        kind: str,
        use_default: bool,
    ) -> Decision | None:
        failed: list[tuple[CompiledRule, int, str]] = []  # a rule, its first failing check
        held = ctx.held
        for rule in rules:
            why: str | None = None
            at = 0
            mark = len(held) if held is not None else 0
            try:
                for check in rule.checks:
                    why = check(call, ctx)
                    if why is not None:
                        break
                    at += 1
            except PolicyCheckFailed as exc:
                return Decision.deny(
                    f"rule {rule.id!r}: {exc}; denied (fail-closed)", rule.id, source="engine"
                )
            if why is None:
                if held and len(held) > mark and rule.effect != "allow":
                    return self._apply(rule, "; ".join(held[mark:]))
                return rule.decision or self._apply(rule)
            if rule.effect != "deny":
                failed.append((rule, at, why))
        if not use_default:
            return None
        default = self._default_decisions.get(kind) or self._default_decisions["unknown"]
        if default.effect == "allow" or not failed:
            return default
        # Why no allow rule applied: every failing condition of each, in a stable order
        # (the conditions' registry order, not the document's key order). Only computed
        # on this path: a rule that applies, or a deny rule that does not, costs nothing.
        first = failed[0][0]
        detail = "; ".join(
            f"rule {r.id!r} does not apply ({'; '.join(_why_not(r, at, why, call, ctx))})"
            for r, at, why in failed
        )
        reason = f"{default.reason}: {detail}"
        if first.fallback == "ask" or default.effect == "ask":
            return Decision.ask(first.approver, reason, first.id)
        return Decision.deny(reason, first.id, first.fallback, _message(first.message, reason))

    @staticmethod
    def _apply(rule: CompiledRule, because: str = "") -> Decision:
        verb = {"allow": "allows", "deny": "denies", "ask": "asks for approval of"}[rule.effect]
        reason = f"rule {rule.id!r} {verb} it" + (f" ({because})" if because else "")
        if rule.effect == "allow":
            return Decision.allow(rule.id, reason)
        if rule.effect == "ask" or rule.fallback == "ask":
            return Decision.ask(rule.approver, reason, rule.id)
        return Decision.deny(reason, rule.id, rule.fallback, _message(rule.message, reason))


def _why_not(rule: CompiledRule, at: int, first: str, call: ToolCall, ctx: RunContext) -> list[str]:
    """Every failing condition of `rule`: `first` (check `at`, where the first pass
    stopped; the checks before it held), then those of the checks after it."""
    reasons: list[str] = [first]
    for check in rule.checks[at + 1 :]:
        try:
            why = check(call, ctx)
        except PolicyCheckFailed as exc:
            why = str(exc)
        except Exception as exc:  # the engine fails closed; the reason says what broke
            why = f"{type(exc).__name__}: {exc}"
        if why is not None:
            reasons.append(why)
    return reasons


def _message(template: str, reason: str) -> str:
    if not template:
        return ""
    return template.replace("{reason}", reason)
