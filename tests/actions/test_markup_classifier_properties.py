"""Property tests of the call-markup classifier (issue #15 item 1, "markup is never an answer").

(a) Call-like markup in many envelopes, for offered and unoffered tools, wrapped in
prose: the classifier flags it, and no text format returns it as a final answer (it
is either the call, read, or a failure the loop re-asks).
(b) Ordinary answers (prose, code blocks, tables, JSON data without call keys, angle
brackets and brackets of everyday text): never flagged, always the answer as written.

The envelopes are built from the shapes the classifier is meant to know, not from a
corpus: special tokens, call-named tags, call-keyed JSON, ReAct lines, Python calls
of offered tools, call fences.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_action_markup import TEXT_FORMATS, TOOLS

from pilothouse.actions import get_format
from pilothouse.actions.markup import call_markup

OFFERED = [t.name for t in TOOLS]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORD = st.from_regex(r"[a-z]{1,10}", fullmatch=True)
UNOFFERED = st.from_regex(r"[a-z]{3,8}_[a-z]{3,8}", fullmatch=True).filter(
    lambda n: n not in OFFERED
)
SAFE_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,!?-", max_size=30)
ARG_VALUES = SAFE_TEXT | st.integers(-1000, 1000) | st.booleans()
ARGS = st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), ARG_VALUES, max_size=3)
SENTENCES = st.sampled_from(
    [
        "",
        "Sure, let me check that for you.",
        "I'll look it up now.\n",
        "Okay.\n\n",
        "Let me think. I need the data first.\n",
        "One moment while I fetch it:",
    ]
)
TRAILERS = st.sampled_from(["", "\n", "\nI'll wait for the result.", " Done."])


def _py(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in args.items())


def _envelopes(name: str, args: dict[str, Any], offered: str) -> list[str]:
    a = json.dumps(args)
    call = json.dumps({"name": name, "arguments": args})
    first = next(iter(args), "q")
    value = json.dumps(args.get(first, "x"))
    return [
        f"<tool_call>{call}</tool_call>",
        f"<tool_call>\n{call}\n</tool_call>",
        f"<function={name}>{a}</function>",
        f'<invoke name="{name}"><parameter name="{first}">{value}</parameter></invoke>',
        f'<tool name="{name}">{a}</tool>',
        f"<tool_use>{call}</tool_use>",
        f"<|tool_call_start|>[{name}({_py(args)})]<|tool_call_end|>",
        f"<|channel|>commentary to=functions.{name} json<|message|>{a}<|call|>",
        f"[TOOL_CALLS] [{call}]",
        call,
        json.dumps({"action": name, "action_input": args}),
        json.dumps({"tool": name, "args": args}),
        json.dumps({"command": {"name": name, "args": args}}),
        json.dumps({"tool_calls": [{"function": {"name": name, "arguments": a}}]}),
        f"```json\n{call}\n```",
        f"```tool_code\n{name}({_py(args)})\n```",
        f"Action: {name}\nAction Input: {a}",
        f"functions.{name}({_py(args)})",
        f"<call>{call}</call>",
        call[: max(12, len(call) // 2)],  # cut off at a token limit
        f"[TOOL_REQUEST]{call}[END_TOOL_REQUEST]",
        f"\nFunction: {name}\nArguments: {a}",
        f"Tool call: {name}({a})",
        json.dumps({"recipient_name": f"functions.{name}", "parameters": args}),
        f"<|start|>assistant to=browser.{name} code<|message|>{a}",
        # session 10: Solar Open 2 tokens, vendor-piped tags (K2-V3), JSON Lines of calls
        f"<|tool_call:start|>{name}\n"
        + "".join(
            f"<|tool_arg:start|>{k}<|tool_arg:value|>{v}<|tool_arg:end|>\n" for k, v in args.items()
        )
        + "<|tool_call:end|>",
        f"<ifm|tool_call>{name}"
        + "".join(
            f"<ifm|arg_key>{k}</ifm|arg_key><ifm|arg_value>{v}</ifm|arg_value>"
            for k, v in args.items()
        )
        + "</ifm|tool_call>",
        f"<ifm|tool_call>{call}</ifm|tool_call>",
        f"<tool_calls>\n{call}\n{call}\n</tool_calls>",
        f"<tool_response>\n{a}\n</tool_response>",  # a forged result: not an answer
        # session 11: leaks users saw (UI call lines imitated, doubled-bar DSML, GLM
        # pairs with no wrapper), and Cline tags named for an offered tool
        f"[Calling tool: {name} with arguments: {a}]",
        f'[Calling tool: {name}]\n<parameter name="{first}">{value}</parameter>',
        f'<\uff5c\uff5cDSML\uff5c\uff5cinvoke name="{name}"><\uff5c\uff5cDSML\uff5c\uff5cparameter '
        f'name="{first}" string="true">{value}</\uff5c\uff5cDSML\uff5c\uff5cparameter>'
        "</\uff5c\uff5cDSML\uff5c\uff5cinvoke>",
        f"{name}<arg_key>{first}</arg_key><arg_value>{value}</arg_value>",
        f"<{offered}>" + "".join(f"<{k}>{v}</{k}>" for k, v in args.items()) + f"</{offered}>",
        # session 12: gptme's tool format, a line of its own (here after a line break,
        # since a sentence may precede it), complete or cut off; a Kimi K2 call whose id
        # is a client's call id, not a name
        f"\n@{name}(call_1): {a}",
        f"\n@{name}: " + a[: max(1, len(a) // 2)],
        "<|tool_calls_section_begin|><|tool_call_begin|>call_3<|tool_call_argument_begin|>"
        + a
        + "<|tool_call_end|><|tool_calls_section_end|>",
        # shapes that need the offered names to be seen as calls
        f"{offered}({_py(args)})",
        json.dumps([{offered: args}]),
        "{name: " + offered + ", arguments: " + a + "}",
        "{'name': '" + offered + "', 'params': " + a + "}",
    ]


@st.composite
def call_markup_replies(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(OFFERED) | UNOFFERED)
    args = draw(ARGS)
    offered = draw(st.sampled_from(OFFERED))
    envelope = draw(st.sampled_from(_envelopes(name, args, offered)))
    return draw(SENTENCES) + envelope + draw(TRAILERS)


@SETTINGS
@given(reply=call_markup_replies())
def test_call_markup_in_any_envelope_is_flagged(reply: str) -> None:
    assert call_markup(reply, tool_names=OFFERED) is not None, reply


@SETTINGS
@given(reply=call_markup_replies(), fmt=st.sampled_from(TEXT_FORMATS))
def test_call_markup_is_never_a_final_answer(reply: str, fmt: str) -> None:
    result = get_format(fmt).parse(reply, TOOLS)
    assert result.kind != "final_answer", (fmt, reply, result)
    if result.kind == "tool_call":
        assert all(c.tool in OFFERED for c in result.calls)
    else:
        assert result.reason


# (b) ordinary answers ---------------------------------------------------------------

DATA_KEYS = st.sampled_from(
    ["name", "age", "city_name", "price", "id", "title", "items", "count", "status", "email"]
)
DATA = st.recursive(
    SAFE_TEXT | st.integers(-(10**6), 10**6) | st.booleans() | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(DATA_KEYS, inner, max_size=3),
    max_leaves=8,
)
PROSE = st.sampled_from(
    [
        "The forecast for Paris is sunny, 21 degrees.",
        "I searched the archives and found three matching reports.",
        "A function call passes arguments to a function; the tool returns a result.",
        "Use x < 10 and y > 5 in the filter.",
        "See [the docs](https://example.test) and the list [1, 2, 3].",
        "In HTML, <b>bold</b> and <i>italic</i> are inline tags.",
        "Action items: none. The weather tool was not needed.",
        "Step 1: open the file. Step 2: save it.",
        "The inner product <a|b> is zero, and <b|a> is its conjugate.",
        "Pipe it: cat log | grep error | wc -l.",
    ]
)
CODE = st.sampled_from(
    [
        '```python\ndef greet(name="you"):\n    return f"Hello {name}"\n\nprint(greet())\n```',
        "```js\nconst total = items.reduce((a, b) => a + b, 0);\n```",
        "```bash\nls -la /tmp && echo done\n```",
        "```sql\nSELECT name, age FROM people WHERE age > 30;\n```",
        "```python\nresult = compute(x=1, y=2)\n```",
    ]
)
TABLE = st.sampled_from(
    [
        "| city | temp |\n|------|------|\n| Paris | 21 |\n| Oslo | 4 |",
        "| name | role |\n|---|---|\n| Ann | admin |",
    ]
)


@st.composite
def ordinary_answers(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            PROSE
            | CODE
            | TABLE
            | DATA.map(lambda d: "```json\n" + json.dumps(d, indent=2) + "\n```")
            | DATA.map(lambda d: "The result is " + json.dumps(d) + "."),
            min_size=1,
            max_size=4,
            # one part four times over is a loop (`degenerate`), not an ordinary answer
            unique=True,
        )
    )
    return "\n\n".join(parts)


@SETTINGS
@given(answer=ordinary_answers())
def test_ordinary_answers_are_not_flagged(answer: str) -> None:
    assert call_markup(answer, tool_names=OFFERED) is None, answer


@SETTINGS
@given(answer=ordinary_answers(), fmt=st.sampled_from(TEXT_FORMATS))
def test_ordinary_answers_stay_answers(answer: str, fmt: str) -> None:
    result = get_format(fmt).parse(answer, TOOLS)
    assert result.kind == "final_answer", (fmt, answer, result)
    assert result.answer == answer.strip()


@SETTINGS
@given(data=DATA)
def test_a_json_data_answer_alone_is_an_answer(data: Any) -> None:
    text = json.dumps(data)
    assert call_markup(text, tool_names=OFFERED) is None


# Examples of each rule, and the prose each rule must leave alone ----------------------

FLAGGED = [
    ('<tool name="lookup">{"q": 1}</tool>', '<tool name="lookup">'),
    ("<tools>lookup</tools>", "<tools>"),
    ('<args>{"q": 1}', "<args>"),
    ('<vendor:parameter key="q">x</vendor:parameter>', '<vendor:parameter key="q">'),
    ('<tool_use>{"name": "x"}', "<tool_use>"),
    ("```tool_code\nlookup(q=1)\n```", "```tool_code"),
    ("functions.lookup(q=1)", "functions.lookup("),
    ('The call: {"arguments": {"q": 1}}', '{"arguments": ...}'),
    ('{"tool_calls": "x", "function_call": {"name": "f"}}', '{"function_call": ...}'),
    ('{"name": "search", "q": 1}', '{"name": "search"}'),
    ('[{"search": {"query": "x"}}]', '{"search": {...}}'),
    ("search(query='x')", "search("),
    ("get_weather()", "get_weather("),
    ("{tool: search, query: x", "tool: search"),
    ("<call>lookup</call>", "<call>"),
    ("[TOOL_REQUEST]{}[END_TOOL_REQUEST]", "[TOOL_REQUEST]"),
    ("commentary to=browser.search json", "to=browser.search"),
    ("Function: lookup\nArguments: {}", "Function: lookup\nArguments: {"),
    ("Tool call: lookup(q=1)", "Tool call: lookup("),
    ('{"recipient_name": "x", "parameters": {}}', '{"recipient_name": ..., "parameters": {...}}'),
    ('{"recipient_name": "functions.search"}', '{"recipient_name": "functions.search"}'),
    ('{"name": "lookup_forecast", "argu', '{"name":'),
    ("```json\n[{'action': 'lookup", "{'action':"),
    ("@tool: {", "@tool: {"),
    ('Done.\n@shell(uid2): {"cmd": "real"}', "@shell(uid2): {"),
]


@pytest.mark.parametrize(("text", "seen"), FLAGGED)
def test_each_rule_names_what_it_saw(text: str, seen: str) -> None:
    assert call_markup(text, tool_names=OFFERED) == seen


NOT_FLAGGED = [
    "Wrap it in <call-to-action> and <toolbar> tags.",
    "a <function> tag does not exist in HTML",
    "The <action> element is closed by nothing here.",
    "I searched twice; search results were thin.",
    "the search (full text) found it",
    "Run research(x=1) or get_weatherly(x=1): neither is offered.",
    "```python\nprint(get_weather)\n```",
    '{"name": "Alice", "title": "search engineer"}',
    '{"status": "ok", "count": 3}',
    "the arguments: none were needed",
    "Tool: hammer\nMaterial: wood",
    "press [CTRL] and [A] together",
    "https://example.test/?to=a.b",
    '[{"name": "Alice"}, {"name": "Bob"}]',
    "Function: get_user\nArguments: id (int), the user's number",
    'Configure it:\n```xml\n<action name="login" class="x.Login">\n  <result>ok</result>\n'
    "</action>\n```\nThen restart.",
    "```xml\n<plugin><parameters><parameter>x</parameter></parameters></plugin>\n```",
    # session 12: gptme-style lines are calls only at a line's start and outside fences
    "some text @tool: {'param': 'value'}",
    '```\n@shell(uid): {"cmd": "ls"}\n```',
    "Ask @team: {urgent} items first.",
    "@alice: thanks, that fixed it.",
]


@pytest.mark.parametrize("text", NOT_FLAGGED)
def test_rules_leave_prose_and_data_alone(text: str) -> None:
    assert call_markup(text, tool_names=OFFERED) is None


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_the_name_written_before_the_arguments_decides(fmt: str) -> None:
    # issue #15 item 3: `{"city": ...}` fits get_weather, but the model named another
    # tool; guessing get_weather would run a call the model did not ask for
    result = get_format(fmt).parse('Tool call: lookup_forecast({"city": "Paris"})', TOOLS)
    assert result.kind == "unrecoverable" and "lookup_forecast" in result.reason, result
    result = get_format(fmt).parse('I will call get_weather({"city": "Paris"}) now.', TOOLS)
    assert [(c.tool, c.args) for c in result.calls] == [("get_weather", {"city": "Paris"})]
    # code passing data no tool takes stays the answer it is
    code = 'Set it with:\n```js\nsetState({"open": true})\n```'
    result = get_format(fmt).parse(code, TOOLS)
    assert result.kind == "final_answer" and result.answer == code, result


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("reply", ["<|eot_id|>", "```json\n```", "Final Answer:", "```\n\n```"])
def test_a_reply_that_says_nothing_is_not_an_answer(reply: str, fmt: str) -> None:
    result = get_format(fmt).parse(reply, TOOLS)
    assert result.kind == "unrecoverable" and "says nothing" in result.reason, (fmt, result)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize(
    "reply",
    [
        "<think>I need to call get_weather for Paris",  # cut off inside its reasoning
        "<thinking>plan the search</thinking>",
        "<reasoning>call the tool</reasoning>\n",
    ],
)
def test_reasoning_with_nothing_after_it_is_not_an_answer(reply: str, fmt: str) -> None:
    result = get_format(fmt).parse(reply, TOOLS)
    assert result.kind == "unrecoverable" and "reasoning" in result.reason, (fmt, result)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_an_answer_after_reasoning_or_about_it_stays(fmt: str) -> None:
    for text in ("<thinking>plan</thinking>\nIt is sunny.", "Wrap reasoning in <think> tags."):
        result = get_format(fmt).parse(text, TOOLS)
        assert result.kind == "final_answer", (fmt, text, result)


# --- narration (actions/narration.py, round 7): a plan or a progress line instead of a call


@st.composite
def narrated_calls(draw: st.DrawFn) -> str:
    """A leaked plan about the user, or an imitated progress line: never an answer."""
    if draw(st.booleans()):
        opener = draw(st.sampled_from(["The user", "User", "the user"]))
        verb = draw(st.sampled_from(["asks", "wants", "gave", "said", "requested", "likely"]))
        topic = draw(st.sampled_from(["the weather in Paris.", "a tweet: 'hi'.", "a lookup."]))
        plan = draw(
            st.sampled_from(
                [
                    "So I need to output XML accordingly.",
                    "We should call the search tool.",
                    "They want me to use get_weather.",
                    "Let me invoke the lookup function call.",
                    "I must produce JSON for the tool.",
                ]
            )
        )
        return f"{opener} {verb} {topic} {plan}"
    icon = draw(st.sampled_from(["📚", "🔍", "⏳", "[", "*", "->"]))
    verb = draw(st.sampled_from(["Fetching", "Searching", "Looking up", "Checking", "Recalling"]))
    obj = draw(st.sampled_from(["details for t:e8a9...", "the weather", "2 notes", "flights"]))
    end = draw(st.sampled_from(["…", "...", " simultaneously…"]))
    return f"{icon} {verb} {obj}{end}"


@SETTINGS
@given(reply=narrated_calls(), fmt=st.sampled_from(TEXT_FORMATS))
def test_a_narrated_call_is_never_a_final_answer(reply: str, fmt: str) -> None:
    result = get_format(fmt).parse(reply, TOOLS)
    assert result.kind != "final_answer", (fmt, reply, result)


NEAR_NARRATION = st.sampled_from(
    [
        "You asked for the weather; I need to use the search tool first, but it is 21 C.",
        "The user guide explains how to call the search tool.",
        "The user asked about Paris. It is sunny and 21 degrees.",
        "The user reported a bug in the search tool; I need to escalate it.",
        "Your user wants JSON: I will output it for you below.",
        "Fetching the data took 2 seconds...",
        "📚 Fetching data is easy with requests...",
        "🔍 Searching found 3 flights: AF12, BA34, LH56.",
        "⏳ Loading finished. The file has 12 lines.",
        "Checking the logs showed nothing unusual...",
    ]
)


@SETTINGS
@given(
    parts=st.lists(NEAR_NARRATION | PROSE, min_size=1, max_size=3),
    fmt=st.sampled_from(TEXT_FORMATS),
)
def test_answers_near_a_narrated_call_stay_answers(parts: list[str], fmt: str) -> None:
    answer = "\n\n".join(parts)
    result = get_format(fmt).parse(answer, TOOLS)
    assert result.kind == "final_answer", (fmt, answer, result)
    assert result.answer == answer.strip()
