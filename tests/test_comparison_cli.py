"""`outcomes compare`: one command from a store to the comparison table and forest plot."""

from __future__ import annotations

import pandas as pd
import pytest

from outcomes.cli import main
from outcomes.ingest import ingest
from outcomes.models.comparison import COMPARISON_COLUMNS
from outcomes.simulate import simulate_registry, simulate_trial, write_feeds


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
    out = tmp_path / "late"
    args = ["compare", "--store", str(store), "--primary-day", "400", "--snapshot", "1"]
    assert main([*args, "--out", str(out)]) == 0
    # the trial ends on day 168: the contrast is not extrapolated to day 400, and says why
    table = pd.read_csv(out / "comparison.csv", keep_default_na=False, na_values=[""])
    md = table[(table["source"] == "trial") & (table["measure"] == "mean_difference")].iloc[0]
    assert pd.isna(md["estimate"])
    assert "not extrapolated" in md["warning"]
