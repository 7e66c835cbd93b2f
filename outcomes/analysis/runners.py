"""Runners: one per model kind, from a spec and its data to the ARD, estimates and figures."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from outcomes.analysis.spec import AnalysisSpec, _fail
from outcomes.results import TIDY_COLUMNS, to_ard

# --------------------------------------------------------------------------------------------
# analysis datasets and model kinds
# --------------------------------------------------------------------------------------------


@dataclass
class _Output:
    """What a model kind returns: ARD pieces, tidy estimate tables and figures."""

    ard: list[pd.DataFrame] = field(default_factory=list)
    estimates: list[pd.DataFrame] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def _filter(spec: AnalysisSpec, df: pd.DataFrame) -> pd.DataFrame:
    """Apply the spec's population filters to an analysis dataset."""
    population = spec.content.get("population") or {}
    mask = pd.Series(True, index=df.index)
    for column, rule in population.items():
        if column not in df.columns:
            raise _fail(
                spec.path,
                f"population.{column}",
                f"no such column in the analysis dataset; columns: {', '.join(df.columns)}",
            )
        values = df[column]
        if isinstance(rule, Mapping):
            if "min" in rule:
                mask &= (values >= rule["min"]).fillna(False).astype(bool)
            if "max" in rule:
                mask &= (values <= rule["max"]).fillna(False).astype(bool)
        elif isinstance(rule, list):
            mask &= values.isin(rule).fillna(False).astype(bool)
        else:
            mask &= (values == rule).fillna(False).astype(bool)
    out = df.loc[mask].reset_index(drop=True)
    if out.empty:
        raise _fail(spec.path, "population", "no rows left after the population filters")
    return out


def _population_ard(name: str, df: pd.DataFrame) -> pd.DataFrame:
    counts = {"n_rows": float(len(df))}
    for col, stat in (("subject_id", "n_subjects"), ("unit_id", "n_units")):
        if col in df.columns:
            key = ["study_id", col] if "study_id" in df.columns else [col]
            counts[stat] = float(len(df[key].drop_duplicates()))
    tidy = pd.DataFrame([{"term": "analysis_set", **counts}])
    return to_ard(tidy, analysis=name, groups={"table": "population"})


def _ard(
    tidy: pd.DataFrame,
    name: str,
    table: str,
    stats: Sequence[str],
    diagnostics: pd.DataFrame | None = None,
    groups: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    stats = [s for s in stats if s in tidy.columns]
    return to_ard(
        tidy[["term", *stats]],
        analysis=name,
        groups={"table": table, **(groups or {})},
        diagnostics=diagnostics,
        stats=stats,
    )


def _estimates(
    tidy: pd.DataFrame, name: str, table: str, groups: Mapping[str, object] | None = None
) -> pd.DataFrame:
    out = tidy.copy()
    for col in TIDY_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    out = out[list(TIDY_COLUMNS)]
    out.insert(0, "group", ";".join(f"{k}={v}" for k, v in sorted((groups or {}).items())))
    out.insert(0, "table", table)
    out.insert(0, "analysis", name)
    return out


def _lmm_dataset(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    outcome = spec.content["outcome"]
    a = tables["assessments"]
    a = a.loc[a["instrument"] == outcome["instrument"]]
    if "rater_role" in outcome:
        a = a.loc[a["rater_role"] == outcome["rater_role"]]
    if a.empty:
        raise _fail(spec.path, "outcome", f"no assessments match {dict(outcome)}")
    df = a.merge(tables["units"], on=["study_id", "unit_id"], validate="many_to_one").merge(
        tables["subjects"], on=["study_id", "subject_id"], validate="many_to_one"
    )
    df["week"] = df["day"].astype(float) / 7
    return _filter(spec, df)


def _run_lmm(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """Linear mixed model on assessments joined with units and subjects (+ ``week``)."""
    import plotnine as p9

    from outcomes.models.lmm.fit import lmm

    name = spec.name
    model = {k: v for k, v in spec.content["model"].items() if k != "kind"}
    df = _lmm_dataset(spec, tables)
    fit = lmm(df, **model)
    out = _Output()
    out.ard += [_population_ard(name, df), fit.to_ard(name, groups={"table": "lmm"})]
    out.estimates.append(_estimates(fit.fixed, name, "fixed"))
    diag = fit.diagnostics
    for i, comp in enumerate(spec.content.get("comparisons") or [], start=1):
        at = comp.get("at") or {}
        groups = {"comparison": i, **{f"at_{k}": v for k, v in sorted(at.items())}}
        options = {k: comp[k] for k in ("by", "ref", "method", "adjust") if k in comp}
        con = fit.contrasts(comp["specs"], at=at or None, **options)
        con = con.assign(term=_labels(con, comp.get("by")))
        em = fit.emmeans(comp["specs"], by=comp.get("by"), at=at or None)
        stats = [c for c in TIDY_COLUMNS if c != "term"]
        out.ard += [
            _ard(con, name, "contrast", stats, diag, groups),
            _ard(em, name, "emmeans", stats, diag, groups),
        ]
        out.estimates += [
            _estimates(con, name, "contrast", groups),
            _estimates(em, name, "emmeans", groups),
        ]
    response = spec.content["model"]["formula"].split("~")[0].strip()
    colour = (spec.content.get("comparisons") or [{}])[0].get("specs")
    keys = ["day", *([colour] if colour else [])]
    means = (
        df.assign(**{response: df[response].astype(float)})
        .groupby(keys, observed=True)[response]
        .mean()
        .reset_index()
    )
    means["day"] = means["day"].astype(float)
    aes = p9.aes("day", response, **({"color": colour, "group": colour} if colour else {}))
    out.figures["observed_means"] = (
        p9.ggplot(means, aes)
        + p9.geom_line()
        + p9.geom_point()
        + p9.labs(x="study day", y=f"mean {response}", title=spec.content["question"][:80])
        + p9.theme_bw()
    )
    return out


def _labels(table: pd.DataFrame, by: str | Sequence[str] | None) -> list[str]:
    base = table["contrast"].astype(str) if "contrast" in table else table["term"].astype(str)
    by_l = [] if by is None else ([by] if isinstance(by, str) else list(by))
    if not by_l:
        return list(base)
    extra = table[by_l].astype(str).agg(", ".join, axis=1)
    return [f"{b} | {e}" for b, e in zip(base, extra, strict=True)]


def _run_time_to_result(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """Time-to-result: derive_tte, Kaplan-Meier by group, log-rank and Cox comparisons."""
    from outcomes.derive.tte import derive_tte
    from outcomes.models.survival.cox import cox
    from outcomes.models.survival.kaplan_meier import kaplan_meier, logrank

    name = spec.name
    outcome = spec.content["outcome"]
    model = spec.content["model"]
    options = (
        {"retreatment_gap": outcome["retreatment_gap"]} if "retreatment_gap" in outcome else {}
    )
    tte = _filter(spec, derive_tte(tables, outcome["endpoint"], **options))
    by = model["by"]
    km = kaplan_meier(tte, by=by, conf_level=model.get("conf_level", 0.95))
    out = _Output()
    median = km.tidy()
    out.ard += [
        _population_ard(name, tte),
        _ard(
            median,
            name,
            "median",
            ["records", "events", "estimate", "conf_low", "conf_high"],
            km.diagnostics,
        ),
    ]
    out.estimates.append(_estimates(median, name, "median"))
    times = model.get("times") or []
    if times:
        surv = km.survival_at(times)
        surv["term"] = [
            f"{s}, day={t:g}" for s, t in zip(surv["strata"], surv["time"], strict=True)
        ]
        out.ard.append(
            _ard(
                surv,
                name,
                "survival",
                ["n_risk", "n_event", "surv", "std_err", "conf_low", "conf_high"],
                km.diagnostics,
            )
        )
    for i, comp in enumerate(spec.content.get("comparisons") or [], start=1):
        groups = {"comparison": i}
        if comp["test"] == "logrank":
            lr = logrank(tte, by=by, strata=comp.get("strata"))
            out.ard.append(
                _ard(
                    lr.table,
                    name,
                    "logrank",
                    ["statistic", "df", "p_value"],
                    lr.diagnostics,
                    groups,
                )
            )
            out.estimates.append(_estimates(lr.table, name, "logrank", groups))
        elif comp["test"] == "cox":
            options = {k: comp[k] for k in ("cluster", "strata", "ties") if k in comp}
            fit = cox(tte, comp.get("formula", by), **options)
            stats = [c for c in TIDY_COLUMNS if c not in ("term", "df")]
            stats += ["hazard_ratio", "hr_conf_low", "hr_conf_high"]
            counts = pd.DataFrame([{"term": "model", "n": fit.n, "n_events": fit.n_events}])
            ph = fit.ph_test.rename(columns={"chisq": "statistic"})
            out.ard += [
                _ard(fit.table, name, "cox", stats, fit.diagnostics, groups),
                _ard(counts, name, "cox", ["n", "n_events"], fit.diagnostics, groups),
                _ard(ph, name, "ph_test", ["statistic", "df", "p_value"], fit.diagnostics, groups),
            ]
            out.estimates.append(_estimates(fit.table, name, "cox", groups))
        else:
            raise _fail(spec.path, f"comparisons[{i - 1}].test", "must be 'logrank' or 'cox'")
    out.figures["kaplan_meier"] = km.plot(title=spec.content["question"][:80])
    return out


def _subset_population(
    spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """The schema tables restricted to the subjects the population filters keep."""
    subjects = _filter(spec, tables["subjects"])
    keep = subjects[["study_id", "subject_id"]]
    units = tables["units"].merge(keep, on=["study_id", "subject_id"])
    unit_keys = units[["study_id", "unit_id"]]
    out = {
        "studies": tables["studies"].loc[tables["studies"]["study_id"].isin(keep["study_id"])],
        "subjects": subjects,
        "units": units,
        "sessions": tables["sessions"].merge(unit_keys, on=["study_id", "unit_id"]),
        "assessments": tables["assessments"].merge(unit_keys, on=["study_id", "unit_id"]),
        "adverse_events": tables["adverse_events"].merge(keep, on=["study_id", "subject_id"]),
    }
    return {k: v.reset_index(drop=True) for k, v in out.items()}


def _run_comparison(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """Combination-vs-MN effects per indication (:func:`outcomes.compare`).

    ``model`` options are :func:`~outcomes.compare`'s keyword arguments;
    ``population`` filters the subjects (and with them their units, sessions, assessments and
    adverse events).
    """
    from outcomes.comparisons.comparison import compare

    name = spec.name
    options = {k: v for k, v in spec.content["model"].items() if k != "kind"}
    subset = _subset_population(spec, tables)
    res = compare(subset, **options)
    keys = ["source", "study_id", "indication", "outcome", "measure", "adjustment"]
    out = _Output()
    ard = res.to_ard()
    ard["analysis"] = name
    ard["group"] = [";".join(sorted([*g.split(";"), "table=comparison"])) for g in ard["group"]]
    out.ard += [_population_ard(name, subset["units"]), ard]
    for _, row in res.table.iterrows():
        tidy = pd.DataFrame([{"term": row["comparison"], **row[list(TIDY_COLUMNS[1:])]}])
        out.estimates.append(_estimates(tidy, name, "comparison", {k: row[k] for k in keys}))
    if len(res.table):
        out.figures["forest"] = res.forest_plot()
    return out


_RUNNERS: dict[str, Callable[[AnalysisSpec, Mapping[str, pd.DataFrame]], _Output]] = {
    "lmm": _run_lmm,
    "time_to_result": _run_time_to_result,
    "comparison": _run_comparison,
}
