"""HTML pages: main-content extraction with trafilatura, under a size and a time limit.

The main content comes out as Markdown by default (`corpus.readers.markdown`: headings, lists,
inline code, and `<pre>` listings verbatim in fenced blocks), or as trafilatura's plain text
with `[readers] html_format = "text"`.

A page whose extraction finds no main content (only scripts, navigation, or a tree too deep
for lxml to build) becomes a document with empty text, which the filters count as `empty`:
the page was read fine, it just holds nothing worth keeping. Pages that cannot be processed
(too large, timed out, binary, undecodable, parser crash) are quarantined with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO

import trafilatura

from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers.encoding import DecodeError, decode_bytes
from smelt.corpus.readers.ids import derived_id
from smelt.corpus.readers.markdown import extract_markdown
from smelt.corpus.readers.stream import TooLarge, read_limited
from smelt.corpus.readers.timelimit import TimeLimitExceeded, call_with_time_limit

log = logging.getLogger(__name__)
# trafilatura warns "discarding data: None" for every page without main content; smelt already
# counts those pages (filtered as `empty`), so its per-page warnings are only terminal noise.
logging.getLogger("trafilatura").setLevel(logging.ERROR)


class ExtractionError(Exception):
    """The page could not be processed; `str(exc)` is the quarantine reason."""


def extract_main_text(html: str, config: ReaderConfig, url: str | None = None) -> str:
    """Main content of a page as Markdown or plain text ('' when there is none)."""

    def run() -> str | None:
        if config.html_format == "markdown":
            return extract_markdown(
                html, url=url, fast=config.html_fast, favor_precision=config.favor_precision
            )
        return trafilatura.extract(
            html,
            url=url,
            fast=config.html_fast,
            favor_precision=config.favor_precision,
            include_comments=False,
            include_tables=True,
            deduplicate=False,
            output_format="txt",
        )

    try:
        return call_with_time_limit(run, config.html_timeout_s) or ""
    except TimeLimitExceeded:
        raise ExtractionError(
            f"html extraction timed out after {config.html_timeout_s:g} s"
        ) from None
    except RecursionError:
        raise ExtractionError("html nested too deeply to extract") from None
    except MemoryError:
        raise ExtractionError("html too large to extract (out of memory)") from None
    except Exception as exc:  # noqa: BLE001 - a parser crash on one page must not stop the run
        raise ExtractionError(f"html extraction failed: {type(exc).__name__}: {exc}") from None


def html_to_document(
    raw: bytes,
    config: ReaderConfig,
    *,
    source: str,
    position: int | str,
    url: str | None = None,
    doc_id: str | None = None,
    charset: str | None = None,
) -> Document | Quarantined:
    """One page's bytes -> a Document with its main text, or a Quarantined with the reason."""
    quarantine_id = doc_id or derived_id(source, position, raw)
    if len(raw) > config.html_max_bytes:
        return Quarantined(
            source,
            f"html too large: {len(raw):,} bytes > limit {config.html_max_bytes:,}",
            quarantine_id,
        )
    try:
        html = decode_bytes(raw, charset, html=True)
        text = extract_main_text(html, config, url)
    except (DecodeError, ExtractionError) as exc:
        log.info("quarantined %s (%s): %s", source, position, exc)
        return Quarantined(source, str(exc), quarantine_id)
    return Document(
        id=doc_id or derived_id(source, position, text),
        text=text,
        source=source,
        url=url,
        metadata={"format": "html"},
    )


def read_html(
    file_uri: str, stream: IO[bytes], config: ReaderConfig
) -> Iterator[Document | Quarantined]:
    """One HTML file -> one document."""
    try:
        raw = read_limited(stream, config.html_max_bytes)
    except TooLarge as exc:
        yield Quarantined(file_uri, f"html too large: {exc}", derived_id(file_uri, 0, b""))
        return
    if raw:
        yield html_to_document(raw, config, source=file_uri, position=0)
