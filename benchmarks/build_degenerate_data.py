"""Build benchmarks/data/degenerate/data.jsonl: real loops and real answers, labelled and
split once (issue #15, session 15 "loops"; the README there says where each comes from).

    python benchmarks/build_degenerate_data.py [--check]

The labels are decided here by rules that do not look at the detector: SmolLM2 replies by
their finish reason and how many new word 4-grams their second half adds, thread loops by
reading, answers by source. `--check` rebuilds and compares with the committed file
(machine-dependent sources, so only meaningful on the machine that built it). Imports no
Pilothouse code.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import json
import random
import sys
import sysconfig
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data" / "degenerate"
PARSE = HERE / "data" / "parse_corpus"
SHARED = Path("/work/shared/data/agent-outputs/corpus.jsonl")
SALT = "pilothouse-degenerate-split-1:"
CAP = 5000
# labels changed by reading (id -> (label, why)); filled in after reading the tails
READ: dict[str, tuple[str, str]] = {}


# entries the rule put in `holdout` that were moved to `tune` because the detector was
# built with them in view (README: "The split, fixed once")
MOVED = {
    # transcribed from the thread before the split; `_stutter` was written with it in mind
    "thread-llamacpp-15311-stutter",
}


def split_of(entry_id: str) -> str:
    """`tune` when the first byte of sha256(salt + id) is even."""
    return "tune" if hashlib.sha256((SALT + entry_id).encode()).digest()[0] % 2 == 0 else "holdout"


def cap(text: str) -> str:
    """At most CAP characters, cut at a line end when there is one in the second half."""
    if len(text) <= CAP:
        return text
    cut = text[:CAP]
    end = cut.rfind("\n")
    return cut[:end] if end > CAP // 2 else cut


def new_share(text: str) -> float:
    """The share of word 4-grams starting in the second half that occur nowhere earlier."""
    words = text.split()
    return _fresh([tuple(words[i : i + 4]) for i in range(len(words) - 3)], len(words) // 2)


def char_new_share(text: str, size: int = 12) -> float:
    """The same share over character 12-grams (the rule's second clause, for loops with no
    spaces in them, which the word rule sees as one new word after another)."""
    return _fresh([text[i : i + size] for i in range(len(text) - size + 1)], len(text) // 2)


def _fresh(grams: Sequence[Hashable], half: int) -> float:
    """The share of `grams[half:]` not seen before them (earlier ones of the tail count)."""
    seen = set(grams[:half])
    fresh = total = 0
    for gram in grams[half:]:
        total += 1
        fresh += gram not in seen
        seen.add(gram)
    return fresh / total if total else 1.0


def smollm2() -> Iterator[dict[str, object]]:
    """The recorded SmolLM2 replies, labelled by the README's rule."""
    for n, line in enumerate((DATA / "smollm2_raw.jsonl").read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        text = row["reply"]
        q = hashlib.sha256(row["question"].encode()).hexdigest()[:6]
        entry_id = f"smollm2-{row['prompt']}-{row['source']}-t{row['turn']}-{q}"
        if len(text.split()) < 16:
            continue
        share = new_share(text)
        chars = char_new_share(text)
        seen = f"{share:.0%} new word 4-grams, {chars:.0%} new character 12-grams"
        if row["finish"] == "length" and min(share, chars) <= 0.2:
            label, why = "loop", f"rule: hit the limit, {seen} in the second half"
        elif row["finish"] == "stop" or min(share, chars) >= 0.5:
            label, why = "answer", f"rule: finish {row['finish']}, {seen}"
        else:
            continue
        if entry_id in READ:
            label, why = READ[entry_id]
        yield {
            "id": entry_id,
            "source": f"record_smollm2_loops.py line {n + 1}",
            "kind": "smollm2",
            "label": label,
            "why": why,
            "text": text,
        }


def threads() -> Iterator[dict[str, object]]:
    for line in (DATA / "thread_loops.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        yield {
            "id": "thread-" + row["id"],
            "source": row["source"],
            "kind": "thread",
            "label": "loop",
            "why": "reading: " + row["note"],
            "text": row["text"],
        }


def corpus_answers() -> Iterator[dict[str, object]]:
    """Final answers of the parse corpus's tune splits (held-out entries are skipped
    before their text is read) and of the shared corpus."""
    for path in sorted(PARSE.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if not str(row.get("split", "")).startswith("tune"):
                continue
            if row["expected"]["kind"] == "final_answer":
                yield {
                    "id": "corpus-" + row["id"],
                    "source": f"parse_corpus/{path.name}",
                    "kind": "corpus",
                    "label": "answer",
                    "why": "source: a tune final answer",
                    "text": row["expected"]["answer"],
                }
    for line in SHARED.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["expected"]["kind"] == "final_answer":
            yield {
                "id": "shared-" + row["id"],
                "source": "shared corpus",
                "kind": "corpus",
                "label": "answer",
                "why": "source: a shared-corpus final answer",
                "text": row["expected"]["answer"],
            }


def answer(entry_id: str, source: str, kind: str, text: str) -> dict[str, object]:
    return {
        "id": entry_id,
        "source": source,
        "kind": kind,
        "label": "answer",
        "why": "source: real text written to be read",
        "text": cap(text),
    }


def package_docs() -> Iterator[dict[str, object]]:
    """Installed packages' long descriptions and the Markdown files in site-packages."""
    seen: set[str] = set()
    for dist in sorted(
        importlib.metadata.distributions(), key=lambda d: d.metadata["Name"].lower()
    ):
        name = dist.metadata["Name"]
        text = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if len(text) >= 800 and name.lower() not in seen:
            seen.add(name.lower())
            yield answer(
                f"meta-{name.lower()}",
                f"importlib.metadata {name} {dist.version}",
                "markdown",
                text,
            )
    site = Path(sysconfig.get_paths()["purelib"])
    for path in sorted(site.rglob("*.md")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if len(text) >= 800:
            rel = str(path.relative_to(site))
            yield answer("sitemd-" + rel, "site-packages/" + rel, "markdown", text)


def debian_docs(count: int = 200) -> Iterator[dict[str, object]]:
    """A fixed-seed sample of /usr/share/doc files of at least 800 characters."""
    paths = sorted(
        p for p in Path("/usr/share/doc").rglob("*") if p.is_file() and not p.is_symlink()
    )
    random.Random(15).shuffle(paths)
    got = 0
    for path in paths:
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, gzip.BadGzipFile, EOFError):
            continue
        if len(text) < 800 or "\x00" in text or text.count("\n") < 10:
            continue
        name = path.name.lower()
        kind = "changelog" if "changelog" in name or "news" in name else "prose"
        yield answer("doc-" + str(path.relative_to("/usr/share/doc")), str(path), kind, text)
        got += 1
        if got >= count:
            return


def chunks(lines: list[str], size: int, count: int, seed: int) -> list[int]:
    starts = list(range(0, max(1, len(lines) - size), size))
    random.Random(seed).shuffle(starts)
    return sorted(starts[:count])


def code(count: int = 80) -> Iterator[dict[str, object]]:
    """Chunks of standard-library modules, fenced as an answer would fence them."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in lib.glob("*.py"))
    rng = random.Random(16)
    rng.shuffle(files)
    for path in files[:count]:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if len(lines) < 80:
            continue
        size = rng.randint(60, 150)
        start = rng.randrange(0, max(1, len(lines) - size))
        body = "\n".join(lines[start : start + size])
        text = f"Here is the code from `{path.name}`:\n\n```python\n{body}\n```"
        yield answer(
            f"py-{path.stem}-{start}",
            f"stdlib {path.name} lines {start + 1}-{start + size}",
            "code",
            text,
        )


def logs() -> Iterator[dict[str, object]]:
    for path, count in (
        (Path("/var/log/dpkg.log"), 20),
        (Path("/var/log/apt/history.log"), 8),
        (Path("/var/log/alternatives.log"), 6),
        (Path("/var/log/apt/term.log"), 6),
    ):
        if not path.exists():
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for start in chunks(lines, 40, count, 17):
            text = "The log shows:\n\n```\n" + "\n".join(lines[start : start + 40]) + "\n```"
            yield answer(
                f"log-{path.name}-{start}", f"{path} lines {start + 1}-{start + 40}", "log", text
            )


def tables() -> Iterator[dict[str, object]]:
    site = Path(sysconfig.get_paths()["purelib"])
    for path in sorted(site.rglob("*.csv"))[:10]:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for start in chunks(lines, 40, 1, 18):
            text = "\n".join(lines[start : start + 40])
            yield answer(f"csv-{path.name}-{start}", str(path.relative_to(site)), "csv", text)
    import bfcl_eval

    root = Path(bfcl_eval.__file__).parent / "data"
    for name in (
        "BFCL_v4_simple_python.json",
        "BFCL_v4_multiple.json",
        "BFCL_v4_parallel.json",
        "BFCL_v4_live_simple.json",
        "BFCL_v4_live_multiple.json",
    ):
        lines = (root / name).read_text(encoding="utf-8").splitlines()
        for i in sorted(random.Random(19).sample(range(len(lines)), 6)):
            entry = json.loads(lines[i])
            yield answer(
                f"json-{entry['id']}",
                f"bfcl-eval data/{name}",
                "json",
                json.dumps(entry, indent=2, ensure_ascii=False),
            )


def build() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    ids: set[str] = set()
    texts: set[str] = set()
    for gen in (
        smollm2(),
        threads(),
        corpus_answers(),
        package_docs(),
        debian_docs(),
        code(),
        logs(),
        tables(),
    ):
        for entry in gen:
            if entry["id"] in ids or entry["text"] in texts:
                continue  # the same README twice (metadata and a shipped file): keep one
            ids.add(str(entry["id"]))
            texts.add(str(entry["text"]))
            entry["split"] = split_of(str(entry["id"]))
            if entry["id"] in MOVED and entry["split"] == "holdout":
                entry["split"] = "tune"
                entry["moved_from_holdout"] = True
            out.append(entry)
    return out


def main(check: bool) -> int:
    rows = build()
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    target = DATA / "data.jsonl"
    if check:
        return 0 if target.read_text(encoding="utf-8") == text else 1
    target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main("--check" in sys.argv[1:]))
