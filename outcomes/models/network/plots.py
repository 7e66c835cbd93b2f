"""Figures of a network meta-analysis (matplotlib): network graph and forest plots.

Sized for print (6.5 inches wide, the text width of a portrait page) with 9-10 pt text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from outcomes.errors import InputError

if TYPE_CHECKING:
    from outcomes.models.network.component import ComponentMetaResult
    from outcomes.models.network.nma import NetworkMetaResult

__all__ = [
    "clipped_interval",
    "component_forest",
    "favours_axis",
    "forest",
    "forest_panels",
    "graph_legend",
    "graph_panels",
    "network_graph",
]

_FONT = 9
_NODE = "#0072B2"
_EDGE = "#555555"
_SPLIT = "#D55E00"
_SCALE_NAMES = {
    "MD": "Mean difference",
    "OR": "Odds ratio",
    "RR": "Risk ratio",
    "RD": "Risk difference",
    "GEN": "Effect",
}


def network_graph(
    table: pd.DataFrame,
    treatments: list[str],
    *,
    title: str | None = None,
    width: float = 6.5,
    ax=None,
    legend: bool = True,
):
    """Network graph: treatments on a circle, one line per compared pair.

    Line width grows with the number of studies (printed on the line); node size with the
    number of patients when arm sizes are known, else with the number of studies. Pairs
    compared in at least one split-face study are drawn dashed in orange. ``ax`` draws into
    an existing matplotlib axes (one panel of a larger figure) instead of a new figure;
    ``legend=False`` leaves out the line under the graph that explains sizes and dashes
    (:func:`graph_legend` gives its text, for a figure-wide note).
    """
    import matplotlib.pyplot as plt

    n = len(treatments)
    angle = np.pi / 2 - 2 * np.pi * np.arange(n) / n
    xy = {t: (np.cos(a), np.sin(a)) for t, a in zip(treatments, angle, strict=True)}
    if "paired" not in table:
        table = table.assign(paired=False)
    pairs = (
        table.groupby(["treat1", "treat2"])
        .agg(k=("study", "nunique"), split=("paired", "any"))
        .reset_index()
    )
    size = _node_sizes(table, treatments)
    if ax is None:
        fig, ax = plt.subplots(figsize=(width, width * 0.75))
    else:
        fig = ax.figure
    kmax = max(pairs["k"].max(), 1)
    for _, p in pairs.iterrows():
        (x1, y1), (x2, y2) = xy[p["treat1"]], xy[p["treat2"]]
        ax.plot(
            [x1, x2],
            [y1, y2],
            color=_SPLIT if p["split"] else _EDGE,
            linestyle="--" if p["split"] else "-",
            linewidth=1 + 5 * p["k"] / kmax,
            zorder=1,
            solid_capstyle="round",
        )
        ax.text(
            (x1 + x2) / 2,
            (y1 + y2) / 2,
            str(p["k"]),
            fontsize=_FONT - 1,
            ha="center",
            va="center",
            zorder=3,
            bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "ec": "none"},
        )
    smax = max(size.values()) or 1
    for t, (x, y) in xy.items():
        ax.scatter([x], [y], s=150 + 900 * size[t] / smax, color=_NODE, zorder=2)
        ha = "left" if x > 0.2 else "right" if x < -0.2 else "center"
        va = "bottom" if y > 0.9 else "top" if y < -0.9 else "center"
        push = 8 + 10 * np.sqrt(size[t] / smax)  # points beyond the node's edge
        ax.annotate(
            t,
            xy=(x, y),
            xytext=(push * x, push * y),
            textcoords="offset points",
            fontsize=_FONT + 1,
            ha=ha,
            va=va,
        )
    ax.set_xlim(-2.1, 2.1)
    ax.set_ylim(-1.5 if legend else -1.3, 1.6)  # room for the top node's label
    ax.set_aspect("equal")
    ax.axis("off")
    if legend:
        ax.text(
            0,
            -1.48,
            graph_legend(table),
            fontsize=_FONT - 1,
            ha="center",
            va="bottom",
            color="#333333",
        )
    if title:
        ax.set_title(title, fontsize=_FONT + 2)
    if fig.get_axes() == [ax]:
        fig.tight_layout()
    return fig


def graph_legend(table: pd.DataFrame) -> str:
    """What node sizes, line labels and dashes of :func:`network_graph` mean."""
    what = "patients" if "n1" in table else "studies"
    note = f"Node size: {what}. Line: number of studies"
    if "paired" in table and table["paired"].any():
        note += "; dashed orange: includes split-face studies"
    return note + "."


def graph_panels(results: list[tuple[str, NetworkMetaResult]], width: float = 6.5):
    """Network graphs two per row, one panel per network, titled as given."""
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, 3.0 * rows + 0.3), squeeze=False)
    for ax, (title, res) in zip(axes.flat, results, strict=False):
        network_graph(res._data.table, res.treatments, ax=ax, legend=False)
        ax.set_title(_wrap(title, 38), fontsize=_FONT)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    legends = dict.fromkeys(graph_legend(res._data.table) for _, res in results)
    fig.text(0.5, 0.01, " ".join(legends), fontsize=_FONT - 1, ha="center", va="bottom")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _node_sizes(table: pd.DataFrame, treatments: list[str]) -> dict[str, float]:
    """Patients per treatment (split-face patients counted once per side) or study counts."""
    out = dict.fromkeys(treatments, 0.0)
    if {"n1", "n2"} <= set(table.columns):
        seen: set[tuple[str, str]] = set()
        for _, r in table.iterrows():
            for t, n in ((r["treat1"], r["n1"]), (r["treat2"], r["n2"])):
                if (r["study"], t) not in seen:
                    seen.add((r["study"], t))
                    out[t] += float(n)
        return out
    for t in treatments:
        out[t] = float(
            table.loc[(table["treat1"] == t) | (table["treat2"] == t), "study"].nunique()
        )
    return out


def _axis(ax, rows: pd.DataFrame, exponentiate: bool, label: str, favours: tuple[str, str]) -> None:
    """Null line, scale fitted to the intervals and the two "favours" labels."""
    null = 1.0 if exponentiate else 0.0
    lo = min(rows["conf_low"].min(), null)
    hi = max(rows["conf_high"].max(), null)
    if exponentiate:
        limits = (lo / 1.3, hi * 1.3)
    else:
        pad = 0.08 * (hi - lo) or 0.1
        limits = (lo - pad, hi + pad)
    favours_axis(ax, limits, exponentiate, label, favours)


def favours_axis(
    ax,
    limits: tuple[float, float],
    exponentiate: bool,
    label: str,
    favours: tuple[str, str],
    fontsize: float = _FONT,
) -> None:
    """Null line, scale (log for ratios) and the two "favours" labels between the ticks and
    the axis title, pointing away from the null line.

    Shared by every forest plot of the package, so they all read the same way.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    null = 1.0 if exponentiate else 0.0
    ax.axvline(null, color="#777777", linestyle="--", linewidth=0.8)
    lo, hi = limits
    if exponentiate:
        ax.set_xscale("log")
        subs = (1.0, 2.0, 5.0) if hi / lo < 200 else (1.0,)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo, hi)
    ax.set_xlabel(label, fontsize=fontsize + 1, labelpad=20 * fontsize / _FONT)
    ax.tick_params(axis="both", labelsize=fontsize)
    for text, ha, shift in (
        (f"\u2190 {favours[0]}", "right", -4),
        (f"{favours[1]} \u2192", "left", 4),
    ):
        ax.annotate(
            text,
            xy=(null, 0),
            xycoords=("data", "axes fraction"),
            xytext=(shift, -24 * fontsize / _FONT),
            textcoords="offset points",
            fontsize=fontsize,
            ha=ha,
            va="top",
            color="#333333",
        )
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def clipped_interval(ax, y: float, low: float, high: float, color: str, **line) -> None:
    """A horizontal interval cut at the axis limits, with an arrowhead at each cut end."""
    left, right = ax.get_xlim()
    lo, hi = max(low, left), min(high, right)
    ax.hlines(y, lo, hi, color=color, **line)
    for cut, end, marker in ((low < left, lo, "<"), (high > right, hi, ">")):
        if cut:
            ax.plot([end], [y], marker=marker, color=color, markersize=4, clip_on=False)


def _layout(labels: list[str], right: list[str], header: str, width: float) -> dict[str, float]:
    """Inches of the label column (left), the text column (right) and the rows."""
    return {
        "left": min(0.25 + 0.068 * max(len(t) for t in labels), 0.4 * width),
        "right": 0.3 + 0.075 * max(len(t) for t in [*right, header]),
        "top": 0.45,
        "bottom": 0.95,
        "row": 0.28,
    }


def _draw_rows(
    ax,
    rows: pd.DataFrame,
    labels: list[str],
    right: list[str],
    header: str,
    exponentiate: bool,
    label: str,
    favours: tuple[str, str],
) -> None:
    """One forest panel: a row per estimate, the text column at the right."""
    n = len(rows)
    y = np.arange(n)[::-1]
    f = np.exp if exponentiate else (lambda v: v)
    rows = rows.assign(
        estimate=f(rows["estimate"]), conf_low=f(rows["conf_low"]), conf_high=f(rows["conf_high"])
    )
    ax.hlines(y, rows["conf_low"], rows["conf_high"], color="black", linewidth=1.2)
    ax.plot(rows["estimate"], y, "s", color=_NODE, markersize=6)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=_FONT + 1)
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(-0.7, n - 0.3)
    _axis(ax, rows, exponentiate, label, favours)
    for yi, text in zip(y, right, strict=True):
        ax.annotate(
            text,
            xy=(1.03, yi),
            xycoords=("axes fraction", "data"),
            fontsize=_FONT,
            va="center",
            ha="left",
        )
    ax.annotate(
        header,
        xy=(1.03, n - 0.4),
        xycoords=("axes fraction", "data"),
        fontsize=_FONT,
        va="bottom",
        ha="left",
        fontweight="bold",
    )


def _rows_plot(
    rows: pd.DataFrame,
    labels: list[str],
    right: list[str],
    header: str,
    exponentiate: bool,
    label: str,
    favours: tuple[str, str],
    title: str | None,
    width: float,
):
    return _panels_plot([(title, rows, labels, right, header, exponentiate, label, favours)], width)


def _panels_plot(panels: list[tuple], width: float):
    """Forest panels stacked in one figure, each with its own axis, title and text column.

    Each panel is ``(title, rows, labels, right, header, exponentiate, label, favours)``.
    """
    import matplotlib.pyplot as plt

    title_in = 0.35
    sizes = []
    for title, rows, labels, right, header, *_ in panels:
        lay = _layout(labels, right, header, width)
        lay["top"] += title_in if title else 0.0
        lay["height"] = lay["top"] + lay["bottom"] + lay["row"] * len(rows)
        sizes.append(lay)
    left = max(lay["left"] for lay in sizes)
    right_in = max(lay["right"] for lay in sizes)
    height = sum(lay["height"] for lay in sizes)
    fig = plt.figure(figsize=(width, height))
    top = height
    for (title, rows, labels, right, header, exp_, label, favours), lay in zip(
        panels, sizes, strict=True
    ):
        plot_h = lay["row"] * len(rows)
        bottom = top - lay["top"] - plot_h
        ax = fig.add_axes(
            (left / width, bottom / height, 1 - (left + right_in) / width, plot_h / height)
        )
        _draw_rows(ax, rows, labels, right, header, exp_, label, favours)
        if title:
            fig.text(0.02, (top - 0.08) / height, title, fontsize=_FONT + 2, ha="left", va="top")
        top -= lay["height"]
    return fig


def forest(
    result: NetworkMetaResult,
    model: str = "random",
    reference: str | None = None,
    *,
    exponentiate: bool | None = None,
    favours: tuple[str, str] | None = None,
    title: str | None = None,
    width: float = 6.5,
):
    """Every treatment against ``reference``, ordered by P-score (best first).

    ``favours`` labels the left and right of the null line; by default they follow
    ``small_values``: lower effects favour the treatment when small values are desirable.
    The right column gives the estimate with its CI and the P-score.
    """
    panel = _forest_panel(result, model, reference, exponentiate, favours, title)
    return _panels_plot([panel], width)


def forest_panels(
    results: list[tuple[str, NetworkMetaResult]], model: str = "random", *, width: float = 6.5
):
    """One figure with a forest panel per network (e.g. one per outcome), titled as given.

    Each network keeps its own scale (mean difference, odds ratio, ...) and "favours" labels.
    """
    if not results:
        raise InputError("forest_panels needs at least one (title, result) pair.")
    panels = [_forest_panel(res, model, None, None, None, title) for title, res in results]
    return _panels_plot(panels, width)


def _forest_panel(
    result: NetworkMetaResult,
    model: str,
    reference: str | None,
    exponentiate: bool | None,
    favours: tuple[str, str] | None,
    title: str | None,
) -> tuple:
    ref = result.reference if reference is None else result._treatment(reference)
    exponentiate = result.is_ratio if exponentiate is None else exponentiate
    if exponentiate and not result.is_ratio:
        raise InputError(f"exponentiate=True is for OR/RR, not {result.measure}.")
    model = result._model(model)
    rows = result.relative_effects(model, reference=ref)
    ps = result.p_scores.set_index("treatment")[f"p_score_{model}"]
    rows = rows.assign(p=rows["treatment"].map(ps)).sort_values("p", ascending=False)
    if favours is None:
        lower_better = result.small_values == "desirable"
        favours = (
            ("Favours treatment", f"Favours {ref}")
            if lower_better
            else (f"Favours {ref}", "Favours treatment")
        )
    f = np.exp if exponentiate else (lambda v: v)
    right = [
        f"{f(e):.2f} ({f(lo):.2f} to {f(hi):.2f})   {p:.2f}"
        for e, lo, hi, p in zip(
            rows["estimate"], rows["conf_low"], rows["conf_high"], rows["p"], strict=True
        )
    ]
    name = _SCALE_NAMES.get(result.measure, "Effect")
    if result.is_ratio and not exponentiate:
        name = f"log {name.lower()}"
    label = f"{name} vs {ref} ({model} effects, {int(100 * result.level)}% CI)"
    header = "Estimate (CI)   P-score"
    return (title, rows, list(rows["treatment"]), right, header, exponentiate, label, favours)


def component_forest(
    result: ComponentMetaResult,
    model: str = "random",
    *,
    exponentiate: bool | None = None,
    favours: tuple[str, str] = ("Lower with component", "Higher with component"),
    title: str | None = None,
    width: float = 6.5,
):
    """Incremental effect of each component (additive model) with its CI."""
    is_ratio = result.measure in ("OR", "RR")
    exponentiate = is_ratio if exponentiate is None else exponentiate
    rows = result.components[result.components["model"] == model]
    if rows.empty:
        raise InputError(f"model={model!r}: use 'common' or 'random'.")
    f = np.exp if exponentiate else (lambda v: v)
    right = [
        f"{f(e):.2f} ({f(lo):.2f} to {f(hi):.2f})"
        for e, lo, hi in zip(rows["estimate"], rows["conf_low"], rows["conf_high"], strict=True)
    ]
    name = _SCALE_NAMES.get(result.measure, "Effect")
    label = f"Incremental {name.lower()} of the component ({model} effects)"
    return _rows_plot(
        rows, list(rows["term"]), right, "Estimate (CI)", exponentiate, label, favours, title, width
    )
