"""An agent whose one side effect is always left in doubt: its mail server takes the
text and never answers, so the send is cut off by its timeout (the flow and chain tests
of settling a node's call)."""

from __future__ import annotations

import asyncio

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import Store


def hanging_mailer(sent: list[str], store: Store) -> Agent[None, str]:
    """Sends the prompt (appended to `sent`), then answers "done: <the send's result>"."""

    @tool(effect="side_effect", timeout=0.2)
    async def send(text: str) -> str:
        """Send the text."""
        sent.append(text)
        await asyncio.sleep(3600)
        return "sent"

    model = ScriptedModel(
        lambda request: (
            call("send", text=request.messages[-1].content)
            if not any(m.role == "tool" for m in request.messages)
            else "done: " + [m for m in request.messages if m.role == "tool"][-1].content
        )
    )
    policy = Policy([Rule("send", "allow")])
    return Agent(model, "Send it.", [send], name="mailer", store=store, policy=policy)
