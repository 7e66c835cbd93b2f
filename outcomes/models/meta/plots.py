"""Forest and funnel plots of a meta-analysis (plotnine)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import InputError

if TYPE_CHECKING:
    from outcomes.models.meta.meta_analysis import MetaAnalysisResult

# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------


def _axis_label(result: MetaAnalysisResult, exponentiate: bool) -> str:
    names = {
        "MD": "Mean difference",
        "SMD": "Standardised mean difference (Hedges' g)",
        "OR": "Odds ratio",
        "RR": "Risk ratio",
        "RD": "Risk difference",
        "GEN": "Effect",
    }
    name = names[result.measure]
    if result.is_ratio and not exponentiate:
        name = f"log {name.lower()}"
    return name


def _forest(result: MetaAnalysisResult, exponentiate: bool):
    import plotnine as p9

    if exponentiate and not result.is_ratio:
        raise InputError(f"exponentiate=True is for OR/RR, not {result.measure}.")
    transform = np.exp if exponentiate else (lambda x: x)
    summary = result.summary.set_index("term")
    studies = result.studies
    rows, diamonds, labels = [], [], []
    y = 0.0

    def diamond(term: str, label: str) -> None:
        nonlocal y
        y -= 1
        s = summary.loc[term]
        xs = transform(np.array([s["conf_low"], s["estimate"], s["conf_high"], s["estimate"]]))
        diamonds.append(pd.DataFrame({"x": xs, "y": [y, y + 0.35, y, y - 0.35], "id": term}))
        labels.append((y, label))

    blocks = (
        [
            (g, studies[studies[result.by] == g])
            for g in sorted(studies[result.by].unique(), key=str)
        ]
        if result.by
        else [(None, studies)]
    )
    for group, block in blocks:
        if group is not None:
            y -= 1
            labels.append((y, str(group)))
        for _, st in block.iterrows():
            y -= 1
            rows.append(
                {
                    "y": y,
                    "x": transform(st["yi"]),
                    "lo": transform(st["conf_low"]),
                    "hi": transform(st["conf_high"]),
                    "weight": st["weight"],
                }
            )
            labels.append((y, f"  {st['study']}" if group is not None else str(st["study"])))
        if group is not None:
            diamond(str(group), f"  {group} (k = {result.fits[str(group)].k})")
    y -= 0.5
    diamond("overall", f"Overall ({result.method}, k = {result.fits['overall'].k})")
    pts = pd.DataFrame(rows)
    dia = pd.concat(diamonds, ignore_index=True)
    ypos, ytext = zip(*labels, strict=True)
    plot = (
        p9.ggplot()
        + p9.geom_vline(xintercept=1.0 if exponentiate else 0.0, linetype="dashed", color="grey")
        + p9.geom_segment(p9.aes(x="lo", xend="hi", y="y", yend="y"), data=pts)
        + p9.geom_point(p9.aes(x="x", y="y", size="weight"), data=pts, shape="s")
        + p9.geom_polygon(p9.aes(x="x", y="y", group="id"), data=dia, fill="black")
        + p9.scale_y_continuous(
            breaks=list(ypos), labels=list(ytext), limits=(min(ypos) - 0.6, max(ypos) + 0.6)
        )
        + p9.scale_size_continuous(range=(1, 5), name="Weight (%)")
        + p9.labs(x=_axis_label(result, exponentiate), y="")
        + p9.theme_bw()
    )
    if exponentiate:
        plot += p9.scale_x_log10()
    return plot


def _funnel(result: MetaAnalysisResult):
    import plotnine as p9

    studies = result.studies
    mu = result.fits["overall"].estimate
    top = float(studies["sei"].max()) * 1.05
    z = stats.norm.isf(0.025)
    limits = pd.DataFrame({"x": [mu - z * top, mu, mu + z * top], "y": [top, 0.0, top]})
    return (
        p9.ggplot(studies, p9.aes(x="yi", y="sei"))
        + p9.geom_path(p9.aes(x="x", y="y"), data=limits, linetype="dashed", color="grey")
        + p9.geom_vline(xintercept=mu, color="grey")
        + p9.geom_point()
        + p9.scale_y_reverse()
        + p9.labs(x=_axis_label(result, False), y="Standard error")
        + p9.theme_bw()
    )
