"""Task policies proposed by a model from the user's request (as in Progent).

`propose_task_policy(model, request, base, tools)` shows a model the user's
request, the tools on offer and the rule format, and asks for a task policy (JSON
or YAML) that allows only what the request needs. The answer is parsed by the
ordinary loader and checked with `Policy.narrow`; it is applied only when it
narrows `base`. Anything else (no policy in the answer, malformed YAML, an unknown
key or condition, a rule that would allow what `base` denies, a model error)
rejects the proposal with the reason, and `base` is used unchanged.

The model only proposes: every call is still decided by `Policy.check`, and a
layered policy checks every layer and keeps the most restrictive answer, so even
an accepted proposal can never allow a call that `base` denies.

    proposal = await propose_task_policy(model, "Refund order A17", base, [get_order, refund])
    agent = Agent(model, tools=[get_order, refund], policy=proposal.policy)
    print(proposal.accepted, proposal.reason)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pilothouse.exceptions import PolicyError, PolicyLayerError
from pilothouse.messages import Message
from pilothouse.models.base import Model, ModelRequest, ModelSettings, ToolSpec
from pilothouse.policy.document import ToolInfo
from pilothouse.policy.engine import Policy
from pilothouse.policy.loader import parse_yaml

SOURCE = "<proposed task policy>"

#: The top-level keys a proposal may use (it may not redeclare tools or the
#: confirmation pattern of the policy it narrows).
PROPOSAL_KEYS = ("version", "name", "description", "defaults", "rules")

RULE_FORMAT = """\
Answer with one YAML (or JSON) document and nothing else:

version: 1
name: task
defaults: {read_only: deny, side_effect: deny, irreversible: deny, unknown: deny}
rules:
  - id: RULE-ID
    tools: TOOL-NAME            # a name, a glob such as get_*, or a list of them
    effect: allow               # allow or deny
    when:                       # optional; all conditions must hold
      args:                     # conditions on the call's arguments (JSON-schema subset)
        ARGUMENT: {enum: [...]}  # also const, pattern, minimum, maximum, minLength,
                                 # maxLength, items, minItems, maxItems, type, not
      max_calls: 1              # at most this many calls of the tool in the run
    fallback: {message: "what the assistant should be told when this blocks a call"}

Write the least privilege the request needs: keep the defaults above (every tool is
denied unless a rule allows it), allow only the tools the request needs, and bound
their arguments with values taken from the user's request. A task policy can only
narrow the application's policy: it cannot allow what that policy forbids."""

PROMPT_TEMPLATE = """\
You write the security policy for one task of an AI assistant. The assistant will \
read untrusted text (tool outputs, documents, web pages) while doing the task, so \
the policy must allow only the tool calls the user's request needs.

The user's request:
<request>
{request}
</request>

The tools the assistant has (name, effect kind, arguments, description):
{tools}

{rule_format}"""


class _ToolLike(Protocol):
    """A `Tool` (name, description, parameters and effect) without importing the tools package."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Proposal:
    """The outcome of asking a model for a task policy.

    `policy` is what to use: `base` narrowed by the proposal when `accepted`, else
    `base` itself. `reason` says why the proposal was accepted or rejected;
    `proposed` is the parsed task policy (None when it did not parse) and `text`
    the model's raw answer.
    """

    accepted: bool
    policy: Policy
    reason: str
    proposed: Policy | None = None
    text: str = ""
    bindings: Mapping[str, list[str]] = field(default_factory=dict)
    """Role -> values the user gave for it (`propose_from_request`), for the principal."""


def describe_tools(tools: Sequence[_ToolLike | ToolSpec]) -> str:
    """The tool list as the prompt shows it: one line per tool."""
    lines = []
    for t in tools:
        effect = getattr(t, "effect", "unknown")
        props = (t.parameters or {}).get("properties") or {}
        args = ", ".join(str(a) for a in props)
        desc = " ".join((t.description or "").split())
        lines.append(f"- {t.name} [{effect}] ({args}): {desc}".rstrip(": "))
    return "\n".join(lines) or "(no tools)"


def build_prompt(
    request: str,
    tools: Sequence[_ToolLike | ToolSpec],
    template: str = PROMPT_TEMPLATE,
    rule_format: str = RULE_FORMAT,
) -> str:
    """The prompt sent to the model (`template` uses {request}, {tools}, {rule_format})."""
    return template.format(request=request, tools=describe_tools(tools), rule_format=rule_format)


_FENCE = re.compile(r"```[ \t]*(?:ya?ml|json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_policy_text(text: str) -> str:
    """The policy document in a model's answer: the first fenced block, else the whole text."""
    m = _FENCE.search(text)
    return (m.group(1) if m else text).strip()


def parse_proposal(text: str, base: Policy) -> Policy:
    """Parse a proposed task policy (YAML or JSON); raises `PolicyError` with the reason.

    Named predicates resolve against `base`'s predicates; a proposal may only use
    the keys in `PROPOSAL_KEYS`.
    """
    body = extract_policy_text(text)
    if not body:
        raise PolicyError(f"{SOURCE}: the answer holds no policy")
    data, _ = parse_yaml(body, SOURCE)  # JSON is YAML too
    if isinstance(data, Mapping):
        extra = [k for k in data if k not in PROPOSAL_KEYS]
        if extra:
            raise PolicyError(
                f"{SOURCE}: a task policy may not set {extra[0]!r}; it has {list(PROPOSAL_KEYS)}"
            )
    policy = Policy.from_yaml(body, predicates=base.predicates, source=SOURCE)
    return policy


def _with_tool_effects(base: Policy, tools: Sequence[_ToolLike | ToolSpec]) -> Policy:
    """`base` with the effect kinds of `tools` it does not declare, for the narrowing check.

    `Policy.widening` can only see that `base` denies a tool by default when it knows
    the tool's effect kind; the agent's tools carry it.
    """
    extra = {
        t.name: ToolInfo(str(getattr(t, "effect", "unknown")))
        for t in tools
        if t.name not in base.tools
    }
    if not extra:
        return base
    probe = copy.copy(base)
    probe.tools = {**extra, **base.tools}
    return probe


async def propose_task_policy(
    model: Model,
    request: str,
    base: Policy,
    tools: Sequence[_ToolLike | ToolSpec],
    *,
    template: str = PROMPT_TEMPLATE,
    rule_format: str = RULE_FORMAT,
    settings: ModelSettings | None = None,
) -> Proposal:
    """Ask `model` for a task policy for `request`; apply it only if it narrows `base`.

    Never raises for a bad proposal: a model error, an answer that is not a valid
    policy, or one that would widen `base` gives ``Proposal(accepted=False,
    policy=base, reason=...)``. The prompt is `template` (placeholders {request},
    {tools}, {rule_format}); see `PROMPT_TEMPLATE` and `RULE_FORMAT`.
    """
    prompt = build_prompt(request, tools, template, rule_format)
    model_request = ModelRequest(
        [Message.user(prompt)], tool_choice="none", settings=settings or ModelSettings()
    )
    try:
        response = await model.generate(model_request)
    except Exception as exc:
        return Proposal(False, base, f"rejected: the model failed ({type(exc).__name__}: {exc})")
    text = response.text
    try:
        proposed = parse_proposal(text, base)
    except PolicyError as exc:
        return Proposal(False, base, f"rejected: malformed task policy: {exc}", None, text)
    problems = _with_tool_effects(base, tools).widening(proposed)
    try:
        if problems:
            raise PolicyLayerError(
                f"layer {proposed.name!r} may only narrow {base.name!r}: " + "; ".join(problems)
            )
        layered = base.narrow(proposed)
    except PolicyLayerError as exc:
        return Proposal(False, base, f"rejected: {exc}", proposed, text)
    n = len(proposed.rules)
    return Proposal(
        True,
        layered,
        f"accepted: task policy {proposed.name!r} ({n} rule{'s' if n != 1 else ''}) "
        f"narrows {base.name!r}",
        proposed,
        text,
    )
