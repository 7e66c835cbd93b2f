"""The MMRM of one simulated trial, through :func:`outcomes.mmrm` (slow: for small runs).

``analysis="mmrm"`` fits the trial's declared primary analysis (``analyses/
trial_mmrm_gb_quant.yaml``): the post-baseline scores ``y ~ baseline + arm * visit`` with the
visit a factor, unstructured covariance over visits within a side and, in split-face trials,
a patient random intercept shared by both sides (``nested_in``), REML, Kenward-Roger (or,
with ``ddf="satterthwaite"``, Satterthwaite) degrees of freedom; the estimate is the LS-mean
difference, combination minus control, at the primary visit (its true value is the simulated
effect: the arms do not differ at baseline).

Each trial is one call of the public function (no fast path). Measured here (2 workers,
load about 2.8): 0.03-0.04 s per fit that converges, up to about 1 s for one that does not;
200 trials x 2 sizes x 2 scenarios took 37 s (split-face, n 8 and 15) and 28 s (parallel), so
thousands of trials take minutes, not seconds: prefer a few hundred, and ``analysis="lmm"`` for
large studies. Trouble is data: the fit's diagnostics become codes (``singular_fit``,
``covariance_not_pd``, ...), and a fit that fails or does not converge is counted as failed
(never significant). In small split-face trials the patient intercept often sits on its
boundary (a third to a half of fits at 8-15 patients), and the test is conservative: the
per-side unstructured covariance cannot share the patient's week slope between the sides.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from outcomes.errors import OutcomesError
from outcomes.planning.design import Design
from outcomes.planning.generate import Replicate

__all__ = ["analyse_mmrm", "mmrm_frame"]

ARMS = ("control", "combination")


def mmrm_frame(rep: Replicate) -> pd.DataFrame:
    """Post-baseline rows with the unit's baseline score: ``y, baseline, arm, visit, unit,
    subject`` (``arm``: ``"control"`` / ``"combination"``; ``visit``: the visit index)."""
    frame = rep.to_frame()
    base = frame.loc[frame["visit"] == 0].set_index("unit")["y"]
    out = frame.loc[frame["visit"] > 0].copy()
    out["baseline"] = out["unit"].map(base)
    out["arm"] = pd.Categorical(np.where(out["arm"] == 1, ARMS[1], ARMS[0]), categories=ARMS)
    return out.reset_index(drop=True)


def analyse_mmrm(rep: Replicate, design: Design, alpha: float, ddf: str) -> dict[str, Any]:
    """LS-mean difference at the primary visit and its t-test (``ddf``: ``"kenward-roger"`` or
    ``"satterthwaite"``), from :func:`outcomes.mmrm`."""
    from outcomes.models.mmrm.fit import mmrm

    primary = design.visit_days.index(int(design.primary_day or 0))
    nan = float("nan")
    failed: dict[str, Any] = {"estimate": nan, "std_error": nan, "df": nan, "p_value": nan}
    failed |= {"conf_low": nan, "conf_high": nan, "warnings": ""}
    frame = mmrm_frame(rep)
    split = design.design == "split_body"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fit's trouble is read from its diagnostics
            fit = mmrm(
                frame,
                "y ~ baseline + arm * visit",
                subject="unit",
                visit="visit",
                cov="us",
                nested_in="subject" if split else None,
                ddf=ddf,
                visit_order=sorted(frame["visit"].unique()),
                level=1 - alpha,
            )
            table = fit.contrasts("arm", by="visit", ref=ARMS[0], level=1 - alpha)
    except (OutcomesError, np.linalg.LinAlgError) as exc:
        return failed | {"error": f"{type(exc).__name__}: {exc}"}
    diag = fit.diagnostics
    codes = sorted(set(diag.loc[diag["severity"] != "info", "code"])) if len(diag) else []
    if not fit.converged:
        return failed | {"warnings": ";".join(codes), "error": "not_converged"}
    row = table.loc[table["visit"] == primary]
    if len(row) != 1 or not np.isfinite(row["std_error"].iloc[0]):
        return failed | {"warnings": ";".join(codes), "error": "no estimate at the primary visit"}
    r = row.iloc[0]
    return {
        "estimate": float(r["estimate"]),
        "std_error": float(r["std_error"]),
        "df": float(r["df"]),
        "p_value": float(r["p_value"]),
        "conf_low": float(r["conf_low"]),
        "conf_high": float(r["conf_high"]),
        "warnings": ";".join(codes),
        "error": "",
    }
