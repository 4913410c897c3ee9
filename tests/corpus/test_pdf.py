"""PDF input: one document per file, running headers/footers and hyphenation repaired, and
every PDF that cannot be read quarantined with its reason. PDFs are made here with fpdf2."""

from __future__ import annotations

import gzip
import io
import time

import pytest
from fpdf import FPDF

from smelt import storage
from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers import detect_format, input_files, read_documents
from smelt.corpus.readers.pdf import join_pages
from tests.corpus.conftest import GOOD_TEXT

TITLE = "The River Valley Report"


class Report(FPDF):
    """A book-like PDF: a running header on every page, a page number in the footer."""

    def header(self) -> None:
        self.set_font("helvetica", size=9)
        self.cell(0, 8, TITLE, align="C")
        self.ln(12)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("helvetica", size=9)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")


def report_pdf(pages: int = 3) -> bytes:
    pdf = Report()
    pdf.set_font("helvetica", size=11)
    for page in range(pages):
        name = ("one", "two", "three", "four")[page]
        pdf.add_page()
        for text in (
            f"Part {name}.\n{GOOD_TEXT}",
            "The farmers of the valley measured the water every morning for centu-",
            f"ries, and their records of part {name} survive in the village library.",
        ):
            pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def read(path: object, config: ReaderConfig | None = None) -> list[Document | Quarantined]:
    return list(read_documents(str(path), config or ReaderConfig()))


def test_pdf_is_one_document_without_headers_footers_or_broken_words(tmp_path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(report_pdf(3))
    (doc,) = read(path)
    assert isinstance(doc, Document) and doc.metadata == {"format": "pdf", "pages": 3}
    assert doc.text.count("canals also made it possible") == 3  # every page, in order
    assert doc.text.index("Part one.") < doc.text.index("Part two.") < doc.text.index("Part three.")
    assert TITLE not in doc.text and "Page 2" not in doc.text
    assert doc.text.count("for centuries, and their records of part") == 3
    assert read(path)[0].id == doc.id  # stable


def test_hyphens_and_page_layout_lines_are_repaired_in_the_joined_text() -> None:
    pages = [
        "Annual Report 2024\nThe water rose every spring and the exam-\nple shows it.\n1",
        "Annual Report 2024\nA well-known village kept\nWell-\nKnown records.\n2",
        "Annual Report 2024\nThe last page ends here.\n3",
    ]
    text = join_pages(pages)
    assert "example shows" in text and "well-known" in text and "Well-\nKnown" in text
    assert "Annual Report" not in text and not any(line.isdigit() for line in text.split("\n"))
    numbered_once = join_pages(["A first page of plain text.", "A second page of text.\n- 7 -"])
    assert numbered_once == "A first page of plain text.\nA second page of text."


def test_running_lines_recur_on_nearby_pages() -> None:
    body = [f"Text of page {n} in the middle of the book." for n in range(12)]
    chapter = [f"Chapter 1: Rivers {n + 2}\n{line}" for n, line in enumerate(body[:2])]
    assert "Chapter 1" not in join_pages(chapter + body[2:])  # two pages, with its page number
    repeated = [f"Introduction\n{line}" for line in body[:2]]
    assert join_pages(repeated + body[2:]).count("Introduction") == 2  # a heading, twice
    starts = [
        f"Chapter {n // 4 + 1}.\n{line}" if n % 4 == 0 else line for n, line in enumerate(body)
    ]
    assert join_pages(starts).count("Chapter") == 3  # chapter openings, pages apart
    facing = [f"{'Rivers' if n % 2 else 'The Book'}\n{line}" for n, line in enumerate(body)]
    assert "Rivers" not in join_pages(facing) and "The Book" not in join_pages(facing)


def test_encrypted_pdf_is_quarantined(tmp_path) -> None:
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, GOOD_TEXT, new_x="LMARGIN", new_y="NEXT")
    path = tmp_path / "locked.pdf"
    path.write_bytes(bytes(pdf.output()))
    (item,) = read(path)
    assert isinstance(item, Quarantined) and "encrypted" in item.reason


def test_scanned_pdf_without_text_layer_is_quarantined(tmp_path) -> None:
    from PIL import Image

    image = io.BytesIO()
    Image.new("L", (200, 100), color=200).save(image, format="PNG")
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.image(image, x=10, y=10, w=180)
    path = tmp_path / "scan.pdf"
    path.write_bytes(bytes(pdf.output()))
    (item,) = read(path)
    assert isinstance(item, Quarantined) and "no text layer" in item.reason


@pytest.mark.parametrize("content", [b"%PDF-1.4 this is not really a pdf", b"plain words"])
def test_corrupt_pdf_is_quarantined(tmp_path, content: bytes) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    (item,) = read(path)
    assert isinstance(item, Quarantined) and "corrupt or not a PDF" in item.reason


def test_truncated_pdf_is_quarantined_or_read_never_raises(tmp_path) -> None:
    raw = report_pdf(3)
    path = tmp_path / "cut.pdf"
    path.write_bytes(raw[: len(raw) // 2])
    (item,) = read(path)
    assert isinstance(item, Document | Quarantined)


def test_size_limit(tmp_path) -> None:
    path = tmp_path / "big.pdf"
    path.write_bytes(report_pdf(1))
    (item,) = read(path, ReaderConfig(pdf_max_bytes=100))
    assert isinstance(item, Quarantined) and item.reason.startswith("pdf too large")


def test_time_limit(tmp_path, monkeypatch) -> None:
    def slow(raw: bytes, limit: int | None = None) -> list[str]:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            pass
        return []

    monkeypatch.setattr("smelt.corpus.readers.pdf.page_texts", slow)
    path = tmp_path / "slow.pdf"
    path.write_bytes(report_pdf(1))
    start = time.monotonic()
    (item,) = read(path, ReaderConfig(pdf_timeout_s=0.3))
    assert time.monotonic() - start < 5
    assert isinstance(item, Quarantined) and "timed out after 0.3 s" in item.reason


def test_pdfs_in_directories_compressed_and_on_s3(tmp_path, s3_bucket: str) -> None:
    raw = report_pdf(2)
    assert detect_format("s3://b/x/report.PDF") == "pdf" and detect_format("a.pdf.gz") == "pdf"
    (tmp_path / "books" / "nested").mkdir(parents=True)
    (tmp_path / "books" / "nested" / "a.pdf").write_bytes(raw)
    (tmp_path / "books" / "b.pdf.gz").write_bytes(gzip.compress(raw))
    storage.write_bytes(f"{s3_bucket}/pdfs/c.pdf", raw)
    files = input_files(str(tmp_path / "books")) + input_files(f"{s3_bucket}/pdfs")
    texts = [item.text for uri in files for item in read(uri)]
    assert len(texts) == 3 and all(t.count("canals also made it possible") == 2 for t in texts)
