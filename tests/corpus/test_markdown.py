"""HTML extraction as Markdown: code listings kept verbatim in fences, structure marked,
boilerplate still left out; the plain-text option as before."""

from __future__ import annotations

import pytest

from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document
from smelt.corpus.readers import read_documents
from smelt.corpus.readers.markdown import restore_code
from tests.corpus.conftest import GOOD_TEXT

LISTING = (
    'fn main() {\n    let number = 3;\n\n    if number < 5 {\n        println!("yes");\n    }\n}'
)
HIGHLIGHTED = (
    '<span class="kw">fn</span> <span class="ident">main</span>() {\n'
    '    <span class="kw">let</span> number = 3;\n\n'
    '    <span class="kw">if</span> number &lt; 5 {\n'
    '        <span class="macro">println!</span>(<span class="string">"yes"</span>);\n'
    "    }\n}"
)
PROSE = "".join(f"<p>{line}</p>" for line in GOOD_TEXT.splitlines())


def page(body: str) -> str:
    return (
        "<!DOCTYPE html><html><head><title>Doc</title></head><body>"
        '<nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li></ul></nav>'
        f"<main><article>{body}</article></main>"
        "<footer><p>Copyright 2024 Example Org. All rights reserved.</p></footer></body></html>"
    )


def extract(tmp_path, html: str, **config: object) -> str:
    path = tmp_path / "page.html"
    path.write_text(html)
    (doc,) = read_documents(str(path), ReaderConfig(**config))
    assert isinstance(doc, Document)
    return doc.text


def test_listing_is_a_fenced_block_with_its_whitespace(tmp_path) -> None:
    html = page(
        '<h2 id="flow"><a class="header" href="#flow">Control Flow</a></h2>'
        f'{PROSE}<div class="example-wrap"><pre><code>{HIGHLIGHTED}</code></pre>'
        '<a class="test-arrow" href="https://play.example/?code=x">Run</a></div>'
        "<p>Try running this code and look at the output it prints on the screen.</p>"
    )
    text = extract(tmp_path, html)
    assert f"```\n{LISTING}\n```" in text  # blank line and indentation kept, spans gone
    assert text.startswith("## Control Flow\n")  # the anchored heading is kept and marked
    assert "\nRun\n" not in text  # the listing's toolbar link is not text
    assert "About us" not in text and "All rights reserved" not in text


def test_listing_inside_a_definition_list_is_not_flattened(tmp_path) -> None:
    sphinx = (
        '<dl class="py function"><dt class="sig"><span class="sig-name">all</span>'
        '(<em>iterable</em>)<a class="headerlink" href="#all">¶</a></dt>'
        "<dd><p>Return True if all elements of the iterable are true. Equivalent to:</p>"
        '<div class="highlight"><pre><span class="k">def</span> all(iterable):\n'
        "    for element in iterable:\n        if not element:\n"
        "            return False\n    return True\n</pre></div></dd></dl>"
    )
    text = extract(tmp_path, page(PROSE + sphinx))
    assert "```\ndef all(iterable):\n    for element in iterable:\n" in text
    assert "¶" not in text  # Sphinx's permalinks are dropped


def test_headings_lists_and_inline_code_are_marked(tmp_path) -> None:
    html = page(
        f"<h1>Guide</h1>{PROSE}<h3>Options</h3>"
        "<ul><li>The <code>--fast</code> option skips the slow checks entirely.</li>"
        "<li>The <code>--quiet</code> option prints nothing at all to the screen.</li></ul>"
    )
    text = extract(tmp_path, html)
    assert text.startswith("# Guide\n")
    assert "\n### Options\n" in text
    assert "- The `--fast` option skips the slow checks entirely." in text


def test_plain_text_option_keeps_the_old_extraction(tmp_path) -> None:
    html = page(f"<h1>Guide</h1>{PROSE}<pre>x = 1\n\ny = 2</pre>")
    text = extract(tmp_path, html, html_format="text")
    assert "```" not in text and "#" not in text
    assert "canals also made it possible" in text


def test_a_listing_in_the_navigation_stays_out(tmp_path) -> None:
    html = page(PROSE).replace(
        "<nav>", '<nav><pre>pip install navigation-only-package</pre><a href="/x">Menu</a>'
    )
    text = extract(tmp_path, html)
    assert "navigation-only-package" not in text and "```" not in text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("smeltcodeblock000000 x = 1 smeltcodeend", ["", "```", "x = 1", "```", ""]),
        (
            "- Example: smeltcodeblock000000 x = 1 smeltcodeend done",
            ["- Example:", "", "```", "x = 1", "```", "", "done"],
        ),
    ],
)
def test_placeholders_become_fences_wherever_they_land(line: str, expected: list[str]) -> None:
    assert restore_code(line, ["x = 1"]).split("\n") == expected


def test_a_listing_holding_a_fence_gets_a_longer_one() -> None:
    listing = "```\nnested\n```"
    assert restore_code("smeltcodeblock000000 nested smeltcodeend", [listing]).split("\n")[1] == (
        "````"
    )
