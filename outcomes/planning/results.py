"""What a power study found: power and type I error with Monte Carlo intervals, bias, coverage,
model trouble as data, and the sample size that reaches the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from outcomes.errors import InputError
from outcomes.planning.analyse import Analysis
from outcomes.planning.design import Design

__all__ = ["PowerResult", "mc_interval", "summarise"]


INTERVALS = ("wilson", "exact")


def mc_interval(
    k: np.ndarray | int, n: np.ndarray | int, level: float = 0.95, method: str = "wilson"
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo interval of a proportion ``k / n``: Wilson score or exact (Clopper-Pearson)."""
    k_arr = np.asarray(k, dtype=float)
    n_arr = np.asarray(n, dtype=float)
    if method not in INTERVALS:
        raise InputError(f"interval={method!r}: use one of {', '.join(INTERVALS)}.")
    z_or_a = 1 - level
    if method == "exact":
        with np.errstate(invalid="ignore"):
            low = np.where(k_arr > 0, scipy.stats.beta.ppf(z_or_a / 2, k_arr, n_arr - k_arr + 1), 0)
            high = np.where(
                k_arr < n_arr, scipy.stats.beta.ppf(1 - z_or_a / 2, k_arr + 1, n_arr - k_arr), 1
            )
        return np.asarray(low, float), np.asarray(high, float)
    z = scipy.stats.norm.ppf(1 - z_or_a / 2)
    p = k_arr / n_arr
    centre = (p + z**2 / (2 * n_arr)) / (1 + z**2 / n_arr)
    half = z * np.sqrt(p * (1 - p) / n_arr + z**2 / (4 * n_arr**2)) / (1 + z**2 / n_arr)
    return centre - half, centre + half


def summarise(
    replicates: pd.DataFrame, alpha: float, level: float = 0.95, interval: str = "wilson"
) -> pd.DataFrame:
    """One row per sample size: power, type I error, bias, coverage and model trouble.

    A failed fit counts as "not significant" (it is also counted in ``failed``); bias, coverage
    and mean df are over the fits that succeeded (and have a true value: NaN otherwise); the
    empirical and mean SE over those with a finite estimate and SE (an exact test's odds ratio
    can be 0 or infinite).
    """
    rows = []
    for n, at in replicates.groupby("n", sort=True):
        row: dict[str, Any] = {"n": int(n)}  # type: ignore[arg-type]
        for scenario, prefix in (("alternative", "power"), ("null", "type1")):
            part = at[at["scenario"] == scenario]
            k = int((part["p_value"] < alpha).sum())
            m = len(part)
            low, high = mc_interval(k, m, level, interval) if m else (np.nan, np.nan)
            row[f"{prefix}_reps"] = m
            row[prefix] = k / m if m else np.nan
            row[f"{prefix}_low"] = float(low)
            row[f"{prefix}_high"] = float(high)
        alt = at[(at["scenario"] == "alternative") & (at["error"] == "")]
        known = alt[np.isfinite(alt["truth"].astype(float))]  # bias and coverage need a truth
        covered = (known["conf_low"] <= known["truth"]) & (known["truth"] <= known["conf_high"])
        row["bias"] = float((known["estimate"] - known["truth"]).mean()) if len(known) else np.nan
        finite = alt[np.isfinite(alt["estimate"]) & np.isfinite(alt["std_error"])]
        row["empirical_se"] = float(finite["estimate"].std(ddof=1)) if len(finite) > 1 else np.nan
        row["mean_se"] = float(finite["std_error"].mean()) if len(finite) else np.nan
        row["coverage"] = float(covered.mean()) if len(known) else np.nan
        row["mean_df"] = float(alt["df"].mean()) if len(alt) else np.nan
        row["mean_n_obs"] = float(at["n_obs"].mean())
        row["failed"] = int((at["error"] != "").sum())
        row["with_warnings"] = int((at["warnings"] != "").sum())
        row["warnings_share"] = row["with_warnings"] / len(at)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class PowerResult:
    """A finished (or resumed) power study.

    Attributes
    ----------
    design, analysis
        What was simulated and how each trial was analysed.
    seed, reps, target, level, interval
        The study's settings (``level``: of the Monte Carlo intervals).
    replicates
        One row per simulated trial: ``scenario, n, replicate, truth, estimate, std_error, df,
        p_value, conf_low, conf_high, n_obs, warnings, error``.
    summary
        One row per sample size (:func:`summarise`).
    """

    design: Design
    analysis: Analysis
    seed: int
    reps: int
    target: float
    replicates: pd.DataFrame
    level: float = 0.95
    interval: str = "wilson"
    summary: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.summary = summarise(self.replicates, self.analysis.alpha, self.level, self.interval)

    @property
    def sample_size(self) -> dict[str, int | None]:
        """Smallest simulated ``n`` per arm reaching the target power.

        ``estimate``: power at least the target; ``conservative``: the lower Monte Carlo limit
        at least the target. None when no simulated size reaches it.
        """
        s = self.summary
        hit = s.loc[s["power"] >= self.target, "n"]
        sure = s.loc[s["power_low"] >= self.target, "n"]
        return {
            "estimate": int(hit.min()) if len(hit) else None,
            "conservative": int(sure.min()) if len(sure) else None,
        }

    @property
    def diagnostics(self) -> pd.DataFrame:
        """Model trouble as data: ``n, scenario, code, count, share`` (of that cell's fits)."""
        rows = []
        for (n, scenario), at in self.replicates.groupby(["n", "scenario"], sort=True):
            codes = [c for w in at["warnings"] if w for c in w.split(";")]
            codes += ["fit_failed"] * int((at["error"] != "").sum())
            for code, count in pd.Series(codes, dtype=object).value_counts().sort_index().items():
                rows.append(
                    {
                        "n": int(n),  # type: ignore[call-overload]
                        "scenario": scenario,
                        "code": code,
                        "count": int(count),
                        "share": count / len(at),
                    }
                )
        return pd.DataFrame(rows, columns=["n", "scenario", "code", "count", "share"])

    def table(self) -> pd.DataFrame:
        """The power table for a protocol: n, power (interval), type I error (interval), ..."""
        s = self.summary

        def pct(x: pd.Series) -> pd.Series:
            return (100 * x).map(lambda v: "" if pd.isna(v) else f"{v:.1f}")

        out = pd.DataFrame({self.design.size_label.capitalize(): s["n"]})
        out["Power % (MC interval)"] = (
            pct(s["power"]) + " (" + pct(s["power_low"]) + " to " + pct(s["power_high"]) + ")"
        )
        if s["type1_reps"].sum():
            out["Type I error % (MC interval)"] = (
                pct(s["type1"]) + " (" + pct(s["type1_low"]) + " to " + pct(s["type1_high"]) + ")"
            )
        out["Bias"] = s["bias"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
        out["CI coverage %"] = pct(s["coverage"])
        out["Fits with warnings %"] = pct(s["warnings_share"])
        out["Failed fits"] = s["failed"]
        return out

    def plot(self):
        """Power curve: power by sample size with Monte Carlo intervals and the target line."""
        from plotnine import (
            aes,
            geom_errorbar,
            geom_hline,
            geom_line,
            geom_point,
            ggplot,
            labs,
            scale_y_continuous,
        )

        from outcomes.report.theme import theme_outcomes

        s = self.summary
        width = max(0.2, 0.03 * float(s["n"].max() - s["n"].min()))
        return (
            ggplot(s, aes("n", "power"))
            + geom_hline(yintercept=self.target, linetype="dashed", color="#888888")
            + geom_line()
            + geom_point(size=2)
            + geom_errorbar(aes(ymin="power_low", ymax="power_high"), width=width)
            + scale_y_continuous(limits=(0, 1), labels=lambda v: [f"{100 * x:.0f}%" for x in v])
            + labs(
                x=self.design.size_label.capitalize(),
                y="Power",
                title=f"Power at day {self.design.primary_day} (alpha {self.analysis.alpha:g})",
                caption=(
                    f"{self.reps} simulated trials per size, seed {self.seed}; bars: "
                    f"{100 * self.level:.0f}% Monte Carlo intervals ({self.interval}); dashed: "
                    f"target {100 * self.target:.0f}%"
                ),
            )
            + theme_outcomes()
        )

    def __repr__(self) -> str:
        size = self.sample_size
        return (
            f"PowerResult({self.design.design}, effect {self.design.effect:.3g} at day "
            f"{self.design.primary_day}, {self.reps} reps x {len(self.summary)} sizes; "
            f"n reaching {self.target:.0%}: {size['estimate']})"
        )
