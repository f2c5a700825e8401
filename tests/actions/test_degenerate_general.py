"""The general degenerate test (`actions/degenerate.py`, issue #15 session 15 "loops").

Real loops from the `tune` half of benchmarks/data/degenerate (issue threads and the
embedded SmolLM2-135M) are refused by the statistic meant for them, real structured
answers (a dpkg log, a table, code, a refrain) stay answers, and the test never raises
and does bounded work on any string.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilothouse.actions import degenerate as dg
from pilothouse.actions.degenerate import degenerate

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "degenerate"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _thread(entry_id: str) -> str:
    for line in (DATA / "thread_loops.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["id"] == entry_id:
            return str(row["text"])
    raise KeyError(entry_id)


@pytest.mark.parametrize(
    ("entry_id", "statistic"),
    [
        ("marieai-132-think-loop", "periodic"),  # a reasoning step, after a long preamble
        ("llamacpp-6762-let-me", "periodic"),  # copies that differ only in their spacing
        ("metaseq-526-opt-deadlift", "periodic"),
        ("claudecode-44743-prevent", "stutter"),  # one word run together inside an answer
        ("llamacpp-15311-stutter", "stutter"),  # every word four times (moved to tune)
        ("gemini-cookbook-327-other", "stutter"),
        ("cdialgpt-26-chinese-loop", "copied"),  # 3.4 copies, no spaces
        ("claudecode-63340-fragments", "copied"),  # copies cut at different places
    ],
)
def test_real_thread_loops_are_refused_by_their_statistic(entry_id: str, statistic: str) -> None:
    text = _thread(entry_id)
    assert degenerate(text)
    squeezed = "".join(text.split())
    tests = {
        "periodic": lambda: dg._ends_in_a_repeat(text) and dg._periodic_tail(squeezed),
        "stutter": lambda: dg._stutter(text.split()),
        "copied": lambda: dg._copied_tail(text),
    }
    assert tests[statistic]()


DPKG = "\n".join(
    f"2026-05-09 07:29:05 {status} {pkg}:amd64 2.2.40-1.1"
    for pkg in ("gpg-wks-client", "gpg-wks-server", "gpg", "gpgsm", "gpgv", "dirmngr")
    for status in ("upgrade", "status half-configured", "status unpacked", "status half-installed")
)
REFRAIN = "\n\n".join(
    f"{verse}\nAnd the sea keeps singing, the sea keeps singing,\nOh the sea keeps singing to me."
    for verse in (
        "The boats go out at dawn, the nets are cold and grey,",
        "The gulls cry over harbour walls where children used to play,",
        "My father sailed these waters and his father did the same,",
        "And when the storm comes rolling in we call the wind by name,",
    )
)


@pytest.mark.parametrize(
    "answer",
    [
        "The log shows:\n\n```\n" + DPKG + "\n```",  # lines alike, no two the same
        REFRAIN,  # a refrain after every verse: the verses differ
        "| planet | moons |\n|---|---|\n" + "\n".join(f"| P{i} | {i % 3} |" for i in range(40)),
        "```python\n"
        + "\n".join(f"    x{i} = load({i!r})\n    check(x{i})" for i in range(30))
        + "\n```",
        "Summary\n" + "=" * 400,
        "The first "
        + ", ".join(str(2**i) for i in range(60))
        + " are powers of two; each doubles the one before.",
        "Yes. Yes. Yes. The refund was sent on Monday and shows within five days.",
    ],
)
def test_structured_answers_stay_answers(answer: str) -> None:
    assert not degenerate(answer)


def test_a_paragraph_three_times_is_a_loop_a_sentence_three_times_is_not() -> None:
    paragraph = (
        "This will create a new item that is a custom item that is not available in the "
        "order A1012, and you can use the order to exchange it for the grey one.\n\n"
    )
    assert degenerate(paragraph * 3)
    assert not degenerate("The forecast for Paris is sunny, 21 degrees.\n\n" * 3)


@SETTINGS
@given(st.text(max_size=3000))
def test_never_raises_on_any_string(text: str) -> None:
    assert degenerate(text) in (True, False)


@SETTINGS
@given(
    unit=st.text(alphabet="abc xyz.\n\t", min_size=2, max_size=60),
    copies=st.integers(0, 60),
    noise=st.text(max_size=200),
)
def test_never_raises_on_near_loops(unit: str, copies: int, noise: str) -> None:
    assert degenerate(noise + unit * copies + noise[: len(noise) // 2]) in (True, False)


@pytest.mark.parametrize(
    "text",
    [
        "ab" * 500_000,
        "a " * 500_000,
        "\n" * 1_000_000,
        "x" * 1_000_000,
        " ".join(f"w{i}" for i in range(200_000)),
        "Let me check. " * 80_000,
        "\ud800 \udfff " * 100_000,  # lone surrogates
        "不知道为什么" * 100_000,
    ],
    ids=range(8),
)
def test_bounded_work_on_huge_input(text: str) -> None:
    began = time.thread_time()  # CPU time: a loaded machine does not inflate it
    degenerate(text)
    assert time.thread_time() - began < 5
