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


_LITERALS = {"True": "true", "False": "false", "None": "null"}
_JSON_WORDS = frozenset({"true", "false", "null", "NaN", "Infinity"})
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_VALUE_STARTS = "\"'{["


def _next_significant(text: str, i: int) -> tuple[int, bool]:
    """Index of the next non-blank character at or after `i`, and whether a newline
    came first (linear over the blank run, which the caller then moves past)."""
    newline = False
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        newline = newline or text[i] == "\n"
        i += 1
    return i, newline


# characters a Markdown-minded model escapes with a backslash inside a JSON string,
# where the escape is invalid JSON (`\_`, `\*`, `\#`); none is a JSON escape letter
_MARKDOWN_ESCAPED = frozenset("_*#`~|<>[]()!+-.")


def _python_to_json(text: str) -> tuple[str, list[str]]:
    """Rewrite Python-literal and sloppy JSON into strict JSON, one linear pass.

    Handles single-quoted strings (only where a string can start, and closed only
    where a string can end, so apostrophes inside survive), True/False/None,
    trailing commas and raw newlines or control characters inside strings, and the
    drift real models write (each named in the repairs it returns):
    ``missing_comma`` between members (`"a": 1 "b": 2`, Llama and Qwen JSON modes),
    ``unquoted_key`` and ``unquoted_value`` (`{city: Paris}`, small local models),
    ``quote_in_string`` (`"the "best" pizza"`: a bare ASCII quote inside a value,
    read as text unless a separator follows it), ``literal_newline_escape``
    (``\\n`` written between tokens, from a model that double-escapes its JSON),
    ``comment`` (`//`, `/* */` in JSON; `#` in Python dicts), ``missing_open_quote``
    (`"name": weather_api"`, a value that lost its opening quote).
    """
    out: list[str] = []
    repairs: list[str] = []

    def note(name: str) -> None:
        if name not in repairs:
            repairs.append(name)

    stack: list[str] = []  # open brackets, to tell keys from values
    i, n = 0, len(text)
    prev = ""  # last significant character outside strings ('a': a word, '0': a number)

    def comma_if_needed() -> None:
        # a new member right after a complete one: the comma between them is missing
        if stack and prev in ('"', "}", "]", "a", "0"):
            out.append(",")
            note("missing_comma")

    while i < n:
        c = text[i]
        if c == '"' or (c == "'" and prev in ("", "{", "[", ",", ":")):
            comma_if_needed()
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
                    elif nxt in _MARKDOWN_ESCAPED:
                        # `hello\_world`: a Markdown escape, not a JSON one (OpenDevin on
                        # Ollama, OpenHands#260); the character is what was meant
                        buf.append(nxt)
                        note("markdown_escape")
                    else:
                        buf.append(d + nxt)
                    j += 2
                    continue
                if d == quote:
                    k, _ = _next_significant(text, j + 1)
                    if k < n and text[k] not in ",:}]" and not (quote == '"' and text[k] == '"'):
                        # a quote inside the value: an apostrophe, or a bare ASCII quote
                        buf.append("'" if quote == "'" else '\\"')
                        if quote == '"':
                            note("quote_in_string")
                        j += 1
                        continue
                    closed = True
                    break
                if d == '"' and quote == "'":
                    buf.append('\\"')
                elif d == "\n":
                    buf.append("\\n")
                    note("newline_in_string")
                elif d < " ":
                    buf.append(f"\\u{ord(d):04x}")
                    note("control_char_in_string")
                else:
                    buf.append(d)
                j += 1
            if quote == "'":
                note("single_quotes")
            out.append('"' + "".join(buf) + '"')
            prev = '"'
            i = j + 1 if closed else j
            continue
        if c == "\\" and i + 1 < n and text[i + 1] in "ntr":
            out.append(" ")  # a literal \n between tokens is layout
            note("literal_newline_escape")
            i += 2
            continue
        if c == "/" and i + 1 < n and text[i + 1] in "/*":
            end = text.find("\n", i) if text[i + 1] == "/" else text.find("*/", i + 2)
            i = n if end < 0 else (end if text[i + 1] == "/" else end + 2)
            note("comment")
            continue
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            note("comment")
            continue
        if c == "-" or c.isdigit():
            m = _NUMBER.match(text, i)
            if m is not None and m.end() > i:
                if prev == ":" and _unquoted_tail(text, m.end()):
                    pass  # "2024-05-01" or "5 stars": an unquoted value, read below
                else:
                    comma_if_needed()
                    out.append(m.group())
                    prev = "0"
                    i = m.end()
                    continue
        if c.isalnum() or c == "_" or (c == "-" and prev == ":"):
            if prev == ":" and stack and stack[-1] == "{":
                # a value: up to the next separator on this line
                j = i
                while j < n and text[j] not in ",}]\n":
                    j += 1
                word = text[i:j].rstrip()
                if (
                    word.endswith('"')
                    and word.count('"') == 1
                    and "'" not in word
                    and _last_key(out) in _NAME_KEYS
                ):
                    # `"name": weather_api"`: a tool's name lost its opening quote
                    # (smolagents' misformatted-output test). Only a name: the resolver
                    # checks it against the offered tools, so the repair cannot invent a
                    # call; an argument value in that state stays an error.
                    out.append(json.dumps(word[:-1], ensure_ascii=False))
                    note("missing_open_quote")
                    prev = '"'
                    i = i + len(word)
                    continue
                if "'" in word or '"' in word:  # an expression (`None or 'x'`), not a value
                    j = i
                    while j < n and (text[j].isalnum() or text[j] == "_"):
                        j += 1
                    word = text[i:j]
                mapped = _LITERALS.get(word)
                if mapped is not None:
                    note("python_literals")
                    out.append(mapped)
                elif word in _JSON_WORDS or _NUMBER.fullmatch(word):
                    out.append(word)
                else:
                    out.append(json.dumps(word, ensure_ascii=False))
                    note("unquoted_value")
                prev = "a"
                i = i + len(word)
                continue
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            k, _ = _next_significant(text, j)
            comma_if_needed()
            if stack and stack[-1] == "{" and k < n and text[k] == ":":
                out.append(json.dumps(word))
                note("unquoted_key")
            else:
                mapped = _LITERALS.get(word)
                if mapped is not None:
                    note("python_literals")
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
            note("trailing_comma")
        if c in "{[":
            comma_if_needed()
            stack.append(c)
            if len(stack) > MAX_DEPTH:
                return "".join(out), repairs
        elif c in "}]" and stack:
            stack.pop()
        out.append(c)
        if not c.isspace():
            prev = c
        i += 1
    return "".join(out), repairs


_NAME_KEYS = frozenset({'"name"', '"tool"', '"tool_name"', '"function"'})


def _last_key(out: list[str]) -> str:
    """The key (as written to `out`, quoted) of the value about to be written."""
    for k in range(len(out) - 1, max(-1, len(out) - 8), -1):
        if out[k] == ":" or out[k].isspace():
            continue
        return out[k]
    return ""


def _unquoted_tail(text: str, i: int) -> bool:
    """Whether a number at a value's start runs on into text (`2024-05-01`, `5 stars`)."""
    j, _ = _next_significant(text, i)
    return j < len(text) and text[j] not in ",}]/#" and text.find("\n", i, j) < 0


def close_one(text: str) -> Loaded | None:
    """A JSON value missing exactly one closing `}` or `]` before its end, closed.

    Llama 3.x and Qwen small models often drop the last brace of a nested call
    (`{"name": "f", "arguments": {"q": "x"}`). Only one missing bracket is added,
    never a closing quote: a reply cut off mid-string is truncated, not repaired.
    The text may run on into prose after its last bracket; that is cut.
    """
    text = text.strip()
    if not text or text[0] not in "{[" or len(text) > REPAIR_MAX_CHARS or too_deep(text):
        return None
    last = max(text.rfind("}"), text.rfind("]"))
    candidates = [text] if last < 0 or last == len(text) - 1 else [text, text[: last + 1]]
    for candidate in candidates:
        stack = _open_brackets(candidate)
        if stack is None or len(stack) != 1:
            continue
        loaded = loads(candidate + ("}" if stack[0] == "{" else "]"))
        if loaded is not None:
            return Loaded(loaded.value, (*loaded.repairs, "closed_missing_bracket"))
    return None


def _open_brackets(text: str) -> list[str] | None:
    """The brackets left open at the end of `text` (None: it ends inside a string or
    closes what it never opened). Double-quoted strings only; linear."""
    stack: list[str] = []
    quote = False
    for m in _STRUCTURAL.finditer(text):
        c = m.group()
        if quote:
            if c == '"' and not _escaped(text, m.start()):
                quote = False
            continue
        if c == '"':
            quote = True
        elif c in "{[":
            stack.append(c)
        elif c in "}]" and (not stack or (stack.pop() == "{") != (c == "}")):
            return None
    return None if quote else stack


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
        closed = close_one(stripped)
        return None if closed is None else (closed, len(text))
    loaded = loads(stripped[: spans[0][1]])
    return None if loaded is None else (loaded, offset + spans[0][1])


class _JsonInPython(ast.NodeTransformer):
    """JSON spellings inside Python call arguments, read as what they mean: the bare
    names ``true``/``false``/``null`` (SGLang's and vLLM's pythonic parser tests,
    Llama 3.2 and LFM2 outputs) as True/False/None, and a set literal
    ``{'a', 'b'}`` (no JSON value) as the list written, in its order."""

    _WORDS = {"true": True, "false": False, "null": None}

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self._WORDS:
            return ast.copy_location(ast.Constant(self._WORDS[node.id]), node)
        return node

    def visit_Set(self, node: ast.Set) -> ast.AST:
        self.generic_visit(node)
        return ast.copy_location(ast.List(elts=node.elts, ctx=ast.Load()), node)


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
    node = _JsonInPython().visit(node)
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
    decoded = {k: _text_for_bytes(v, 0) for k, v in out.items()}
    if any(v is _UNREADABLE for v in decoded.values()):
        return None  # bytes that are not UTF-8 have no JSON value: refused
    return decoded


_UNREADABLE = object()


def _text_for_bytes(value: Any, depth: int) -> Any:
    """The literal with ``b'...'`` read as the text it spells (a tool argument is JSON).

    A model that writes ``x=b'z'`` means the string; bytes that are not UTF-8 (or a
    literal nested past `MAX_DEPTH`) cannot be read that way and give `_UNREADABLE`.
    """
    if depth > MAX_DEPTH:
        return _UNREADABLE
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return _UNREADABLE
    if isinstance(value, dict):
        items = [
            (_text_for_bytes(k, depth + 1), _text_for_bytes(v, depth + 1)) for k, v in value.items()
        ]
        if any(k is _UNREADABLE or v is _UNREADABLE for k, v in items):
            return _UNREADABLE
        return dict(items)
    if isinstance(value, (list, tuple, set, frozenset)):
        seq = [_text_for_bytes(v, depth + 1) for v in value]
        if any(v is _UNREADABLE for v in seq):
            return _UNREADABLE
        return seq if isinstance(value, (list, tuple)) else type(value)(seq)
    return value


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
        fixed = _python_source_repairs(body)
        if fixed is None:
            return None
        try:
            tree = ast.parse(f"[{fixed}]", mode="eval").body
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


def _python_source_repairs(body: str) -> str | None:
    """Python call source with two slips small models make undone, or None if none
    applied: a raw newline inside a one-quote string (escaped as ``\\n``) and an
    integer written with leading zeros (``month=07``, a SyntaxError in Python 3;
    read as 7). Both from LFM2, in vLLM's parser tests. One linear pass tracking
    string state; a triple-quoted string is left alone (its newlines are legal)."""
    if "'" * 3 in body or '"' * 3 in body:
        return None
    out: list[str] = []
    quote = ""
    changed = False
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if quote:
            if c == "\\" and i + 1 < n:
                out.append(body[i : i + 2])
                i += 2
                continue
            if c == quote:
                quote = ""
            elif c == "\n":
                c = "\\n"
                changed = True
        elif c in "'\"":
            quote = c
        elif c == "0" and i + 1 < n and body[i + 1].isdigit():
            prev = body[i - 1] if i else ""
            if not (prev.isalnum() or prev in "_."):
                changed = True
                i += 1  # drop this leading zero; the next digit is read in turn
                continue
        out.append(c)
        i += 1
    return "".join(out) if changed else None


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
