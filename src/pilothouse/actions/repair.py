"""Repairs for the ways real models break their actions, each bounded and total.

Strict parsing always runs first: a repair only touches text that does not parse
as written, so a valid apostrophe inside a JSON string is never "fixed". Every
function here takes arbitrary text and returns a value or `None`; none raises,
and each does work linear in the input (capped at `MAX_CHARS`).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 1_000_000
"""Longer outputs are refused rather than scanned: no model action is this long."""

REPAIR_MAX_CHARS = 100_000
"""Repairs (a Python-speed pass, `ast`) run only on candidates up to this size;
larger text is parsed strictly or not at all, so any input costs well under a second."""

MAX_DEPTH = 200
"""Deeper nesting than this is refused before any recursive parser sees it."""

_MAX_SPANS = 64

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n?")
_STRUCTURAL = re.compile(r"[{}\[\]\"'\\]")


@dataclass(slots=True)
class Loaded:
    """A value parsed from text, the repairs it needed, and where it ended."""

    value: Any
    repairs: tuple[str, ...] = ()


def too_deep(text: str) -> bool:
    """True when brackets nest deeper than `MAX_DEPTH` (a cheap guard before json/ast)."""
    depth = 0
    for m in re.finditer(r"[{\[\]}]", text):
        if m.group() in "{[":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth = max(0, depth - 1)
    return False


def strip_think(text: str) -> tuple[str, bool]:
    """Remove a `<think>...</think>` block (reasoning, not action).

    A block counts only where reasoning stands: at the start of the reply, or closed
    before any JSON or tool-call markup begins (DeepSeek-R1 may omit the opening
    tag). A `</think>` inside an argument string is data and stays.
    """
    end = text.find("</think>")
    if end < 0:
        return text, False
    starts_with_block = text.lstrip().startswith("<think>")
    before = text[:end]
    if not starts_with_block and ("{" in before or "<tool_call>" in before):
        return text, False
    start = text.find("<think>")
    head = text[:start] if 0 <= start < end else ""
    return head + text[end + len("</think>") :], True


def fenced_blocks(text: str) -> list[str]:
    """Contents of markdown code fences, tolerating an unclosed last fence and nesting."""
    out: list[str] = []
    pos = 0
    while len(out) < _MAX_SPANS:
        m = _FENCE.search(text, pos)
        if m is None:
            break
        end = text.find("```", m.end())
        if end < 0:
            out.append(text[m.end() :])
            break
        out.append(text[m.end() : end])
        pos = end + 3
    return out


def _python_to_json(text: str) -> tuple[str, list[str]]:
    """Rewrite Python-literal and sloppy JSON into strict JSON, one linear pass.

    Handles single-quoted strings (only where a string can start, and closed only
    where a string can end, so apostrophes inside survive), True/False/None,
    trailing commas and raw newlines or control characters inside strings.
    """
    out: list[str] = []
    repairs: list[str] = []
    i, n = 0, len(text)
    prev = ""  # last significant character outside strings
    while i < n:
        c = text[i]
        if c == '"' or (c == "'" and prev in ("", "{", "[", ",", ":")):
            quote = c
            j = i + 1
            buf: list[str] = []
            closed = False
            while j < n:
                d = text[j]
                if d == "\\" and j + 1 < n:
                    nxt = text[j + 1]
                    if quote == "'" and nxt == "'":
                        buf.append("'")
                    else:
                        buf.append(d + nxt)
                    j += 2
                    continue
                if d == quote:
                    if quote == "'":
                        k = j + 1
                        while k < n and text[k] in " \t\r\n":
                            k += 1
                        if k < n and text[k] not in ",:}]":
                            buf.append("'")  # an apostrophe, not the end of the string
                            j += 1
                            continue
                    closed = True
                    break
                if d == '"' and quote == "'":
                    buf.append('\\"')
                elif d == "\n":
                    buf.append("\\n")
                    if "newline_in_string" not in repairs:
                        repairs.append("newline_in_string")
                elif d < " ":
                    buf.append(f"\\u{ord(d):04x}")
                    if "control_char_in_string" not in repairs:
                        repairs.append("control_char_in_string")
                else:
                    buf.append(d)
                j += 1
            if quote == "'" and "single_quotes" not in repairs:
                repairs.append("single_quotes")
            out.append('"' + "".join(buf) + '"')
            prev = '"'
            i = j + 1 if closed else j
            continue
        if c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            mapped = {"True": "true", "False": "false", "None": "null"}.get(word)
            if mapped is not None:
                if "python_literals" not in repairs:
                    repairs.append("python_literals")
                word = mapped
            out.append(word)
            prev = "a"
            i = j
            continue
        if c in "}]" and prev == ",":
            # drop the trailing comma already written
            for k in range(len(out) - 1, -1, -1):
                if out[k] == ",":
                    del out[k]
                    break
                if not out[k].isspace():
                    break
            if "trailing_comma" not in repairs:
                repairs.append("trailing_comma")
        out.append(c)
        if not c.isspace():
            prev = c
        i += 1
    return "".join(out), repairs


def loads(text: str) -> Loaded | None:
    """Parse one JSON value, repairing it if strict parsing fails; `None` if hopeless."""
    text = text.strip()
    if not text or len(text) > MAX_CHARS or too_deep(text):
        return None
    try:
        return Loaded(json.loads(text))
    except (ValueError, RecursionError):
        pass
    try:
        return Loaded(json.loads(text, strict=False), ("control_char_in_string",))
    except (ValueError, RecursionError):
        pass
    if len(text) > REPAIR_MAX_CHARS:
        return None
    try:
        fixed, repairs = _python_to_json(text)
        return Loaded(json.loads(fixed, strict=False), tuple(repairs))
    except (ValueError, RecursionError):
        pass
    if text[0] in "{[('\"":
        try:
            value = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
        if isinstance(value, tuple):
            value = list(value)
        try:
            json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            return None
        return Loaded(value, ("python_literal",))
    return None


def balanced_spans(text: str) -> list[tuple[int, int]]:
    """Outermost complete `{...}`/`[...]` spans, in order, found in one linear pass.

    Strings are tracked only inside brackets, so prose quotes around an action
    do not confuse the scan; a span left open by a cut-off reply is not returned,
    but complete spans nested inside it are.
    """
    if len(text) > MAX_CHARS:
        return []
    stack: list[tuple[int, str]] = []
    spans: list[tuple[int, int]] = []
    quote = ""
    for m in _STRUCTURAL.finditer(text):
        c = m.group()
        i = m.start()
        if quote:
            if c == "\\":
                continue  # the escaped char is skipped below by the lookbehind check
            if c == quote and not _escaped(text, i):
                quote = ""
            continue
        if not stack:
            if c in "{[":
                stack.append((i, c))
            continue
        if c in "\"'":
            before = _prev_significant(text, i)
            if c == '"' or before in "{[,:":
                quote = c
            continue
        if c in "{[":
            stack.append((i, c))
            if len(stack) > MAX_DEPTH:
                return spans
        elif c in "}]":
            start, opener = stack[-1]
            if (opener == "{") != (c == "}"):
                stack.clear()  # mismatched: abandon this region
                continue
            stack.pop()
            spans.append((start, i + 1))  # nested spans too: a cut-off outer one may hold calls
        if len(spans) >= _MAX_SPANS * 4:
            break
    # keep outermost complete spans only
    spans.sort(key=lambda s: (s[0], -s[1]))
    out: list[tuple[int, int]] = []
    for s in spans:
        if out and s[0] >= out[-1][0] and s[1] <= out[-1][1]:
            continue
        out.append(s)
        if len(out) >= _MAX_SPANS:
            break
    return out


def _escaped(text: str, i: int) -> bool:
    k = i - 1
    count = 0
    while k >= 0 and text[k] == "\\":
        count += 1
        k -= 1
    return count % 2 == 1


def _prev_significant(text: str, i: int) -> str:
    k = i - 1
    while k >= 0 and text[k] in " \t\r\n":
        k -= 1
    return text[k] if k >= 0 else ""


def first_value(text: str) -> tuple[Loaded, int] | None:
    """The first complete JSON-ish value at the start of `text`, and where it ends."""
    stripped = text.lstrip()
    offset = len(text) - len(stripped)
    if not stripped or stripped[0] not in "{[":
        return None
    spans = balanced_spans(stripped)
    if not spans or spans[0][0] != 0:
        return None
    loaded = loads(stripped[: spans[0][1]])
    return None if loaded is None else (loaded, offset + spans[0][1])


def python_call_args(args_text: str) -> dict[str, Any] | None:
    """Keyword (or one positional) arguments of `name(...)` written in Python syntax."""
    if len(args_text) > REPAIR_MAX_CHARS or too_deep(args_text):
        return None
    try:
        node = ast.parse(f"f({args_text})", mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if not isinstance(node, ast.Call):
        return None
    out: dict[str, Any] = {}
    try:
        for kw in node.keywords:
            if kw.arg is None:
                return None
            out[kw.arg] = ast.literal_eval(kw.value)
        if node.args:
            if len(node.args) > 1 or out:
                return None
            out[""] = ast.literal_eval(node.args[0])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return out


_CALL = re.compile(r"([A-Za-z_][\w.\-]*)\s*\(")


def python_calls(text: str) -> list[tuple[str, dict[str, Any]]] | None:
    """`name(k=v)`, `name.call(k=v)` or `[a(...), b(...)]` as written by pythonic models."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    if len(body) > REPAIR_MAX_CHARS or too_deep(body):
        return None
    try:
        tree = ast.parse(f"[{body}]", mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if not isinstance(tree, ast.List) or not tree.elts:
        return None
    calls: list[tuple[str, dict[str, Any]]] = []
    for elt in tree.elts[:64]:
        if not isinstance(elt, ast.Call):
            return None
        func = elt.func
        if isinstance(func, ast.Attribute) and func.attr == "call":
            func = func.value
        name = _dotted(func)
        if name is None:
            return None
        args = python_call_args(ast.unparse(elt)[len(ast.unparse(elt.func)) + 1 : -1])
        if args is None:
            return None
        calls.append((name, args))
    return calls


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def close_truncated_call(args_text: str) -> dict[str, Any] | None:
    """Arguments of a call cut off mid-string (`answer="...`): close it and parse."""
    for suffix in ('"', "'", "", '"]', '"}'):
        args = python_call_args(args_text + suffix)
        if args is not None:
            return args
    return None


def normalize_name(name: str) -> str:
    """A tool name with case, spacing, hyphens and underscores folded away."""
    return re.sub(r"[\s_\-]+", "", name).casefold()
