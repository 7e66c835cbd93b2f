"""The registry and comparison reports on held-out registries: sections follow the data.

A harness builds registries from the simulator (``simulate_registry``) with table edits (one
indication, no combination arm, no adverse events, no follow-up after the primary visit, no
propensity covariate that varies, a propensity model that fails in one indication), ingests
each into a store and renders the report with the built-in engine. Each test reads the
rendered text back and checks that nothing errs, that no sentence speaks of data that are
absent, and that doubtful estimates are marked where they are printed. The default suite
renders HTML for a few variants; the full matrix (every variant, HTML, PDF and Word, and the
comparison report with and without published data) is marked slow.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from outcomes.comparisons.comparison import compare
from outcomes.data.ingest import ingest
from outcomes.report import registry_sections as rs
from outcomes.report import render
from outcomes.report import sections as sh
from outcomes.simulate.output import write_feeds
from outcomes.simulate.registry import simulate_registry

REPORTS = Path(__file__).resolve().parents[1] / "reports"
LEAK = re.compile(r"Traceback|\b\w*(?:Warning|Error)\b|stderr|Cell In\[|\bnan\b")
Tables = dict[str, pd.DataFrame]


# --------------------------------------------------------------------------------------------
# the harness: simulated registry + table edits -> store -> rendered text
# --------------------------------------------------------------------------------------------


#: Session columns recorded only for a modality with the adjunct (the dictionary's rules).
ADJUNCTS = {
    "prp_volume_ml": "PRP",
    "rf_energy_mj": "RF",
    "laser_type": "laser",
    "laser_fluence_j_cm2": "laser",
}


def _set_modality(t: Tables, units: pd.DataFrame) -> Tables:
    """New modalities for the units, carried into their sessions (adjunct settings cleared
    where the new modality has no such adjunct)."""
    sessions = (
        t["sessions"].drop(columns="modality").merge(units[["unit_id", "modality"]], on="unit_id")
    )
    for column, adjunct in ADJUNCTS.items():
        sessions[column] = sessions[column].where(
            sessions["modality"].str.contains(adjunct, regex=False)
        )
    return {**t, "units": units, "sessions": sessions[t["sessions"].columns]}


def _keep_subjects(t: Tables, keep: pd.Series) -> Tables:
    return {
        name: df.loc[df["subject_id"].isin(keep)].reset_index(drop=True)
        if "subject_id" in df
        else df.loc[
            df["unit_id"].isin(t["units"].loc[t["units"]["subject_id"].isin(keep), "unit_id"])
        ].reset_index(drop=True)
        if "unit_id" in df
        else df
        for name, df in t.items()
    }


def one_indication(t: Tables) -> Tables:
    s = t["subjects"]
    return _keep_subjects(t, s.loc[s["indication"] == "acne_scars", "subject_id"])


def no_combination(t: Tables) -> Tables:
    return _set_modality(t, t["units"].assign(modality="MN"))


def no_adverse_events(t: Tables) -> Tables:
    return {**t, "adverse_events": t["adverse_events"].iloc[0:0]}


def no_durability_follow_up(t: Tables) -> Tables:
    """Assessments end at the first post-baseline visit: no response can be seen lost."""
    a = t["assessments"]
    first = a.loc[a["day"] > 0].groupby("unit_id")["day"].min()
    return {**t, "assessments": a.loc[a["day"] <= a["unit_id"].map(first).fillna(0)]}


def no_propensity_covariates(t: Tables) -> Tables:
    """One clinic, one phototype and wrinkles only (no baseline severity score)."""
    t = {**t, "subjects": t["subjects"].assign(site_id="C01", phototype="III")}
    s = t["subjects"]
    return _keep_subjects(t, s.loc[s["indication"] == "wrinkles", "subject_id"])


def failing_propensity(t: Tables) -> Tables:
    """Modalities assigned at random (balanced, clean) except in acne scars, where every
    patient of clinic C01 had MN+PRP: positivity is violated and the model does not converge."""
    rng = np.random.default_rng(0)
    units = t["units"].assign(modality=rng.permutation(t["units"]["modality"].to_numpy()))
    s = t["subjects"]
    bad = s.loc[(s["indication"] == "acne_scars") & (s["site_id"] == "C01"), "subject_id"]
    units.loc[units["subject_id"].isin(bad), "modality"] = "MN+PRP"
    return _set_modality(t, units)


VARIANTS: dict[str, Callable[[Tables], Tables]] = {
    "one_indication": one_indication,
    "no_combination": no_combination,
    "no_adverse_events": no_adverse_events,
    "no_durability_follow_up": no_durability_follow_up,
    "no_propensity_covariates": no_propensity_covariates,
    "failing_propensity": failing_propensity,
}


def variant_store(name: str, root: Path) -> Path:
    feeds = simulate_registry(seed=5, n_subjects=600, n_clinics=3)
    feeds.tables = VARIANTS[name]({k: v.copy() for k, v in feeds.tables.items()})
    write_feeds(feeds, root / "registry")
    store = root / "outcomes.duckdb"
    report = ingest([root / "registry"], store)
    assert report.exit_code == 0, report.summary()
    return store


def text_of(path: Path) -> str:
    """What a reader sees in a rendered file, as one line of text."""
    if path.suffix == ".html":
        raw = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", path.read_text(), flags=re.S)
        raw = re.sub(r"<[^>]+>", " ", raw)
        import html

        raw = html.unescape(raw)
    elif path.suffix == ".docx":
        xml = zipfile.ZipFile(path).read("word/document.xml").decode()
        raw = re.sub(r"<[^>]+>", " ", xml)
    else:
        raw = " ".join(page.extract_text() or "" for page in PdfReader(path).pages)
    return re.sub(r"\s+", " ", raw)


def render_variant(
    report: str, store: Path, out: Path, formats: tuple[str, ...], **params: object
) -> dict[str, str]:
    result = render(
        REPORTS / f"{report}.qmd",
        to=formats,
        params={"store": str(store), **params},
        out_dir=out,
        engine="builtin",
    )
    assert result.warnings == []
    return {fmt: text_of(out / f"{report}.{fmt}") for fmt in formats}


# --------------------------------------------------------------------------------------------
# what each variant must (not) say
# --------------------------------------------------------------------------------------------

#: Per variant: phrases that must appear, phrases that must not.
EXPECT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "one_indication": (
        ("(acne scars; MN", "Adverse events by modality"),
        ("wrinkles", "Wrinkles", "interaction"),
    ),
    "no_combination": (
        ("No combination could be compared with MN alone", "no balance to show"),
        ("odds ratio of", "Table 3. Each combination", "depending on the modality"),
    ),
    "no_adverse_events": (
        ("No adverse events are recorded",),
        ("Adverse events by modality", "were serious"),
    ),
    "no_durability_follow_up": (
        ("durability of response is not estimated", "no treated area has an assessment between"),
        ("Durability of response: Kaplan-Meier", "among the"),
    ),
    "no_propensity_covariates": (
        ("propensity not estimated", "covariates are collinear", "Durability of a response"),
        ("odds ratio of", "baseline severity", "Acne scars"),
    ),
    "failing_propensity": (("propensity model not converged", "positivity violated"), ()),
}


def check_variant(name: str, text: str) -> None:
    assert not LEAK.findall(text), LEAK.findall(text)[:3]
    present, absent = EXPECT[name]
    for phrase in present:
        assert phrase in text, phrase
    for phrase in absent:
        assert phrase not in text, phrase


@pytest.mark.parametrize("name", ["one_indication", "no_combination"])
def test_registry_variant_renders_html_and_follows_the_data(name: str, tmp_path: Path) -> None:
    store = variant_store(name, tmp_path)
    text = render_variant("registry", store, tmp_path / "out", ("html",))["html"]
    check_variant(name, text)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VARIANTS))
def test_registry_variant_renders_every_format(name: str, tmp_path: Path) -> None:
    store = variant_store(name, tmp_path)
    for fmt, text in render_variant(
        "registry", store, tmp_path / "out", ("html", "pdf", "docx")
    ).items():
        check_variant(name, text if fmt != "pdf" else re.sub(r"(?<=[a-z])- (?=[a-z])", "", text))


@pytest.mark.slow
@pytest.mark.parametrize("published", [True, False])
def test_comparison_report_with_and_without_published_data(published: bool, tmp_path: Path) -> None:
    store = variant_store("one_indication", tmp_path)
    texts = render_variant(
        "comparison", store, tmp_path / "out", ("html", "pdf", "docx"), published=published
    )
    for text in texts.values():
        assert not LEAK.findall(text)
        if published:
            assert "Asif" in text
        else:
            assert "No published study data were given" in text
            assert "Asif" not in text and "league" not in text.lower()


# --------------------------------------------------------------------------------------------
# doubtful estimates are marked where printed
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, str]:
    """The comparison table and the rendered registry report of ``failing_propensity``."""
    root = tmp_path_factory.mktemp("failing")
    store = variant_store("failing_propensity", root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the failures are the point; they are in the table
        tables = sh.load_snapshot(store).study("REG1")
        table = compare(tables, reference="MN", primary_day=168, ae_outcomes=()).table
    html = root / "out" / "registry.html"
    render(
        REPORTS / "registry.qmd",
        to="html",
        params={"store": str(store)},
        out_dir=root / "out",
        engine="builtin",
    )
    return table, html.read_text()


def test_doubt_column_names_the_failed_propensity_model_only_where_it_failed(
    failing: tuple[pd.DataFrame, str],
) -> None:
    table, _ = failing
    weighted = table.loc[(table["adjustment"] == "weighted") & table["measure"].eq("odds_ratio")]
    doubt = weighted.set_index(["indication", "comparison"])["doubt"]
    # one propensity model per combination: clinic C01 (MN+PRP only) breaks the MN+PRP model;
    # the MN+RF and MN+laser models have no C01 patient and are clean
    acne = doubt.loc["acne_scars"]
    assert acne.str.contains("propensity model not converged")["MN+PRP vs MN"]
    assert acne.str.contains("positivity violated")["MN+PRP vs MN"]
    assert (acne.drop(index="MN+PRP vs MN") == "").all()
    clean = doubt.drop(index="acne_scars", level=0)
    assert not clean.str.contains("not converged|positivity violated").any()
    assert (clean == "").sum() >= 2  # indications with randomly assigned modalities are clean
    naive = table.loc[(table["adjustment"] == "naive") & (table["indication"] == "acne_scars")]
    assert (naive["doubt"] == "").all()  # unweighted estimates do not use the propensity model


def test_mark_appears_beside_the_doubtful_estimate_and_not_beside_clean_ones(
    failing: tuple[pd.DataFrame, str],
) -> None:
    table, html = failing
    efficacy = rs.efficacy_rows(table)
    marks = rs.DoubtMarks(efficacy["doubt"])
    assert marks.mark(efficacy.loc[efficacy["indication"] == "acne_scars"].iloc[1]["doubt"])
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S)
    cells = [
        [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S)
        ]
        for r in rows
    ]
    import html as h

    cells = [[h.unescape(c) for c in r] for r in cells]
    weighted = efficacy.loc[efficacy["adjustment"] == "weighted"]
    names = {v: k for k, v in sh.INDICATIONS.items()}
    measures = {v: k for k, v in rs.MEASURE_TITLES.items()}
    seen = {"marked": 0, "clean": 0}
    measure = ""
    for r in cells:
        heading = r[0].rsplit(" (", 1)[0] if r else ""
        if heading in measures:
            measure = measures[heading]
            continue
        if len(r) != 5 or " vs MN, n = " not in r[1]:
            continue
        comparison = r[1].split(",")[0]
        doubt = weighted.loc[
            (weighted["indication"] == names[r[0].strip()])
            & (weighted["comparison"] == comparison)
            & (weighted["measure"] == measure)
        ]["doubt"]
        text = doubt.iloc[0] if len(doubt) else ""
        expected = marks.mark(text)
        if expected:
            assert r[3].endswith(" " + expected), r
            seen["marked"] += 1
        else:
            assert not re.search("[†‡§¶‖#*]", r[3]), r
            seen["clean"] += 1
        naive = efficacy.loc[
            (efficacy["adjustment"] == "naive")
            & (efficacy["indication"] == names[r[0].strip()])
            & (efficacy["comparison"] == comparison)
            & (efficacy["measure"] == measure)
        ]["doubt"]
        assert "propensity" not in naive.iloc[0]  # unweighted: no propensity model
        if not marks.mark(naive.iloc[0]):
            assert not re.search("[†‡§¶‖#*]", r[2]), r
    assert seen["marked"] and seen["clean"]
    assert "propensity model not converged" in h.unescape(re.sub(r"<[^>]+>", " ", html))


def test_doubt_marks_are_one_per_kind_of_problem() -> None:
    marks = rs.DoubtMarks(
        [
            "imbalance after weighting (largest |SMD| 0.18)",
            "propensity model not converged; imbalance after weighting (largest |SMD| 0.29)",
            "",
        ]
    )
    assert marks.mark("imbalance after weighting (largest |SMD| 0.29)") == "†"
    assert marks.mark("propensity model not converged") == "‡"
    assert marks.mark("") == ""
    assert "† imbalance after weighting; ‡ propensity model not converged" in marks.footnote()
    assert rs.DoubtMarks([""]).footnote() == ""


def test_safety_table_counts_patients_and_events() -> None:
    units = pd.DataFrame(
        {
            "subject_id": ["a", "b", "c"],
            "unit_id": ["a1", "b1", "c1"],
            "modality": ["MN", "MN", "MN+PRP"],
        }
    )
    ae = pd.DataFrame(
        {
            "subject_id": ["a", "a", "c"],
            "unit_id": ["a1", "a1", None],
            "term": ["erythema", "pih", "erythema"],
            "serious": [False, False, True],
        }
    )
    table = rs.safety_table({"units": units, "adverse_events": ae})
    rows = {r["Adverse event"].strip(): r for r in table.to_dict("records")}
    any_mn = table.iloc[1]
    assert any_mn["Adverse event"].strip() == "MN"
    assert any_mn["Patients, n (%)"] == "1 (50.0%)" and any_mn["Events"] == "2"
    assert table.iloc[2]["Patients, n (%)"] == "1 (100.0%)"  # c's event has no unit: counted
    assert "Pih" not in rows and "Post-inflammatory hyperpigmentation" in rows  # dictionary label
    assert "No adverse events are recorded" in rs.safety_summary(
        {"units": units, "adverse_events": ae.iloc[0:0]}
    )
    assert "3 adverse events were recorded in 2 of 3 patients" in rs.safety_summary(
        {"units": units, "adverse_events": ae}
    )


def test_forest_plot_fills_the_points_of_doubtful_estimates(
    failing: tuple[pd.DataFrame, str],
) -> None:
    import matplotlib.pyplot as plt

    from outcomes.comparisons.forest import _forest_plot

    table, _ = failing
    rows = table.loc[table["measure"].eq("odds_ratio") & table["estimate"].notna()]
    fig = _forest_plot(rows, ["odds_ratio"], ["registry"], 0.95)
    points = [
        line
        for ax in fig.axes
        for line in ax.get_lines()
        if line.get_marker() in ("^", "s") and len(line.get_xdata()) == 1
    ]
    filled = sorted(float(p.get_xdata()[0]) for p in points if p.get_markerfacecolor() != "white")
    doubtful = sorted(rows.loc[rows["doubt"] != "", "estimate"].astype(float))
    plt.close(fig)
    assert filled == pytest.approx(doubtful)
    assert 0 < len(filled) < len(points)
    assert "filled: doubtful estimate" in [t.get_text() for t in fig.legends[0].get_texts()]
