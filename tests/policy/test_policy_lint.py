"""Lint: unknown predicates, YAML booleans, tools no rule allows, declarations that disagree."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse import tool
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, Rule, RunContext, ToolInfo
from pilothouse.policy.lint import lint, lint_yaml, tools_from_tools

if TYPE_CHECKING:
    from conftest import CLI


def yes(call: ToolCall, ctx: RunContext) -> bool:
    return True


def messages(findings: list[object]) -> list[str]:
    return [str(f) for f in findings]


def test_yaml_booleans_where_strings_were_meant() -> None:
    text = (
        "rules:\n"
        "  - tools: answer\n"
        "    when:\n"
        "      confirmed: yes\n"  # a boolean is meant here: not reported
        "      args: {reply: {enum: [yes, no, 'on', \"off\", maybe]}}\n"
        "  - tools: toggle\n"
        "    when: {args: {state: {const: On}}}\n"
    )
    found = messages(lint_yaml(text))
    tail = "if you meant the string"
    assert found == [
        f"warning: line 5: yes is read as the boolean True; quote it ('yes') {tail}",
        f"warning: line 5: no is read as the boolean False; quote it ('no') {tail}",
        f"warning: line 7: On is read as the boolean True; quote it ('On') {tail}",
    ]
    # and the policy really holds booleans: the string the model sends never matches
    p = Policy.from_yaml(text)
    d = p.check(
        ToolCall("c", "answer", {"reply": "yes"}), RunContext(["yes"]), effect="irreversible"
    )
    assert not d.allowed
    assert lint_yaml("rules: [{tools: x, when: {args: {a: {enum: ['yes', 'no']}}}}]\n") == []


def test_a_consequential_tool_no_rule_allows_is_reported() -> None:
    tools = {
        "get_order": ToolInfo("read_only", ("order_id",)),
        "refund": ToolInfo("irreversible", ("order_id",)),
        "wipe": ToolInfo("irreversible", ()),
        "notify": ToolInfo("side_effect", ()),
    }
    p = Policy(
        [Rule("refund", "allow", id="r"), Rule("notify", "ask", id="n"), Rule("wipe", "deny")],
        tools=tools,
    )
    found = messages(lint(p))
    assert found == [
        "warning: irreversible tool 'wipe' has no allow or ask rule: every call is denied "
        "(add a rule, or remove the tool from the agent)"
    ]
    relaxed = Policy([], tools=tools, defaults={"irreversible": "ask", "side_effect": "allow"})
    assert lint(relaxed) == []


def test_declared_arguments_that_disagree_with_the_tools() -> None:
    @tool(effect="irreversible")
    def refund(order_id: str, amount: float, note: str = "") -> str:
        """Refund."""
        return "ok"

    declared = {"refund": ToolInfo("irreversible", ("order_id", "amt"), ("order_id", "amt"))}
    p = Policy([Rule("refund", "allow", when={"args": {"amount": {"maximum": 5}}})], tools=declared)
    found = messages(lint(p, tools_from_tools([refund])))
    assert (
        "error: tool 'refund': the policy declares ['order_id', 'amt'], the tool has "
        "['order_id', 'amount', 'note']"
    ) in found
    agreeing = {"refund": ToolInfo("irreversible", ("order_id", "amount", "note"), ("order_id",))}
    p = Policy([Rule("refund", "allow")], tools=agreeing)
    assert messages(lint(p, tools_from_tools([refund]))) == [
        "warning: tool 'refund': the policy declares required ['order_id'], the tool requires "
        "['order_id', 'amount']"
    ]


def test_predicates_against_the_declaration() -> None:
    doc = {
        "predicates": ["own_order", "order_pending"],
        "rules": [
            {"tools": "cancel", "when": {"predicates": ["own_ordr", "order_pending"]}},
        ],
    }
    p = Policy.from_dict(doc, predicates={"own_ordr": yes, "order_pending": yes})
    assert messages(lint(p)) == [
        "error: unknown predicate 'own_ordr': not declared; did you mean 'own_order'?",
        "warning: predicate 'own_order' is declared but never used",
    ]


def test_stand_in_predicates_without_a_declaration() -> None:
    rules = [
        Rule("cancel", "allow", when={"predicates": ["order_pending"]}),
        Rule("refund", "allow", when={"predicates": ["order_pendng"]}),
    ]
    stubs = {"order_pending": yes, "order_pendng": yes}
    found = messages(lint(Policy(rules, predicates=stubs), stubbed=set(stubs)))
    assert "error: predicate 'order_pendng' looks like a misspelling of 'order_pending'" in found
    # with real code for them, nothing to say
    assert lint(Policy(rules, predicates=stubs)) == []


def test_cli_lint_finds_a_misspelt_predicate_and_yaml_booleans(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "predicates: [own_order]\n"
        "tools:\n"
        "  cancel: {effect: irreversible, args: [order_id, reason]}\n"
        "rules:\n"
        "  - tools: cancel\n"
        "    when:\n"
        "      predicates: [own_ordr]\n"
        "      args: {reason: {enum: [no, other]}}\n"
    )
    r = cli("policy", "lint", "p.yaml", cwd=tmp_path)
    assert r.returncode == 1
    out = " ".join(r.stdout.split())
    assert "unknown predicate 'own_ordr': not declared; did you mean 'own_order'?" in out
    assert "line 8: no is read as the boolean False" in out
