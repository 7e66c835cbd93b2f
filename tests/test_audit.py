"""Audit helpers on hand-made inputs: comparing results, explaining manifests, lock files."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from outcomes.analysis.audit import format_table
from outcomes.analysis.differences import compare_ard, explain, is_count, package_differences
from outcomes.analysis.provenance import check_lock, compare_lock, runtime_packages
from outcomes.errors import InputError


def ard(rows: list[tuple[str, str, float]], warning: str = "") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "analysis": "a",
                "group": "table=t",
                "term": term,
                "stat_name": stat,
                "stat_value": value,
                "warning": warning,
                "error": "",
            }
            for term, stat, value in rows
        ]
    )


def test_counts_exact_estimates_within_relative_tolerance() -> None:
    old = ard([("x", "estimate", 1.0), ("x", "n", 10.0), ("y", "estimate", 2.0)])
    # 1 + 5e-10 is within 1e-9 relative; 2 -> 2 + 1e-8 is not (relative 5e-9)
    new = ard([("x", "estimate", 1.0 + 5e-10), ("x", "n", 10.0), ("y", "estimate", 2.0 + 1e-8)])
    diffs = compare_ard(old, new)
    assert [(d.term, d.stat_name, d.kind) for d in diffs] == [("y", "estimate", "value")]
    assert diffs[0].relative == pytest.approx(1e-8 / (2 + 1e-8))
    # a count differing by one is a difference whatever the tolerance
    new_n = ard([("x", "estimate", 1.0), ("x", "n", 11.0), ("y", "estimate", 2.0)])
    assert [d.kind for d in compare_ard(old, new_n, relative=0.5)] == ["count"]


def test_per_statistic_tolerance_and_absolute_floor() -> None:
    old = ard([("x", "p_value", 1e-40), ("x", "df", 50.0), ("x", "estimate", 3.0)])
    new = ard([("x", "p_value", 2e-40), ("x", "df", 50.000001), ("x", "estimate", 3.0)])
    assert {d.stat_name for d in compare_ard(old, new)} == {"p_value", "df"}
    stats = {"p_value": {"absolute": 1e-12}, "df": {"relative": 1e-6}}
    assert compare_ard(old, new, stats=stats) == []


def test_missing_new_nan_and_row_order() -> None:
    old = ard([("x", "estimate", math.nan), ("y", "estimate", 1.0), ("z", "estimate", 1.0)])
    new = ard([("w", "estimate", 1.0), ("z", "estimate", 1.0), ("x", "estimate", math.nan)])
    diffs = compare_ard(old, new)
    assert [(d.term, d.kind) for d in diffs] == [("y", "missing"), ("w", "new")]
    # NaN against a number is a difference
    assert [d.kind for d in compare_ard(old, old.assign(stat_value=1.0))] == ["value"]


def test_changed_warning_text_is_a_difference() -> None:
    old = ard([("x", "estimate", 1.0)])
    new = ard([("x", "estimate", 1.0)], warning="singular fit")
    (d,) = compare_ard(old, new)
    assert (d.kind, d.old, d.new) == ("warning", "", "singular fit")


def test_duplicate_statistics_are_refused() -> None:
    old = ard([("x", "estimate", 1.0), ("x", "estimate", 2.0)])
    with pytest.raises(InputError, match="duplicate statistic"):
        compare_ard(old, old)


def test_is_count() -> None:
    assert is_count("n") and is_count("n_events") and is_count("records")
    assert not is_count("estimate") and not is_count("df")


def manifest(**changes: object) -> dict:
    base = {
        "data": {
            "snapshot": 1,
            "dictionary_sha256": "d" * 64,
            "rows_quarantined": 0,
            "tables": {"assessments": {"rows": 10, "sha256": "a" * 64}},
            "files": [{"path": "data/assessments.csv", "sha256": "f" * 64}],
        },
        "spec": {"content": {"model": {"kind": "lmm", "reml": True}, "seed": 1}},
        "code": {"files": {"outcomes/models/mixed.py": "c" * 64}, "git": {"commit": "1" * 40}},
        "environment": {"python": "3.11.9", "platform": "Linux", "packages": {"numpy": "2.1.0"}},
    }
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        d = base
        for p in parents:
            d = d[p]
        d[leaf] = value
    return base


def test_explain_names_each_kind_of_change() -> None:
    old = manifest()
    assert explain(old, manifest()) == {"inputs": [], "spec": [], "code": [], "environment": []}
    new = manifest(
        data__tables={"assessments": {"rows": 10, "sha256": "b" * 64}},
        spec__content={"model": {"kind": "lmm", "reml": False}, "seed": 1},
        code__files={"outcomes/models/mixed.py": "e" * 64},
        code__git={"commit": "2" * 40},
        environment__packages={"numpy": "2.2.0"},
    )
    causes = explain(old, new)
    assert causes["inputs"] == [
        "input table assessments: content sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb (rows 10 -> 10)"
    ]
    assert causes["spec"] == ["analysis spec model.reml: True -> False"]
    assert causes["code"][0] == "code outcomes/models/mixed.py: sha256 cccccccccccc -> eeeeeeeeeeee"
    # a changed module the run did not load is named, on one line, apart from the others
    new["code"]["files"]["outcomes/report/render.py"] = "9" * 64
    old["code"]["files"]["outcomes/report/render.py"] = "8" * 64
    new["code"]["loaded"] = ["outcomes/models/mixed.py"]
    assert explain(old, new)["code"] == [
        "code outcomes/models/mixed.py: sha256 cccccccccccc -> eeeeeeeeeeee",
        "code changed in modules this run did not load: outcomes/report/render.py",
        "git commit 111111111111 -> 222222222222",
    ]
    assert causes["environment"] == ["package numpy: 2.1.0 -> 2.2.0"]


def test_package_differences_lists_absent_packages() -> None:
    assert package_differences({"a": "1", "b": "2"}, {"a": "1", "c": "3"}) == [
        "package b: 2 -> absent",
        "package c: absent -> 3",
    ]


def test_runtime_packages_cover_outcomes_dependencies() -> None:
    packages = runtime_packages()
    for name in ("outcomes", "numpy", "pandas", "statsmodels", "duckdb", "pyyaml"):
        assert name in packages and packages[name] != "not installed"
    assert "pytest" not in packages  # a test extra, not a runtime dependency


LOCK = """\
# This file was autogenerated by uv via the following command:
#    uv pip compile pyproject.toml -o requirements.lock
numpy==2.1.0
    # via outcomes
pandas==2.2.3
"""


def test_lock_comparison_ignores_the_header_only() -> None:
    recompiled = LOCK.replace("-o requirements.lock", "-o /tmp/x/requirements.lock")
    assert compare_lock(LOCK, recompiled) == []
    changed = compare_lock(LOCK, LOCK.replace("numpy==2.1.0", "numpy==2.2.0"))
    assert "-numpy==2.1.0" in changed and "+numpy==2.2.0" in changed


def test_format_table_aligns_columns() -> None:
    text = format_table([{"a": 1.5, "b": None}, {"a": math.nan, "b": "x"}], ["a", "b"])
    assert text.splitlines() == ["a    b", "1.5  -", "-    x"]


def fake_uv(tmp_path: Path, body: str) -> str:
    """A stand-in for `uv` that edits (or fails to write) the file given after ``-o``."""
    script = tmp_path / "uv"
    script.write_text('#!/bin/sh\nwhile [ "$1" != "-o" ]; do shift; done\n' + body)
    script.chmod(0o755)
    return str(script)


def test_check_lock_compiles_onto_a_copy_and_diffs(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    same = fake_uv(tmp_path, "exit 0\n")
    assert check_lock(lock, tmp_path, uv=same) == []
    bump = fake_uv(tmp_path, "sed -i 's/^numpy==2.1.0/numpy==2.2.0/' \"$2\"\n")
    diff = check_lock(lock, tmp_path, uv=bump)
    assert "+numpy==2.2.0" in diff
    assert lock.read_text() == LOCK  # the committed lock is never touched
    broken = fake_uv(tmp_path, "echo 'no network' >&2; exit 2\n")
    with pytest.raises(InputError, match="uv pip compile failed: no network"):
        check_lock(lock, tmp_path, uv=broken)


def test_check_lock_without_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    monkeypatch.setattr("outcomes.analysis.provenance.shutil.which", lambda name: None)
    with pytest.raises(InputError, match="needs uv"):
        check_lock(lock, tmp_path)
