"""A labelled set of citations for the checker, made from a knowledge base's chunks.

`generate(kb, n, seed)` draws, deterministically, equal numbers of
- ``ok``: a real passage of the cited chunk (4-16 words; some with curly quotes or
  broken lines, which the checker must accept);
- ``fabricated``: a real passage with one word changed (so the text exists nowhere);
- ``stitched``: two real passages of different chunks joined as one quote;
- ``misattributed``: a real passage cited to another chunk that lacks it;
- ``unknown_chunk``: a real passage cited to a chunk id that does not exist.
`HAND_WRITTEN` adds cases written by hand against the test corpus (tests/knowledge/kb_corpus).
Used by tests/knowledge/test_knowledge_citations.py and benchmarks/retrieval.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pilothouse.knowledge import Answer, Chunk, Citation, KnowledgeBase, normalise

KINDS = ("ok", "fabricated", "stitched", "misattributed", "unknown_chunk")


@dataclass(frozen=True)
class Claim:
    label: str  # "ok" or the kind of bad citation
    answer: Answer
    note: str = ""


def _answer(chunk_id: str, quote: str) -> Answer:
    return Answer(
        text="As the documentation says [1].",
        citations=[Citation(n=1, chunk=chunk_id, quote=quote)],
    )


def _norm(text: str) -> str:
    return normalise(text)[0]


def _passage(rng: random.Random, chunk: Chunk, low: int = 4, high: int = 16) -> str | None:
    words = _norm(chunk.text).split(" ")
    if len(words) < low:
        return None
    size = rng.randint(low, min(high, len(words)))
    start = rng.randint(0, len(words) - size)
    return " ".join(words[start : start + size])


def _anywhere(kb: KnowledgeBase, quote: str) -> bool:
    wanted = _norm(quote)
    return any(wanted in _norm(c.text) for c in kb.find_text(quote, limit=1000))


def _dress(rng: random.Random, quote: str) -> str:
    """Whitespace and quote marks changed the way a model (or a copy) changes them."""
    choice = rng.randint(0, 3)
    if choice == 1:
        return quote.replace(" ", "\n", 1).replace(" ", "  ", 1)
    if choice == 2:
        return quote.replace('"', "\u201c", 1).replace("'", "\u2019")
    if choice == 3:
        return f"  {quote}\t"
    return quote


_SWAPS = {"not": "always", "is": "was", "the": "a", "a": "the", "and": "or", "or": "and"}


def _alter(rng: random.Random, quote: str) -> str:
    words = quote.split(" ")
    i = rng.randrange(len(words))
    w = words[i]
    if w.lower() in _SWAPS:
        words[i] = _SWAPS[w.lower()]
    elif any(ch.isdigit() for ch in w):
        words[i] = "".join(str((int(ch) + 1) % 10) if ch.isdigit() else ch for ch in w)
    else:
        words[i] = w[::-1] if len(w) > 3 and w[::-1] != w else w + "s"
    return " ".join(words)


def generate(kb: KnowledgeBase, per_kind: int, seed: int = 0) -> list[Claim]:
    """`per_kind` claims of each kind in `KINDS`, drawn from `kb`'s chunks."""
    rng = random.Random(seed)
    chunks = [c for doc in kb.documents() for c in kb.chunks(doc) if len(c.text.split()) >= 8]
    if len(chunks) < 3:
        raise ValueError("the knowledge base needs at least three chunks of 8 words")
    out: dict[str, list[Claim]] = {k: [] for k in KINDS}
    tries = 0
    while any(len(v) < per_kind for v in out.values()):
        tries += 1
        if tries > per_kind * 500:
            raise RuntimeError(f"could not draw enough claims: {[len(v) for v in out.values()]}")
        kind = KINDS[tries % len(KINDS)]
        if len(out[kind]) >= per_kind:
            continue
        chunk = rng.choice(chunks)
        quote = _passage(rng, chunk)
        if quote is None:
            continue
        if kind == "ok":
            out[kind].append(Claim(kind, _answer(chunk.id, _dress(rng, quote)), chunk.doc_id))
        elif kind == "fabricated":
            changed = _alter(rng, quote)
            if changed != quote and not _anywhere(kb, changed):
                out[kind].append(Claim(kind, _answer(chunk.id, changed), quote))
        elif kind == "stitched":
            other = rng.choice(chunks)
            second = _passage(rng, other, 3, 8)
            first = _passage(rng, chunk, 3, 8)
            if other.id == chunk.id or second is None or first is None:
                continue
            joined = f"{first} {second}"
            if not _anywhere(kb, joined):
                out[kind].append(Claim(kind, _answer(chunk.id, joined), other.id))
        elif kind == "misattributed":
            other = rng.choice(chunks)
            if other.id != chunk.id and _norm(quote) not in _norm(other.text):
                out[kind].append(Claim(kind, _answer(other.id, quote), chunk.id))
        else:
            fake = "c" + "".join(rng.choice("0123456789abcdef") for _ in range(15))
            if kb.chunk(fake) is None:
                out[kind].append(Claim(kind, _answer(fake, quote)))
    return [c for k in KINDS for c in out[k]]


def _cite(*pairs: tuple[str, str], text: str | None = None) -> Answer:
    cites = [Citation(n=i, chunk=c, quote=q) for i, (c, q) in enumerate(pairs, 1)]
    return Answer(
        text=text or " ".join(f"Claim [{i}]." for i in range(1, len(pairs) + 1)), citations=cites
    )


def hand_written(kb: KnowledgeBase) -> list[Claim]:
    """Cases written by hand against tests/knowledge/kb_corpus (ingested with size 200)."""

    def chunk_with(doc: str, text: str) -> str:
        for c in kb.chunks(doc):
            if text in c.text:
                return c.id
        raise AssertionError(f"no chunk of {doc} has {text!r}")

    refund = chunk_with("returns.md", "Refunds go back")
    days30 = chunk_with("returns.md", "30 days")
    software = chunk_with("returns.md", "Opened software")
    standard = chunk_with("shipping.html", "Standard shipping")
    boxes = chunk_with("shipping.html", "P.O. boxes")
    warranty = chunk_with("warranty.txt", "two-year warranty")
    drops = chunk_with("warranty.txt", "drops, water")
    ok = [
        _cite((refund, "Refunds go back to the original payment method")),
        _cite((days30, "Items can be returned within 30 days of delivery.")),
        _cite((days30, "must be unused and in its\noriginal packaging")),  # broken line
        _cite((standard, "costs $4.99")),
        _cite((boxes, "We do not ship to P.O. boxes.")),
        _cite((warranty, "two-year warranty")),
        _cite((software, "“Opened software cannot be returned”".strip("“”"))),
        _cite((refund, "within 5 business days"), (warranty, "manufacturing defects")),
        _cite(
            (days30, "30 days"),
            (standard, "3 to 5 business days"),
            (drops, "unauthorised repairs"),
        ),
        _cite((drops, "drops, water or unauthorised repairs"), text="Not covered [1], ever [1]."),
    ]
    bad = [
        (
            "fabricated",
            _cite(
                (refund, "Refunds go back to the original payment method within 3 business days")
            ),
        ),
        ("fabricated", _cite((days30, "Items can be returned within 60 days of delivery."))),
        ("fabricated", _cite((boxes, "We ship to P.O. boxes."))),
        ("fabricated", _cite((warranty, "a lifetime warranty"))),
        ("fabricated", _cite((standard, "Standard shipping is free."))),
        ("fabricated", _cite((drops, "The warranty covers damage from drops"))),
        ("fabricated", _cite((refund, "refunds go back to the original payment method"))),  # case
        (
            "stitched",
            _cite(
                (
                    days30,
                    "Items can be returned within 30 days of delivery. "
                    "Refunds go back to the original payment method",
                )
            ),
        ),
        (
            "stitched",
            _cite(
                (
                    warranty,
                    "two-year warranty against manufacturing defects "
                    "does not cover damage from drops",
                )
            ),
        ),
        (
            "stitched",
            _cite(
                (standard, "Standard shipping takes 3 to 5 business days when ordered before 2 pm.")
            ),
        ),
        ("misattributed", _cite((warranty, "We do not ship to P.O. boxes."))),
        ("misattributed", _cite((refund, "Items can be returned within 30 days of delivery."))),
        ("misattributed", _cite((standard, "Opened software cannot be returned"))),
        ("unknown_chunk", _cite(("c000000000000000", "two-year warranty"))),
        ("unknown_chunk", _cite(("returns.md", "30 days"))),
        ("unknown_chunk", _cite(("'; DROP TABLE kb_chunks; --", "30 days"))),
        ("empty_quote", _cite((refund, "   "))),
        ("numbering", _cite((refund, "Refunds go back"), text="Refunds [2].")),
        (
            "numbering",
            _cite(
                (refund, "Refunds go back"), (warranty, "two-year warranty"), text="A [2]. B [1]."
            ),
        ),
        ("numbering", _cite((refund, "Refunds go back"), text="No marker at all.")),
        ("numbering", _cite((refund, "Refunds go back"), text="Two [1] and [2].")),
        (
            "numbering",
            Answer(
                text="A [1].",
                citations=[
                    Citation(n=1, chunk=refund, quote="Refunds go back"),
                    Citation(n=1, chunk=refund, quote="Refunds go back"),
                ],
            ),
        ),
    ]
    return [Claim("ok", a, "hand") for a in ok] + [Claim(k, a, "hand") for k, a in bad]
