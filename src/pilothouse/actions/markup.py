"""Call markup: the text of a tool call (or of a chat template) that must never be an answer.

A model that means to act sometimes writes its call in an envelope the asked-for
format does not read (Claude's `<invoke>`, LFM's `<|tool_call_start|>`, an OpenAI
Harmony channel), or names a tool that is not offered. When nothing readable comes
of it, the parsers' prose fallbacks would hand the markup to the user as the final
answer and end the run. `call_markup` names such markup so the formats report a
parse failure instead, and the loop asks the model again.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from pilothouse.actions import repair
from pilothouse.actions.fences import FENCE, fence_positions, outside_fences
from pilothouse.actions.template_tokens import leaked_token

_MARKERS = (
    "<tool_call>",
    "<tool_call ",  # the name in an attribute; `<tool_calling>` in prose is a word
    "<tool_call|>",
    "</tool_call>",
    "</function>",
    "<function_calls>",
    "</function_calls>",
    "<invoke",
    "</invoke>",
    "<parameter name=",
    "<tool_input>",
    "</tool_input>",
    "<|tool_call_start|>",
    "<|tool_call_end|>",
    "<|python_tag|>",
    "[TOOL_CALLS]",
    "<|channel|>",
    "to=functions.",
    "<|im_start|>",
    "<|start|>",
    "<|message|>",
    "<|call|>",
    "<｜tool▁",  # noqa: RUF001 (DeepSeek's own token spelling)
    # the envelopes the readers added for issue #15 know (actions/readers.py)
    "<function name=",
    "<start_function_call>",
    "<end_function_call>",
    "```tool_code",
    "<|tool_calls_section_begin|>",
    "<|tool_call_begin|>",
    "<arg_key>",
    '<|"|>',
    "<|python_start|>",
    "functools[",
)
_TOKEN = re.compile(r"<\|[a-z_]*(?:tool|call|function)[a-z_]*\|>")
# `<function=NAME>`, `<function=NAME={`, or the tag cut off at the end of the reply; not
# prose that mentions the tag ("the tag <function=foo is documented here")
_FUNCTION_EQ = re.compile(r"<function=[^\s<>]{0,200}(?:>|=|\{|\s*\Z)")
# Any other chat-template token, `<|name|>`: InternLM2 writes its calls as
# `<|action_start|><|plugin|>{...}<|action_end|>`, Cohere as `<|START_ACTION|>[...]`,
# and a model that writes template tokens is writing structure, not an answer to the
# user. Tokens that only end a reply (`<|eot_id|>`, `<|endoftext|>`, ...) carry no
# call and are left to the formats, which strip them.
_TEMPLATE_TOKEN = re.compile(r"<\|([A-Za-z_][\w.:\-]{0,40})\|>")
_END_TOKENS = frozenset(
    {"eot_id", "eom_id", "eot", "eos", "end", "endoftext", "im_end", "end_of_text", "return"}
)
# A tag whose name is a call envelope under a vendor's prefix or suffix:
# `<longcat_tool_call>`, `<minimax:tool_call>`, `<tool_calls:opensource>` (Tencent
# Hy4), `<toolcall>` (Nemotron-mini), `<seed:tool_call>`, `<function_call>`.
_CALL_TAG = re.compile(r"</?([A-Za-z_][\w:.|\-]{0,60})>")  # `|`: `<ifm|tool_call>` (K2-V3)
# The word must end there: `<tool_calling>` in prose is a word about tool calling,
# not an envelope (Ollama's qwen3.8 parser tests keep it as content).
_CALL_TAG_NAME = re.compile(r"(?:tool_?calls?|function_?calls?)(?![a-z])", re.I)
# DeepSeek's and GigaChat's special tokens are tags opened by a fullwidth bar,
# U+FF5C (DeepSeek's `tool▁calls▁begin` token, GigaChat 3.5's `GCML` tool_calls,
# invoke and parameter tags): no prose writes that character inside angle brackets.
_FULLWIDTH_TAG = re.compile(r"</?｜[^<>\n]{1,80}>")  # noqa: RUF001 (the tokens' own bar)
_GEMMA = re.compile(r"(?:call:|<call>)[A-Za-z_][\w.\-]*\{")
# the whole reply a bracketed list of Python calls, `[name(...), ...]` (vLLM's
# pythonic tool parser, Llama 3.2/4, LFM2 without its tokens)
_PY_LIST = re.compile(r"\A\s*\[\s*[A-Za-z_][\w.]*\s*\(.*\)\s*\]\s*\Z", re.S)
# the opening of a bracketed Python call list with a keyword argument, `[name(key=`,
# however the rest is broken (vLLM's pythonic parser tests: degenerate `[A(A=...`)
_PY_OPEN = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(\s*[A-Za-z_]\w*\s*=")
_STEP = r"[ \t*]*(?:\d+[ \t*]*)?:"
# "Action Input:" anywhere, or "Action: <one name>" (with call parentheses or JSON after
# it, or nothing); "Action: Bob sends the report" is prose, not a ReAct step
_REACT = re.compile(
    r"^[ \t>*#]*(?:Action[ \t_]*Input"
    + _STEP
    + r"|Action"
    + _STEP
    + r"[ \t*`'\"]*[\w.\-]+[ \t*`'\"]*(?:$|[(\[{]))",
    re.M | re.I,
)
_ARG_KEYS = frozenset({"arguments", "parameters", "args", "input"})
# keys that name the tool a call is for: with an offered tool's name as their value,
# the object is a call (`{"name": "get_weather", ...}`), whatever its other keys
_NAMING_KEYS = frozenset(
    {"name", "action", "tool", "tool_name", "function", "function_name", "recipient_name"}
)
# keys no data answer spells but every call envelope does, holding a call's arguments
# or calls (an object, a list, or a JSON string of an object)
_CALL_KEYS = frozenset(
    {
        "arguments",
        "action_input",
        "tool_input",
        "tool_calls",
        "function_call",
        "tool_use",
        "tool_uses",
    }
)
# call-shaped keys as written, for JSON too broken (or too buried in stray quotes and
# brackets) to load: a name then its arguments, an action then its input, a tool
_STR = r'"[^"\n]{0,200}"\s*,\s*'
_JSON_KEYS = re.compile(
    r'"name"\s*:\s*' + _STR + r'"(arguments|parameters|args|input)"\s*:'
    r'|"action"\s*:\s*' + _STR + r'"action_input"\s*:'
    r'|[{,]\s*"(?:action_input|tool_input)"\s*:'
    r'|\{\s*"(?:tool|tool_name|function)"\s*:\s*["{]'
    r'|"command"\s*:\s*\{\s*"name"\s*:'
)


def _call_shaped(value: Any, depth: int = 0, names: Collection[str] = ()) -> str | None:
    """What makes a parsed JSON value look like a call (or a list of calls), if anything.

    With the offered tools' `names`: a naming key whose value is an offered tool, or an
    object whose one key is an offered tool (an action list keyed by tool name,
    ``[{"click_element": {"index": 14}}]``), is a call whatever else it holds."""
    if depth > 3:
        return None
    if isinstance(value, list):
        for item in value[:16]:
            got = _call_shaped(item, depth + 1, names)
            if got is not None:
                return got
        return None
    if not isinstance(value, dict):
        return None
    keys: set[str] = {k for k in value if isinstance(k, str)}
    for key in sorted(keys & _NAMING_KEYS):
        named = value[key]
        if not isinstance(named, str):
            continue
        if named in names or named.rsplit(".", 1)[-1] in names:  # `functions.NAME`
            return '{"' + key + '": "' + named + '"}'
    if len(keys) == 1 and next(iter(keys)) in names and isinstance(value[next(iter(keys))], dict):
        return '{"' + next(iter(keys)) + '": {...}}'
    if len(keys) == 1 and keys <= _ARG_KEYS and isinstance(value[next(iter(keys))], dict):
        # Llama 3.x JSON's argument envelope with the name lost: `{"parameters": {...}}`
        return '{"' + next(iter(keys)) + '": ...}'
    if isinstance(value.get("name"), str) and keys & _ARG_KEYS:
        return '{"name": ..., "' + sorted(keys & _ARG_KEYS)[0] + '": ...}'
    if "action" in keys and "action_input" in keys:
        return '{"action": ..., "action_input": ...}'
    for key in ("action_input", "tool_input"):
        # LangChain's JSON agent keys, which no data answer spells: an action whose name
        # was lost or garbled (`{"action_input": "Paris"}`, `{20: ..., "action_input": ...}`
        # from the embedded SmolLM2-135M, parse corpus session 13), whatever its input holds
        if key in keys:
            return '{"' + key + '": ...}'
    for key in ("tool", "tool_name", "function"):
        if isinstance(value.get(key), (str, dict)):
            return '{"' + key + '": ...}'
    if isinstance(value.get("tool_calls"), list):
        return '{"tool_calls": [...]}'
    command = value.get("command")
    if isinstance(command, dict) and "name" in command:
        return '{"command": {"name": ...}}'
    for key in sorted(keys & _NAMING_KEYS):
        # a name of any tool beside its arguments: `{"recipient_name": ..., "parameters": {}}`
        for arg in sorted(keys & _ARG_KEYS):
            if isinstance(value[key], str) and isinstance(value[arg], dict):
                return '{"' + key + '": ..., "' + arg + '": {...}}'
    for key in sorted(keys & _CALL_KEYS):
        if isinstance(value[key], (dict, list)) or (
            isinstance(value[key], str) and value[key].lstrip()[:1] == "{"
        ):
            return '{"' + key + '": ...}'
    return None


def _template_token(text: str) -> str | None:
    """The first chat-template token in `text` that is not a mere end of reply."""
    if "<|" not in text:
        return None
    for count, m in enumerate(_TEMPLATE_TOKEN.finditer(text)):
        if m.group(1).lower() not in _END_TOKENS:
            return m.group()
        if count >= 64:  # bounded work on a run of end tokens
            break
    return None


def _call_tag(text: str) -> str | None:
    """The first tag whose name holds `tool_call`/`toolcall`/`function_call`, if any."""
    if "call" not in text.lower():
        return None
    for count, m in enumerate(_CALL_TAG.finditer(text)):
        if _CALL_TAG_NAME.search(m.group(1)) is not None:
            return m.group()
        if count >= 256:
            break
    return None


# A tag with a name made only of call words (`<tool>`, `<invoke>`, `<tool_use>`,
# `<function_name>`, `<vendor:parameter>`), written as structure: closed by its own
# end tag, carrying attributes (`<tool name="x">`), or opening JSON. A lone
# `<function>` in prose, `<call-to-action>` or `<toolbar>` is not one.
_ANY_TAG = re.compile(r"<([A-Za-z_][\w:.|\-]{0,60})(\s+[A-Za-z_][\w\-]*\s*=[^<>]{0,300})?\s*/?>")
_CALL_WORDS = frozenset(
    {
        "tool",
        "tools",
        "call",
        "calls",
        "function",
        "functions",
        "func",
        "invoke",
        "action",
        "actions",
        "parameter",
        "parameters",
        "param",
        "params",
        "arg",
        "args",
        "argument",
        "arguments",
        "toolcall",
        "toolcalls",
        "functioncall",
        "tooluse",
        "use",
        "name",
        "input",
        "begin",
        "start",
        "end",
        "code",
        "request",
        # a tool's result written by the model itself (`<tool_response>`, Hermes's
        # template role; `<tool_result call_id=...>`, izaart95-jpg/GLM-Free-API#44;
        # `<function_results>`): a forged observation, not an answer (with a call word)
        "result",
        "results",
        "response",
        "responses",
        "output",
        "outputs",
    }
)
_CORE_WORDS = frozenset(
    {
        "tool",
        "tools",
        "toolcall",
        "toolcalls",
        "function",
        "functions",
        "functioncall",
        "invoke",
        "action",
        "actions",
        "parameter",
        "parameters",
        "arguments",
        "args",
        "tooluse",
        "call",
        "calls",
    }
)
_WORD_SPLIT = re.compile(r"[_.\-]+")
_PREFIX_SPLIT = re.compile(r"[:|]")  # a vendor prefix: `minimax:invoke`, `ifm|tool_call`
# fences a model writes calls in (Gemini's ```tool_code, and the like)
_CALL_FENCE = re.compile(
    r"^[ \t]*```[ \t]*(tool_code|tool_call|tool_calls|tool|tools|function_call|functions?)"
    r"[ \t]*$",
    re.M | re.I,
)
# Mistral-style bracket tokens (`[TOOL_CALLS]`, `[ARGS]`, `[CALL_ID]`) and their kin
# (`[TOOL_REQUEST]`, `[/TOOL_RESULTS]`): upper case, a call word inside
_BRACKET_TOKEN = re.compile(r"\[/?[A-Z_]*(?:TOOL|CALL|FUNCTION|ARGS)[A-Z_]*\]")
# a Harmony recipient under any namespace: `to=browser.search`, `to=container.exec`
_RECIPIENT = re.compile(r"(?:^|(?<=[\s>]))to=[A-Za-z_][\w\-]*\.[A-Za-z_][\w.\-]*", re.M)
# a call laid out in lines: `Tool: NAME` / `Function call: NAME` followed by its
# arguments, on the same line (`NAME(`, `NAME {`) or as JSON on an `Arguments:`-like
# line next (an API described in prose, `Arguments: id (int)`, is not a call)
_CALL_LINES = re.compile(
    r"(?:^|(?<=[.!?:,;]))[ \t>*#\-]*(?:Tool|Function)(?:[ \t_]?(?:call|name|use))?[ \t*]*:"
    r"[ \t*`'\"]*"
    r"[A-Za-z_][\w.\-]*[ \t*`'\"]*(?:[(\[{]|\r?\n[ \t>*#\-]*(?:Arguments|Args|"
    r"Parameters|Params|Input|Tool[ \t_]?Input|Function[ \t_]?Input)[ \t*]*:[ \t`]*[{\[])",
    re.M | re.I,
)
# the line an agent UI shows for a past call, which models imitate instead of calling:
# `[Calling tool: NAME with arguments: {...}]` (Hermes Web UI, hermes-studio#942),
# `[Tool Call: NAME]` (OpenClaw#989); a name must follow (`[Tool Call: ...]` in prose
# about the leak is not one)
_UI_CALL_LINE = re.compile(r"\[(?:Calling[ \t]+tools?|Tool[ \t]+[Cc]all)[ \t]*:[ \t]*[A-Za-z_]")
# `functions.NAME(`, `default_api.NAME(`: a namespace every Gemini/OpenAI-style call
# is written under
_NAMESPACED_CALL = re.compile(r"\b(?:functions|default_api)\.[A-Za-z_]\w*\s*\(")
# a naming key and its value in any quoting, for objects too broken to load:
# `{name: get_weather, ...}`, `{'tool': 'get_weather'}`
_NAMING_PAIR = re.compile(
    r"[{,]\s*['\"]?(?:name|action|tool|tool_name|function|function_name)['\"]?\s*[:=]\s*"
    r"['\"]?([A-Za-z_][\w.\-]{0,80})"
)
# an arguments key in any quoting opening an object, inside an object
_ARGS_PAIR = re.compile(
    r"[{,]\s*['\"]?(?:arguments|action_input|tool_input|function_call|tool_calls)['\"]?"
    r"\s*:\s*[{\[]"
)


_CALL_OPEN = re.compile(r"(?<![\w.\-])([A-Za-z_][\w.\-]*)[ \t]?\(")
_KWARG = re.compile(r"[A-Za-z_]\w*\s*=")


# Code fences of markup languages: a Struts `<action name=...>` or a Maven
# `<parameters>` in an answer about configuration is that configuration, so the
# word rule skips them (the named envelopes, `<invoke`, `<tool_call>`, ... still count)
_MARKUP_FENCE = re.compile(
    r"^[ \t]*```[ \t]*(?:xml|html|xhtml|svg|jsp|vue|jsx|tsx|php|xsl|xslt|wsdl|pom|ant)\b"
    r".*?(?:^[ \t]*```|\Z)",
    re.M | re.S | re.I,
)


def _word_tag(text: str) -> str | None:
    """The first tag whose name is made only of call words, written as structure,
    outside code fences of markup languages."""
    if "<" not in text:
        return None
    lowered = text.lower()
    skipped = [m.span() for m in _MARKUP_FENCE.finditer(text)] if "```" in text else []
    for count, m in enumerate(_ANY_TAG.finditer(text)):
        if count >= 256:
            break
        if any(a <= m.start() < b for a, b in skipped):
            continue
        name = m.group(1).lower()
        words = [w for w in _WORD_SPLIT.split(_PREFIX_SPLIT.split(name)[-1]) if w]
        if not words or not set(words) <= _CALL_WORDS or not set(words) & _CORE_WORDS:
            continue
        after = text[m.end() : m.end() + 40].lstrip()
        if m.group(2) or "</" + name + ">" in lowered or after[:1] in ("{", "["):
            return m.group()
    return None


def _offered_call(text: str, names: Collection[str]) -> str | None:
    """A Python-style call of an offered tool: `name()`, `name(key=`, `name("..."`,
    `name({...`. A name mentioned in prose, or called with a bare word, is not.
    One pass over the text, whatever the number of tools."""
    if "(" not in text:
        return None
    if len(names) <= 32:  # a few tools: one fast substring search each
        names = [n for n in names if any(n + gap + "(" in text for gap in ("", " ", "\t"))]
        if not names:
            return None
    for count, m in enumerate(_CALL_OPEN.finditer(text)):
        if count >= 10_000:
            break
        name = m.group(1)
        if name not in names:
            name = name.rsplit(".", 1)[-1]  # `default_api.search(`
            if name not in names:
                continue
        rest = text[m.end() : m.end() + 80].lstrip()
        if rest[:1] in (")", '"', "'", "{", "[") or _KWARG.match(rest):
            return name + "("
    return None


def _named_pair(text: str, names: Collection[str]) -> str | None:
    """A naming key whose value is an offered tool, in any quoting, or an arguments key
    opening an object: call keys as written, where the JSON will not load."""
    for count, m in enumerate(_NAMING_PAIR.finditer(text)):
        if m.group(1) in names:
            return m.group().lstrip("{, ")
        if count >= 256:
            break
    found = _ARGS_PAIR.search(text)
    return found.group().lstrip("{, ") if found is not None else None


_AT_NAME = r"[A-Za-z_][\w.\-]*"
# gptme's "tool" format: each call a line of its own, ``@NAME(CALL_ID): {json}`` (the id
# optional; Kimi K2 thinking writes it ``ipython:0``), at the start of a line and outside
# fenced code, where it is a documentation example (gptme's tests/test_tool_use.py and
# PR #1472)
AT_CALL = re.compile(r"^@(" + _AT_NAME + r")(?:\([^()\n]{0,120}\))?:[ \t]*(?=\{)", re.M)


def _at_call(text: str) -> str | None:
    """The first gptme-style call line (`AT_CALL`) outside fenced code, or `None`."""
    if "@" not in text:
        return None
    fences: list[int] | None = None
    for count, m in enumerate(AT_CALL.finditer(text)):
        if count >= 64:
            break
        if fences is None:
            fences = fence_positions(text) if FENCE in text else []
        if outside_fences(m.start(), fences):
            return m.group().strip() + " {"
    return None


# `<tool_call>` written inside a sentence, about the tag: a word and a space before it,
# and after it a space and a plain word that a space or closing punctuation ends
# ("an XML element (one with <tool_call> tags)", recorded from the embedded SmolLM2-135M
# on the Hermes prompt, parse corpus session 13), or closing punctuation. A call's
# opening tag is followed by its JSON, a line break, or a name with its arguments
# (`<tool_call>search<arg_key>`, `<tool_call> get_weather {`), none of which fit.
_TAG_MENTION = re.compile(r"(?<=[\w(\"'`] )<tool_call>(?=[ \t]+[A-Za-z]+[ \t,.;:)]|[),.;])")
_MENTIONS_SCANNED = 64


def tag_mentions_only(text: str) -> bool:
    """Whether every `<tool_call>` in `text` is a mention of the tag inside prose (see
    `_TAG_MENTION`) and none is closed: an answer that talks about the tag, which stays
    an answer. At most 64 tags are looked at (more: not an answer about them)."""
    count = text.count("<tool_call>")
    if not count or count > _MENTIONS_SCANNED or "</tool_call>" in text:
        return False
    return sum(1 for _ in _TAG_MENTION.finditer(text)) == count


def call_markup(
    text: str,
    *,
    answer_keys: Collection[str] | None = None,
    tool_names: Collection[str] = (),
) -> str | None:
    """The call-like markup `text` holds, named for a corrective message, or `None`.

    Markup is any tool-call envelope or chat-template token (`<tool_call>`,
    `<function=`, `<invoke`, `<|tool_call_start|>`, `<|python_tag|>`,
    `[TOOL_CALLS]`, a Harmony `<|channel|>` or `to=functions.`, `<|im_start|>`,
    `call:name{`, ...), any other chat-template token (`<|action_start|>`; not the
    tokens that only end a reply), a tag opened by a fullwidth bar (U+FF5C: DeepSeek, GigaChat), a
    tag named for a call under any prefix (`<longcat_tool_call>`, `<toolcall>`), a
    ReAct `Action:` line, or a JSON object shaped like a call:
    `{"name": ..., "arguments"|"parameters"|"args"|"input": ...}`,
    `{"action": ..., "action_input": ...}`, `{"tool": ...}`, `{"function": ...}`,
    `{"tool_calls": [...]}` or `{"command": {"name": ...}}`. Ordinary data is not:
    `{"name": "Alice", "age": 3}` has a name but nothing to call it with, and a JSON
    object whose keys are all keys of the agent's structured answer (`answer_keys`,
    from its output schema) is that answer, whatever its keys look like. Prose that
    only mentions a function or a tool call is not markup either.

    With the offered tools' names (`tool_names`) more is markup: a naming key whose
    value is an offered tool (`{"name": "get_weather", ...}`, in any quoting), an
    object keyed by an offered tool, and a Python-style call of one
    (`get_weather(city="Paris")`, `get_time()`). Without them: a tag named only with
    call words and written as structure (`<tool name="x">`, `<invoke>...</invoke>`),
    a ```tool_code fence, `functions.NAME(`, and an arguments key (`arguments`,
    `action_input`, `tool_calls`, ...) holding an object. Linear work in the text
    (times the number of tools for the name checks).
    """
    if "<tool_call>" in text and tag_mentions_only(text):
        text = text.replace("<tool_call>", "tool_call")  # prose about the tag: not markup
    for marker in _MARKERS:
        if marker in text:
            return marker
    for pattern in (_TOKEN, _FUNCTION_EQ, _GEMMA, _PY_LIST, _PY_OPEN, _FULLWIDTH_TAG):
        m = pattern.search(text)
        if m is not None:
            return m.group()
    seen = _template_token(text) or _call_tag(text) or _word_tag(text) or leaked_token(text)
    if seen is not None:
        return seen
    for pattern in (
        _CALL_FENCE,
        _NAMESPACED_CALL,
        _BRACKET_TOKEN,
        _RECIPIENT,
        _CALL_LINES,
        _UI_CALL_LINE,
    ):
        m = pattern.search(text)
        if m is not None:
            return m.group().strip()
    seen = _at_call(text)
    if seen is not None:
        return seen
    names = frozenset(n for n in tool_names if n)
    seen = (_offered_call(text, names) or _offered_tag(text, names)) if names else None
    if seen is not None:
        return seen
    m = _REACT.search(text)
    if m is not None:
        return m.group().split(":", 1)[0].strip(" \t>*#") + ":"
    if "{" in text and '"' in text:
        keys = set(answer_keys or ())
        for start, end in repair.balanced_spans(text):
            loaded = repair.loads(text[start:end])
            if loaded is None:
                continue
            value = loaded.value
            if answer_keys is not None and isinstance(value, dict) and value.keys() <= keys:
                return None  # the structured answer the agent asked for
            shape = _call_shaped(value, 0, names)
            if shape is not None:
                return shape
        m = _JSON_KEYS.search(text)
        if m is not None:
            return m.group()
    if "{" in text and (answer_keys is None or not _whole_answer(text, answer_keys)):
        return _named_pair(text, names) or _cut_call_json(text)
    return None


def _offered_tag(text: str, names: frozenset[str]) -> str | None:
    """A tag named for an offered tool, opened and closed (Cline's XML tool use,
    `<read_file><path>x</path></read_file>`); a lone `<read_file>` in prose is not."""
    if "</" not in text:
        return None
    for name in sorted(names)[:256]:
        if f"<{name}>" in text and f"</{name}>" in text:
            return f"<{name}>"
    return None


# an object that opens as a call, `{"name": ...`, `{'action': ...`, in any quoting
_OPENS_AS_CALL = re.compile(
    r"(\{)\s*['\"]?(?:name|action|tool|tool_name|function|function_name|command|tool_calls|"
    r"function_call|arguments|action_input)['\"]?\s*:"
)


def _cut_call_json(text: str) -> str | None:
    """An object that opens as a call and never closes (cut off at a token limit, or
    broken past repair): no answer to show the user, whatever it was. An object that
    closes was judged by its keys already (`{"name": "Alice", "age": 3}` is data)."""
    spans: list[tuple[int, int]] | None = None
    for count, m in enumerate(_OPENS_AS_CALL.finditer(text)):
        if count >= 16:
            break
        if spans is None:
            spans = repair.balanced_spans(text)
        if not any(a <= m.start(1) < b for a, b in spans):
            return m.group().strip()
    return None


def _whole_answer(text: str, answer_keys: Collection[str]) -> bool:
    """Whether the text is one JSON object with only the structured answer's keys."""
    loaded = repair.loads(text)
    value = loaded.value if loaded is not None else None
    return isinstance(value, dict) and value.keys() <= set(answer_keys)
