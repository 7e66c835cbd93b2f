"""Figures shared by the reports, drawn in the report theme.

Estimated marginal means by week and arm, Kaplan-Meier curves with their numbers at risk, and
cumulative incidence curves. Statistics come from the toolkit; nothing here fits a model.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from outcomes.report.theme import theme_outcomes


def emmeans_figure(means: pd.DataFrame, ylab: str) -> Any:
    """Estimated marginal means by week and arm, with 95% CIs (``week``, ``modality`` cols)."""
    from plotnine import aes, geom_errorbar, geom_line, geom_point, ggplot, labs, position_dodge

    from outcomes.report.theme import scale_colour_modality

    dodge = position_dodge(width=1.2)
    return (
        ggplot(means, aes("week", "estimate", colour="modality", group="modality"))
        + geom_line(position=dodge)
        + geom_point(position=dodge, size=2)
        + geom_errorbar(aes(ymin="conf_low", ymax="conf_high"), width=1.0, position=dodge)
        + scale_colour_modality()
        + labs(x="Week", y=ylab, colour="Arm")
        + theme_outcomes(figure_size=(6.5, 3.6))
    )


def km_figure(
    km: Any, xlab: str = "Days since first session", ylab: str = "", legend: str = "Arm"
) -> Any:
    """Kaplan-Meier curves by arm with 95% bands, and the numbers at risk under the curves.

    Draws :attr:`KaplanMeierResult.table` and :attr:`KaplanMeierResult.risk_table` in the
    report theme and the fixed modality colours, as one plot (numbers at risk are text rows
    below zero), so the figure keeps its size in every format. The first ``by`` column of the
    fit names the arm.
    """
    from plotnine import (
        aes,
        annotate,
        geom_point,
        geom_ribbon,
        geom_step,
        geom_text,
        ggplot,
        labs,
        scale_x_continuous,
        scale_y_continuous,
    )

    from outcomes.report.theme import scale_colour_modality, scale_fill_modality

    arm = km.by[0]
    tab = km.table.rename(columns={arm: "arm"})
    start = tab.groupby("arm", sort=False).head(1).assign(time=0.0, surv=1.0)
    start = start.assign(conf_low=1.0, conf_high=1.0, n_censor=0)
    steps = pd.concat([start, tab], ignore_index=True).sort_values(["arm", "time"], kind="stable")
    ribbon = []
    for _, g in steps.groupby("arm", sort=False):
        nxt = g.assign(time=g["time"].shift(-1)).dropna(subset=["time"])
        ribbon.append(pd.concat([nxt, g]).sort_values("time", kind="stable"))
    band = pd.concat(ribbon, ignore_index=True)
    risk = km.risk_table.rename(columns={arm: "arm"})
    breaks = sorted(risk["time"].unique())
    limits = (0, max(breaks[-1], float(tab["time"].max())))
    order = list(dict.fromkeys(risk["arm"]))
    row_y = {a: -0.13 * (i + 1) - 0.04 for i, a in enumerate(order)}
    risk = risk.assign(y=risk["arm"].map(row_y))
    bottom = min(row_y.values()) - 0.08
    return (
        ggplot(steps, aes("time", "surv", colour="arm"))
        + geom_ribbon(
            aes(ymin="conf_low", ymax="conf_high", fill="arm"), data=band, alpha=0.15, colour=None
        )
        + geom_step(size=0.8)
        + geom_point(data=tab.loc[tab["n_censor"] > 0], shape="+", size=3)
        + geom_text(aes("time", "y", label="n_risk"), data=risk, size=9, show_legend=False)
        + annotate("text", x=0, y=-0.06, label="Number at risk", ha="left", size=8.5)
        + scale_colour_modality()
        + scale_fill_modality()
        + scale_x_continuous(breaks=breaks, limits=limits)
        + scale_y_continuous(breaks=[0, 0.25, 0.5, 0.75, 1], limits=(bottom, 1))
        + labs(x=xlab, y=ylab, colour=legend, fill=legend)
        + theme_outcomes(figure_size=(6.5, 4.2))
    )


def cumulative_incidence_figure(ci: Any, xlab: str, ylab: str) -> Any:
    """Cumulative incidence (Aalen-Johansen) step curves by arm in the report theme."""
    from plotnine import aes, geom_step, ggplot, labs, scale_y_continuous

    from outcomes.report.theme import scale_colour_modality

    arm = ci.by[0]
    tab = ci.table.rename(columns={arm: "arm"})
    start = tab.groupby("arm", sort=False).head(1).assign(time=0.0, estimate=0.0)
    steps = pd.concat([start, tab], ignore_index=True).sort_values(["arm", "time"], kind="stable")
    return (
        ggplot(steps, aes("time", "estimate", colour="arm"))
        + geom_step(size=0.8)
        + scale_colour_modality()
        + scale_y_continuous(limits=(0, None))  # type: ignore[arg-type]
        + labs(x=xlab, y=ylab, colour="Modality")
        + theme_outcomes(figure_size=(6.5, 3.4))
    )


def grade_figure(probs: pd.DataFrame, levels: dict[int, str], xlab: str) -> Any:
    """Predicted probability of each grade by arm: one stacked horizontal bar per arm.

    ``probs`` has ``modality``, ``category`` and ``estimate`` (e.g. the marginal rows of
    :meth:`GlmmResult.predict_probabilities` at one visit); ``levels`` names the grades.
    """
    from plotnine import (
        aes,
        coord_flip,
        geom_col,
        geom_text,
        ggplot,
        labs,
        position_stack,
        scale_fill_brewer,
    )

    p = probs.assign(
        grade=pd.Categorical(
            [f"{int(c)} {levels.get(int(c), '')}".strip() for c in probs["category"]],
            categories=[f"{k} {v}".strip() for k, v in sorted(levels.items(), reverse=True)],
        ),
        label=[f"{100 * v:.0f}%" if v >= 0.06 else "" for v in probs["estimate"]],
    )
    return (
        ggplot(p, aes("modality", "estimate", fill="grade"))
        + geom_col(width=0.6)
        + geom_text(aes(label="label"), position=position_stack(vjust=0.5), size=9)
        + coord_flip()
        + scale_fill_brewer(type="seq", palette="Blues", direction=-1)
        + labs(x="", y=xlab, fill="Grade")
        + theme_outcomes(figure_size=(6.5, 2.6))
    )
