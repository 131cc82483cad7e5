"""The report as a document (headings, paragraphs, bullet lists, tables, figures) and its
two renderings: Markdown (figures as links to the PNG files) and one self-contained HTML
page (figures embedded as base64 PNG data URIs, inline CSS and script, no external URL).

The page's template, style sheet and script are package data (static/page.html,
static/report.css, static/report.js). The script marks each figure rendered or not
(data-ok="1"/"0") when the page loads and shows a banner when any failed:
scripts/check_report_html.py reads the marks, a reader sees the banner.
"""

from __future__ import annotations

import base64
import functools
import html
import math
import re
from importlib.resources import files
from string import Template
from typing import Any

import numpy as np
import pandas as pd


def fmt(v, digits: int = 4) -> str:
    """A table cell: numbers to `digits` significant digits (integral floats as
    integers), NaN/None as "n/a", inf as "never" (a target not reached)."""
    if v is None or v is pd.NA:
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "never" if v > 0 else "-inf"
        return str(int(v)) if v == int(v) and abs(v) < 1e9 else f"{v:.{digits}g}"
    return str(v)


def display(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """`df`'s `columns` (name -> shown header; names `df` lacks are left out), every
    cell formatted as text by `fmt`."""
    return pd.DataFrame({head: [fmt(x) for x in df[col]] for col, head in columns.items() if col in df})


def _md_text(x) -> str:
    """Text for Markdown with HTML's special characters escaped: Markdown passes raw HTML
    through, so a label such as "<script>" must not reach a viewer as markup."""
    return str(x).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(x) -> str:
    return _md_text(x).replace("|", "\\|").replace("\n", " ")


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_\n"
    lines = ["| " + " | ".join(map(_md_cell, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


_NUMBER = re.compile(r"^(-?[0-9.]+(e[-+]?[0-9]+)?|n/a|never|-inf)$")


def _html_cell(x) -> str:
    # Numbers right-aligned (digits line up), text left-aligned.
    return f"<td{' class=num' if _NUMBER.match(str(x)) else ''}>{html.escape(str(x))}</td>"


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p class='none'>(none)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(map(_html_cell, row)) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@functools.cache
def _static(name: str) -> str:
    return files("optbench.report").joinpath("static", name).read_text(encoding="utf-8")


class Document:
    """The report as a list of blocks, (kind, content) with kind "h" (level, text), "p"
    text, "ul" list of texts, "table" DataFrame of text cells or "fig" (path relative to
    the report, PNG bytes, caption); rendered to Markdown and to HTML alike."""

    def __init__(self):
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, level: int, text: str):
        """A heading of `level` (1 = the title)."""
        self.blocks.append(("h", (level, text)))

    def para(self, text: str):
        """A paragraph of plain text."""
        self.blocks.append(("p", text))

    def table(self, df: pd.DataFrame):
        """A table (cells already formatted as text)."""
        self.blocks.append(("table", df))

    def figure(self, rel_path: str, png: bytes, caption: str):
        """A figure: its path relative to the report, the PNG bytes, a caption."""
        self.blocks.append(("fig", (rel_path, png, caption)))

    def markdown(self) -> str:
        """The document as Markdown text; figures link to their PNG files."""
        out = []
        for kind, b in self.blocks:
            if kind == "h":
                out.append("#" * b[0] + " " + _md_text(b[1]) + "\n")
            elif kind == "p":
                out.append(_md_text(b) + "\n")
            elif kind == "ul":
                out.append("".join(f"- {_md_text(x)}\n" for x in b))
            elif kind == "table":
                out.append(_md_table(b))
            else:
                caption = _md_text(b[2]).replace("[", "\\[").replace("]", "\\]")
                out.append(f"![{caption}]({b[0]})\n\n_{caption}_\n")
        return "\n".join(out)

    def html(self, title: str) -> str:
        """The document as one self-contained HTML page titled `title`."""
        parts = []
        for kind, b in self.blocks:
            if kind == "h":
                parts.append(f"<h{b[0]}>{html.escape(b[1])}</h{b[0]}>")
            elif kind == "p":
                parts.append(f"<p>{html.escape(b)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in b) + "</ul>")
            elif kind == "table":
                parts.append(f"<div class='scroll'>{_html_table(b)}</div>")
            else:
                data = base64.b64encode(b[1]).decode("ascii")
                parts.append(f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(b[2])}\">"
                             f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
        return Template(_static("page.html")).substitute(title=html.escape(title), css=_static("report.css"),
                                                         script=_static("report.js"), body="\n".join(parts))
