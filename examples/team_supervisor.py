"""A supervisor routes a report to three members and reviews their work.

Runs offline as written (scripted models stand in for real ones; swap in
``"openai:gpt-4o-mini"`` or ``"local"``):

    python examples/team_supervisor.py

What it shows:
- `Supervisor(boss, members=[...])`: each member is a tool of the boss
  (``ask_<member>(task, feedback)``), a child run in the run tree, drawing from the
  boss's budget, its usage rolled up to the token;
- review: the boss sends the writer's first draft back with a reason; the writer sees
  its previous answer and why, and the boss accepts the second (at most
  `max_revisions` send-backs per member);
- the reviewer has a typed output (`Review`), which comes back to the boss as JSON.
"""

from __future__ import annotations

from pydantic import BaseModel

from pilothouse import Agent, Budget, MemoryStore, ScriptedModel, call
from pilothouse.events import ModelResponded
from pilothouse.teams import Supervisor


class Review(BaseModel):
    approved: bool
    comment: str


store = MemoryStore()
researcher = Agent(
    ScriptedModel(["B-17 'The Fig Tree' (2019) covers fig growing."]),
    "You find sources.",
    name="researcher",
    store=store,
)
writer = Agent(
    ScriptedModel(["Figs are easy to grow.", "Figs are easy to grow (see B-17, 2019)."]),
    "You write short reports.",
    name="writer",
    store=store,
)
reviewer = Agent(
    ScriptedModel(['{"approved": true, "comment": "cites its source"}']),
    "You review reports.",
    name="reviewer",
    output_type=Review,
    store=store,
)
boss = Agent(
    ScriptedModel(
        [
            call("ask_researcher", task="Find a source on growing figs."),
            call("ask_writer", task="Write one line on growing figs, citing B-17."),
            call(
                "ask_writer",
                task="Write one line on growing figs, citing B-17.",
                feedback="The source is missing: cite B-17.",
            ),
            call("ask_reviewer", task="Review: Figs are easy to grow (see B-17, 2019)."),
            "Figs are easy to grow (see B-17, 2019).",
        ]
    ),
    "You lead a small editorial team.",
    name="boss",
    store=store,
)
team = Supervisor(
    boss, [researcher, writer, reviewer], max_revisions=2, budget=Budget(max_steps=20)
)
result = team.run_sync("A one-line report on growing figs, with a source.", run_id="report")
print("report:", result.output)


def own_tokens(run_id: str) -> int:
    return sum(
        e.response.usage.total_tokens for e in store.events(run_id) if isinstance(e, ModelResponded)
    )


runs = [store.get_run("report"), *store.children("report")]
for info in runs:
    print(f"  {info.run_id} · {info.agent} · {info.status} · {own_tokens(info.run_id)} tokens")
print(
    "team usage:",
    result.usage.total_tokens,
    "tokens = sum of its runs:",
    sum(own_tokens(i.run_id) for i in runs),
)
