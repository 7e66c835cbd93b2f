"""Published evidence: pooled effects from the packaged published-study tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from outcomes.comparisons.table import CONTROLS, _Collector, _diff_values, _ratio_values
from outcomes.errors import InputError

# --------------------------------------------------------------------------------------------
# published summaries
# --------------------------------------------------------------------------------------------


def _published(col: _Collector, data: pd.DataFrame, level: float) -> None:
    from outcomes.models.meta.meta_analysis import meta_analysis

    d = data.loc[data["arm2"].isin(CONTROLS) & ~data["arm1"].isin(CONTROLS)]
    binary = "events1" in d.columns
    for (indication, outcome, combo), sub in d.groupby(["indication", "outcome", "arm1"]):
        has_events = binary and sub["events1"].notna().all()
        controls = ", ".join(sorted(set(sub["arm2"])))
        measure = "OR" if has_events else "MD"
        base = {
            "source": "published",
            "study_id": f"{len(sub)} studies",
            "design": "meta-analysis",
            "indication": indication,
            "body_site": "all",
            "outcome": outcome,
            "measure": "odds_ratio" if measure == "OR" else "mean_difference",
            "comparison": f"{combo} vs MN",
            "adjustment": "random_effects",
            "definition": f"{outcome} as reported (controls: {controls})",
            "method": "REML random-effects meta-analysis; split-face studies paired with r = 0.5 "
            "unless given",
        }
        try:
            m, notes = col.run(meta_analysis, sub, measure, "REML", level=level, r=0.5)
        except InputError as exc:
            col.failed(base, "meta-analysis", exc)
            continue
        s = m.summary.iloc[-1]
        vals = (
            _ratio_values(float(s["estimate"]), float(s["std_error"]), np.nan, level)
            if measure == "OR"
            else _diff_values(float(s["estimate"]), float(s["std_error"]), np.nan, level)
        )
        n = float(sub["n1"].sum() + sub["n2"].sum())
        col.add(base, notes, **vals, n=n, n_clusters=float(len(sub)))


def _published_data(published: Any) -> pd.DataFrame | None:
    from outcomes.models.meta.published import published_data

    if published is None or published is False:
        return None
    if published is True:
        return pd.concat(
            [published_data("prp_acne_scars_response"), published_data("microneedling_continuous")],
            ignore_index=True,
        )
    if isinstance(published, str):
        return published_data(published)
    if isinstance(published, pd.DataFrame):
        return published
    raise InputError("published= takes True, an example name or a DataFrame of study summaries")
