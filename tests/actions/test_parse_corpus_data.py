"""Integrity of benchmarks/data/parse_corpus/corpus.jsonl (issue #15 item 4).

Checks only the data: schema, allowed values, unique ids, the fixed split rule,
and that nothing is copied from the shared corpus. It does not score any parser.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "benchmarks" / "data" / "parse_corpus" / "corpus.jsonl"
SHARED = ROOT.parent / "shared" / "data" / "agent-outputs" / "corpus.jsonl"

REQUIRED = {
    "id",
    "source",
    "format",
    "raw",
    "expected",
    "note",
    "broken",
    "provenance",
    "patterns",
    "split",
}
OPTIONAL = {"function_name", "truncated_source", "moved_from_holdout"}
FORMATS = {"react", "json", "json_fenced", "xml_tag", "python", "other"}
KINDS = {"tool_call", "final_answer", "unrecoverable"}
PROVENANCE = {"real", "reporter-redacted", "format-example", "test-fixture"}
SPLIT_SALT = "pilothouse-parse-split-1"


def split_of(entry_id: str) -> str:
    """The split rule, fixed once: first byte of sha256(salt:id) even -> tune, odd -> holdout."""
    first = hashlib.sha256(f"{SPLIT_SALT}:{entry_id}".encode()).digest()[0]
    return "tune" if first % 2 == 0 else "holdout"


def _load(path: Path) -> list[dict[str, Any]]:
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"line {n} is blank"
        entry = json.loads(line)
        assert isinstance(entry, dict), f"line {n} is not an object"
        entries.append(entry)
    return entries


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    return _load(CORPUS)


def test_at_least_150_entries(entries):
    assert len(entries) >= 150


def test_fields_and_allowed_values(entries):
    for e in entries:
        where = e.get("id", "?")
        keys = set(e)
        assert keys >= REQUIRED, f"{where}: missing {REQUIRED - keys}"
        assert keys <= REQUIRED | OPTIONAL, f"{where}: unknown {keys - REQUIRED - OPTIONAL}"
        assert isinstance(e["id"], str) and e["id"].strip(), where
        assert isinstance(e["source"], str) and e["source"].strip(), where
        assert e["format"] in FORMATS, where
        assert isinstance(e["raw"], str) and e["raw"] != "", where
        assert isinstance(e["note"], str) and e["note"].strip(), where
        assert isinstance(e["broken"], bool), where
        assert e["provenance"] in PROVENANCE, where
        patterns = e["patterns"]
        assert isinstance(patterns, list), where
        assert all(isinstance(p, str) and p for p in patterns), where
        assert e["split"] in {"tune", "holdout"}, where
        if "function_name" in e:
            assert isinstance(e["function_name"], str) and e["function_name"], where
        if "truncated_source" in e:
            assert e["truncated_source"] is True, where
        if "moved_from_holdout" in e:
            assert e["moved_from_holdout"] is True and e["split"] == "tune", where


def test_expected_shape(entries):
    for e in entries:
        exp, where = e["expected"], e["id"]
        assert isinstance(exp, dict) and exp.get("kind") in KINDS, where
        if exp["kind"] == "tool_call":
            if "calls" in exp:
                assert set(exp) == {"kind", "calls"}, where
                assert isinstance(exp["calls"], list) and len(exp["calls"]) >= 2, where
                calls = exp["calls"]
            else:
                assert set(exp) == {"kind", "tool", "args"}, where
                calls = [{"tool": exp["tool"], "args": exp["args"]}]
            for call in calls:
                assert set(call) == {"tool", "args"}, where
                assert isinstance(call["tool"], str) and call["tool"], where
                assert isinstance(call["args"], (dict, str)), where
        elif exp["kind"] == "final_answer":
            assert set(exp) == {"kind", "answer"} and isinstance(exp["answer"], str), where
        else:
            assert set(exp) == {"kind"}, where


def test_ids_and_raws_unique(entries):
    ids = Counter(e["id"] for e in entries)
    assert not [i for i, n in ids.items() if n > 1]
    raws = Counter(e["raw"] for e in entries)
    assert not [r for r, n in raws.items() if n > 1]


def test_split_follows_the_fixed_rule(entries):
    """Every entry has the rule's split, except holdout entries moved to tune, which say so."""
    wrong = {
        e["id"]: split_of(e["id"])
        for e in entries
        if e["split"] != split_of(e["id"]) and not e.get("moved_from_holdout")
    }
    assert not wrong, f"split does not match the rule (id: rule's split): {wrong}"


def test_both_splits_present_with_unrecoverable_entries(entries):
    by_split = Counter(e["split"] for e in entries)
    assert by_split["tune"] > 0 and by_split["holdout"] > 0
    refusals = Counter(e["split"] for e in entries if e["expected"]["kind"] == "unrecoverable")
    assert refusals["tune"] > 0 and refusals["holdout"] > 0
    assert sum(refusals.values()) >= 20


def test_nothing_copied_from_the_shared_corpus(entries):
    if not SHARED.exists():
        pytest.skip(f"shared corpus not present at {SHARED}")
    shared = _load(SHARED)
    shared_ids = {e["id"] for e in shared}
    shared_raws = {e["raw"] for e in shared}
    assert not [e["id"] for e in entries if e["id"] in shared_ids]
    assert not [e["id"] for e in entries if e["raw"] in shared_raws]


HOLDOUT2 = ROOT / "benchmarks" / "data" / "parse_corpus" / "holdout2.jsonl"


def test_holdout2_has_the_schema_and_repeats_nothing(entries):
    """The second held-out set (session 9): the same schema, its own split, at least 40
    entries, and no id or raw text that the corpus already holds."""
    second = _load(HOLDOUT2)
    assert len(second) >= 40
    for e in second:
        where = e.get("id", "?")
        assert set(e) >= REQUIRED and set(e) <= REQUIRED | OPTIONAL, where
        assert e["split"] == "holdout2" and e["format"] in FORMATS, where
        assert e["provenance"] in PROVENANCE and e["source"].strip(), where
        assert e["expected"].get("kind") in KINDS, where
    test_expected_shape(second)
    test_ids_and_raws_unique(second)
    assert not {e["id"] for e in second} & {e["id"] for e in entries}
    assert not {e["raw"].strip() for e in second} & {e["raw"].strip() for e in entries}


SESSION10 = ROOT / "benchmarks" / "data" / "parse_corpus" / "session10.jsonl"
SPLIT_SALT_3 = "pilothouse-parse-split-3"


def split3_of(entry_id: str) -> str:
    """Session 10's split rule, fixed once: first byte of sha256(salt:id) even -> tune10,
    odd -> holdout3 (a new salt, so the batch's split is not the corpus's)."""
    first = hashlib.sha256(f"{SPLIT_SALT_3}:{entry_id}".encode()).digest()[0]
    return "tune10" if first % 2 == 0 else "holdout3"


def test_session10_has_the_schema_split_and_repeats_nothing(entries):
    """Session 10's batch: at least 60 entries, the schema, the fixed split rule (no entry
    moved yet without saying so), both splits holding refusals, and no id or raw text
    (whitespace aside) that the corpus, holdout2 or the shared corpus already hold."""
    batch = _load(SESSION10)
    assert len(batch) >= 60
    for e in batch:
        where = e.get("id", "?")
        assert set(e) >= REQUIRED and set(e) <= REQUIRED | OPTIONAL, where
        assert e["format"] in FORMATS and e["provenance"] in PROVENANCE, where
        assert e["source"].strip() and e["note"].strip(), where
        if e.get("moved_from_holdout"):
            assert e["split"] == "tune10", where
        else:
            assert e["split"] == split3_of(e["id"]), where
    test_expected_shape(batch)
    test_ids_and_raws_unique(batch)
    kinds = Counter((e["split"], e["expected"]["kind"]) for e in batch)
    assert kinds["tune10", "unrecoverable"] > 0 and kinds["holdout3", "unrecoverable"] > 0
    others = list(entries) + _load(HOLDOUT2)
    if SHARED.exists():
        others += _load(SHARED)
    assert not {e["id"] for e in batch} & {e["id"] for e in others}
    assert not {e["raw"].strip() for e in batch} & {e["raw"].strip() for e in others}


SESSION10B = ROOT / "benchmarks" / "data" / "parse_corpus" / "session10b.jsonl"


SESSION10C = ROOT / "benchmarks" / "data" / "parse_corpus" / "session10c.jsonl"
LATER_BATCHES = [
    (SESSION10B, "pilothouse-parse-split-4", "tune10b", "holdout4", [SESSION10]),
    (SESSION10C, "pilothouse-parse-split-5", "tune10c", "holdout5", [SESSION10, SESSION10B]),
]
SESSION11 = ROOT / "benchmarks" / "data" / "parse_corpus" / "session11.jsonl"
SESSION11_SALT = "pilothouse-parse-split-6"


def _check_batch(batch: list[dict], salt: str, tune: str, held: str) -> None:
    """A later batch's schema, expected shapes, unique ids and texts, and its own fixed
    split (`salt`), as for the corpus."""
    for e in batch:
        where = e.get("id", "?")
        assert set(e) >= REQUIRED and set(e) <= REQUIRED | OPTIONAL, where
        assert e["format"] in FORMATS and e["provenance"] in PROVENANCE, where
        first = hashlib.sha256(f"{salt}:{e['id']}".encode()).digest()[0]
        rule = tune if first % 2 == 0 else held
        assert e["split"] == rule or (e.get("moved_from_holdout") and e["split"] == tune)
    test_expected_shape(batch)
    test_ids_and_raws_unique(batch)


def _held_elsewhere(entries: list[dict], earlier: tuple[Path, ...]) -> list[dict]:
    """Every entry a new batch must not repeat: the corpus, holdout2, the `earlier`
    batches and the shared corpus (where it is present)."""
    others = list(entries) + _load(HOLDOUT2)
    for other in earlier:
        others += _load(other)
    if SHARED.exists():
        others += _load(SHARED)
    return others


def _repeats_nothing(batch: list[dict], entries: list[dict], earlier: tuple[Path, ...]) -> None:
    """No id and no raw text (whitespace aside) of `batch` is held elsewhere already."""
    others = _held_elsewhere(entries, earlier)
    assert not {e["id"] for e in batch} & {e["id"] for e in others}
    squash = {"".join(e["raw"].split()) for e in others}
    assert not {"".join(e["raw"].split()) for e in batch} & squash


def test_session11_issue_thread_batch_has_the_schema_split_and_repeats_nothing(entries):
    """Session 11's batch: outputs quoted in public issue threads (provenance never
    `test-fixture`), the schema, its own fixed split (salt 6), refusals in the tune half,
    no source an earlier file already used, and no id or raw text (whitespace aside) any
    other file or the shared corpus already holds."""
    batch = _load(SESSION11)
    assert len(batch) >= 50
    _check_batch(batch, SESSION11_SALT, "tune11", "holdout6")
    for e in batch:
        assert e["provenance"] != "test-fixture", e["id"]
        assert "#" in e["source"], e["id"]
    kinds = Counter((e["split"], e["expected"]["kind"]) for e in batch)
    assert kinds["tune11", "unrecoverable"] > 0 and kinds["holdout6", "unrecoverable"] > 0
    _repeats_nothing(batch, entries, (SESSION10, SESSION10B, SESSION10C))
    others = _held_elsewhere(entries, (SESSION10, SESSION10B, SESSION10C))
    assert not {e["source"] for e in batch} & {e["source"].split(":")[0] for e in others}


@pytest.mark.parametrize(("path", "salt", "tune", "held", "earlier"), LATER_BATCHES)
def test_later_session10_batches_have_the_schema_split_and_repeat_nothing(
    entries, path, salt, tune, held, earlier
):
    """Session 10's second and third batches: the schema, each its own fixed split (its
    own salt), and no id or raw text any other file already holds."""
    batch = _load(path)
    assert len(batch) >= 30
    _check_batch(batch, salt, tune, held)
    others = _held_elsewhere(entries, earlier)
    assert not {e["id"] for e in batch} & {e["id"] for e in others}
    assert not {e["raw"].strip() for e in batch} & {e["raw"].strip() for e in others}


SESSION11B = ROOT / "benchmarks" / "data" / "parse_corpus" / "session11b.jsonl"
SESSION11B_SALT = "pilothouse-parse-split-7"


def test_session11b_fixture_batch_has_the_schema_split_and_repeats_nothing(entries):
    """Session 11's second batch: outputs from the newest stored versions of the peers'
    parser test files that `holdout`'s misses come from (provenance `test-fixture`, the
    source naming file and commit), the schema, its own fixed split (salt 7), refusals in
    the held-out half, and no id or raw text (whitespace aside) any other file or the
    shared corpus already holds."""
    batch = _load(SESSION11B)
    assert len(batch) >= 60
    _check_batch(batch, SESSION11B_SALT, "tune11b", "holdout7")
    for e in batch:
        assert e["provenance"] == "test-fixture", e["id"]
        assert ":" in e["source"] and "@" in e["source"], e["id"]
    kinds = Counter((e["split"], e["expected"]["kind"]) for e in batch)
    assert kinds["tune11b", "unrecoverable"] > 0 and kinds["holdout7", "unrecoverable"] > 0
    _repeats_nothing(batch, entries, (SESSION10, SESSION10B, SESSION10C, SESSION11))


SESSION12 = ROOT / "benchmarks" / "data" / "parse_corpus" / "session12.jsonl"
SESSION12_SALT = "pilothouse-parse-split-8"


def test_session12_refusal_batch_has_the_schema_split_and_repeats_nothing(entries):
    """Session 12's batch, weighted towards what `holdout` still gets wrong: replies that
    must be refused (cut-off openers and calls, sections with nothing readable, ids naming
    no tool) and answers that hold call-like text and must stay answers. The schema, its
    own fixed split (salt 8), refusals and answers in both halves, every source naming a
    thread or a file at a commit, and no id or raw text (whitespace aside) any other file
    or the shared corpus already holds."""
    batch = _load(SESSION12)
    assert len(batch) >= 60
    _check_batch(batch, SESSION12_SALT, "tune12", "holdout8")
    for e in batch:
        assert "#" in e["source"] or ("@" in e["source"] and ":" in e["source"]), e["id"]
    kinds = Counter((e["split"], e["expected"]["kind"]) for e in batch)
    for split in ("tune12", "holdout8"):
        assert kinds[split, "unrecoverable"] > 0 and kinds[split, "final_answer"] > 0
    refusals_and_answers = kinds["tune12", "unrecoverable"] + kinds["holdout8", "unrecoverable"]
    refusals_and_answers += kinds["tune12", "final_answer"] + kinds["holdout8", "final_answer"]
    assert refusals_and_answers * 3 >= len(batch)  # weighted towards them, as collected
    _repeats_nothing(batch, entries, (SESSION10, SESSION10B, SESSION10C, SESSION11, SESSION11B))


SESSION13 = ROOT / "benchmarks" / "data" / "parse_corpus" / "session13.jsonl"
SESSION13_SALT = "pilothouse-parse-split-9"


def test_session13_recorded_batch_has_the_schema_split_and_repeats_nothing(entries):
    """Session 13's batch: real replies of the embedded SmolLM2-135M to the peers' tool
    prompts, recorded by benchmarks/record_smollm2_outputs.py (provenance `real`, the source
    naming that script at a commit, every note saying how to reproduce it), weighted
    towards refusals (degenerate loops, forged tool results, leaked template tokens) and
    answers that must stay answers. The schema, its own fixed split (salt 9), refusals and
    answers in both halves, and no id or raw text (whitespace aside) any other file or the
    shared corpus already holds."""
    batch = _load(SESSION13)
    assert len(batch) >= 60
    _check_batch(batch, SESSION13_SALT, "tune13", "holdout9")
    for e in batch:
        assert e["provenance"] == "real", e["id"]
        assert e["source"].startswith("pilothouse:benchmarks/record_smollm2_outputs.py@"), e["id"]
        assert "record_smollm2_outputs.py OUT" in e["note"] and "seed" in e["note"], e["id"]
    kinds = Counter((e["split"], e["expected"]["kind"]) for e in batch)
    for split in ("tune13", "holdout9"):
        assert kinds[split, "unrecoverable"] > 0 and kinds[split, "final_answer"] > 0
    refusals_and_answers = sum(n for (_, kind), n in kinds.items() if kind != "tool_call")
    assert refusals_and_answers * 4 >= len(batch) * 3  # weighted towards them, as collected
    _repeats_nothing(
        batch, entries, (SESSION10, SESSION10B, SESSION10C, SESSION11, SESSION11B, SESSION12)
    )


SESSION14 = ROOT / "benchmarks" / "data" / "parse_corpus" / "session14.jsonl"
SESSION14_SALT = "pilothouse-parse-split-10"


def test_session14_issue_thread_batch_has_the_schema_split_and_repeats_nothing(entries):
    """Session 14's batch: model outputs quoted in public issue and PR threads (provenance
    never `test-fixture`, every source `owner/repo#N`), the schema, its own fixed split
    (salt 10), refusals and answers in both halves, no thread any earlier file cites, and
    no id or raw text (whitespace aside) any other file or the shared corpus holds."""
    _check_thread_batch(
        entries,
        _load(SESSION14),
        60,
        SESSION14_SALT,
        ("tune14", "holdout10"),
        (SESSION10, SESSION10B, SESSION10C, SESSION11, SESSION11B, SESSION12, SESSION13),
    )


SESSION15 = ROOT / "benchmarks" / "data" / "parse_corpus" / "session15.jsonl"
SESSION15_SALT = "pilothouse-parse-split-11"


def test_session15_template_token_batch_has_the_schema_split_and_repeats_nothing(entries):
    """Session 15's batch: model outputs quoted in public issue and PR threads where
    chat-template tokens, envelopes or fragments of them reached a reply (provenance never
    `test-fixture`, every source `owner/repo#N`), the schema, its own fixed split (salt 11),
    refusals and answers in both halves, no thread any earlier file cites, and no id or raw
    text (whitespace aside) any other file or the shared corpus holds."""
    _check_thread_batch(
        entries,
        _load(SESSION15),
        40,
        SESSION15_SALT,
        ("tune15", "holdout11"),
        (
            SESSION10,
            SESSION10B,
            SESSION10C,
            SESSION11,
            SESSION11B,
            SESSION12,
            SESSION13,
            SESSION14,
        ),
    )


def _check_thread_batch(
    entries: Any,
    batch: list[dict[str, Any]],
    at_least: int,
    salt: str,
    splits: tuple[str, str],
    earlier: tuple[Path, ...],
) -> None:
    """A batch of outputs quoted in issue and PR threads: never `test-fixture`, every
    source `owner/repo#N`, the schema and its own split, refusals and answers in both
    halves, no thread an earlier file cites, no id or raw text held elsewhere."""
    assert len(batch) >= at_least
    _check_batch(batch, salt, *splits)
    for e in batch:
        assert e["provenance"] != "test-fixture", e["id"]
        assert "#" in e["source"] and ":" not in e["source"], e["id"]
    kinds = Counter((e["split"], e["expected"]["kind"]) for e in batch)
    for split in splits:
        assert kinds[split, "unrecoverable"] > 0 and kinds[split, "final_answer"] > 0
    _repeats_nothing(batch, entries, earlier)
    others = _held_elsewhere(entries, earlier)
    assert not {e["source"] for e in batch} & {e["source"].split(":")[0] for e in others}
