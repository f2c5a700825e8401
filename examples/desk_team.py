"""The support desk as a team: triage, three specialists, a supervisor, a person last.

Runs offline as written: a scripted model stands in for the embedded one under its
grammar (the team's step hooks offer one call with its arguments narrowed to the values
the customer wrote; the stand-in writes that call). For the real thing:

    python examples/desk_team.py --model local      # SmolLM2-135M, a minute or two

What it shows, for four customers:
- triage hands each request to a specialist (orders, returns, help), a child run in the
  run tree; the tree of each turn is printed (``triage -> returns -> supervisor``);
- a help question is answered from the help articles' knowledge base with a citation
  the checker verified without a model; the customer sees the article's title, staff
  see the chunk and span;
- a $349 refund: the policy asks for approval, the supervisor approves (no person);
- a $610 refund: above the supervisor's limit (``supervisor_limit``, $500 here), it
  waits in the human queue until a person approves it, then it is paid once;
- the single agent (no team) answers the help question with the same knowledge base,
  the same quoted answer and the same citation check.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
from pathlib import Path
from typing import Any

from pilothouse import ScriptedModel, SQLiteStore, ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse_desk.agent import build_support_agent
from pilothouse_desk.desk import Desk
from pilothouse_desk.team import SupportTeam


def grammar_stand_in() -> ScriptedModel:
    """Writes the one call a hook offers, with the first value each argument allows."""
    counter = itertools.count()

    def first(schema: dict[str, Any]) -> Any:
        if "enum" in schema:
            return schema["enum"][0]
        if "properties" in schema:
            required = schema.get("required", list(schema["properties"]))
            return {k: first(v) for k, v in schema["properties"].items() if k in required}
        if schema.get("type") == "array":
            return [first(schema.get("items", {}))]
        return "Customer asks for a human."

    def reply(request: ModelRequest) -> Any:
        spec = request.tools[0]
        return ToolCall(f"c{next(counter)}", spec.name, first(spec.parameters))

    return ScriptedModel(reply, record=False)


CUSTOMERS = [
    "Hi, I'm ben.adler@example.com, zip 97301. Where is my order A1091?",
    "How long does a refund take to show up on my card?",
    "kira.dubois@example.com, zip 53703. Order A1010 arrived broken, please refund $349.",
    "priya.lopez@example.com, zip 78626. Please refund $610 for order A1029.",
]


def tree(desk: Desk, run_id: str) -> str:
    return " -> ".join(desk.store.get_run(r).agent for r in desk.tree(run_id))


async def main(model: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "journal.db")
        chosen: Any = model or grammar_stand_in()
        desk = Desk(
            Path(tmp) / "shop.db",
            store,
            agent_factory=lambda shop, s: SupportTeam(
                model=chosen, store=s, route=True, supervisor_limit=500
            ),
        )
        try:
            for text in CUSTOMERS:
                conv = await desk.open()
                reply = await desk.send(conv.id, text)
                print(f"customer: {text}")
                print(f"  team:   {tree(desk, reply.run_id)}")
                print(f"  reply:  {reply.text!r} ({reply.status})")
                for entry in desk.transcript(conv.id, staff=True):
                    if entry.author == "staff":
                        print(f"  staff:  {entry.text}")
                for waiting in desk.pending_approvals():
                    done = await desk.decide(conv.id, waiting.key, True, human="ann")
                    print(f"  ann approves {waiting.tool} {waiting.arguments}: {done.text!r}")
            figures = desk.figures()
            print(
                f"approvals: {figures.approvals}, by the supervisor: "
                f"{figures.supervisor_decisions}, escalations: {figures.escalations}"
            )
        finally:
            desk.shutdown()
        single = Desk(
            Path(tmp) / "shop.db",
            store,
            agent_factory=lambda shop, s: build_support_agent(model=chosen, store=s, route=True),
        )
        try:
            conv = await single.open()
            reply = await single.send(conv.id, CUSTOMERS[1])
            print(f"single agent: {reply.text!r}")
            for entry in single.transcript(conv.id, staff=True):
                if entry.author == "staff":
                    print(f"  staff:  {entry.text}")
        finally:
            single.shutdown()
            store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="e.g. 'local' (default: the stand-in)")
    asyncio.run(main(parser.parse_args().model))
