"""What `from pilothouse import Agent, tool` loads: the import cost, checked by structure.

Defining agents and tools must stay cheap to import (issue 17: at most 30 ms beyond
`import asyncio, pydantic`; `python benchmarks/import_cost.py` measures it). Timing is
no test on a busy machine, so this checks the cause instead: the run loop, the journal
and its stores, the event types, the policy engine, the model registry's adapters and
pydantic's model machinery load with the first run, tool or policy, not at import.
"""

from __future__ import annotations

import json
import subprocess
import sys

DEFERRED = (
    "pilothouse.runtime.loop",
    "pilothouse.runtime.drive",
    "pilothouse.runtime.journal",
    "pilothouse.runtime.rows",
    "pilothouse.events",
    "pilothouse.policy",
    "pilothouse.policy.engine",
    "pilothouse.tools.human",
    "pilothouse.models.openai",
    "pilothouse.models.local",
    "pydantic.main",
    "sqlite3",
    "yaml",
)


def _loaded(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out))


def test_importing_agent_and_tool_loads_no_runtime() -> None:
    loaded = _loaded("from pilothouse import Agent, tool")
    assert not loaded & set(DEFERRED), sorted(loaded & set(DEFERRED))


def test_the_first_run_loads_what_was_deferred() -> None:
    code = (
        "from pilothouse import Agent, ScriptedModel, tool\n"
        "@tool\n"
        "def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "agent = Agent(ScriptedModel(['3']), tools=[add], store=':memory:')\n"
        "assert agent.run_sync('1+2?').output == '3'\n"
    )
    loaded = _loaded(code)
    for module in ("pilothouse.runtime.loop", "pilothouse.events", "pilothouse.policy.engine"):
        assert module in loaded
