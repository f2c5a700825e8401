"""An SOP pipeline with a review loop, SIGKILLed at chosen points and resumed in a new
process, ends as the uninterrupted one does: the same artefacts and versions, no
finished activation run again, the same usage.

Kill points are chosen by count (the N-th journal write, the N-th model call), not by
a clock, so where a kill lands is the same on every machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from crash_kit import baseline_of, kill_then_resume, model_calls

from pilothouse.runtime.journal import SQLiteStore

WORKER = Path(__file__).with_name("sop_crash_worker.py")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return baseline_of(WORKER, tmp_path_factory.mktemp("baseline"), "sop")


def test_baseline_goes_round_the_review_loop(baseline: dict[str, Any]) -> None:
    kinds = [(a["kind"], a["version"]) for a in baseline["pool"]]
    assert kinds == [
        ("task", 1),
        ("PRD", 1),
        ("Design", 1),
        ("Code", 1),
        ("Review", 1),
        ("Code", 2),
        ("Review", 2),
    ]
    assert baseline["reason"] == "idle" and baseline["calls"] == 6


@pytest.mark.parametrize("point", ["write:1", "write:6", "write:14", "call:2", "call:5", "last"])
def test_kill_and_resume(tmp_path: Path, baseline: dict[str, Any], point: str) -> None:
    kind, out = kill_then_resume(WORKER, tmp_path, "sop", point, baseline)
    assert (out["pool"], out["reason"]) == (baseline["pool"], baseline["reason"])
    # model calls across both processes: the uninterrupted ones, plus the one a call
    # kill cut off before its reply; a finished activation is never asked again
    assert model_calls(tmp_path) == baseline["calls"] + (1 if kind == "call" else 0)
    store = SQLiteStore(tmp_path / "j.db")
    events = store.events("sop")
    assert events[-1].type == "final"
    started = [e.child_run_id for e in events if e.type == "child_started"]  # type: ignore[attr-defined]
    assert len(started) == len(set(started)) == 6
    published = [(e.kind, e.version) for e in events if e.type == "artefact_published"]  # type: ignore[attr-defined]
    assert len(published) == len(set(published)) == 7
    for child in store.children("sop"):
        answered = [e for e in store.events(child.run_id) if e.type == "model_response"]
        assert len(answered) == 1, child.run_id
    assert events[-1].usage.total_tokens == baseline["tokens"]  # type: ignore[attr-defined]
