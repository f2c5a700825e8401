"""Action formats: how a model without native tool calling acts, and how its text is read.

    from pilothouse.actions import get_format
    result = get_format("react").parse(text, tools)
    result.kind  # "tool_call" | "final_answer" | "unrecoverable"

Formats: `json`, `react`, `xml`, `native` (repairs a native call's arguments),
`auto` (detects the style, including DeepSeek, Llama `<|python_tag|>` and Mistral
`[TOOL_CALLS]` special tokens). See `repair` for the repairs every format applies.
"""

from pilothouse.actions.base import ActionFormat, ParsedCall, ParseResult, Resolver
from pilothouse.actions.formats import (
    FORMATS,
    AutoFormat,
    JsonFormat,
    NativeFormat,
    ReactFormat,
    XmlFormat,
    get_format,
)

__all__ = [
    "FORMATS",
    "ActionFormat",
    "AutoFormat",
    "JsonFormat",
    "NativeFormat",
    "ParseResult",
    "ParsedCall",
    "ReactFormat",
    "Resolver",
    "XmlFormat",
    "get_format",
]
