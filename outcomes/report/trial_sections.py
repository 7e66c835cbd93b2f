"""Tables and sentences of the trial report that follow the study's data.

The trial report (``reports/trial.qmd``) works for any schedule and design: the visit schedule
and baseline come from study days, not from visit labels; the participant flow counts
participants and, in a split-face trial, sides; the adverse-event table gives "any adverse
event", participants and events, and the between-arm risk ratio and risk difference (paired by
participant in a split-face trial); patient-reported outcomes appear when they were collected.
Labels come from the data dictionary. Nothing here fits a mixed model; the report does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.report.sections import (
    END_REASONS,
    MISSING,
    as_frame,
    codelist_label,
    mean_sd,
    n_pct,
    short_name,
)
from outcomes.report.tables import format_number

# --------------------------------------------------------------------------------------------
# visits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """The visit schedule of one instrument, from study days.

    Attributes
    ----------
    weeks
        Visit label -> weeks since baseline (median study day of the visit, less the baseline
        visit's, over 7), in time order.
    baseline
        The baseline visit: the one with the earliest median study day, whatever its label.
    baseline_day
        Its median study day.
    """

    weeks: dict[str, float]
    baseline: str
    baseline_day: float

    def nearest(self, week: float) -> str:
        """The post-baseline visit closest to ``week`` (the baseline if there is none)."""
        post = {v: w for v, w in self.weeks.items() if v != self.baseline} or self.weeks
        return min(post, key=lambda v: abs(post[v] - week))

    def name(self, visit: str) -> str:
        """A visit as people read it: ``"Baseline"``, ``"Week 4"``, ``"Month 1 (week 4)"``."""
        week = self.weeks[visit]
        label = visit.replace("_", " ").strip()
        label = label[:1].upper() + label[1:]
        if visit == self.baseline:
            return "Baseline" if label.lower() == "baseline" else f"{label} (baseline)"
        if label.lower() == f"week {week:g}":
            return label
        return f"{label} (week {week:g})"


def schedule_from_days(data: pd.DataFrame) -> Schedule:
    """The schedule of ``data`` (one instrument's assessments with ``visit`` and ``day``)."""
    days = data.groupby("visit")["day"].median().astype(float).sort_values(kind="stable")
    base_day = float(days.iloc[0])
    return Schedule(
        weeks={str(v): (float(d) - base_day) / 7 for v, d in days.items()},
        baseline=str(days.index[0]),
        baseline_day=base_day,
    )


def with_weeks(data: pd.DataFrame, schedule: Schedule) -> pd.DataFrame:
    """``data`` with ``week`` = weeks since the baseline visit's study day."""
    return data.assign(week=(data["day"].astype(float) - schedule.baseline_day) / 7)


def control_arm(units: pd.DataFrame, control: str) -> str:
    """The control arm: ``control`` if the study has it, else the arm the data dictionary calls
    a control or comparator, else the first arm in sorted order."""
    found = sorted(units["modality"].dropna().unique())
    if control in found or not found:
        return control
    named = [
        a
        for a in found
        if any(w in codelist_label("modality", a) for w in ("control", "comparator"))
    ]
    return (named or found)[0]


def two_arms(
    t: Mapping[str, pd.DataFrame], control: str, treatment: str | None, study: str
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The study's tables cut to ``control`` and ``treatment`` (the report compares two arms),
    and the arms left out.

    A study with more than two arms needs ``treatment``; without it, or with an arm the study
    does not have, an InputError says which arms there are.
    """
    from outcomes.errors import InputError

    units = t["units"]
    found = sorted(units["modality"].dropna().unique())
    others = [a for a in found if a != control]
    if treatment is None and len(others) <= 1:
        return dict(t), []
    if treatment is None or treatment not in others:
        how = " ".join(f"-P treatment={a}" for a in others)
        raise InputError(
            f"study {study} has {len(found)} arms ({', '.join(found)}); the trial report "
            f"compares one with {control}: render it once per arm ({how})"
            + ("" if treatment is None else f"; {treatment!r} is not one of them")
        )
    kept_units = units.loc[units["modality"].isin([control, treatment])]
    subjects = set(kept_units["subject_id"])
    unit_ids = set(kept_units["unit_id"])
    cut = dict(t)
    for name, df in t.items():
        if "unit_id" in df.columns and name != "units":
            cut[name] = df.loc[df["unit_id"].isna() | df["unit_id"].isin(unit_ids)]
        if "subject_id" in df.columns:
            cut[name] = cut[name].loc[cut[name]["subject_id"].isin(subjects)]
    cut["units"] = kept_units
    cut = {name: df.reset_index(drop=True) for name, df in cut.items()}
    return cut, [a for a in others if a != treatment]


# --------------------------------------------------------------------------------------------
# participant flow (CONSORT)
# --------------------------------------------------------------------------------------------


def flow_counts(
    t: Mapping[str, pd.DataFrame],
    arm_list: Sequence[str],
    data: pd.DataFrame,
    schedule: Schedule,
    primary_visit: str,
    analysed: set[str] | None = None,
) -> pd.DataFrame:
    """CONSORT counts per arm: participants and units at each stage.

    ``data`` is the primary outcome's assessments (unit_id, visit); ``analysed`` the units the
    primary model used (default: every unit of ``data``). Rows: ``stage``
    (enrolled, allocated, treated, assessed at baseline, followed up to the primary visit,
    analysed, lost with each reason), ``arm``, ``participants``, ``units``.
    """
    units = t["units"].merge(t["subjects"][["subject_id", "end_reason"]], on="subject_id")
    treated = set(t["sessions"]["unit_id"])
    base = set(data.loc[data["visit"] == schedule.baseline, "unit_id"])
    primary = set(data.loc[data["visit"] == primary_visit, "unit_id"])
    analysed = set(data["unit_id"]) if analysed is None else analysed
    rows = []

    def add(stage: str, arm: str, u: pd.DataFrame) -> None:
        rows.append(
            {
                "stage": stage,
                "arm": arm,
                "participants": int(u["subject_id"].nunique()),
                "units": len(u),
            }
        )

    add("enrolled", "all", units)
    for arm in arm_list:
        u = units.loc[units["modality"] == arm]
        add("allocated", arm, u)
        add("treated", arm, u.loc[u["unit_id"].isin(treated)])
        add("baseline", arm, u.loc[u["unit_id"].isin(base)])
        add("primary", arm, u.loc[u["unit_id"].isin(primary)])
        add("analysed", arm, u.loc[u["unit_id"].isin(analysed)])
        for reason in END_REASONS:
            if reason != "completed":
                lost = u.loc[u["end_reason"] == reason]
                if len(lost):
                    add(f"lost: {reason}", arm, lost)
    return pd.DataFrame(rows)


def flow_table(
    counts: pd.DataFrame, arm_list: Sequence[str], split: bool, primary_name: str
) -> pd.DataFrame:
    """The flow counts as a table: one row per stage, one column per arm.

    In a split-face trial each cell reads ``"50 participants (50 sides)"``: every participant
    contributes one side to each arm.
    """
    labels = {
        "allocated": "Allocated",
        "treated": "Treated (at least one session)",
        "baseline": "Assessed at baseline",
        "primary": f"Assessed at {primary_name.lower()} (primary visit)",
        "analysed": "Analysed in the primary model",
    }
    stages = [s for s in dict.fromkeys(counts["stage"]) if s != "enrolled"]
    rows: list[dict[str, str]] = []
    for stage in stages:
        label = labels.get(stage) or (
            "Follow-up ended early: " + END_REASONS[stage.split(": ")[1]].lower()
        )
        row = {"Stage": label}
        for arm in arm_list:
            c = counts.loc[(counts["stage"] == stage) & (counts["arm"] == arm)]
            p, u = (int(c["participants"].sum()), int(c["units"].sum())) if len(c) else (0, 0)
            row[arm] = f"{p} ({u} sides)" if split else str(p)
        rows.append(row)
    return as_frame(rows)


# --------------------------------------------------------------------------------------------
# adverse events
# --------------------------------------------------------------------------------------------


def risk_ratio_difference(
    a1: int, n1: int, a0: int, n0: int, level: float = 0.95
) -> dict[str, float]:
    """Risk ratio (log-scale Wald interval) and risk difference (Wald) of two independent groups.

    The ratio is not estimable (NaN) when either group has no events.
    """
    z = stats.norm.ppf(0.5 + level / 2)
    p1, p0 = a1 / n1, a0 / n0
    rd = p1 - p0
    se_rd = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    out = {"rd": rd, "rd_low": rd - z * se_rd, "rd_high": rd + z * se_rd}
    if a1 and a0:
        rr = p1 / p0
        se = math.sqrt(1 / a1 - 1 / n1 + 1 / a0 - 1 / n0)
        out |= {"rr": rr, "rr_low": rr * math.exp(-z * se), "rr_high": rr * math.exp(z * se)}
    else:
        out |= {"rr": math.nan, "rr_low": math.nan, "rr_high": math.nan}
    return out


def paired_risk_ratio_difference(
    both: int, only1: int, only0: int, n: int, level: float = 0.95
) -> dict[str, float]:
    """Risk ratio and difference of paired binary outcomes (two sides of each participant).

    ``both``: pairs with the event on both sides; ``only1``/``only0``: on the arm-1 / arm-0 side
    only; ``n``: pairs. Risk difference ``(only1 - only0) / n`` with the matched-pairs Wald
    variance; risk ratio ``(both + only1) / (both + only0)`` with variance of its log
    ``(only1 + only0) / ((both + only1)(both + only0))`` (Agresti, Categorical Data Analysis,
    section 10.1).
    """
    z = stats.norm.ppf(0.5 + level / 2)
    rd = (only1 - only0) / n
    se_rd = math.sqrt(max((only1 + only0) - (only1 - only0) ** 2 / n, 0.0)) / n
    out = {"rd": rd, "rd_low": rd - z * se_rd, "rd_high": rd + z * se_rd}
    e1, e0 = both + only1, both + only0
    if e1 and e0:
        rr = e1 / e0
        se = math.sqrt((only1 + only0) / (e1 * e0))
        out |= {"rr": rr, "rr_low": rr * math.exp(-z * se), "rr_high": rr * math.exp(z * se)}
    else:
        out |= {"rr": math.nan, "rr_low": math.nan, "rr_high": math.nan}
    return out


def adverse_event_summary(
    t: Mapping[str, pd.DataFrame], arm_list: Sequence[str], split: bool
) -> pd.DataFrame:
    """Adverse events per term (and "any adverse event") and arm, with between-arm RR and RD.

    Counted per participant in a parallel or single-arm trial and per side in a split-face
    trial (an event recorded without a side counts for both sides). Columns: ``term``,
    ``<arm> n``, ``<arm> N``, ``<arm> events`` per arm, then, with two arms (the second against
    the first), ``rr, rr_low, rr_high, rd, rd_low, rd_high`` (risks as proportions).
    """
    units = t["units"]
    ae = t["adverse_events"]
    if ae.empty:
        return pd.DataFrame()
    if split:
        sides = units[["subject_id", "unit_id", "modality"]]
        local = ae.loc[ae["unit_id"].notna()].merge(
            sides[["unit_id", "modality"]], on="unit_id", how="left"
        )
        whole = ae.loc[ae["unit_id"].isna()].drop(columns="unit_id").merge(sides, on="subject_id")
        events = pd.concat([local, whole], ignore_index=True)
        key = "unit_id"
    else:
        events = ae.merge(
            units.drop_duplicates("subject_id")[["subject_id", "modality"]], on="subject_id"
        )
        key = "subject_id"
    population = units if split else units.drop_duplicates("subject_id")
    n = {arm: int((population["modality"] == arm).sum()) for arm in arm_list}
    terms = ["any", *sorted(events["term"].dropna().unique())]
    rows = []
    for term in terms:
        e = events if term == "any" else events.loc[events["term"] == term]
        row: dict[str, object] = {"term": term}
        for arm in arm_list:
            g = e.loc[e["modality"] == arm]
            row[f"{arm} n"] = int(g[key].nunique())
            row[f"{arm} N"] = n[arm]
            row[f"{arm} events"] = len(g.drop_duplicates(["subject_id", "ae_seq"]))
        if len(arm_list) == 2:
            control, combination = arm_list
            if split:
                hit = population.assign(event=population["unit_id"].isin(set(e["unit_id"])))
                pairs = hit.pivot_table(
                    index="subject_id", columns="modality", values="event", aggfunc="max"
                ).dropna()
                c1 = pairs[combination].astype(bool)
                c0 = pairs[control].astype(bool)
                row |= paired_risk_ratio_difference(
                    int((c1 & c0).sum()), int((c1 & ~c0).sum()), int((~c1 & c0).sum()), len(pairs)
                )
            else:
                k1 = int(e.loc[e["modality"] == combination, key].nunique())
                k0 = int(e.loc[e["modality"] == control, key].nunique())
                row |= risk_ratio_difference(k1, n[combination], k0, n[control])
        rows.append(row)
    return pd.DataFrame(rows)


def adverse_event_display(summary: pd.DataFrame, arm_list: Sequence[str]) -> pd.DataFrame:
    """The summary as people read it: term, affected n (%) and events per arm, RR and RD.

    Each arm is one column (``"48 (96%); 153"``) so the table fits a page in Word.
    """
    out = pd.DataFrame(
        {
            "Adverse event": [
                "Any adverse event" if t == "any" else f"\N{EM SPACE}{codelist_label('ae_term', t)}"
                for t in summary["term"]
            ]
        }
    )
    for arm in arm_list:
        out[f"{arm}: n (%); events"] = [
            f"{n_pct(k, m)}; {int(e)}"
            for k, m, e in zip(
                summary[f"{arm} n"], summary[f"{arm} N"], summary[f"{arm} events"], strict=True
            )
        ]
    if "rr" in summary:
        out["Risk ratio (95% CI)"] = [
            _ci(r["rr"], r["rr_low"], r["rr_high"], 2, "not estimable")
            for _, r in summary.iterrows()
        ]
        out["Difference, % points (95% CI)"] = [
            _ci(100 * r["rd"], 100 * r["rd_low"], 100 * r["rd_high"], 1, MISSING)
            for _, r in summary.iterrows()
        ]
    return out


def ratio_text(row: pd.Series) -> str:
    """``"1.20 (0.90 to 1.60); risk difference 4.0% (-2.0% to 10.0%)"`` from a summary row."""
    rr = _ci(row["rr"], row["rr_low"], row["rr_high"], 2, "not estimable")
    rd = _ci(100 * row["rd"], 100 * row["rd_low"], 100 * row["rd_high"], 1, MISSING)
    return f"{rr}; risk difference {rd} percentage points"


def _ci(est: float, low: float, high: float, digits: int, missing: str) -> str:
    if not np.isfinite(est):
        return missing
    return (
        f"{format_number(est, digits)} ({format_number(low, digits)} to "
        f"{format_number(high, digits)})"
    )


# --------------------------------------------------------------------------------------------
# patient-reported outcomes
# --------------------------------------------------------------------------------------------

#: Patient-reported instruments the trial report summarises, in order.
PRO_INSTRUMENTS = ("pain_vas", "satisfaction_4", "satisfaction_10")


def pro_table(t: Mapping[str, pd.DataFrame], arm_list: Sequence[str]) -> pd.DataFrame:
    """Patient-reported outcomes by arm: per instrument, the mean (SD) of each unit's mean score,
    and the number of units and ratings; empty when none were collected."""
    a = t["assessments"]
    a = a.loc[(a["rater_role"] == "patient") & a["instrument"].isin(PRO_INSTRUMENTS)]
    a = a.merge(t["units"][["unit_id", "modality"]], on="unit_id")
    rows: list[dict[str, str]] = []
    for instrument in PRO_INSTRUMENTS:
        g = a.loc[a["instrument"] == instrument]
        if g.empty:
            continue
        name = short_name(instrument)
        rows.append({"Outcome": f"{name[:1].upper()}{name[1:]}, mean (SD)"})
        per_unit = g.groupby(["modality", "unit_id"])["value"].mean().reset_index()
        rows.append(
            {"Outcome": "\N{EM SPACE}Per treated unit (mean over its ratings)"}
            | {arm: mean_sd(per_unit.loc[per_unit["modality"] == arm, "value"]) for arm in arm_list}
        )
        rows.append(
            {"Outcome": "\N{EM SPACE}Units, ratings"}
            | {
                arm: f"{g.loc[g['modality'] == arm, 'unit_id'].nunique()}, "
                f"{int((g['modality'] == arm).sum())}"
                for arm in arm_list
            }
        )
    return as_frame(rows) if rows else pd.DataFrame()
