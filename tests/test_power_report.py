"""The power report (reports/power.qmd) renders a stored power study and prints its numbers."""

from __future__ import annotations

import html
import re
from pathlib import Path

import outcomes
from outcomes.report import render

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def test_power_report_prints_the_stored_study(tmp_path: Path) -> None:
    store = tmp_path / "study"
    res = outcomes.power(n=[4, 8, 16], reps=40, seed=2, analysis="t-test", store=store)
    result = render(
        REPORTS / "power.qmd",
        to=["html"],
        params={"store": str(store)},
        out_dir=tmp_path / "out",
        engine="builtin",
        on_warning="error",
    )
    text = re.sub(r"<[^>]+>", " ", Path(result["html"]).read_text())
    text = re.sub(r"\s+", " ", text)
    assert "Traceback" not in text and "Error" not in text
    for row in res.table().itertuples(index=False):
        assert row[1] in text  # "power % (low to high)" of each size
    size = res.sample_size["estimate"]
    assert f"{size} patients" in text
    assert "Chawla 2014" in text  # the dropout default's source
    s = res.summary
    assert f"{100 * s['type1'].min():.1f}% to {100 * s['type1'].max():.1f}%" in text
    assert 'alt="Line chart of simulated power' in Path(result["html"]).read_text()


def test_power_report_states_the_analysis_and_its_estimand(tmp_path: Path) -> None:
    store = tmp_path / "study"
    visits = (0, 28, 56, 84, 112, 140, 168)
    res = outcomes.power(
        n=[20], reps=6, seed=2, analysis="interval", visit_days=visits, store=store
    )
    result = render(
        REPORTS / "power.qmd",
        to=["html"],
        params={"store": str(store)},
        out_dir=tmp_path / "out",
        engine="builtin",
        on_warning="error",
    )
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", Path(result["html"]).read_text()))
    text = html.unescape(text)
    assert "Traceback" not in text
    assert res.analysis.label().split(" on the visit grid")[0] in text
    assert "log of the ratio of times to a full result" in text
