"""A lead agent delegates to a researcher: typed deps, a step hook, a validator, a run tree.

Runs offline as written (scripted models stand in for real ones; swap in
``"openai:gpt-4o-mini"`` or ``"local"``):

    python examples/delegation.py

What it shows:
- `deps_type`: the library catalogue is a live object handed to the run, read by the
  tools through `ctx.deps` (no closures, nothing of it in the journal);
- `ctx.run_child`: the `research` tool starts the researcher as a child run, exactly
  once (a resumed lead re-attaches to it), within the lead's remaining budget, with
  its usage rolled up into the lead's;
- `prepare_step`: the lead's first step offers only `research`, and requires a call;
- `@agent.output_validator`: an answer without a catalogue id is refused with
  `ModelRetry`, and the model is asked again.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse import (
    Agent,
    Budget,
    MemoryStore,
    ModelRetry,
    ScriptedModel,
    StepContext,
    StepOptions,
    ToolContext,
    call,
    tool,
)
from pilothouse.trace import describe, walk_tree


@dataclass
class Library:
    """The application's state: what tools and hooks read through `ctx.deps`."""

    books: dict[str, str]


@tool
def find_book(ctx: ToolContext[Library], words: str) -> str:
    """Find a book in the catalogue by words of its title."""
    hits = [f"{id_}: {title}" for id_, title in ctx.deps.books.items() if words in title.lower()]
    return "; ".join(hits) or "no such book"


store = MemoryStore()
researcher = Agent(
    ScriptedModel([call("find_book", words="fig"), "B-17: The Fig Tree"]),
    "You find books.",
    [find_book],
    name="researcher",
    deps_type=Library,
    store=store,
)


@tool(on_doubt="retry")  # run_child is exactly-once, so running this again is safe
async def research(ctx: ToolContext[Library], question: str) -> str:
    """Ask the researcher."""
    found = await ctx.run_child(researcher, question)
    return str(found.output)


def first_research(ctx: StepContext[Library]) -> StepOptions | None:
    """Step 1 may only delegate; later steps are the agent's own."""
    return StepOptions(tools=["research"], tool_choice="required") if ctx.step == 1 else None


lead = Agent(
    ScriptedModel(
        [call("research", question="a book about figs"), "The Fig Tree", "B-17: The Fig Tree"]
    ),
    "You answer questions about the library. Cite the catalogue id.",
    [research, find_book],
    name="lead",
    deps_type=Library,
    prepare_step=first_research,
    budget=Budget(max_steps=8),
    store=store,
)


@lead.output_validator
def cites_an_id(ctx: StepContext[Library], answer: str) -> str:
    if not any(id_ in answer for id_ in ctx.deps.books):
        raise ModelRetry("Cite the catalogue id (like B-17) of the book.")
    return answer


library = Library({"B-17": "The Fig Tree", "B-22": "Pears of the World"})
result = lead.run_sync("Do you have a book about figs?", deps=library)
print("answer:", result.output)
print("usage (lead + researcher):", result.usage.total_tokens, "tokens")
for depth, run_id in walk_tree(store, result.run_id):
    info = store.get_run(run_id)
    print(f"{'  ' * depth}{run_id} · {info.agent} · {info.status} · {info.steps} steps")
    for event in store.events(run_id):
        print(f"{'  ' * depth}  {describe(event, limit=70)}")
