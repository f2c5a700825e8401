"""Policies as data: the mapping form and YAML files, with errors that name the line.

The YAML is parsed with PyYAML's composer (so every node keeps its line), turned
into plain Python values while remembering each path's line, and compiled by the
same code as the Python form (`Policy.from_dict` and `Policy.from_yaml` build the
`Policy` from what this module reads: the loader needs no engine). Duplicate keys,
unknown keys, wrong types, unknown predicates and invalid patterns are all rejected
before any call is checked.

    version: 1
    name: shop
    defaults: {read_only: allow, side_effect: deny, irreversible: deny}
    tools:                       # optional declarations: effect kind and arguments
      refund: {effect: irreversible, args: [order_id, amount]}
    rules:
      - id: small-refunds
        tools: refund
        effect: allow
        when:
          args: {amount: {maximum: 100}}
          after: [{tool: get_order, args: {order_id: $args.order_id}}]
          confirmed: true
        fallback: {action: error, message: "Refunds above 100 need a human: {reason}"}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.exceptions import PolicyError
from pilothouse.policy.document import (
    DEFAULT_CONFIRMATION,
    EFFECT_KINDS,
    RULE_KEYS,
    TOP_KEYS,
    Claim,
    Locate,
    Path,
    Rule,
    ToolInfo,
)
from pilothouse.policy.document import policy_error as _err


@dataclass(slots=True)
class PolicySpec:
    """What a policy document says, checked and in Python form: `Policy`'s arguments."""

    rules: list[Rule]
    defaults: Mapping[str, str] | None
    tools: dict[str, ToolInfo]
    confirmation: str
    name: str
    predicates: tuple[str, ...] = ()  # the names the document declares (for lint)
    lookups: tuple[str, ...] = ()
    claims: dict[str, Claim] | None = None
    aggregates: tuple[str, ...] = ()
    roles: dict[str, str] | None = None


def read_mapping(data: Any, locate: Locate | None = None) -> PolicySpec:
    """Check the mapping form of a policy (see the module docs); `Policy.from_dict` builds it.

    Raises `PolicyError` naming the path (and the line, with `locate`) of what is wrong.
    """
    if not isinstance(data, Mapping):
        raise _err((), locate, "a policy must be a mapping with `rules`")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise _err((unknown[0],), locate, f"unknown key; a policy has {list(TOP_KEYS)}")
    version = data.get("version", 1)
    if version != 1:
        raise _err(("version",), locate, f"unsupported version {version!r} (this engine reads 1)")
    defaults = data.get("defaults")
    if defaults is not None and not isinstance(defaults, Mapping):
        raise _err(("defaults",), locate, "defaults must map effect kinds to allow/deny/ask")
    tools: dict[str, ToolInfo] = {}
    raw_tools = data.get("tools") or {}
    if not isinstance(raw_tools, Mapping):
        raise _err(("tools",), locate, "tools must map tool names to {effect, args}")
    for tname, spec in raw_tools.items():
        at: Path = ("tools", str(tname))
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping) or set(spec) - _TOOL_KEYS:
            raise _err(at, locate, f"a tool declaration has {sorted(_TOOL_KEYS)}")
        effect = spec.get("effect", "unknown")
        if effect not in EFFECT_KINDS:
            raise _err(
                (*at, "effect"), locate, "effect must be read_only, side_effect or irreversible"
            )
        args = spec.get("args")
        if args is not None and not (
            isinstance(args, list) and all(isinstance(a, str) for a in args)
        ):
            raise _err((*at, "args"), locate, "args must be a list of argument names")
        required = spec.get("required", args or [])
        tools[str(tname)] = ToolInfo(
            effect,
            tuple(args) if args is not None else None,
            tuple(required),
            _trusted_fields(spec.get("trusted"), (*at, "trusted"), locate),
            _secret(spec.get("secret"), (*at, "secret"), locate),
            _egress(spec.get("egress"), (*at, "egress"), locate),
            _endorsed(spec, (*at, "endorsed"), locate),
        )
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise _err(("rules",), locate, "rules must be a list")
    rules: list[Rule] = []
    for i, r in enumerate(raw_rules):
        at = ("rules", i)
        if not isinstance(r, Mapping):
            raise _err(at, locate, "a rule must be a mapping")
        bad = [k for k in r if k not in RULE_KEYS]
        if bad:
            raise _err((*at, bad[0]), locate, f"unknown key; a rule has {list(RULE_KEYS)}")
        if "tools" not in r:
            raise _err(at, locate, "a rule needs `tools` (a name, a glob or a list)")
        rules.append(
            Rule(
                tools=r["tools"],
                effect=r.get("effect", "allow"),
                when=r.get("when"),
                priority=r.get("priority", 0),
                fallback=r.get("fallback", "error"),
                id=str(r["id"]) if r.get("id") is not None else None,
                description=str(r.get("description", "")),
            )
        )
    confirmation = data.get("confirmation", DEFAULT_CONFIRMATION)
    if not isinstance(confirmation, str):
        raise _err(("confirmation",), locate, "confirmation must be a regular expression")
    declared = {
        key: _names(data.get(key), key, locate) for key in ("predicates", "lookups", "aggregates")
    }
    return PolicySpec(
        rules,
        defaults,
        tools,
        confirmation,
        str(data.get("name", "policy")),
        declared["predicates"],
        declared["lookups"],
        _claims(data.get("claims"), locate),
        declared["aggregates"],
        _roles(data.get("roles"), locate),
    )


def _roles(spec: Any, locate: Locate | None) -> dict[str, str]:
    """The document's `roles:`: role -> a regex with one group, matched against each user
    message; the group's value is bound to the role (trusted only where it is asked for)."""
    import re

    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise _err(("roles",), locate, "roles must map role names to a regex with one group")
    for role, pattern in spec.items():
        at: Path = ("roles", str(role))
        if not isinstance(pattern, str):
            raise _err(at, locate, "a role's pattern must be a regular expression")
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:
            raise _err(at, locate, f"invalid regular expression: {exc}") from None
        if groups != 1:
            raise _err(at, locate, f"the pattern must have exactly one group (it has {groups})")
    return {str(k): str(v) for k, v in spec.items()}


_TOOL_KEYS = {"effect", "args", "required", "trusted", "secret", "egress", "endorsed"}


def _endorsed(spec: Mapping[str, Any], at: Path, locate: Locate | None) -> dict[str, str]:
    """A tool's `endorsed:` declaration: result field path -> a regex with named groups,
    each naming a trusted field of the same item (the message's `sender`): the user's
    request points at the item by its metadata, never by its content."""
    import re

    raw = spec.get("endorsed")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _err(at, locate, "endorsed must map a result field path to a regex")
    trusted = _trusted_fields(spec.get("trusted"), (*at[:-1], "trusted"), locate)
    out: dict[str, str] = {}
    for path, pattern in raw.items():
        where: Path = (*at, str(path))
        if not isinstance(path, str) or not path or not isinstance(pattern, str):
            raise _err(where, locate, "endorsed maps a field path to a regular expression")
        try:
            groups = list(re.compile(pattern).groupindex)
        except re.error as exc:
            raise _err(where, locate, f"invalid regular expression: {exc}") from None
        if not groups:
            raise _err(where, locate, "the pattern needs named groups: (?P<sender>...)")
        parent = path.rpartition(".")[0]
        for g in groups:
            sibling = f"{parent}.{g}" if parent else g
            if sibling not in trusted:
                raise _err(
                    where,
                    locate,
                    f"group {g!r} must name a trusted field of the item ({sibling!r} is not "
                    "declared trusted): the request points at an item by its metadata",
                )
        out[path] = pattern
    return out


def _claims(spec: Any, locate: Locate | None) -> dict[str, Claim]:
    """The document's `claims:`: NAME -> {tool: NAME or [NAMES], field: PATH or
    $args.NAME, principal: KEY}."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise _err(("claims",), locate, "claims must map claim names to {tool, field}")
    out: dict[str, Claim] = {}
    for name, c in spec.items():
        at: Path = ("claims", str(name))
        if not isinstance(c, Mapping) or set(c) - {"tool", "field", "principal"}:
            raise _err(at, locate, "a claim has `tool`, `field` and optionally `principal`")
        tool = c.get("tool")
        tools = [tool] if isinstance(tool, str) else tool
        if (
            not isinstance(tools, list)
            or not tools
            or not all(isinstance(t, str) and t for t in tools)
        ):
            raise _err((*at, "tool"), locate, "tool must name the authentication tool(s)")
        fld = c.get("field")
        if (
            not isinstance(fld, str)
            or not fld
            or (fld.startswith("$") and not (fld.startswith("$args.") and len(fld) > 6))
        ):
            raise _err((*at, "field"), locate, "field is a result field path, or $args.NAME")
        principal = c.get("principal")
        if principal is not None and not isinstance(principal, str):
            raise _err((*at, "principal"), locate, "principal names user or an attribute")
        out[str(name)] = Claim(tuple(tools), fld, principal)
    return out


def _secret(spec: Any, at: Path, locate: Locate | None) -> Any:
    """A tool's `secret:`: result field paths, or a mapping path -> words naming it."""
    import re

    if spec is None:
        return ()
    if isinstance(spec, list) and all(isinstance(p, str) for p in spec):
        return tuple(spec)
    if isinstance(spec, Mapping) and all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in spec.items()
    ):
        for k, v in spec.items():
            if v is not None:
                try:
                    re.compile(v)
                except re.error as exc:
                    raise _err((*at, k), locate, f"invalid regular expression: {exc}") from None
        return dict(spec)
    raise _err(at, locate, "secret lists result field paths, or maps them to words naming them")


def _egress(spec: Any, at: Path, locate: Locate | None) -> Any:
    """A tool's `egress:`: true (every argument) or the argument names that send data out."""
    if spec is None or spec is False:
        return False
    if spec is True:
        return True
    if isinstance(spec, list) and spec and all(isinstance(a, str) for a in spec):
        return tuple(spec)
    raise _err(at, locate, "egress is true (every argument) or a list of argument names")


def _names(value: Any, key: str, locate: Locate | None) -> tuple[str, ...]:
    """A declaration of names (`predicates:`, `lookups:`): a list, or a mapping to notes."""
    names = list(value) if isinstance(value, Mapping) else (value or [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _err(
            (key,), locate, f"{key} must list the names the policy uses (or map them to a note)"
        )
    return tuple(names)


def _trusted_fields(spec: Any, at: Path, locate: Locate | None) -> dict[str, str | None]:
    """A tool's `trusted:` declaration: a list of field paths, or a mapping path -> role
    (the path ``""`` is the whole result: a tool that returns one id or a list of names)."""
    if spec is None:
        return {}
    if isinstance(spec, list):
        spec = dict.fromkeys(spec)
    if not isinstance(spec, Mapping) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in spec.items()
    ):
        raise _err(at, locate, "trusted must list result field paths, or map them to a role")
    return dict(spec)


_MAX_NODES = 100_000  # aliases can expand a small file enormously ("billion laughs")


def _to_python(
    node: Any, path: Path, lines: dict[Path, int], source: str, seen: list[int] | None = None
) -> Any:
    """A composed YAML node as plain values, recording the line of every path."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    seen = [0] if seen is None else seen
    seen[0] += 1
    if seen[0] > _MAX_NODES or len(path) > 50:
        raise PolicyError(
            f"{source}: line {node.start_mark.line + 1}: the document is too large or "
            "too deeply nested (recursive or exploding aliases?)"
        )
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float | bool) or key is None:
                raise PolicyError(
                    f"{source}: line {key_node.start_mark.line + 1}: a key must be a scalar"
                )
            if key in out:
                raise PolicyError(
                    f"{source}: line {key_node.start_mark.line + 1}: duplicate key {key!r}"
                )
            out[key] = _to_python(value_node, (*path, str(key)), lines, source, seen)
            lines.setdefault((*path, str(key)), key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(item, (*path, i), lines, source, seen) for i, item in enumerate(node.value)
        ]
    return _scalar(node)


def _scalar(node: Any) -> Any:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    return yaml.SafeLoader("").construct_object(node, deep=True)


def parse_yaml(text: str, source: str = "<policy>") -> tuple[Any, dict[Path, int]]:
    """YAML text to plain values plus a map from path to line; syntax errors name the line."""
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:  # pragma: no cover - pyyaml is a dependency
        raise PolicyError("reading YAML policies needs PyYAML (pip install pyyaml)") from exc
    lines: dict[Path, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            raise PolicyError(f"{source}: the policy file is empty")
        # Building values can fail too (an unknown tag such as `=`): same error, same line.
        return _to_python(node, (), lines, source), lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{source}: {line}invalid YAML: {problem}") from None


def locator(lines: dict[Path, int]) -> Locate:
    """The `Locate` of a parsed document: the line of a path, or of its nearest parent."""

    def locate(path: Path) -> int | None:
        p = tuple(str(x) if isinstance(x, str) else x for x in path)
        while p:
            if p in lines:
                return lines[p]
            p = p[:-1]
        return lines.get(())

    return locate
