"""Compaction: a long conversation sent as a journaled view; nothing is deleted.

Run: `python examples/memory_compaction.py` (offline: scripted models play the agent and
the summariser).

A session already holds a long conversation. The agent's `prepare_step` hook is a
`Compaction` with a 2,000-token threshold: over it, old tool results are cut to their
head and tail (no model), then the oldest turns are summarised (a model). The view is
what the step's `model_request` records; the session keeps every message, and the
`recall_result` tool reads a trimmed result back whole from the journal. The summariser's
call is itself on the record (a `hook_model_call` event: request, response, usage).
"""

from __future__ import annotations

from pathlib import Path

from pilothouse import Agent, Message, ScriptedModel, Session, SQLiteStore, call, tool
from pilothouse.events import HookModelCalled, ModelRequested, ToolReturned
from pilothouse.memory import Compaction, estimate_tokens, recall_result_tool
from pilothouse.messages import ModelResponse
from pilothouse.models.base import ModelRequest

PRICES = "".join(f"SKU-{i:04d}: {i * 3 + 7} EUR\n" for i in range(300))


@tool
def price_list() -> str:
    """The whole price list."""
    return PRICES


def summarise(request: ModelRequest) -> ModelResponse:
    """The summariser's stand-in: a real model would write the summary."""
    return ModelResponse("The user planned a trip to Lisbon in May and asked about hotels.")


def main() -> None:
    path = Path("compaction.db")
    path.unlink(missing_ok=True)
    store = SQLiteStore(path)
    session = Session.create(store)
    for i in range(6):  # an earlier conversation
        session.append(
            [
                Message.user(f"Question {i} about my trip to Lisbon in May. " + "Details. " * 60),
                Message.assistant(f"Answer {i}. " + "Some advice. " * 60),
            ]
        )
    compaction = Compaction(
        2_000, keep_recent=1, head=120, tail=60, summarizer=ScriptedModel(summarise)
    )
    first = call("price_list")
    model = ScriptedModel(
        [
            [first],
            [call("recall_result", call_id=first.id)],
            "SKU-0299 costs 904 EUR.",
        ]
    )
    agent = Agent(
        model,
        tools=[price_list, recall_result_tool(store, compaction)],
        store=store,
        prepare_step=compaction,
    )
    result = agent.run_sync("What does SKU-0299 cost?", session=session)
    print(f"answer: {result.output}")
    for request, event in zip(
        model.requests,
        [e for e in store.events(result.run_id) if isinstance(e, ModelRequested)],
        strict=True,
    ):
        kept = sum(1 for v in event.view or () if isinstance(v, int))
        rewritten = sum(1 for v in event.view or () if isinstance(v, dict))
        print(
            f"step {event.step}: sent ~{estimate_tokens(request.messages)} tokens; "
            f"view recorded: {kept} messages kept by position, {rewritten} rewritten"
        )
        for m in request.messages:
            if m.role == "user" and m.content.startswith("Summary"):
                print(f"   summary sent: {m.content.splitlines()[-1]}")
            if m.role == "tool" and "trimmed" in m.content:
                marker = next(line for line in m.content.splitlines() if "trimmed" in line)
                print(f"   price list sent trimmed: {marker}")
    recalled = [e.result for e in store.events(result.run_id) if isinstance(e, ToolReturned)][-1]
    print(f"recall_result gave back {len(recalled.content)} characters (the whole list)")
    print(f"session messages kept: {session.info().messages} (nothing deleted)")
    print(f"summaries made: {compaction.summaries_made}")
    asked = [e for e in store.events(result.run_id) if isinstance(e, HookModelCalled)]
    print(
        f"summariser calls on the record: {len(asked)} ({asked[0].purpose} at step "
        f"{asked[0].step}; a resumed run or a replay is served it, never asks again)"
    )
    # The next turn, as if in a new process: a fresh hook given the store finds the
    # summary in turn 1's journal and records the reuse in turn 2's (no model asked).
    never = ScriptedModel([])  # a summariser that cannot answer
    fresh = Compaction(2_000, keep_recent=1, head=120, tail=60, summarizer=never, store=store)
    again = Agent(ScriptedModel(["You asked about SKU-0299."]), store=store, prepare_step=fresh)
    second = again.run_sync("What did I just ask?", session=session)
    reused = [e for e in store.events(second.run_id) if isinstance(e, HookModelCalled)]
    print(
        f"turn 2: {len(reused)} summary on its record, model {reused[0].model.split(':')[0]}:"
        f"<turn 1>, usage {reused[0].response.usage.total_tokens}; "
        f"summariser asked {len(never.requests)} times"
    )


if __name__ == "__main__":
    main()
