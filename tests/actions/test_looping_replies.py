"""A reply that ends in a loop is refused, never the answer (issue #15: degenerate output).

Small and quantised models that lose their way at a call boundary write the same
phrase, line or call until their token limit. `markup.degenerate` already refused one
word over and over and loops of many lines; `_looping_tail` refuses a loop of any unit
of 2 to 400 characters that makes up most of the reply, on one line or several, cut
off or not. Properties: any such loop, after any short preamble, is refused in every
text format; answers that list, tabulate or repeat a little stay answers, as written.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_action_markup import TEXT_FORMATS, TOOLS

from pilothouse.actions import get_format
from pilothouse.actions.degenerate import degenerate

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

UNIT = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,!?-'\"{}:\n", min_size=2, max_size=80
).filter(lambda u: len(set(u)) >= 2 and u.strip() != "")
PREAMBLE = st.sampled_from(
    ["", "Sure, let me look.", "Thought: I should check the order.\n", "Okay! "]
)


def looped(preamble: str, unit: str, copies: int, cut: int) -> str:
    body = unit * copies
    return preamble + body[: len(body) - cut % len(unit)]


@SETTINGS
@given(PREAMBLE, UNIT, st.integers(4, 40), st.integers(0, 79))
def test_a_reply_that_ends_in_a_loop_is_refused(
    preamble: str, unit: str, copies: int, cut: int
) -> None:
    text = looped(preamble, unit, copies, cut)
    if len(text.rstrip()) < 120 or len(unit * copies) * 5 < len(text) * 3 + 5 * len(unit):
        return  # short replies are left to the token rule; the loop must be most of it
    assert degenerate(text), text
    for fmt in TEXT_FORMATS:
        result = get_format(fmt).parse(text, TOOLS)
        assert result.kind != "final_answer", (fmt, text)


@pytest.mark.parametrize(
    "loop",
    [
        "Let me check the weather in Paris for you. " * 12,  # one line
        "I will call get_weather now.\n" * 6 + "I will call get_weath",  # cut off
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n' * 5,
        "Here is your answer: " + "the order the order the order " * 10,
    ],
)
def test_the_loops_small_models_write_are_refused(loop: str) -> None:
    assert degenerate(loop)
    for fmt in TEXT_FORMATS:
        assert get_format(fmt).parse(loop, TOOLS).kind != "final_answer", fmt


@pytest.mark.parametrize(
    "answer",
    [
        "\n".join(f"{i}. Step {i}: check the valve" for i in range(1, 30)),
        "\n".join(["| a | b |", "|---|---|"] + [f"| {i} | {i * i} |" for i in range(20)]),
        "Summary\n" + "-" * 300,  # a rule: one character over and over
        "The total is 1" + "0" * 200 + ".",
        "Yes. " * 3 + "Your refund of 25.00 EUR was paid on Monday; it shows in 3 to 5 days.",
        "Results:\n" + "| x | 0 |\n" * 8 + "Total: 0, all checks passed, nothing to do.",
        "ha" * 30 + " - you got me! That was a good one, here is the real answer: 42.",
        "```python\nfor i in range(3):\n    print(i)\n```\nIt prints 0, 1 and 2, one per line.",
    ],
)
def test_answers_that_repeat_a_little_stay_answers(answer: str) -> None:
    assert not degenerate(answer), answer
    for fmt in TEXT_FORMATS:
        result = get_format(fmt).parse(answer, TOOLS)
        assert result.kind == "final_answer" and result.answer == answer.strip(), fmt
