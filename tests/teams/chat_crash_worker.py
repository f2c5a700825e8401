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

import json
import sys

from crash_kit import ledgered, worker_main

from pilothouse import Agent
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.teams.groupchat import GroupChat, MaxMessages, Member, ModelSelector, TextMention


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


if __name__ == "__main__":
    worker_main(
        sys.argv[1:],
        build,
        "Write a note on tides.",
        report=lambda result: {
            "transcript": [{"speaker": s.speaker, "text": s.text} for s in result.transcript]
        },
        report_finished=lambda output: {"transcript": output["transcript"]},
    )
