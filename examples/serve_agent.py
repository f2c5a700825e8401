"""Serve an agent behind OpenAI's chat API and talk to it with the official client.

    python examples/serve_agent.py                 # serves, asks three questions, stops
    pilothouse serve-agent serve_agent:agents      # (from examples/) serves until Ctrl-C

The agent looks orders up with a tool that runs on the server; the client only sees
the answers. Its model is scripted here so the example runs anywhere, offline and
deterministic; put ``"openai:gpt-4o-mini"`` or ``"local"`` in its place for a real one.
Every request is a journaled run (``pilothouse trace list --store serve_agent.db``);
the third and fourth are turns of one session, so the client sends only its new message.
"""

from __future__ import annotations

import re
from typing import Any

from pilothouse import Agent, tool
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel

ORDERS = {"A1001": "shipped on Monday", "A1002": "waiting for stock"}


@tool
def order_status(order_id: str) -> str:
    """Where an order is."""
    return ORDERS.get(order_id, "no such order")


def scripted(request: ModelRequest) -> Any:
    """What a model would do: look the order up, then answer from the result."""
    last = max(i for i, m in enumerate(request.messages) if m.role == "user")
    text = request.messages[last].content
    results = [m.content for m in request.messages[last + 1 :] if m.role == "tool"]
    order = re.search(r"A\d{4}", text)
    if order and not results:
        return ToolCall(f"call-{last}", "order_status", {"order_id": order.group()})
    if results:
        return f"Order {order.group() if order else '?'}: {results[0]}."
    turns = sum(1 for m in request.messages[:last] if m.role == "user")
    return f"Hello! Give me an order number. (earlier questions in this chat: {turns})"


agents = {
    "orders": Agent(
        ScriptedModel(scripted, record=False),
        "You answer questions about orders.",
        [order_status],
        name="orders",
        store="serve_agent.db",
    )
}


def main() -> None:
    import openai

    from pilothouse.serving import BackgroundServer, create_app

    with BackgroundServer(create_app(agents)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed-when-open")
        print("models:", [m.id for m in client.models.list()])

        answer = client.chat.completions.create(
            model="orders", messages=[{"role": "user", "content": "Where is A1001?"}]
        )
        print("answer:", answer.choices[0].message.content)
        print("usage: ", answer.usage.total_tokens if answer.usage else None, "tokens")

        stream = client.chat.completions.create(
            model="orders",
            messages=[{"role": "user", "content": "And A1002?"}],
            stream=True,
        )
        print("stream:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))

        # A session: the server makes it (an unguessable name, in a response header);
        # later turns send only their new message, the history is read from the journal.
        first = client.chat.completions.with_raw_response.create(
            model="orders",
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"X-Pilothouse-Session": "new"},
        )
        session = first.headers["x-pilothouse-session"]
        print("turn 1:", first.parse().choices[0].message.content)
        second = client.chat.completions.create(
            model="orders",
            messages=[{"role": "user", "content": "Hi again"}],
            extra_headers={"X-Pilothouse-Session": session},
        )
        print("turn 2:", second.choices[0].message.content)
        print("run:   ", second.model_extra["pilothouse"]["run_id"] if second.model_extra else "")


if __name__ == "__main__":
    main()
