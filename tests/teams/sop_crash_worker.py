"""The SOP pipeline the SOP crash test kills (tests/teams/test_sop_crash.py).

    python sop_crash_worker.py run    --store J.db --ledger L.txt --run-id ID [--kill-call N]
    python sop_crash_worker.py resume --store J.db --ledger L.txt --run-id ID
    (or --kill-write N instead of --kill-call N)

A product manager, an architect, an engineer and a reviewer that sends the code back
once (a review loop: the engineer watches reviews too), every model a `ScriptedModel`
whose reply is a function of its request (a resumed pipeline gets the same replies).
Each model call appends one line to the ledger (O_APPEND: a line written before a
SIGKILL is kept). `--kill-call N` SIGKILLs the process at its N-th model call, before
the reply; `--kill-write N` right after its N-th journal write landed. Prints the pool
as one JSON line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from crash_kit import ledgered, worker_main
from pydantic import BaseModel

from pilothouse import Agent
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.teams.sop import TASK, Role, SOPPipeline


class PRD(BaseModel):
    goals: list[str]


class Design(BaseModel):
    modules: list[str]


class Code(BaseModel):
    files: dict[str, str]


class Review(BaseModel):
    approved: bool
    notes: str = ""


def seen(request: ModelRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role == "user")


def engineer(request: ModelRequest) -> str:
    text = seen(request)
    version = 2 if "[Review v1" in text else 1
    return json.dumps({"files": {"todo.py": f"# version {version}"}})


def reviewer(request: ModelRequest) -> str:
    approved = "version 2" in seen(request)
    return json.dumps({"approved": approved, "notes": "" if approved else "add tests"})


def build(store: SQLiteStore, ledger: int) -> SOPPipeline:
    def role(name: str, reply: Any, produces: type[BaseModel], **kw: Any) -> Role:
        agent = Agent(ledgered(name, ledger, reply), name=name, output_type=produces, store=store)
        return Role(agent, produces=produces, **kw)

    return SOPPipeline(
        [
            role("pm", lambda r: '{"goals": ["add", "list"]}', PRD, watches=[TASK]),
            role("architect", lambda r: '{"modules": ["cli", "store"]}', Design, watches=[PRD]),
            role(
                "engineer",
                engineer,
                Code,
                watches=[Design, Review],
                when=lambda m: m.kind != "Review" or not m.content["approved"],
            ),
            role("reviewer", reviewer, Review, watches=[Code]),
        ],
        max_activations=10,
        store=store,
    )


if __name__ == "__main__":
    worker_main(
        sys.argv[1:],
        build,
        "A command-line todo app",
        report=lambda result: result.to_json(),
        report_finished=lambda output: output,
    )
