"""Lint knows the round-3 keys: claims, secrecy labels, egress tools, aggregate sources."""

from __future__ import annotations

from pilothouse.policy import Policy
from pilothouse.policy.lint import lint, lint_yaml

DOC = """
version: 1
claims:
  customer_id: {tool: verify, field: customer_id}
  email: {tool: verify, field: $args.mail}
  account: {tool: login, field: id}
  unused: {tool: verify, field: other}
aggregates: [ledger, journal]
tools:
  verify: {effect: read_only, args: [email, zip]}
  login: {effect: side_effect, args: [user]}
  profile: {effect: read_only, secret: [passport]}
  send: {effect: side_effect, args: [to, body], egress: [to, bodyy]}
rules:
  - tools: [send, login]
    when: {claims: [customer_id, email, account]}
  - tools: send
    when: {aggregate: {source: journal, over: all, max: 3}}
"""


def messages(doc: str) -> list[str]:
    return [str(f) for f in lint(Policy.from_yaml(doc))]


def test_lint_names_what_the_new_declarations_get_wrong() -> None:
    found = messages(DOC)
    assert (
        "error: claim 'email': 'mail' is not an argument of 'verify' (it has ['email', 'zip'])"
        in found
    )
    assert (
        "warning: claim 'account' is set by side_effect tool 'login': an authentication "
        "tool should only read"
    ) in found
    assert "warning: claim 'unused' is declared but never used" in found
    assert (
        "error: tool 'send': egress argument 'bodyy' is not a parameter (it has ['to', 'body'])"
        in found
    )
    assert "warning: aggregate source 'ledger' is declared but never used" in found
    assert not any("journal" in f and "never used" in f for f in found)
    assert not any("customer_id" in f for f in found)


def test_secrets_nothing_keeps_in_are_reported() -> None:
    doc = "version: 1\ntools:\n  profile: {effect: read_only, secret: [passport]}\nrules: []\n"
    assert any("nothing keeps them in" in m for m in messages(doc))
    doc2 = doc.replace("rules: []", "rules:\n  - {tools: mail, when: {no_secrets: true}}")
    assert not any("nothing keeps them in" in m for m in messages(doc2))


def test_a_claim_naming_an_unknown_tool_is_an_error() -> None:
    doc = "version: 1\nclaims: {c: {tool: nope, field: id}}\ntools: {t: {effect: read_only}}\n"
    doc += "rules:\n  - {tools: t, when: {claims: [c]}}\n"
    assert "error: claim 'c': no known tool 'nope'" in messages(doc)


def test_the_shipped_yaml_forms_carry_no_boolean_surprises() -> None:
    assert lint_yaml(DOC) == []
