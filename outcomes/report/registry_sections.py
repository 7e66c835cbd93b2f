"""Registry and comparison report sections that read every label from the results.

The registry report (``reports/registry.qmd``) and the comparison report call these. Each
function reads what it prints from a comparison table (:func:`outcomes.compare`: the
``definition``, ``n``, ``missing_data`` and ``doubt`` columns) or from the store's tables, so a
section says only what the data hold: the responder definition is the one the model used,
doubtful estimates carry a mark with a footnote naming the problem, and a section whose data
are absent says so in one sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.report.sections import INDICATIONS, MISSING, codelist_label, n_pct
from outcomes.report.tables import format_ci, format_number, format_p
from outcomes.report.theme import MODALITY_COLOURS

#: Marks for doubtful estimates, in the order problems are first met.
MARKS = ("†", "‡", "§", "¶", "‖", "#", "**", "††", "‡‡")
#: Headings of the efficacy measures.
MEASURE_TITLES = {
    "mean_difference": "Mean difference",
    "odds_ratio": "Odds ratio",
    "hazard_ratio": "Hazard ratio",
}


#: People's names of the propensity model's covariates.
COVARIATE_NAMES = {
    "phototype_num": "phototype",
    "phototype": "phototype",
    "baseline_score": "baseline severity score",
    "site_id": "clinic",
}


def covariates_text(balance: pd.DataFrame) -> str:
    """The propensity covariates in words, saying where one is used in some indications only."""
    everywhere = balance["indication"].nunique()
    parts = []
    for cov, g in balance.groupby("covariate", sort=False):
        name = COVARIATE_NAMES.get(str(cov), str(cov))
        inds = list(dict.fromkeys(g["indication"].astype(str)))
        if len(inds) < everywhere:
            name += f" (in {listing([indication_name(i) for i in inds])} only)"
        parts.append(name)
    return listing(parts)


def ps_model_text(ps_model: str, reference: str) -> str:
    """The registry propensity model in words (``ps_model`` of :func:`outcomes.compare`)."""
    if ps_model == "pairwise":
        return (
            f"one logistic propensity model per combination (its patients and those of "
            f"{reference} alone)"
        )
    return "one multinomial propensity model of the modality"


def plain_method(text: str) -> str:
    """A results ``method`` text with covariate codes in words."""
    for code, name in COVARIATE_NAMES.items():
        text = text.replace(code, name)
    return text


def indication_name(code: str) -> str:
    """People's name of an indication code (``acne_scars`` -> ``"acne scars"``)."""
    return INDICATIONS.get(code, code.replace("_", " ")).lower()


def listing(items: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------------------------
# doubtful estimates
# --------------------------------------------------------------------------------------------


class DoubtMarks:
    """One mark per kind of problem named in a table's ``doubt`` column, with its footnote.

    A problem's kind is its text before any parenthesis (``"imbalance after weighting
    (largest |SMD| 0.18)"`` -> ``"imbalance after weighting"``), so every estimate with the
    same problem carries the same mark.
    """

    def __init__(self, doubts: Sequence[str]) -> None:
        self.kinds: dict[str, str] = {}
        for text in doubts:
            for kind in self._kinds(text):
                if kind not in self.kinds:
                    self.kinds[kind] = MARKS[min(len(self.kinds), len(MARKS) - 1)]

    @staticmethod
    def _kinds(text: object) -> list[str]:
        if not isinstance(text, str) or not text:
            return []
        return list(dict.fromkeys(part.split(" (")[0].strip() for part in text.split("; ")))

    def mark(self, text: object) -> str:
        """The marks of one row's ``doubt`` text (empty when it has none)."""
        return "".join(self.kinds[k] for k in self._kinds(text) if k in self.kinds)

    def footnote(self) -> str:
        """The marks explained, or an empty string when no estimate is doubtful."""
        if not self.kinds:
            return ""
        parts = [f"{mark} {kind}" for kind, mark in self.kinds.items()]
        return (
            "Marked estimates are doubtful by the toolkit's own checks: "
            + "; ".join(parts)
            + " (details in Model checks)."
        )


def with_mark(cell: str, mark: str) -> str:
    """A printed estimate followed by its doubt mark."""
    return f"{cell} {mark}" if mark else cell


# --------------------------------------------------------------------------------------------
# adjusted comparisons
# --------------------------------------------------------------------------------------------


def efficacy_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Registry efficacy rows with an estimate (mean difference, odds and hazard ratios)."""
    reg = table.loc[table["source"] == "registry"]
    return reg.loc[reg["measure"].isin(list(MEASURE_TITLES)) & reg["estimate"].notna()]


def adjusted_table(efficacy: pd.DataFrame, marks: DoubtMarks) -> tuple[pd.DataFrame, str]:
    """Naive and weighted estimates, one heading per measure and outcome definition.

    Each heading is the measure with a letter; the returned note gives, for each letter, the
    results' own ``definition`` of the outcome. Each row gives the indication, the comparison
    with the number of treated areas analysed, and the two estimates, each marked when
    doubtful.
    """
    rows: list[dict[str, str]] = []
    defined: list[str] = []
    for measure, title in MEASURE_TITLES.items():
        sub = efficacy.loc[efficacy["measure"] == measure]
        for definition, by_def in sub.groupby("definition", sort=False):
            defined.append(str(definition))
            rows.append({"Indication": f"{title} ({chr(96 + len(defined))})"})
            for (ind, comp), g in by_def.groupby(["indication", "comparison"], sort=False):
                by = g.set_index("adjustment")
                cell = {
                    adj: with_mark(
                        format_ci(
                            by.loc[adj, "estimate"],
                            by.loc[adj, "conf_low"],
                            by.loc[adj, "conf_high"],
                        ),
                        marks.mark(by.loc[adj, "doubt"]),
                    )
                    if adj in by.index
                    else MISSING
                    for adj in ("naive", "weighted")
                }
                rows.append(
                    {
                        "Indication": "\N{EM SPACE}" + INDICATIONS.get(str(ind), str(ind)),
                        "Comparison": f"{comp}, n = {format_number(g['n'].max(), 0)}",
                        "Naive (95% CI)": cell["naive"],
                        "Weighted (95% CI)": cell["weighted"],
                        "p": format_p(by.loc["weighted", "p_value"])
                        if "weighted" in by.index
                        else MISSING,
                    }
                )
    note = (
        "Outcomes: " + "; ".join(f"({chr(97 + i)}) {text}" for i, text in enumerate(defined)) + "."
    )
    return pd.DataFrame(rows).fillna(""), note


def lettered(definitions: Sequence[str]) -> tuple[list[str], str]:
    """A letter for each distinct outcome definition (in order of appearance) and the note
    that spells them out: ``(["a", "b", "a"], "Outcomes: (a) ...; (b) ...")``."""
    distinct = list(dict.fromkeys(definitions))
    letters = [chr(97 + distinct.index(d)) for d in definitions]
    note = "Outcomes: " + "; ".join(f"({chr(97 + i)}) {d}" for i, d in enumerate(distinct))
    return letters, note + "."


def missing_data_table(efficacy: pd.DataFrame) -> pd.DataFrame:
    """For every weighted estimate: indication, outcome, comparison and how missing data were
    handled, as the results state it (``missing_data``)."""
    rows = []
    shown = efficacy.loc[efficacy["adjustment"] == "weighted"]
    for _, r in shown.iterrows():
        rows.append(
            {
                "Indication": INDICATIONS.get(r["indication"], r["indication"]),
                "Outcome": MEASURE_TITLES[r["measure"]].lower(),
                "Comparison": r["comparison"],
                "Analysed and left out": str(r["missing_data"]).removeprefix("complete cases: ")
                or MISSING,
            }
        )
    return pd.DataFrame(rows)


def headline(
    efficacy: pd.DataFrame, indication: str | None, comparison: str, reference: str
) -> pd.Series | None:
    """The weighted odds ratio to quote first: the wanted comparison in ``indication`` (or the
    indication with most areas analysed), else the first weighted estimate; ``None`` if none."""
    weighted = efficacy.loc[efficacy["adjustment"] == "weighted"]
    if weighted.empty:
        return None
    wanted = weighted.loc[weighted["comparison"] == f"{comparison} vs {reference}"]
    pool = wanted if len(wanted) else weighted
    ratios = pool.loc[pool["measure"] == "odds_ratio"]
    pool = ratios if len(ratios) else pool
    if indication is not None and (pool["indication"] == indication).any():
        pool = pool.loc[pool["indication"] == indication]
    else:
        pool = pool.sort_values("n", ascending=False, kind="stable")
    return pool.iloc[0]


def no_comparison_sentence(
    table: pd.DataFrame, assessments: pd.DataFrame, reference: str, window: Sequence[float]
) -> str:
    """Why no combination was compared with ``reference``, from the data and the table.

    No assessment in the primary visit's window says so; otherwise the reasons recorded in the
    table's rows that have no estimate; otherwise too few treated areas.
    """
    start = f"No combination could be compared with {reference} alone"
    days = pd.to_numeric(assessments["day"], errors="coerce")
    if not days.between(window[0], window[1]).any():
        return (
            f"{start}: no treated area has an assessment between days {window[0]:g} and "
            f"{window[1]:g}, the window of the primary visit."
        )
    reg = table.loc[table["source"] == "registry"] if len(table) else table
    failed = reg.loc[reg["estimate"].isna()] if len(reg) else reg
    reasons = [
        f"{indication_name(str(r['indication']))}: {str(r['warning']).rstrip('.')}"
        for _, r in failed.drop_duplicates(["indication", "warning"]).iterrows()
        if r["warning"]
    ]
    if reasons:
        return f"{start} (" + "; ".join(reasons) + ")."
    return (
        f"{start}: the registry needs at least five treated areas with {reference} and with a "
        "combination in one indication."
    )


def estimate_sentence(row: pd.Series, marks: DoubtMarks) -> str:
    """``"the odds ratio of GAIS <= 2 ... with MN+PRP against MN in acne scars was 3.59 (2.39
    to 5.41; 326 treated areas)"``, with the doubt mark and its reason when doubtful."""
    what = {
        "odds_ratio": "the odds ratio of",
        "mean_difference": "the mean difference in",
        "hazard_ratio": "the hazard ratio of",
    }[str(row["measure"])]
    combo, reference = str(row["comparison"]).split(" vs ")
    ci = format_ci(row["estimate"], row["conf_low"], row["conf_high"])
    text = (
        f"{what} {row['definition']} with {combo} against {reference} alone in "
        f"{indication_name(str(row['indication']))} was {ci} "
        f"({format_number(row['n'], 0)} treated areas analysed)"
    )
    mark = marks.mark(row["doubt"])
    if mark:
        text += f" {mark}, an estimate the toolkit calls doubtful ({row['doubt']})"
    return text


def scope_text(units: pd.DataFrame) -> str:
    """Which indications and modalities the data hold, in words."""
    inds = [indication_name(i) for i in INDICATIONS if i in set(units["indication"])]
    inds += [indication_name(i) for i in sorted(set(units["indication"]) - set(INDICATIONS))]
    mods = [m for m in MODALITY_COLOURS if m in set(units["modality"])]
    mods += sorted(set(units["modality"]) - set(mods))
    return f"{listing(inds)}; {listing(mods)}"


def covered(efficacy: pd.DataFrame, measure: str) -> str:
    """The indications an efficacy measure has estimates for, in words (or "none")."""
    inds = efficacy.loc[efficacy["measure"] == measure, "indication"].drop_duplicates()
    return listing([indication_name(i) for i in inds]) or "none"


# --------------------------------------------------------------------------------------------
# durability
# --------------------------------------------------------------------------------------------


def durability_endpoint(table: pd.DataFrame, assessments: pd.DataFrame) -> str | None:
    """The durability endpoint that matches the responder definition of the comparison.

    GAIS <= 2 when the comparison's responders were defined on GAIS (or it has none and GAIS
    is recorded, the comparison's own first choice), else >= 50% improvement on the G&B
    quantitative score; ``None`` when neither instrument is recorded.
    """
    present = set(assessments["instrument"].astype(str))
    odds = table.loc[table["measure"] == "odds_ratio"] if len(table) else table
    definitions = odds["definition"].dropna().astype(str) if len(odds) else pd.Series([])
    if "gais" in present and (definitions.str.startswith("GAIS").any() or definitions.empty):
        return "gais_durability"
    if "gb_quant" in present:
        return "durability"
    return None


# --------------------------------------------------------------------------------------------
# safety
# --------------------------------------------------------------------------------------------


def _wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``k / n`` (statsmodels', as the trial report's); NaN if n = 0."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return float("nan"), float("nan")
    low, high = proportion_confint(k, n, alpha=1 - level, method="wilson")
    return float(low), float(high)


def _poisson(k: int, exposure: float, level: float = 0.95) -> tuple[float, float]:
    alpha = 1 - level
    low = stats.chi2.ppf(alpha / 2, 2 * k) / 2 if k > 0 else 0.0
    high = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
    return float(low / exposure), float(high / exposure)


def safety_table(t: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Adverse events by modality: any event, then each term.

    Per modality and term: patients with at least one event (n, % of the modality's treated
    patients, Wilson 95% CI), the number of events, and events per 100 treated patients with
    an exact Poisson 95% CI. An event without a unit counts for every unit of its patient.
    """
    units = t["units"][["subject_id", "unit_id", "modality"]]
    ae = t["adverse_events"]
    by_unit = ae.loc[ae["unit_id"].notna()].merge(units, on=["subject_id", "unit_id"])
    by_subject = ae.loc[ae["unit_id"].isna()].drop(columns="unit_id").merge(units, on="subject_id")
    events = pd.concat([by_unit, by_subject], ignore_index=True)
    modalities = [m for m in MODALITY_COLOURS if m in set(units["modality"])]
    modalities += sorted(set(units["modality"]) - set(modalities))
    terms = sorted(events["term"].dropna().unique())
    rows: list[dict[str, str]] = []
    for label, term in [
        ("Any adverse event", None),
        *[(codelist_label("ae_term", x), x) for x in terms],
    ]:
        rows.append({"Adverse event": label})
        sub = events if term is None else events.loc[events["term"] == term]
        for m in modalities:
            n = int(units.loc[units["modality"] == m, "subject_id"].nunique())
            g = sub.loc[sub["modality"] == m]
            k = int(g["subject_id"].nunique())
            low, high = _wilson(k, n)
            r_low, r_high = _poisson(len(g), n / 100) if n else (np.nan, np.nan)
            rows.append(
                {
                    "Adverse event": "\N{EM SPACE}" + m,
                    "Patients, n (%)": n_pct(k, n, 1),
                    "95% CI, %": f"{format_number(100 * low, 1)} to {format_number(100 * high, 1)}"
                    if n
                    else MISSING,
                    "Events": f"{len(g):,}",
                    "Per 100 patients (95% CI)": format_ci(100 * len(g) / n, r_low, r_high, 1)
                    if n
                    else MISSING,
                }
            )
    return pd.DataFrame(rows).fillna("")


def safety_summary(t: Mapping[str, pd.DataFrame]) -> str:
    """One sentence on the adverse events recorded, or that none were recorded."""
    ae = t["adverse_events"]
    if ae.empty:
        return (
            "No adverse events are recorded in this registry snapshot, so its safety cannot "
            "be described; this does not show that none occurred."
        )
    n_pat = t["units"]["subject_id"].nunique()
    k = ae["subject_id"].nunique()
    serious = int(ae["serious"].fillna(False).astype(bool).sum()) if "serious" in ae else 0
    return (
        f"{len(ae):,} adverse events were recorded in {k:,} of {n_pat:,} patients "
        f"({format_number(100 * k / n_pat, 1)}%); {serious:,} "
        f"{'was' if serious == 1 else 'were'} serious."
    )
