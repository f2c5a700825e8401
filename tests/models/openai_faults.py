"""A fault-injecting OpenAI-compatible (and Anthropic Messages) server on loopback.

Each request takes the next `Fault` of the server's script (the last one repeats),
so a test says exactly what the endpoint does: answer, answer 429 with
``Retry-After``, 5xx, 400/401 or a context-length error in OpenAI's real error
format, hang until the test ends, reset the connection, or stream some text and then
close. Answers come from a `Responder`: a function of the request body, so a good
endpoint can act on the conversation (call a tool first, answer once it has a
result). Every request body is kept (`requests`) for assertions on who was asked
what. Plain `http.server` in a thread: no dependency beyond the standard library.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Json = dict[str, Any]
Responder = Callable[[Json], Json]


def openai_error(message: str, type_: str, code: str | None, param: str | None = None) -> Json:
    """An error body in OpenAI's format."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


RATE_LIMIT = openai_error(
    "Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): "
    "Limit 3, Used 3, Requested 1. Please try again in 20s.",
    "requests",
    "rate_limit_exceeded",
)
CONTEXT_LENGTH = openai_error(
    "This model's maximum context length is 8192 tokens. However, your messages resulted "
    "in 9105 tokens. Please reduce the length of the messages.",
    "invalid_request_error",
    "context_length_exceeded",
    "messages",
)
BAD_REQUEST = openai_error(
    "Invalid value for 'temperature': must be between 0 and 2.",
    "invalid_request_error",
    "invalid_value",
    "temperature",
)
AUTHENTICATION = openai_error(
    "Incorrect API key provided: sk-wrong. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    "invalid_request_error",
    "invalid_api_key",
)
CONTENT_POLICY = openai_error(
    "Your request was rejected as a result of our safety system. Your prompt may contain "
    "text that is not allowed by our safety system.",
    "invalid_request_error",
    "content_policy_violation",
)
SERVER_ERROR = openai_error(
    "The server had an error while processing your request. Sorry about that!",
    "server_error",
    None,
)


@dataclass
class Fault:
    """What the server does with one request."""

    kind: str = "answer"  # answer | status | hang | reset | stream_reset
    status: int = 200
    body: Json | None = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""  # stream_reset: what is streamed before the reset


ANSWER = Fault()


def status(code: int, body: Json, **headers: str) -> Fault:
    return Fault("status", code, body, {k.replace("_", "-"): v for k, v in headers.items()})


HANG = Fault("hang")
RESET = Fault("reset")


def stream_reset(text: str) -> Fault:
    return Fault("stream_reset", text=text)


def completion(
    text: str = "", calls: list[tuple[str, Json]] | None = None, model: str = "m"
) -> Json:
    """A chat.completion body as OpenAI sends it."""
    message: Json = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(calls)
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def says(text: str, model: str = "m") -> Responder:
    return lambda body: completion(text, model=model)


class FaultServer:
    """One endpoint: a script of faults, a responder, and the requests it received."""

    def __init__(self, responder: Responder, script: list[Fault] | None = None):
        self.responder = responder
        self.script = list(script or [ANSWER])
        self.requests: list[Json] = []
        self.released = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fault = server._take(body)
                server._serve(self, fault, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _take(self, body: Json) -> Fault:
        with self._lock:
            self.requests.append(body)
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _serve(self, h: BaseHTTPRequestHandler, fault: Fault, body: Json) -> None:
        if fault.kind == "hang":
            self.released.wait(30)
            _reset(h)
            return
        if fault.kind == "reset":
            _reset(h)
            return
        if fault.kind == "status":
            _send(h, fault.status, json.dumps(fault.body).encode(), fault.headers)
            return
        answer = self.responder(body)
        if not body.get("stream"):
            _send(h, 200, json.dumps(answer).encode(), {})
            return
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("connection", "close")
        h.end_headers()
        if fault.kind == "stream_reset":
            # the text, then the connection closes (FIN, so the text is surely read first)
            # without a finish_reason or [DONE]: a server that died mid-answer
            h.wfile.write(_chunk({"content": fault.text}))
            h.wfile.flush()
            h.close_connection = True
            return
        message = answer["choices"][0]["message"]
        if message.get("content"):
            for word in str(message["content"]).split(" "):
                h.wfile.write(_chunk({"content": word + " "}))
        for i, call in enumerate(message.get("tool_calls") or ()):
            h.wfile.write(_chunk({"tool_calls": [{"index": i, **call}]}))
        h.wfile.write(_chunk({}, answer["choices"][0]["finish_reason"], answer["usage"]))
        h.wfile.write(b"data: [DONE]\n\n")
        h.wfile.flush()
        h.close_connection = True

    def start(self) -> FaultServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _chunk(delta: Json, finish: str | None = None, usage: Json | None = None) -> bytes:
    data: Json = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return f"data: {json.dumps(data)}\n\n".encode()


def _send(h: BaseHTTPRequestHandler, code: int, payload: bytes, headers: dict[str, str]) -> None:
    h.send_response(code)
    h.send_header("content-type", "application/json")
    h.send_header("content-length", str(len(payload)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(payload)
    h.wfile.flush()


def _reset(h: BaseHTTPRequestHandler) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), as a crashed proxy does."""
    sock: socket.socket = h.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.close_connection = True
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextmanager
def serving(responder: Responder, script: list[Fault] | None = None) -> Iterator[FaultServer]:
    server = FaultServer(responder, script).start()
    try:
        yield server
    finally:
        server.stop()


def refused_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
