"""Named readers for call syntaxes the asked-for format does not cover.

Each reader is one entry of `READERS`: the syntax's name (it joins the parse's
repairs), where it comes from (which model or framework writes it), a marker that
must appear in the text before the reader runs, and the function that reads it.
A reader returns the calls as written, ``(name, raw arguments)`` pairs for the
resolver to match against the offered tools; a string, when the text is that
syntax but cannot be read (the reason, for a corrective message); or `None`, when
the text is not that syntax after all. Names come from the text, never from the
arguments: the resolver refuses a name that is not offered. Every reader does work
linear in the text and caps the calls it reads at `MAX_CALLS`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pilothouse.actions import anchored, repair
from pilothouse.actions.base import Resolver
from pilothouse.actions.fences import FENCE, fence_positions, outside_fences
from pilothouse.actions.markup import AT_CALL

Envelope = tuple[Any, Any]  # (name as written, raw arguments or None)
Read = list[Envelope] | str | None

MAX_CALLS = 64
_NAME = r"[A-Za-z_][\w.\-]*"


@dataclass(frozen=True, slots=True)
class Reader:
    """One call syntax: its name, its origin, a cheap marker, and the reading."""

    name: str
    origin: str
    marker: str
    read: Callable[[str, Resolver], Read]
    also: tuple[str, ...] = ()  # further markers, any of which lets the reader run


def typed_value(value: str, tool: str | None, key: str, r: Resolver) -> Any:
    """A parameter written as text, typed by the tool's schema (JSON for non-strings)."""
    props = r.params(tool) if tool else {}
    prop = props.get(key)
    kind = prop.get("type") if isinstance(prop, dict) else None
    if kind in (None, "string"):
        return value
    loaded = repair.loads(value)
    return loaded.value if loaded is not None else value


# ---------------------------------------------------------------- vendor-piped tags

# A vendor prefix written with a bar inside the tag: `<ifm|tool_call>`, `</ifm|arg_key>`,
# `<ifm|think_fast>` (the K2-V3 "IFM" dialect, SGLang's k2v3 detector tests). Only tags
# whose name is made of call-structure words, or a reasoning tag, lose the prefix, so
# bra-ket notation (`<a|b>`) and other text stay as written.
_PIPE_TAG = re.compile(r"<(/?)[A-Za-z]{1,12}\|([A-Za-z_]\w{0,40})>")
_PIPE_WORDS = frozenset(
    {
        "tool",
        "tools",
        "call",
        "calls",
        "function",
        "functions",
        "arg",
        "args",
        "argument",
        "arguments",
        "parameter",
        "parameters",
        "key",
        "value",
        "type",
        "name",
    }
)
_PIPE_CORE = frozenset({"tool", "tools", "call", "calls", "function", "functions", "arg"})
_REASONING_NAME = re.compile(r"(?:think|thinking|reasoning)(?:_\w{1,20})?\Z")


def _unpipe(m: re.Match[str]) -> str:
    name = m.group(2).lower()
    if _REASONING_NAME.match(name):  # effort variants (`think_fast`) are reasoning too
        return f"<{m.group(1)}think>"
    words = set(name.split("_")) - {""}
    if words and words <= _PIPE_WORDS and words & _PIPE_CORE:
        return f"<{m.group(1)}{name}>"
    return m.group()


def unpipe_tags(text: str) -> str:
    """The text with vendor-piped call and reasoning tags written plainly
    (`<ifm|tool_call>` as `<tool_call>`, `<ifm|think_fast>` as `<think>`), so the
    readers of the plain tags read them. One linear pass; unchanged when none."""
    if "|" not in text or "<" not in text:
        return text
    return _PIPE_TAG.sub(_unpipe, text)


# Mistral's reasoning block, `[THINK]...[/THINK]` (Magistral, Ministral 3 Reasoning:
# llama.cpp's test-chat), is a `<think>` block written in brackets; the opener may be
# in the prompt, leaving `[/THINK]` alone
_BRACKET_THINK = ("[THINK]", "[/THINK]")


def plain_tags(text: str) -> str:
    """The text with vendor spellings of tags the readers know written plainly:
    vendor-piped call and reasoning tags (`unpipe_tags`) and Mistral's bracketed
    reasoning block (`[THINK]...[/THINK]` as `<think>...</think>`). Linear; the text
    itself when it holds none."""
    text = unpipe_tags(text)
    if _BRACKET_THINK[1] in text:
        text = text.replace(_BRACKET_THINK[0], "<think>", 1).replace(
            _BRACKET_THINK[1], "</think>", 1
        )
    return text


# ---------------------------------------------------------------- OpenAI Harmony

_HARMONY_TO = re.compile(r"to=functions\.(" + _NAME + r")")
_HARMONY_END = re.compile(r"<\|(?:call|end|return|start)\|>")


def harmony(text: str, r: Resolver) -> Read:
    """OpenAI Harmony (gpt-oss): ``<|channel|>commentary to=functions.NAME
    <|constrain|>json<|message|>{...}<|call|>``; the recipient may also stand in the
    role header (``<|start|>assistant to=functions.NAME<|channel|>commentary json``).
    The name after ``to=functions.`` decides; the message is the arguments."""
    out: list[Envelope] = []
    for m in list(_HARMONY_TO.finditer(text))[:MAX_CALLS]:
        start = text.find("<|message|>", m.end())
        if start < 0:
            return "a Harmony call (to=functions.) without its <|message|>"
        start += len("<|message|>")
        stop = _HARMONY_END.search(text, start)
        body = text[start : stop.start() if stop else len(text)].strip()
        out.append((m.group(1), body or None))
    return out or None


# ---------------------------------------------------------------- Claude-style XML

# The tag names may carry a vendor prefix: `antml:` (Anthropic), `steptml:` (StepFun
# Step3, vLLM's step3 parser tests), `minimax:`, or DeepSeek-V3.2/V4's DSML prefix
# `\uff5cDSML\uff5c` (between fullwidth bars; SGLang's deepseekv32 detector tests), the
# bars sometimes doubled (`<\uff5c\uff5cDSML\uff5c\uff5cinvoke ...>`, DeepSeek through a VS Code
# bridge, AppsGanin/ai-free-vscode#17).
_NS = r"(?:[A-Za-z]{1,12}:|\uff5c{1,2}DSML\uff5c{1,2})?"
_INVOKE = re.compile(r"<" + _NS + r"invoke\s+name\s*=\s*[\"']([^\"'<>]+)[\"']\s*>")
_INVOKE_OPEN = re.compile(r"<" + _NS + r"invoke(?=\s)")
_INVOKE_END = re.compile(r"</" + _NS + r"invoke>")
_ATTRS = r"((?:\s+[\w\-]+\s*=\s*[\"'][^\"'<>]*[\"'])*)\s*>"
_PARAM = re.compile(r"<" + _NS + r"parameter\s+name\s*=\s*[\"']([^\"'<>]+)[\"']" + _ATTRS)
_STRING_FLAG = re.compile(r"\bstring\s*=\s*[\"'](true|false)[\"']")
_PARAM_END = re.compile(r"</" + _NS + r"parameter>")


def claude_invoke(text: str, r: Resolver) -> Read:
    """Anthropic's function-calling XML leaked as text (Claude via proxies and
    OpenAI-compatible gateways, and models distilled from it): ``<function_calls>
    <invoke name="NAME"><parameter name="KEY">VALUE</parameter></invoke>
    </function_calls>``. Values are text, typed by the tool's schema. DeepSeek-V3.2
    writes the same ``<invoke>`` inside ``<tool_calls>`` and marks each parameter
    ``string="true"`` (the text as is) or ``string="false"`` (a JSON value)."""
    out: list[Envelope] = []
    pieces = _INVOKE_OPEN.split(text)[1 : MAX_CALLS + 1]
    for position, piece in enumerate(pieces):
        m = _INVOKE.match("<invoke" + piece)
        if m is None:
            return "an <invoke> tag without a name"
        body = piece[m.end() - len("<invoke") :]
        body, closed = _INVOKE_END.split(body, maxsplit=1)[0], _INVOKE_END.search(body)
        if closed is None and position == len(pieces) - 1:
            # the last call never closes: the reply was cut, more parameters may follow
            return f"the call to {m.group(1)!r} is cut off (no closing </invoke>)"
        tool = r.match(m.group(1))
        args: dict[str, Any] = {}
        params = list(_PARAM.finditer(body))[:MAX_CALLS]
        for index, p in enumerate(params):
            # a value ends at the last closing tag before the next parameter (a value
            # may hold the closing tag itself: SGLang's MiniMax-M2 tests)
            stop = params[index + 1].start() if index + 1 < len(params) else len(body)
            ends = list(_PARAM_END.finditer(body, p.end(), stop))
            value = _param_text(body[p.end() : ends[-1].start() if ends else stop])
            key = p.group(1).strip()
            flag = _STRING_FLAG.search(p.group(2) or "")
            if flag is not None and flag.group(1) == "true":
                args[key] = value
            elif flag is not None:
                loaded = repair.loads(value)
                args[key] = loaded.value if loaded is not None else value
            else:
                args[key] = typed_value(value, tool, key, r)
        out.append((m.group(1).strip(), args or None))
    return out or None


def _param_text(value: str) -> str:
    """A parameter's text: laid out on its own lines, the layout goes; written inline,
    its spaces are data (an edit tool's `old_string` of "    if x:", vLLM's Step3
    whitespace tests)."""
    if value[:1] in "\r\n" or value[-1:] in "\r\n":
        return value.strip()
    return value


# ---------------------------------------------------------------- LFM

_LFM = re.compile(r"<\|tool_call_start\|>(.*?)(?:<\|tool_call_end\|>|\Z)", re.S)


def lfm(text: str, r: Resolver) -> Read:
    """Liquid AI LFM2: ``<|tool_call_start|>[name(key="value")]<|tool_call_end|>``,
    a Pythonic list of calls (JSON inside the tokens is read as JSON)."""
    out: list[Envelope] = []
    for m in list(_LFM.finditer(text))[:MAX_CALLS]:
        body = m.group(1).strip()
        if body[:1] in "{[" and not re.match(r"\[\s*" + _NAME + r"\s*\(", body):
            loaded = repair.loads(body)
            envs = json_envelopes(loaded.value) if loaded is not None else None
            if envs is None:
                return "the <|tool_call_start|> block is neither Python calls nor a JSON call"
            out.extend(envs)
            continue
        calls = repair.python_calls(body)
        if calls is None:
            return "the <|tool_call_start|> block is not a list of Python calls"
        out.extend(calls)
    return out or None


# ---------------------------------------------------------------- Gemma

_GEMMA = re.compile(r"(?:call:|<call>)(" + _NAME + r")\{")
_ESCAPES = ("<escape>", '<|"|>')  # FunctionGemma's string delimiter, then Gemma 4's


def gemma(text: str, r: Resolver) -> Read:
    """Google FunctionGemma (Gemma 3 270M):
    ``<start_function_call>call:NAME{key:<escape>text<escape>,n:3}<end_function_call>``;
    strings sit between ``<escape>`` tokens, other values are bare. Gemma 4 writes
    ``<|tool_call>call:NAME{key:<|"|>text<|"|>}<tool_call|>`` (its string token is
    ``<|"|>``; the close may be ``<turn|>`` or missing), and with multimodal input
    the open token can fragment to ``<call>NAME{...}`` (vLLM's Gemma 4 parser tests)."""
    out: list[Envelope] = []
    for m in list(_GEMMA.finditer(text))[:MAX_CALLS]:
        parsed = _gemma_object(text, m.end(), 0)
        if parsed is None:
            return f"the call:{m.group(1)}{{...}} arguments could not be read"
        out.append((m.group(1), parsed[0]))
    return out or None


def _gemma_value(text: str, i: int, depth: int) -> tuple[Any, int] | None:
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    for esc in _ESCAPES:
        if text.startswith(esc, i):
            end = text.find(esc, i + len(esc))
            if end < 0:
                return None
            return text[i + len(esc) : end], end + len(esc)
    if i < n and text[i] == "{":
        return _gemma_object(text, i + 1, depth + 1)
    if i < n and text[i] == "[":
        items: list[Any] = []
        i += 1
        while i < n and depth < repair.MAX_DEPTH:
            while i < n and text[i] in " \t\r\n,":
                i += 1
            if i < n and text[i] == "]":
                return items, i + 1
            got = _gemma_value(text, i, depth + 1)
            if got is None:
                return None
            items.append(got[0])
            i = got[1]
        return None
    j = i
    while j < n and text[j] not in ",}]\n":
        j += 1
    word = text[i:j].strip()
    if not word:
        return None
    for esc in _ESCAPES:
        if word.endswith(esc) and esc not in word[: -len(esc)]:
            # a string whose opening token was written as a plain quote and whose closing
            # one was kept (gemma4 through Ollama: ``pattern:':\s*\w+'<|"|>``,
            # ollama/ollama#15315, `tune14`): the value is what the quotes enclose
            word = word[: -len(esc)]
            if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"`":
                word = word[1:-1]
            return word, j
    loaded = repair.loads(word) if word[:1] in "-0123456789tfn" else None
    return (loaded.value if loaded is not None else word), j


def _gemma_object(text: str, i: int, depth: int) -> tuple[dict[str, Any], int] | None:
    """`key:value,...}` from just after the `{`; linear, depth-capped."""
    out: dict[str, Any] = {}
    n = len(text)
    while i < n and depth < repair.MAX_DEPTH:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i < n and text[i] == "}":
            return out, i + 1
        colon = text.find(":", i, i + 200)
        if colon < 0:
            return None
        key = text[i:colon].strip().strip("\"'")
        if not key or not re.fullmatch(r"[\w.\-]+", key):
            return None
        got = _gemma_value(text, colon + 1, depth)
        if got is None:
            return None
        out[key], i = got
    return None


_TOOL_CODE = re.compile(r"```tool_code[ \t]*\n(.*?)(?:```|\Z)", re.S)


def tool_code(text: str, r: Resolver) -> Read:
    """Gemma 3's documented prompt-based calling: a ```` ```tool_code ```` fence
    holding Python calls (``get_weather(city="Paris")``)."""
    out: list[Envelope] = []
    for m in list(_TOOL_CODE.finditer(text))[:MAX_CALLS]:
        calls = repair.python_calls(m.group(1).strip())
        if calls is None:
            return "the tool_code block is not a list of Python calls"
        out.extend(calls)
    return out or None


# ---------------------------------------------------------------- <function…> tags

_FUNC_EQ = re.compile(r"<function=(" + _NAME + r")\s*(>|=)")
_QWEN_PARAM = re.compile(
    r"<parameter=([^>\n]{1,200})>\n?(.*?)\n?(?:</parameter>|(?=<parameter=)|(?=</function>)|\Z)",
    re.S,
)


def inline_layout(value: str) -> str:
    """A Qwen3-Coder parameter value written on the tag's line with exactly one space
    on each side (``<parameter=command> del "C:\\x" </parameter>``, quoted by QwenPaw#2824
    from a llama-server error): the spaces stand where the template puts line breaks,
    so they are layout. Any other inline spacing is data (an indented `old_string`)."""
    if len(value) > 2 and value[0] == value[-1] == " " and value[1] != " " and value[-2] != " ":
        return value[1:-1]
    return value


def function_eq(text: str, r: Resolver) -> Read:
    """Meta's Llama 3.1/3.2 custom-tool format ``<function=NAME>{"k": "v"}</function>``,
    its broken cousin ``<function=NAME={...}`` (the `>` lost, small Llama fine-tunes),
    and Qwen3-Coder's ``<function=NAME><parameter=KEY>VALUE</parameter></function>``."""
    out: list[Envelope] = []
    for m in list(_FUNC_EQ.finditer(text))[:MAX_CALLS]:
        end = text.find("</function>", m.end())
        nxt = text.find("<function=", m.end())
        stop = min(x for x in (end, nxt, len(text)) if x >= 0)
        body = text[m.end() : stop]
        name = m.group(1)
        if "<parameter=" in body:
            tool = r.match(name)
            args = {
                p.group(1).strip(): typed_value(
                    inline_layout(p.group(2)), tool, p.group(1).strip(), r
                )
                for p in list(_QWEN_PARAM.finditer(body))[:MAX_CALLS]
            }
            out.append((name, args))
            continue
        body = body.strip()
        if not body:
            out.append((name, None))
            continue
        got = repair.first_value(body)
        if got is None:
            return f"the arguments of <function={name}> are not JSON"
        out.append((name, got[0].value))
    return out or None


_FUNC_TAG = re.compile(r"<function>\s*(" + _NAME + r")\s*</function>")
_ARG_TAG = re.compile(r"^\s*<(arguments|parameters|args)>(.*?)(?:</\1>|\Z)", re.S)


def function_tag(text: str, r: Resolver) -> Read:
    """``<function>NAME</function>`` followed by the arguments (a JSON object, or an
    ``<arguments>``/``<parameters>`` tag around it), written by small models that
    imitate Llama 3.1's function tags (Ollama and LangChain issue threads)."""
    out: list[Envelope] = []
    found = list(_FUNC_TAG.finditer(text))[:MAX_CALLS]
    for index, m in enumerate(found):
        stop = found[index + 1].start() if index + 1 < len(found) else len(text)
        rest = text[m.end() : stop]
        tagged = _ARG_TAG.match(rest)
        if tagged is not None:
            rest = tagged.group(2)
        got = repair.first_value(rest) if rest.lstrip()[:1] in "{[" else None
        if got is None and rest.lstrip()[:1] in "{[":
            return f"the arguments after <function>{m.group(1)}</function> are not JSON"
        out.append((m.group(1), got[0].value if got is not None else None))
    return out or None


# ---------------------------------------------------------------- <tool_call …> variants

_TC_ATTR = re.compile(r"<tool_call\s+name\s*=\s*[\"']([^\"'<>]+)[\"']\s*(/?)>")
_TC_BARE = re.compile(
    r"<tool_call>\s*(" + _NAME + r")\s*(?=</tool_call>|<arg_key>|<tool_sep>|\n|\Z)"
)
_TOOL_SEP = "<tool_sep>"  # Tencent Hy3 writes it between the name and the arguments


def tool_call_attr(text: str, r: Resolver) -> Read:
    """``<tool_call name="NAME">{"k": "v"}</tool_call>``: the Hermes envelope with the
    name moved into the tag, from Hermes-format fine-tunes (vLLM and Ollama threads)."""
    out: list[Envelope] = []
    for m in list(_TC_ATTR.finditer(text))[:MAX_CALLS]:
        if m.group(2):  # <tool_call name="x"/>
            out.append((m.group(1), None))
            continue
        end = text.find("</tool_call>", m.end())
        body = text[m.end() : end if end >= 0 else len(text)].strip()
        if not body:
            out.append((m.group(1), None))
            continue
        got = repair.first_value(body)
        if got is None:
            return f'the arguments of <tool_call name="{m.group(1)}"> are not JSON'
        value = got[0].value
        envs = json_envelopes(value) if isinstance(value, dict) else None
        if envs and len(envs) == 1 and envs[0][0] == m.group(1):
            value = envs[0][1]  # the full envelope repeated inside: its arguments
        out.append((m.group(1), value))
    return out or None


def tool_call_bare_name(text: str, r: Resolver) -> Read:
    """A bare tool name inside ``<tool_call>``: Hermes-format models (Qwen2.5,
    Hermes 3) calling a no-argument tool (``<tool_call>get_time</tool_call>``), and
    GLM-4.5/4.6, whose calls are ``<tool_call>NAME`` then ``<arg_key>K</arg_key>
    <arg_value>V</arg_value>`` pairs; Tencent Hy3 puts ``<tool_sep>`` between the name
    and the pairs (vLLM's ``hy_v3`` parser tests)."""
    out: list[Envelope] = []
    for m in list(_TC_BARE.finditer(text))[:MAX_CALLS]:
        ends = [x for x in (text.find("</tool_call>", m.end()), text.find("<tool_call", m.end()))]
        body = text[m.end() : min([x for x in ends if x >= 0], default=len(text))]
        if body.lstrip().startswith(_TOOL_SEP):
            body = body.lstrip()[len(_TOOL_SEP) :]
        if body.strip() and "<arg_key>" not in body:
            return None  # JSON or other content after the name: not this syntax
        tool = r.match(m.group(1))
        args: dict[str, Any] = {}
        for piece in body.split("<arg_key>")[1 : MAX_CALLS + 1]:  # linear: no regex scan
            key, found, rest = piece.partition("</arg_key>")
            if not found or "<arg_value>" not in rest:
                return "an <arg_key> without its </arg_key> and <arg_value>"
            hint, _, rest = rest.partition("<arg_value>")
            value = rest.split("</arg_value>", 1)[0].strip()
            if "<arg_type>string</arg_type>" in hint.replace(" ", ""):
                args[key.strip()] = value  # a type hint (K2-V3 xml_typed): text as written
            else:
                args[key.strip()] = _arg_value(value, tool, key.strip(), r)
        out.append((m.group(1), args or None))
    return out or None


_TC_BLOCK = re.compile(r"<tool_call>\s*(\{[^{}<>]{0,300}\})\s*(?:</tool_call>|\Z)")


def tool_call_name_only(text: str, r: Resolver) -> Read:
    """``<tool_call>{"name": "mytool"}</tool_call>``: a call object that holds its
    name alone (vLLM's TNG parser tests), inside the envelope a call with no
    arguments. Read only when every ``<tool_call>`` of the text is one such object;
    bare, the same object is data and no reader takes it."""
    blocks = list(_TC_BLOCK.finditer(text))[: MAX_CALLS + 1]
    if not blocks or len(blocks) != min(text.count("<tool_call>"), MAX_CALLS + 1):
        return None
    out: list[Envelope] = []
    for m in blocks[:MAX_CALLS]:
        loaded = repair.loads(m.group(1))
        value = loaded.value if loaded is not None and not loaded.repairs else None
        if not (isinstance(value, dict) and list(value) == ["name"]):
            return None
        if not isinstance(value["name"], str):
            return None
        out.append((value["name"], {}))
    return out


def _arg_value(value: str, tool: str | None, key: str, r: Resolver) -> Any:
    """An ``<arg_value>``: typed by the schema, and a value written as one JSON string
    literal is the string it spells. GLM writes strings bare
    (``<arg_value>Dallas</arg_value>``); HyperCLOVAX SEED Think, in the same tags,
    JSON-encodes every value (``<arg_value>"Seoul"</arg_value>``, vLLM's
    ``hyperclovax_seed_think`` parser tests), and its quotes are not part of the
    city's name."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        loaded = repair.loads(value)
        if loaded is not None and isinstance(loaded.value, str) and not loaded.repairs:
            return loaded.value
    return typed_value(value, tool, key, r)


# ---------------------------------------------------------------- Kimi K2

_KIMI_BEGIN = "<|tool_call_begin|>"
_KIMI_ARGS = "<|tool_call_argument_begin|>"
_KIMI_END = "<|tool_call_end|>"
_KIMI_ID = re.compile(r"\s*(?:functions\.)?(" + _NAME + r"?)(?::\d+)?\s*\Z")
# an id that names no function: a bare counter (`0`), or a client's call id the model
# copied from a history whose ids the client rewrote (`call_3`, `toolu_01...`, a UUID;
# SGLang's Kimi K2 detector tests, "shapes observed in K2.6 server logs")
_KIMI_NAMELESS_ID = re.compile(
    r"\s*(?:\d+|(?:call|toolu|tooltoolu)_[\w\-]{1,64}"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?::\d+)?\s*\Z"
)


def kimi(text: str, r: Resolver) -> Read:
    """Moonshot Kimi K2: ``<|tool_calls_section_begin|><|tool_call_begin|>
    functions.NAME:0 <|tool_call_argument_begin|>{...}<|tool_call_end|>
    <|tool_calls_section_end|>``. Each call's own delimiters mark where its JSON
    ends, so a closing bracket missing just before ``<|tool_call_end|>`` is
    restored for that call alone (vLLM's Kimi K2 parser tests).

    A call whose id names no function (`_KIMI_NAMELESS_ID`: a bare counter or a
    client's call id) is the one offered tool its arguments fit, the issue's last
    resort for a call that names nothing (SGLang infers the name the same way); when
    no single offered tool fits, the call cannot be read and the reply is refused."""
    out: list[Envelope] = []
    for part in text.split(_KIMI_BEGIN)[1 : MAX_CALLS + 1]:
        part = part.split(_KIMI_END, 1)[0]
        head, found, body = part.partition(_KIMI_ARGS)
        nameless = found and _KIMI_NAMELESS_ID.match(head) is not None
        m = _KIMI_ID.match(head)
        if not found or (m is None and not nameless):
            return "a Kimi call without functions.NAME and <|tool_call_argument_begin|>"
        body = body.strip()
        name = m.group(1) if m is not None else head.strip()
        if nameless and r.match(name) is None:
            inferred = _kimi_nameless(head.strip(), body, r)
            if isinstance(inferred, str):
                return inferred
            out.append(inferred)
            continue
        if not body:
            out.append((name, None))
            continue
        got = repair.first_value(body)
        if got is None or body[got[1] :].strip():
            return f"the arguments of functions.{name} are not JSON"
        out.append((name, got[0].value))
    return out or None


def _kimi_nameless(call_id: str, body: str, r: Resolver) -> Envelope | str:
    """A Kimi call whose id names no function: the one offered tool whose parameters
    fit its (complete, unrepaired) argument object, or why it cannot be read."""
    loaded = repair.loads(body) if body else None
    value = loaded.value if loaded is not None and not loaded.repairs else None
    tool = r.bare_arguments_tool(value) if isinstance(value, dict) else None
    if tool is None:
        return (
            f"a Kimi call whose id ({call_id[:40]!r}) names no function, and its arguments "
            "fit no single offered tool"
        )
    return (tool, value)


# ---------------------------------------------------------------- Kimi K3

# Kimi K3's "XTML" channels (SGLang's kimik3_format.py and detector tests): every
# block opens with `<|open|>KIND ...<|sep|>` and closes with `<|close|>KIND<|sep|>`.
K3_CALL = "<|open|>call"
_K3_CALL_HEAD = re.compile(r"<\|open\|>call((?:\s+[\w\-]+\s*=\s*\"[^\"]*\")*)\s*<\|sep\|>")
_K3_CALL_END = "<|close|>call"
_K3_ARG = re.compile(
    r"<\|open\|>argument((?:\s+[\w\-]+\s*=\s*\"[^\"]*\")*)\s*<\|sep\|>(.*?)<\|close\|>argument",
    re.S,
)
_K3_ATTR = re.compile(r"([\w\-]+)\s*=\s*\"([^\"]*)\"")


def _k3_attrs(text: str) -> dict[str, str]:
    return {k: html.unescape(v) for k, v in _K3_ATTR.findall(text)}


def kimi_k3(text: str, r: Resolver) -> Read:
    """Moonshot Kimi K3: ``<|open|>tools<|sep|><|open|>call tool="NAME" index="1"
    <|sep|><|open|>argument key="K" type="string"<|sep|>VALUE<|close|>argument<|sep|>
    <|close|>call<|sep|><|close|>tools<|sep|>``. A ``string`` argument is its text
    as written; any other type is JSON, or its text when it is not JSON (as SGLang's
    detector keeps it). A call that never closes was cut off and is refused."""
    out: list[Envelope] = []
    for piece in text.split(K3_CALL)[1 : MAX_CALLS + 1]:
        head = _K3_CALL_HEAD.match(K3_CALL + piece)
        if head is None:
            return "a Kimi K3 call opened and cut off before its tool name"
        name = _k3_attrs(head.group(1)).get("tool")
        body, closed, _ = piece[head.end() - len(K3_CALL) :].partition(_K3_CALL_END)
        if not name:
            return "a Kimi K3 call without a tool attribute"
        if not closed:
            return f"the Kimi K3 call to {name!r} is cut off (no <|close|>call)"
        args: dict[str, Any] = {}
        for m in list(_K3_ARG.finditer(body))[:MAX_CALLS]:
            attrs = _k3_attrs(m.group(1))
            key, kind, value = attrs.get("key", ""), attrs.get("type", "string"), m.group(2)
            if not key:
                return f"an argument of the Kimi K3 call to {name!r} has no key"
            if kind == "string":
                args[key] = value
            else:
                loaded = repair.loads(value)
                args[key] = loaded.value if loaded is not None else value
        out.append((name, args))
    return out or None


# ---------------------------------------------------------------- LangChain XML agent

_LC_TOOL = re.compile(r"<tool>(.*?)</tool>", re.S)
_LC_INPUT = re.compile(r"<tool_input>(.*?)(?:</tool_input>|\Z)", re.S)
_LC_FINAL = re.compile(r"<final_answer>(.*?)(?:</final_answer>|\Z)", re.S)


def langchain_xml(text: str, r: Resolver) -> Read:
    """LangChain's XML agent (``create_xml_agent``, ``XMLAgentOutputParser``):
    ``<tool>NAME</tool><tool_input>INPUT</tool_input>`` for a call and
    ``<final_answer>TEXT</final_answer>`` for the answer, with XML escapes
    (``&lt;``, ``&gt;``, ``&amp;``) in the text. Several ``<tool>`` names for one
    ``<tool_input>``, or an input with no name, cannot be told apart: refused."""
    tools = list(_LC_TOOL.finditer(text))[: MAX_CALLS + 1]
    inputs = list(_LC_INPUT.finditer(text))[: MAX_CALLS + 1]
    if tools or inputs:
        if not tools:
            return "a <tool_input> with no <tool> naming the tool"
        if len(inputs) > len(tools) or (len(tools) > 1 and len(inputs) != len(tools)):
            return "the <tool> and <tool_input> tags do not pair up: one name per input"
        out: list[Envelope] = []
        for index, m in enumerate(tools[:MAX_CALLS]):
            name = html.unescape(m.group(1)).strip()
            if index >= len(inputs):
                out.append((name, None))
                continue
            if inputs[index].start() < m.end():
                return "a <tool_input> before its <tool>"
            raw = html.unescape(inputs[index].group(1)).strip()
            got = repair.first_value(raw) if raw[:1] == "{" else None
            value = got[0].value if got is not None and not raw[got[1] :].strip() else raw
            out.append((name, value))
        return out
    final = _LC_FINAL.search(text)
    if final is not None:
        return [("final_answer", html.unescape(final.group(1)).strip())]
    return None


# ---------------------------------------------------------------- <function name=…>

_FUNC_ATTR = re.compile(r"<function\s+name\s*=\s*[\"'](" + _NAME + r")[\"']\s*>")
_XML_PARAM = re.compile(
    r"<(param|parameter)\s+name\s*=\s*[\"']([^\"'<>]+)[\"']\s*>(.*?)</\1>", re.S
)


def function_name_attr(text: str, r: Resolver) -> Read:
    """``<function name="NAME"><param name="KEY">VALUE</param></function>``, the tool
    name in an attribute and the arguments as ``<param>`` (or ``<parameter>``)
    children or a JSON object: MiniCPM's bare dialect, returned as content (oMLX and
    vLLM threads). Values are text, typed by the tool's schema."""
    out: list[Envelope] = []
    for m in list(_FUNC_ATTR.finditer(text))[:MAX_CALLS]:
        end = text.find("</function>", m.end())
        body = text[m.end() : end if end >= 0 else len(text)]
        name = m.group(1)
        tool = r.match(name)
        params = list(_XML_PARAM.finditer(body))[:MAX_CALLS]
        if params:
            out.append(
                (
                    name,
                    {
                        p.group(2).strip(): typed_value(
                            p.group(3).strip(), tool, p.group(2).strip(), r
                        )
                        for p in params
                    },
                )
            )
            continue
        body = body.strip()
        if not body:
            out.append((name, None))
            continue
        got = repair.first_value(body)
        if got is None:
            return f'the arguments of <function name="{name}"> could not be read'
        out.append((name, got[0].value))
    return out or None


# ---------------------------------------------------------------- Llama 4 pythonic

_PY_TAGGED = re.compile(r"<\|python_start\|>(.*?)(?:<\|python_end\|>|\Z)", re.S)


def llama4_pythonic(text: str, r: Resolver) -> Read:
    """Meta Llama 4's pythonic calls between its own tokens:
    ``<|python_start|>[get_time(zone='UTC'), ping()]<|python_end|>`` (vLLM's
    ``llama4_pythonic`` tool parser). The list is Python call syntax; brackets out
    of order or a call cut off are refused, never guessed."""
    out: list[Envelope] = []
    for m in list(_PY_TAGGED.finditer(text))[:MAX_CALLS]:
        body = m.group(1).strip()
        if not body:
            continue
        calls = repair.python_calls(body)
        if calls is None:
            return "the <|python_start|> block is not a list of Python calls"
        out.extend(calls)
    return out[:MAX_CALLS] or "an empty <|python_start|> block"


# ---------------------------------------------------------------- Phi-4-mini

_FUNCTOOLS = "functools["


def phi4_functools(text: str, r: Resolver) -> Read:
    """Microsoft Phi-4-mini's call list, ``functools[{"name": ..., "arguments":
    {...}}, ...]`` (vLLM's ``phi4_mini_json`` tool parser). The list must hold JSON
    call objects; prose or an empty list inside it is refused."""
    start = text.find(_FUNCTOOLS)
    got = repair.first_value(text[start + len(_FUNCTOOLS) - 1 :])
    if got is None:
        return "the functools[...] list is not a JSON list of calls"
    envelopes = json_envelopes(got[0].value)
    if not envelopes:
        return 'the functools[...] list holds no {"name": ..., "arguments": ...} call'
    return envelopes


# ---------------------------------------------------------------- OLMo 3

_OLMO = re.compile(r"<function_calls>(.*?)(?:</function_calls>|\Z)", re.S)


def olmo_function_calls(text: str, r: Resolver) -> Read:
    """AI2 OLMo 3's pythonic calls, one a line, inside ``<function_calls>...
    </function_calls>`` (vLLM's ``olmo3`` tool parser): ``get_weather(city='Oslo')``,
    with JSON's ``true``/``null`` read as Python's. Claude's ``<invoke>`` XML in the
    same tag is left to `claude_invoke`."""
    out: list[Envelope] = []
    for m in list(_OLMO.finditer(text))[:MAX_CALLS]:
        body = m.group(1).strip()
        if "<invoke" in body:
            return None
        if not body:
            continue
        calls = repair.python_calls(body)
        if calls is None:
            lines = [line.strip() for line in body.splitlines() if line.strip()]
            calls = []
            for line in lines[:MAX_CALLS]:
                got = repair.python_calls(line)
                if got is None:
                    return "the <function_calls> block is not Python calls, one a line"
                calls.extend(got)
        out.extend(calls)
    return out[:MAX_CALLS] or "an empty <function_calls> block"


# ---------------------------------------------------------------- JSON call lists after a token

_GRANITE = "<|tool_call|>"
_JAMBA = re.compile(r"<tool_calls>(.*?)(?:</tool_calls>|\Z)", re.S)


def _json_call_list(body: str, envelope: str) -> Read:
    """A JSON list (or object) of ``{"name", "arguments"}`` calls at the start of
    `body`, or several one after another (JSON Lines: MiniMax-M1 writes one call object
    a line inside ``<tool_calls>``, vLLM's ``minimax`` parser tests); the reason, naming
    the envelope, when it holds none, or when a value among them is not a call (an
    unreadable line among calls: running the others would guess)."""
    body = body.strip()
    if not body:
        return f"an empty {envelope} block"
    out: list[Envelope] = []
    rest = body
    while rest[:1] in ("[", "{") and len(out) < MAX_CALLS:
        got = repair.first_value(rest)
        envelopes = json_envelopes(got[0].value) if got is not None else None
        if not envelopes:
            break
        out.extend(envelopes)
        rest = rest[got[1] :].lstrip() if got is not None else ""
    if not out or rest[:1] in ("[", "{"):
        return f'the {envelope} block holds no {{"name": ..., "arguments": ...}} call'
    return out[:MAX_CALLS]


def granite(text: str, r: Resolver) -> Read:
    """IBM Granite 3.x/4's calls: ``<|tool_call|>[{"name": ..., "arguments": {...}}]``
    (vLLM's ``granite`` tool parser); the list follows the token to the end."""
    return _json_call_list(text.split(_GRANITE, 1)[1], _GRANITE)


def jamba(text: str, r: Resolver) -> Read:
    """AI21 Jamba's calls, a JSON list inside ``<tool_calls>...</tool_calls>`` (vLLM's
    ``jamba`` tool parser). DeepSeek-V3.2's ``<invoke>`` XML in the same tag is left
    to `claude_invoke`."""
    m = _JAMBA.search(text)
    if m is None or "<invoke" in m.group(1) or "<tool_call" in m.group(1):
        return None  # XML calls inside the tag are other readers' (DeepSeek, Hy3)
    return _json_call_list(m.group(1), "<tool_calls>")


# ---------------------------------------------------------------- Solar Open 2

SOLAR_CALL = "<|tool_call:start|>"
_SOLAR_END = "<|tool_call:end|>"
_SOLAR_ARG = "<|tool_arg:start|>"
_SOLAR_VALUE = "<|tool_arg:value|>"
_SOLAR_ARG_END = "<|tool_arg:end|>"


def solar(text: str, r: Resolver) -> Read:
    """Upstage Solar Open 2: ``<|tool_call:start|>NAME`` (the rest of the line), then
    ``<|tool_arg:start|>KEY<|tool_arg:value|>VALUE<|tool_arg:end|>`` per argument,
    then ``<|tool_call:end|>`` (vLLM's ``solar_open2`` parser tests). A value is typed
    by the schema; a missing ``<|tool_arg:end|>`` ends at the call's end. A call that
    never closes was cut off, and a parameter given twice cannot be told apart: both
    are refused, not guessed."""
    out: list[Envelope] = []
    for piece in text.split(SOLAR_CALL)[1 : MAX_CALLS + 1]:
        body, closed, _ = piece.partition(_SOLAR_END)
        if not closed:
            return "a Solar tool call cut off before <|tool_call:end|>"
        name = body.split("\n", 1)[0].split("<|", 1)[0].strip()
        if not re.fullmatch(_NAME, name):
            return "a Solar tool call without its tool name"
        tool = r.match(name)
        args: dict[str, Any] = {}
        for arg in body.split(_SOLAR_ARG)[1 : MAX_CALLS + 1]:
            key, found, value = arg.partition(_SOLAR_VALUE)
            key = key.strip()
            if not found or not key:
                return f"an argument of the Solar call to {name!r} without its key and value"
            if key in args:
                return f"the Solar call to {name!r} gives {key!r} twice"
            value = value.split(_SOLAR_ARG_END, 1)[0].strip("\n")
            args[key] = typed_value(value, tool, key, r)
        out.append((name, args))
    return out or None


# ---------------------------------------------------------------- leaks users saw (session 11)

_GLM_BARE = re.compile(r"\A\s*(" + _NAME + r")\s*<arg_key>")


def glm_unwrapped(text: str, r: Resolver) -> Read:
    """GLM's bare name and ``<arg_key>``/``<arg_value>`` pairs with no ``<tool_call>``
    around them: a GLM-5.x model through an API gateway (zai-org/GLM-5#84), where the
    client got ``read<arg_key>filePath</arg_key><arg_value>...</arg_value>`` as a tool
    name. Read as the wrapped syntax, only when the text starts with an offered
    tool's name."""
    if "<tool_call>" in text:
        return None
    m = _GLM_BARE.match(text)
    if m is None or r.match(m.group(1)) is None:
        return None
    return tool_call_bare_name("<tool_call>" + text.strip() + "</tool_call>", r)


_CALLING = re.compile(r"\[Calling tool:\s*(" + _NAME + r")(\s+with arguments:\s*|\s*\])")
_LOOSE_PARAM = re.compile(
    r"<parameter\s+name\s*=\s*[\"'\u201c\u201d]([^\"'\u201c\u201d<>]{1,80})[\"'\u201c\u201d]\s*>"
)
_TYPOGRAPHIC = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def calling_tool(text: str, r: Resolver) -> Read:
    """The line an agent UI shows for a past call, imitated by the model instead of
    calling: ``[Calling tool: NAME with arguments: {...}]`` (MiniMax-M2.7 under Hermes
    Web UI, EKKOLearnAI/hermes-studio#942; Hermes renders history this way and the
    model copies it), or ``[Calling tool: NAME]`` followed by ``<parameter name=...>``
    tags. A JSON object whose quotes came out typographic (``\u201c...\u201d``, as
    pasted) is read with plain quotes, only when it does not parse as written."""
    out: list[Envelope] = []
    marks = list(_CALLING.finditer(text))[: MAX_CALLS + 1]
    for index, m in enumerate(marks[:MAX_CALLS]):
        stop = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        rest = text[m.end() : stop]
        if m.group(2).strip().startswith("with"):
            if rest[:1] not in ("{", "\u201c"):
                return f"the arguments after [Calling tool: {m.group(1)}] are not a JSON object"
            got = repair.first_value(rest)
            if got is None or not isinstance(got[0].value, dict):
                got = repair.first_value(rest.translate(_TYPOGRAPHIC))
            if got is None or not isinstance(got[0].value, dict):
                return f"the arguments after [Calling tool: {m.group(1)}] are not a JSON object"
            out.append((m.group(1), got[0].value))
            continue
        args: dict[str, Any] = {}
        params = list(_LOOSE_PARAM.finditer(rest))[:MAX_CALLS]
        for p in params:
            end = rest.find("</parameter>", p.end())
            if end < 0:
                return f"a parameter of {m.group(1)!r} never closes"
            args[p.group(1)] = typed_value(
                _param_text(rest[p.end() : end]), r.match(m.group(1)), p.group(1), r
            )
        if not params and rest.strip():
            return None  # prose after the line: not a call written this way
        out.append((m.group(1), args))
    return out or None


_TAG_OPEN = re.compile(r"<(" + _NAME + r")>")
_XML_ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&"}


def _xml_text(value: str) -> str:
    """A tag's text with the five XML entities read (`2&gt;/dev/null` is `2>/dev/null`)."""
    value = _param_text(value)
    if "&" not in value:
        return value
    for entity, char in _XML_ENTITIES.items():
        value = value.replace(entity, char)
    return value


def tool_name_tags(text: str, r: Resolver) -> Read:
    """Cline's XML tool use: the tool's name as a tag, each parameter a child tag
    (``<execute_command><command>ls</command></execute_command>``). Coding agents
    prompt for it and models write it elsewhere too: MiMo in a Cline bridge with the
    command's ``>`` escaped as ``&gt;`` (apmantza/pi-free#235), DeepSeek inside an
    unclosed ``<tool_call>`` (AppsGanin/ai-free-vscode#17). Only a tag named exactly for
    an offered tool opens a call; its body must be child tags alone, and a call or a
    parameter that never closes is refused (the reply was cut)."""
    out: list[Envelope] = []
    pos = 0
    for seen, m in enumerate(_TAG_OPEN.finditer(text)):
        if seen >= MAX_CALLS * 8 or len(out) >= MAX_CALLS:
            break
        name = m.group(1)
        if name not in r.tools or m.start() < pos:
            continue
        close = text.find(f"</{name}>", m.end())
        if close < 0:
            return f"the <{name}> call never closes"
        body, pos = text[m.end() : close], close
        args: dict[str, Any] = {}
        at, leftover = 0, []
        for child in _TAG_OPEN.finditer(body):
            if child.start() < at:
                continue
            end = body.find(f"</{child.group(1)}>", child.end())
            if end < 0:
                return f"the <{child.group(1)}> parameter of {name!r} never closes"
            leftover.append(body[at : child.start()])
            args[child.group(1)] = typed_value(
                _xml_text(body[child.end() : end]), name, child.group(1), r
            )
            at = end + len(child.group(1)) + 3
            if len(args) > MAX_CALLS:
                break
        leftover.append(body[at:])
        if "".join(leftover).strip():
            return None  # text in the body: a tag in prose or markup of another kind
        out.append((name, args))
    return out or None


def at_name_call(text: str, r: Resolver) -> Read:
    """gptme's tool format (`AT_CALL`): the name written after ``@``, then one JSON
    object, complete as written or with ordinary repairs (a missing comma); one that
    does not close (cut off: ``@tool: {``, ``@tool: {"unclosed": {``, gptme's
    "invalid" cases) is refused, never closed by a guess. Lines inside ``` fences are
    examples and are not read."""
    fences = fence_positions(text) if FENCE in text else []
    out: list[Envelope] = []
    for m in AT_CALL.finditer(text):
        if not outside_fences(m.start(), fences):
            continue
        got = repair.first_value(text[m.end() :])
        if got is None or "closed_missing_bracket" in got[0].repairs:
            return f"the arguments of @{m.group(1)} are not a complete JSON object"
        out.append((m.group(1), got[0].value))
        if len(out) >= MAX_CALLS:
            break
    return out or None


_NAME_ONLY = re.compile(
    r"\A\s*\{\s*[\"']?(?:type|name|tool|function|action)[\"']?\s*:\s*[\"']?("
    + _NAME
    + r")[\"']?\s*\}\s*\Z"
)


def name_only_object(text: str, r: Resolver) -> Read:
    """A whole reply that is one object naming an offered tool and nothing else, in any
    quoting: a voice agent's model narrated ``{type:transfer_call_...}`` instead of
    calling (bolna-ai/bolna#826), and the caller heard it. The tool named, with no
    arguments: a call when the tool requires none; otherwise the arguments are missing
    and the reply is refused. Any other object, or one naming no offered tool, is data."""
    m = _NAME_ONLY.match(text)
    if m is None or m.group(1) not in r.tools:
        return None
    required = r.tools[m.group(1)].parameters.get("required") or []
    if required:
        return f"the reply names {m.group(1)!r} but gives none of its arguments"
    return [(m.group(1), {})]


def _leading_args(text: str, r: Resolver) -> Read:
    """`anchored.leading_args_calls` as a reader."""
    return anchored.leading_args_calls(text, r)


READERS: tuple[Reader, ...] = (
    Reader("harmony_call", "OpenAI gpt-oss (Harmony format)", "to=functions.", harmony),
    Reader(
        "claude_invoke_xml", "Anthropic Claude function-calling XML", "invoke name=", claude_invoke
    ),
    Reader("lfm_tool_call", "Liquid AI LFM2", "<|tool_call_start|>", lfm),
    Reader("kimi_tool_call", "Moonshot Kimi K2", _KIMI_BEGIN, kimi),
    Reader("kimi_k3_call", "Moonshot Kimi K3 (XTML channels)", K3_CALL, kimi_k3),
    Reader("gemma_call", "Google FunctionGemma, Gemma 4", "call:", gemma, also=("<call>",)),
    Reader("gemma_tool_code", "Google Gemma 3 prompt-based calling", "```tool_code", tool_code),
    Reader(
        "function_eq_tag", "Meta Llama 3.1 custom tools, Qwen3-Coder", "<function=", function_eq
    ),
    Reader(
        "qwen_garbled_opener",
        "Qwen3-Coder/3.8 calls with a broken <function=> opener (schema-anchored)",
        "<parameter=",
        anchored.garbled_qwen_call,
    ),
    Reader(
        "mistral_args_without_token",
        "Mistral/Devstral NAME[ARGS] calls whose [TOOL_CALLS] was consumed (schema-anchored)",
        "[ARGS]",
        _leading_args,
    ),
    Reader("function_name_tag", "small Llama-style fine-tunes", "<function>", function_tag),
    Reader("tool_call_name_attr", "Hermes-format fine-tunes", "<tool_call ", tool_call_attr),
    Reader(
        "tool_call_bare_name",
        "Hermes/Qwen no-argument calls, GLM-4.5",
        "<tool_call>",
        tool_call_bare_name,
    ),
    Reader(
        "tool_call_name_only",
        "Hermes-format calls of no-argument tools (DeepSeek-TNG)",
        "<tool_call>",
        tool_call_name_only,
    ),
    Reader("function_name_attr", "MiniCPM bare XML dialect", "<function name=", function_name_attr),
    Reader("llama4_pythonic", "Meta Llama 4 pythonic", "<|python_start|>", llama4_pythonic),
    Reader("phi4_functools", "Microsoft Phi-4-mini", _FUNCTOOLS, phi4_functools),
    Reader("olmo_function_calls", "AI2 OLMo 3", "<function_calls>", olmo_function_calls),
    Reader("granite_tool_call", "IBM Granite 3.x/4", _GRANITE, granite),
    Reader("solar_tool_call", "Upstage Solar Open 2", SOLAR_CALL, solar),
    Reader("jamba_tool_calls", "AI21 Jamba", "<tool_calls>", jamba),
    Reader(
        "langchain_xml",
        "LangChain XML agent",
        "<tool>",
        langchain_xml,
        also=("<tool_input>", "<final_answer>"),
    ),
    Reader("glm_unwrapped", "Zhipu GLM-5 through a gateway", "<arg_key>", glm_unwrapped),
    Reader("calling_tool_line", "agent UI call lines, imitated", "[Calling tool:", calling_tool),
    Reader("at_name_call", "gptme's tool format (@name(id): {json})", "@", at_name_call),
    Reader("tool_name_tags", "Cline-style XML tool use", "</", tool_name_tags),
    Reader("name_only_object", "narrated no-argument calls", "{", name_only_object),
)


# each reader with the first characters of its markers, and all those characters
_LEADS = tuple(
    (reader, frozenset(m[:1] for m in (reader.marker, *reader.also))) for reader in READERS
)
_LEAD_CHARS = frozenset().union(*(leads for _, leads in _LEADS))


def read(text: str, r: Resolver) -> tuple[Reader, list[Envelope] | str] | None:
    """The first reader whose syntax the text holds, and what it read.

    A marker is looked for only when its first character is in the text: one search
    for a character (memchr) per distinct first character, instead of a substring
    search per reader, keeps a plain answer's check cheap as readers are added."""
    present = {c for c in _LEAD_CHARS if c in text}
    for reader, leads in _LEADS:
        if leads.isdisjoint(present):
            continue
        if reader.marker in text or (reader.also and any(m in text for m in reader.also)):
            got = reader.read(text, r)
            if got is not None:
                return reader, got
    return None


# ---------------------------------------------------------------- JSON envelopes

_ANSWER_KEYS = ("answer", "final_answer", "output", "response", "text", "content")
_NAME_KEYS = ("name", "tool", "tool_name", "action", "function", "recipient_name")
_ARG_KEYS = ("arguments", "parameters", "args", "action_input", "input", "tool_input", "params")


def json_envelopes(value: Any, depth: int = 0) -> list[Envelope] | None:
    """The calls a parsed JSON value describes, in any of the usual envelopes:
    OpenAI's ``tool_calls``/``function``, ``{"name", "arguments"|"parameters"}``
    (Hermes, Llama 3.x JSON), LangChain's ``{"action", "action_input"}``, and
    AutoGPT's ``{"thoughts": ..., "command": {"name", "args"}}``."""
    if depth > 4:
        return None
    if isinstance(value, list):
        out: list[Envelope] = []
        for item in value[:MAX_CALLS]:
            got = json_envelopes(item, depth + 1)
            if not got:
                return None
            out.extend(got)
        return out or None
    if not isinstance(value, dict):
        return None
    calls = value.get("tool_calls")
    if isinstance(calls, list) and calls:
        return json_envelopes(calls, depth + 1)
    function = value.get("function")
    if isinstance(function, dict) and "name" in function:
        return [(function.get("name"), function.get("arguments"))]
    command = value.get("command")
    if isinstance(command, dict) and isinstance(command.get("name"), str):
        # AutoGPT (classic): the command's name and its args; "thoughts" is reasoning
        return [(command["name"], command.get("args", command.get("arguments")))]
    has_args = any(k in value for k in _ARG_KEYS)
    for key in _NAME_KEYS:
        name = value.get(key)
        # {"name": ...} alone is data (a final answer's object), not a call
        if (isinstance(name, str) and (has_args or key in ("tool", "tool_name"))) or (
            key == "action" and key in value and not isinstance(name, (list, dict))
        ):
            args = next((value[k] for k in _ARG_KEYS if k in value), None)
            return [(name, args)]
    if len(value) == 1 and next(iter(value)) in _ANSWER_KEYS[:2]:
        return [("final_answer", value)]
    return None


def keyed_actions(value: Any, r: Resolver) -> list[Envelope] | str | None:
    """browser-use's action list, keyed by tool name:
    ``{"current_state": {...}, "action": [{"click_element": {"index": 14}}]}`` or the
    bare list ``[{"click_element": {"index": 14}}]``. Every item must be one offered
    tool's name over an argument object that has the tool's required keys; an item
    naming no offered tool refuses the whole reading. A single such object,
    ``{"click_element": {"index": 15}}``, as browser-use logs one action, is read
    when its key is an offered tool's name."""
    if isinstance(value, dict) and len(value) == 1 and "action" not in value:
        ((key, inner),) = value.items()
        if isinstance(inner, dict) and r.match(key) is not None:
            value = [value]
    items = value.get("action") if isinstance(value, dict) else value
    if not isinstance(items, list) or not items or len(items) > MAX_CALLS:
        return None
    if not all(isinstance(i, dict) and len(i) == 1 for i in items):
        return None
    out: list[Envelope] = []
    for item in items:
        ((name, args),) = item.items()
        tool = r.match(name)
        if tool is None:
            if isinstance(value, dict):
                return f"{str(name)[:80]!r} is not an available tool"
            return None  # a bare list of one-key objects may be data
        if args is not None and not isinstance(args, dict):
            return None
        missing = r.missing_required(tool, args or {})
        if missing:
            return f"the call to {tool!r} lacks its required {', '.join(missing)}"
        out.append((name, args))
    return out
