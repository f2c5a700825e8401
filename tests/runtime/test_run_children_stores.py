"""`run_children` and gathered `run_child` on the real journal stores, SQLite and
PostgreSQL (a throwaway server on loopback, `tests/pgserver.py`; skipped, saying why,
without its binaries): children writing their journals side by side keep the caps they
were given, the tree stays within the lead's budget, and a lead interrupted inside a
child resumes on the same store to the end it reaches uninterrupted."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_run_children import ENDLESS, model_calls, survey_tree, tree

from killable_store import KillableStore
from pilothouse import Budget
from pilothouse.runtime.journal import MemoryStore, Store, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return open_store(str(tmp_path / "journal.db"))
    return open_store(request.getfixturevalue("fresh_postgres_dsn"))


@pytest.mark.parametrize("how", ["children", "gather"])
def test_a_fan_out_stays_within_the_budget_on_a_real_store(store: Store, how: str) -> None:
    """The same caps and model calls as in memory: 4, 4, 3 side by side, or 11, 0, 0
    one after another; 12 model calls either way."""
    memory = MemoryStore()
    budget = Budget(max_steps=12)
    want = tree(
        memory,
        survey_tree(memory, how, steps_needed=ENDLESS, budget=budget).run_sync("figs?").run_id,
    )
    result = survey_tree(store, how, steps_needed=ENDLESS, budget=budget).run_sync("figs?")
    assert tree(store, result.run_id) == want
    assert model_calls(store) == model_calls(memory) == 12


def test_run_children_interrupted_resume_on_a_real_store(store: Store) -> None:
    """Interrupted inside child b once a has finished (the loops record what happened
    so far), the lead resumed on the same store re-attaches to a, resumes b with the
    cap it had, and ends as the uninterrupted tree did."""
    needs = {"a": 2, "b": 3}
    budget = Budget(max_steps=9, max_tokens=400)
    memory = MemoryStore()
    uninterrupted = survey_tree(memory, "children", steps_needed=needs, budget=budget).run_sync(
        "figs?"
    )
    want = tree(memory, uninterrupted.run_id)
    with pytest.raises(SystemExit):
        survey_tree(
            KillableStore(store), "children", steps_needed=needs, budget=budget, crash="interrupt"
        ).run_sync("figs?")
    parent_id = next(r.run_id for r in store.list_runs() if r.agent == "lead")
    assert store.get_run(f"{parent_id}.1.0.b").status == "interrupted"
    resumed = survey_tree(store, "children", steps_needed=needs, budget=budget).resume_sync(
        parent_id
    )
    assert tree(store, parent_id) == want
    assert (resumed.outcome, resumed.steps, resumed.usage) == (
        uninterrupted.outcome,
        uninterrupted.steps,
        uninterrupted.usage,
    )
