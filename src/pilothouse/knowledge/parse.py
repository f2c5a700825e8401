"""Documents to plain text: text, Markdown, HTML (stdlib `html.parser`) and PDF (`pypdf`).

The text a document becomes is what its chunks' spans point into, so it is stored
with the document: for text and Markdown it is the source itself; for HTML the text
of the page without markup, scripts, styles or navigation; for PDF the pages' text.
Hostile input fails here with a `DocumentError` (too large, binary, undecodable),
never later inside the index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

from pilothouse.exceptions import DocumentError

Kind = Literal["text", "markdown", "html", "pdf"]
KINDS: tuple[Kind, ...] = ("text", "markdown", "html", "pdf")
MAX_DOCUMENT_CHARS = 5_000_000  # a larger document is refused, not truncated

_SUFFIXES: dict[str, Kind] = {
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}


@dataclass(frozen=True, slots=True)
class Parsed:
    """A document as text: its title (may be empty) and the text spans point into."""

    title: str
    text: str


def kind_of(path: str | Path) -> Kind:
    """The kind a file's suffix names; `DocumentError` for one this module cannot read."""
    suffix = Path(path).suffix.lower()
    kind = _SUFFIXES.get(suffix)
    if kind is None:
        raise DocumentError(
            f"{path}: unknown document kind {suffix!r} (known: {', '.join(sorted(_SUFFIXES))}); "
            "pass kind= to say what it is"
        )
    return kind


def decode(data: bytes, source: str) -> str:
    """Bytes as UTF-8 text; binary data (NUL bytes, undecodable) is refused."""
    if b"\x00" in data[:65536]:
        raise DocumentError(f"{source}: looks binary (NUL bytes), not a text document")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{source}: not UTF-8 text (byte {exc.start}); convert it or pass kind='pdf' for a PDF"
        ) from None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(text: str, source: str, limit: int) -> None:
    """Refuse text that is too long or mostly control characters (binary in disguise)."""
    if len(text) > limit:
        raise DocumentError(
            f"{source}: {len(text):,} characters, over the limit of {limit:,}; split it into "
            "several documents or raise max_document_chars"
        )
    sample = text[:65536]
    if sample and len(_CONTROL.findall(sample)) > len(sample) // 100:
        raise DocumentError(f"{source}: looks binary (control characters), not a text document")


def parse(data: str | bytes, kind: Kind, source: str, limit: int = MAX_DOCUMENT_CHARS) -> Parsed:
    """A document's title and text. `data` is the file's bytes or already decoded text."""
    if kind not in KINDS:
        raise DocumentError(f"{source}: unknown document kind {kind!r} (known: {KINDS})")
    if kind == "pdf":
        if isinstance(data, str):
            raise DocumentError(f"{source}: a PDF must be given as bytes")
        return _pdf(data, source, limit)
    if isinstance(data, bytes):
        if len(data) > 4 * limit:
            raise DocumentError(f"{source}: {len(data):,} bytes, over the limit; split it")
        data = decode(data, source)
    if kind == "html":
        if len(data) > 4 * limit:  # markup included: the text is checked after parsing
            raise DocumentError(f"{source}: {len(data):,} characters of HTML, over the limit")
        parsed = _html(data)
        check_text(parsed.text, source, limit)
        return parsed
    check_text(data, source, limit)
    return Parsed(_markdown_title(data) if kind == "markdown" else "", data)


def _markdown_title(text: str) -> str:
    for line in text.splitlines()[:50]:
        if line.startswith("# "):
            return line[2:].strip()
    return ""


# Elements whose text is not the page's content.
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "nav", "head", "svg"})
# Sphinx's navigation, footer and heading anchors (the Python docs and many others).
_SKIP_CLASSES = frozenset({"sphinxsidebar", "related", "footer", "headerlink", "navigation"})
_BLOCKS = frozenset(
    {
        "p", "div", "section", "article", "li", "ul", "ol", "dl", "dt", "dd", "pre",
        "table", "tr", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr",
        "title", "main", "header", "footer", "figure", "figcaption",
    }
)  # fmt: skip
_VOID = frozenset(
    {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"}
)
_SPACE = re.compile(r"[ \t\r\f\v]+")


class _Text(HTMLParser):
    """Collects a page's visible text; blocks become paragraphs. Iterative: a page nested
    a million elements deep costs a list, not a recursion."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.skipping: list[str] = []  # open elements whose text is skipped
        self.pre = 0
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag in _BLOCKS and not self.skipping:
                self.parts.append("\n")
            return
        if tag == "title":
            self.in_title = True
        if self.skipping:
            self.skipping.append(tag)
            return
        classes = set()
        role = ""
        for name, value in attrs:
            if name == "class" and value:
                classes.update(value.split())
            elif name == "role" and value:
                role = value
        if tag in _SKIP_TAGS or classes & _SKIP_CLASSES or role == "navigation":
            self.skipping.append(tag)
            return
        if tag == "pre":
            self.pre += 1
        if tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if self.skipping:
            # close up to the matching open element (HTML may leave some unclosed)
            if tag in self.skipping:
                while self.skipping and self.skipping.pop() != tag:
                    pass
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if self.skipping:
            return
        self.parts.append(data if self.pre else _SPACE.sub(" ", data.replace("\n", " ")))


def _html(source: str) -> Parsed:
    reader = _Text()
    reader.feed(source)
    reader.close()
    text = "".join(reader.parts)
    paragraphs = [p.strip(" ") for p in re.split(r"\n\s*\n", text)]
    body = "\n\n".join(p for p in paragraphs if p.strip())
    return Parsed(" ".join("".join(reader.title).split()), body)


def _pdf(data: bytes, source: str, limit: int) -> Parsed:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError:
        raise DocumentError(
            f"{source}: reading PDF needs pypdf: pip install 'pilothouse[pdf]'"
        ) from None
    import io

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta = reader.metadata
        title = str(meta.get("/Title") or "") if meta is not None else ""
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise DocumentError(f"{source}: not a readable PDF ({type(exc).__name__}: {exc})") from None
    text = "\n\n".join(p for p in pages if p)
    check_text(text, source, limit)
    return Parsed(title, text)
