"""examples/rag_answer.py runs as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_rag_answer_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "rag_answer.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "knowledge base: 10 articles" in out
    assert "retrieval journaled: 'How long do card refunds take?'" in out
    assert "✗ refused: Citation check failed: citation [1]: the quote is not in chunk" in out
    assert "✓ citations verified" in out
    assert "'Card refunds appear within 5 to 10 business days'" in out


def test_hybrid_search_example(tmp_path: Path) -> None:
    pytest.importorskip("safetensors", reason="the embeddings extra")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "hybrid_search.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "knowledge base: 10 articles, 10 chunks, each with a vector" in out
    assert "  bm25: 'reimbursement' -> nothing" in out
    assert "hybrid: 'reimbursement' -> refunds.md" in out
    assert "refused, naming the embedder and reindex: True" in out
    assert "✓ hybrid: 'delete an uploaded file' -> openai_files_delete" in out
    assert out.count("✓ hybrid") == 2 and out.count("✗   bm25") == 2
