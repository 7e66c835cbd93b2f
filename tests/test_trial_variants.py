"""The trial report on held-out study variants: other schedules, designs and missing tables.

Each variant is made with the simulator (:func:`outcomes.simulate.trial.simulate_trial`) and by
editing its tables, ingested into a fresh store and rendered through the ``outcomes report``
command. The default run renders HTML for four variants that together cover every edit; the
full matrix (each variant alone, in HTML, Word and PDF) is ``@pytest.mark.slow``. Each render
must succeed with no error text, say plainly which data are missing, and contain no literal of
the demo (visit labels, arm names, photo raters) that the variant's data do not have.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from outcomes.cli import main
from outcomes.data.ingest import ingest
from outcomes.simulate.output import Feeds, write_feeds
from outcomes.simulate.trial import simulate_trial

# the readers of the demo report's tests (HTML text, Word paragraphs, PDF text)
_spec = importlib.util.spec_from_file_location(
    "reports_readers", Path(__file__).parent / "test_reports.py"
)
readers = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["reports_readers"] = readers
_spec.loader.exec_module(readers)  # type: ignore[union-attr]

REPORT = Path(__file__).resolve().parents[1] / "reports" / "trial.qmd"
LEAK = re.compile(r"Traceback|\b\w*(?:Warning|Error)\b|stderr|Cell In\[|KeyError|nan\b|NaN")


# --------------------------------------------------------------------------------------------
# edits of a simulated trial
# --------------------------------------------------------------------------------------------


def relabel(feeds: Feeds, labels: dict[int, str]) -> Feeds:
    """Visit labels by study day (patient-reported session labels are kept)."""
    a = feeds.tables["assessments"]
    visit = a["day"].map(labels)
    keep = ~a["visit"].astype(str).str.startswith("session_")
    a.loc[keep & visit.notna(), "visit"] = visit[keep & visit.notna()]
    return feeds


def drop_rows(feeds: Feeds, table: str, mask: Callable[[pd.DataFrame], pd.Series]) -> Feeds:
    df = feeds.tables[table]
    feeds.tables[table] = df.loc[~mask(df)].reset_index(drop=True)
    return feeds


def no_adverse_events(feeds: Feeds) -> Feeds:
    return drop_rows(feeds, "adverse_events", lambda df: pd.Series(True, index=df.index))


def no_photo_raters(feeds: Feeds) -> Feeds:
    return drop_rows(feeds, "assessments", lambda df: df["rater_role"] == "blinded_photo_rater")


def no_pros(feeds: Feeds) -> Feeds:
    return drop_rows(feeds, "assessments", lambda df: df["rater_role"] == "patient")


def no_grade(feeds: Feeds) -> Feeds:
    return drop_rows(feeds, "assessments", lambda df: df["instrument"] == "gb_qual")


def single_arm(feeds: Feeds) -> Feeds:
    """Keep the combination arm of a parallel trial only: a single-arm study."""
    units = feeds.tables["units"]
    gone = units.loc[units["modality"] == "MN", "unit_id"]
    subjects = units.loc[units["modality"] == "MN", "subject_id"]
    for table in ("units", "sessions", "assessments", "adverse_events"):
        feeds = drop_rows(feeds, table, lambda df: df["unit_id"].isin(gone))
    feeds = drop_rows(feeds, "subjects", lambda df: df["subject_id"].isin(subjects))
    feeds.tables["studies"]["design"] = "single_arm"
    feeds.tables["studies"]["title"] = "Single-arm study of MN+PRP"
    return feeds


def shifted_baseline(feeds: Feeds) -> Feeds:
    """Baseline on day 0 labelled "V1"; the first session and every later day a week later."""
    for table, col in (("sessions", "day"), ("adverse_events", "onset_day")):
        feeds.tables[table][col] = feeds.tables[table][col] + 7
    a = feeds.tables["assessments"]
    a.loc[a["day"] > 0, "day"] = a.loc[a["day"] > 0, "day"] + 7
    a.loc[(a["day"] == 0) & (a["rater_role"] == "patient"), "day"] = 7
    feeds.tables["subjects"]["end_day"] = feeds.tables["subjects"]["end_day"] + 7
    labels = {0: "V1", 35: "V2", 63: "V3", 91: "V4", 175: "V5"}
    return relabel(feeds, labels)


def sim(**kwargs: object) -> Feeds:
    return simulate_trial(seed=kwargs.pop("seed", 5), n_subjects=kwargs.pop("n", 40), **kwargs)  # type: ignore[arg-type]


MONTHS = {0: "month_0", 28: "month_1", 56: "month_2", 84: "month_3", 168: "month_6"}
V_LABELS = {0: "v0", 28: "v1", 56: "v2", 84: "v3", 168: "v4"}
DAY_LABELS = {d: f"day_{d}" for d in (0, 28, 56, 84, 168)}

#: name -> (feeds builder, what the data lack)
VARIANTS: dict[str, tuple[Callable[[], Feeds], set[str]]] = {
    "months": (lambda: relabel(sim(), MONTHS), set()),
    "v_labels_parallel": (lambda: relabel(sim(design="parallel", n=60), V_LABELS), set()),
    "day_labels": (lambda: relabel(sim(), DAY_LABELS), set()),
    "shifted_baseline": (lambda: shifted_baseline(sim()), set()),
    "single_arm": (
        lambda: single_arm(sim(design="parallel", n=60)),
        {"comparator"},
    ),
    "no_adverse_events": (lambda: no_adverse_events(sim()), {"ae"}),
    "no_photo_raters": (lambda: no_photo_raters(sim()), {"raters"}),
    "no_pros": (lambda: no_pros(sim()), {"pro"}),
    "no_grade": (lambda: no_grade(sim()), {"grade", "raters"}),
    "one_follow_up_visit": (lambda: sim(visit_days=(0, 84)), set()),
    "heavy_dropout": (lambda: sim(dropout=0.6), set()),
    "other_arms_parallel": (
        lambda: sim(design="parallel", n=60, combination="MN+RF", control="MN+saline"),
        {"other_arms"},
    ),
    # the default run: four variants that together make every edit
    "parallel_months_bare": (
        lambda: no_photo_raters(
            no_adverse_events(
                relabel(
                    sim(design="parallel", n=60, combination="MN+RF", control="MN+saline"), MONTHS
                )
            )
        ),
        {"ae", "raters", "other_arms"},
    ),
    "split_v_labels_no_pro_grade": (
        lambda: no_grade(no_pros(relabel(sim(dropout=0.6), V_LABELS))),
        {"pro", "grade", "raters"},
    ),
    "single_arm_one_visit_bare": (
        lambda: no_pros(
            no_photo_raters(single_arm(sim(design="parallel", n=60, visit_days=(0, 84))))
        ),
        {"comparator", "raters", "pro"},
    ),
    "shifted_day_labels": (lambda: shifted_baseline(sim(seed=7)), set()),
}
#: visit names each variant's report must show (its own labels, read as words)
SHOWN_LABELS = {
    "months": ("Month 6 (week 24)", "Month 0 (baseline)"),
    "parallel_months_bare": ("Month 6 (week 24)", "Month 0 (baseline)"),
    "v_labels_parallel": ("V4 (week 24)", "V0 (baseline)"),
    "split_v_labels_no_pro_grade": ("V4 (week 24)", "V0 (baseline)"),
    "day_labels": ("Day 168 (week 24)", "Day 0 (baseline)"),
    "shifted_baseline": ("V5 (week 25)", "V1 (baseline)"),
    "shifted_day_labels": ("V5 (week 25)", "V1 (baseline)"),
    "one_follow_up_visit": ("Week 12",),
    "single_arm_one_visit_bare": ("Week 12",),
}
DEFAULT = (
    "parallel_months_bare",
    "split_v_labels_no_pro_grade",
    "single_arm_one_visit_bare",
    "shifted_day_labels",
)


def render_variant(name: str, root: Path, formats: str) -> dict[str, str]:
    build, _ = VARIANTS[name]
    write_feeds(build(), root / "trial")
    store = root / "store.duckdb"
    report = ingest([root / "trial"], store)
    assert report.exit_code == 0, report.summary()
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            [
                "report",
                str(REPORT),
                "-P",
                f"store={store}",
                "--to",
                formats,
                "--out",
                str(root / "out"),
                "--engine",
                "builtin",
            ]
        )
    assert code == 0, stderr.getvalue()
    assert not [ln for ln in stderr.getvalue().splitlines() if ln.startswith("warning:")]
    paths = {f: root / "out" / f"trial.{f}" for f in ("html", "docx", "pdf")}
    if formats == "html":
        page = readers.Page()
        page.feed(paths["html"].read_text(encoding="utf-8"))
        return {"html": readers.flat("".join(page.text))}
    rendered = readers.read_back(paths, [])
    return {f: rendered.text(f) for f in ("html", "docx", "pdf")}


def check(name: str, text: str) -> None:
    """What every render of a variant must (not) say."""
    _, lacks = VARIANTS[name]
    assert not LEAK.search(text), LEAK.search(text)
    assert "Participant flow" in text and "Primary outcome" in text
    # no demo literal the data do not have
    assert not re.search(r"\b(?:week|month|day|session)_\d", text)  # labels read as words
    for shown in SHOWN_LABELS.get(name, ()):
        assert shown in text, shown
    if "other_arms" in lacks:  # the control is found from the dictionary's word "control"
        assert "MN+RF versus MN+saline" in text and "MN+PRP" not in text
        assert " MN " not in text
    if "comparator" in lacks:
        assert "There is no comparator arm" in text
        for phrase in (
            "hazard ratio 0",
            "hazard ratio 1",
            "Odds ratio (95% CI)",
            "log-rank p",
            "Risk ratio (95% CI)",
            "MN+PRP − MN",
            " MN ",
        ):
            assert phrase not in text, phrase
    else:
        assert "hazard ratio" in text and "time ratio" in text
    if "ae" in lacks:
        assert "No adverse events were recorded in this study." in text
        assert "Any adverse event" not in text
    else:
        assert "Any adverse event" in text
    if "raters" in lacks:
        assert "No blinded photo ratings were recorded in this study" in text
        assert "ICC(2,1)" not in text and "scored the same photographs" not in text
    else:
        assert "ICC(2,1)" in text
    if "pro" in lacks:
        assert "Patient-reported pain and satisfaction were not collected in this study." in text
        assert "Pain visual" not in text and "Pain VAS" not in text
    else:
        assert "Pain VAS, mean (SD)" in text
    if "grade" in lacks:
        assert "qualitative acne scar grade was not collected in this study" in text
        assert "cumulative-logit" not in text


@pytest.mark.parametrize("name", DEFAULT)
def test_variant_renders_html_and_says_what_is_missing(name: str, tmp_path: Path) -> None:
    check(name, render_variant(name, tmp_path, "html")["html"])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_renders_three_formats(name: str, tmp_path: Path) -> None:
    for text in render_variant(name, tmp_path, "html,pdf,docx").values():
        check(name, text)


def three_arms(feeds: Feeds) -> Feeds:
    """Every third participant of a parallel MN+PRP vs MN trial moved to a third arm, MN+RF."""
    units, sessions = feeds.tables["units"], feeds.tables["sessions"]
    moved = units["subject_id"].str[1:].astype(int) % 3 == 0
    units.loc[moved, "modality"] = "MN+RF"
    rf = sessions["unit_id"].isin(units.loc[moved, "unit_id"])
    sessions.loc[rf, "modality"] = "MN+RF"
    sessions.loc[rf, "prp_volume_ml"] = None
    sessions.loc[rf, "rf_energy_mj"] = 20.0
    feeds.tables["studies"]["title"] = "Three-arm trial"
    return feeds


def test_three_arm_trial_is_reported_one_comparison_at_a_time(tmp_path: Path) -> None:
    write_feeds(three_arms(sim(design="parallel", n=60)), tmp_path / "trial")
    store = tmp_path / "store.duckdb"
    assert ingest([tmp_path / "trial"], store).exit_code == 0

    def report(*params: str) -> tuple[int, str]:
        stderr = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            code = main(
                [
                    "report",
                    str(REPORT),
                    "-P",
                    f"store={store}",
                    *params,
                    "--to",
                    "html",
                    "--out",
                    str(tmp_path / "out"),
                    "--engine",
                    "builtin",
                ]
            )
        return code, stderr.getvalue()

    code, err = report()
    assert code == 2
    assert "has 3 arms (MN, MN+PRP, MN+RF)" in err and "-P treatment=MN+RF" in err
    assert "Traceback" not in err
    code, err = report("-P", "study=TRIAL9")
    assert code == 2 and "study 'TRIAL9' is not in snapshot 1" in err and "TRIAL1 (parallel)" in err
    code, err = report("-P", "treatment=MN+RF")
    assert code == 0, err
    page = readers.Page()
    page.feed((tmp_path / "out" / "trial.html").read_text(encoding="utf-8"))
    text = readers.flat("".join(page.text))
    assert "the study’s other arm (MN+PRP) is left out of this report" in text
    assert text.count("MN+PRP") == 1  # named once, as left out; never compared
    assert "MN+RF versus MN" in text
    assert not LEAK.search(text), LEAK.search(text)
