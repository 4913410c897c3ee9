"""PDF text extraction candidates side by side: pages per CPU-second on the PDFs Debian ships.

Inputs: every `*.pdf` and `*.pdf.gz` under /usr/share/doc (R's manuals from `r-doc-pdf`, GLPK's
from `glpk-doc`, and what other packages bring: libtasn1, shared-mime-info, valgrind, nettle,
fontconfig, bzip2, zlib), the first `--max-pages` pages of each. Candidates:

- `pypdfium2`: PDFium's text layer, `PdfTextPage.get_text_range()` per page (Apache-2.0/BSD);
- `pdfminer.six`: `pdfminer.high_level.extract_text` (pure Python, MIT);
- `smelt`: smelt's PDF reader (`corpus.readers.pdf`): pypdfium2 plus header/footer removal
  and hyphenation repair, i.e. what a corpus build does per file.

One process, one thread, the candidates alternating per repetition; CPU time of the
extraction alone (files are read into memory first). Figures are medians of `--reps`.

    .venv/bin/python bench/pdf_bench.py [--max-pages 40] [--reps 3]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import io
import os
import statistics
import sys
import time
from collections.abc import Callable


def pdf_files() -> list[tuple[str, bytes]]:
    paths = sorted(
        set(glob.glob("/usr/share/doc/**/*.pdf", recursive=True))
        | set(glob.glob("/usr/share/doc/**/*.pdf.gz", recursive=True))
    )
    files = []
    for path in paths:
        with open(path, "rb") as fh:
            raw = fh.read()
        files.append((path, gzip.decompress(raw) if path.endswith(".gz") else raw))
    if not files:
        sys.exit("no PDFs under /usr/share/doc: apt-get install r-doc-pdf glpk-doc")
    return files


def with_pypdfium2(raw: bytes, max_pages: int) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(raw)
    pages = []
    for index in range(min(len(pdf), max_pages)):
        page = pdf[index]
        textpage = page.get_textpage()
        pages.append(textpage.get_text_range())
        textpage.close()
        page.close()
    pdf.close()
    return pages


def with_pdfminer(raw: bytes, max_pages: int) -> list[str]:
    from pdfminer.high_level import extract_text

    text = extract_text(io.BytesIO(raw), maxpages=max_pages)
    return text.split("\f")[:max_pages]


def with_smelt(raw: bytes, max_pages: int) -> list[str]:
    from smelt.corpus.readers.pdf import join_pages, page_texts

    return [join_pages(page_texts(raw, max_pages))]


CANDIDATES: dict[str, Callable[[bytes, int], list[str]]] = {
    "pypdfium2": with_pypdfium2,
    "pdfminer.six": with_pdfminer,
    "smelt reader (pypdfium2 + repairs)": with_smelt,
}


def page_count(raw: bytes, max_pages: int) -> int:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(raw)
    count = min(len(pdf), max_pages)
    pdf.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-pages", type=int, default=40)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    files = pdf_files()
    pages = sum(page_count(raw, args.max_pages) for _, raw in files)
    megabytes = sum(len(raw) for _, raw in files) / 1e6
    print(f"load average before: {os.getloadavg()}")
    print(
        f"\n{len(files)} PDFs ({megabytes:.1f} MB), {pages} pages (first {args.max_pages} of "
        f"each); CPU seconds of one thread, median of {args.reps}\n"
    )
    seconds: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    chars: dict[str, int] = {}
    hyphens: dict[str, int] = {}
    names = list(CANDIDATES)
    for rep in range(args.reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            started = time.process_time()
            texts = [t for _, raw in files for t in CANDIDATES[name](raw, args.max_pages)]
            seconds[name].append(time.process_time() - started)
            chars[name] = sum(len(t) for t in texts)
            hyphens[name] = sum(t.count("-\n") + t.count("\ufffe") for t in texts)
    print("| candidate | CPU s | pages/s | characters | line-end hyphens left |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        median = statistics.median(seconds[name])
        print(
            f"| {name} | {median:.2f} | {pages / median:,.0f} | {chars[name]:,} | "
            f"{hyphens[name]:,} |"
        )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
