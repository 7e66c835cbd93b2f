"""Time-to-event datasets, one row per treated unit and endpoint: :func:`derive_tte`.

The conventions (days, origins, interval censoring, censoring codes) are in
:mod:`outcomes.derive`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pandas as pd

from outcomes.data.dictionary import load_dictionary
from outcomes.derive.endpoints import ENDPOINTS, Endpoint
from outcomes.errors import InputError, OutcomesWarning

__all__ = ["CENSORING_CODES", "TTE_COLUMNS", "derive_tte"]


#: ADaM-style CNSR codes: 0 is an event, positive values say why a record is censored.
CENSORING_CODES: dict[int, str] = {
    1: "completed follow-up without the event",
    2: "follow-up ongoing (no end of follow-up recorded)",
    3: "lost to follow-up",
    4: "withdrew consent",
    5: "stopped for an adverse event",
    6: "left the analysis for retreatment",
    7: "follow-up ended for another reason",
    8: "no baseline assessment",
    9: "no assessment after the time origin",
    10: "percent change undefined (baseline value 0)",
}


_END_REASON_CODE = {
    "completed": 1,
    "lost_to_follow_up": 3,
    "withdrew": 4,
    "adverse_event": 5,
    "retreated": 6,
    "other": 7,
}


#: Columns of a derived time-to-event dataset, in order (subject covariates follow when the
#: ``subjects`` table is given).
TTE_COLUMNS: tuple[str, ...] = (
    "study_id",
    "subject_id",
    "unit_id",
    "arm",
    "side",
    "paramcd",
    "param",
    "start_day",
    "adt",
    "time",
    "event",
    "cnsr",
    "event_type",
    "evntdesc",
    "cnsdtdesc",
    "lower",
    "upper",
    "base",
    "n_visits",
)


_SUBJECT_COVARIATES = ("site_id", "age", "sex", "phototype", "indication", "end_day", "end_reason")


_REQUIRED = {
    "units": ("study_id", "unit_id", "subject_id", "modality"),
    "sessions": ("study_id", "unit_id", "day"),
    "assessments": ("study_id", "unit_id", "instrument", "day", "value", "rater_role", "rater_id"),
    "subjects": ("study_id", "subject_id"),
}


_KEYS = {
    "units": ("study_id", "unit_id"),
    "subjects": ("study_id", "subject_id"),
}


_ASSESSMENT_KEY = ["study_id", "unit_id", "instrument", "day", "rater_id"]


_TOL = 1e-9  # scores are compared with thresholds up to floating-point noise


def _optional_table(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame | None:
    if name not in tables or tables[name] is None:
        return None
    return _check_table(tables, name)


def _check_table(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    if name not in tables or tables[name] is None:
        raise InputError(f"derive_tte needs the {name!r} table; got tables: {', '.join(tables)}")
    df = tables[name]
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"table {name!r} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in _REQUIRED[name] if c not in df.columns]
    if missing:
        raise InputError(f"table {name!r} lacks required column(s): {', '.join(missing)}")
    key = _KEYS.get(name)
    if key is not None:
        dup = df.duplicated(list(key), keep=False)
        if dup.any():
            first = df.loc[dup, list(key)].iloc[0].to_dict()
            raise InputError(
                f"table {name!r} has {int(dup.sum())} rows with duplicate key "
                f"({', '.join(key)}), e.g. {first}"
            )
    return df


def _as_day(values: pd.Series, what: str) -> pd.Series:
    out = pd.to_numeric(values, errors="coerce")
    bad = out.isna() & values.notna()
    if bad.any():
        raise InputError(f"{what} must be numbers of days; got {values[bad].iloc[0]!r}")
    return out.astype(float)


def derive_tte(
    tables: Mapping[str, pd.DataFrame],
    endpoint: Endpoint | str | Mapping[str, Any],
    *,
    retreatment_gap: float = 56,
) -> pd.DataFrame:
    """Derive a time-to-event dataset (one row per unit) for one endpoint.

    Parameters
    ----------
    tables
        Schema tables by name: ``units``, ``sessions`` and (except for retreatment endpoints)
        ``assessments`` are required; ``subjects`` adds ``end_day``/``end_reason`` (censoring
        reasons, retreatment) and subject covariates (``site_id``, ``age``, ``sex``,
        ``phototype``, ``indication``).
    endpoint
        An :class:`Endpoint`, the name of one in :data:`ENDPOINTS`, or a mapping for
        :meth:`Endpoint.from_dict`.
    retreatment_gap
        A session more than this many days after the unit's previous session starts a new
        course: the first such session is the retreatment day. A subject whose
        ``end_reason`` is ``"retreated"`` but whose sessions show no such gap is taken as
        retreated on ``end_day``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TTE_COLUMNS` (``arm`` is the unit's modality) followed by the subject
        covariates, one row per unit in the order of the ``units`` table. Units without any
        session have no time origin and are left out (with a
        warning); units never assessed on the endpoint's instrument (by its rater role) are
        not in the analysis and are left out; for durability, only units that responded are
        at risk and appear.

    Raises
    ------
    InputError
        Missing tables or columns, duplicate keys, an unknown endpoint, or an instrument or
        rater role absent from the assessments.

    Examples
    --------
    >>> tte = derive_tte(feeds.tables, "first_improvement")  # doctest: +SKIP
    >>> tte[["unit_id", "arm", "time", "event", "lower", "upper"]].head()  # doctest: +SKIP
    """
    ep = _resolve(endpoint)
    units = _check_table(tables, "units")
    sessions = _check_table(tables, "sessions")
    subjects: pd.DataFrame | None
    assessments: pd.DataFrame | None
    if ep.kind == "retreatment":
        subjects = _check_table(tables, "subjects")
        assessments = _optional_table(tables, "assessments")
    else:
        subjects = _optional_table(tables, "subjects")
        assessments = _check_table(tables, "assessments")

    # one integer key per unit: every later grouping and merge uses it, not the string ids
    unit_index = pd.MultiIndex.from_frame(units[["study_id", "unit_id"]])
    base = units[["study_id", "unit_id", "subject_id", "modality"]].rename(
        columns={"modality": "arm"}
    )
    base["side"] = units.get("side", "whole")
    base["uid"] = np.arange(len(base))
    sess = pd.DataFrame(
        {
            "uid": _unit_keys(unit_index, sessions, "sessions"),
            "day": _as_day(sessions["day"], "sessions.day"),
        }
    )
    start = sess.groupby("uid")["day"].min().rename("first_session_day")
    base = base.merge(start, on="uid", how="left")
    untreated = base["first_session_day"].isna()
    if untreated.any():
        warnings.warn(
            f"{int(untreated.sum())} unit(s) have no session and no time origin; they are left "
            f"out of the {ep.name!r} dataset "
            f"(e.g. unit {base.loc[untreated, 'unit_id'].iloc[0]!r})",
            OutcomesWarning,
            stacklevel=2,
        )
        base = base.loc[~untreated]
    if subjects is not None:
        covars = [c for c in _SUBJECT_COVARIATES if c in subjects.columns]
        base = base.merge(
            subjects[["study_id", "subject_id", *covars]], on=["study_id", "subject_id"], how="left"
        )
    for col in ("end_day", "end_reason"):
        if col not in base:
            base[col] = np.nan
    base["end_day"] = _as_day(base["end_day"], "subjects.end_day")
    base = base.merge(_retreatment_days(sess, retreatment_gap), on="uid", how="left")
    fallback = (base["end_reason"] == "retreated") & base["retreat_day"].isna()
    base.loc[fallback, "retreat_day"] = base.loc[fallback, "end_day"]

    if ep.kind == "retreatment":
        contact = [sess]
        # the last assessment day matters only where follow-up has no end_day yet
        if assessments is not None and base["end_day"].isna().any():
            contact.append(
                pd.DataFrame(
                    {
                        "uid": _unit_keys(unit_index, assessments, "assessments"),
                        "day": _as_day(assessments["day"], "assessments.day"),
                    }
                )
            )
        last_contact = pd.concat(contact).groupby("uid")["day"].max().rename("last_contact")
        out = _retreatment(base.merge(last_contact, on="uid", how="left"))
    else:
        visits, baseline, assessed = _visits(cast(pd.DataFrame, assessments), ep, base, unit_index)
        # units never assessed on the instrument (by the rater role) are not in the analysis
        base = base.merge(assessed, on="uid", how="inner")
        base = base.merge(baseline, on="uid", how="left")
        out = _onset(base, visits, ep) if ep.kind == "onset" else _durability(base, visits, ep)
    out["paramcd"] = ep.name
    out["param"] = ep.description
    out["cnsdtdesc"] = out["cnsr"].map(CENSORING_CODES).where(out["cnsr"] > 0, "")
    out["evntdesc"] = out["evntdesc"].where(out["cnsr"] == 0, "")
    out["event"] = (out["cnsr"] == 0).astype(int)
    out["cnsr"] = out["cnsr"].astype(int)
    out["n_visits"] = out["n_visits"].fillna(0).astype(int)
    extra = [
        c
        for c in _SUBJECT_COVARIATES
        if c in out.columns and c in (subjects.columns if subjects is not None else ())
    ]
    # rows in the order of the units table
    return out.sort_values("uid")[[*TTE_COLUMNS, *extra]].reset_index(drop=True)


def _resolve(endpoint: Endpoint | str | Mapping[str, Any]) -> Endpoint:
    if isinstance(endpoint, Endpoint):
        return endpoint
    if isinstance(endpoint, str):
        if endpoint not in ENDPOINTS:
            raise InputError(
                f"unknown endpoint {endpoint!r}; declared endpoints: {', '.join(ENDPOINTS)}"
            )
        return ENDPOINTS[endpoint]
    if isinstance(endpoint, Mapping):
        return Endpoint.from_dict(endpoint)
    raise InputError(
        f"endpoint must be an Endpoint, a name or a mapping, got {type(endpoint).__name__}"
    )


def _unit_keys(unit_index: pd.MultiIndex, df: pd.DataFrame, name: str) -> np.ndarray:
    """Integer unit key of each row; rows of units missing from ``units`` are an error."""
    keys = unit_index.get_indexer(pd.MultiIndex.from_frame(df[["study_id", "unit_id"]]))
    if (keys < 0).any():
        row = df.loc[keys < 0, ["study_id", "unit_id"]].iloc[0].to_dict()
        raise InputError(
            f"{int((keys < 0).sum())} {name} row(s) refer to units not in the units table, "
            f"e.g. {row}"
        )
    return keys


def _visits(
    assessments: pd.DataFrame, ep: Endpoint, base: pd.DataFrame, unit_index: pd.MultiIndex
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """One row per unit and assessment day: the (rater-averaged) score and if it meets the rule.

    Also returns the baseline value per unit and the units assessed at all.
    """
    a = assessments.loc[assessments["instrument"] == ep.instrument]
    if a.empty:
        present = ", ".join(sorted(map(str, assessments["instrument"].unique())))
        raise InputError(
            f"no {ep.instrument!r} assessments for endpoint {ep.name!r}; present: {present}"
        )
    roles = sorted(map(str, a["rater_role"].unique()))
    if ep.rater_role is None and len(roles) > 1:
        raise InputError(
            f"{ep.instrument!r} is scored by several rater roles ({', '.join(roles)}); endpoint "
            f"{ep.name!r} must choose one with rater_role (scores of different roles are not "
            "averaged)"
        )
    if ep.rater_role is not None:
        a = a.loc[a["rater_role"] == ep.rater_role]
        if a.empty:
            raise InputError(
                f"no {ep.instrument!r} assessments by rater role {ep.rater_role!r}; present: "
                f"{', '.join(roles)}"
            )
    value = pd.to_numeric(a["value"], errors="coerce")
    if value.isna().any():
        raise InputError(f"assessments.value has missing or non-numeric {ep.instrument!r} scores")
    uid = _unit_keys(unit_index, a, "assessments")
    day = _as_day(a["day"], "assessments.day").to_numpy()
    # the key (study_id, unit_id, instrument, day, rater_id) within one instrument, on integers
    dup = pd.DataFrame(
        {"uid": uid, "day": day, "rater": pd.factorize(a["rater_id"])[0]}
    ).duplicated(keep=False)
    if dup.any():
        first = a.loc[dup.to_numpy(), _ASSESSMENT_KEY].iloc[0].to_dict()
        raise InputError(
            f"table 'assessments' has {int(dup.sum())} rows with duplicate key "
            f"({', '.join(_ASSESSMENT_KEY)}), e.g. {first}"
        )
    a = pd.DataFrame({"uid": uid, "day": day, "value": value.astype(float).to_numpy()})
    v = a.groupby(["uid", "day"], as_index=False)["value"].mean()
    v = v.merge(base[["uid", "first_session_day"]], on="uid", how="inner")
    inst = load_dictionary().instruments[cast(str, ep.instrument)]
    sign = 1.0 if inst.higher_is_better else -1.0
    threshold = cast(float, ep.threshold)
    pre = v.loc[v["day"] <= v["first_session_day"]].sort_values("day")
    baseline = pre.groupby("uid")["value"].last().rename("base")
    v = v.merge(baseline, on="uid", how="left")
    v = v.loc[v["day"] > v["first_session_day"]].sort_values(["uid", "day"])
    if ep.rule == "improvement":
        v["meets"] = sign * (v["value"] - v["base"]) >= threshold - _TOL
    elif ep.rule == "percent_improvement":
        pct = 100 * sign * (v["value"] - v["base"]) / v["base"].abs().where(v["base"] != 0)
        v["meets"] = pct >= threshold - _TOL
    else:
        v["meets"] = sign * (v["value"] - threshold) >= -_TOL
    assessed = a[["uid"]].drop_duplicates()
    return v.reset_index(drop=True), baseline, assessed


def _retreatment_days(sess: pd.DataFrame, gap: float) -> pd.Series:
    """First session that follows the unit's previous session by more than ``gap`` days."""
    s = sess.sort_values(["uid", "day"])
    since = s.groupby("uid")["day"].diff()
    return s.loc[since > gap].groupby("uid")["day"].min().rename("retreat_day")


def _end_code(end_reason: pd.Series) -> pd.Series:
    return end_reason.map(_END_REASON_CODE).fillna(2).astype(int)


def _onset(base: pd.DataFrame, visits: pd.DataFrame, ep: Endpoint) -> pd.DataFrame:
    key = ["uid"]
    # a result seen after a retreatment is not a result of the first course
    retreat = visits.merge(base[[*key, "retreat_day"]], on=key, how="left")["retreat_day"]
    visits = visits.loc[~(visits["day"].to_numpy() >= retreat.to_numpy())]
    out = base.assign(start_day=base["first_session_day"])
    first_event = visits.loc[visits["meets"]].groupby(key)["day"].min().rename("event_day")
    out = out.merge(first_event, on=key, how="left")
    v = visits.merge(first_event, on=key, how="left")
    before = v.loc[v["event_day"].isna() | (v["day"] < v["event_day"])]
    last_without = before.groupby(key)["day"].max().rename("last_without")
    n_visits = before.groupby(key).size().rename("n_visits")
    out = out.merge(last_without, on=key, how="left").merge(n_visits, on=key, how="left")
    is_event = out["event_day"].notna()
    cnsr = _end_code(out["end_reason"]).where(out["retreat_day"].isna(), 6)
    cnsr = cnsr.where(out["last_without"].notna(), 9)
    if ep.rule != "at_or_better":
        cnsr = cnsr.where(out["base"].notna(), 8)
        if ep.rule == "percent_improvement":
            cnsr = cnsr.where(out["base"] != 0, 10)
    out["cnsr"] = cnsr.where(~is_event, 0)
    # without a usable baseline the unit was never at risk of the event: censored at origin
    unmeasurable = out["cnsr"].isin([8, 10])
    lower_day = out["last_without"].fillna(out["start_day"]).where(~unmeasurable, out["start_day"])
    out["adt"] = np.where(is_event, out["event_day"], lower_day)
    out["lower"] = lower_day - out["start_day"]
    out["upper"] = np.where(is_event, out["event_day"] - out["start_day"], np.inf)
    out["time"] = out["adt"] - out["start_day"]
    out["n_visits"] = out["n_visits"].fillna(0) + is_event
    out["event_type"] = np.where(is_event, ep.name, "censored")
    out["evntdesc"] = f"first visit with {ep.description.removeprefix('time to ')}"
    return out


def _durability(base: pd.DataFrame, visits: pd.DataFrame, ep: Endpoint) -> pd.DataFrame:
    key = ["uid"]
    response = visits.loc[visits["meets"]].groupby(key)["day"].min().rename("start_day")
    out = base.merge(response, on=key, how="inner")
    v = visits.merge(response, on=key, how="inner")
    v = v.loc[v["day"] > v["start_day"]]
    loss = v.loc[~v["meets"]].groupby(key)["day"].min().rename("loss_day")
    out = out.merge(loss, on=key, how="left")
    retreat = out["retreat_day"].where(out["retreat_day"] >= out["start_day"])
    loss_first = out["loss_day"].notna() & ~(retreat < out["loss_day"])
    retreat_first = retreat.notna() & ~loss_first
    v = v.merge(out[[*key, "loss_day"]].assign(retreat_day=retreat), on=key, how="left")
    stop = np.fmin(v["loss_day"].fillna(np.inf), v["retreat_day"].fillna(np.inf))
    still = v.loc[v["day"] < stop]
    last_resp = still.groupby(key)["day"].max().rename("last_resp")
    n_visits = still.groupby(key).size().rename("n_visits")
    out = out.merge(last_resp, on=key, how="left").merge(n_visits, on=key, how="left")
    lower_day = out["last_resp"].fillna(out["start_day"])
    event_day = np.where(loss_first, out["loss_day"], np.where(retreat_first, retreat, np.nan))
    is_event = loss_first | retreat_first
    out["adt"] = np.where(is_event, event_day, lower_day)
    out["time"] = out["adt"] - out["start_day"]
    out["lower"] = lower_day - out["start_day"]
    out["upper"] = np.where(is_event, out["time"], np.inf)
    out["n_visits"] = out["n_visits"].fillna(0) + loss_first
    out["cnsr"] = _end_code(out["end_reason"]).where(~is_event, 0)
    out["event_type"] = np.select(
        [loss_first, retreat_first], ["loss_of_response", "retreated"], "censored"
    )
    out["evntdesc"] = np.where(loss_first, "first visit without response", "retreatment")
    return out


def _retreatment(base: pd.DataFrame) -> pd.DataFrame:
    out = base.copy()
    out["start_day"] = out["first_session_day"]
    out["base"] = np.nan
    out["n_visits"] = 0
    is_event = out["retreat_day"].notna()
    end = out["end_day"].where(out["end_day"].notna(), out["last_contact"])
    out["adt"] = out["retreat_day"].where(is_event, end)
    out["time"] = out["adt"] - out["start_day"]
    reason = out["end_reason"].where(out["end_reason"] != "retreated")
    out["cnsr"] = _end_code(reason).where(~is_event, 0)
    out["lower"] = out["time"]
    out["upper"] = np.where(is_event, out["time"], np.inf)
    lost = (reason == "lost_to_follow_up") & ~is_event
    out["event_type"] = np.select([is_event, lost], ["retreated", "lost_to_follow_up"], "censored")
    out["evntdesc"] = "retreatment (first session of a new course)"
    return out
