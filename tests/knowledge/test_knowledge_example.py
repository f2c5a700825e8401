"""examples/rag_answer.py runs as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from example_runs import run_example


def test_rag_answer_example(tmp_path: Path) -> None:
    result = run_example("rag_answer.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "knowledge base: 10 articles" in out
    assert "retrieval journaled: 'How long do card refunds take?'" in out
    assert "✗ refused: Citation check failed: citation [1]: the quote is not in chunk" in out
    assert "✓ citations verified" in out
    assert "'Card refunds appear within 5 to 10 business days'" in out


def test_hybrid_search_example(tmp_path: Path) -> None:
    pytest.importorskip("safetensors", reason="the embeddings extra")
    result = run_example("hybrid_search.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "knowledge base: 10 articles, 10 chunks, each with a vector" in out
    assert "  bm25: 'reimbursement' -> nothing" in out
    assert "hybrid: 'reimbursement' -> refunds.md" in out
    assert "refused, naming the embedder and reindex: True" in out
    assert "✓ hybrid: 'delete an uploaded file' -> openai_files_delete" in out
    assert out.count("✓ hybrid") == 2 and out.count("✗   bm25") == 2
