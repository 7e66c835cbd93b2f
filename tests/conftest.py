"""Shared fixtures: paths to test data and a store holding the small valid feed set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from outcomes.data.ingest import ingest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def _valid_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("template") / "store.duckdb"
    report = ingest([DATA / "valid"], store)
    assert report.exit_code == 0, report.summary()
    return store


@pytest.fixture
def valid_store(tmp_path: Path, _valid_store_template: Path) -> Path:
    """A fresh store (a copy) whose snapshot 1 is tests/data/valid."""
    store = tmp_path / "store.duckdb"
    shutil.copy(_valid_store_template, store)
    return store
