"""What the trial report's models are fitted to: the primary analysis plan and its datasets.

The trial report's primary analysis follows the declared model: :func:`primary_plan` reads a
declared analysis (as :func:`outcomes.analysis.spec.load_spec` returns it; the report loads it,
since this folder does not import ``outcomes.analysis``) or the report's ``primary_model``
parameter and says which model to fit, to which instrument, with which
options. :func:`mmrm_dataset` and :func:`grade_dataset` shape the assessments for
:func:`outcomes.mmrm` and :func:`outcomes.clmm`. Nothing here fits a model; the report does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from outcomes.errors import InputError
from outcomes.report.sections import primary_dataset

#: Readable names of the MMRM covariance structures (SAS ``TYPE=``).
COVARIANCE_LABELS = {
    "us": "unstructured",
    "toep": "Toeplitz",
    "toeph": "heterogeneous Toeplitz",
    "ar1": "first-order autoregressive",
    "ar1h": "heterogeneous first-order autoregressive",
    "ad": "first-order ante-dependence",
    "adh": "heterogeneous first-order ante-dependence",
    "cs": "compound symmetry",
    "csh": "heterogeneous compound symmetry",
}
#: Readable names of the degrees-of-freedom methods.
DDF_LABELS = {
    "kenward-roger": "Kenward-Roger",
    "kenward-roger-linear": "Kenward-Roger (linear)",
    "satterthwaite": "Satterthwaite",
    "between-within": "between-within",
    "residual": "residual",
}
PRIMARY_MODELS = ("lmm", "mmrm")
#: Models of the report's default primary analysis (when no declared analysis is given).
DEFAULT_FORMULAS = {"lmm": "value ~ week * modality", "mmrm": "value ~ baseline + modality * week"}


@dataclass(frozen=True)
class PrimaryPlan:
    """The primary analysis the trial report fits.

    Attributes
    ----------
    kind
        ``"lmm"`` (linear mixed model over weeks) or ``"mmrm"`` (visits as a factor).
    instrument, rater_role
        The scores analysed.
    formula
        Model formula (``value`` is the score; ``baseline`` the unit's week-0 score, MMRM).
    options
        Further model options: ``re_formula`` (lmm); ``visit``, ``cov``, ``ddf``, ``reml``
        (mmrm).
    source
        Where the plan came from, for the methods paragraph.
    """

    kind: str
    instrument: str
    rater_role: str
    formula: str
    options: Mapping[str, Any]
    source: str


def primary_plan(
    spec: Any,
    model: str = "lmm",
    instrument: str = "gb_quant",
    cov: str = "us",
    ddf: str = "kenward-roger",
) -> PrimaryPlan:
    """The primary analysis: the declared analysis ``spec`` if given, else ``model`` and options.

    Parameters
    ----------
    spec
        A declared analysis (:class:`~outcomes.analysis.spec.AnalysisSpec`) of kind ``lmm`` or
        ``mmrm``; its outcome, formula and model options are used.
    model, instrument, cov, ddf
        Without ``spec``: ``"lmm"`` (the report's default) or ``"mmrm"`` with covariance
        structure ``cov`` and degrees of freedom ``ddf``, on ``instrument``.
    """
    if spec is None:
        if model not in PRIMARY_MODELS:
            raise InputError(f"primary_model={model!r}: use one of {', '.join(PRIMARY_MODELS)}")
        options: dict[str, Any] = (
            {"visit": "week", "cov": cov, "ddf": ddf, "reml": True}
            if model == "mmrm"
            else {"re_formula": "~week"}
        )
        return PrimaryPlan(
            model,
            instrument,
            "investigator",
            DEFAULT_FORMULAS[model],
            options,
            f"report option primary_model = {model}",
        )
    declared = spec
    if declared.kind not in PRIMARY_MODELS:
        raise InputError(
            f"{declared.path}: model: kind {declared.kind!r} is not a trial primary analysis; "
            f"use one of {', '.join(PRIMARY_MODELS)}"
        )
    m = dict(declared.content["model"])
    out = dict(declared.content.get("outcome") or {})
    if declared.kind == "mmrm":
        options = {
            "visit": m.get("visit", "week"),
            "cov": m.get("cov", "us"),
            "ddf": m.get("ddf", "kenward-roger"),
            "reml": bool(m.get("reml", True)),
        }
    else:
        options = {"re_formula": m.get("re_formula", "~week")}
    return PrimaryPlan(
        declared.kind,
        str(out.get("instrument", instrument)),
        str(out.get("rater_role", "investigator")),
        str(m["formula"]),
        options,
        f"declared analysis {declared.name} ({declared.path.name})",
    )


def mmrm_dataset(data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Post-baseline scores with the unit's baseline (week 0) score as ``baseline``.

    ``data`` is the primary outcome's assessments with ``week`` counted from the baseline
    visit (:func:`outcomes.report.trial_sections.with_weeks`). Returns the rows and the number
    of units left out for want of a baseline score.
    """
    base = data.loc[data["week"] == 0, ["unit_id", "value"]].rename(columns={"value": "baseline"})
    post = data.loc[data["week"] > 0]
    kept = post.merge(base, on="unit_id")
    return kept.reset_index(drop=True), int(post["unit_id"].nunique() - kept["unit_id"].nunique())


def without_arm(formula: str) -> str:
    """``formula`` without its arm (``modality``) terms, for a single-arm study.

    >>> without_arm("value ~ baseline + modality * week")
    'value ~ baseline + week'
    """
    lhs, rhs = formula.split("~", 1)
    terms = []
    for term in rhs.split("+"):
        parts = [p.strip() for p in term.replace(":", "*").split("*") if p.strip() != "modality"]
        if parts:
            terms.append(" * ".join(parts))
    return f"{lhs.strip()} ~ {' + '.join(terms) or '1'}"


def time_ratio(
    table: pd.DataFrame, treatment: str, control: str
) -> tuple[float, float, float, float]:
    """Time ratio ``treatment / control`` with CI and p from an interval-censored AFT fit's
    coefficients (``arm[T.level]`` against the first level in sorted order)."""
    row = table.loc[table["term"].isin([f"arm[T.{treatment}]", f"arm[T.{control}]"])].iloc[0]
    sign = 1.0 if row["term"] == f"arm[T.{treatment}]" else -1.0
    low, high = sorted((sign * row["conf_low"], sign * row["conf_high"]))
    return (
        float(np.exp(sign * row["estimate"])),
        float(np.exp(low)),
        float(np.exp(high)),
        float(row["p_value"]),
    )


def change_from_baseline(means: pd.DataFrame, baseline: float) -> pd.DataFrame:
    """Change from baseline by visit from an ANCOVA-type model's LS means at ``baseline``.

    With the baseline score as covariate, the LS mean at baseline ``b`` less ``b`` is the
    model's mean change from ``b`` (the model of change on baseline has the same fit), with the
    same standard error and degrees of freedom; the t test is of no change.
    """
    from scipy import stats

    out = means.copy()
    for col in ("estimate", "conf_low", "conf_high"):
        out[col] = out[col] - baseline
    out["statistic"] = out["estimate"] / out["std_error"]
    out["p_value"] = 2 * stats.t.sf(out["statistic"].abs(), out["df"])
    return out


def direction_text(instrument: str) -> str:
    """``"higher is worse"`` or ``"higher is better"`` from the data dictionary's direction."""
    from outcomes.data.dictionary import load_dictionary

    info = load_dictionary().instruments.get(instrument)
    direction = getattr(info, "direction", "")
    return {"higher_worse": "higher is worse", "higher_better": "higher is better"}.get(
        direction, "direction not stated in the data dictionary"
    )


def grade_dataset(t: Mapping[str, pd.DataFrame], instrument: str = "gb_qual") -> pd.DataFrame:
    """The investigator's grades of an ordinal instrument as integers (``grade``); empty if none."""
    data = primary_dataset(t, instrument)
    data["grade"] = data["value"].round().astype(int)
    return data


def grade_levels(instrument: str) -> dict[int, str]:
    """The data dictionary's names of an ordinal instrument's grades (``{1: "macular", ...}``)."""
    from outcomes.data.dictionary import load_dictionary

    info = load_dictionary().instruments.get(instrument)
    return {int(k): str(v) for k, v in (info.levels or {}).items()} if info is not None else {}


def doubtful_estimate_text(diagnostics: pd.DataFrame, estimate: str) -> str:
    """One sentence saying ``estimate`` is doubtful when the fit is weakly identified, else ``""``.

    ``diagnostics`` is a model's ``.diagnostics``; the sentence follows its
    ``large_random_effect_sd`` row (see :class:`outcomes.models.glmm.result.GlmmResult`).
    """
    if not (diagnostics["code"] == "large_random_effect_sd").any():
        return ""
    return (
        f"The {estimate} is doubtful: the participant random-intercept SD is so large that the "
        "data barely identify subject-specific effects (see the model notes), so the marginal "
        "odds ratios are the ones to read."
    )
