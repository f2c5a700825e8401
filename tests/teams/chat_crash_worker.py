"""The group chat the crash test kills (tests/teams/test_groupchat_crash.py).

    python chat_crash_worker.py run    --store J.db --ledger L.txt --run-id ID [--kill-call N]
    python chat_crash_worker.py resume --store J.db --ledger L.txt --run-id ID
    (or --kill-write N instead of --kill-call N)

Three members and a model selector, every model a `ScriptedModel` whose reply is a
function of its request (a resumed chat gets the same replies). Each model call
appends one line to the ledger (an O_APPEND file: a line written before a SIGKILL is
kept). `--kill-call N` SIGKILLs the process at its N-th model call, before the reply;
`--kill-write N` right after its N-th journal write landed. Prints the transcript as
one JSON line. `resume` of a chat killed before its first write starts it afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from pilothouse import Agent, ScriptedModel
from pilothouse.exceptions import RunFinishedError, RunNotFoundError
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.teams.groupchat import GroupChat, MaxMessages, Member, ModelSelector, TextMention

KILL = {"call": 0, "write": 0}
COUNT = {"call": 0, "write": 0}


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


def select(request: ModelRequest) -> str:
    text = request.messages[-1].content
    spoken = sum(1 for m in request.messages if m.content.startswith("["))  # the transcript
    names = [line[2:].split(":")[0] for line in text.splitlines() if line.startswith("- ")]
    return json.dumps({"speaker": names[spoken % len(names)]})


def build(store: SQLiteStore, ledger: int) -> GroupChat:
    def member(name: str, what: str) -> Member:
        def reply(request: ModelRequest) -> str:
            n = len(request.messages)
            return f"{name} says {n}" + (" TERMINATE" if name == "reviewer" and n > 6 else "")

        agent = Agent(ledgered(name, ledger, reply), name=name, store=store)
        return Member(agent, what)

    return GroupChat(
        [
            member("researcher", "finds facts"),
            member("writer", "writes the text"),
            member("reviewer", "reviews the text"),
        ],
        selector=ModelSelector(ledgered("selector", ledger, select)),
        termination=TextMention("TERMINATE") | MaxMessages(9),
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
    chat = build(store, ledger)
    how = args.mode
    try:
        if args.mode == "run":
            result = await chat.run("Write a note on tides.", run_id=args.run_id)
        else:
            try:
                result = await chat.resume(args.run_id)
            except RunNotFoundError:  # killed before its first write: nothing happened
                how = "started"
                result = await chat.run("Write a note on tides.", run_id=args.run_id)
    except RunFinishedError:  # killed after its end was written
        how = "finished"
        output = store.events(args.run_id)[-1].output  # type: ignore[attr-defined]
        print(json.dumps({"how": how, "transcript": output["transcript"]}))
        return
    transcript = [{"speaker": s.speaker, "text": s.text} for s in result.transcript]
    tokens = result.usage.total_tokens
    print(json.dumps({"how": how, "transcript": transcript, "tokens": tokens, **COUNT}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
