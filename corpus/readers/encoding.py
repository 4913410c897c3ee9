"""Bytes to text: UTF-8 first, then a careful guess for legacy single-byte encodings.

Binary content (NUL bytes, or many C0 control bytes) is refused before any guess, since every
byte string decodes as *some* single-byte encoding. Latin-1/cp1252 is checked by hand before
`charset_normalizer`, which on short Western European text often prefers a Baltic or Central
European code page (it calls "Café" cp1257); the hand check accepts cp1252 only when the result
looks like Latin-script text (mostly ASCII letters, few C1 or undefined bytes).
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

BINARY_REASON = "binary content, not text"
UNKNOWN_ENCODING_REASON = "not UTF-8 and encoding could not be determined"

_SNIFF_BYTES = 1 << 16
_MAX_CONTROL_FRACTION = 0.05
_CONTROL_BYTES = bytes(c for c in range(32) if c not in (9, 10, 12, 13, 27))
_MAX_NON_ASCII_LETTER_FRACTION = 0.3
_MAX_CHAOS = 0.2
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I
)


class DecodeError(Exception):
    """The bytes are not text we can decode; `str(exc)` is the quarantine reason."""


def looks_binary(data: bytes) -> bool:
    """NUL bytes, or more than 5% C0 control bytes (other than tab/newlines/form feed/escape)."""
    sample = data[:_SNIFF_BYTES]
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return controls / len(sample) > _MAX_CONTROL_FRACTION


def _plausible_latin(text: str) -> bool:
    letters = sum(1 for ch in text if ch.isalpha())
    if not letters:
        return True
    non_ascii = sum(1 for ch in text if ch.isalpha() and not ch.isascii())
    return non_ascii / letters <= _MAX_NON_ASCII_LETTER_FRACTION


def _decode_declared(data: bytes, declared: str | None) -> str | None:
    if not declared:
        return None
    try:
        return data.decode(declared)
    except (LookupError, UnicodeDecodeError):
        return None


def decode_bytes(data: bytes, declared: str | None = None, *, html: bool = False) -> str:
    """Decode `data` to text or raise `DecodeError` with a readable reason.

    Order: UTF-16 when it starts with its byte-order mark, binary check, UTF-8 (BOM stripped), the declared charset (HTTP header or HTML
    `<meta charset>`), cp1252 when it reads as Latin text, then `charset_normalizer` when it
    is confident.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # NUL bytes, yet text
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise DecodeError(
                "invalid UTF-16 text (it starts with a UTF-16 byte-order mark)"
            ) from None
    if looks_binary(data):
        raise DecodeError(BINARY_REASON)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if html and not declared:
        found = _META_CHARSET.search(data[:4096])
        declared = found.group(1).decode("ascii") if found else None
    text = _decode_declared(data, declared)
    if text is not None:
        return text
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = None
    if text is not None and _plausible_latin(text[:_SNIFF_BYTES]):
        return text
    match = charset_normalizer.from_bytes(data[:_SNIFF_BYTES]).best()
    if match is not None and match.chaos <= _MAX_CHAOS:
        text = _decode_declared(data, match.encoding)
        if text is not None:
            return text
    raise DecodeError(UNKNOWN_ENCODING_REASON)
