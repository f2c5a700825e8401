"""A software team as an SOP pipeline: product manager -> architect -> engineer, with
typed, versioned artefacts in a shared message pool (MetaGPT style).

Runs offline as written (scripted models stand in for real ones):

    python examples/sop_pipeline.py

What it shows:
- roles subscribe to kinds of message (an artefact type's name, or ``task``) and run
  when one arrives; the pool routes each artefact only to its subscribers;
- each artefact is a pydantic model the role's agent is held to; the n-th of a kind is
  version n (the QA role sends the engineer back once: Code v2);
- `when`: the engineer acts on a review only if it was not approved, so the pipeline
  ends when no message is left (``idle``);
- the journal records every publication (`artefact_published`: kind, version,
  producer, routed_to), and a bound (`max_activations`) ends any feedback loop.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from pilothouse import Agent, ScriptedModel, SQLiteStore
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


async def main() -> None:
    store = SQLiteStore("sop_pipeline.db")

    def agent(name: str, replies: list[str], output: type[BaseModel]) -> Agent[None, BaseModel]:
        return Agent(ScriptedModel(replies), name=name, output_type=output, store=store)

    pipeline = SOPPipeline(
        [
            Role(
                agent("product_manager", ['{"goals": ["add a todo", "list todos"]}'], PRD),
                watches=[TASK],
                produces=PRD,
            ),
            Role(
                agent("architect", ['{"modules": ["cli.py", "store.py"]}'], Design),
                watches=[PRD],
                produces=Design,
            ),
            Role(
                agent(
                    "engineer",
                    [
                        '{"files": {"cli.py": "add()", "store.py": "todos = []"}}',
                        '{"files": {"cli.py": "add(); list_todos()", "store.py": "todos = []"}}',
                    ],
                    Code,
                ),
                watches=[Design, Review],
                produces=Code,
                when=lambda message: message.kind != "Review" or not message.content["approved"],
            ),
            Role(
                agent(
                    "qa",
                    ['{"approved": false, "notes": "listing is missing"}', '{"approved": true}'],
                    Review,
                ),
                watches=[Code],
                produces=Review,
            ),
        ],
        max_activations=6,
        name="todo-team",
        store=store,
    )
    result = await pipeline.run("A command-line todo app.")
    for artefact in result.pool:
        routed = ", ".join(artefact.routed_to) or "nobody"
        print(f"{artefact.kind} v{artefact.version} by {artefact.producer} -> {routed}")
    print("stopped:", result.reason)
    code = result.latest(Code)
    assert code is not None
    print("final code:", code.content["files"]["cli.py"])
    print("team tokens:", result.usage.total_tokens)


if __name__ == "__main__":
    asyncio.run(main())
