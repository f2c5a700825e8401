"""Pilothouse: build, run, evaluate and guard LLM agents.

The public API is re-exported here and loaded lazily, so ``import pilothouse``
stays cheap; the first use of a name imports its module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pilothouse._version import __version__

if TYPE_CHECKING:
    from pilothouse.agent import Agent
    from pilothouse.events import Event
    from pilothouse.exceptions import (
        ApprovalError,
        BudgetExceeded,
        ChildRunError,
        ConfigurationError,
        LoopDetected,
        ModelError,
        ModelRetry,
        OutputValidationError,
        PilothouseError,
        ReplayDivergence,
        RunPaused,
        RunStopped,
        SessionBusyError,
        SessionExistsError,
        SessionNotFoundError,
        ToolError,
    )
    from pilothouse.flows import Chain, Graph
    from pilothouse.guided import GuidedModel
    from pilothouse.messages import Message, ToolCall, ToolResult, Usage
    from pilothouse.models import (
        LocalModel,
        Model,
        ModelRequest,
        ModelResponse,
        ModelSettings,
        OpenAIModel,
        ScriptedModel,
        call,
        resolve_model,
    )
    from pilothouse.policy import Decision, Policy, Principal, Rule
    from pilothouse.prompts import Prompts
    from pilothouse.runtime.budget import Budget
    from pilothouse.runtime.journal import MemoryStore, SQLiteStore, open_store
    from pilothouse.runtime.loop import PendingRequest, RunResult
    from pilothouse.runtime.session import Session, SessionInfo, SessionMessage
    from pilothouse.runtime.step import StepContext, StepOptions
    from pilothouse.tools import Tool, ToolContext, ask_human, tool

_EXPORTS: dict[str, str] = {
    "Agent": "pilothouse.agent",
    "Prompts": "pilothouse.prompts",
    "GuidedModel": "pilothouse.guided",
    "Chain": "pilothouse.flows",
    "Graph": "pilothouse.flows",
    "Event": "pilothouse.events",
    "ApprovalError": "pilothouse.exceptions",
    "BudgetExceeded": "pilothouse.exceptions",
    "ConfigurationError": "pilothouse.exceptions",
    "ChildRunError": "pilothouse.exceptions",
    "LoopDetected": "pilothouse.exceptions",
    "ModelError": "pilothouse.exceptions",
    "ModelRetry": "pilothouse.exceptions",
    "OutputValidationError": "pilothouse.exceptions",
    "PilothouseError": "pilothouse.exceptions",
    "ReplayDivergence": "pilothouse.exceptions",
    "RunPaused": "pilothouse.exceptions",
    "RunStopped": "pilothouse.exceptions",
    "SessionBusyError": "pilothouse.exceptions",
    "SessionExistsError": "pilothouse.exceptions",
    "SessionNotFoundError": "pilothouse.exceptions",
    "ToolError": "pilothouse.exceptions",
    "Message": "pilothouse.messages",
    "ToolCall": "pilothouse.messages",
    "ToolResult": "pilothouse.messages",
    "Usage": "pilothouse.messages",
    "LocalModel": "pilothouse.models",
    "Model": "pilothouse.models",
    "ModelRequest": "pilothouse.models",
    "ModelResponse": "pilothouse.models",
    "ModelSettings": "pilothouse.models",
    "OpenAIModel": "pilothouse.models",
    "ScriptedModel": "pilothouse.models",
    "call": "pilothouse.models",
    "resolve_model": "pilothouse.models",
    "Decision": "pilothouse.policy",
    "Policy": "pilothouse.policy",
    "Principal": "pilothouse.policy",
    "Rule": "pilothouse.policy",
    "Budget": "pilothouse.runtime.budget",
    "MemoryStore": "pilothouse.runtime.journal",
    "SQLiteStore": "pilothouse.runtime.journal",
    "open_store": "pilothouse.runtime.journal",
    "PendingRequest": "pilothouse.runtime.loop",
    "RunResult": "pilothouse.runtime.loop",
    "Session": "pilothouse.runtime.session",
    "SessionInfo": "pilothouse.runtime.session",
    "SessionMessage": "pilothouse.runtime.session",
    "StepContext": "pilothouse.runtime.step",
    "StepOptions": "pilothouse.runtime.step",
    "Tool": "pilothouse.tools",
    "ToolContext": "pilothouse.tools",
    "ask_human": "pilothouse.tools",
    "tool": "pilothouse.tools",
}

__all__ = [
    "Agent",
    "ApprovalError",
    "Budget",
    "BudgetExceeded",
    "Chain",
    "ChildRunError",
    "ConfigurationError",
    "Decision",
    "Event",
    "Graph",
    "GuidedModel",
    "LocalModel",
    "LoopDetected",
    "MemoryStore",
    "Message",
    "Model",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelRetry",
    "ModelSettings",
    "OpenAIModel",
    "OutputValidationError",
    "PendingRequest",
    "PilothouseError",
    "Policy",
    "Principal",
    "Prompts",
    "ReplayDivergence",
    "Rule",
    "RunPaused",
    "RunResult",
    "RunStopped",
    "SQLiteStore",
    "ScriptedModel",
    "Session",
    "SessionBusyError",
    "SessionExistsError",
    "SessionInfo",
    "SessionMessage",
    "SessionNotFoundError",
    "StepContext",
    "StepOptions",
    "Tool",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "Usage",
    "__version__",
    "ask_human",
    "call",
    "open_store",
    "resolve_model",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pilothouse' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
