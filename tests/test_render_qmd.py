"""The .qmd reader: what it accepts, and that it refuses the rest with file and line.

Nothing here starts a kernel.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from outcomes.errors import InputError
from outcomes.report import RenderError, render
from outcomes.report.qmd import MarkdownChunk, parse_qmd, substitute_markdown

GOOD = """\
---
title: "T"
author: [A, {name: B}]
date: 2026-02-03
execute:
  echo: false
format:
  html: default
  typst:
    toc: true
---

```{python}
#| tags: [parameters]
n = 3
label: str = "x"
```

Text with `{python} n + 1` and a ref to @fig-a and @Tbl-b, an email a@b.org, `@fig-a` in code.

```python
@fig-a inside a display-only block is left alone
```

```{python}
#| label: fig-a
#| fig-cap: "Cap"
#| fig-alt: "Alt"
1
```

```{python}
#| label: tbl-b
#| tbl-cap: Tab
#| echo: true
2
```
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.qmd"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_parses_metadata_cells_numbers_and_options(tmp_path: Path) -> None:
    doc = parse_qmd(write(tmp_path, GOOD))
    assert doc.meta["title"] == "T"
    assert doc.meta["author"] == ["A", "B"]
    assert doc.meta["date"] == "2026-02-03"
    assert doc.format_options["typst"] == {"toc": True}
    assert doc.format_options["html"] == {}
    assert doc.numbers == {"fig-a": 1, "tbl-b": 1}
    assert doc.parameter_names() == ["n", "label"]
    fig, tbl = doc.cells[1], doc.cells[2]
    assert fig.options["echo"] is False  # document default
    assert tbl.options["echo"] is True  # cell option wins
    assert fig.line == 25 and fig.body_line == 26  # the ```{python} line, then the first #|
    assert fig.code == "1"


def test_substitutes_inline_values_and_cross_references(tmp_path: Path) -> None:
    doc = parse_qmd(write(tmp_path, GOOD))
    chunk = next(p for p in doc.parts if isinstance(p, MarkdownChunk) and p.inlines)
    assert [e.expr for e in chunk.inlines] == ["n + 1"]
    chunk.inlines[0].value = "4"
    text = substitute_markdown(doc, chunk)
    assert "Text with 4 and a ref to [Figure 1](#fig-a) and [Table 1](#tbl-b)" in text
    assert "a@b.org" in text
    assert "`@fig-a` in code" in text
    assert "@fig-a inside a display-only block" in text


REFUSED = [
    # (document, line, words in the message)
    ("---\nparams:\n  n: 1\n---\n", 2, "parameters"),
    ("---\nbibliography: refs.bib\n---\n", 2, "'bibliography' is not supported"),
    ("---\nformat: pdf\n---\n", 2, "typst"),
    ("---\ntitle: [a\n---\n", 2, "not valid YAML"),
    ("text\n\n```{r}\n1\n```\n", 3, "only {python} cells"),
    ("```{python echo=FALSE}\n1\n```\n", 1, "#| key: value"),
    ("```{=html}\n<b>x</b>\n```\n", 1, "raw"),
    ("```{python}\n1\n", 1, "never closed"),
    ("```{python}\n#| fig-width: 4\n1\n```\n", 2, "'fig-width' is not supported"),
    ("```{python}\n#| echo: fenced\n1\n```\n", 2, "true or false"),
    ("```{python}\nx = 1\n#| echo: false\n```\n", 3, "must come first"),
    ("```{python}\n#| fig-cap: c\n1\n```\n", 2, "needs a cell label 'fig-...'"),
    ("```{python}\n#| label: fig-x\n#| fig-cap: c\n1\n```\n", 2, "needs 'fig-alt'"),
    ("```{python}\n#| label: tbl-x\n1\n```\n", 2, "needs 'tbl-cap'"),
    (
        "```{python}\n#| label: tbl-x\n#| tbl-cap: c\n#| include: false\n1\n```\n",
        2,
        "must run and be shown",
    ),
    ("```{python}\n#| label: sec-x\n1\n```\n", 2, "fig- and tbl-"),
    ("```{python}\n#| label: a\n1\n```\n```{python}\n#| label: a\n2\n```\n", 5, "used twice"),
    ("```{python}\n1 +\n```\n", 2, "syntax error"),
    ("a\n\n::: {.callout-note}\nx\n:::\n", 3, "fenced divs"),
    ("a {{< pagebreak >}}\n", 1, "shortcodes"),
    ("![x](a.png){#fig-x}\n", 1, "labels in Markdown"),
    ("# Intro {#sec-intro}\n", 1, "labels in Markdown"),
    ("see @fig-nothing here\n", 1, "no cell has label 'fig-nothing'"),
    ("see @sec-intro\n", 1, "only figure and table references"),
    ("as shown by @smith2020\n", 1, "citation"),
    ("as shown [@fig-x]\n", 1, "bracketed"),
    ("value `{r} 1+1`\n", 1, "inline {r}"),
    ("value `{python} 1 +`\n", 1, "not a Python expression"),
    (
        "```{python}\n#| tags: [parameters]\na = 1\n```\n```{python}\n#| tags: [parameters]\n"
        "b = 1\n```\n",
        5,
        "at most one parameters cell",
    ),
]


@pytest.mark.parametrize(("text", "line", "words"), REFUSED)
def test_refuses_unsupported_constructs_with_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RenderError) as info:
        parse_qmd(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert words in str(info.value)


def test_escaped_at_sign_is_not_a_reference(tmp_path: Path) -> None:
    doc = parse_qmd(write(tmp_path, "write to team\\@example, or \\@fig-x\n"))
    assert doc.numbers == {}


def test_render_checks_parameters_before_running_anything(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    with pytest.raises(RenderError, match=r"unknown parameter 'm'.*assigns n, label"):
        render(path, params={"m": 1}, to="html", engine="builtin")
    with pytest.raises(RenderError, match="must be a Python literal"):
        render(path, params={"n": object()}, to="html", engine="builtin")
    bare = tmp_path / "bare.qmd"
    bare.write_text("no parameters cell\n")
    with pytest.raises(RenderError, match="no cell tagged 'parameters'"):
        render(bare, params={"n": 1}, to="html", engine="builtin")


def test_render_rejects_bad_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, "text\n")
    with pytest.raises(InputError, match="formats must be among"):
        render(path, to="pptx")
    with pytest.raises(InputError, match="engine must be"):
        render(path, engine="knitr")
    with pytest.raises(InputError, match="on_warning must be"):
        render(path, on_warning="ignore")
    with pytest.raises(RenderError, match="no such file"):
        render(tmp_path / "missing.qmd")


def test_builtin_engine_names_missing_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "typst" else real(name, *a)
    )
    path = write(tmp_path, "text\n")
    with pytest.raises(InputError, match=r"needs typst: install outcomes\[reports\]"):
        render(path, to="pdf", engine="builtin")


def test_figures_and_tables_are_numbered_separately_in_order(tmp_path: Path) -> None:
    def cell(label: str) -> str:
        kind = label[:3]
        caps = f"#| {kind}-cap: c\n" + ("#| fig-alt: a\n" if kind == "fig" else "")
        return f"```{{python}}\n#| label: {label}\n{caps}1\n```\n\n"

    text = "".join(cell(x) for x in ("tbl-one", "fig-one", "fig-two", "tbl-two", "fig-three"))
    doc = parse_qmd(write(tmp_path, text + "See @fig-three, @Tbl-two and @tbl-one.\n"))
    assert doc.numbers == {"tbl-one": 1, "fig-one": 1, "fig-two": 2, "tbl-two": 2, "fig-three": 3}
    assert substitute_markdown(doc, doc.parts[-1]).strip() == (
        "See [Figure 3](#fig-three), [Table 2](#tbl-two) and [Table 1](#tbl-one)."
    )
