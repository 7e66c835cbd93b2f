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

#: Width of the figure in inches: the text width of an A4 page with 2.5 cm margins.
_WIDTH = 6.3
#: Smallest text, in points, at that width (tick labels, "favours" labels, legend).
_FONT = 7.5
#: Ratio intervals are cut here (with an arrowhead) so one row does not flatten a panel.
_RATIO_LIMIT = 50.0

_MEASURE_LABEL = {
    "mean_difference": "mean difference",
    "odds_ratio": "odds ratio",
    "hazard_ratio": "hazard ratio",
    "risk_difference": "risk difference",
    "risk_ratio": "risk ratio",
}
_OUTCOME_LABEL = {
    "pct_improvement": "Percent improvement",
    "responder": "Response",
    "time_to_result": "Time to result",
    "ae_severe_erythema": "Severe erythema",
    "ae_pih": "Post-inflammatory hyperpigmentation",
    "gb_grade_final": "Final qualitative grade (published)",
    "excellent_response": "Excellent response (published)",
}
#: Point shape and legend name of each adjustment.
_ADJUSTMENTS = {
    "randomised": ("o", "trial, randomised"),
    "naive": ("^", "registry, naive"),
    "weighted": ("s", "registry, weighted"),
    "single_study": ("v", "published trial"),
    "random_effects": ("D", "published, pooled"),
}


def _outcome_label(outcome: str) -> str:
    if outcome in _OUTCOME_LABEL:
        return _OUTCOME_LABEL[outcome]
    from outcomes.data.dictionary import load_dictionary

    info = load_dictionary().instruments.get(outcome)
    return info.label if info is not None else outcome.replace("_", " ").capitalize()


def _lower_favours_combination(outcome: str) -> bool:
    """Whether an effect below the null line favours the combination."""
    from outcomes.data.dictionary import load_dictionary
    from outcomes.models.network.published import NETWORK_OUTCOMES

    if outcome in NETWORK_OUTCOMES:
        return NETWORK_OUTCOMES[outcome][2] == "desirable"
    if outcome.startswith("ae_"):
        return True
    info = load_dictionary().instruments.get(outcome)
    if info is not None:
        return not info.higher_is_better
    return False  # percent improvement, response, time to result: higher is better


def _forest_plot(
    table: pd.DataFrame, measures: list[str], sources: Sequence[str] | None, level: float
) -> Any:
    """One figure, two panels per row (one per outcome and measure), sized for an A4 page."""
    t = table.loc[table["measure"].isin(measures) & table["estimate"].notna()].copy()
    if sources is not None:
        t = t.loc[t["source"].isin(list(sources))]
    t = t.loc[np.isfinite(t["conf_low"]) & np.isfinite(t["conf_high"])]
    if t.empty:
        raise InputError("nothing to plot: no estimated rows for these measures and sources")
    t["combination"] = t["comparison"].str.split(" vs ").str[0]
    site = np.where(t["body_site"] == "all", "", ", " + t["body_site"].astype(str))
    t["row"] = (
        t["indication"].str.replace("_", " ").str.capitalize() + site + "\n(" + t["source"] + ")"
    )
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
    panels = [
        t.loc[(t["outcome"] == o) & (t["measure"] == m)]
        for o, m in keys[["outcome", "measure"]].itertuples(index=False)
    ]
    return _draw(panels, t, level)


def _draw(panels: list[pd.DataFrame], t: pd.DataFrame, level: float) -> Any:
    import textwrap

    import matplotlib.pyplot as plt

    from outcomes.report.theme import MODALITY_COLOURS

    row_in, top_in, bottom_in, right_in = 0.34, 0.5, 0.75, 0.45
    # the legend: four entries a row (combinations, adjustments, filled = doubtful), then a note
    entries = (
        t["combination"].nunique()
        + len(set(t["adjustment"]) & set(_ADJUSTMENTS))
        + any(_doubtful(r) for _, r in t.iterrows())
    )
    legend_in = 0.45 + 0.15 * -(-entries // 4)
    pairs = [panels[i : i + 2] for i in range(0, len(panels), 2)]
    heights = [
        top_in + bottom_in + row_in * max(p["row"].nunique() for p in pair) for pair in pairs
    ]
    height = sum(heights) + legend_in
    fig = plt.figure(figsize=(_WIDTH, height))
    column = _WIDTH / 2
    label_in = 0.1 + 0.055 * max(len(line) for r in t["row"] for line in r.split("\n"))
    plot_in = column - label_in - right_in
    top = height
    for pair, h in zip(pairs, heights, strict=True):
        for j, d in enumerate(pair):
            n = d["row"].nunique()
            ax = fig.add_axes(
                (
                    (j * column + label_in) / _WIDTH,
                    (top - top_in - row_in * n) / height,
                    plot_in / _WIDTH,
                    row_in * n / height,
                )
            )
            title = _draw_panel(ax, d, MODALITY_COLOURS)
            fig.text(
                (j * column + 0.05) / _WIDTH,
                (top - 0.05) / height,
                textwrap.fill(title, 48),
                fontsize=_FONT + 1,
                ha="left",
                va="top",
            )
        top -= h
    _legend(fig, t, MODALITY_COLOURS, level, legend_in / height)
    return fig


def _draw_panel(ax: Any, d: pd.DataFrame, colours: dict[str, str]) -> str:
    """Draw one outcome and measure; return the panel's title."""
    from outcomes.models.network.plots import clipped_interval, favours_axis

    outcome, measure = d["outcome"].iloc[0], d["measure"].iloc[0]
    ratio = measure in RATIO_MEASURES
    rows = sorted(d["row"].unique())
    y_of = {r: len(rows) - 1 - i for i, r in enumerate(rows)}  # first row on top
    null = 1.0 if ratio else 0.0
    lo = min(d["conf_low"].min(), null)
    hi = max(d["conf_high"].max(), null)
    if ratio:
        lo, hi = np.log(max(lo, 1 / _RATIO_LIMIT) / 1.3), np.log(min(hi, _RATIO_LIMIT) * 1.3)
    else:
        pad = 0.08 * (hi - lo) or 0.1
        lo, hi = lo - pad, hi + pad
    # the null line at least a third of the way in from either end: room for "favours"
    centre = np.log(null) if ratio else null
    lo, hi = min(lo, centre - (hi - centre) / 2), max(hi, centre + (centre - lo) / 2)
    limits = (np.exp(lo), np.exp(hi)) if ratio else (lo, hi)
    reference = d["comparison"].str.split(" vs ").str[1].iloc[0]
    favours = ("Favours combination", f"Favours {reference}")
    if not _lower_favours_combination(outcome):
        favours = favours[::-1]
    axis = _MEASURE_LABEL.get(measure, measure)
    if outcome == "pct_improvement":
        axis += " (% points)"
    elif measure == "mean_difference":
        axis += " (score points)"
    favours_axis(ax, limits, ratio, axis, favours, fontsize=_FONT)
    for row, g in d.groupby("row"):
        g = g.sort_values(["combination", "adjustment"])
        offsets = np.linspace(-0.3, 0.3, len(g)) if len(g) > 1 else np.zeros(1)
        for off, (_, r) in zip(offsets, g.iterrows(), strict=True):
            y = y_of[row] + off
            colour = colours.get(r["combination"], "#000000")
            clipped_interval(ax, y, r["conf_low"], r["conf_high"], colour, linewidth=1.0)
            ax.plot(
                [r["estimate"]],
                [y],
                marker=_ADJUSTMENTS.get(r["adjustment"], ("o", ""))[0],
                markersize=3.5,
                color=colour,
                markerfacecolor=colour if _doubtful(r) else "white",
                linestyle="none",
            )
    ax.set_yticks([y_of[r] for r in rows])
    ax.set_yticklabels(rows, fontsize=_FONT)
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(-0.5, len(rows) - 0.5)
    return f"{_outcome_label(outcome)}: {_MEASURE_LABEL.get(measure, measure)}"


def _doubtful(row: pd.Series) -> bool:
    """Whether a row's ``doubt`` column names a problem (drawn with a filled point)."""
    doubt = row.get("doubt")
    return isinstance(doubt, str) and bool(doubt)


def _legend(
    fig: Any, t: pd.DataFrame, colours: dict[str, str], level: float, bottom: float
) -> None:
    """Colour per combination, shape per adjustment, and what the lines and arrows mean."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=colours.get(c, "#000000"), linewidth=2, label=c)
        for c in sorted(t["combination"].unique())
    ]
    handles += [
        Line2D(
            [],
            [],
            marker=shape,
            color="#333333",
            markerfacecolor="white",
            linestyle="none",
            label=name,
        )
        for key, (shape, name) in _ADJUSTMENTS.items()
        if key in set(t["adjustment"])
    ]
    if any(_doubtful(r) for _, r in t.iterrows()):
        handles.append(
            Line2D(
                [],
                [],
                marker="s",
                color="#333333",
                markerfacecolor="#333333",
                linestyle="none",
                label="filled: doubtful estimate",
            )
        )
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, bottom),
        ncol=4,
        fontsize=_FONT,
        frameon=False,
    )
    fig.text(
        0.5,
        0.005,
        f"Points: estimates; lines: {100 * level:g}% confidence intervals; an arrowhead marks an "
        f"interval cut at 1/{_RATIO_LIMIT:g} or {_RATIO_LIMIT:g}.\nRows that are not estimable "
        "are not drawn: see the warning column of comparison.csv.",
        fontsize=_FONT,
        ha="center",
        va="bottom",
    )


def _save_plot(plot: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plot.savefig(path)
    plt.close(plot)
