"""Kaplan-Meier plots: one theme for curves and numbers-at-risk tables (plotnine)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from outcomes.models.survival.kaplan_meier import KaplanMeierResult, _breaks


def _theme() -> Any:
    import plotnine as p9

    return p9.theme_bw(base_size=10) + p9.theme(
        legend_position="top", panel_grid_minor=p9.element_blank()
    )


def _km_plot(km: KaplanMeierResult, conf_int: bool, title: str | None) -> Any:
    import plotnine as p9

    parts = []
    for strata, g in km.table.groupby("strata", sort=False):
        start = pd.DataFrame(
            {
                "strata": [strata],
                "time": [0.0],
                "surv": [1.0],
                "conf_low": [1.0],
                "conf_high": [1.0],
            }
        )
        parts.append(pd.concat([start, g[["strata", "time", "surv", "conf_low", "conf_high"]]]))
    steps = pd.concat(parts, ignore_index=True)
    # a step ribbon: repeat each point at the next time so geom_ribbon draws steps
    ribbon = []
    for _, g in steps.groupby("strata", sort=False):
        nxt = g.assign(time=g["time"].shift(-1)).dropna(subset=["time"])
        # at a shared time the previous level comes first, so the ribbon steps vertically
        ribbon.append(pd.concat([nxt, g]).sort_values("time", kind="stable"))
    ribbon_df = pd.concat(ribbon, ignore_index=True)
    censored = km.table.loc[km.table["n_censor"] > 0]
    breaks = _breaks(km.table["time"].max())
    plot = p9.ggplot(steps, p9.aes("time", "surv", color="strata"))
    if conf_int:
        plot += p9.geom_ribbon(
            p9.aes(ymin="conf_low", ymax="conf_high", fill="strata"),
            data=ribbon_df,
            alpha=0.15,
            color=None,
        )
    plot += p9.geom_step(size=0.8)
    plot += p9.geom_point(data=censored, shape="+", size=3)
    plot += p9.scale_x_continuous(
        breaks=breaks, limits=(0, max(breaks[-1], km.table["time"].max()))
    )
    plot += p9.scale_y_continuous(limits=(0, 1))
    plot += p9.labs(
        x="days", y="probability without the event", color="", fill="", title=title or ""
    )
    return plot + _theme()


def risk_table_plot(km: KaplanMeierResult) -> Any:
    """The numbers-at-risk table as a plotnine figure, on the same axis as :meth:`plot`."""
    import plotnine as p9

    rt = km.risk_table
    breaks = _breaks(km.table["time"].max())
    order = list(dict.fromkeys(rt["strata"]))[::-1]
    rt = rt.assign(strata=pd.Categorical(rt["strata"], categories=order))
    return (
        p9.ggplot(rt, p9.aes("time", "strata", label="n_risk"))
        + p9.geom_text(size=8)
        + p9.scale_x_continuous(breaks=breaks, limits=(0, max(breaks[-1], km.table["time"].max())))
        + p9.labs(x="days", y="", title="number at risk")
        + _theme()
        + p9.theme(panel_grid=p9.element_blank())
    )
