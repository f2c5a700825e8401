"""Model responses for the OpenAI Agents SDK workloads (`workloads.py`,
`team_workloads.py`): what an instant scripted model returns, as Responses API items,
so that the SDK's runner does all of its own work on them.

Imported only inside the SDK's workloads, in the venv that has `openai-agents`.
"""

from __future__ import annotations

from typing import Any


def sdk_reply(call: tuple[str, str, str] | None, answer: str) -> Any:
    """One `ModelResponse`: a function call (``(call id, tool name, JSON arguments)``),
    or, when `call` is None, the final `answer` as an assistant message."""
    from agents.items import ModelResponse
    from agents.usage import Usage
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    output: list[Any]
    if call is not None:
        call_id, name, arguments = call
        output = [
            ResponseFunctionToolCall(
                id=f"f{call_id}",
                call_id=call_id,
                name=name,
                arguments=arguments,
                type="function_call",
                status="completed",
            )
        ]
    else:
        text = ResponseOutputText(text=answer, type="output_text", annotations=[])
        output = [
            ResponseOutputMessage(
                id="msg", role="assistant", status="completed", type="message", content=[text]
            )
        ]
    return ModelResponse(output=output, usage=Usage(), response_id=None)
