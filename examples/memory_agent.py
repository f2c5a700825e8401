"""Long-term memory: facts kept across conversations, per person, under the policy.

Run: `python examples/memory_agent.py` (offline: a scripted model plays the agent).

1. Alice tells the agent her home airport; it `remember`s it (a side effect the policy
   allows). In a later conversation it `recall`s it.
2. Bob asks for Alice's facts: whose memory a call reads is the run's principal, read
   from the journal, so he gets nothing.
3. A run reads a page with an injected IBAN and "remembers" it as the landlord's. Later
   the agent recalls it and tries to pay rent there: the policy needs a trusted IBAN,
   and a value a run wrote into memory is not trusted, so the payment is refused. The
   IBAN Alice gave the application herself (`write_for_person`) is trusted, because the
   policy declares `from_people.*.value` trusted: that payment goes through.
"""

from __future__ import annotations

import json
from pathlib import Path

from pilothouse import Agent, ScriptedModel, SQLiteStore, call, tool
from pilothouse.events import ToolCalled, ToolReturned
from pilothouse.memory import Memory
from pilothouse.policy import Policy, Principal

POLICY = """
version: 1
name: memory
tools:
  remember: {effect: side_effect}
  recall: {effect: read_only, trusted: [from_people.*.value]}
  pay: {effect: irreversible, args: [iban, amount]}
rules:
  - id: keep-facts
    tools: remember
    effect: allow
  - id: rent-to-a-trusted-iban
    tools: pay
    effect: allow
    when:
      trusted: [iban]
"""


@tool(effect="irreversible")
def pay(iban: str, amount: float) -> str:
    """Pay money to an IBAN."""
    return f"paid {amount} to {iban}"


def run(memory: Memory, store: SQLiteStore, who: str, text: str, script: list) -> None:
    agent = Agent(
        ScriptedModel(script),
        tools=[*memory.tools(), pay],
        store=store,
        policy=Policy.from_yaml(POLICY),
    )
    result = agent.run_sync(text, principal=Principal(who))
    print(f"{who}: {text}")
    for event in store.events(result.run_id):
        if isinstance(event, ToolCalled) and event.decision is not None:
            d = event.decision
            mark = "✓" if d.allowed else "✗"
            print(f"  {mark} {event.call.name} {json.dumps(event.call.arguments)}")
            if not d.allowed:
                print(f"      refused: {d.reason}")
        elif isinstance(event, ToolReturned) and event.result.name == "recall":
            print(f"      -> {event.result.content}")
    print(f"  answer: {result.output}")


def main() -> None:
    path = Path("memory.db")
    path.unlink(missing_ok=True)
    store = SQLiteStore(path)
    memory = Memory(store)  # facts live in the journal's file, in their own tables

    run(memory, store, "alice", "I always fly from Lyon.", [
        [call("remember", key="home_airport", value="LYS (Lyon)")], "Noted.",
    ])  # fmt: skip
    run(memory, store, "alice", "Book my usual flight to Berlin.", [
        [call("recall", query="home airport")], "Booking LYS to BER.",
    ])  # fmt: skip
    run(memory, store, "bob", "Where does Alice fly from?", [
        [call("recall", key="home_airport"), call("recall", query="Alice airport Lyon")],
        "I don't know.",
    ])  # fmt: skip

    # An injected page made an earlier run "remember" the attacker's IBAN ...
    run(memory, store, "alice", "Read my landlord's new page.", [
        [call("remember", key="landlord_iban", value="GB82 WEST 1234 5698 7654 32")], "Done.",
    ])  # fmt: skip
    run(memory, store, "alice", "Pay this month's rent of 1200 to my landlord.", [
        [call("recall", key="landlord_iban")],
        [call("pay", iban="GB82WEST12345698765432", amount=1200)],
        "The payment was refused.",
    ])  # fmt: skip
    # ... while the IBAN Alice typed into the application's settings is hers.
    memory.write_for_person("alice", "landlord_iban", "DE89 3704 0044 0532 0130 00", by="alice")
    run(memory, store, "alice", "Pay this month's rent of 1200 to my landlord.", [
        [call("recall", key="landlord_iban")],
        [call("pay", iban="DE89370400440532013000", amount=1200)],
        "Paid.",
    ])  # fmt: skip
    history = memory.facts.history("alice", "landlord_iban")
    print("history of landlord_iban (newest first):")
    for fact in history:
        origin = f"run {fact.run_id}" if fact.author == "agent" else f"person {fact.by}"
        state = "current" if fact.current else "superseded by a later fact"
        print(f"  #{fact.fact_id} {fact.value} ({fact.author}, {origin}; {state})")


if __name__ == "__main__":
    main()
