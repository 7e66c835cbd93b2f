"""Sections shared by the reports (trial, registry, comparison): data, notes, tables.

The reports (``reports/*.qmd``, shipped as the templates of :mod:`outcomes.report`) import this
module as ``from outcomes.report import sections as sh``. It holds what they have in common:
opening a store snapshot and saying which one was used, the software versions for the methods
paragraph, collecting model warnings so a report can state them in plain words, people's
formatting of counts and summaries, and the descriptive tables (participant flow, Table 1,
sessions, population). The figures drawn in the report theme are in
:mod:`outcomes.report.figures`.

Statistics come from the toolkit (:mod:`outcomes.models`); nothing here fits a model.
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from outcomes.data.store import Store
from outcomes.errors import InputError
from outcomes.report.tables import format_number, format_p
from outcomes.report.theme import MODALITY_COLOURS

#: Packages named in the methods paragraphs, in order.
SOFTWARE = (
    "outcomes",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "lifelines",
    "pingouin",
    "plotnine",
    "duckdb",
)
MISSING = "\N{EN DASH}"
END_REASONS = {
    "completed": "Completed follow-up",
    "lost_to_follow_up": "Lost to follow-up",
    "withdrew": "Withdrew consent",
    "adverse_event": "Stopped for an adverse event",
    "retreated": "Retreated",
    "other": "Other reason",
}
INDICATIONS = {
    "acne_scars": "Acne scars",
    "wrinkles": "Wrinkles",
    "enlarged_pores": "Enlarged pores",
    "pigmentation": "Pigmentation",
    "striae": "Striae",
}


# --------------------------------------------------------------------------------------------
# data and provenance
# --------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """The tables of one store snapshot and where they came from."""

    store: Path
    snapshot_id: int
    created_at: str
    dictionary_version: str
    tables: dict[str, pd.DataFrame]

    def study(self, study_id: str) -> dict[str, pd.DataFrame]:
        """The tables restricted to one study (tables without ``study_id`` are kept whole).

        Raises InputError naming the studies there are when ``study_id`` is not one of them.
        """
        studies = self.tables["studies"]
        if study_id not in set(studies["study_id"]):
            there = ", ".join(f"{r.study_id} ({r.design})" for r in studies.itertuples(index=False))
            raise InputError(
                f"study {study_id!r} is not in snapshot {self.snapshot_id} of {self.store}; "
                f"it holds {there or 'no study'}: choose one with -P study=ID"
            )
        return {
            name: (df.loc[df["study_id"] == study_id].reset_index(drop=True))
            if "study_id" in df.columns
            else df
            for name, df in self.tables.items()
        }

    def describe(self) -> str:
        """One sentence naming the store, the snapshot and when it was made."""
        return (
            f"Data: snapshot {self.snapshot_id} of the store {self.store.name} (created "
            f"{self.created_at[:10]}, data dictionary version {self.dictionary_version})."
        )


def load_snapshot(store: str | Path, snapshot: int | None = None) -> Snapshot:
    """Open a store read-only and read every table of one snapshot (default latest)."""
    path = Path(store).resolve()
    with Store(path, read_only=True) as s:
        snaps = s.snapshots()
        sid = int(snaps["snapshot_id"].max()) if snapshot is None else int(snapshot)
        row = snaps.loc[snaps["snapshot_id"] == sid].iloc[0]
        tables = {name: plain(df) for name, df in s.tables(sid).items()}
    return Snapshot(
        store=path,
        snapshot_id=sid,
        created_at=str(row["created_at"]),
        dictionary_version=str(row["dictionary_version"]),
        tables=tables,
    )


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """NumPy dtypes instead of pandas' nullable ones (text as object, numbers as float)."""
    out = df.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if pd.api.types.is_bool_dtype(dtype) and out[col].isna().any():
            out[col] = out[col].astype(object).where(out[col].notna(), None)  # type: ignore[call-overload]
        elif pd.api.types.is_bool_dtype(dtype):
            out[col] = out[col].astype(bool)
        elif pd.api.types.is_integer_dtype(dtype) and out[col].isna().any():
            out[col] = out[col].astype(float)
        elif pd.api.types.is_integer_dtype(dtype):
            out[col] = out[col].astype(np.int64)
        elif pd.api.types.is_float_dtype(dtype):
            out[col] = out[col].astype(float)
        elif pd.api.types.is_string_dtype(dtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)  # type: ignore[call-overload]
    return out


def software_versions(packages: Sequence[str] = SOFTWARE) -> str:
    """``"Python 3.11.7, outcomes 0.1.0, numpy 2.1.0, ..."`` for the installed packages."""
    parts = [f"Python {platform.python_version()}"]
    for name in packages:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# model warnings, stated plainly
# --------------------------------------------------------------------------------------------


@dataclass
class ModelNotes:
    """Warnings and diagnostics of the models a report fits, kept to be stated in the report.

    Use :meth:`capture` around a fit (it records Python warnings instead of letting them reach
    stderr) and :meth:`add` for a result's ``diagnostics`` frame; :meth:`markdown` lists them.
    """

    notes: list[tuple[str, str]] = field(default_factory=list)

    @contextmanager
    def capture(self, analysis: str, record: bool = True) -> Iterator[None]:
        """Keep the warnings raised inside the block off stderr; note them under ``analysis``.

        ``record=False`` drops them: for functions that also return their warnings as data
        (e.g. the ``warning`` column of a comparison table), noted with :meth:`add_text`.
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught if record else []:
            self._note(analysis, str(w.message))

    def add(self, analysis: str, diagnostics: pd.DataFrame | None) -> None:
        """Record the rows of a diagnostics frame whose severity is ``warning`` or ``error``."""
        if diagnostics is None or diagnostics.empty:
            return
        for _, row in diagnostics.iterrows():
            if str(row.get("severity", "warning")) in ("warning", "error"):
                self._note(analysis, str(row["message"]))

    def add_text(self, analysis: str, texts: Sequence[str]) -> None:
        """Record free-text warnings (e.g. a results table's ``warning`` column)."""
        for text in texts:
            for part in str(text).split(" | "):
                if part.strip():
                    self._note(analysis, part.strip())

    def _note(self, analysis: str, message: str) -> None:
        message = " ".join(message.split())
        if (analysis, message) not in self.notes:
            self.notes.append((analysis, message))

    def markdown(self) -> str:
        """A bullet list of the notes, or a sentence saying there were none."""
        if not self.notes:
            return "No model reported a convergence, fit or data problem."
        return "\n".join(f"- *{analysis}*: {message}" for analysis, message in self.notes)


# --------------------------------------------------------------------------------------------
# formatting for people
# --------------------------------------------------------------------------------------------


def n_pct(count: float, total: float, digits: int = 0) -> str:
    """``"12 (24%)"``; an en dash when the total is zero."""
    if not total:
        return MISSING
    return f"{int(count)} ({format_number(100 * count / total, digits)}%)"


def mean_sd(values: pd.Series, digits: int = 1) -> str:
    """``"31.2 (5.4)"``: mean and standard deviation of the non-missing values."""
    x = pd.to_numeric(values, errors="coerce").dropna()
    if x.empty:
        return MISSING
    sd = x.std(ddof=1) if len(x) > 1 else float("nan")
    return f"{format_number(x.mean(), digits)} ({format_number(sd, digits)})"


def median_iqr(values: pd.Series, digits: int = 0) -> str:
    """``"3 (2 to 5)"``: median and interquartile range."""
    x = pd.to_numeric(values, errors="coerce").dropna()
    if x.empty:
        return MISSING
    q1, q2, q3 = np.percentile(x, [25, 50, 75])
    return (
        f"{format_number(q2, digits)} ({format_number(q1, digits)} to {format_number(q3, digits)})"
    )


def arm_header(arm: str, n: int) -> str:
    """Column header of an arm: ``"MN+PRP (n = 50)"``."""
    return f"{arm} (n = {n})"


def as_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """Rows of display strings as a DataFrame (first column the row label).

    Heading rows (a label only, e.g. "Sex, n (%)") get empty cells.
    """
    return pd.DataFrame(rows).fillna("")


def p_text(p: float) -> str:
    """A p-value in running text: ``"p < 0.001"`` or ``"p = 0.031"``."""
    shown = format_p(p)
    return f"p {shown[0]} {shown[1:]}" if shown[0] in "<>" else f"p = {shown}"


#: Short names of instruments for axis labels and table rows.
SHORT_NAMES = {
    "gb_quant": "G&B quantitative score",
    "gb_qual": "G&B qualitative grade",
    "ecca": "ECCA score",
    "gais": "GAIS",
    "masi": "MASI",
    "mmasi": "mMASI",
    "pain_vas": "pain VAS",
    "satisfaction_4": "satisfaction (1-4)",
}


def codelist_label(codelist: str, code: str) -> str:
    """The data dictionary's label of a code (``ae_term``, ``pih`` -> "Post-inflammatory ...")."""
    from outcomes.data.dictionary import load_dictionary

    label = load_dictionary().codelists.get(codelist, {}).get(code, code.replace("_", " "))
    return label[:1].upper() + label[1:]


def short_name(code: str) -> str:
    """Short name of an instrument (``gb_quant`` -> ``"G&B quantitative score"``)."""
    return SHORT_NAMES.get(code, code)


# --------------------------------------------------------------------------------------------
# trial tables
# --------------------------------------------------------------------------------------------


def arms(units: pd.DataFrame, control: str) -> list[str]:
    """The trial's arms (modalities), control first."""
    found = sorted(units["modality"].dropna().unique())
    return [control, *[a for a in found if a != control]] if control in found else found


def primary_dataset(
    t: Mapping[str, pd.DataFrame], instrument: str, rater_role: str = "investigator"
) -> pd.DataFrame:
    """Assessments of one instrument and rater role with unit, subject and ``week`` columns."""
    a = t["assessments"]
    a = a.loc[(a["instrument"] == instrument) & (a["rater_role"] == rater_role)]
    df = a.merge(t["units"], on=["study_id", "unit_id"]).merge(
        t["subjects"], on=["study_id", "subject_id"]
    )
    df["week"] = df["day"].astype(float) / 7
    df["value"] = df["value"].astype(float)
    return df.reset_index(drop=True)


def median_days(value: float) -> str:
    """A median time in days for running text: the number, or "not reached" when missing."""
    return "not reached" if pd.isna(value) else f"{format_number(value, 0)} days"


def table_one(
    t: Mapping[str, pd.DataFrame],
    arm_list: Sequence[str],
    instruments: Sequence[str],
    baseline_visit: str = "baseline",
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Table 1 by arm: age, sex, phototype (of each arm's participants) and baseline scores.

    ``baseline_visit`` is the label of the baseline visit (the trial report finds it from the
    study days: :func:`outcomes.report.trial_sections.schedule_from_days`).
    """
    units = t["units"].merge(t["subjects"], on=["study_id", "subject_id"])
    n = {arm: int((units["modality"] == arm).sum()) for arm in arm_list}
    groups = {arm: units.loc[units["modality"] == arm] for arm in arm_list}
    rows: list[dict[str, str]] = [
        {"Characteristic": "Age, years, mean (SD)"}
        | {arm: mean_sd(g["age"]) for arm, g in groups.items()}
    ]
    rows.append({"Characteristic": "Sex, n (%)"})
    for sex in sorted(units["sex"].dropna().unique()):
        rows.append(
            {"Characteristic": f"\N{EM SPACE}{sex.capitalize()}"}
            | {arm: n_pct((g["sex"] == sex).sum(), len(g)) for arm, g in groups.items()}
        )
    rows.append({"Characteristic": "Fitzpatrick phototype, n (%)"})
    for ptype in ("I", "II", "III", "IV", "V", "VI"):
        if (units["phototype"] == ptype).any():
            rows.append(
                {"Characteristic": f"\N{EM SPACE}{ptype}"}
                | {arm: n_pct((g["phototype"] == ptype).sum(), len(g)) for arm, g in groups.items()}
            )
    if "body_site" in units and units["body_site"].dropna().unique().size > 1:
        rows.append({"Characteristic": "Body site, n (%)"})
        for site in sorted(units["body_site"].dropna().unique()):
            rows.append(
                {"Characteristic": f"\N{EM SPACE}{site.capitalize()}"}
                | {arm: n_pct((g["body_site"] == site).sum(), len(g)) for arm, g in groups.items()}
            )
    a = t["assessments"]
    base = a.loc[(a["visit"] == baseline_visit) & (a["rater_role"] == "investigator")]
    for instrument in instruments:
        b = base.loc[base["instrument"] == instrument].merge(
            t["units"][["unit_id", "modality"]], on="unit_id"
        )
        if b.empty:
            continue
        rows.append(
            {"Characteristic": f"Baseline {short_name(instrument)}, mean (SD)"}
            | {arm: mean_sd(b.loc[b["modality"] == arm, "value"]) for arm in arm_list}
        )
    return as_frame(rows), n


def instrument_label(code: str) -> str:
    """The dictionary's name of an instrument (``gb_quant`` -> its label), else the code."""
    from outcomes.data.dictionary import load_dictionary

    info = load_dictionary().instruments.get(code)
    return info.label if info is not None else code


def sessions_table(t: Mapping[str, pd.DataFrame], arm_list: Sequence[str]) -> pd.DataFrame:
    """Sessions delivered by arm: counts, needle depth, passes, device, numbing and adjuncts."""
    s = t["sessions"]
    groups = {arm: s.loc[s["modality"] == arm] for arm in arm_list}
    rows: list[dict[str, str]] = [
        {"Item": "Sessions delivered, n"} | {arm: f"{len(g):,}" for arm, g in groups.items()},
        {"Item": "Sessions per unit, median (IQR)"}
        | {arm: median_iqr(g.groupby("unit_id").size()) for arm, g in groups.items()},
        {"Item": "Needle depth, mm, mean (SD)"}
        | {arm: mean_sd(g["needle_depth_mm"], 2) for arm, g in groups.items()},
        {"Item": "Passes per session, median (IQR)"}
        | {arm: median_iqr(g["passes"]) for arm, g in groups.items()},
    ]
    adjuncts = {
        "prp_volume_ml": "PRP volume, mL, mean (SD)",
        "rf_energy_mj": "RF energy, mJ, mean (SD)",
        "laser_fluence_j_cm2": "Laser fluence, J/cm², mean (SD)",
    }
    for col, label in adjuncts.items():
        if col in s and s[col].notna().any():
            rows.append(
                {"Item": label}
                | {
                    arm: (mean_sd(g[col], 1) if g[col].notna().any() else MISSING)
                    for arm, g in groups.items()
                }
            )
            rows.append(
                {"Item": f"\N{EM SPACE}sessions with {label.split(',')[0].split()[0]}, n (%)"}
                | {arm: n_pct(g[col].notna().sum(), len(g)) for arm, g in groups.items()}
            )
    for col, label in (("device", "Device"), ("numbing_agent", "Numbing agent")):
        rows.append({"Item": f"{label}, n (%)"})
        for value in sorted(s[col].dropna().unique()):
            rows.append(
                {"Item": f"\N{EM SPACE}{str(value).replace('_', ' + ').capitalize()}"}
                | {arm: n_pct((g[col] == value).sum(), len(g)) for arm, g in groups.items()}
            )
    return as_frame(rows)


# --------------------------------------------------------------------------------------------
# registry tables
# --------------------------------------------------------------------------------------------


def population_table(
    units: pd.DataFrame, by: str, order: Sequence[str] | None = None, label: str = ""
) -> pd.DataFrame:
    """Treated units by one characteristic (rows) and modality (columns), with totals."""
    counts = pd.crosstab(units[by], units["modality"])
    modalities = [m for m in MODALITY_COLOURS if m in counts.columns]
    counts = counts[modalities]
    if order is not None:
        counts = counts.reindex([o for o in order if o in counts.index])
    counts["Total"] = counts.sum(axis=1)
    total = counts.sum(axis=0)
    rows = []
    for key, row in counts.iterrows():
        name = INDICATIONS.get(str(key), str(key).replace("_", " "))
        rows.append(
            {label or by: name[:1].upper() + name[1:]}
            | {col: n_pct(row[col], total[col]) for col in counts.columns}
        )
    rows.append({label or by: "Total"} | {col: f"{int(total[col]):,}" for col in counts.columns})
    return as_frame(rows)


def balance_summary(balance: pd.DataFrame, threshold: float = 0.1) -> pd.DataFrame:
    """Per indication: largest |SMD| and levels at or over ``threshold``, before and after."""
    rows = []
    for indication, g in balance.groupby("indication", sort=False):
        rows.append(
            {
                "indication": INDICATIONS.get(indication, indication),  # type: ignore[arg-type]
                "checks": len(g),
                "max_before": float(g["smd"].abs().max()),
                "over_before": int((g["smd"].abs() >= threshold).sum()),
                "max_after": float(g["smd_weighted"].abs().max()),
                "over_after": int((g["smd_weighted"].abs() >= threshold).sum()),
            }
        )
    return pd.DataFrame(rows)
