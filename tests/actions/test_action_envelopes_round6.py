"""Round 6 (session 11): leaks users saw in issue threads, from the `tune11` half.

Each rule below was written for `tune11` outputs of
benchmarks/data/parse_corpus/session11.jsonl (read here by id, so the test uses the
exact text the thread quoted), and each has the neighbours it must leave alone.
"""

from __future__ import annotations

import pytest
from envelopes import FORMATS, answered, calls, refused, spec, tune_raw

from pilothouse.actions import get_format
from pilothouse.actions.markup import call_markup


def tune11(entry_id: str) -> str:
    """The raw output of a `tune11` entry (never a held-out one)."""
    return tune_raw("session11.jsonl", "tune11", entry_id)


# ------------------------------------------------- Cline tags named for the tool


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_tag_named_for_an_offered_tool_with_parameter_tags_is_the_call(fmt: str) -> None:
    # apmantza/pi-free#235: MiMo's command with `>` escaped as `&gt;`
    tools = [spec("execute_command", command="string")]
    assert calls(tune11("pi-free-235-mimo-cline-xml-escaped"), tools, fmt) == [
        (
            "execute_command",
            {"command": 'cat .github/workflows/ci.yml 2>/dev/null || echo "No ci.yml"'},
        )
    ]
    # AppsGanin/ai-free-vscode#17: inside an unclosed <tool_call>, numbers typed
    read = [spec("read_file", path="string", startLine="integer", endLine="integer")]
    assert calls(tune11("ai-free-vscode-17-tool-call-tag-only-read"), read, fmt) == [
        (
            "read_file",
            {
                "path": "D:\\x\\Application\\Localization\\SharedResource.resx",
                "startLine": 720,
                "endLine": 900,
            },
        )
    ]
    search = [spec("file_search", query="string")]
    assert calls(tune11("ai-free-vscode-17-tool-call-tag-only-search"), search, fmt) == [
        ("file_search", {"query": "**/_Imports.razor"})
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_tool_tags_cut_off_are_refused_and_other_tags_stay_prose(fmt: str) -> None:
    tools = [spec("execute_command", command="string")]
    refused("<execute_command>\n<command>ls -la", tools, fmt)
    refused("<execute_command>\n<command>ls -la</command>", tools, fmt)
    html = "Use <b>bold</b> for the <command>ls</command> example."
    assert answered(html, tools, fmt) == html


# ------------------------------------------------- agent-UI call lines, imitated


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_imitated_calling_tool_line_is_the_call(fmt: str) -> None:
    # EKKOLearnAI/hermes-studio#942 (MiniMax-M2.7 under Hermes Web UI), quotes as pasted
    terminal = [spec("terminal", command="string")]
    assert calls(tune11("hermes-studio-942-calling-tool-smart-quotes"), terminal, fmt) == [
        (
            "terminal",
            {
                "command": "free -h && df -h / && nvidia-smi "
                "--query-gpu=utilization.gpu,utilization.memory,memory.used,memory.total "
                "--format=csv,noheader 2>/dev/null || echo 'no nvidia'"
            },
        )
    ]
    search = [spec("search_files", file_glob="string", path="string", pattern="string")]
    assert calls(tune11("hermes-studio-942-minimax-params-without-invoke"), search, fmt) == [
        (
            "search_files",
            {
                "file_glob": "*.tsx",
                "path": "/home/caoya/hermes-web-ui",
                "pattern": "tool_call|ToolCall|tool-call",
            },
        )
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_calling_tool_lines_that_cannot_be_read_are_refused_never_shown(fmt: str) -> None:
    tools = [spec("terminal", command="string")]
    refused("[Calling tool: terminal with arguments: the free command]", tools, fmt)
    refused('[Calling tool: ghost with arguments: {"command": "ls"}]', tools, fmt)
    # prose about the leak, with no name after the colon, is not call markup
    prose = "The UI printed the literal `[Calling tool: ...]` text instead of running it."
    assert call_markup(prose, tool_names=["terminal"]) is None
    assert call_markup("[Calling tool: terminal]", tool_names=["terminal"]) is not None


# ------------------------------------------------- GLM pairs with no wrapper


@pytest.mark.parametrize("fmt", FORMATS)
def test_glm_name_and_pairs_without_tool_call_tags(fmt: str) -> None:
    # zai-org/GLM-5#84: the string a gateway passed on as the tool name
    tools = [spec("read", filePath="string")]
    assert calls(tune11("glm5-84-tool-name-holds-arg-pairs"), tools, fmt) == [
        ("read", {"filePath": "/home/linj/wk/ebay_exam"})
    ]
    refused("ghost<arg_key>filePath</arg_key><arg_value>/x</arg_value>", tools, fmt)


# ------------------------------------------------- DSML with doubled bars


@pytest.mark.parametrize("fmt", FORMATS)
def test_dsml_with_doubled_fullwidth_bars(fmt: str) -> None:
    # AppsGanin/ai-free-vscode#17: DSML with doubled fullwidth bars, section unclosed
    tools = [spec("grep_search", query="string", isRegexp="boolean", includePattern="string")]
    assert calls(tune11("ai-free-vscode-17-double-bar-dsml-unclosed"), tools, fmt) == [
        (
            "grep_search",
            {"query": "riskCRUD", "isRegexp": False, "includePattern": "backend/src//*.js"},
        )
    ]


# ------------------------------------------------- a call inside the reasoning alone


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_call_inside_a_reasoning_block_with_nothing_after_it(fmt: str) -> None:
    # vllm-project/vllm#39056: Qwen3.5 wrote its call inside <think>
    tools = [spec("Finish", answer="string")]
    assert calls(tune11("vllm-39056-qwen35-call-inside-think"), tools, fmt) == [
        ("Finish", {"answer": "204"})
    ]
    # reasoning alone, with no complete call in it, is still not an answer
    refused("<think>\nI should call Finish with 204.\n</think>", tools, fmt)
    # something after the block decides: here an answer, the call inside is a thought
    text = (
        "<think>\n<tool_call>\n<function=Finish>\n<parameter=answer>\n1\n</parameter>\n"
        "</function>\n</tool_call>\n</think>\nThe answer is 204."
    )
    assert answered(text, tools, fmt) == "The answer is 204."


# ------------------------------------------------- repairs and values


@pytest.mark.parametrize("fmt", ["json", "auto"])
def test_a_markdown_escape_in_a_json_string_is_the_character(fmt: str) -> None:
    # OpenHands/OpenHands#260 (OpenDevin): `hello\_world.sh`
    tools = [spec("think", thought="string")]
    assert calls(tune11("openhands-260-opendevin-invalid-escape"), tools, fmt) == [
        (
            "think",
            {
                "thought": "I should check if the 'hello_world.sh' script exists in this "
                "directory by running 'ls'."
            },
        )
    ]
    # a real JSON escape keeps its meaning
    good = '{"action": "think", "args": {"thought": "a\\tb \\\\_ c"}}'
    assert calls(good, tools, fmt) == [("think", {"thought": "a\tb \\_ c"})]


@pytest.mark.parametrize("fmt", ["xml", "auto"])
def test_qwen_parameter_values_written_inline_lose_the_layout_spaces(fmt: str) -> None:
    # agentscope-ai/QwenPaw#2824: spaces where the template has line breaks
    tools = [spec("execute_shell_command", command="string")]
    assert calls(tune11("qwenpaw-2824-qwen-xml-call-spaces"), tools, fmt) == [
        (
            "execute_shell_command",
            {
                "command": 'del "C:\\Users\\Administrator\\.copaw\\workspaces'
                '\\default\\BOOTSTRAP.md"'
            },
        )
    ]
    # spacing that is not one space each side is data (an indented old_string)
    edit = [spec("edit", old="string")]
    text = (
        "<tool_call>\n<function=edit>\n<parameter=old>    if x:</parameter>\n"
        "</function>\n</tool_call>"
    )
    assert calls(text, edit, fmt) == [("edit", {"old": "    if x:"})]


def test_native_arguments_that_are_a_call_with_non_object_arguments_are_refused() -> None:
    # raullenchai/Rapid-MLX#2656: Qwen3.8's get_weather arguments
    tools = [spec("get_weather", city="string")]
    native = get_format("native")
    result = native.parse(tune11("rapid-mlx-2656-qwen38-args-not-object"), tools)
    assert result.kind == "unrecoverable" and "not an object" in result.reason
    # the same envelope holding an object is unwrapped, as before
    ok = native.parse('{"name": "get_weather", "arguments": {"city": "Paris"}}', tools)
    assert [(c.tool, c.args) for c in ok.calls] == [("get_weather", {"city": "Paris"})]


# ------------------------------------------------- calls with no markup at all


def test_a_tool_name_line_then_its_one_string_argument() -> None:
    # jjang-ai/vmlx#192: Qwen3.6 wrote `bash` then the command
    tools = [spec("bash", command="string")]
    assert calls(tune11("vmlx-192-qwen36-plain-line-call"), tools) == [
        ("bash", {"command": 'echo "Tool test successful!"'})
    ]
    # a tool of two parameters, a name not written exactly, or prose: answers
    two = [spec("bash", command="string", cwd="string")]
    text = 'bash\necho "hi"'
    assert answered(text, two) == text
    assert answered('Bash\necho "hi"', tools) == 'Bash\necho "hi"'
    prose = "bash is a shell.\nIt reads commands from standard input."
    assert answered(prose, tools) == prose


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_object_that_only_names_an_offered_tool(fmt: str) -> None:
    # bolna-ai/bolna#826: `{type:transfer_call_...}` narrated to the caller
    transfer = [spec("transfer_call_911206480701")]
    assert calls(tune11("bolna-826-narrated-type-braces"), transfer, fmt) == [
        ("transfer_call_911206480701", {})
    ]
    # a tool that needs arguments: named without them, refused, not shown
    search = [spec("search", query="string")]
    refused('{"name": "search"}', search, fmt)
    # an object naming no offered tool is data
    data = '{"type": "invoice"}'
    assert get_format(fmt).parse(data, search).kind != "tool_call"
