"""The forest plot of a comparison table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from outcomes.comparisons.table import RATIO_MEASURES
from outcomes.errors import InputError

# --------------------------------------------------------------------------------------------
# forest plot
# --------------------------------------------------------------------------------------------

_MEASURE_LABEL = {
    "mean_difference": "mean difference",
    "odds_ratio": "odds ratio",
    "hazard_ratio": "hazard ratio",
    "risk_difference": "risk difference",
    "risk_ratio": "risk ratio",
}
_OUTCOME_LABEL = {
    "pct_improvement": "% improvement",
    "responder": "response",
    "time_to_result": "time to result",
    "ae_severe_erythema": "severe erythema",
    "ae_pih": "PIH",
}


def _forest_plot(
    table: pd.DataFrame, measures: list[str], sources: Sequence[str] | None, level: float
) -> Any:
    import plotnine as p9

    from outcomes.report.theme import MODALITY_COLOURS, theme_outcomes

    t = table.loc[table["measure"].isin(measures) & table["estimate"].notna()].copy()
    if sources is not None:
        t = t.loc[t["source"].isin(list(sources))]
    t = t.loc[np.isfinite(t["conf_low"]) & np.isfinite(t["conf_high"])]
    if t.empty:
        raise InputError("nothing to plot: no estimated rows for these measures and sources")
    t["combination"] = t["comparison"].str.split(" vs ").str[0]
    site = np.where(t["body_site"] == "all", "", ", " + t["body_site"].astype(str))
    t["row"] = t["indication"].str.replace("_", " ") + site + " (" + t["source"] + ")"
    shapes = {
        "randomised": "o",
        "naive": "^",
        "weighted": "s",
        "single_study": "v",
        "random_effects": "D",
    }
    t["adjustment"] = pd.Categorical(
        t["adjustment"], categories=[a for a in shapes if a in set(t["adjustment"])]
    )
    combos = sorted(t["combination"].unique())
    adjustments = list(t["adjustment"].cat.categories)
    panels = []
    keys = t[["outcome", "measure"]].drop_duplicates()
    published_only = set(t["outcome"]) - set(t.loc[t["source"] != "published", "outcome"])
    outcome_order = {"pct_improvement": 1, "responder": 2, "time_to_result": 3}
    keys = keys.assign(
        order=keys["measure"].map({m: i for i, m in enumerate(measures)}),
        published=keys["outcome"].isin(published_only),
        outcome_order=[
            outcome_order.get(o, 4 if str(o).startswith("ae_") else 0) for o in keys["outcome"]
        ],
    ).sort_values(["published", "order", "outcome_order", "outcome"])
    for outcome, measure in keys[["outcome", "measure"]].itertuples(index=False):
        d = t.loc[(t["outcome"] == outcome) & (t["measure"] == measure)].copy()
        order = sorted(d["row"].unique(), reverse=True)  # coord_flip: first row on top
        d["row"] = pd.Categorical(d["row"], categories=order)
        ratio = measure in RATIO_MEASURES
        dodge = p9.position_dodge(width=0.7)
        label = _OUTCOME_LABEL.get(outcome, outcome.replace("_", " "))
        if set(d["source"]) == {"trial"} and measure == "mean_difference":
            label = f"{outcome} score"
        title = f"{label}: {_MEASURE_LABEL.get(measure, measure)}"
        axis = _MEASURE_LABEL.get(measure, measure) + (" (log scale)" if ratio else "")
        if outcome == "pct_improvement":
            axis += " (percentage points)"
        elif measure == "mean_difference" and set(d["source"]) == {"trial"}:
            axis += " (score points)"
        # clip absurd intervals (few events) so one row does not flatten the panel
        if ratio:
            d["lo"] = d["conf_low"].clip(lower=1 / 50)
            d["hi"] = d["conf_high"].clip(upper=50)
        else:
            d["lo"], d["hi"] = d["conf_low"], d["conf_high"]
        group = "combination + ' ' + adjustment.astype(str)"
        p = (
            p9.ggplot(d, p9.aes(x="row", y="estimate", colour="combination", shape="adjustment"))
            + p9.geom_hline(yintercept=1.0 if ratio else 0.0, linetype="dashed", colour="grey")
            + p9.geom_linerange(p9.aes(ymin="lo", ymax="hi", group=group), position=dodge)
            + p9.geom_point(p9.aes(group=group), size=2.2, position=dodge, fill="white")
            + p9.scale_colour_manual(values=MODALITY_COLOURS, limits=combos)
            + p9.scale_shape_manual(values=shapes, limits=adjustments)
            + p9.coord_flip()
            + p9.labs(
                x="",
                y=axis,
                title=title,
                colour="combination",
                shape="adjustment",
            )
            + theme_outcomes(base_size=9, dpi=150)
        )
        if ratio:
            p = p + p9.scale_y_log10()
        panels.append(p)
    return _arrange(panels, level)


def _arrange(panels: list[Any], level: float) -> Any:
    """One figure: panels two per row (plotnine composition), sized to their rows."""
    from plotnine import labs, theme
    from plotnine.composition import Beside, Stack

    if len(panels) == 1:
        return panels[0]
    # one legend for the figure: every panel has the same scales, the last one shows them
    caption = (
        f"Points: estimates; lines: {100 * level:g}% confidence intervals (clipped at 1/50 and "
        "50). Registry: "
        "naive and propensity-weighted, clinic-clustered.\nRows that are not estimable are not "
        "drawn: see the warning column of comparison.csv."
    )
    panels = [p + theme(legend_position="none") for p in panels[:-1]] + [
        panels[-1] + labs(caption=caption)
    ]
    rows = [
        Beside(panels[i : i + 2]) if i + 1 < len(panels) else panels[i]
        for i in range(0, len(panels), 2)
    ]
    return Stack(rows) & theme(figure_size=(12.0, 3.2 * len(rows)), legend_box="vertical")


def _save_plot(plot: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    plot.save(path, verbose=False) if hasattr(plot, "theme") else plot.save(path)
