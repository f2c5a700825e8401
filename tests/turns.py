"""What the resume tests share: a crash nothing catches, and a scripted model that
answers by how far the conversation got, as a real model would on resume."""

from __future__ import annotations

from typing import Any

from pilothouse import ScriptedModel
from pilothouse.models.base import ModelRequest


class Crash(BaseException):
    """Stands in for the process dying mid-call: nothing catches it, the journal commits."""


def by_turn(replies: list[Any]) -> ScriptedModel:
    """Replies by the number of assistant turns so far, so a resumed run gets the same
    reply for the same step."""

    def reply(request: ModelRequest) -> Any:
        return replies[sum(1 for m in request.messages if m.role == "assistant")]

    return ScriptedModel(reply)
