"""Rows re-sent for keys the store already holds, and rows of withdrawn subjects.

A re-sent row whose key is stored is, by its values:

- *unchanged* (the same values): accepted, not added again;
- a *correction* (other values) when the ingest gives a reason: it replaces the stored row in
  the new snapshot and each changed cell goes to the history (key, column, old value, new
  value, file, reason); without a reason it is quarantined as ``correction_needs_reason``
  with the changed cells, so nothing changes silently;
- a ``duplicate_key`` when another file of the same ingest holds that key with other values.

A subject who withdrew consent (:meth:`outcomes.data.store.Store.withdraw`) stays out: their
re-sent rows, in any table, are quarantined as ``withdrawn_subject``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from outcomes.data.dictionary import Table
from outcomes.data.schema import VIOLATION_COLUMNS
from outcomes.data.store import HISTORY_COLUMNS, Store, key_text

__all__ = ["Resent", "Withdrawn", "classify_resent", "row_texts"]

MISSING = "\x00NA"  # marks a missing value in row texts (no cell can hold it)


def row_texts(df: pd.DataFrame, cols: list[str]) -> list[tuple[str, ...]]:
    """Rows as tuples of text, missing values marked, to compare typed rows exactly."""
    text = df[cols].astype("string").fillna(MISSING)
    return list(text.itertuples(index=False, name=None))


def _shown(value: str) -> str | None:
    return None if value == MISSING else value


def _violations(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(VIOLATION_COLUMNS))


@dataclass
class Resent:
    """How re-sent rows were classified (positions are the rows' places in the feed)."""

    unchanged: np.ndarray
    corrected: pd.DataFrame
    history: pd.DataFrame
    violations: pd.DataFrame


def classify_resent(
    typed: pd.DataFrame,
    table: Table,
    stored: pd.DataFrame | None,
    batch: pd.DataFrame | None,
    *,
    file: str,
    reason: str | None,
) -> Resent:
    """Classify typed rows whose key is stored or already in this ingest (see the module).

    Parameters
    ----------
    typed
        The re-sent rows, typed, indexed by their position in the feed.
    table
        Their dictionary table.
    stored
        The table's current stored rows (without keys corrected earlier in this ingest).
    batch
        Rows of the table accepted or corrected earlier in this ingest.
    file
        The source file, for the history.
    reason
        The reason for corrections; None refuses them.
    """
    cols = list(table.columns)
    pk = list(table.primary_key)
    at = [cols.index(c) for c in pk]

    def by_key(df: pd.DataFrame | None) -> dict[tuple[str, ...], tuple[str, ...]]:
        if df is None or not len(df):
            return {}
        return {tuple(r[i] for i in at): r for r in row_texts(df, cols)}

    stored_rows, batch_rows = by_key(stored), by_key(batch)
    unchanged: list[int] = []
    corrected: list[int] = []
    history: list[tuple] = []
    refused: list[tuple] = []
    for pos, row in zip(typed.index, row_texts(typed, cols), strict=True):
        key = tuple(row[i] for i in at)
        if row in (stored_rows.get(key), batch_rows.get(key)):
            unchanged.append(int(pos))
            continue
        key_cols, key_value = ", ".join(pk), ", ".join(key)
        if key in batch_rows or key not in stored_rows:
            refused.append(
                (
                    table.name,
                    int(pos),
                    key_cols,
                    key_value,
                    "duplicate_key",
                    "another file of this ingest holds this key with other values",
                )
            )
            continue
        old = stored_rows[key]
        changes = [(c, old[i], row[i]) for i, c in enumerate(cols) if old[i] != row[i]]
        if reason:
            corrected.append(int(pos))
            key_json = key_text(dict(zip(pk, key, strict=True)))
            history += [
                (table.name, key_json, c, _shown(a), _shown(b), "corrected", file, reason)
                for c, a, b in changes
            ]
        else:
            refused.append(
                (
                    table.name,
                    int(pos),
                    ", ".join(c for c, _, _ in changes),
                    "; ".join(f"{_shown(a)!r} -> {_shown(b)!r}" for _, a, b in changes),
                    "correction_needs_reason",
                    f"key ({key_cols}) = ({key_value}) is stored with other values; give "
                    "--reason TEXT to record this as a correction",
                )
            )
    return Resent(
        np.asarray(unchanged, dtype=int),
        typed.loc[corrected].reset_index(drop=True),
        pd.DataFrame(history, columns=HISTORY_COLUMNS),
        _violations(refused),
    )


@dataclass
class Withdrawn:
    """Subjects who withdrew consent, and their units, to keep their re-sent rows out."""

    subjects: dict[tuple[str, str], str]  # (study_id, subject_id) -> "snapshot k: reason"
    units: dict[tuple[str, str], tuple[str, str]]  # (study_id, unit_id) -> subject

    @classmethod
    def of(cls, store: Store) -> Withdrawn:
        """The withdrawals recorded in a store."""
        w = store.withdrawn()
        subjects = {
            (str(r.study_id), str(r.subject_id)): f"snapshot {r.snapshot_id}: {r.reason}"
            for r in w.itertuples(index=False)
        }
        units: dict[tuple[str, str], tuple[str, str]] = {}
        if subjects and store.latest():
            u = store.all_rows("units")
            for r in u.itertuples(index=False):
                subject = (str(r.study_id), str(r.subject_id))
                if subject in subjects:
                    units[(str(r.study_id), str(r.unit_id))] = subject
        return cls(subjects, units)

    def rows(self, data: pd.DataFrame, table: str) -> tuple[np.ndarray, pd.DataFrame]:
        """Which rows of a mapped feed belong to a withdrawn subject, with a violation each."""
        gone = np.zeros(len(data), dtype=bool)
        if not self.subjects or "study_id" not in data:
            return gone, _violations([])
        study = data["study_id"].astype("string").str.strip().fillna("").to_numpy()
        subjects: list[tuple[str, str] | None]
        if "subject_id" in data:
            column = "study_id, subject_id"
            ids = data["subject_id"].astype("string").str.strip().fillna("").to_numpy()
            subjects = [(s, i) for s, i in zip(study, ids, strict=True)]
        elif "unit_id" in data:
            column = "study_id, unit_id"
            ids = data["unit_id"].astype("string").str.strip().fillna("").to_numpy()
            subjects = [self.units.get((s, i)) for s, i in zip(study, ids, strict=True)]
        else:
            return gone, _violations([])
        rows = []
        for pos, (subject, s, i) in enumerate(zip(subjects, study, ids, strict=True)):
            if subject in self.subjects:
                gone[pos] = True
                rows.append(
                    (
                        table,
                        pos,
                        column,
                        f"{s}, {i}",
                        "withdrawn_subject",
                        f"subject {subject[1]} of study {subject[0]} withdrew consent "
                        f"({self.subjects[subject]}); their rows are not stored again",
                    )
                )
        return gone, _violations(rows)
