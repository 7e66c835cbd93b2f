"""Render reports/_example.qmd to HTML, Word and PDF, and read the results back.

The report is rendered once (built-in engine, with parameters different from its defaults);
every test then checks one thing in one format: the numbers printed equal the data, every figure
has alt text and a caption, cross references point at the figure and table, and no cell error or
warning text reaches the report.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pypdf import PdfReader

from outcomes.report import format_ci, render
from outcomes.report.qmd import parse_qmd

EXAMPLE = Path(__file__).resolve().parents[1] / "reports" / "_example.qmd"
PARAMS = {"n_per_arm": 30, "seed": 7}
MINUS = "\N{MINUS SIGN}"
LEAKS = ("Traceback", "Warning", "Error", "_outcomes", "stderr")
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
NOTE = "CI, confidence interval. p: one-sample t-test of no change."


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("example")
    return render(EXAMPLE, params=PARAMS, out_dir=out, engine="builtin", keep_intermediate=True)


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    """The report's own data, computed here by running its parameter and data cells."""
    doc = parse_qmd(EXAMPLE)
    cells = {c.label: c for c in doc.cells}
    namespace: dict[str, Any] = {}
    exec(next(c for c in doc.cells if c.is_parameters).code, namespace)
    namespace.update(PARAMS)
    exec(cells["data"].code, namespace)
    return {
        "summary": namespace["summary"],
        "best": namespace["best"],
        "fig": cells["fig-trajectory"].options,
        "tbl": cells["tbl-change"].options,
    }


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text.replace(MINUS, "-"))]


def check_row(cells: list[str], row: pd.Series) -> None:
    """One printed table row against one row of the data (printed to 2 dp, p to 3 dp)."""
    modality, n, interval, p = cells
    assert modality == row["term"]
    assert int(n) == row["n"]
    est, low, high = numbers(interval)
    assert est == pytest.approx(row["estimate"], abs=0.005)
    assert low == pytest.approx(row["conf_low"], abs=0.005)
    assert high == pytest.approx(row["conf_high"], abs=0.005)
    if row["p_value"] < 0.001:
        assert p == "<0.001"
    else:
        assert float(p) == pytest.approx(row["p_value"], abs=0.0005)


class Page(HTMLParser):
    """Collects what a reader sees and what the checks need from an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []
        self.figcaptions: list[str] = []
        self.captions: list[str] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._stack: list[str] = []
        self._href: str | None = None
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        if tag == "img":
            self.images.append(attributes)
            return
        if tag == "a":
            self._href = attributes.get("href")
        if tag == "tr":
            self.rows.append([])
        if tag in ("figcaption", "caption", "td", "th", "a"):
            self._buffer = []
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        text = " ".join("".join(self._buffer).split())
        if tag == "figcaption":
            self.figcaptions.append(text)
        elif tag == "caption":
            self.captions.append(text)
        elif tag in ("td", "th"):
            self.rows[-1].append(text)
        elif tag == "a" and self._href:
            self.links.append((self._href, text))
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if "style" in self._stack or "script" in self._stack:
            return
        self._buffer.append(data)
        self.text.append(data)


@pytest.fixture(scope="module")
def page(rendered: Any) -> Page:
    parser = Page()
    parser.feed(rendered["html"].read_text(encoding="utf-8"))
    return parser


def test_render_returns_the_three_files_and_no_warnings(rendered: Any) -> None:
    assert set(rendered) == {"html", "pdf", "docx"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in rendered.values())
    assert rendered.engine == "builtin"
    assert rendered.warnings == []
    assert rendered["pdf"].read_bytes().startswith(b"%PDF")


def test_html_is_self_contained(rendered: Any, page: Page) -> None:
    assert [str(i["src"]).startswith("data:image/png;base64,") for i in page.images] == [True]
    html = rendered["html"].read_text(encoding="utf-8")
    assert '<link rel="stylesheet"' not in html
    assert (
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"' in html or '<html lang="en"' in html
    )


def test_html_figure_has_alt_text_caption_and_anchor(page: Page, expected: dict) -> None:
    assert page.images[0]["alt"] == expected["fig"]["fig-alt"]
    assert page.figcaptions == [f"Figure 1. {expected['fig']['fig-cap']}"]
    assert {"fig-trajectory", "tbl-change"} <= page.ids
    assert ("#fig-trajectory", "Figure 1") in page.links
    assert ("#tbl-change", "Table 1") in page.links


def test_html_table_prints_the_data(page: Page, expected: dict) -> None:
    summary = expected["summary"]
    assert page.captions == [f"Table 1. {expected['tbl']['tbl-cap']}"]
    assert NOTE in " ".join("".join(page.text).split())
    header, *body = page.rows
    assert header == ["Modality", "n", "Mean change (95% CI)", "p"]
    assert len(body) == len(summary)
    for cells, (_, row) in zip(body, summary.iterrows(), strict=True):
        check_row(cells, row)


def test_html_inline_text_uses_parameters_and_data(page: Page, expected: dict) -> None:
    text = " ".join("".join(page.text).split())
    best = expected["best"]
    interval = format_ci(best["estimate"], best["conf_low"], best["conf_high"])
    assert "We simulated 120 treated units, 30 per modality" in text
    assert f"fell fastest with {best['term']}, whose mean change at week 12 was {interval}" in text
    assert "seed = 7, units per modality = 30" in text  # the echoed cell's printed output
    assert 'print(f"seed = {seed}' in text  # its code, shown because echo: true
    assert "rng = np.random" not in text  # hidden code stays hidden
    assert not [w for w in LEAKS if w in text]


def test_docx_figure_alt_text_captions_links_and_numbers(rendered: Any, expected: dict) -> None:
    with zipfile.ZipFile(rendered["docx"]) as docx:
        root = ET.fromstring(docx.read("word/document.xml"))
        styles = ET.fromstring(docx.read("word/styles.xml"))
        media = [n for n in docx.namelist() if n.startswith("word/media/")]
    assert len(media) == 1
    descriptions = [e.get("descr") for e in root.iter() if e.tag.endswith("}docPr")]
    assert descriptions == [expected["fig"]["fig-alt"]]
    paragraphs = ["".join(t.text or "" for t in p.iter(f"{W}t")) for p in root.iter(f"{W}p")]
    notes = [
        "".join(t.text or "" for t in p.iter(f"{W}t"))
        for p in root.iter(f"{W}p")
        if (p.find(f"{W}pPr/{W}pStyle") is not None)
        and p.find(f"{W}pPr/{W}pStyle").get(f"{W}val") == "TableNote"  # type: ignore[union-attr]
    ]
    assert notes == [NOTE]
    assert f"Figure 1. {expected['fig']['fig-cap']}" in paragraphs
    assert f"Table 1. {expected['tbl']['tbl-cap']}" in paragraphs
    anchors = {e.get(f"{W}anchor") for e in root.iter(f"{W}hyperlink")}
    bookmarks = {e.get(f"{W}name") for e in root.iter(f"{W}bookmarkStart")}
    assert {"fig-trajectory", "tbl-change"} <= anchors & bookmarks
    rows = [
        ["".join(t.text or "" for t in c.iter(f"{W}t")) for c in r.iter(f"{W}tc")]
        for r in root.iter(f"{W}tr")
    ]
    assert rows[0] == ["Modality", "n", "Mean change (95% CI)", "p"]
    for cells, (_, row) in zip(rows[1:], expected["summary"].iterrows(), strict=True):
        check_row(cells, row)
    text = " ".join(paragraphs)
    assert "We simulated 120 treated units" in text
    # the reference document's journal styles reached the file: rules above and below tables,
    # black bold headings (no theme colour, which Word would prefer)
    style = {s.get(f"{W}styleId"): s for s in styles.iter(f"{W}style")}
    borders = style["Table"].find(f"{W}tblPr/{W}tblBorders")
    assert borders is not None
    assert [b.get(f"{W}val") for b in borders] == ["single", "single"]
    heading = style["Heading2"].find(f"{W}rPr")
    assert heading is not None and heading.find(f"{W}b") is not None
    colour = heading.find(f"{W}color")
    assert colour is not None and colour.attrib == {f"{W}val": "000000"}
    assert not [w for w in LEAKS if w in text]


@pytest.fixture(scope="module")
def pdf_text(rendered: Any) -> str:
    """The PDF's text laid out as on the page (pypdf, pinned in requirements.lock)."""
    reader = PdfReader(rendered["pdf"])
    return "\n".join(p.extract_text(extraction_mode="layout") for p in reader.pages)


def test_pdf_captions_references_and_numbers(pdf_text: str, expected: dict) -> None:
    flat = " ".join(pdf_text.split())
    assert f"Figure 1. {expected['fig']['fig-cap']}" in flat
    assert f"Table 1. {expected['tbl']['tbl-cap']}" in flat
    assert "(Table 1). Figure 1 shows" in flat
    assert NOTE in flat
    lines = [ln.split() for ln in pdf_text.splitlines()]
    for _, row in expected["summary"].iterrows():
        printed = next(ln for ln in lines if ln and ln[0] == row["term"])
        check_row([printed[0], printed[1], " ".join(printed[2:-1]), printed[-1]], row)
    assert "We simulated 120 treated units" in flat
    assert not [w for w in LEAKS if w in flat]


def test_pdf_image_has_alt_text_and_the_pdf_is_tagged(rendered: Any, expected: dict) -> None:
    markup = (rendered["pdf"].parent / "_example_files" / "report.typ").read_text()
    alt = expected["fig"]["fig-alt"]
    assert f'image("figures/fig-trajectory.png", alt: "{alt}"' in markup
    reader = PdfReader(rendered["pdf"])
    root = reader.trailer["/Root"]
    # a tagged PDF (what pdfinfo reports as "Tagged: yes"): the alt text lives in the tags
    assert bool(root["/MarkInfo"]["/Marked"])
    assert "/StructTreeRoot" in root
    assert reader.metadata is not None and reader.metadata.title == "Example outcomes report"


@pytest.mark.skipif(shutil.which("quarto") is None, reason="the quarto command is not installed")
def test_quarto_cli_renders_the_same_report(tmp_path: Path, expected: dict) -> None:
    result = render(EXAMPLE, params=PARAMS, out_dir=tmp_path, engine="quarto", to="html")
    assert result.engine == "quarto"
    parser = Page()
    parser.feed(result["html"].read_text(encoding="utf-8"))
    text = " ".join("".join(parser.text).split())
    assert "We simulated 120 treated units, 30 per modality" in text
    assert any(i.get("alt") == expected["fig"]["fig-alt"] for i in parser.images)
