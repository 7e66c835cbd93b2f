"""Write the data of tests/r/comparison/weighted.R from the simulated registry (seed 2).

Acne-scar units of ``simulate_registry(seed=2)``: modality (MN and MN+RF), clinic, phototype,
baseline score, the overlap weight from the comparison's (pairwise) propensity model, the GAIS
responder at the visit nearest day 168, and the time to GAIS <= 2. Run from the repository root:
``python tests/r/comparison/make_data.py`` (then ``Rscript tests/r/comparison/weighted.R``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from outcomes.comparisons.datasets import _instrument_scores, _unit_frame
from outcomes.comparisons.table import PHOTOTYPE_NUMBER
from outcomes.derive.tte import derive_tte
from outcomes.models.propensity import propensity_weights
from outcomes.simulate.registry import simulate_registry

HERE = Path(__file__).parent

t = simulate_registry(seed=2).tables
u = _unit_frame(t)
u = u.loc[(u["indication"] == "acne_scars") & u["modality"].isin(["MN", "MN+RF"])]
u = u.assign(phototype_num=u["phototype"].map(PHOTOTYPE_NUMBER).astype(float))
base = _instrument_scores(t, "gb_quant")
base = base.loc[base["day"] == 0].set_index("unit_id")["value"]
u = u.assign(baseline_score=u["unit_id"].map(base)).reset_index(drop=True)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pw = propensity_weights(
        u, "modality", ["phototype_num", "baseline_score", "site_id"], estimand="overlap"
    )
u["weight"] = np.round(pw.weights.to_numpy(), 6)
g = _instrument_scores(t, "gais")
g = g.loc[(g["day"] >= 140) & (g["day"] <= 210)].assign(dist=lambda d: (d["day"] - 168).abs())
g = g.sort_values(["unit_id", "dist", "day"]).groupby("unit_id")["value"].first()
u["responder"] = (u["unit_id"].map(g) <= 2).astype(float).where(u["unit_id"].isin(g.index))
tte = derive_tte(t, "gais_much_improved")[["unit_id", "time", "event"]]
u = u.merge(tte, on="unit_id", how="left")
cols = [
    "unit_id",
    "site_id",
    "phototype_num",
    "baseline_score",
    "modality",
    "weight",
    "responder",
    "time",
    "event",
]
u[cols].to_csv(HERE / "weighted_data.csv", index=False)
