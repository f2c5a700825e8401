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
    from pilothouse.models.fallback import FallbackModel
    from pilothouse.models.local import LocalModel
    from pilothouse.models.openai import OpenAIModel
    from pilothouse.models.routing import RouterModel

__all__ = [
    "Capabilities",
    "FallbackModel",
    "LocalModel",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "OpenAIModel",
    "RouterModel",
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
    if name == "FallbackModel":
        from pilothouse.models.fallback import FallbackModel

        return FallbackModel
    if name == "RouterModel":
        from pilothouse.models.routing import RouterModel

        return RouterModel
    if name == "LocalModel":
        from pilothouse.models.local import LocalModel

        return LocalModel
    raise AttributeError(f"module 'pilothouse.models' has no attribute {name!r}")
