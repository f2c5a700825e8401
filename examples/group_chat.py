"""Research, write, review: three agents in a group chat, a model choosing who speaks.

Runs offline as written (scripted models stand in for real ones; give each agent
``"openai:gpt-4o-mini"`` or ``"local"`` instead):

    python examples/group_chat.py

What it shows:
- `ModelSelector`: a model picks the next speaker from the members' descriptions, its
  reply held to a JSON schema whose ``speaker`` is an enum of their names; here its
  first reply names someone who is not a member, is refused and asked again;
- what a member sees: the conversation as messages naming their speakers, never the
  researcher's tool calls;
- `TextMention("APPROVED") | MaxMessages(8)`: composable termination, the reason
  journaled (`team_ended`);
- each turn and each selection is a child run of the chat; the team's usage is the
  sum of them all, to the token.
"""

from __future__ import annotations

import asyncio

from pilothouse import Agent, ScriptedModel, SQLiteStore, tool
from pilothouse.models.scripted import call
from pilothouse.teams.groupchat import GroupChat, MaxMessages, Member, ModelSelector, TextMention


@tool
def search_notes(topic: str) -> str:
    """Search the research notes for a topic."""
    return "Tides: two highs a day, driven mostly by the Moon's pull (Sun about 46%)."


async def main() -> None:
    store = SQLiteStore("group_chat.db")
    researcher = Agent(
        ScriptedModel(
            [call("search_notes", topic="tides"), "Facts: two high tides a day; Moon, then Sun."]
        ),
        name="researcher",
        tools=[search_notes],
        store=store,
    )
    writer = Agent(
        ScriptedModel(
            [
                "Draft: The Moon pulls the sea into two bulges; we meet each twice a day.",
                "Draft 2: The Moon (and, half as much, the Sun) pulls the sea into two "
                "bulges; most coasts meet each twice a day.",
            ]
        ),
        name="writer",
        store=store,
    )
    reviewer = Agent(
        ScriptedModel(["Mention the Sun's share.", "APPROVED"]),
        name="reviewer",
        store=store,
    )
    selector = ScriptedModel(
        [
            '{"speaker": "researcher"}',
            '{"speaker": "editor-in-chief"}',  # not a member: refused, asked again
            '{"speaker": "writer"}',
            '{"speaker": "reviewer"}',
            '{"speaker": "writer"}',
            '{"speaker": "reviewer"}',
        ]
    )
    chat = GroupChat(
        [
            Member(researcher, "finds facts in the notes"),
            Member(writer, "writes and revises the text"),
            Member(reviewer, "reviews a draft; says APPROVED when it is good"),
        ],
        selector=ModelSelector(selector),
        termination=TextMention("APPROVED") | MaxMessages(8),
        name="tides-team",
        store=store,
    )
    result = await chat.run("Write two sentences on why there are tides.")
    for said in result.transcript:
        print(f"[{said.speaker}] {said.text}")
    print("stopped:", result.reason)
    for event in store.events(result.run_id):
        if event.type == "speaker_selected":
            print(f"turn {event.step}: {event.chosen} ({event.how})")  # type: ignore[attr-defined]
    writer_saw = writer.model.requests[0].messages  # type: ignore[attr-defined]
    print("the writer saw a tool call:", any("search_notes" in m.content for m in writer_saw))
    print("selector calls:", len(selector.requests))
    print(
        "team tokens:", result.usage.total_tokens, "children:", len(store.children(result.run_id))
    )


if __name__ == "__main__":
    asyncio.run(main())
