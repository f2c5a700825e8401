"""Survive a provider outage: `FallbackModel`, and a cheap-first `RouterModel`.

Runs offline as written: two small OpenAI-compatible endpoints on loopback stand in
for real providers (the first answers one step, then fails with HTTP 503 as an
overloaded provider does; the second answers). Swap in real ones, e.g.
``FallbackModel(["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])``:

    python examples/fallback.py

What it shows:
- a 503 is retried on the same model (``retries=1``), then the next model answers the
  same step: the tool call of step 1 is not made again, its result is in the request;
- the journal says so: a ``model_fallback`` event (from, to, the error kind, attempts)
  and the answering model on each ``model_response``;
- `RouterModel`: the cheap model first, the next one only when a declared condition
  holds (here: its tool call's arguments do not parse), journaled as ``model_route``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pilothouse import Agent, MemoryStore, Policy, tool
from pilothouse.models import FallbackModel, OpenAIModel, RouterModel
from pilothouse.trace import describe


def completion(model: str, text: str = "", call: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if call is not None:
        message["tool_calls"] = [{"id": "call_1", "type": "function", "function": call}]
    return {
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4},
    }


def endpoint(answer: Any, fail_after: int | None = None) -> tuple[str, ThreadingHTTPServer]:
    """An OpenAI-compatible endpoint on loopback; after `fail_after` answers it is 'down'."""
    served = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            served[0] += 1
            if fail_after is not None and served[0] > fail_after:
                code = 503
                reply = {"error": {"message": "The engine is currently overloaded.",
                                   "type": "server_error", "code": None}}  # fmt: skip
            else:
                code, reply = 200, answer(body)
            payload = json.dumps(reply).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1", server


def agent_answer(model: str) -> Any:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        order = next(m for m in body["messages"] if m["role"] == "user")["content"].split()[-1]
        if any(m["role"] == "tool" for m in body["messages"]):
            return completion(model, f"Order {order} is refunded.")
        arguments = json.dumps({"order": order})
        return completion(model, call={"name": "refund", "arguments": arguments})

    return answer


refunds: list[str] = []


@tool(effect="side_effect")
def refund(order: str) -> str:
    """Refund an order."""
    refunds.append(order)
    return f"refunded {order}"


primary_url, primary = endpoint(agent_answer("primary-model"), fail_after=1)
backup_url, backup = endpoint(agent_answer("backup-model"))
store = MemoryStore()
model = FallbackModel(
    [OpenAIModel("primary", base_url=primary_url), OpenAIModel("backup", base_url=backup_url)],
    retries=1,
    backoff=0.1,
)
agent = Agent(model, "Refund orders.", [refund], store=store, policy=Policy.allow_all())
result = agent.run_sync("Please refund A-7")
print("answer:", result.output)
print("refunds made:", refunds)
for event in store.events(result.run_id):
    if event.type in ("tool_call", "model_fallback", "model_response"):
        print(f"  s{event.step} {describe(event, limit=120)}")

# a cheap model first; the next one when its tool call cannot be read
cheap_url, cheap = endpoint(
    lambda body: completion("cheap-model", call={"name": "refund", "arguments": '{"order": '})
)
router = RouterModel(
    [OpenAIModel("cheap", base_url=cheap_url), OpenAIModel("backup", base_url=backup_url)],
    escalate_on="broken_tool_call",
)
routed = Agent(router, "Refund orders.", [refund], store=store, policy=Policy.allow_all())
again = routed.run_sync("Please refund B-2")
print("routed answer:", again.output)
for event in store.events(again.run_id):
    if event.type == "model_route":
        print(f"  s{event.step} {describe(event, limit=160)}")
for server in (primary, backup, cheap):
    server.shutdown()
