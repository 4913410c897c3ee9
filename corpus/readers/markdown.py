"""HTML main content as Markdown, with code listings kept verbatim in fenced blocks.

trafilatura picks the main content, but renders code badly for a corpus: a `<pre>` inside a
definition list (Sphinx's API pages) comes out as one flattened line, blank lines inside code
are dropped, and its Markdown writer escapes `_`, `*` and `>` in prose (`async\\_iterable`).
So the page is prepared before trafilatura sees it, and rendered after:

1. every outermost `<pre>` is cut out of the page, its text kept exactly as written, and
   replaced by a one-word placeholder paragraph; trafilatura then decides, as for any
   paragraph, whether that spot belongs to the main content (a listing in a sidebar goes with
   the sidebar);
2. heading anchors (`<h2><a href="#x">Title</a></h2>`, mdBook and Sphinx) are unwrapped so a
   heading is not mistaken for a navigation link, and Sphinx's `¶` permalinks are dropped;
3. trafilatura's own plain-text writer renders the kept tree, after headings get their `#`
   marks and inline code its backticks (nothing is escaped);
4. each surviving placeholder becomes a fenced block holding the original listing.

Only the structure Markdown needs is added: `#` headings, `- ` list items (trafilatura's),
inline code in backticks and fenced code blocks; emphasis and links stay plain text.
"""

from __future__ import annotations

import re

import trafilatura
from lxml import etree
from lxml.html import HtmlElement
from trafilatura.xml import xmltotxt

PLACEHOLDER = "smeltcodeblock{:06d} {} smeltcodeend"
PLACEHOLDER_RE = re.compile(r"smeltcodeblock(\d{6}).*?smeltcodeend")
FENCE = "```"
CONTROL_TAGS = frozenset({"a", "button"})
PERMALINK_TEXT = frozenset({"¶", "#", "§", "🔗", ""})
# trafilatura starts a list item whose first child is a block on a line of its own ("- \n")
EMPTY_ITEM_RE = re.compile(r"(?m)^( *)- *\n(?=\S)")


def protect_code(tree: HtmlElement) -> list[str]:
    """Replace every outermost `<pre>` with a placeholder paragraph; the listings, in order."""
    listings: list[str] = []
    for pre in list(tree.iter("pre")):
        if any(parent.tag == "pre" for parent in pre.iterancestors()):
            continue
        code = pre.text_content().strip("\n")
        if not code.strip():
            continue
        drop_code_controls(pre)
        placeholder = etree.Element("p")
        placeholder.text = PLACEHOLDER.format(len(listings), " ".join(code.split()))
        placeholder.tail = pre.tail
        pre.getparent().replace(pre, placeholder)
        listings.append(code)
    return listings


def drop_code_controls(pre: HtmlElement) -> None:
    """Short links and buttons right beside a listing ("Run", "Copy"): its toolbar, not text."""
    for siblings in (pre.itersiblings(), pre.itersiblings(preceding=True)):
        controls = []
        for sibling in siblings:  # stops at the first sibling that is not a control
            if sibling.tag not in CONTROL_TAGS or len(sibling.text_content().strip()) > 20:
                break
            controls.append(sibling)
            if (sibling.tail or "").strip():
                break
        for control in controls:
            control.drop_tree()


def unwrap_heading_anchors(tree: HtmlElement) -> None:
    """Heading text out of self-links; permalink marks (Sphinx's `¶`) removed everywhere."""
    for anchor in tree.xpath("//a[contains(concat(' ', @class, ' '), ' headerlink ')]"):
        anchor.drop_tree()
    for heading in tree.xpath("//h1|//h2|//h3|//h4|//h5|//h6"):
        for anchor in list(heading.iter("a")):
            if not (anchor.get("href") or "").startswith("#"):
                continue
            if anchor.text_content().strip() in PERMALINK_TEXT:
                anchor.drop_tree()
            else:
                anchor.drop_tag()


def mark_structure(body: etree._Element) -> None:
    """`#` marks on headings and backticks around inline code, in trafilatura's output tree."""
    for head in body.iter("head"):
        rend = head.get("rend") or ""
        level = int(rend[1:]) if re.fullmatch(r"h[1-6]", rend) else 2
        head.text = f"{'#' * level} {head.text or ''}"
    for code in body.iter("code"):
        if len(code) == 0 and code.text and "\n" not in code.text:
            code.text = f"`{code.text}`"


def restore_code(text: str, listings: list[str]) -> str:
    """Each placeholder line -> a fenced block with its listing (text around it kept)."""
    if not listings:
        return text
    out: list[str] = []
    for line in text.split("\n"):
        if "smeltcodeblock" not in line:
            out.append(line)
            continue
        position = 0
        for match in PLACEHOLDER_RE.finditer(line):
            before = line[position : match.start()].strip()
            if before:
                out.append(before)
            out.extend(_fenced(listings[int(match.group(1))]))
            position = match.end()
        after = line[position:].strip()
        if after:
            out.append(after)
    return "\n".join(out)


def _fenced(code: str) -> list[str]:
    fence = FENCE
    while fence in code:
        fence += "`"
    return ["", fence, code, fence, ""]


def extract_markdown(html: str, *, url: str | None, fast: bool, favor_precision: bool) -> str:
    """Main content of a page as Markdown ('' when there is none)."""
    tree = trafilatura.load_html(html)
    if tree is None:
        return ""
    listings = protect_code(tree)
    unwrap_heading_anchors(tree)
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        fast=fast,
        favor_precision=favor_precision,
        include_comments=False,
        include_tables=True,
        include_formatting=True,
        deduplicate=False,
    )
    if document is None or document.body is None:
        return ""
    mark_structure(document.body)
    text = EMPTY_ITEM_RE.sub(r"\1- ", xmltotxt(document.body, include_formatting=False))
    return restore_code(text, listings).strip()
