"""Journal tables and the figure theme."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pypandoc
import pytest
from plotnine import aes, geom_point, ggplot

from outcomes import load_dictionary
from outcomes.errors import InputError
from outcomes.report import (
    MODALITY_COLOURS,
    format_ci,
    format_number,
    format_p,
    journal_table,
    scale_colour_modality,
    theme_outcomes,
)

MINUS = "\N{MINUS SIGN}"


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.0, "<0.001"),
        (0.000999, "<0.001"),
        (0.001, "0.001"),
        (0.0314, "0.031"),
        (0.05, "0.050"),
        (0.99, "0.990"),
        (0.9901, ">0.99"),
        (1.0, ">0.99"),
        (float("nan"), "\N{EN DASH}"),
    ],
)
def test_format_p(p: float, text: str) -> None:
    assert format_p(p) == text


def test_format_p_refuses_impossible_values() -> None:
    with pytest.raises(InputError, match="outside"):
        format_p(1.2)


def test_format_number_and_ci() -> None:
    assert format_number(1.235, 1) == "1.2"
    assert format_number(-0.004, 2) == "0.00"  # no "−0.00"
    assert format_number(-2.5, 2) == f"{MINUS}2.50"
    assert format_number(None) == "\N{EN DASH}"
    assert format_ci(1.234, 0.981, 1.544) == "1.23 (0.98 to 1.54)"
    assert format_ci(-0.32, -0.44, -0.2) == f"{MINUS}0.32 ({MINUS}0.44 to {MINUS}0.20)"
    assert format_ci(2.0, np.nan, np.nan, 1) == "2.0"
    assert format_ci(np.nan, 1, 2) == "\N{EN DASH}"


def tidy() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "term": ["MN+PRP", "week|x"],
            "estimate": [1.23456, -0.3249],
            "std_error": [0.1, 0.05],
            "statistic": [12.3456, -6.498],
            "df": [28.0, 28.0],
            "p_value": [1e-6, 0.2468],
            "conf_low": [1.0299, -0.4275],
            "conf_high": [1.4392, -0.2223],
        }
    )


def test_journal_table_combines_interval_and_keeps_data_at_full_precision() -> None:
    df = tidy()
    before = df.copy()
    table = journal_table(df, digits={"estimate": 2, "statistic": 1})
    pd.testing.assert_frame_equal(table.data, before)  # untouched, full precision
    assert list(table.display.columns) == [
        "Term",
        "Estimate (95% CI)",
        "SE",
        "Statistic",
        "df",
        "p",
    ]
    assert table.display.iloc[0].tolist() == [
        "MN+PRP",
        "1.23 (1.03 to 1.44)",
        "0.10",
        "12.3",
        "28.00",
        "<0.001",
    ]
    assert table.display.iloc[1, 1] == f"{MINUS}0.32 ({MINUS}0.43 to {MINUS}0.22)"
    assert table.display.iloc[1, 5] == "0.247"
    assert table.align == ("left", "right", "right", "right", "right", "right")


def test_journal_table_other_columns_and_labels() -> None:
    df = pd.DataFrame(
        {"arm": ["a", None], "n": [12345, -3], "ok": [True, False], "mean": [1.0, np.nan]}
    )
    table = journal_table(df, digits=1, labels={"arm": "Arm"})
    assert table.display.to_dict("list") == {
        "Arm": ["a", "\N{EN DASH}"],
        "n": ["12,345", f"{MINUS}3"],
        "ok": ["Yes", "No"],
        "mean": ["1.0", "\N{EN DASH}"],
    }


def test_journal_table_refuses_half_an_interval_and_non_frames() -> None:
    with pytest.raises(InputError, match="both conf_low and conf_high"):
        journal_table(tidy().drop(columns="conf_high"))
    with pytest.raises(InputError, match="DataFrame"):
        journal_table([1, 2])  # type: ignore[arg-type]


def test_markdown_goes_through_pandoc_as_one_table_with_the_printed_values() -> None:
    table = journal_table(tidy(), caption="Effects")
    html = pypandoc.convert_text(table.to_markdown(), "html", format="markdown")
    assert html.count("<table") == 1
    assert "<caption>Effects</caption>" in html
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html)
    assert "week|x" in cells  # the pipe was escaped, not a column break
    assert "1.23 (1.03 to 1.44)" in cells and "&lt;0.001" in cells
    assert table._repr_markdown_() == table.to_markdown()


def test_modality_colours_cover_the_dictionary_and_are_distinct() -> None:
    codes = set(load_dictionary().codelists["modality"])
    assert set(MODALITY_COLOURS) == codes
    assert len(set(MODALITY_COLOURS.values())) == len(MODALITY_COLOURS)


def test_theme_and_scale_draw_each_modality_in_its_colour() -> None:
    df = pd.DataFrame({"x": [1, 2, 3], "y": [1, 2, 3], "modality": ["MN+RF", "MN", "MN+PRP"]})
    plot = ggplot(df, aes("x", "y", colour="modality")) + geom_point() + scale_colour_modality()
    plot = plot + theme_outcomes(figure_size=(4, 3))
    figure = plot.draw()
    try:
        assert tuple(figure.get_size_inches()) == (4, 3)
        assert figure.dpi == 300
        points = figure.axes[0].collections[0]
        drawn = [tuple(np.round(c[:3], 3)) for c in points.get_facecolors()]
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)
    expected = [
        tuple(round(int(MODALITY_COLOURS[m][i : i + 2], 16) / 255, 3) for i in (1, 3, 5))
        for m in df["modality"]
    ]
    assert drawn == expected


def test_note_goes_under_the_table_in_small_type() -> None:
    table = journal_table(tidy(), caption="Effects", note="CI, confidence interval.")
    markdown = table.to_markdown()
    html = pypandoc.convert_text(markdown, "html", format="markdown")
    assert '<div class="table-note" data-custom-style="Table Note">' in html
    assert html.index("</table>") < html.index("CI, confidence interval.")
    typst = pypandoc.convert_text(markdown, "typst", format="markdown")
    assert "#set text(size: 9pt)" in typst
