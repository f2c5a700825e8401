"""The action formats: `json`, `react`, `xml`, `native`, and `auto` detection.

Each format parses its own style first and then, leniently, the styles real
models drift into (a JSON blob in a ReAct reply, a bare JSON call where XML was
asked for). Whatever the input, `parse` returns a `ParseResult`; an internal
error becomes a failure too, so the loop can always ask again.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from string import Template
from typing import Any

from pilothouse.actions import anchored, readers, repair, template_tokens, turn_end
from pilothouse.actions.base import (
    ActionFormat,
    ParsedCall,
    ParseResult,
    Resolver,
    describe_tools,
    failure,
    final,
)
from pilothouse.actions.degenerate import degenerate
from pilothouse.actions.forged import forged_tool_turn, forged_user_turns
from pilothouse.actions.markup import call_markup, tag_mentions_only
from pilothouse.actions.narration import narrated_call
from pilothouse.messages import ToolResult
from pilothouse.models.base import ToolSpec
from pilothouse.prompts import Prompts

Envelope = tuple[Any, Any]  # (name as written, raw arguments or None)

# tokens that only end a reply (Llama 3 base writes <|end_of_text|>, DeepSeek its
# fullwidth end-of-sentence token): stripped, never read as markup
_SPECIAL = re.compile(
    r"<\|(?:eom_id|eot_id|eot|im_end|end|endoftext|end_of_text|eos)\|>|</s>"
    "|<\uff5cend\u2581of\u2581sentence\uff5c>"
)
_ANSWER_KEYS = readers._ANSWER_KEYS
_envelopes = readers.json_envelopes


# ---------------------------------------------------------------- shared steps


def _answer_text(raw: Any) -> str:
    """A final answer's text; a structured answer stays whole, as JSON."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in _ANSWER_KEYS:
        return _answer_text(next(iter(raw.values())))
    return json.dumps(raw, ensure_ascii=False)


def _resolve(envelopes: Sequence[Envelope], r: Resolver, repairs: list[str]) -> ParseResult:
    """Turn written names and arguments into offered-tool calls or a final answer."""
    calls: list[ParsedCall] = []
    answer: str | None = None
    for name, raw in envelopes:
        tool = r.match(name)
        if tool is None:
            if r.is_final(name):
                if answer is None:
                    answer = _answer_text(raw)
                continue
            if not isinstance(name, str) or not name.strip() or name.strip() in ("None", "null"):
                return failure(
                    "the reply names no tool; name one of: " + (", ".join(r.tools) or "(none)"),
                    repairs,
                )
            return failure(
                f"{str(name)[:80]!r} is not an available tool; use one of: "
                + (", ".join(r.tools) or "(none)"),
                repairs,
            )
        if tool != name:
            repairs.append("tool_name_matched")
        args = r.arguments(tool, raw, repairs)
        if isinstance(args, str):
            return failure(args, repairs)
        calls.append(ParsedCall(tool, args))
    if calls:
        if answer is not None:
            repairs.append("action_and_final_answer")
        if len(calls) > 1:
            repairs.append("several_actions")
        return ParseResult("tool_call", tuple(calls), repairs=tuple(dict.fromkeys(repairs)))
    if answer is not None:
        return final(answer, tuple(dict.fromkeys(repairs)))
    return failure("no action found", repairs)


def _json_action(text: str, r: Resolver, repairs: list[str]) -> ParseResult | None:
    """Calls from JSON objects anywhere in the text (bare, fenced, among prose)."""
    stripped = text.strip()
    if stripped.startswith('"') and stripped.endswith('"'):
        loaded = repair.loads(stripped)
        if loaded is not None and isinstance(loaded.value, str):
            repairs.append("double_encoded_json")
            return _json_action(loaded.value, r, repairs)
    closed = _closed_call(stripped, r, repairs)
    if closed is not None:
        return closed
    spans = repair.balanced_spans(text)
    found: list[Envelope] = []
    bare: list[Envelope] = []
    broken = False
    runs: list[tuple[int, int, bool]] = []  # (start, end, is a call) for _gap_in_calls
    for start, end in spans:
        loaded = repair.loads(text[start:end])
        if loaded is None:
            broken = broken or ":" in text[start:end]  # object-like, not prose braces
            if text[start] == "{":  # an object; `[TOOL_CALLS]` and the like are tokens
                runs.append((start, end, False))
            continue
        envs = _envelopes(loaded.value)
        if envs is None:
            keyed = readers.keyed_actions(loaded.value, r)
            if isinstance(keyed, str):
                return failure(keyed, repairs)
            if keyed:
                repairs.append("keyed_action_list")
                envs = keyed
        if envs is None and isinstance(loaded.value, dict):
            written = _name_before(text, start)
            if written is not None and (
                r.match(written) is not None or r.bare_arguments_tool(loaded.value) is not None
            ):
                # `lookup_forecast({"city": ...})`: the name the model wrote decides
                # (issue #15 item 3), even where the keys would fit another tool; code
                # that passes data to a function (`setState({...})`) with keys no tool
                # takes stays what it is
                repairs.extend(loaded.repairs)
                repairs.append("name_before_arguments")
                found.append((written, loaded.value))
                continue
            # a last resort, read after the loop: arguments with no name written
            tool = r.bare_arguments_tool(loaded.value)
            if tool is not None:
                bare.append((tool, loaded.value))
            continue
        if envs is None:
            continue
        repairs.extend(loaded.repairs)
        if found and text[:start].count("Observation:") > 0:
            repairs.append("cut_hallucinated_observation")
            break
        runs.append((start, end, True))
        found.extend(envs)
        if text[end:].strip() and "text_around_action" not in repairs:
            repairs.append("text_around_action")
    if found:
        gap = _gap_in_calls(text, runs)
        if gap is not None:
            return failure(gap, repairs)
        if bare:  # arguments quoted in prose beside a named call are not a second call
            repairs.append("ignored_unnamed_arguments")
        if text[: spans[0][0]].strip():
            repairs.append("text_around_action")
        return _resolve(found, r, repairs)
    if len(bare) == 1:
        repairs.append("bare_arguments")
        if text[: spans[0][0]].strip() or text[spans[-1][1] :].strip():
            repairs.append("text_around_action")
        return _resolve(bare, r, repairs)
    if bare:
        return failure(
            "the reply has several argument objects and names no tool; name the tool for each call",
            repairs,
        )
    if broken:
        return failure(
            "the reply has JSON that is not a valid action: give one JSON object with "
            '"action" (a tool name) and "action_input"',
            repairs,
        )
    if not spans and stripped.lstrip("`").removeprefix("json").lstrip().startswith(("{", "[{")):
        return failure("the reply's JSON is incomplete (cut off or unbalanced)", repairs)
    return None


def _gap_in_calls(text: str, runs: list[tuple[int, int, bool]]) -> str | None:
    """Why the calls cannot be run, when a brace block that is not JSON stands in their
    run (only whitespace or commas between it and a call): a call list with one item
    unreadable (vLLM's ``minimax`` parser tests: ``{invalid json here}`` between two
    calls). Running the readable ones guesses what the model meant; it is asked again."""
    for i, (start, end, is_call) in enumerate(runs):
        if is_call:
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(runs) and runs[j][2]:
                a, b = (runs[j][1], start) if j < i else (end, runs[j][0])
                if not text[a:b].strip(" \t\r\n,"):
                    return (
                        f"a block among the calls is not JSON ({text[start:end][:60]!r}); "
                        "write every call in full"
                    )
    return None


# a name written as a call right before an argument object: `lookup({`, `lookup ({`
_NAME_BEFORE = re.compile(r"(?<![\w.\-])([A-Za-z_][\w.\-]{0,80})[ \t]?\([ \t]*\Z")


def _name_before(text: str, start: int) -> str | None:
    """The name written as a call around the object at `start`, if any: ``NAME({...``.
    Python keywords and builtins that take data (`print(`, `dict(`, `json.dumps(`)
    are names too: the model called something that is not a tool, so no tool is
    guessed for it either."""
    m = _NAME_BEFORE.search(text, max(0, start - 90), start)
    return m.group(1) if m is not None else None


def _closed_call(stripped: str, r: Resolver, repairs: list[str]) -> ParseResult | None:
    """A call whose JSON lacks one closing bracket at its end (`repair.close_one`),
    or whose tool name lost its opening quote (`repair.loads`, ``missing_open_quote``).

    Only a named envelope is taken this way: an argument object that needs closing
    is not matched to a tool by its keys."""
    body = stripped
    if body.startswith("```"):
        blocks = repair.fenced_blocks(body)
        body = blocks[0].strip() if blocks else body
    if body[:1] not in "{[":
        return None
    got = repair.first_value(body)
    if got is None and body[-1:] in "}]":
        # one value whose quotes do not pair (a name that lost its opening quote),
        # which the bracket scan cannot cut: the whole body, if it repairs to a call
        loaded = repair.loads(body)
        got = (loaded, len(body)) if loaded is not None else None
        if got is None or "missing_open_quote" not in got[0].repairs:
            return None
    elif got is None or "closed_missing_bracket" not in got[0].repairs:
        return None
    envs = _envelopes(got[0].value)
    if envs is None:
        return None
    repairs.extend(got[0].repairs)
    return _resolve(envs, r, repairs)


def _fail_safe(fn: Any, *args: Any) -> ParseResult:
    try:
        result = fn(*args)
    except Exception as exc:  # the parser's promise: its own failure, never another error
        return failure(f"could not parse the reply ({type(exc).__name__})")
    assert isinstance(result, ParseResult)
    return result


def _answer_keys(schema: Mapping[str, Any] | None) -> frozenset[str] | None:
    """The keys of a structured answer's object, from its JSON schema (None: not an object)."""
    if not schema:
        return None
    props = schema.get("properties")
    return frozenset(props) if isinstance(props, Mapping) and props else None


def _structured_answer(
    text: str, keys: frozenset[str], tools: Sequence[ToolSpec]
) -> ParseResult | None:
    """The reply as the agent's structured answer: a JSON object (alone, or alone in a
    fence) whose keys are all the answer's and that names no offered tool. Read
    before any call reading, which would take ``{"name": "Alice", "input": ...}`` for
    a call to a tool named Alice."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").removeprefix("JSON").strip()
    if not body.startswith("{"):
        return None
    loaded = repair.loads(body)
    value = loaded.value if loaded is not None else None
    if not isinstance(value, dict) or not value or not value.keys() <= keys:
        return None
    offered = {t.name for t in tools}
    if any(isinstance(v, str) and v in offered for v in value.values()):
        return None  # it names an offered tool: read it as the call it may be
    return final(text.strip())


def _no_markup_answer(
    result: ParseResult, tools: Sequence[ToolSpec], answer_keys: frozenset[str] | None = None
) -> ParseResult:
    """The one gate every text format's final answer passes: markup is never an answer.

    An answer holding call markup (see `markup.call_markup`, and a tag named for an
    offered tool) is a call that did not parse to an offered tool; ending the run with
    it would show the user raw markup, so it becomes a failure naming what was seen,
    and the loop asks again.
    """
    if result.kind != "final_answer":
        return result
    if not result.answer.strip() and "think_block" in result.repairs:
        # all reasoning (where markup may hide), nothing said to the user
        return failure(
            "the reply holds only reasoning; call a tool or give your final answer",
            result.repairs,
        )
    if _only_reasoning(result.answer):
        return failure(
            "the reply is reasoning with no answer after it (cut off, or never closed); "
            "call a tool or give your final answer",
            result.repairs,
        )
    if not _said(result.answer):
        # an end token alone, `Final Answer:` with nothing after it, an empty fence:
        # nothing for the user, so nothing to end the run with
        return failure(
            "the reply says nothing (empty, or only an empty code block); call a tool or "
            "give your final answer",
            result.repairs,
        )
    forged = forged_tool_turn(result.answer)
    if forged is not None:
        # the model wrote the tool's turn itself (actions/forged.py)
        return failure(
            f"the reply writes a tool result itself ({forged[:40]!r}) instead of answering; "
            "call a tool or give your final answer",
            result.repairs,
        )
    if forged_user_turns(result.answer):
        # the model wrote the user's turns itself, in a loop (actions/forged.py)
        return failure(
            "the reply writes the user's turns itself (a loop of invented dialogue) "
            "instead of answering; call a tool or give your final answer",
            result.repairs,
        )
    if degenerate(result.answer):
        # a loop of any other kind (actions/degenerate.py): the specific diagnoses above
        # name what the model wrote; this one says it repeated itself
        return failure(
            "the reply repeats itself (one word or a few lines over and over), neither a "
            "call nor an answer; call a tool "
            "or give your final answer",
            result.repairs,
        )
    offered = [t.name for t in tools]
    narrated = narrated_call(result.answer, offered)
    if narrated is not None:
        # a plan or a progress line in place of the call (actions/narration.py)
        return failure(f"{narrated}; call a tool or give your final answer", result.repairs)
    seen = _fail_safe_markup(result.answer, answer_keys, offered) or _tool_tag(result.answer, tools)
    if seen is None:
        return result
    names = ", ".join(t.name for t in tools) or "(none)"
    return failure(
        f"the reply holds tool-call markup ({seen[:60]!r}) but no call to an offered tool "
        f"could be read from it; call one of: {names} in the format asked for, or give "
        "the final answer as plain text without call markup",
        result.repairs,
    )


_TAG = re.compile(r"<([A-Za-z_][\w.\-]{0,80})>")
_BARE_FINAL = re.compile(r"(?:Final[ \t_]*)?Answer[ \t*]*:", re.I)
_EMPTY_FENCE = re.compile(r"```[\w+\-]*[ \t]*\n?[ \t]*```")


_REASONING_OPEN = re.compile(r"\A\s*<(think|thinking|reasoning)>", re.I)


_THINK_ONLY = re.compile(r"\A\s*<think>(.*)</think>\s*\Z", re.S)


def _call_in_reasoning(text: str) -> str | None:
    """The `<tool_call>` blocks of a reply that is one think block and nothing after it,
    or None. Qwen3.5 writes its calls inside the reasoning (vLLM#39056; llama.cpp
    PR 23678 reads reasoning tags as mode switches for this reason): with nothing said
    after the block, a complete call in it is the call, not a thought. Not read when
    anything follows the block: then the calls after it decide."""
    m = _THINK_ONLY.match(text)
    if m is None:
        return None
    body = m.group(1)
    start, end = body.find("<tool_call>"), body.rfind("</tool_call>")
    if start < 0 or end < start:
        return None
    return body[start : end + len("</tool_call>")]


def _only_reasoning(answer: str) -> bool:
    """Whether the answer is a reasoning block and nothing else: opened and never
    closed (cut off at a token limit), or closed with nothing after it."""
    m = _REASONING_OPEN.match(answer)
    if m is None:
        return False
    close = answer.lower().find(f"</{m.group(1).lower()}>", m.end())
    return close < 0 or not answer[close + len(m.group(1)) + 3 :].strip()


def _said(answer: str) -> bool:
    """Whether an answer holds anything but whitespace, empty code fences and a
    `Final Answer:` label with nothing after it."""
    left = _EMPTY_FENCE.sub("", answer).strip(" \t\r\n`*")
    return bool(left) and _BARE_FINAL.fullmatch(left) is None


def _tool_tag(answer: str, tools: Sequence[ToolSpec]) -> str | None:
    """An XML tag named for an offered tool (`<get_weather>`, as Cline-style prompts
    have models write calls), which no reader took as a call: markup, not an answer.
    Only offered names count, so prose with other tags stays prose. Linear."""
    if "<" not in answer or not tools:
        return None
    names = {t.name for t in tools}
    for count, m in enumerate(_TAG.finditer(answer)):
        if m.group(1) in names:
            return m.group()
        if count >= 256:
            break
    return None


def _fail_safe_markup(
    answer: str, answer_keys: frozenset[str] | None, tool_names: Sequence[str] = ()
) -> str | None:
    try:
        return call_markup(answer, answer_keys=answer_keys, tool_names=tool_names)
    except Exception:  # the parser's promise holds here too; unreadable means "markup"
        return "unreadable reply"


def _precheck(text: Any) -> tuple[str, ParseResult | None]:
    if not isinstance(text, str):
        return "", failure("the reply is not text")
    if len(text) > repair.MAX_CHARS:
        return "", failure(f"the reply is longer than {repair.MAX_CHARS} characters")
    if not text.strip():
        return "", failure("the reply is empty; call a tool or give your final answer")
    return text, None


# ---------------------------------------------------------------- react

_NUM = r"[ \t*]*(?:\d+[ \t*]*)?:"  # optional step number, then the colon (no backtracking)
_R_ACTION = re.compile(r"^[ \t>*#]*Action" + _NUM + r"[ \t*]*(.*)$", re.M | re.I)
# asterisks right after the colon close a bold label (`**Action Input:** x`); asterisks after
# a space belong to the input and are left to `_input_value` (CrewAI's parser tests keep
# `** plain text` as written and drop only a stray `** ` before JSON)
_R_INPUT = re.compile(r"^[ \t>*#]*Action[ \t_]*Input" + _NUM + r"\**[ \t]*", re.M | re.I)
# "Answer:" alone too: Llama 2 and Mistral 7B ReAct runs drop the "Final"
_R_FINAL = re.compile(r"^[ \t>*#]*(?:Final[ \t_]*)?Answer" + _NUM + r"[ \t*]*", re.M | re.I)
_R_OBS = re.compile(r"^[ \t>*#]*Observation" + _NUM, re.M | re.I)
_R_MARK = re.compile(
    r"^[ \t>*#]*(?:Thought|Action|Action[ \t_]*Input|Observation|(?:Final[ \t_]*)?Answer)" + _NUM,
    re.M | re.I,
)
_INLINE = re.compile(r"^([^\s({\[]+(?:[ \t]+[^\s({\[]+)*?)[ \t]*([({\[])(.*)$", re.S)


def _input_value(region: str, repairs: list[str]) -> Any:
    """An Action Input region: JSON (repaired, fences stripped) or plain text.

    Leading asterisks before JSON are a stray bold marker and go (`** {"task": ...}`,
    CrewAI's parser tests); before plain text they are the input's own text (`** plain
    text` stays as written, the same tests), so nothing is guessed away."""
    text = region.strip()
    if text[:1] == "*":
        rest = text.lstrip("* \t")
        if rest[:1] in "{[":
            text = rest
            repairs.append("bold_marker_before_input")
    if text.startswith("```"):
        blocks = repair.fenced_blocks(text)
        if blocks:
            repairs.append("fenced_input")
            text = blocks[0].strip()
    got = repair.first_value(text)
    if got is not None:
        loaded, end = got
        repairs.extend(loaded.repairs)
        if text[end:].strip():
            repairs.append("text_after_action")
        return loaded.value
    if text[:1] in "{[":
        return text  # broken JSON: the resolver reports it
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


# an Observation the model began itself: "Observation" (no colon) on the input's line or
# the next, or a fragment of the word cut by the stop sequence ("\nObserv")
_R_OBS_LEAK = re.compile(
    r"[ \t]*\n?[ \t]*\bObservation\b[ \t]*(?::|$)"
    r"|\n[ \t]*Obs(?:e(?:r(?:v(?:a(?:t(?:i(?:o)?)?)?)?)?)?)?[ \t]*\Z",
    re.M,
)
_R_PAREN = re.compile(r"^(.*?\S)\s*\([^()\n]*\)\s*$")
_R_CTOR = re.compile(r"^([A-Za-z_][\w.]*)?\s*\((.*)\)\s*$", re.S)


def _action_name(line: str, r: Resolver, repairs: list[str]) -> str:
    """The tool named on an Action line, without a parenthetical after it
    (`Action: search (web)`, GPT-3.5 and Llama 2 ReAct runs) when only that matches."""
    m = _R_PAREN.match(line)
    if m is not None and r.match(line) is None and r.match(m.group(1)) is not None:
        repairs.append("parenthetical_after_tool_name")
        return m.group(1)
    return line


_AMBIGUOUS = object()  # an Action Input written as a call to another offered tool


def _constructor_input(region: str, name: str, r: Resolver, repairs: list[str]) -> Any:
    """An Action Input wrapped in a call: `search(query="x")`, `SearchInput(query="x")`
    or `({"query": "x"})` (models trained on Python write their input as a call).
    Unwrapped only when the keys are the tool's own parameters and the call does not
    name another offered tool; otherwise the region is returned as written."""
    tool = r.match(name)
    m = _R_CTOR.match(region.strip())
    if tool is None or m is None:
        return None
    called = m.group(1)
    if called and r.match(called) not in (None, tool):
        return _AMBIGUOUS
    args = repair.python_call_args(m.group(2))
    if args is None:
        return None
    value = args.get("", args) if list(args) == [""] else args
    if not isinstance(value, dict) or "" in value or not value:
        return None
    if not set(value) <= set(r.params(tool)):
        return None
    repairs.append("constructor_input")
    return value


def _cut_observation(region: str, repairs: list[str]) -> str:
    if region.lstrip()[:1] in "{[":
        return region  # JSON ends by itself; what follows is reported as text after it
    m = _R_OBS_LEAK.search(region)
    if m is None:
        return region
    repairs.append("cut_observation_fragment")
    return region[: m.start()]


def _null(value: Any) -> bool:
    return value is None or (
        isinstance(value, str)
        and value.strip().strip("`'\"").lower() in ("", "none", "n/a", "null")
    )


def _react(text: str, r: Resolver, repairs: list[str], prose_is_answer: bool) -> ParseResult:
    actions = list(_R_ACTION.finditer(text))
    if actions:
        obs = _R_OBS.search(text, actions[0].end())
        if obs is not None:
            text = text[: obs.start()]
            repairs.append("cut_hallucinated_observation")
            actions = [a for a in actions if a.end() <= obs.start()]
        envelopes: list[Envelope] = []
        for index, act in enumerate(actions):
            stop = actions[index + 1].start() if index + 1 < len(actions) else len(text)
            block = text[act.end() : stop]
            line = act.group(1).strip()
            inp = _R_INPUT.search(block)
            if line.startswith("```") and inp is None:
                # "Action: ```json" then a fenced list of calls (Cohere Command R,
                # Ollama's command-r parser tests): the fence is no tool name
                got = _json_action(line + block, r, repairs)
                if got is not None:
                    repairs.append("fenced_action_blob")
                    return got
            if not line:  # "Action:" then a JSON blob below it
                head = block if inp is None else block[: inp.start()]
                got = _json_action(head, r, repairs)
                if got is not None:
                    return got
                below = head.strip().strip("`*").strip()
                if inp is None or not below or "\n" in below or r.match(below) is None:
                    return failure("the Action line names no tool", repairs)
                line = below  # the name on the line after "Action:" (Mistral 7B, Zephyr)
                repairs.append("tool_name_on_next_line")
            m = _INLINE.match(line)
            if m is not None and inp is None:
                name, opener, rest = m.group(1), m.group(2), m.group(3)
                raw: Any = None
                if opener == "(":
                    args = repair.python_call_args(rest.rsplit(")", 1)[0])
                    if args is None and r.is_final(name):
                        args = repair.close_truncated_call(rest)
                        if args is not None:
                            repairs.append("closed_truncated_call")
                    raw = args.get("", args) if args is not None else rest
                elif opener == "{":
                    raw = _input_value("{" + rest, repairs)
                else:
                    raw = rest.rsplit("]", 1)[0]
                repairs.append("inline_arguments")
                envelopes.append((name, raw))
                continue
            if inp is None:
                envelopes.append((line, None))
                continue
            region = block[inp.end() :]
            nxt = _R_MARK.search(region)
            if nxt is not None:
                region = region[: nxt.start()]
            region = _cut_observation(region, repairs)
            line = _action_name(line, r, repairs)
            wrapped = _constructor_input(region, line, r, repairs)
            if wrapped is _AMBIGUOUS:
                return failure(
                    f"the Action names {line!r} but its input calls another tool; "
                    "give one Action per tool",
                    repairs,
                )
            raw_input = wrapped if wrapped is not None else _input_value(region, repairs)
            envelopes.append((line, raw_input))
        fin = _R_FINAL.search(text)
        if fin is not None and all(_null(name) and _null(raw) for name, raw in envelopes):
            repairs.append("empty_action_before_final_answer")  # "Action: None" then an answer
            return final(text[fin.end() :].strip(), repairs)
        return _resolve(envelopes, r, repairs)
    fin = _R_FINAL.search(text)
    if fin is not None:
        return final(text[fin.end() :].strip(), repairs)
    got = _json_action(text, r, repairs) if "{" in text else None
    if got is not None and (got.ok or text.lstrip().startswith(("{", "[", "```"))):
        return got
    if _R_MARK.search(text) is None and prose_is_answer:
        repairs.append("answer_without_marker")
        return final(text.strip(), repairs)
    return failure(
        "the reply has neither an Action nor a Final Answer; write 'Action: <tool>' and "
        "'Action Input: <JSON>', or 'Final Answer: <answer>'",
        repairs,
    )


# ---------------------------------------------------------------- xml

# a <tool_call> tag (`<tool_call>`, `<tool_call name=...>`, `</tool_call>`), not a word
# that begins with it (`<tool_calling>` in an answer's prose: Ollama's qwen3.8 tests)
_X_TAG = re.compile(r"</?tool_call(?![A-Za-z_])")
_X_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|(?=<tool_call>)|\Z)", re.S)
_X_FUNC = re.compile(r"<function=([^>\n]{1,200})>(.*?)(?:</function>|\Z)", re.S)
_X_PARAM = re.compile(
    r"<parameter=([^>\n]{1,200})>\n?(.*?)\n?(?:</parameter>|(?=<parameter=)|\Z)", re.S
)
_X_BARE_NAME = re.compile(r"([A-Za-z_][\w.\-]*)\s*\{")
# a function tag, not prose that mentions one ("the tag <function=foo is documented
# here": Ollama's qwen3coder tests keep that as content)
_X_FUNC_OPEN = re.compile(r"<function=[^\s<>]{1,200}>")


def _bare_functions(text: str) -> list[tuple[str, str]]:
    """`name{json}</function>` pieces (the opening tag lost), found in linear time."""
    out: list[tuple[str, str]] = []
    pieces = text.split("</function>")
    for piece in pieces[:-1][:64]:
        m = _X_BARE_NAME.search(piece.replace("<function>", " "))
        if m is not None:
            out.append((m.group(1), piece.replace("<function>", " ")[m.end() - 1 :].strip()))
    return out


def _qwen_function(name: str, body: str, r: Resolver) -> Envelope:
    args: dict[str, Any] = {}
    tool = r.match(name)
    props = r.params(tool) if tool else {}
    for m in _X_PARAM.finditer(body):
        key, value = m.group(1).strip(), readers.inline_layout(m.group(2))
        kind = props.get(key, {}).get("type") if isinstance(props.get(key), dict) else None
        if kind not in (None, "string"):
            loaded = repair.loads(value)
            args[key] = loaded.value if loaded is not None else value
        else:
            args[key] = value
    if not args and body.strip():
        return (name.strip(), body.strip())
    return (name.strip(), args)


def _xml(text: str, r: Resolver, repairs: list[str], prose_is_answer: bool) -> ParseResult:
    if prose_is_answer and tag_mentions_only(text):
        return final(text.strip(), repairs)  # prose about the tag, no block
    blocks = [m.group(1) for m in _X_BLOCK.finditer(text)] if "<tool_call>" in text else []
    got = _xml_blocks(text, r, list(repairs), prose_is_answer, blocks)
    if got.ok or not blocks:
        return got
    # a tag inside an argument string cut the lenient split (which lets a new opening
    # tag close a block): read by the closing tags alone, then by where the JSON ends
    for other in (_strict_blocks(text), _json_blocks(text)):
        if other and other != blocks:
            again = _xml_blocks(text, r, list(repairs), prose_is_answer, other)
            if again.ok:
                return again
    return got


def _strict_blocks(text: str) -> list[str]:
    """`<tool_call>` bodies ended by their closing tags alone (what a lazy
    `<tool_call>(.*?)</tool_call>` finds), by one split: the regex rescans the rest of
    the text from every unclosed opening tag, quadratic on a run of them."""
    out: list[str] = []
    for piece in text.split("</tool_call>")[:-1][:64]:
        start = piece.find("<tool_call>")
        if start >= 0:
            out.append(piece[start + len("<tool_call>") :])
    return out


def _json_blocks(text: str) -> list[str]:
    """`<tool_call>` bodies cut where their JSON value ends; [] if one is not JSON."""
    out: list[str] = []
    pos = 0
    while len(out) < 64:
        start = text.find("<tool_call>", pos)
        if start < 0:
            return out
        start += len("<tool_call>")
        got = repair.first_value(text[start:])
        if got is None:
            return []
        out.append(text[start : start + got[1]])
        pos = start + got[1]
    return out


def _xml_blocks(
    text: str, r: Resolver, repairs: list[str], prose_is_answer: bool, blocks: list[str]
) -> ParseResult:
    envelopes: list[Envelope] = []
    for block in blocks or ([text] if _X_FUNC_OPEN.search(text) else []):
        funcs = list(_X_FUNC.finditer(block))
        if funcs:
            envelopes.extend(_qwen_function(f.group(1), f.group(2), r) for f in funcs)
            continue
        got = _json_action(block, r, repairs)
        if got is None and _PY_START.match(block.strip()):
            # a Python call inside the Hermes tags (SGLang's multi-format detector tests)
            calls = repair.python_calls(block.strip())
            if calls is not None:
                repairs.append("python_call_in_tool_call")
                envelopes.extend(calls)
                continue
        if got is None or not got.ok:
            return got or failure("a <tool_call> block holds no JSON call", repairs)
        if got.kind == "final_answer":
            envelopes.append(("final_answer", got.answer))
        envelopes.extend((c.tool, c.args) for c in got.calls)
    if envelopes:
        if blocks and text[: text.find("<tool_call>")].strip():
            repairs.append("text_around_action")
        return _resolve(envelopes, r, repairs)
    bare = _bare_functions(text) if "</function>" in text else []
    if bare:
        repairs.append("missing_open_tag")
        for name, body in bare:
            loaded = repair.loads(body)
            if loaded is None:
                return failure("the call's arguments are not valid JSON", repairs)
            repairs.extend(loaded.repairs)
            envelopes.append((name, loaded.value))
        return _resolve(envelopes, r, repairs)
    if _X_TAG.search(text) is not None or "</function>" in text:
        return failure("a <tool_call> block could not be read", repairs)
    got = _json_action(text, r, repairs) if "{" in text else None
    if got is not None:
        return got
    if prose_is_answer:
        return final(text.strip(), repairs)
    return failure("no <tool_call> block found", repairs)


# ---------------------------------------------------------------- special tokens and pythonic

_DS_CALL = "<｜tool▁call▁begin｜>"  # noqa: RUF001 (DeepSeek's own token spelling)
_DS_SEP = "<｜tool▁sep｜>"  # noqa: RUF001
_DS_END = "<｜tool▁call▁end｜>"  # noqa: RUF001
_DS_ANY = "<｜tool▁"  # noqa: RUF001
# Mistral tokenizer v11+ (Magistral, Mistral Small 3.2, Devstral): each call its own
# token, `[TOOL_CALLS]NAME{json}` (vLLM's Mistral tool parser tests)
_MISTRAL_V11 = re.compile(r"\[TOOL_CALLS\]\s*([A-Za-z_][\w.\-]*)\s*(?=\{)")
_MISTRAL = re.compile(r"\[TOOL_CALLS\]\s*([^\[\s{]+)\s*(?:\[CALL_ID\][^\[]*)?\[ARGS\]\s*", re.S)


def _special(text: str, r: Resolver, repairs: list[str]) -> tuple[ParseResult | None, str]:
    """A reading by special tokens or a named reader (`readers.READERS`), and the
    marker that triggered it ("" when none did)."""
    cleaned = _strip_reasoning(text)
    # a call token written inside the reasoning is reasoning (llama.cpp's test-chat:
    # Ministral's "[THINK]Let me think about [TOOL_CALLS]..."); the calls are after it
    got = _special_tokens(cleaned, r, repairs)
    if got is not None:
        return got, ""
    found = readers.read(cleaned, r)
    if found is None:
        return None, ""
    reader, envelopes = found
    repairs.append(reader.name)
    result = (
        failure(envelopes, repairs)
        if isinstance(envelopes, str)
        else _resolve(envelopes, r, repairs)
    )
    if not result.ok:  # say what was seen: the model may not know it wrote markup
        seen = _fail_safe_markup(cleaned, None) or reader.marker
        result = failure(
            f"the reply holds tool-call markup ({seen[:60]!r}, {reader.origin}) but no "
            f"call to an offered tool could be read from it: {result.reason}",
            result.repairs,
        )
    return result, reader.marker


_HARMONY_ANALYSIS = "<|channel|>analysis<|message|>"


def _strip_reasoning(text: str) -> str:
    """The text without a `<think>` block and Harmony analysis-channel messages."""
    text, _ = repair.strip_think(text)
    parts: list[str] = []
    pos = 0
    for _ in range(readers.MAX_CALLS):
        start = text.find(_HARMONY_ANALYSIS, pos)
        if start < 0:
            break
        parts.append(text[pos:start])
        stop = _HARMONY_STOP.search(text, start)
        pos = len(text) if stop is None else stop.end()
    parts.append(text[pos:])
    return "".join(parts)


def _special_tokens(text: str, r: Resolver, repairs: list[str]) -> ParseResult | None:
    if _DS_ANY in text:
        envelopes: list[Envelope] = []
        for part in text.split(_DS_CALL)[1:65]:
            part = part.split(_DS_END)[0]
            if _DS_SEP not in part:
                continue
            left, right = part.split(_DS_SEP, 1)
            if left.strip() in ("", "function"):
                name, _, rest = right.partition("\n")
            else:
                name, rest = left, right
            envelopes.append((name.strip(), _input_value(rest, repairs)))
        if not envelopes:
            return failure("DeepSeek tool-call tokens without a complete call", repairs)
        return _resolve(envelopes, r, repairs)
    if "<|python_tag|>" in text:
        body = text.split("<|python_tag|>", 1)[1]
        body = _SPECIAL.split(body, 1)[0].strip()
        if body.startswith("{") or body.startswith("["):
            return _json_action(body, r, repairs) or failure("unreadable python_tag call")
        calls = repair.python_calls(body)
        if calls is None:
            return failure("the <|python_tag|> call is not a Python call or JSON", repairs)
        return _resolve([(n, a) for n, a in calls], r, repairs)
    if "[TOOL_CALLS]" in text:
        if not text.lstrip().startswith("[TOOL_CALLS]"):
            # the first call's token consumed upstream (anchored.args_calls)
            leading = anchored.args_calls(text, r)
            if leading is not None and "[TOOL_CALLS]" not in text[leading[1] :]:
                return _resolve(leading[0], r, [*repairs, "mistral_args_without_token"])
        matches = list(_MISTRAL.finditer(text))
        if matches:
            envelopes = []
            for m in matches:
                got = repair.first_value(text[m.end() :])
                if got is None:
                    return failure("[TOOL_CALLS] arguments are not valid JSON", repairs)
                envelopes.append((m.group(1), got[0].value))
            return _resolve(envelopes, r, repairs)
        named = list(_MISTRAL_V11.finditer(text))[: readers.MAX_CALLS]
        if named:
            envelopes = []
            for m in named:
                got = repair.first_value(text[m.end() :])
                if got is None:
                    return failure(f"[TOOL_CALLS]{m.group(1)} arguments are not JSON", repairs)
                envelopes.append((m.group(1), got[0].value))
            return _resolve(envelopes, r, repairs)
        body = text.split("[TOOL_CALLS]", 1)[1]
        return _json_action(body, r, repairs) or failure("unreadable [TOOL_CALLS] block")
    return None


_PY_START = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\s*\(")


_PY_LIST_OPEN = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(")


def _pythonic(text: str, r: Resolver, repairs: list[str]) -> ParseResult | None:
    body = text.strip()
    if not _PY_START.match(body):
        return _pythonic_lists(text, r, repairs)
    calls = repair.python_calls(body)
    if calls is None:
        return _pythonic_lists(text, r, repairs)
    return _resolve([(n, a) for n, a in calls], r, repairs)


def _pythonic_lists(text: str, r: Resolver, repairs: list[str]) -> ParseResult | None:
    """Pythonic call lists among prose: `[get_weather(location='Tokyo')] Here's the
    forecast:`, or two lists joined by a word (SGLang's pythonic detector tests). Every
    `[name(` in the text must open a list that reads as calls; one that does not (cut
    off, or not Python) leaves the reply to the markup gate, which refuses it."""
    opens = [m.start() for m in _PY_LIST_OPEN.finditer(text)][: readers.MAX_CALLS]
    if not opens:
        return None
    spans = {start: end for start, end in repair.balanced_spans(text)}
    envelopes: list[Envelope] = []
    pos = 0
    for start in opens:
        if start < pos:
            continue  # a list inside an argument of a list already read
        end = spans.get(start)
        calls = repair.python_calls(text[start:end]) if end is not None else None
        if calls is None:
            return None
        envelopes.extend(calls)
        pos = end or start
    repairs.append("text_around_action")
    return _resolve(envelopes, r, repairs)


# ---------------------------------------------------------------- the formats


class TextFormat:
    """Shared plumbing: template rendering, observations, the never-raise wrapper."""

    name = "text"
    prompt = ""  # the prompts.toml entry of the instructions ("" = none)
    observation_prompt = ""  # and of one observation ("" = the bare result)

    def __init__(self, template: str | None = None, observation_template: str | None = None):
        self.template = self._text(self.prompt, template, "")
        self.observation_template = self._text(
            self.observation_prompt, observation_template, "$content"
        )

    def with_prompts(self, prompts: Prompts) -> TextFormat:
        """This format with an agent's overrides of its prompts (itself when none apply)."""
        changed = {self.prompt, self.observation_prompt} & set(prompts.overrides) - {""}
        if not changed:
            return self
        configured = copy.copy(self)
        if self.prompt in changed:
            configured.template = prompts.text(self.prompt)
        if self.observation_prompt in changed:
            configured.observation_template = prompts.text(self.observation_prompt)
        return configured

    @staticmethod
    def _text(prompt: str, override: str | None, fallback: str) -> str:
        """The prompt's default text, or an override checked against its fields."""
        if not prompt:
            return fallback if override is None else override
        default = Prompts.default()[prompt]
        return default.text if override is None else default.with_text(override).text

    def instructions(self, tools: Sequence[ToolSpec]) -> str:
        """The template with the tool list filled in."""
        return Template(self.template).safe_substitute(
            tools=describe_tools(tools), tool_names=", ".join(t.name for t in tools)
        )

    def observation(self, results: Sequence[ToolResult]) -> str:
        return "\n\n".join(
            Template(self.observation_template).safe_substitute(name=res.name, content=res.content)
            for res in results
        )

    def parse(
        self,
        text: str,
        tools: Sequence[ToolSpec],
        aliases: Mapping[str, str] | None = None,
        output_schema: Mapping[str, Any] | None = None,
    ) -> ParseResult:
        """Calls, an answer or a failure; never raises, bounded work on any input."""
        text, bad = _precheck(text)
        if bad is not None:
            return bad
        text, cut = turn_end.cut_invented_turns(text)
        result = self._parse_reply(text, tools, aliases, output_schema)
        if cut:
            return dataclasses.replace(result, repairs=(*result.repairs, "invented_turns_cut"))
        return result

    def _parse_reply(
        self,
        text: str,
        tools: Sequence[ToolSpec],
        aliases: Mapping[str, str] | None,
        output_schema: Mapping[str, Any] | None,
    ) -> ParseResult:
        """`parse` on a reply that is text, not empty, and ends where the model's turn
        ended."""
        keys = _answer_keys(output_schema)
        if keys is not None:
            answered = _structured_answer(text, keys, tools)
            if answered is not None:
                return answered
        r = Resolver(tools, aliases)
        result = _no_markup_answer(_fail_safe(self._parse, text, r), tools, keys)
        if result.ok or not result.reason.startswith("the reply holds only reasoning"):
            return result
        inner = _call_in_reasoning(text)
        if inner is None:
            return result
        got = _fail_safe(self._parse, inner, r)
        if got.kind != "tool_call":
            return result
        return ParseResult("tool_call", got.calls, repairs=(*got.repairs, "call_in_reasoning"))

    def _parse(self, text: str, r: Resolver) -> ParseResult:
        """Special-token styles first; the format's own reading when they do not hold up.

        A special token inside an argument string must not hijack a good reply, and a
        degenerate run of special tokens must not read as a prose answer.
        """
        text = readers.plain_tags(text)
        special, marker = _special(text, r, [])
        if special is None:
            repairs: list[str] = []
            return self._own(_clean(text, repairs), r, repairs)
        repairs = []
        own = self._own(_clean(text, repairs), r, repairs)
        if own.kind == "tool_call" and _token_in_arguments(own, marker):
            return own  # the token is data the model passes on, not its envelope
        if special.ok or own.kind != "tool_call":
            return special
        if "bare_arguments" in own.repairs and not all(c.tool in text for c in own.calls):
            # the markup's call could not be read (it named `functions.get_time`, or
            # nothing); an offered tool the model never wrote, which merely fits the
            # arguments, is a guess against the name it wrote (issue #15 item 3)
            return special
        return own

    def _own(self, text: str, r: Resolver, repairs: list[str]) -> ParseResult:
        raise NotImplementedError

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _token_in_arguments(result: ParseResult, marker: str = "") -> bool:
    """Whether a special call token (or the marker of the reader that fired) appears
    inside the arguments of the parsed calls."""
    dumped = json.dumps([c.args for c in result.calls], ensure_ascii=False)
    tokens = (_DS_ANY, "<|python_tag|>", "[TOOL_CALLS]", *((marker,) if marker else ()))
    return any(t in dumped or t in str(result.calls) for t in tokens)


_HARMONY_FINAL = "<|channel|>final<|message|>"
_HARMONY_STOP = re.compile(r"<\|(?:return|end|call|start)\|>")


# Cohere Command R7B / A: reasoning between START/END_THINKING, the reply between
# START/END_RESPONSE, calls between START/END_ACTION (vLLM's cohere_command parser tests)
_COHERE_THINKING = re.compile(r"<\|START_THINKING\|>.*?(?:<\|END_THINKING\|>|\Z)", re.S)
# Cohere2 MoE writes its reply between START/END_TEXT (llama.cpp's test-chat)
_COHERE_RESPONSE = re.compile(r"<\|START_(RESPONSE|TEXT)\|>(.*?)(?:<\|END_\1\|>|\Z)", re.S)
# Command R+ frames a turn with role tokens that carry no call (llama.cpp's test-chat)
_COHERE_TURN = re.compile(r"<\|(?:START_OF_TURN_TOKEN|CHATBOT_TOKEN|END_OF_TURN_TOKEN)\|>")


# A JSON string value (after `:`, `[` or `,`) on one line: its text is an argument's,
# whatever tokens it spells. `_clean` hides the `<` of each such value's tokens while it
# reads the reply's own envelopes, so an argument holding "<|channel|>final<|message|>"
# or "<|END_THINKING|>" is neither a channel to answer from nor an end token to strip
# (a value copied from a hostile document could otherwise become the final answer).
_STRING_VALUE = re.compile(r'([:\[,]\s*)("(?:[^"\\\n]|\\.){0,4000}")')
_HIDDEN_LT = "\ue000"  # a private-use character: no model writes it, no token holds it


def _hide_string_tokens(text: str) -> str:
    """`text` with the `<` inside JSON string values replaced by `_HIDDEN_LT` (the
    text itself when it has none, or already holds that character)."""
    if '"' not in text or "<" not in text or _HIDDEN_LT in text:
        return text
    return _STRING_VALUE.sub(
        lambda m: (
            m.group(1) + m.group(2).replace("<", _HIDDEN_LT) if "<" in m.group(2) else m.group()
        ),
        text,
    )


def _clean(text: str, repairs: list[str]) -> str:
    hidden = _hide_string_tokens(text)
    cleaned = _clean_envelopes(hidden, repairs)
    return cleaned if hidden is text else cleaned.replace(_HIDDEN_LT, "<")


def _clean_envelopes(text: str, repairs: list[str]) -> str:
    """The reply without its reasoning and the channels and tokens that only frame
    it (Harmony, Cohere, Kimi K3, end tokens)."""
    text, thought = repair.strip_think(text)
    if "<|channel>" in text:  # Gemma 4's thought channel, reasoning too
        text, channel = template_tokens.strip_thought_channel(text)
        thought = thought or channel
    if thought:
        repairs.append("think_block")
    if _HARMONY_FINAL in text:  # OpenAI Harmony: the final channel's message is the reply
        text = _HARMONY_STOP.split(text.rsplit(_HARMONY_FINAL, 1)[1], 1)[0]
        repairs.append("harmony_final_channel")
    if "<|START_" in text or "<|END_THINKING|>" in text or "_TOKEN|>" in text:
        text = _cohere(text, repairs)
    if "<|open|>" in text or "<|close|>" in text:
        text = _kimi_k3_channels(text, repairs)
    if text[-1:] in (">", "]") or text[-1:].isspace():  # an end token may close the reply
        text = template_tokens.strip_trailing_end_tokens(text)
    return template_tokens.outside_code(_SPECIAL, text) if "`" in text else _SPECIAL.sub("", text)


def _cohere(text: str, repairs: list[str]) -> str:
    """Cohere Command's own envelopes: its thinking is reasoning (like a `<think>`
    block), and a reply in START/END_RESPONSE with no action is that reply. Template
    tokens are markup (`markup.call_markup`), so without this a Cohere answer would
    be refused and asked for again, however plain."""
    stripped = _COHERE_THINKING.sub("", text)
    if "<|END_THINKING|>" in stripped:  # the opener was in the prompt (Cohere2 MoE)
        stripped = stripped.rsplit("<|END_THINKING|>", 1)[1]
    if stripped != text:
        repairs.append("think_block")
    turn = _COHERE_TURN.sub("", stripped)
    if turn != stripped:
        repairs.append("cohere_turn_tokens")
        stripped = turn
    response = _COHERE_RESPONSE.search(stripped)
    if response is not None and "<|START_ACTION|>" not in stripped:
        repairs.append("cohere_response")
        return response.group(2)
    return stripped


# Kimi K3's channels (SGLang's kimik3_format.py): reasoning in `think`, the reply in
# `response`, calls in `tools`; `<|close|>message<|sep|>` ends the turn.
_K3_THINK = re.compile(r"<\|open\|>think<\|sep\|>.*?(?:<\|close\|>think<\|sep\|>|\Z)", re.S)
_K3_RESPONSE = re.compile(
    r"<\|open\|>response<\|sep\|>(.*?)(?:<\|close\|>response(?:<\|sep\|>)?|\Z)", re.S
)
_K3_ENDS = re.compile(r"<\|close\|>(?:message|response)(?:<\|sep\|>)?")


def _kimi_k3_channels(text: str, repairs: list[str]) -> str:
    """The reply of a Kimi K3 turn: its thinking dropped (also when only the close
    of it is in the text, the opener being in the prompt), its response channel's
    text when it holds no call, and the tokens that only end the turn removed. What
    is left of the tools channel stays, for the call reading or the markup gate."""
    stripped = _K3_THINK.sub("", text)
    if "<|close|>think<|sep|>" in stripped:
        stripped = stripped.rsplit("<|close|>think<|sep|>", 1)[1]
    if stripped != text:
        repairs.append("think_block")
    response = _K3_RESPONSE.search(stripped)
    if response is not None and readers.K3_CALL not in stripped:
        repairs.append("kimi_k3_response")
        return response.group(1)
    return _K3_ENDS.sub("", stripped)


class JsonFormat(TextFormat):
    """One JSON object `{"action": ..., "action_input": ...}`, bare or fenced."""

    name = "json"
    prompt = "json_format"
    observation_prompt = "json_observation"

    def _own(self, text: str, r: Resolver, repairs: list[str]) -> ParseResult:
        got = _json_action(text, r, repairs)
        if got is not None:
            return got
        if _R_ACTION.search(text):
            return _react(text, r, repairs, True)
        return final(text.strip(), [*repairs, "answer_without_json"])

    def reply_schema(
        self, tools: Sequence[ToolSpec], output_schema: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """A JSON schema every well-formed reply matches, for constrained decoding.

        One alternative per tool (its name as a constant, its parameters as the input)
        and one for the final answer. None when a schema uses `$ref`s this flat form
        cannot carry.
        """
        alternatives: list[dict[str, Any]] = []
        answer = output_schema if output_schema is not None else {"type": "string"}
        forms = [(t.name, t.parameters or {"type": "object"}) for t in tools]
        for name, params in [*forms, ("Final Answer", answer)]:
            if "$ref" in json.dumps(params):
                return None
            alternatives.append(
                {
                    "type": "object",
                    "properties": {"action": {"const": name}, "action_input": params},
                    "required": ["action", "action_input"],
                    "additionalProperties": False,
                }
            )
        return {"oneOf": alternatives}

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        blobs = [{"action": c.tool, "action_input": c.args} for c in calls]
        body = blobs[0] if len(blobs) == 1 else blobs
        return "```json\n" + json.dumps(body, ensure_ascii=False, indent=2) + "\n```"


class ReactFormat(TextFormat):
    """Thought / Action / Action Input / Observation / Final Answer."""

    name = "react"
    prompt = "react_format"
    observation_prompt = "react_observation"

    def _own(self, text: str, r: Resolver, repairs: list[str]) -> ParseResult:
        return _react(text, r, repairs, True)

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        return "\n".join(
            f"Action: {c.tool}\nAction Input: {json.dumps(c.args, ensure_ascii=False)}"
            for c in calls
        )


class XmlFormat(TextFormat):
    """`<tool_call>{"name": ..., "arguments": ...}</tool_call>` blocks (Hermes, Qwen)."""

    name = "xml"
    prompt = "xml_format"
    observation_prompt = "xml_observation"

    def _own(self, text: str, r: Resolver, repairs: list[str]) -> ParseResult:
        return _xml(text, r, repairs, True)

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        return "\n".join(
            "<tool_call>\n"
            + json.dumps({"name": c.tool, "arguments": c.args}, ensure_ascii=False)
            + "\n</tool_call>"
            for c in calls
        )


class AutoFormat(TextFormat):
    """Detects the style from the text: special tokens, XML, ReAct, JSON, Python calls."""

    name = "auto"
    prompt = JsonFormat.prompt
    observation_prompt = JsonFormat.observation_prompt

    def _own(self, text: str, r: Resolver, repairs: list[str]) -> ParseResult:
        if "<tool_call>" in text or "<function" in text or "</function>" in text:
            got = _xml(text, r, list(repairs), True)
            if got.ok:
                return got
            # the tag may be data inside another style's call (a JSON argument string)
            other = self._unmarked(text, r, repairs)
            return other if other.kind == "tool_call" else got
        return self._unmarked(text, r, repairs)

    def _unmarked(self, text: str, r: Resolver, repairs: list[str]) -> ParseResult:
        if _R_ACTION.search(text) or _R_FINAL.search(text):
            return _react(text, r, repairs, True)
        got = _pythonic(text, r, repairs)
        if got is not None:
            return got
        got = _json_action(text, r, repairs)
        if got is not None:
            return got
        got = _plain_line_call(text, r, repairs)
        if got is not None:
            return got
        return _react(text, r, repairs, True)

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        return JsonFormat().render_calls(calls)


_PLAIN_NAME = re.compile(r"[A-Za-z_][\w.\-]{0,80}")


def _plain_line_call(text: str, r: Resolver, repairs: list[str]) -> ParseResult | None:
    """A tool's exact name alone on the first line and its one string argument after
    it, no markup at all: Qwen3.6 on vmlx (vmlx#192) wrote ``bash`` then
    ``echo "Tool test successful!"``. Read only when the name is an offered tool's,
    written exactly, and that tool takes exactly one parameter, a string, so the rest
    can only be that argument; any other reply stays prose."""
    head, sep, rest = text.strip().partition("\n")
    head = head.strip()
    if not sep or head not in r.tools or not _PLAIN_NAME.fullmatch(head):
        return None
    params = r.params(head)
    if len(params) != 1:
        return None
    key, prop = next(iter(params.items()))
    if not isinstance(prop, dict) or prop.get("type") not in (None, "string") or not rest.strip():
        return None
    return _resolve([(head, {key: rest.strip()})], r, [*repairs, "plain_line_call"])


class NativeFormat(TextFormat):
    """The provider's own tool calls; `parse` repairs one call's arguments string.

    The text is the arguments as sent; the call belongs to the one tool offered
    (or to the tool an envelope inside the arguments names).
    """

    name = "native"

    def instructions(self, tools: Sequence[ToolSpec]) -> str:
        return ""

    def parse(
        self,
        text: str,
        tools: Sequence[ToolSpec],
        aliases: Mapping[str, str] | None = None,
        output_schema: Mapping[str, Any] | None = None,
    ) -> ParseResult:
        if not isinstance(text, str) or len(text) > repair.MAX_CHARS:
            return failure("the arguments are not text of a sane size")
        return _fail_safe(self._parse, text, Resolver(tools, aliases))

    def _parse(self, text: str, r: Resolver) -> ParseResult:
        if len(r.tools) != 1:
            return failure("native arguments need exactly one offered tool to belong to")
        tool = next(iter(r.tools))
        repairs: list[str] = []
        stripped = text.strip()
        if stripped.startswith("```"):
            blocks = repair.fenced_blocks(stripped)
            if blocks:
                repairs.append("fenced_arguments")
                stripped = blocks[0].strip()
        loaded = repair.loads(stripped) if stripped[:1] in "{['\"" else None
        if loaded is None and stripped[:1] == "{":
            keyed = anchored.keyed_object(stripped, r.params(tool))
            if keyed is not None:
                loaded = repair.Loaded(keyed, ("keyed_object",))
        raw: Any = stripped
        if loaded is not None:
            repairs.extend(loaded.repairs)
            raw = loaded.value
            envs = _envelopes(raw) if isinstance(raw, dict) else None
            if envs and len(envs) == 1 and r.match(envs[0][0]) == tool:
                repairs.append("envelope_in_arguments")
                raw = envs[0][1]
        elif stripped[:1] in "{[":
            got = repair.first_value(stripped)
            if got is not None:
                repairs.extend([*got[0].repairs, "text_after_action"])
                raw = got[0].value
        if isinstance(raw, str) and raw is stripped and not stripped:
            raw = None
        wrapped = _wrapped_non_object(raw, tool, r)
        if wrapped is not None:
            return failure(wrapped, repairs)
        cut = _cut_arguments(tool, raw, r) if "closed_missing_bracket" in repairs else None
        if cut is not None:
            return failure(cut, repairs)
        args = r.arguments(tool, raw, repairs)
        if isinstance(args, str):
            return failure(args, repairs)
        return ParseResult("tool_call", (ParsedCall(tool, args),), repairs=tuple(repairs))

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        return json.dumps(calls[0].args, ensure_ascii=False) if calls else "{}"


def _wrapped_non_object(raw: Any, tool: str, r: Resolver) -> str | None:
    """Why arguments that are a whole call object for this tool cannot be read, or None.

    Qwen3.8 on Rapid-MLX (Rapid-MLX#2656) sent ``{"name": "get_weather", "arguments": 1}``
    (then stray closing tags) as get_weather's arguments: the envelope names the tool,
    but what it holds for arguments is no object, so the city was never given. Reading
    the envelope itself as the arguments would call the tool with `name` and
    `arguments` keys it does not take.
    """
    if not isinstance(raw, dict) or len(raw) != 2 or "name" not in raw:
        return None
    key = "arguments" if "arguments" in raw else "parameters" if "parameters" in raw else None
    if key is None or not isinstance(raw["name"], str) or r.match(raw["name"]) != tool:
        return None
    inner = raw[key]
    if isinstance(inner, str):
        loaded = repair.loads(inner)
        inner = loaded.value if loaded is not None else inner
    if isinstance(inner, dict):
        return None
    return (
        f"the arguments are a call object for {tool!r} whose own arguments are "
        f"{type(inner).__name__}, not an object; give the arguments as one JSON object"
    )


def _cut_arguments(tool: str, raw: Any, r: Resolver) -> str | None:
    """Why arguments that had to be closed (cut off at their end) are not a call, if so.

    A reply cut off mid-arguments (a max-tokens stop: LibreChat-AI/agents#280, where
    ``create_file`` stopped after its ``path``) closes into well-formed JSON that is
    the wrong call. Closed arguments are kept only when they fit the tool's schema:
    every required parameter present and, when the schema lists its parameters,
    no key outside them."""
    if not isinstance(raw, dict):
        return None
    missing = r.missing_required(tool, raw)
    props = r.params(tool)
    unknown = [k for k in raw if props and k not in props]
    if missing or unknown:
        return (
            f"the arguments for {tool!r} are cut off (they end before they close) and "
            "do not fit its parameters; send the whole call again"
        )
    return None


FORMATS: dict[str, type[TextFormat]] = {
    "json": JsonFormat,
    "react": ReactFormat,
    "xml": XmlFormat,
    "native": NativeFormat,
    "auto": AutoFormat,
}


def get_format(name: str | ActionFormat) -> ActionFormat:
    """A format by name (`json`, `react`, `xml`, `native`, `auto`) or the object itself."""
    if not isinstance(name, str):
        return name
    try:
        return FORMATS[name]()
    except KeyError:
        from pilothouse.exceptions import ConfigurationError

        raise ConfigurationError(
            f"unknown action format {name!r}; use one of {', '.join(FORMATS)}"
        ) from None
