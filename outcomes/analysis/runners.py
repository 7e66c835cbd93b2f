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


def _assessments(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The spec's outcome assessments joined with units and subjects, plus ``week``."""
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
    return df


def _lmm_dataset(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    return _filter(spec, _assessments(spec, tables))


def _visit_dataset(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Assessments as for ``lmm``, plus each unit's ``baseline`` (its day-0 value) and
    ``change`` from it (and ``responder``, 0/1, when the outcome defines it); ``week`` is a
    whole number when every visit falls on a whole week (so visit labels read ``4``, not
    ``4.0``). Population filters apply after these are added."""
    df = _assessments(spec, tables)
    keys = ["study_id", "unit_id"]
    base = df.loc[df["day"] == 0, [*keys, "value"]]
    twice = base.duplicated(keys, keep=False)
    if twice.any():
        unit = base.loc[twice, "unit_id"].iloc[0]
        raise _fail(
            spec.path,
            "outcome",
            f"unit {unit} has more than one day-0 value of {spec.content['outcome']['instrument']}"
            " (give rater_role to pick one)",
        )
    df = df.merge(base.rename(columns={"value": "baseline"}), on=keys, how="left")
    df["change"] = df["value"] - df["baseline"]
    if (df["day"] % 7 == 0).all():
        df["week"] = (df["day"] // 7).astype("int64")
    responder = spec.content["outcome"].get("responder")
    if responder:
        column = responder["column"]
        if column not in df.columns:
            raise _fail(
                spec.path,
                "outcome.responder.column",
                f"no column {column!r} in the analysis dataset; columns: {', '.join(df.columns)}",
            )
        values = df[column].astype(float)
        hit = pd.Series(True, index=df.index)
        if responder.get("min") is not None:
            hit &= values >= responder["min"]
        if responder.get("max") is not None:
            hit &= values <= responder["max"]
        df["responder"] = hit.astype(float).where(values.notna())
    return _filter(spec, df)


def _means_comparisons(spec: AnalysisSpec, fit: Any, out: _Output, kind: str = "lmm") -> None:
    """Each comparison of the spec into the ARD and estimates, grouped by comparison number and
    ``at``: ``fit.contrasts`` (table ``contrast``; link scale for ``clmm``/``glmm``), and
    ``fit.emmeans`` (``emmeans``; response scale for ``glmm``) or, for ``clmm``, category
    probabilities (``probabilities``); conditional and marginal odds (or rate) ratios
    (``odds_ratio``) for ``clmm``/``glmm`` with a logit or log link."""
    name = spec.name
    diag = fit.diagnostics
    for i, comp in enumerate(spec.content.get("comparisons") or [], start=1):
        at = comp.get("at") or {}
        groups = {"comparison": i, **{f"at_{k}": v for k, v in sorted(at.items())}}
        options = {k: comp[k] for k in ("by", "ref", "method", "adjust") if k in comp}
        con = fit.contrasts(comp["specs"], at=at or None, **options)
        con = con.assign(term=_labels(con, comp.get("by")))
        tables = {"contrast": con}
        if kind == "clmm":  # category probabilities, conditional and marginal
            p = fit.predict_probabilities(comp["specs"], by=comp.get("by"), at=at or None)
            tables["probabilities"] = p.assign(term=p["term"] + " (" + p["type"] + ")")
        else:
            scale = {"scale": "response"} if kind == "glmm" else {}
            tables["emmeans"] = fit.emmeans(
                comp["specs"], by=comp.get("by"), at=at or None, **scale
            )
        if kind in ("clmm", "glmm") and fit.link in ("logit", "log"):
            ratios = fit.odds_ratios(
                comp["specs"], by=comp.get("by"), at=at or None, ref=comp.get("ref")
            )
            labels = _labels(ratios.drop(columns="contrast"), comp.get("by"))  # term has the type
            tables["odds_ratio"] = ratios.assign(term=labels)
        stats = [c for c in TIDY_COLUMNS if c != "term"]
        for table, tidy in tables.items():
            out.ard.append(_ard(tidy, name, table, stats, diag, groups))
            out.estimates.append(_estimates(tidy, name, table, groups))


def _observed_means_figure(spec: AnalysisSpec, df: pd.DataFrame, x: str, x_label: str) -> Any:
    """Observed mean response by ``x`` (and by the first comparison's ``specs``)."""
    import plotnine as p9

    response = spec.content["model"]["formula"].split("~")[0].strip()
    colour = (spec.content.get("comparisons") or [{}])[0].get("specs")
    keys = [x, *([colour] if colour else [])]
    means = (
        df.assign(**{response: df[response].astype(float)})
        .groupby(keys, observed=True)[response]
        .mean()
        .reset_index()
    )
    if pd.api.types.is_numeric_dtype(means[x]):
        means[x] = means[x].astype(float)
    aes = p9.aes(x, response, **({"color": colour, "group": colour} if colour else {}))
    return (
        p9.ggplot(means, aes)
        + p9.geom_line()
        + p9.geom_point()
        + p9.labs(x=x_label, y=f"mean {response}", title=spec.content["question"][:80])
        + p9.theme_bw()
    )


def _run_lmm(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """Linear mixed model on assessments joined with units and subjects (+ ``week``)."""
    from outcomes.models.lmm.fit import lmm

    name = spec.name
    model = {k: v for k, v in spec.content["model"].items() if k != "kind"}
    df = _lmm_dataset(spec, tables)
    fit = lmm(df, **model)
    out = _Output()
    out.ard += [_population_ard(name, df), fit.to_ard(name, groups={"table": "lmm"})]
    out.estimates.append(_estimates(fit.fixed, name, "fixed"))
    _means_comparisons(spec, fit, out)
    out.figures["observed_means"] = _observed_means_figure(spec, df, "day", "study day")
    return out


def _run_mmrm(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """MMRM (:func:`outcomes.mmrm`) on the assessments (see :func:`_mmrm_dataset`);
    ``design: split_body`` fits side within patient (``subject: unit_id``,
    ``nested_in: subject_id``)."""
    from outcomes.models.mmrm.fit import mmrm

    name = spec.name
    model = {k: v for k, v in spec.content["model"].items() if k != "kind"}
    if model.pop("design", None) == "split_body":
        model.update(subject="unit_id", nested_in="subject_id")
    df = _visit_dataset(spec, tables)
    for key in ("subject", "visit", "nested_in", "cov_by"):
        if model.get(key) is not None and model[key] not in df.columns:
            raise _fail(
                spec.path,
                f"model.{key}",
                f"no column {model[key]!r} in the analysis dataset; columns: "
                + ", ".join(df.columns),
            )
    fit = mmrm(df, **model)
    out = _Output()
    out.ard += [_population_ard(name, df), fit.to_ard(name, groups={"table": "mmrm"})]
    out.estimates.append(_estimates(fit.tidy(), name, "fixed"))
    cp = fit.covariance_parameters
    cov = pd.DataFrame(
        {
            "term": [f"{g}|{p}" for g, p in zip(cp["group"], cp["parameter"], strict=True)],
            "estimate": cp["estimate"],
            "std_error": cp["std_error"],
        }
    )
    out.estimates.append(_estimates(cov, name, "covariance"))
    _means_comparisons(spec, fit, out, "mmrm")
    visit = model["visit"]
    out.figures["observed_means"] = _observed_means_figure(spec, df, visit, visit)
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


def _run_glmm(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """Cumulative-link (``kind: clmm``) or binomial/Poisson (``kind: glmm``) mixed model
    with random intercepts on the assessments (see :func:`_visit_dataset`)."""
    from outcomes.models.glmm import clmm, glmm

    name, kind = spec.name, spec.kind
    model = {k: v for k, v in spec.content["model"].items() if k != "kind"}
    df = _visit_dataset(spec, tables)
    fit = (clmm if kind == "clmm" else glmm)(df, **model)
    out = _Output()
    out.ard += [_population_ard(name, df), fit.to_ard(name, groups={"table": kind})]
    out.estimates.append(_estimates(fit.tidy(), name, "fixed"))
    _means_comparisons(spec, fit, out, kind)
    out.figures["observed_means"] = _observed_means_figure(spec, df, "day", "study day")
    return out


def _run_network_meta(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """Network meta-analysis of published study-level data (:func:`outcomes.network_meta`),
    one fit per within-patient correlation ``r`` (a sensitivity analysis: split-face trials
    do not report it), with ``component_meta`` and node-splitting when asked."""
    from outcomes.models.network.component import component_meta
    from outcomes.models.network.nma import network_meta

    name = spec.name
    model = spec.content["model"]
    data = tables["published"]
    network = (spec.content.get("outcome") or {}).get("network")
    if network is not None:
        if "outcome" not in data.columns:
            raise _fail(spec.path, "outcome.network", "the data have no 'outcome' column")
        data = data.loc[data["outcome"] == network].reset_index(drop=True)
        if data.empty:
            raise _fail(spec.path, "outcome.network", f"no rows with outcome {network!r}")
    elif "outcome" in data.columns and len(data["outcome"].unique()) > 1:
        raise _fail(
            spec.path,
            "outcome.network",
            "missing: the data hold several outcomes ("
            + ", ".join(map(str, data["outcome"].unique()))
            + "); pool like with like",
        )
    data = _filter(spec, data)
    keys = ("reference", "method_tau", "small_values", "level")
    options = {k: model[k] for k in keys if k in model}
    rs = model.get("r")
    out = _Output()
    counts = pd.DataFrame(
        [
            {
                "term": "analysis_set",
                "n_rows": float(len(data)),
                "n_studies": float(data["study"].nunique()) if "study" in data else np.nan,
            }
        ]
    )
    out.ard.append(to_ard(counts, analysis=name, groups={"table": "population"}))
    for r in rs if isinstance(rs, list) else [rs]:
        groups = {"r": r} if isinstance(rs, list) else {}
        res = network_meta(data, model["measure"], r=r, **options)
        out.ard.append(res.to_ard(name, groups={"table": "network_meta", **groups}))
        effects = pd.concat([res.relative_effects(m) for m in ("common", "random")])
        for m, part in effects.groupby("model", sort=False):
            out.estimates.append(_estimates(part, name, "network_meta", {"model": m, **groups}))
        if model.get("netsplit"):
            split = res.netsplit(model["netsplit"])
            split = split.assign(term=split["comparison"] + " | " + split["model"])
            stats = list(split.select_dtypes("number").columns)
            out.ard.append(_ard(split, name, "netsplit", stats, res.diagnostics, groups))
        if model.get("components"):
            comp = component_meta(res, inactive=model.get("inactive"))
            out.ard.append(comp.to_ard(name, groups={"table": "component_meta", **groups}))
            for m in ("common", "random"):
                out.estimates.append(
                    _estimates(comp.tidy(m), name, "component_meta", {"model": m, **groups})
                )
        if r == (rs[len(rs) // 2] if isinstance(rs, list) else rs):
            out.figures["network"] = res.network_plot()
            out.figures["forest"] = res.forest_plot()
    return out


_RUNNERS: dict[str, Callable[[AnalysisSpec, Mapping[str, pd.DataFrame]], _Output]] = {
    "lmm": _run_lmm,
    "time_to_result": _run_time_to_result,
    "comparison": _run_comparison,
    "mmrm": _run_mmrm,
    "network_meta": _run_network_meta,
    "clmm": _run_glmm,
    "glmm": _run_glmm,
}
