"""OpenAI's chat-completions wire format, read and written (pure: no HTTP, no agent).

What a request may hold, and what this endpoint does with it:

* ``model`` names the agent; ``messages`` is the conversation: the last message must
  be the user's (it is the run's input), the earlier ones are ``user`` and
  ``assistant`` text (the history, unless a session supplies it). ``content`` is a
  string or a list of ``{"type": "text"}`` parts.
* ``system`` and ``developer`` messages are refused: the agent's instructions are its
  own, and a client that could replace them could switch its policy's context off.
  ``tool`` messages, assistant ``tool_calls`` and ``tools``/``functions`` are refused
  too: an agent's tools run on the server, the client never runs one.
* ``stream`` (SSE chunks ending ``data: [DONE]``), ``stream_options.include_usage``
  (a last chunk with ``usage``, as OpenAI sends it), ``stream_options.include_steps``
  (this endpoint's: a chunk per tool call, result and child run, `step_note`),
  ``user`` (a session name when no header names one), ``n`` (only 1).
* Sampling parameters (``temperature``, ``max_tokens``, ``top_p``, ``stop``, ...) are
  accepted and ignored: the agent's own settings and budget decide.

Responses and chunks carry OpenAI's fields, plus a ``pilothouse`` object (run id,
outcome, session, what a paused run waits for): the official client keeps unknown
fields (``completion.model_extra``), so nothing it reads changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.events import ChildStarted, Event, ToolCalled, ToolReturned
from pilothouse.exceptions import RequestRejected
from pilothouse.messages import Message, Usage

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects in a request body (a chat request needs four)."""
MAX_SESSION_NAME = 128
SESSION_NAME = re.compile(r"[A-Za-z0-9._@+~-]{1,128}")
"""What a client may call a session: no spaces, separators or control characters (a
name reaches logs and the store's ids); e-mail-like ``user`` values fit."""
_ROLES_ACCEPTED = ("user", "assistant")
_JSON_SPECIAL = re.compile(r'[\\"\[\]{}]')


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat-completions request, checked: the agent's name, the run's input, the
    earlier conversation, whether to stream (and to end with a usage chunk), and the
    session name from the ``user`` field (None: not given)."""

    model: str
    input: str
    history: tuple[Message, ...]
    stream: bool
    include_usage: bool
    user: str | None
    include_steps: bool = False


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON `text` nests arrays and objects more than `limit` deep.

    Measured by one pass over the structural characters, skipping strings, before the
    parser sees it: the parser recurses once per level, so a body of 100,000 ``[``
    would otherwise exhaust the stack (a RecursionError, or worse).
    """
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: too few openers to be too deep
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_SPECIAL.finditer(text):
        char, at = match.group(), match.start()
        if at == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_body(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The request body as a JSON object, or `RequestRejected` (400) saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRejected(400, "the request body is not UTF-8 text") from None
    if json_too_deep(text, max_depth):
        raise RequestRejected(400, f"the request body nests deeper than {max_depth} levels")
    try:
        body = json.loads(text)
    except ValueError:
        raise RequestRejected(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestRejected(400, "the request body must be a JSON object")
    return body


def _text_of(content: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts (other parts refused)."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        pieces = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise RequestRejected(
                    400,
                    f"{where}.content[{i}]: only text parts are accepted",
                    param=f"{where}.content",
                )
            value = part.get("text")
            if not isinstance(value, str):
                raise RequestRejected(
                    400, f"{where}.content[{i}].text must be a string", param=f"{where}.content"
                )
            pieces.append(value)
        text = "".join(pieces)
    elif content is None:
        text = ""
    else:
        raise RequestRejected(
            400, f"{where}.content must be a string or a list of text parts", param=where
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") parses but cannot be stored
        raise RequestRejected(
            400, f"{where}.content is not valid Unicode (a lone surrogate)", param=where
        ) from None
    return text


def _message(item: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise RequestRejected(400, f"{where} must be an object", param=where)
    role = item.get("role")
    if role in ("system", "developer"):
        raise RequestRejected(
            400,
            f"{where}: {role} messages are not accepted: the agent's instructions are its "
            "own (send user and assistant messages)",
            param=f"{where}.role",
        )
    if role == "tool" or item.get("tool_calls") or item.get("function_call"):
        raise RequestRejected(
            400,
            f"{where}: tool messages and tool calls are not accepted: the agent's tools run "
            "on the server",
            param=where,
        )
    if role not in _ROLES_ACCEPTED:
        raise RequestRejected(
            400, f"{where}.role must be 'user' or 'assistant'", param=f"{where}.role"
        )
    text = _text_of(item.get("content"), where)
    return Message.user(text) if role == "user" else Message.assistant(text)


def parse_chat_request(body: Mapping[str, Any]) -> ChatRequest:
    """Check a chat-completions body (see the module's docs) and read what the run needs."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestRejected(400, "'model' must name one of the served agents", param="model")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise RequestRejected(400, "'messages' must be a non-empty list", param="messages")
    for unsupported in ("tools", "functions", "tool_choice", "function_call"):
        if body.get(unsupported) not in (None, [], "none"):
            raise RequestRejected(
                400,
                f"'{unsupported}' is not supported: the agent's own tools run on the server "
                "and the client receives its final answer",
                param=unsupported,
            )
    n = body.get("n")
    if n is not None and n != 1:
        raise RequestRejected(400, "'n' must be 1: a run gives one answer", param="n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise RequestRejected(400, "'stream' must be true or false", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestRejected(400, "'stream_options' must be an object", param="stream_options")
    include_usage = bool(options and options.get("include_usage") is True)
    include_steps = bool(options and options.get("include_steps") is True)
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or not SESSION_NAME.fullmatch(user)):
        raise RequestRejected(
            400,
            "'user' names a session: 1 to 128 letters, digits or . _ @ + ~ -",
            param="user",
        )
    messages = [_message(item, i) for i, item in enumerate(raw_messages)]
    last = messages[-1]
    if last.role != "user" or not last.content.strip():
        raise RequestRejected(
            400,
            "the last message must be the user's, with text: it is what the agent answers",
            param="messages",
        )
    return ChatRequest(
        model,
        last.content,
        tuple(messages[:-1]),
        bool(stream),
        include_usage,
        user or None,
        include_steps,
    )


_CALL_STATUS = {"allow": "running", "deny": "refused", "ask": "waiting"}


def step_note(event: Event) -> dict[str, Any] | None:
    """What a streaming client that asked for steps (``include_steps``) reads of one of
    the run's events, or None for events it is not shown.

    Names and statuses only: a tool call's arguments, a tool's result and the policy's
    reason stay on the server (an approver reads them; a client reads its answer). So a
    chat UI can say "looking up the order..." without a customer seeing internals."""
    if isinstance(event, ToolCalled):
        decision = event.decision
        status = "invalid" if decision is None else _CALL_STATUS.get(decision.effect, "running")
        return {"type": "tool_call", "step": event.step, "tool": event.call.name, "status": status}
    if isinstance(event, ToolReturned):
        return {
            "type": "tool_result",
            "step": event.step,
            "tool": event.result.name,
            "ok": not event.result.is_error,
        }
    if isinstance(event, ChildStarted):
        return {"type": "child_run", "step": event.step, "agent": event.agent}
    return None


def usage_json(usage: Usage) -> dict[str, int]:
    """A run's usage (every model call of it) in OpenAI's form."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def completion(
    completion_id: str,
    created: int,
    model: str,
    content: str,
    finish_reason: str,
    usage: Usage,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """A whole ``chat.completion`` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_json(usage),
        "system_fingerprint": None,
        "pilothouse": extra,
    }


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    *,
    usage: Usage | None = None,
    include_usage: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``: a delta (None: the usage chunk, whose ``choices``
    is empty). With `include_usage` every chunk carries ``usage`` (null but the last),
    as OpenAI sends them."""
    data: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage:
        data["usage"] = usage_json(usage) if usage is not None else None
    if extra is not None:
        data["pilothouse"] = extra
    return data


def sse(data: dict[str, Any]) -> bytes:
    """One Server-Sent Event of a chat stream (OpenAI sends ``data:`` lines only)."""
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def error_json(exc: RequestRejected) -> dict[str, Any]:
    """OpenAI's error object for a refused request."""
    return {
        "error": {
            "message": str(exc),
            "type": exc.type,
            "param": exc.param,
            "code": exc.code,
        }
    }


def model_json(name: str, created: int = 0) -> dict[str, Any]:
    """An agent as an entry of ``/v1/models``."""
    return {"id": name, "object": "model", "created": created, "owned_by": "pilothouse"}
