"""The command line as a user meets it: help, exit codes, messages, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from outcomes.cli import build_parser, main

DATA = Path(__file__).parent / "data"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outcomes.cli", *args], capture_output=True, text=True, check=False
    )


def test_help_lists_subcommands_with_examples() -> None:
    out = run("--help")
    assert out.returncode == 0
    for command in ("simulate", "ingest", "validate", "dictionary", "summary", "quarantine"):
        assert command in out.stdout
    assert "examples:" in out.stdout
    assert "exit codes" in out.stdout


def test_every_option_has_help_text() -> None:
    parser = build_parser()
    missing = [
        f"{name} {action.dest}"
        for sub in parser._subparsers._group_actions  # type: ignore[union-attr]
        for name, command in sub.choices.items()
        for action in command._actions
        if not action.help
    ]
    assert missing == []


def test_ingest_exit_codes_and_messages(tmp_path: Path) -> None:
    store = str(tmp_path / "s.duckdb")
    assert run("ingest", str(DATA / "valid"), "--store", store).returncode == 0
    bad = run(
        "ingest", str(DATA / "bad_inputs" / "score_above_range_assessments.csv"), "--store", store
    )
    assert bad.returncode == 3
    assert "row 2: column value, instrument" in bad.stdout
    rejected = run("ingest", str(DATA / "bad_inputs" / "email_subjects.csv"), "--store", store)
    assert rejected.returncode == 4
    assert "email_subjects.csv" in rejected.stdout and "'email'" in rejected.stdout
    strict = run(
        "ingest", str(DATA / "bad_inputs" / "sex_code_subjects.csv"), "--store", store, "--strict"
    )
    assert strict.returncode == 5
    for out in (bad, rejected, strict):
        assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "no/such/folder", "--store", "x.duckdb"], "no/such/folder: no such file"),
        (["summary", "--store", "missing.duckdb"], "missing.duckdb: no such store"),
        (
            ["export", "--store", "{store}", "--table", "visits", "--out", "x.csv"],
            "unknown table 'visits'",
        ),
        (
            [
                "export",
                "--store",
                "{store}",
                "--table",
                "units",
                "--snapshot",
                "7",
                "--out",
                "x.csv",
            ],
            "no snapshot 7",
        ),
    ],
)
def test_user_errors_exit_2_with_a_message(
    args: list[str],
    message: str,
    tmp_path: Path,
    valid_store: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main([a.replace("{store}", str(valid_store)) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_summary_quarantine_export_and_validate(
    tmp_path: Path, valid_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", "--store", str(valid_store)]) == 0
    assert "acne_scars" in capsys.readouterr().out
    out_csv = tmp_path / "units.csv"
    assert (
        main(["export", "--store", str(valid_store), "--table", "units", "--out", str(out_csv)])
        == 0
    )
    assert len(out_csv.read_text().splitlines()) == 1 + 6
    assert main(["validate", str(DATA / "bad_inputs" / "phototype_code_subjects.csv")]) == 3
    assert "VII" in capsys.readouterr().out
    q = tmp_path / "q.csv"
    assert main(["quarantine", "--store", str(valid_store), "--out", str(q)]) == 0


def test_a_reader_that_stops_early_gets_a_quiet_exit(valid_store: Path) -> None:
    """`outcomes summary | head`: the pipe closes before the output is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "outcomes.cli", "summary", "--store", str(valid_store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the command writes anything
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141  # as a Unix tool stopped by SIGPIPE
    assert err == ""


def test_dictionary_page_documents_every_table_and_instrument(tmp_path: Path) -> None:
    from outcomes.data.dictionary import load_dictionary

    out = tmp_path / "dictionary.md"
    assert main(["dictionary", "--out", str(out)]) == 0
    text = out.read_text()
    d = load_dictionary()
    for table in d.tables.values():
        assert f"## Table `{table.name}`" in text
        for column in table.columns:
            assert f"`{column}`" in text
    for code in d.instruments:
        assert f"`{code}`" in text
    assert d.sha256 in text
