"""Typed tools: `@tool`, `Tool`, and the `ToolContext` a tool may ask for."""

from pilothouse.tools.tool import Effect, Tool, ToolArgumentError, ToolContext, as_tool, tool

__all__ = ["Effect", "Tool", "ToolArgumentError", "ToolContext", "as_tool", "tool"]
