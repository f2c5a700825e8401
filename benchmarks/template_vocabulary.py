"""Write the chat-template token vocabulary the markup gate reads, from real templates.

The gate's list of template tokens used to be written by hand from outputs seen. This
script derives it from the chat templates llama.cpp ships (llama-cpp-python's sdist
vendors llama.cpp with 70 real templates: Qwen, Llama 3.x, DeepSeek, Mistral, Gemma,
Granite, Command-R, Hermes, Kimi, GLM, MiniMax, gpt-oss, LFM, Phi, Seed, Nemotron,
functionary, ...) and from the end-of-generation token texts llama.cpp detects
(`src/llama-vocab.cpp`). Only the token strings are kept, each with the templates it
comes from; no template text is copied.

    python benchmarks/template_vocabulary.py [SDIST] [--check]

SDIST defaults to /tmp/lcpp/llama_cpp_python-0.3.36.tar.gz (`pip download --no-deps
--no-binary :all: llama-cpp-python==0.3.36`). It writes
src/pilothouse/actions/template_vocabulary.py; `--check` only compares (exit 1 on a
difference), so a test or a reviewer can see the module is what the sdist gives.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "pilothouse" / "actions" / "template_vocabulary.py"
DEFAULT_SDIST = Path("/tmp/lcpp/llama_cpp_python-0.3.36.tar.gz")
TEMPLATES = "/vendor/llama.cpp/models/templates/"
VOCAB = "/vendor/llama.cpp/src/llama-vocab.cpp"
PARSERS = "/vendor/llama.cpp/common/chat"  # chat.cpp, chat-peg-parser.cpp, ...: the markers
_STRING = re.compile(r'"((?:[^"\\\n]|\\.){1,200})"')

# Token shapes, the ones special tokens have (prose and instruction text in the templates
# also hold plain XML-like tags, `<tools>`, `<IMPORTANT>`, `<ROLE>`: those are not kept)
_SHAPES = re.compile(
    "|".join(
        (
            r"<\|[^|<>\s'\"{}]{1,40}\|>",  # <|im_start|>, <|tool_call:begin|>
            "<\uff5c[^\uff5c<>'\"]{1,40}\uff5c>",  # fullwidth bars: DeepSeek's User, tool calls
            r"<\|[A-Za-z_][\w]{0,30}>",  # Gemma 4's openers: <|turn>, <|tool_call>
            r"<[A-Za-z_][\w]{0,30}\|>",  # and closers: <turn|>, <tool_call|>
            r"\[/?[A-Z][A-Z_]{1,30}\]",  # Mistral's [INST], [TOOL_CALLS], [ARGS]
            r"\]~!?b[\[\]]|\[e~\[|\]<\][a-z]+\[>\[",  # MiniMax: ]~b], ]~!b[, [e~[, ]<]minimax[>[
            r"</?[A-Za-z_][\w:.\-]{0,40}>",  # angle tags, kept only when token-like (below)
        )
    )
)
_ANGLE = re.compile(r"</?([A-Za-z_][\w:.\-]{0,40})>")
_LITERAL = re.compile(r't\.first == "([^"]+)"')


def _token_like_angle(tag: str, named: set[str]) -> bool:
    """An angle tag is a token when a vendor prefix names it (`<seed:tool_call>`,
    `<minimax:tool_call>`), when it marks a turn or a text's bounds (`<start_of_turn>`,
    `<end_of_sentence>`), when it is a numbered special token (`<SPECIAL_12>`), or when
    llama.cpp names it (`<eos>`, `</s>`). Other tags are instruction prose."""
    m = _ANGLE.fullmatch(tag)
    if m is None:
        return True
    name = m.group(1)
    return (
        ":" in name
        or "_of_" in name
        or re.fullmatch(r"SPECIAL_\d+", name) is not None
        or tag in named
    )


def _kind(token: str, end_of_generation: set[str]) -> str:
    """What the token does, from its name: ends the model's turn (`end`), frames reasoning
    (`reasoning`), stands for a media input (`media`), frames a call or a tool's turn
    (`tool`), or opens/closes a role's turn (`role`); `other` for the rest."""
    name = re.sub(r"^[<\[\]\uff5c|/~!]+|[>\]\[\uff5c|~]+$", "", token).lower()
    name = name.replace("\u2581", "_").replace("{}", "")
    words = set(re.split(r"[_:\-.|]+", name))
    if words & {"call", "calls", "tool", "tools", "function", "action", "args", "python"}:
        return "tool"  # before `end`: <|call|> ends generation because a tool must run
    if token in end_of_generation or name in {
        "end",
        "eos",
        "eot",
        "eom",
        "endoftext",
        "return",
        "e~",
    }:
        return "end"
    if name.endswith(("_end", "_eos")) and words & {"im", "assistant", "role", "hy"}:
        return "end"  # <|im_end|>, <|assistant_end|>, <|role_end|>, Hunyuan's hy_eos
    if name.startswith("end_of_") and not words & {"role", "cite"}:
        return "end"  # <|end_of_text|>, <end_of_turn>, <|end_of_msg|>, <end_of_sentence>
    if words & {"eos", "eot", "eom"} or name in {"end_response", "end_of_turn_token"}:
        return "end"
    if words & {"think", "thinking", "thought", "cot", "reflect", "inner", "reasoning"}:
        return "reasoning"
    if words & {"image", "video", "audio", "media", "patch", "pad", "vision", "img"}:
        return "media"
    if any(w.startswith("image") or w.startswith("img") for w in words):
        return "media"
    if name == "start_response":
        return "role"  # Cohere's answer opener
    if words & {"response", "result", "results", "output", "outputs", "observation"}:
        return "tool"
    return "role" if words & _ROLE_WORDS else "other"


_ROLE_WORDS = frozenset(
    {
        "user",
        "assistant",
        "system",
        "developer",
        "bot",
        "model",
        "chatbot",
        "start",
        "begin",
        "turn",
        "header",
        "inst",
        "prompt",
        "role",
        "sep",
        "message",
        "channel",
        "final",
        "im",
        "sop",
        "bos",
        "sentence",
        "special",
    }
)


def _end_of_generation(vocab_cpp: str) -> set[str]:
    """The token texts llama.cpp stops generating at: the literals of the end-of-turn
    (EOT), end-of-message (EOM) and end-of-generation (EOG) detections."""
    found: set[str] = set()
    for marker in ("special_eot_id = t.second", "special_eom_id = t.second"):
        for at in [m.start() for m in re.finditer(re.escape(marker), vocab_cpp)]:
            start = vocab_cpp.rfind("if (false", 0, at)
            found.update(_LITERAL.findall(vocab_cpp[start:at]))
    at = vocab_cpp.find("special_eog_ids.insert(t.second)")
    start = vocab_cpp.rfind("if (false", 0, at)
    found.update(_LITERAL.findall(vocab_cpp[start:at]))
    return found


def extract(sdist: Path) -> tuple[str, list[tuple[str, str, tuple[str, ...]]]]:
    """(the sdist's name, [(token, kind, templates it comes from), ...]) sorted."""
    origins: dict[str, set[str]] = {}
    with tarfile.open(sdist) as tar:
        members = tar.getmembers()
        vocab = next(m for m in members if m.name.endswith(VOCAB))
        handle = tar.extractfile(vocab)
        assert handle is not None
        vocab_cpp = handle.read().decode("utf-8")
        named = _end_of_generation(vocab_cpp)
        for member in sorted(members, key=lambda m: m.name):
            if TEMPLATES not in member.name or not member.name.endswith(".jinja"):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            text = handle.read().decode("utf-8")
            template = member.name.rsplit("/", 1)[1].removesuffix(".jinja")
            for m in _SHAPES.finditer(text):
                token = m.group()
                if token.startswith("<") and not _token_like_angle(token, named):
                    continue
                origins.setdefault(token, set()).add(template)
        # the markers llama.cpp's chat parsers look for: they confirm template tokens (a
        # parser's other literals, such as a log line's `[ERROR]`, are not tokens)
        for member in members:
            if PARSERS not in member.name or not member.name.endswith(".cpp"):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            source = handle.read().decode("utf-8")
            parser = member.name.rsplit("/", 1)[1]
            for literal in _STRING.findall(source):
                for m in _SHAPES.finditer(literal.replace('\\"', '"')):
                    if m.group() in origins:
                        origins[m.group()].add(parser)
    for token in named:  # llama.cpp's own end-of-generation texts, whatever the templates
        origins.setdefault(token, set()).add("llama-vocab.cpp")
    rows = [(t, _kind(t, named), tuple(sorted(o))) for t, o in origins.items()]
    return sdist.name, sorted(rows, key=lambda r: (r[1], r[0]))


def render(sdist_name: str, rows: list[tuple[str, str, tuple[str, ...]]]) -> str:
    """The data module's text."""
    lines = [
        "# ruff: noqa: RUF001 (DeepSeek's and Hunyuan's tokens are spelled with fullwidth bars)",
        '"""Chat-template tokens, derived from real templates (generated; do not edit).',
        "",
        "Written by benchmarks/template_vocabulary.py from " + sdist_name + ":",
        "the token strings its vendored llama.cpp templates write",
        "(vendor/llama.cpp/models/templates/*.jinja) and the end-of-generation token",
        "texts llama.cpp detects (src/llama-vocab.cpp). Only token strings are kept, each",
        "with the templates it comes from (file names without `.jinja`); no template text.",
        "",
        "Kinds: `end` (ends the model's turn), `reasoning`, `media` (an input placeholder),",
        "`tool` (frames a call or a tool's turn), `role` (opens or closes a role's turn),",
        "`other`.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"SOURCE = {sdist_name!r}",
        "",
        "# (token, kind, templates it comes from)",
        "TOKENS: tuple[tuple[str, str, tuple[str, ...]], ...] = (",
    ]
    for token, kind, origins in rows:
        lines.append(f"    ({token!r}, {kind!r}, {origins!r}),")
    lines.append(")")
    return _formatted("\n".join(lines) + "\n")


def _formatted(text: str) -> str:
    """The module as the project's formatter writes it (ruff, from this interpreter's
    environment), so the generated file passes the lint as written."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(OUT), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sdist", nargs="?", type=Path, default=DEFAULT_SDIST)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    options = parser.parse_args()
    text = render(*extract(options.sdist))
    if options.check:
        same = OUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUT} differs from what the sdist gives")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
