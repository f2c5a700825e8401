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

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from pydantic import BaseModel

from pilothouse import Agent, ScriptedModel
from pilothouse.exceptions import RunFinishedError, RunNotFoundError
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.teams.sop import TASK, Role, SOPPipeline

KILL = {"call": 0, "write": 0}
COUNT = {"call": 0, "write": 0}


class PRD(BaseModel):
    goals: list[str]


class Design(BaseModel):
    modules: list[str]


class Code(BaseModel):
    files: dict[str, str]


class Review(BaseModel):
    approved: bool
    notes: str = ""


class KillingStore(SQLiteStore):
    def write(self, *args: Any, **kwargs: Any) -> None:
        super().write(*args, **kwargs)
        COUNT["write"] += 1
        if COUNT["write"] == KILL["write"]:
            os.kill(os.getpid(), signal.SIGKILL)


def ledgered(name: str, ledger: int, reply: Any) -> ScriptedModel:
    def answer(request: ModelRequest) -> str:
        os.write(ledger, f"{os.getpid()} {name}\n".encode())
        COUNT["call"] += 1
        if COUNT["call"] == KILL["call"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return str(reply(request))

    return ScriptedModel(answer, name=name)


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


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "resume"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--kill-call", type=int, default=0)
    parser.add_argument("--kill-write", type=int, default=0)
    args = parser.parse_args(argv)
    KILL["call"], KILL["write"] = args.kill_call, args.kill_write
    ledger = os.open(args.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    store = KillingStore(args.store)
    pipeline = build(store, ledger)
    how = args.mode
    try:
        if args.mode == "run":
            result = await pipeline.run("A command-line todo app", run_id=args.run_id)
        else:
            try:
                result = await pipeline.resume(args.run_id)
            except RunNotFoundError:  # killed before its first write: nothing happened
                how = "started"
                result = await pipeline.run("A command-line todo app", run_id=args.run_id)
    except RunFinishedError:  # killed after its end was written
        output = store.events(args.run_id)[-1].output  # type: ignore[attr-defined]
        print(json.dumps({"how": "finished", **output}))
        return
    tokens = result.usage.total_tokens
    print(json.dumps({"how": how, **result.to_json(), "tokens": tokens, **COUNT}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
