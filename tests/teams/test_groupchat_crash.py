"""A group chat SIGKILLed at chosen points and resumed in a new process ends as the
uninterrupted one does, re-running no finished turn and asking no selector twice.

Kill points are chosen by count (the N-th journal write, the N-th model call), not by
a clock, so where a kill lands is the same on every machine."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from crash_kit import baseline_of, kill_then_resume, model_calls

from pilothouse.runtime.journal import SQLiteStore

WORKER = Path(__file__).with_name("chat_crash_worker.py")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return baseline_of(WORKER, tmp_path_factory.mktemp("baseline"), "chat")


def test_baseline_is_a_real_chat(baseline: dict[str, Any]) -> None:
    speakers = [m["speaker"] for m in baseline["transcript"]]
    assert speakers[0] == "user" and len(speakers) > 4
    assert len(set(speakers[1:])) == 3  # every member spoke
    assert baseline["transcript"][-1]["text"].endswith("TERMINATE")


@pytest.mark.parametrize("point", ["write:1", "write:4", "write:11", "call:3", "call:12", "last"])
def test_kill_and_resume(tmp_path: Path, baseline: dict[str, Any], point: str) -> None:
    kind, out = kill_then_resume(WORKER, tmp_path, "chat", point, baseline)
    assert out["transcript"] == baseline["transcript"]
    # every model call, across both processes: the uninterrupted ones, plus the one the
    # kill cut off before its reply (a call kill); a finished turn is never asked again
    assert model_calls(tmp_path) == baseline["calls"] + (1 if kind == "call" else 0)
    store = SQLiteStore(tmp_path / "j.db")
    events = store.events("chat")
    assert events[-1].type == "final"
    started = [e.child_run_id for e in events if e.type == "child_started"]  # type: ignore[attr-defined]
    finished = [e.child_run_id for e in events if e.type == "child_finished"]  # type: ignore[attr-defined]
    assert len(started) == len(set(started)) == len(finished) == len(set(finished))
    steps = Counter(e.step for e in events if e.type == "chat_message")
    assert set(steps.values()) == {1} and sorted(steps) == list(range(1, len(steps) + 1))
    for child in store.children("chat"):
        answered = [e for e in store.events(child.run_id) if e.type == "model_response"]
        assert len(answered) == 1, child.run_id
    if out["how"] != "finished":
        assert out["tokens"] == baseline["tokens"]
    assert events[-1].usage.total_tokens == baseline["tokens"]  # type: ignore[attr-defined]
