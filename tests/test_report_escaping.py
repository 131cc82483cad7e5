"""report.md carries no raw HTML from labels: Markdown viewers render raw HTML, so an
optimizer label such as "<script>alert(1)</script>" must reach report.md escaped, as it
reaches report.html."""

from __future__ import annotations

import pandas as pd

from optbench.report.render import Document

LABEL = "<script>alert(1)</script> & [x]"


def test_markdown_and_html_escape_labels():
    """Headings, paragraphs, list items, table cells and figure captions of a label with
    HTML in it come out escaped in Markdown and in HTML."""
    doc = Document()
    doc.heading(2, LABEL)
    doc.para(LABEL)
    doc.blocks.append(("ul", [LABEL]))
    doc.table(pd.DataFrame({"variant": [LABEL]}))
    doc.figure("figures/a.png", b"\x89PNG", LABEL)
    md, page = doc.markdown(), doc.html("t")
    assert "<script>" not in md and "<script>alert" not in page
    assert md.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 6
    assert "![&lt;script&gt;alert(1)&lt;/script&gt; &amp; \\[x\\]](figures/a.png)" in md
