"""PDF files: one document per file, the text layer of every page read with pypdfium2 (PDFium).

Pages are joined in order after two repairs that page layout makes necessary:

- *running headers and footers*: a line at the top or bottom edge of a page (the first or last
  `EDGE_LINES` lines) that recurs at that edge of nearby pages once digits are masked
  ("Chapter 6: Add-on packages 26"; see `_is_running`), or that is only a page number ("12",
  "- 12 -", "Page 12 of 80", "xii"), is layout, not text, and is dropped;
- *hyphenation at line ends*: PDFium marks a word broken across lines with U+FFFE
  ("centu\\ufffe" + "ries"), which is removed; a visible hyphen at the end of a line followed
  by a lowercase letter ("exam-" / "ple") is joined too.

Lines are kept as the PDF lays them out (like the hard-wrapped paragraphs of much HTML).
A file that cannot be turned into text is quarantined with the reason: encrypted (it needs a
password), corrupt or not a PDF, no text layer (scanned pages without OCR), over the size
limit, or over the time limit. PDFium is not thread-safe, so one lock serialises its calls
within a process (thread runners); process pools run one per worker.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import IO

from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers.ids import derived_id
from smelt.corpus.readers.stream import TooLarge, read_limited
from smelt.corpus.readers.timelimit import TimeLimitExceeded, call_with_time_limit

EDGE_LINES = 2  # lines at the top and at the bottom of a page that may be a header/footer
NEARBY_PAGES = 2  # a running header is on the next page or the one after (facing pages)
MIN_LETTERS_PER_PAGE = 10  # fewer on average: the pages are images (scanned), not text
SOFT_HYPHEN = "\ufffe"  # PDFium's mark for a hyphen it recognised as a line-end break
_PDFIUM_LOCK = threading.Lock()
_PAGE_NUMBER_RE = re.compile(
    r"(?i)^[\s\-–—|]*(page\s+)?(\d+|[ivxlcdm]+)(\s*(/|of)\s*\d+)?[\s\-–—|]*$"
)
_DIGITS_RE = re.compile(r"\d+")
_LINE_END_HYPHEN_RE = re.compile(r"(\w)-\n(?=[a-z])")


class PdfError(Exception):
    """The file cannot be turned into text; `str(exc)` is the quarantine reason."""


def page_texts(raw: bytes, limit: int | None = None) -> list[str]:
    """The text layer of each page (the first `limit`), in order, line breaks as newlines."""
    import pypdfium2 as pdfium

    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(raw)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise PdfError("pdf is encrypted: it needs a password to open") from None
            raise PdfError(f"pdf is corrupt or not a PDF: {exc}") from None
        try:
            pages = []
            for index in range(len(pdf) if limit is None else min(len(pdf), limit)):
                page = pdf[index]
                textpage = page.get_textpage()
                pages.append(textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n"))
                textpage.close()
                page.close()
            return pages
        finally:
            pdf.close()


def _edge_key(line: str) -> str:
    return " ".join(_DIGITS_RE.sub("#", line).split())


def _edges(lines: list[str]) -> list[tuple[str, int]]:
    """(edge, position) of the lines that may be running headers/footers."""
    top = [("top", i) for i in range(min(EDGE_LINES, len(lines)))]
    bottom = [("bottom", i) for i in range(max(len(lines) - EDGE_LINES, 0), len(lines))]
    return list(dict.fromkeys(top + bottom))


def _is_running(line: str, edge: str, recurring: Counter[tuple[str, str]], pages: int) -> bool:
    """A bare page number, or a line recurring at this edge of nearby pages: on 3 pages (all
    of a shorter document), or on 2 when it starts or ends with a number (a header with its
    page number, "Chapter 1: Obtaining R 2", in a two-page chapter)."""
    if _PAGE_NUMBER_RE.match(line):
        return True
    key = _edge_key(line)
    seen = recurring[edge, key]
    return seen >= max(2, min(3, pages)) or (seen >= 2 and (key[:1] == "#" or key[-1:] == "#"))


def _recurring(pages: list[list[str]]) -> Counter[tuple[str, str]]:
    """(edge, masked line) -> pages it is on that have it again within `NEARBY_PAGES` pages:
    running headers recur page after page (alternating on facing pages), while a chapter's
    first page ("Chapter 3." at the top) does not."""
    found: dict[tuple[str, str], list[int]] = {}
    for number, lines in enumerate(pages):
        for key in {(edge, _edge_key(lines[i])) for edge, i in _edges(lines)}:
            found.setdefault(key, []).append(number)
    recurring: Counter[tuple[str, str]] = Counter()
    for key, numbers in found.items():
        recurring[key] = sum(
            1
            for i, number in enumerate(numbers)
            if (i > 0 and number - numbers[i - 1] <= NEARBY_PAGES)
            or (i + 1 < len(numbers) and numbers[i + 1] - number <= NEARBY_PAGES)
        )
    return recurring


def remove_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Each page without its running header/footer lines and bare page numbers."""
    recurring = _recurring(pages)
    cleaned = []
    for lines in pages:
        drop = {
            i for edge, i in _edges(lines) if _is_running(lines[i], edge, recurring, len(pages))
        }
        cleaned.append([line for i, line in enumerate(lines) if i not in drop])
    return cleaned


def join_pages(pages: list[str]) -> str:
    """One text from the pages' text layers: layout lines dropped, hyphenation repaired."""
    split = [[line.strip() for line in page.split("\n") if line.strip()] for page in pages]
    text = "\n".join("\n".join(lines) for lines in remove_running_lines(split) if lines)
    text = text.replace(SOFT_HYPHEN + "\n", "").replace(SOFT_HYPHEN, "")
    return _LINE_END_HYPHEN_RE.sub(r"\1", text)


def pdf_to_text(raw: bytes, timeout_s: float) -> tuple[str, int]:
    """(text, page count) of one PDF, or `PdfError` with the reason it cannot be read."""
    try:
        pages = call_with_time_limit(lambda: page_texts(raw), timeout_s)
    except TimeLimitExceeded:
        raise PdfError(f"pdf extraction timed out after {timeout_s:g} s") from None
    letters = sum(ch.isalpha() for page in pages for ch in page)
    if not pages or letters < MIN_LETTERS_PER_PAGE * len(pages):
        raise PdfError(
            f"pdf has no text layer ({letters} letters on {len(pages)} page(s)): scanned pages "
            "need OCR first"
        )
    return join_pages(pages), len(pages)


def read_pdf(
    file_uri: str, stream: IO[bytes], config: ReaderConfig
) -> Iterator[Document | Quarantined]:
    """One PDF file -> one document (or one quarantined item with the reason)."""
    try:
        raw = read_limited(stream, config.pdf_max_bytes)
    except TooLarge as exc:
        yield Quarantined(file_uri, f"pdf too large: {exc}", derived_id(file_uri, 0, b""))
        return
    if not raw:
        return
    try:
        text, pages = pdf_to_text(raw, config.pdf_timeout_s)
    except PdfError as exc:
        yield Quarantined(file_uri, str(exc), derived_id(file_uri, 0, raw))
        return
    yield Document(
        id=derived_id(file_uri, 0, text),
        text=text,
        source=file_uri,
        metadata={"format": "pdf", "pages": pages},
    )
