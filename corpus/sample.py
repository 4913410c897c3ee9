"""A sample corpus of real text already on this machine: no download, nothing shipped.

Sources, all real and messy in the ways a web crawl is:
- `*.dist-info/METADATA` of installed Python packages: READMEs in Markdown/reST (one JSONL row
  each, with the project URL), and their LICENSE files (hundreds of near-identical MIT/BSD/Apache
  texts: real near-duplicates);
- README/CHANGES-style `*.md`, `*.rst`, `*.txt` files shipped inside packages;
- Python's own documentation topics (`pydoc_data/topics.py` in the standard library);
- Debian's `/usr/share/doc`: HTML manuals (e.g. `python3.11-doc`) and `copyright` files (full of
  real maintainer e-mail addresses for the PII stage to find).

The sample is deterministic for a given machine and `max_docs`: sources are listed in sorted
order and taken round-robin across kinds, so every kind is represented whatever the bound.
"""

from __future__ import annotations

import email.parser
import glob
import json
import logging
import os
import site
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 300_000  # skip generated giants (changelogs of 10 MB, search indexes)
MIN_FILE_BYTES = 200  # and stubs
HTML_SHARE = 8  # at most 1/8 of the sample is HTML: extraction is the slow step
MAX_SAMPLE_BYTES = 12_000_000  # keeps the demo's corpus build to a minute or two on 2 cores
DOC_SUFFIXES = (".md", ".rst", ".txt")
SKIP_TXT_NAMES = (
    "entry_points.txt",
    "top_level.txt",
    "requires.txt",
    "sources.txt",
    "dependency_links.txt",
    "not-zip-safe",
    "namespace_packages.txt",
    "requirements.txt",
    "SOURCES.txt",
    "RECORD",
    "WHEEL",
)


@dataclass
class SampleRecord:
    """One sample document before it is written: where it came from and its text."""

    kind: str
    name: str
    text: str
    url: str | None = None


@dataclass
class SampleSummary:
    """What `build_sample` wrote, by kind."""

    root: str
    counts: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def site_packages() -> list[str]:
    """Directories holding installed distributions (this environment's first)."""
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    dirs += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    return sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d)})


def _read(path: str) -> str | None:
    try:
        if not MIN_FILE_BYTES <= os.path.getsize(path) <= MAX_FILE_BYTES:
            return None
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def package_readmes() -> Iterator[SampleRecord]:
    """The long description (README) of every installed distribution."""
    for root in site_packages():
        for meta_path in sorted(glob.glob(os.path.join(root, "*.dist-info", "METADATA"))):
            raw = _read(meta_path)
            if raw is None:
                continue
            message = email.parser.Parser().parsestr(raw)
            body = message.get_payload() or message.get("Description") or ""
            if isinstance(body, str) and len(body) >= MIN_FILE_BYTES:
                urls = [u.split(",", 1)[-1].strip() for u in message.get_all("Project-URL") or []]
                url = message.get("Home-page") or (urls[0] if urls else None)
                name = message.get("Name") or os.path.basename(os.path.dirname(meta_path))
                yield SampleRecord("readme", f"pypi:{name}", body, url)


def package_licenses() -> Iterator[SampleRecord]:
    """LICENSE/COPYING files of installed distributions (many near-identical copies)."""
    for root in site_packages():
        patterns = ("*.dist-info/LICEN[CS]E*", "*.dist-info/COPYING*", "*.dist-info/licenses/**/*")
        paths = sorted(
            {p for pat in patterns for p in glob.glob(os.path.join(root, pat), recursive=True)}
        )
        for path in paths:
            if os.path.isfile(path) and (text := _read(path)) is not None:
                yield SampleRecord("license", os.path.relpath(path, root), text)


def package_docs() -> Iterator[SampleRecord]:
    """Markdown/reST/text documents shipped inside packages."""
    for root in site_packages():
        for path in sorted(glob.glob(os.path.join(root, "*", "**", "*"), recursive=True)):
            base = os.path.basename(path)
            if (
                not path.endswith(DOC_SUFFIXES)
                or base in SKIP_TXT_NAMES
                or ".dist-info" in path
                or not os.path.isfile(path)
            ):
                continue
            if (text := _read(path)) is not None:
                yield SampleRecord("package-doc", os.path.relpath(path, root), text)


def python_topics() -> Iterator[SampleRecord]:
    """Python's documentation topics from the standard library (`pydoc_data`)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    for name in sorted(topics):
        url = f"https://docs.python.org/3/reference/{name}.html"
        yield SampleRecord("python-topic", f"pydoc:{name}", topics[name], url)


def debian_docs(root: str = "/usr/share/doc", kind: str = "html") -> Iterator[SampleRecord]:
    """HTML manuals (`kind="html"`) or `copyright` files under /usr/share/doc, where installed."""
    seen: set[str] = set()  # python3.11-doc/html is a symlink to python3.11/html
    for path in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True)):
        if "genindex" in path or "/_" in path or os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        wanted = path.endswith(".html") if kind == "html" else os.path.basename(path) == kind
        if wanted and os.path.isfile(path) and (text := _read(path)) is not None:
            url = f"file://{path}" if kind == "html" else None
            yield SampleRecord(kind, os.path.relpath(path, root), text, url)


def debian_html() -> Iterator[SampleRecord]:
    return debian_docs(kind="html")


def debian_copyright() -> Iterator[SampleRecord]:
    return debian_docs(kind="copyright")


SOURCES: tuple[Callable[[], Iterator[SampleRecord]], ...] = (
    debian_html,
    package_readmes,
    python_topics,
    package_licenses,
    debian_copyright,
    package_docs,
)


def collect(max_docs: int, max_bytes: int = MAX_SAMPLE_BYTES) -> list[SampleRecord]:
    """Up to `max_docs` records (and about `max_bytes`), taken round-robin across sources so
    each is represented; HTML pages are at most 1/HTML_SHARE of them."""
    streams = [iter(source()) for source in SOURCES]
    chosen: list[SampleRecord] = []
    html, size = 0, 0
    while streams and len(chosen) < max_docs and size < max_bytes:
        for stream in list(streams):
            record = next(stream, None)
            while record is not None and record.kind == "html" and html >= max_docs // HTML_SHARE:
                record = next(stream, None)
            if record is None:
                streams.remove(stream)
            elif len(chosen) < max_docs and size < max_bytes:
                chosen.append(record)
                html += record.kind == "html"
                size += len(record.text)
    return chosen


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:150]


def write_sample(records: list[SampleRecord], root: str) -> SampleSummary:
    """Write records as input files: HTML pages as `.html`, package READMEs and Python topics
    as JSONL (id, text, url), licenses/docs/copyright files as one `.txt` each."""
    summary = SampleSummary(root)
    os.makedirs(root, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    for index, record in enumerate(records):
        summary.counts[record.kind] = summary.counts.get(record.kind, 0) + 1
        if record.kind in ("readme", "python-topic"):
            rows.setdefault(record.kind, []).append(
                {"id": record.name, "text": record.text, "url": record.url}
            )
            continue
        suffix = ".html" if record.kind == "html" else ".txt"
        path = os.path.join(root, record.kind, f"{index:05d}-{_safe_name(record.name)}{suffix}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(record.text)
        summary.files.append(path)
    for kind, kind_rows in rows.items():
        path = os.path.join(root, f"{kind}.jsonl")
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in kind_rows)
        summary.files.append(path)
    log.info("sample of %d documents under %s: %s", summary.total, root, summary.counts)
    return summary


def build_sample(
    root: str, max_docs: int = 3000, max_bytes: int = MAX_SAMPLE_BYTES
) -> SampleSummary:
    """Collect up to `max_docs` real documents from this machine and write them under `root`."""
    return write_sample(collect(max_docs, max_bytes), root)
