"""Record many real replies of the embedded SmolLM2-135M, loops and not, for the degenerate
test's data (issue #15, session 15 "loops").

    nice -n 5 python benchmarks/record_smollm2_loops.py OUT.jsonl [--max-tokens=N] [--limit=N]

At temperature 0 with a long token limit the 135M model falls into loops readily: the same
line, call or ReAct round until the limit. The degenerate test must catch those without
refusing long real answers, so it is built on many such replies rather than on a few corpus
entries. The prompts are varied agent prompts: the five peer prompt styles of
`record_smollm2_outputs.py` (each with its three tools) asked the BFCL `simple_python`
questions (from the installed `bfcl-eval` package), the support desk's customer lines
(`pilothouse_desk/conversations.yaml`) and the session-13 questions after a first call, and
plain requests with no tools for long structured answers (lists, tables, code, poems). Each
line holds the prompt, the settings, the finish reason and the exact reply, so it can be
reproduced. No Pilothouse code is imported; labels are not decided here (see
benchmarks/data/degenerate/README.md).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import record_smollm2_outputs as rec  # the peer prompts and the model path

PLAIN = [
    "Write a short poem about the sea with a refrain that repeats after every stanza.",
    "List ten tips for writing clean Python code, as a numbered list.",
    "Make a markdown table of five planets with their diameter and number of moons.",
    "Write a Python function that checks whether a string is a palindrome, with tests.",
    "Give step-by-step instructions to change a flat tyre.",
    "Write a CSV file with columns name, age, city for six people.",
    "Explain what a hash table is, with a small example in code.",
    "Write a JSON object describing a book: title, author, year, tags.",
    "Summarize the plot of Romeo and Juliet in a few paragraphs.",
    "Write a song with a chorus about summer.",
    "List the days of the week in French, German and Spanish as a table.",
    "Write a bash script that backs up a directory every night.",
    "What are the pros and cons of remote work? Use bullet points.",
    "Write an example server log of ten lines for a web application.",
    "Describe how to bake bread, step by step.",
    "Write a SQL query that finds the top five customers by total order value, and explain it.",
    "Write a limerick about a cat.",
    "Give me a weekly workout plan as a table.",
    "Explain recursion to a beginner.",
    "Write a shopping list for a week of vegetarian meals.",
    "Write a YAML configuration for a web server with three virtual hosts.",
    "Write the multiplication table of 7.",
    "Write a short story about a robot learning to paint.",
    "List the first fifteen chemical elements with their symbols.",
    "Write a cover letter for a junior developer job.",
    "Write a HTML page with a form asking for name and email.",
    "Explain the difference between TCP and UDP.",
    "Write a children's counting rhyme from one to ten.",
    "Write a README for a command line todo app.",
    "Give a recipe for pancakes with ingredients and steps.",
]


def bfcl_questions(count: int) -> list[str]:
    """The first `count` user questions of BFCL's simple_python category."""
    import bfcl_eval

    path = Path(bfcl_eval.__file__).parent / "data" / "BFCL_v4_simple_python.json"
    out: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            out.append(entry["question"][0][0]["content"])
            if len(out) >= count:
                break
    return out


def desk_lines() -> list[str]:
    """The first line of each scripted desk customer."""
    import yaml

    path = Path(__file__).parents[1] / "src" / "pilothouse_desk" / "conversations.yaml"
    return [c["lines"][0] for c in yaml.safe_load(path.read_text(encoding="utf-8"))]


def jobs() -> list[dict[str, Any]]:
    """Every (prompt, question, turn) to generate, in a fixed order."""
    out: list[dict[str, Any]] = []
    asks = [("bfcl", q) for q in bfcl_questions(16)] + [("desk", q) for q in desk_lines()]
    for prompt, system in rec.SYSTEMS.items():
        for source, question in asks:
            user = question
            if prompt == "langchain_react":
                text = (
                    f"<|im_start|>user\n{system}\n\nQuestion: {user}\nThought:<|im_end|>\n"
                    "<|im_start|>assistant\n"
                )
            else:
                text = (
                    f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}"
                    "<|im_end|>\n<|im_start|>assistant\n"
                )
            out.append(
                {"prompt": prompt, "source": source, "question": user, "turn": 1, "text": text}
            )
        for qname in rec.QUESTIONS:
            out.append(
                {
                    "prompt": prompt,
                    "source": "session13",
                    "question": rec.QUESTIONS[qname],
                    "turn": 2,
                    "text": rec.prompt_text(prompt, system, qname, 2),
                }
            )
    for question in PLAIN:
        text = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        out.append(
            {"prompt": "plain", "source": "plain", "question": question, "turn": 1, "text": text}
        )
    # second turns after a search that found nothing: small models loop most after an
    # observation (appended last, so earlier recordings keep their order)
    for prompt, system in rec.SYSTEMS.items():
        for source, question in asks:
            text = _after_search(prompt, system, question)
            out.append(
                {"prompt": prompt, "source": source, "question": question, "turn": 2, "text": text}
            )
    return out


_NOTHING = "No results found."


def _after_search(prompt: str, system: str, question: str) -> str:
    """The ChatML text after the model searched for the question and found nothing."""
    step = rec.FIRST_STEP[prompt].format(
        tool="search", param="query", arg=question[:60].replace('"', "'"), result=_NOTHING
    )
    if prompt == "langchain_react":
        user = f"{system}\n\nQuestion: {question}\nThought:"
        return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n" + step
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        "<|im_start|>assistant\n" + step
    )


def main(out: Path, max_tokens: int, limit: int) -> int:
    """Generate greedily (repeat_penalty 1.0, no penalty: vLLM's and llama-server's
    default) and write one JSON line per job; a job already in `out` is skipped."""
    from llama_cpp import Llama

    path = rec.model_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    done = set()
    if out.exists():
        done = {
            (r["prompt"], r["question"], r["turn"])
            for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())
        }
    llm = Llama(str(path), n_ctx=4096, n_threads=1, verbose=False, seed=0)
    todo = [j for j in jobs() if (j["prompt"], j["question"], j["turn"]) not in done]
    with out.open("a", encoding="utf-8") as sink:
        for job in todo[: limit or None]:
            got = llm.create_completion(
                job["text"],
                max_tokens=max_tokens,
                temperature=0.0,
                top_p=1.0,
                repeat_penalty=1.0,
                seed=0,
            )
            row = {k: v for k, v in job.items() if k != "text"}
            row.update(
                temperature=0.0,
                repeat_penalty=1.0,
                max_tokens=max_tokens,
                finish=got["choices"][0]["finish_reason"],
                completion_tokens=got["usage"]["completion_tokens"],
                model_sha256_16=digest,
                reply=got["choices"][0]["text"],
            )
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            sink.flush()
    return 0


if __name__ == "__main__":
    flags = dict(f[2:].split("=", 1) for f in sys.argv[2:] if f.startswith("--") and "=" in f)
    raise SystemExit(
        main(Path(sys.argv[1]), int(flags.get("max-tokens", "600")), int(flags.get("limit", "0")))
    )
