"""The built-in engine on small reports: cell errors, warnings, output options, refusals.

Each render starts a kernel (a few seconds), so each report here tests several things at once.
"""

from __future__ import annotations

import base64
import re
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from pypdf import PdfReader

from outcomes.errors import InputError
from outcomes.report import RenderError, journal_table, render
from outcomes.report.qmd import parse_qmd

_cell_markdown = sys.modules["outcomes.report.render"]._cell_markdown
_renumber_shown = sys.modules["outcomes.report.render"]._renumber_shown

FENCE = "```"


def write(tmp_path: Path, text: str, name: str = "doc.qmd") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).replace("~~~", FENCE), encoding="utf-8")
    return path


def test_cell_error_names_the_file_and_the_failing_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ---
        title: Broken
        ---

        ~~~{python}
        def ratio(a, b):
            return a / b
        ~~~

        ~~~{python}
        #| label: compute
        x = 1
        y = ratio(x, 0)
        ~~~
        """,
    )
    with pytest.raises(RenderError) as info:
        render(path, to="html", out_dir=tmp_path / "out", engine="builtin")
    # line 13 is `y = ratio(x, 0)`: the failing statement of the failing cell
    assert str(info.value).startswith(f"{path}:13: cell failed: ZeroDivisionError")
    assert not (tmp_path / "out" / "doc.html").exists()


@pytest.mark.slow  # a second kernel start; the cell-error path above is the same code
def test_inline_expression_error_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "First line.\n\nThe value is `{python} undefined_name + 1`.\n")
    with pytest.raises(RenderError) as info:
        render(path, to="html", out_dir=tmp_path, engine="builtin")
    assert str(info.value).startswith(f"{path}:3: inline expression failed: NameError")


OPTIONS_REPORT = """\
---
title: Options
execute:
  echo: false
---

~~~{python}
import warnings
warnings.warn("first careful")
~~~

~~~{python}
#| warning: false
warnings.warn("second quiet")
~~~

~~~{python}
#| output: asis
print("**bold words**")
~~~

~~~{python}
#| include: false
print("included nowhere")
~~~

~~~{python}
#| eval: false
#| echo: true
raise SystemExit("never run")
~~~

~~~{python}
6 * 7
~~~

Value `{python} 2 + 2`, and a `{python} "string"`.
"""


def test_warnings_are_captured_not_printed_and_output_options_hold(tmp_path: Path) -> None:
    path = write(tmp_path, OPTIONS_REPORT)
    result = render(path, to="html", out_dir=tmp_path, engine="builtin", keep_intermediate=True)
    assert [(w.line, w.source) for w in result.warnings] == [(7, "cell")]
    assert "Value 4, and a string." in (tmp_path / "doc_files" / "report.md").read_text()
    assert "UserWarning: first careful" in result.warnings[0].text
    html = result["html"].read_text(encoding="utf-8")
    for leaked in ("careful", "quiet", "UserWarning", "included nowhere"):
        assert leaked not in html
    assert "<strong>bold words</strong>" in html  # output: asis is Markdown
    assert "never run" in html  # eval: false, echo: true shows the code
    assert "42" in html  # a plain value is shown as output
    assert "Value 4, and a string." in html


@pytest.mark.slow  # renders the options report a second time
def test_on_warning_error_fails_the_render(tmp_path: Path) -> None:
    path = write(tmp_path, OPTIONS_REPORT)
    with pytest.raises(RenderError, match=r"doc.qmd:7: warning while rendering: .*first careful"):
        render(path, to="html", out_dir=tmp_path, engine="builtin", on_warning="error")


@pytest.mark.parametrize(
    ("output", "words"),
    [
        # what a bare DataFrame shows: HTML and plain text
        ({"text/html": "<table></table>", "text/plain": "   a"}, "journal_table"),
        # a figure in a cell without a fig- label
        ({"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}, "cell labelled 'fig-...'"),
        ({"application/json": {"a": 1}, "text/plain": "{}"}, "application/json"),
    ],
    ids=["html-output", "unlabelled-figure", "json-output"],
)
def test_refuses_outputs_other_formats_cannot_carry(
    tmp_path: Path, output: dict, words: str
) -> None:
    # what the kernel would return for the cell, built directly (no kernel needed)
    path = tmp_path / "doc.qmd"
    path.write_text(f"Intro.\n\n{FENCE}{{python}}\nx\n{FENCE}\n", encoding="utf-8")
    doc = parse_qmd(path)
    outputs = [nbformat.v4.new_output("display_data", data=output)]
    with pytest.raises(RenderError, match=words) as info:
        _cell_markdown(doc, doc.cells[0], outputs, tmp_path)
    assert info.value.line == 3


def test_numbered_cells_must_show_what_their_label_promises(tmp_path: Path) -> None:
    path = tmp_path / "doc.qmd"
    path.write_text(
        f"{FENCE}{{python}}\n#| label: fig-a\n#| fig-cap: c\n#| fig-alt: a\n1\n{FENCE}\n\n"
        f"{FENCE}{{python}}\n#| label: tbl-b\n#| tbl-cap: c\n1\n{FENCE}\n",
        encoding="utf-8",
    )
    doc = parse_qmd(path)
    fig, tbl = doc.cells
    text = [nbformat.v4.new_output("execute_result", data={"text/plain": "1"})]
    with pytest.raises(RenderError, match="'fig-a' showed no figure"):
        _cell_markdown(doc, fig, text, tmp_path)
    with pytest.raises(RenderError, match="'tbl-b' showed no Markdown table"):
        _cell_markdown(doc, tbl, text, tmp_path)
    captioned = [
        nbformat.v4.new_output(
            "display_data", data={"text/markdown": "| a |\n|--|\n| 1 |\n\n: cap"}
        )
    ]
    with pytest.raises(RenderError, match="already has a caption"):
        _cell_markdown(doc, tbl, captioned, tmp_path)
    table = [nbformat.v4.new_output("display_data", data={"text/markdown": "| a |\n|--|\n| 1 |"})]
    assert _cell_markdown(doc, tbl, table, tmp_path).endswith(": **Table 1.** c {#tbl-b}")
    noted = journal_table(pd.DataFrame({"a": [1]}), note="A note.")._repr_markdown_()
    shown = [nbformat.v4.new_output("display_data", data={"text/markdown": noted})]
    markdown = _cell_markdown(doc, tbl, shown, tmp_path)
    assert markdown.index("| 1 |") < markdown.index("{#tbl-b}") < markdown.index("A note.")
    extra = [nbformat.v4.new_output("display_data", data={"text/markdown": noted + "\nMore."})]
    with pytest.raises(RenderError, match="exactly one Markdown pipe table"):
        _cell_markdown(doc, tbl, extra, tmp_path)


def test_numbered_cell_that_shows_nothing_is_left_out_and_numbers_close_up(
    tmp_path: Path,
) -> None:
    cells = "".join(
        f"{FENCE}{{python}}\n#| label: tbl-{x}\n#| tbl-cap: c{x}\n1\n{FENCE}\n\n" for x in "abc"
    )
    path = tmp_path / "doc.qmd"
    path.write_text("See @tbl-a and @tbl-c.\n\n" + cells, encoding="utf-8")
    doc = parse_qmd(path)
    a, b, c = doc.cells
    table = [nbformat.v4.new_output("display_data", data={"text/markdown": "| a |\n|--|\n| 1 |"})]
    outputs = {id(a): table, id(b): [], id(c): table}
    _renumber_shown(doc, outputs)
    assert doc.numbers == {"tbl-a": 1, "tbl-c": 2}
    assert "Table" not in _cell_markdown(doc, b, [], tmp_path)  # no caption, no number
    assert _cell_markdown(doc, c, table, tmp_path).endswith(": **Table 2.** cc {#tbl-c}")
    # the Markdown may not refer to a table this render did not show
    path.write_text("See @tbl-b.\n\n" + cells, encoding="utf-8")
    doc = parse_qmd(path)
    a, b, c = doc.cells
    with pytest.raises(RenderError, match="@tbl-b refers to a cell that showed nothing"):
        _renumber_shown(doc, {id(a): table, id(b): [], id(c): table})


def test_markdown_only_report_images_next_to_it_and_pandoc_warnings(tmp_path: Path) -> None:
    # no code: no kernel is started; a picture beside the report is found, a missing one is
    # reported as a pandoc warning instead of silently dropped
    report_dir = tmp_path / "reports"
    (report_dir / "img").mkdir(parents=True)
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    )
    (report_dir / "img" / "dot.png").write_bytes(png)
    path = report_dir / "notes.qmd"
    path.write_text(
        "---\ntitle: Notes\n---\n\nA picture: ![a dot](img/dot.png)\n\n"
        "Gone: ![gone](img/gone.png)\n",
        encoding="utf-8",
    )
    result = render(path, to=("html", "docx"), out_dir=tmp_path / "out", engine="builtin")
    html = result["html"].read_text(encoding="utf-8")
    assert 'src="data:image/png;base64,' in html
    assert [w.source for w in result.warnings] == ["pandoc"] * len(result.warnings)
    assert any("img/gone.png" in w.text for w in result.warnings)
    with zipfile.ZipFile(result["docx"]) as docx:
        assert len([n for n in docx.namelist() if n.startswith("word/media/")]) == 1


def pdf_text(path: Path) -> str:
    """The text of a PDF laid out as on the page (pypdf, pinned in requirements.lock)."""
    return "\n".join(p.extract_text(extraction_mode="layout") for p in PdfReader(path).pages)


def test_long_table_continues_on_the_next_pdf_page(tmp_path: Path) -> None:
    df = pd.DataFrame({"site": [f"Site {i}" for i in range(90)], "n": range(90)})
    path = tmp_path / "long.qmd"
    path.write_text(f"Intro.\n\n{journal_table(df).to_markdown()}\nAfter.\n", encoding="utf-8")
    result = render(path, to="pdf", engine="builtin")
    text = pdf_text(result["pdf"])
    assert [f"Site {i}" for i in range(90)] == re.findall(r"Site \d+", text)
    assert re.search(r"2\s*/\s*2", text)  # a second page, numbered "page / pages"
    assert "After." in text


def test_source_date_epoch_makes_identical_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # without it, Word and PDF carry the time of rendering and differ run to run
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    path = write(tmp_path, "---\ntitle: Same\n---\n\n| a | b |\n|--:|--:|\n| 1 | 2 |\n")
    first = render(path, out_dir=tmp_path / "first", engine="builtin")
    second = render(path, out_dir=tmp_path / "second", engine="builtin")
    for fmt in ("html", "docx", "pdf"):
        assert first[fmt].read_bytes() == second[fmt].read_bytes(), fmt
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH must be whole seconds"):
        render(path, to="pdf", out_dir=tmp_path / "third", engine="builtin")


def test_word_reference_document_does_not_depend_on_the_time_of_rendering() -> None:
    # pandoc stamps its default reference.docx with the current time; two renders on either
    # side of a two-second boundary made different Word files despite SOURCE_DATE_EPOCH
    import io
    import zipfile

    import pypandoc

    from outcomes.report import _assets

    docx = zipfile.ZipFile(io.BytesIO(_assets.reference_docx(pypandoc.get_pandoc_path())))
    assert {item.date_time for item in docx.infolist()} == {(1980, 1, 1, 0, 0, 0)}
