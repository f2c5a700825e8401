"""A conversation as a session: each turn is a run that reads the session, not a copy.

Runs offline as written (a scripted model stands in for a real one):

    python examples/conversation.py

Each `agent.run(text, session=...)` is one turn: the run's context is the session's
messages so far (its journal records only how many it saw), the customer's message
joins the session with the run's first write and the answer with its last. A person
can add to the conversation between turns (`session.append`), and a second turn sent
while one is in progress is refused with `SessionBusyError`. Then try
`pilothouse sessions list --store conversation.db` and `pilothouse sessions show ID`.
"""

from __future__ import annotations

from pilothouse import Agent, Message, ScriptedModel, Session, SQLiteStore
from pilothouse.models.base import ModelRequest


def reply(request: ModelRequest) -> str:
    """Answers with how much of the conversation it was sent."""
    earlier = [m for m in request.messages if m.role in ("user", "assistant")][:-1]
    return f"({len(earlier)} earlier messages) You said: {request.messages[-1].content}"


store = SQLiteStore("conversation.db")
agent = Agent(ScriptedModel(reply), "You are a helpful shop assistant.", store=store)
session = Session.create(store, metadata={"customer": "ann@example.com"})

print(agent.run_sync("Hi, I ordered a lamp last week.", session=session).output)
session.append([Message.assistant("(A person joined: I can see your order.)")], author="human:bo")
print(agent.run_sync("When will it arrive?", session=session).output)

print(f"\nsession {session.id}: {session.info().messages} messages")
for m in session.messages():
    who = m.author or m.message.role
    print(f"  {m.seq}. {who:<10} {m.message.content}  [{m.run_id or '-'}]")
store.close()
