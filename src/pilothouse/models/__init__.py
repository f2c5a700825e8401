"""Model adapters behind one protocol; heavy adapters load only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.models.base import (
    Capabilities,
    Model,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    StreamItem,
    TextDelta,
    ToolSpec,
)
from pilothouse.models.registry import register_model, resolve_model
from pilothouse.models.scripted import ScriptedModel, call

if TYPE_CHECKING:
    from pilothouse.models.local import LocalModel
    from pilothouse.models.openai import OpenAIModel

__all__ = [
    "Capabilities",
    "LocalModel",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "OpenAIModel",
    "ScriptedModel",
    "StreamItem",
    "TextDelta",
    "ToolSpec",
    "call",
    "register_model",
    "resolve_model",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAIModel":
        from pilothouse.models.openai import OpenAIModel

        return OpenAIModel
    if name == "LocalModel":
        from pilothouse.models.local import LocalModel

        return LocalModel
    raise AttributeError(f"module 'pilothouse.models' has no attribute {name!r}")
