"""Read-only opening: a notebook holding the store blocks no reader; writers wait, then say so."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

import outcomes.data.store as store_module
from outcomes.cli import main
from outcomes.data.store import Store, open_store

VALID = Path(__file__).parent / "data" / "valid"
HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("ready", flush=True)
time.sleep(float(sys.argv[3]))
"""


@contextmanager
def held(store: Path, mode: str = "rw", seconds: float = 120) -> Iterator[int]:
    """Another process holding ``store`` open (as a notebook would); yields its PID."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store), mode, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_readers_work_while_another_process_holds_the_store_for_writing(
    tmp_path: Path, valid_store: Path, capsys: pytest.CaptureFixture
) -> None:
    from outcomes.report.sections import load_snapshot

    with Store(valid_store) as st:
        st.withdraw("S2", "consent withdrawn")  # something for `history` to show
    s = str(valid_store)
    commands = [
        ["summary", "--store", s],
        ["snapshots", "--store", s],
        ["quarantine", "--store", s],
        ["history", "--store", s],
        ["export", "--store", s, "--table", "units", "--out", str(tmp_path / "u.csv")],
    ]
    with held(valid_store) as pid:
        for cmd in commands:
            assert main(cmd) == 0, cmd
            err = capsys.readouterr().err
            assert f"open for writing in another process (PID {pid})" in err, cmd
        snap = load_snapshot(valid_store)  # what every report calls
        assert snap.snapshot_id == 2 and len(snap.tables["subjects"]) == 2
        with open_store(valid_store) as st:
            assert st.read_only and len(st.history()) > 0
            assert st._copy is not None
            copy = Path(st._copy.name)
            assert copy.is_dir()
        assert not copy.exists()  # the copy goes with the store
    assert len(pd.read_csv(tmp_path / "u.csv")) == 4


def test_a_declared_analysis_runs_while_the_store_is_held(tmp_path: Path) -> None:
    from outcomes.analysis.run import run_analysis
    from outcomes.data.ingest import ingest
    from outcomes.simulate.output import write_feeds
    from outcomes.simulate.trial import simulate_trial

    write_feeds(simulate_trial(seed=4, n_subjects=12), tmp_path / "feeds")
    store = tmp_path / "store.duckdb"
    assert ingest([tmp_path / "feeds"], store).snapshot == 1
    spec = tmp_path / "tte.yaml"
    spec.write_text(
        "name: held_tte\nquestion: How soon is a first improvement seen?\n"
        "data: {store: store.duckdb, snapshot: 1}\noutcome: {endpoint: first_improvement}\n"
        "model: {kind: time_to_result, by: arm, times: [28, 56]}\nseed: 3\nfigures: false\n"
    )
    with held(store):
        result = run_analysis(spec, tmp_path / "results")
    assert result.manifest["data"]["source"] == "store" and len(result.ard) > 0


def test_a_reader_holding_the_store_blocks_no_other_reader(
    valid_store: Path, capsys: pytest.CaptureFixture
) -> None:
    with held(valid_store, mode="ro"):
        assert main(["summary", "--store", str(valid_store)]) == 0
        assert "open for writing" not in capsys.readouterr().err  # read directly, no copy


def test_a_writer_waits_briefly_then_says_who_holds_the_store(
    valid_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "LOCK_WAIT_SECONDS", 1.0)
    with held(valid_store, mode="ro") as pid:
        t0 = time.perf_counter()
        code = main(["ingest", str(VALID), "--store", str(valid_store)])
        waited = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 2 and waited >= 1.0
    assert f"in use by another process (PID {pid}); waited 1 s" in err
    assert "Traceback" not in err and "internal error" not in err


def test_a_writer_gets_the_store_when_the_holder_lets_go_in_time(
    valid_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "LOCK_WAIT_SECONDS", 60.0)
    with held(valid_store, seconds=1.5):
        code = main(["withdraw", "--store", str(valid_store), "--subject", "S1", "--reason", "x"])
    assert code == 0, capsys.readouterr().err


def test_read_only_store_refuses_to_write(valid_store: Path) -> None:
    from outcomes.errors import InputError

    with open_store(valid_store) as st, pytest.raises(InputError, match="opened read-only"):
        st.withdraw("S1", "x")


def test_same_process_readers_and_writers_share_or_say_why(valid_store: Path) -> None:
    """In one notebook: a store held for writing serves read-only readers; one held
    read-only makes a writer stop with a message, not a DuckDB error."""
    from outcomes.data.ingest import ingest
    from outcomes.errors import InputError
    from outcomes.report.sections import load_snapshot

    with Store(valid_store) as writer:
        assert len(load_snapshot(valid_store).tables["units"]) == len(writer.table("units"))
    with open_store(valid_store), pytest.raises(InputError, match="open read-only"):
        ingest([VALID], valid_store)
