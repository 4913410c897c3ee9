"""Fixtures and builders for the ingest tests: tiny real inputs written to tmp_path."""

from __future__ import annotations

import pytest

from smelt.corpus.config import (
    C4Config,
    CorpusConfig,
    FilterConfig,
    FineWebConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)

# Six lines of plain English prose that passes every published filter with its defaults.
GOOD_TEXT = (
    "The history of the river valley shows how farmers adapted to floods over many centuries.\n"
    "Early settlers built low walls of stone and earth to protect their fields from spring water.\n"
    "Later generations dug canals that carried the extra water toward the dry hills in the east.\n"
    "These canals also made it possible to grow rice, which needs a steady supply of water.\n"
    "Historians believe that the canal network was finished around the end of the twelfth century.\n"
    "Today, visitors can walk along the old walls and see how the whole system worked together."
)

GOOD_HTML = f"""<!DOCTYPE html>
<html><head><title>River valley</title><meta charset="utf-8"></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li>
<li><a href="/contact">Contact</a></li></ul></nav>
<article><h1>The river valley</h1>
{"".join(f"<p>{line}</p>" for line in GOOD_TEXT.splitlines())}
</article>
<footer><p>Copyright 2024 Example Org. All rights reserved.</p></footer>
</body></html>"""


def warc_record(
    record_type: str = "response",
    uri: str = "http://example.com/",
    body: bytes = b"",
    content_type: str = "text/html; charset=utf-8",
    record_id: str = "<urn:uuid:00000000-0000-0000-0000-000000000001>",
) -> bytes:
    """One WARC/1.0 record, written by hand (an HTTP response wraps `body` for responses)."""
    if record_type == "response":
        payload = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        block_type = "application/http; msgtype=response"
    else:
        payload = body
        block_type = (
            "application/http; msgtype=request" if record_type == "request" else "text/plain"
        )
    head = (
        f"WARC/1.0\r\nWARC-Type: {record_type}\r\nWARC-Target-URI: {uri}\r\n"
        f"WARC-Record-ID: {record_id}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
        f"Content-Type: {block_type}\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()
    return head + payload + b"\r\n\r\n"


def only(name: str, **overrides: object) -> FilterConfig:
    """A FilterConfig with only filter `name` enabled (others off), its settings overridden."""
    sections = {
        "gopher_repetition": GopherRepetitionConfig,
        "gopher_quality": GopherQualityConfig,
        "c4": C4Config,
        "fineweb": FineWebConfig,
    }
    values = {key: cls(enabled=key == name) for key, cls in sections.items()}
    values[name] = values[name].replace(**overrides)
    return FilterConfig(**values)


@pytest.fixture
def config() -> CorpusConfig:
    """Default corpus configuration."""
    return CorpusConfig()
