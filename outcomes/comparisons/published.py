"""Published evidence: effects of the shipped real trials, pooled when there are several.

``published=True`` means the real trial arms shipped in
``outcomes/data/published/microneedling_network.csv`` (each with its citation), taken as
two-arm comparisons against microneedling alone. A comparison reported by one trial gives
that trial's own estimate (adjustment ``single_study``: nothing is pooled); two or more
trials are pooled by REML random-effects meta-analysis (``random_effects``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from outcomes.comparisons.table import CONTROLS, _Collector, _diff_values, _ratio_values
from outcomes.errors import InputError

#: Within-patient correlation of split-face rows without an ``r`` of their own (assumed; the
#: comparison report's ``split_r``). 0.3 is within what every shipped trial's counts allow
#: (Asif 2016's 20/50 vs 5/50 responders: at most 0.41; see
#: outcomes.models.meta.effect_sizes.phi_limits).
SPLIT_FACE_R = 0.3


def _published(col: _Collector, data: pd.DataFrame, level: float) -> None:
    from outcomes.models.meta.meta_analysis import meta_analysis

    d = data.loc[data["arm2"].isin(CONTROLS) & ~data["arm1"].isin(CONTROLS)]
    binary = "events1" in d.columns
    for (indication, outcome, combo), sub in d.groupby(["indication", "outcome", "arm1"]):
        has_events = binary and sub["events1"].notna().all()
        controls = ", ".join(sorted(set(sub["arm2"])))
        measure = "OR" if has_events else "MD"
        single = len(sub) == 1
        given = "r" in sub and sub["r"].notna().all()
        paired = "split-face studies paired with r = " + (
            "the data's r" if given else f"{SPLIT_FACE_R} unless given"
        )
        base = {
            "source": "published",
            "study_id": str(sub["study"].iloc[0]) if single else f"{len(sub)} studies",
            "design": str(sub["design"].iloc[0]) if single and "design" in sub else "meta-analysis",
            "indication": indication,
            "body_site": "all",
            "outcome": outcome,
            "measure": "odds_ratio" if measure == "OR" else "mean_difference",
            "comparison": f"{combo} vs MN",
            "adjustment": "single_study" if single else "random_effects",
            "definition": f"{outcome} as reported (controls: {controls})",
            "method": (
                "the study's own estimate (one study: nothing pooled); "
                if single
                else "REML random-effects meta-analysis; "
            )
            + paired,
        }
        method = "FE" if single else "REML"
        try:
            m, notes = col.run(meta_analysis, sub, measure, method, level=level, r=SPLIT_FACE_R)
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
    from outcomes.models.network.published import microneedling_pairs

    if published is None or published is False:
        return None
    if published is True:
        return microneedling_pairs()
    if isinstance(published, pd.DataFrame):
        return published
    raise InputError(
        "published= takes True (the shipped real trials, outcomes.microneedling_pairs()) or a "
        "DataFrame of study summaries in the layout of outcomes.escalc"
    )
