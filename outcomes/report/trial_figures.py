"""Figures of the trial report: CONSORT flow, observed means with model lines, model checks.

Drawn for an A4 text width (6.5 inches) with no text under 8 pt. Statistics come from the
toolkit; nothing here fits a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from outcomes.report.sections import END_REASONS
from outcomes.report.theme import MODALITY_COLOURS, theme_outcomes

#: Smallest font in these figures, in points at print size.
FONT = 8.5


def consort_figure(
    counts: pd.DataFrame, arm_list: Sequence[str], split: bool, primary_name: str
) -> Any:
    """A CONSORT flow diagram from :func:`outcomes.report.trial_sections.flow_counts`.

    One column per arm; in a split-face trial every box gives participants and sides, and the
    enrolment box says that each participant has one side in each arm.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    def count(stage: str, arm: str) -> tuple[int, int]:
        c = counts.loc[(counts["stage"] == stage) & (counts["arm"] == arm)]
        return int(c["participants"].sum()), int(c["units"].sum())

    def said(stage: str, arm: str) -> str:
        p, u = count(stage, arm)
        return f"{p} participants ({u} sides)" if split else f"{p} participants"

    p_all, u_all = count("enrolled", "all")
    top = f"Enrolled: {p_all} participants"
    if split:
        top += f" ({u_all} sides)\nsides randomised within each participant: one side per arm"
    elif len(arm_list) > 1:
        top += "\nrandomised"
    fig, ax = plt.subplots(figsize=(6.5, 5.2), dpi=300)
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)

    def box(
        x: float, y: float, w: float, text: str, colour: str = "#4d4d4d"
    ) -> tuple[float, float]:
        """Draw a box centred at (x, y); return its top and bottom."""
        h = 0.03 + 0.04 * (text.count("\n") + 1)
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0.005",
                facecolor="white",
                edgecolor=colour,
                linewidth=1.0,
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=FONT, linespacing=1.3)
        return y + h / 2 + 0.008, y - h / 2 - 0.008

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={"arrowstyle": "->", "color": "#4d4d4d", "lw": 0.8},
        )

    _, top_bottom = box(0.5, 0.93, 0.8, top)
    k = len(arm_list)
    xs = [(i + 0.5) / k for i in range(k)]
    width = min(0.9 / k, 0.6)
    for x, arm in zip(xs, arm_list, strict=True):
        colour = MODALITY_COLOURS.get(arm, "#4d4d4d")
        lost = [
            f"{END_REASONS[s.split(': ')[1]]}: {said(s, arm)}"
            for s in dict.fromkeys(counts["stage"])
            if s.startswith("lost: ") and ((counts["stage"] == s) & (counts["arm"] == arm)).any()
        ]
        boxes = [
            (0.76, f"Allocated to {arm}\n{said('allocated', arm)}"),
            (0.59, f"Treated\n{said('treated', arm)}"),
            (0.41, "Follow-up ended early\n" + ("\n".join(lost) or "none")),
            (
                0.13,
                f"Assessed at {primary_name.lower()}:\n{said('primary', arm)}\n"
                f"Analysed in the primary model:\n{said('analysed', arm)}",
            ),
        ]
        above = top_bottom
        for y, text in boxes:
            upper, lower = box(x, y, width, text, colour)
            arrow(x, above, x, upper)
            above = lower
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.01)
    return fig


def observed_model_figure(observed: pd.DataFrame, model: pd.DataFrame, ylab: str) -> Any:
    """Observed means (points, 95% CI) by visit and arm with the primary model's means (lines).

    ``observed`` has ``week``, ``modality``, ``mean``, ``low``, ``high``; ``model`` has
    ``week``, ``modality``, ``estimate`` (the model's estimated marginal means).
    """
    from plotnine import (
        aes,
        geom_errorbar,
        geom_line,
        geom_point,
        ggplot,
        labs,
        position_dodge,
    )

    from outcomes.report.theme import scale_colour_modality

    span = float(observed["week"].max() - observed["week"].min()) or 1.0
    dodge = position_dodge(width=span / 40)
    return (
        ggplot(observed, aes("week", "mean", colour="modality", group="modality"))
        + geom_line(aes("week", "estimate"), data=model, size=0.9)
        + geom_point(position=dodge, size=2.2)
        + geom_errorbar(aes(ymin="low", ymax="high"), width=span / 50, position=dodge)
        + scale_colour_modality()
        + labs(x="Weeks since baseline", y=ylab, colour="Arm")
        + theme_outcomes(figure_size=(6.5, 3.6))
    )


def observed_means(data: pd.DataFrame, schedule_weeks: dict[str, float]) -> pd.DataFrame:
    """Mean score with a t-based 95% CI per visit and arm (``visit``, ``modality``, ``value``)."""
    from scipy import stats

    rows = []
    for (visit, arm), g in data.groupby(["visit", "modality"], observed=True):
        x = g["value"].astype(float).dropna()
        half = (
            stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
            if len(x) > 1
            else np.nan
        )
        rows.append(
            {
                "visit": visit,
                "week": schedule_weeks[str(visit)],
                "modality": arm,
                "n": len(x),
                "mean": x.mean(),
                "low": x.mean() - half,
                "high": x.mean() + half,
            }
        )
    return pd.DataFrame(rows)


def diagnostics_figure(fitted: pd.DataFrame, modes: pd.DataFrame, names: dict[str, str]) -> Any:
    """Residuals against fitted values, and a normal QQ plot of each random effect.

    ``fitted`` has ``fitted`` and ``residual``; ``modes`` is
    :func:`outcomes.models.lmm.random_effects.conditional_modes`; ``names`` maps
    ``"group|effect"`` to the panel title.
    """
    import matplotlib.pyplot as plt
    from scipy import stats

    keys = list(dict.fromkeys(modes["group"] + "|" + modes["effect"]))
    panels = 1 + len(keys)
    cols = min(panels, 2)
    rows = int(np.ceil(panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.5, 2.9 * rows), dpi=300, squeeze=False)
    flat = axes.ravel()
    ax = flat[0]
    ax.scatter(fitted["fitted"], fitted["residual"], s=6, alpha=0.5, color="#0072B2", lw=0)
    ax.axhline(0, color="#4d4d4d", lw=0.8)
    ax.set_xlabel("Fitted value", fontsize=FONT + 0.5)
    ax.set_ylabel("Residual", fontsize=FONT + 0.5)
    ax.set_title("Residuals against fitted values", fontsize=FONT + 1)
    for ax, key in zip(flat[1:], keys, strict=False):
        group, effect = key.split("|")
        b = np.sort(modes.loc[(modes["group"] == group) & (modes["effect"] == effect), "estimate"])
        q = stats.norm.ppf((np.arange(1, len(b) + 1) - 0.5) / len(b))
        ax.scatter(q, b, s=8, color="#D55E00", lw=0)
        if len(b) > 2 and np.std(b) > 0:
            slope, icpt = np.polyfit(q, b, 1)
            ax.plot(q, icpt + slope * q, color="#4d4d4d", lw=0.8)
        ax.set_xlabel("Normal quantile", fontsize=FONT + 0.5)
        ax.set_ylabel("Predicted random effect", fontsize=FONT + 0.5)
        ax.set_title(names.get(key, key), fontsize=FONT + 1)
    for ax in flat:
        ax.tick_params(labelsize=FONT)
    for ax in flat[panels:]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig
