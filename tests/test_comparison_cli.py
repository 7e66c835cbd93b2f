"""`outcomes compare`: one command from a store to the comparison table and forest plot."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from outcomes.cli import main
from outcomes.comparisons.comparison import compare
from outcomes.comparisons.table import COMPARISON_COLUMNS
from outcomes.data.ingest import ingest
from outcomes.errors import StatisticalWarning
from outcomes.simulate.output import write_feeds
from outcomes.simulate.registry import simulate_registry
from outcomes.simulate.trial import simulate_trial


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    write_feeds(simulate_trial(seed=1, n_subjects=20), root / "feeds" / "trial")
    write_feeds(simulate_registry(seed=2, n_subjects=600), root / "feeds" / "registry")
    path = root / "outcomes.duckdb"
    report = ingest([root / "feeds" / "trial", root / "feeds" / "registry"], path)
    assert report.exit_code == 0, report.summary()
    return path


def test_compare_command_writes_table_and_forest_plot(store, tmp_path, capsys):
    out = tmp_path / "results"
    code = main(["compare", "--store", str(store), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    table = pd.read_csv(out / "comparison.csv")
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert set(table["source"]) == {"trial", "registry"}
    assert set(table["study_id"]) == {"TRIAL1", "REG1"}
    parquet = pd.read_parquet(out / "comparison.parquet")
    assert len(parquet) == len(table)
    for name in ("forest.png", "forest.pdf", "comparison_ard.csv", "balance.csv"):
        assert (out / name).stat().st_size > 1000, name
    # the table is printed, one line per row, and the files are listed
    assert "MN+PRP vs MN" in captured.out and "randomised" in captured.out
    assert "forest.png" in captured.out
    assert "model warning(s)" in captured.err


def test_compare_command_input_errors(store, tmp_path, capsys):
    code = main(["compare", "--store", str(tmp_path / "missing.duckdb")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    # the trial ends on day 168: the contrast is not extrapolated to day 400, and says why
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = compare(store, snapshot=1, primary_day=400, ae_outcomes=())
    assert any(
        issubclass(w.category, StatisticalWarning) and "not extrapolated" in str(w.message)
        for w in caught
    )
    md = res.table[(res.table["source"] == "trial") & (res.table["measure"] == "mean_difference")]
    assert md["estimate"].isna().all()
    assert md["warning"].str.contains("after the last gb_quant visit").all()
