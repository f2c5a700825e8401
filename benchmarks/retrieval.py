"""Retrieval quality and speed of a knowledge base on a corpus no one on the project wrote:
the Python documentation as Debian ships it (`apt-get install python3-doc`: HTML under
/usr/share/doc/python3-doc/html), and the citation checker on claims drawn from it.

    python benchmarks/retrieval.py [--docs DIR] [--index PATH] [--size N] [--claims N]
                                   [--postgres] [--no-embeddings]

With the `embeddings` extra installed (WordLlama, the model in its wheel) the index also
holds a vector per chunk and each store is measured three ways: BM25 alone, embeddings
alone (cosine, numpy) and hybrid (reciprocal rank fusion of both, the default ranking
with an embedder).

`--postgres` also measures the PostgreSQL store (tsvector, ts_rank_cd) on a throwaway
server started by tests/pgserver.py.

Questions: benchmarks/data/retrieval/python_docs.jsonl (written for this benchmark, each
with the documents that answer it), split once into `tune` and `holdout` (a seeded
shuffle, recorded in the file); report the holdout separately. A question is answered at
rank r when a chunk of one of its documents is the r-th hit: recall@5 (r <= 5) and MRR
(1/r, 0 beyond 10). Time per query is the wall time of `KnowledgeBase.search` (for
embeddings it includes embedding the query).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from pilothouse.knowledge import (
    Chunking,
    Index,
    KnowledgeBase,
    Ranking,
    WordLlama,
    check_answer,
    embeddings_available,
)
from pilothouse.knowledge.postgres import PostgresKnowledgeBase

HERE = Path(__file__).parent
QUESTIONS = HERE / "data" / "retrieval" / "python_docs.jsonl"
DOCS = Path("/usr/share/doc/python3-doc/html")
PARTS = ("library", "tutorial", "howto", "faq", "reference", "using")


def build(docs: Path, kb: Index, size: int) -> Index:
    began = time.perf_counter()
    count = sum(kb.ingest_tree(docs, pattern=f"{part}/*.html") for part in PARTS)
    documents, chunks = kb.count()  # type: ignore[attr-defined]
    print(
        f"corpus: {documents} documents ({count} files read), {chunks} chunks of <= {size} "
        f"characters, ingested in {time.perf_counter() - began:.1f} s (a second run parses "
        "again but writes nothing for unchanged files)"
    )
    return kb


def evaluate(
    kb: Index, questions: list[dict[str, object]], ranking: Ranking, k: int = 5
) -> dict[str, float]:
    ranks: list[int | None] = []
    times: list[float] = []
    kb.search("warm the vector cache", 10, ranking=ranking)  # type: ignore[call-arg]
    for q in questions:
        began = time.perf_counter()
        hits = kb.search(str(q["question"]), 10, ranking=ranking)  # type: ignore[call-arg]
        times.append(time.perf_counter() - began)
        wanted = set(q["docs"])  # type: ignore[call-overload]
        rank = next((i for i, h in enumerate(hits, 1) if h.chunk.doc_id in wanted), None)
        ranks.append(rank)
    times.sort()
    return {
        "questions": len(questions),
        f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / len(ranks),
        "recall@1": sum(1 for r in ranks if r == 1) / len(ranks),
        "mrr@10": sum(1 / r for r in ranks if r is not None) / len(ranks),
        "ms_median": 1000 * statistics.median(times),
        "ms_p95": 1000 * times[int(0.95 * (len(times) - 1))],
    }


def claims(kb: KnowledgeBase, per_kind: int) -> None:
    sys.path.insert(0, str(HERE.parent / "tests" / "knowledge"))
    from claims import generate  # the generator the tests use

    drawn = generate(kb, per_kind=per_kind, seed=11)
    flagged_bad = bad = false_flags = 0
    kinds: Counter[tuple[str, str]] = Counter()
    began = time.perf_counter()
    for claim in drawn:
        report = check_answer(claim.answer, kb)
        if claim.label == "ok":
            false_flags += not report.ok
            continue
        bad += 1
        if not report.ok:
            flagged_bad += 1
            kinds[(claim.label, report.findings[0].problem)] += 1
    elapsed = time.perf_counter() - began
    ok = len(drawn) - bad
    print(
        f"citation checker on {len(drawn)} claims drawn from the corpus ({ok} true, {bad} bad): "
        f"bad flagged {flagged_bad}/{bad} ({100 * flagged_bad / bad:.1f}%), false flags "
        f"{false_flags}/{ok}; {1000 * elapsed / len(drawn):.2f} ms per answer"
    )
    for (label, problem), n in sorted(kinds.items()):
        print(f"  {label:>14} named {problem}: {n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--index", type=Path, default=None, help="keep the index here")
    parser.add_argument("--size", type=int, default=1200, help="chunk size in characters")
    parser.add_argument("--claims", type=int, default=100, help="claims per kind (5 kinds)")
    parser.add_argument("--postgres", action="store_true", help="also the PostgreSQL store")
    parser.add_argument("--no-embeddings", action="store_true", help="BM25 only")
    args = parser.parse_args()
    embedder = None if args.no_embeddings or not embeddings_available() else WordLlama()
    rankings: list[Ranking] = ["bm25", "vector", "hybrid"] if embedder else ["bm25"]
    if not (args.docs / "library").is_dir():
        sys.exit(f"{args.docs} has no library/: apt-get install python3-doc (or pass --docs)")
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.index or Path(tmp) / "kb.db"
        kb = KnowledgeBase(
            path,
            name="python-docs",
            chunking=Chunking(size=args.size),
            embedder=embedder,
            reindex=True,
        )
        build(args.docs, kb, args.size)
        missing = {d for q in questions for d in q["docs"] if kb.document_text(d) is None}
        if missing:
            sys.exit(f"questions name documents the corpus lacks: {sorted(missing)}")
        for ranking in rankings:
            report(f"SQLite {LABELS[ranking]}", kb, questions, ranking)
        claims(kb, args.claims)
        kb.close()
    if args.postgres:
        sys.path.insert(0, str(HERE.parent / "tests"))
        from pgserver import start_postgres

        server = start_postgres("retrieval")
        try:
            pg = PostgresKnowledgeBase(
                server.dsn, name="python-docs", chunking=Chunking(size=args.size), embedder=embedder
            )
            build(args.docs, pg, args.size)
            for ranking in rankings:
                report(f"PostgreSQL {PG_LABELS[ranking]}", pg, questions, ranking)
            pg.close()
        finally:
            server.stop()


LABELS = {"bm25": "FTS5 BM25", "vector": "embeddings", "hybrid": "hybrid (RRF)"}
PG_LABELS = {"bm25": "ts_rank_cd", "vector": "embeddings", "hybrid": "hybrid (RRF)"}


def report(label: str, kb: Index, questions: list[dict[str, object]], ranking: Ranking) -> None:
    for split in ("tune", "holdout"):
        part = [q for q in questions if q["split"] == split]
        r = evaluate(kb, part, ranking)
        print(
            f"{label} {split:>7}: {r['questions']:.0f} questions, recall@5 {r['recall@5']:.2f}, "
            f"recall@1 {r['recall@1']:.2f}, MRR@10 {r['mrr@10']:.2f}, "
            f"{r['ms_median']:.1f} ms median / {r['ms_p95']:.1f} ms p95 per query"
        )


if __name__ == "__main__":
    main()
