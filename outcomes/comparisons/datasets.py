"""Analysis frames for the comparisons.

Tables from the store, one row per treated unit, instrument scores, groups and endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from outcomes.comparisons.table import AE_OUTCOMES, PRIMARY_INSTRUMENTS
from outcomes.errors import InputError

# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Copy with NumPy dtypes (the store returns Arrow strings and nullable numbers)."""
    out = {}
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.StringDtype) or s.dtype == object:
            out[col] = s.astype(object).mask(s.isna())
        elif pd.api.types.is_bool_dtype(s.dtype):
            out[col] = s.astype(object).mask(s.isna()) if s.isna().any() else s.astype(bool)
        elif pd.api.types.is_numeric_dtype(s.dtype):
            out[col] = (
                s.astype(float) if s.isna().any() or s.dtype.kind == "f" else s.astype(np.int64)
            )
        else:
            out[col] = s
    return pd.DataFrame(out, index=df.index)


def _load_tables(data: Any, snapshot: int | None) -> dict[str, pd.DataFrame]:
    from outcomes.data.store import Store

    if isinstance(getattr(data, "tables", None), Mapping):
        tables = dict(data.tables)  # simulator Feeds
    elif isinstance(data, Store):
        tables = data.tables(snapshot)
    elif isinstance(data, str | Path):
        path = Path(data)
        if not path.exists():
            raise InputError(f"store {str(path)!r} does not exist")
        with Store(path, read_only=True) as store:
            tables = store.tables(snapshot)
    elif isinstance(data, Mapping):
        tables = dict(data)
    else:
        raise InputError(
            "compare() needs a store (path or Store), simulated Feeds, or a mapping of schema "
            f"tables; got {type(data).__name__}"
        )
    needed = ("studies", "subjects", "units", "sessions", "assessments", "adverse_events")
    missing = [n for n in needed if n not in tables]
    if missing:
        raise InputError(
            f"compare() needs the tables {', '.join(missing)}; got {', '.join(tables)}"
        )
    for name in needed:
        if not isinstance(tables[name], pd.DataFrame):
            raise InputError(f"table {name!r} must be a pandas DataFrame")
    return {n: _plain_frame(tables[n]) for n in needed}


def _study(tables: Mapping[str, pd.DataFrame], study_id: str) -> dict[str, pd.DataFrame]:
    return {
        n: df.loc[df["study_id"] == study_id].reset_index(drop=True) for n, df in tables.items()
    }


# --------------------------------------------------------------------------------------------
# analysis datasets
# --------------------------------------------------------------------------------------------


def _unit_frame(t: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Treated units with subject covariates and the day of their first session."""
    units = t["units"][["unit_id", "subject_id", "modality"]].copy()
    units["body_site"] = t["units"].get("body_site", "other")
    subj_cols = [
        c for c in ("subject_id", "site_id", "phototype", "indication") if c in t["subjects"]
    ]
    units = units.merge(t["subjects"][subj_cols], on="subject_id", how="left")
    first = t["sessions"].groupby("unit_id")["day"].min().rename("first_session_day")
    units = units.merge(first, on="unit_id", how="inner")  # untreated units are not analysed
    units["modality"] = units["modality"].astype(str)
    units["indication"] = units["indication"].fillna("other").astype(str)
    return units.reset_index(drop=True)


def _instrument_scores(t: Mapping[str, pd.DataFrame], instrument: str) -> pd.DataFrame:
    """Per unit and day: the score (investigator's if any, raters averaged)."""
    a = t["assessments"]
    a = a.loc[a["instrument"] == instrument]
    if (a["rater_role"] == "investigator").any():
        a = a.loc[a["rater_role"] == "investigator"]
    return pd.DataFrame(a.groupby(["unit_id", "day"], as_index=False)["value"].mean())


def _primary_instrument(t: Mapping[str, pd.DataFrame], indication: str) -> str | None:
    present = set(t["assessments"]["instrument"].astype(str))
    for inst in PRIMARY_INSTRUMENTS.get(indication, ()):
        if inst in present:
            return inst
    return None


def _at_primary_visit(
    scores: pd.DataFrame, units: pd.DataFrame, primary_day: float, window: tuple[float, float]
) -> pd.DataFrame:
    """Baseline (last score on or before the first session) and the score nearest the primary day
    within the window, one row per unit with both."""
    s = scores.merge(units[["unit_id", "first_session_day"]], on="unit_id")
    pre = s.loc[s["day"] <= s["first_session_day"]].sort_values("day")
    base = pre.groupby("unit_id")["value"].last().rename("base")
    post = s.loc[(s["day"] >= window[0]) & (s["day"] <= window[1])].copy()
    post["distance"] = (post["day"] - primary_day).abs()
    post = post.sort_values(["unit_id", "distance", "day"]).groupby("unit_id").first()
    out = post[["day", "value"]].join(base, how="inner").reset_index()
    return out


def _pct_improvement(value: pd.Series, base: pd.Series, instrument: str) -> pd.Series:
    from outcomes.data.dictionary import load_dictionary

    sign = 1.0 if load_dictionary().instruments[instrument].higher_is_better else -1.0
    return 100 * sign * (value - base) / base.abs().where(base != 0)


def _ae_flags(t: Mapping[str, pd.DataFrame], units: pd.DataFrame, outcome: str) -> pd.Series:
    """1 if the unit had the adverse event (any time), indexed like ``units``."""
    term, severities = AE_OUTCOMES[outcome]
    ae = t["adverse_events"]
    ae = ae.loc[ae["term"] == term]
    if severities is not None:
        ae = ae.loc[ae["severity"].isin(severities)]
    if ae["unit_id"].notna().all():
        hit = set(ae["unit_id"])
        return units["unit_id"].isin(hit).astype(int)
    # events recorded per subject: a subject's event counts for each of its units
    hit = set(ae["subject_id"])
    return units["subject_id"].isin(hit).astype(int)


def _groups(units: pd.DataFrame, by_body_site: bool) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """Units by indication (and body site): ``((indication, body_site or "all"), units)``."""
    if by_body_site:
        site = units["body_site"].fillna("other").astype(str)
        return [
            ((str(i), str(b)), g)
            for (i, b), g in units.assign(body_site=site).groupby(["indication", "body_site"])
        ]
    return [((str(i), "all"), g) for i, g in units.groupby("indication", sort=True)]


def _comparisons(modalities: Any, reference: str) -> list[str]:
    return sorted(str(m) for m in set(modalities) if m != reference)


def _subset(t: Mapping[str, pd.DataFrame], unit_ids: pd.Series) -> dict[str, pd.DataFrame]:
    keep = set(unit_ids)
    out = dict(t)
    for name in ("units", "sessions", "assessments"):
        out[name] = t[name].loc[t[name]["unit_id"].isin(keep)]
    return out


def _endpoint(t: Mapping[str, pd.DataFrame]) -> str | None:
    """Time-to-result endpoint: first gb_qual improvement for acne scar data, else GAIS <= 2."""
    present = set(t["assessments"]["instrument"].astype(str))
    if "gb_qual" in present:
        return "first_improvement"
    if "gais" in present:
        return "gais_much_improved"
    if "gb_quant" in present:
        return "full_result"
    return None


def _endpoint_label(endpoint: str) -> str:
    from outcomes.derive.endpoints import ENDPOINTS

    return ENDPOINTS[endpoint].description
