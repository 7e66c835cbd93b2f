"""Input handling shared by the time-to-result models: columns, groups, dropped rows, z."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from scipy import stats

from outcomes.errors import InputError
from outcomes.results import Diagnostic

HR_COLUMNS = ("hazard_ratio", "hr_conf_low", "hr_conf_high")
FEW_EVENTS = 10  # events per estimated coefficient below which a Cox fit is flagged


# --------------------------------------------------------------------------------------------
# input handling


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _prepare(
    data: pd.DataFrame, time: str, event: str, columns: Sequence[str], what: str
) -> tuple[pd.DataFrame, list[Diagnostic]]:
    """Check columns, coerce time/event, drop incomplete rows (reported as a diagnostic)."""
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"{what} needs a pandas DataFrame, got {type(data).__name__}")
    needed = [time, event, *columns]
    missing = [c for c in dict.fromkeys(needed) if c not in data.columns]
    if missing:
        raise InputError(f"{what}: column(s) not in the data: {', '.join(missing)}")
    df = data[list(dict.fromkeys(needed))].copy()
    df[time] = pd.to_numeric(df[time], errors="coerce")
    df[event] = pd.to_numeric(df[event], errors="coerce")
    diags = []
    incomplete = df.isna().any(axis=1)
    if incomplete.any():
        diags.append(
            Diagnostic(
                "rows_dropped",
                f"{int(incomplete.sum())} of {len(df)} rows with a missing time, event or "
                "covariate were dropped (as R's na.omit)",
                "info",
            )
        )
        df = df.loc[~incomplete]
    if df.empty:
        raise InputError(f"{what}: no complete rows to analyse")
    if (df[time] < 0).any():
        raise InputError(f"{what}: column {time!r} has negative times")
    if not df[event].isin([0, 1]).all():
        raise InputError(f"{what}: column {event!r} must be 1 (event) or 0 (censored)")
    return df, diags


def _label(keys: tuple, by: list[str]) -> str:
    return ", ".join(f"{b}={k}" for b, k in zip(by, keys, strict=True)) if by else "all"


def _groups(df: pd.DataFrame, by: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    if not by:
        return [((), df)]
    return [((k if isinstance(k, tuple) else (k,)), g) for k, g in df.groupby(by, sort=True)]


def _z(conf_level: float) -> float:
    if not 0 < conf_level < 1:
        raise InputError(f"conf_level must be between 0 and 1, got {conf_level}")
    return float(stats.norm.ppf(0.5 + conf_level / 2))
