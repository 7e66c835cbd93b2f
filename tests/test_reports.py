"""Render the trial and registry reports from a simulated demo store and read them back.

The store holds the demo's data (``simulate_trial(seed=1)``; ``simulate_registry(seed=2)`` with
800 patients instead of 2,000 to keep the test short). Each report is rendered once per module
to HTML, Word and PDF -- the trial report through the ``outcomes report`` command, the registry
report through :func:`outcomes.report.render` -- and every test checks one thing in all three
formats: the numbers printed equal the model's values (computed here with the toolkit API,
independently of the report's own code), every figure has its alt text and caption, and no
error or warning text reaches the document.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from outcomes.analysis.spec import load_spec
from outcomes.cli import main, parse_params
from outcomes.comparisons.comparison import compare
from outcomes.data.ingest import ingest
from outcomes.data.store import Store
from outcomes.derive.tte import derive_tte
from outcomes.errors import InputError
from outcomes.models.glmm.clmm import clmm
from outcomes.models.lmm.fit import lmm
from outcomes.models.meta.meta_analysis import meta_analysis
from outcomes.models.mmrm.fit import mmrm
from outcomes.models.network import microneedling_network, microneedling_pairs, network_meta
from outcomes.models.survival.competing import cumulative_incidence
from outcomes.models.survival.cox import cox
from outcomes.report import format_ci, render
from outcomes.report.lookup import resolve_report
from outcomes.report.qmd import parse_qmd
from outcomes.report.trial_models import primary_plan
from outcomes.simulate.output import write_feeds
from outcomes.simulate.registry import simulate_registry
from outcomes.simulate.trial import simulate_trial

REPORTS = Path(__file__).resolve().parents[1] / "reports"
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
#: Text that must never reach a report: tracebacks, warning or error class names, stderr.
LEAK = re.compile(r"Traceback|\b\w*(?:Warning|Error)\b|stderr|_outcomes_inline|Cell In\[")
FORMATS = ("html", "docx", "pdf")


# --------------------------------------------------------------------------------------------
# reading the rendered files
# --------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """What a reader sees in an HTML page: text, images, figure captions, table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.figcaptions: list[str] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._stack: list[str] = []
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
            return
        if tag == "tr":
            self.rows.append([])
        if tag in ("figcaption", "td", "th"):
            self._buffer = []
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        text = " ".join("".join(self._buffer).split())
        if tag == "figcaption":
            self.figcaptions.append(text)
        elif tag in ("td", "th") and self.rows:
            self.rows[-1].append(text)
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if "style" in self._stack or "script" in self._stack:
            return
        self._buffer.append(data)
        self.text.append(data)


@dataclass
class Rendered:
    """One report in the three formats, read back."""

    paths: dict[str, Path]
    warnings: list[Any]
    page: Page
    html: str
    docx: str
    docx_alts: list[str | None]
    docx_rows: list[list[str]]
    pdf: str

    def text(self, fmt: str) -> str:
        return {"html": self.html, "docx": self.docx, "pdf": self.pdf}[fmt]


def flat(text: str) -> str:
    return " ".join(text.split())


def read_back(paths: dict[str, Path], found: list[Any]) -> Rendered:
    page = Page()
    page.feed(paths["html"].read_text(encoding="utf-8"))
    with zipfile.ZipFile(paths["docx"]) as docx:
        root = ET.fromstring(docx.read("word/document.xml"))
    paragraphs = ["".join(t.text or "" for t in p.iter(f"{W}t")) for p in root.iter(f"{W}p")]
    rows = [
        ["".join(t.text or "" for t in c.iter(f"{W}t")) for c in r.iter(f"{W}tc")]
        for r in root.iter(f"{W}tr")
    ]
    alts = [e.get("descr") for e in root.iter() if e.tag.endswith("}docPr")]
    # the PDF's text laid out as on the page (pypdf, pinned in requirements.lock)
    pdf = "\n".join(p.extract_text(extraction_mode="layout") for p in PdfReader(paths["pdf"]).pages)
    return Rendered(
        paths=paths,
        warnings=found,
        page=page,
        html=flat("".join(page.text)),
        docx=flat(" ".join(paragraphs)),
        docx_alts=alts,
        docx_rows=rows,
        pdf=flat(re.sub("\u00ad\\s*", "", pdf)),  # Typst hyphenates with soft hyphens
    )


def figure_options(report: str) -> list[dict[str, Any]]:
    """The options of the report's figure cells, in order."""
    doc = parse_qmd(REPORTS / f"{report}.qmd")
    return [c.options for c in doc.cells if (c.label or "").startswith("fig-")]


def row_of(rows: list[list[str]], first: str) -> list[str]:
    return next(r for r in rows if r and r[0] == first)


# --------------------------------------------------------------------------------------------
# fixtures: one demo store, each report rendered once
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_feeds(simulate_trial(seed=1), root / "trial")
    write_feeds(simulate_registry(seed=2, n_subjects=800), root / "registry")
    store = root / "outcomes.duckdb"
    report = ingest([root / "trial", root / "registry"], store)
    assert report.exit_code == 0, report.summary()
    return store


@pytest.fixture(scope="module")
def tables(demo_store: Path) -> dict[str, pd.DataFrame]:
    with Store(demo_store) as s:
        return s.tables()


def study_tables(tables: dict[str, pd.DataFrame], study: str) -> dict[str, pd.DataFrame]:
    return {
        name: df.loc[df["study_id"] == study].reset_index(drop=True) if "study_id" in df else df
        for name, df in tables.items()
    }


def render_trial(store: Path, out: Path, *params: str) -> Rendered:
    """The trial report, rendered by the command line as a user would."""
    stdout, stderr = io.StringIO(), io.StringIO()
    extra = [arg for param in params for arg in ("-P", param)]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            [
                "report",
                str(REPORTS / "trial.qmd"),
                "-P",
                f"store={store}",
                "-P",
                "snapshot=1",
                *extra,
                "--to",
                "html,pdf,docx",
                "--out",
                str(out),
                "--engine",
                "builtin",
            ]
        )
    assert code == 0, stderr.getvalue()
    assert f"html  {out / 'trial.html'}" in stdout.getvalue()
    found = [ln for ln in stderr.getvalue().splitlines() if ln.startswith("warning:")]
    return read_back({fmt: out / f"trial.{fmt}" for fmt in FORMATS}, found)


@pytest.fixture(scope="module")
def trial(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return render_trial(demo_store, tmp_path_factory.mktemp("trial_report"))


@pytest.fixture(scope="module")
def trial_mmrm(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The trial report with an MMRM as the primary analysis."""
    return render_trial(demo_store, tmp_path_factory.mktemp("trial_mmrm"), "primary_model=mmrm")


@pytest.fixture(scope="module")
def trial_no_grade(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The demo trial without its qualitative grade (gb_qual) rows."""
    root = tmp_path_factory.mktemp("no_grade")
    feeds = simulate_trial(seed=1)
    a = feeds.tables["assessments"]
    feeds.tables["assessments"] = a.loc[a["instrument"] != "gb_qual"].reset_index(drop=True)
    write_feeds(feeds, root / "trial")
    store = root / "outcomes.duckdb"
    assert ingest([root / "trial"], store).exit_code == 0
    return render_trial(store, root / "report")


@pytest.fixture(scope="module")
def trial_parallel(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """A simulated parallel trial (seed 3) whose grade model is weakly identified."""
    root = tmp_path_factory.mktemp("parallel")
    write_feeds(simulate_trial(seed=3, design="parallel"), root / "trial")
    store = root / "outcomes.duckdb"
    assert ingest([root / "trial"], store).exit_code == 0
    return render_trial(store, root / "report")


@pytest.fixture(scope="module")
def registry(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    out = tmp_path_factory.mktemp("registry_report")
    result = render(
        REPORTS / "registry.qmd",
        params={"store": str(demo_store), "snapshot": 1},
        out_dir=out,
        engine="builtin",
    )
    return read_back(dict(result), result.warnings)


@pytest.fixture(scope="module")
def trial_expected(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The trial's primary contrast and hazard ratio, fitted here with the toolkit API."""
    t = study_tables(tables, "TRIAL1")
    a = t["assessments"]
    a = a.loc[(a["instrument"] == "gb_quant") & (a["rater_role"] == "investigator")]
    df = a.merge(t["units"], on=["study_id", "unit_id"]).merge(
        t["subjects"], on=["study_id", "subject_id"]
    )
    df = pd.DataFrame(
        {
            "value": df["value"].astype(float).to_numpy(),
            "week": df["day"].astype(float).to_numpy() / 7,
            "modality": df["modality"].astype(str).to_numpy(),
            "subject_id": df["subject_id"].astype(str).to_numpy(),
            "unit_id": df["unit_id"].astype(str).to_numpy(),
        }
    )
    fit = lmm(df, "value ~ week * modality", design="split_body", re_formula="~week")
    primary = fit.contrasts("modality", at={"week": 24}, ref="MN").iloc[0]
    tte = derive_tte(t, "first_improvement")
    hr = cox(tte, "arm", cluster="subject_id").table.iloc[0]
    g = t["assessments"]
    g = g.loc[(g["instrument"] == "gb_qual") & (g["rater_role"] == "investigator")].merge(
        t["units"], on=["study_id", "unit_id"]
    )
    grades = pd.DataFrame(
        {
            "grade": g["value"].astype(int).to_numpy(),
            "week": g["day"].astype(float).to_numpy() / 7,
            "arm": (g["modality"] == "MN+PRP").astype(float).to_numpy(),
            "subject_id": g["subject_id"].astype(str).to_numpy(),
            "unit_id": g["unit_id"].astype(str).to_numpy(),
        }
    )
    grade_fit = clmm(grades, "grade ~ week * arm", groups="subject_id", nested="unit_id")
    names = list(grade_fit.coef.index)
    lvec = np.zeros(len(names))
    lvec[[names.index("arm"), names.index("week:arm")]] = [1.0, 24.0]
    log_or = float(lvec @ grade_fit.coef.to_numpy())
    se = float(np.sqrt(lvec @ grade_fit.vcov.loc[names, names].to_numpy() @ lvec))
    z = 1.959963984540054
    return {
        "grade_or": format_ci(np.exp(log_or), np.exp(log_or - z * se), np.exp(log_or + z * se)),
        "primary": format_ci(primary["estimate"], primary["conf_low"], primary["conf_high"]),
        "hazard_ratio": format_ci(hr["hazard_ratio"], hr["hr_conf_low"], hr["hr_conf_high"]),
        "n_obs": len(df),
    }


@pytest.fixture(scope="module")
def mmrm_expected(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The MMRM contrast at week 24 (baseline as covariate, us, Kenward-Roger), fitted here."""
    t = study_tables(tables, "TRIAL1")
    a = t["assessments"]
    a = a.loc[(a["instrument"] == "gb_quant") & (a["rater_role"] == "investigator")]
    a = a.merge(t["units"], on=["study_id", "unit_id"])
    base = a.loc[a["day"] == 0].set_index("unit_id")["value"].astype(float)
    post = a.loc[a["day"] > 0]
    df = pd.DataFrame(
        {
            "value": post["value"].astype(float).to_numpy(),
            "baseline": post["unit_id"].map(base).to_numpy(),
            "week": post["day"].astype(float).to_numpy() / 7,
            "modality": post["modality"].astype(str).to_numpy(),
            "subject_id": post["subject_id"].astype(str).to_numpy(),
            "unit_id": post["unit_id"].astype(str).to_numpy(),
        }
    ).dropna()
    fit = mmrm(
        df,
        "value ~ baseline + modality * week",
        subject="unit_id",
        nested_in="subject_id",
        visit="week",
        cov="us",
        ddf="kenward-roger",
    )
    con = fit.contrasts("modality", by="week", ref="MN")
    row = con.loc[con["week"] == 24].iloc[0]
    return {
        "primary": format_ci(row["estimate"], row["conf_low"], row["conf_high"]),
        "df": f"{row['df']:.1f}",
        "n_obs": len(df),
    }


@pytest.fixture(scope="module")
def registry_expected(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The registry's headline odds ratio and retreatment incidence, computed here."""
    t = study_tables(tables, "REG1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # positivity and few-cluster warnings, checked elsewhere
        table = compare(t, reference="MN", primary_day=168, estimand="overlap").table
    row = table.loc[
        (table["source"] == "registry")
        & (table["indication"] == "acne_scars")
        & (table["measure"] == "odds_ratio")
        & (table["comparison"] == "MN+PRP vs MN")
        & (table["adjustment"] == "weighted")
    ].iloc[0]
    retreat = derive_tte(t, "retreatment")
    ci = cumulative_incidence(retreat, "retreated", "lost_to_follow_up", by="arm").at([365])
    year = {
        r["arm"]: format_ci(100 * r["estimate"], 100 * r["conf_low"], 100 * r["conf_high"], 1)
        for _, r in ci.iterrows()
    }
    return {
        "odds_ratio": format_ci(row["estimate"], row["conf_low"], row["conf_high"]),
        "retreated_365": year,
    }


# --------------------------------------------------------------------------------------------
# trial report
# --------------------------------------------------------------------------------------------


def test_trial_renders_three_formats_without_warnings(trial: Rendered) -> None:
    assert all(p.is_file() and p.stat().st_size > 0 for p in trial.paths.values())
    assert trial.paths["pdf"].read_bytes().startswith(b"%PDF")
    assert trial.warnings == []  # the command printed no render warning


@pytest.mark.parametrize("fmt", FORMATS)
def test_trial_prints_the_primary_contrast_and_hazard_ratio(
    trial: Rendered, trial_expected: dict, fmt: str
) -> None:
    text = trial.text(fmt)
    expected = trial_expected["primary"]
    assert f"(MN+PRP minus MN) was {expected} points" in text
    assert f"Cox hazard ratio {trial_expected['hazard_ratio']}" in text


@pytest.mark.parametrize("fmt", ["html", "docx"])
def test_trial_table_of_means_prints_the_contrast_at_week_24(
    trial: Rendered, trial_expected: dict, fmt: str
) -> None:
    rows = trial.page.rows if fmt == "html" else trial.docx_rows
    week24 = row_of(rows, "Week 24 (n = 40, 40)")
    assert week24[3] == trial_expected["primary"]
    assert week24[4] == "<0.001"


def test_trial_pdf_means_table(trial: Rendered, trial_expected: dict) -> None:
    assert re.search(rf"Week 24 .*?{re.escape(trial_expected['primary'])} <0\.001", trial.pdf)


def test_trial_sections_flow_and_methods(trial: Rendered, trial_expected: dict) -> None:
    for heading in (
        "Participant flow",
        "Treatment delivered",
        "Primary outcome",
        "Responder analysis",
        "Time to result",
        "Adverse events",
        "Rater agreement",
        "Methods",
        "Model checks",
    ):
        assert heading in trial.html
    flow = row_of(trial.page.rows, "Allocated")
    assert flow == ["Allocated", "50 (50 sides)", "50 (50 sides)"]
    assert row_of(trial.page.rows, "Assessed at week 24 (primary visit)")[1:] == [
        "40 (40 sides)",
        "40 (40 sides)",
    ]
    statsmodels = metadata.version("statsmodels")
    for fmt in FORMATS:
        text = trial.text(fmt)
        assert "Data: snapshot 1 of the store outcomes.duckdb" in text
        assert f"statsmodels {statsmodels}" in text
        assert f"{trial_expected['n_obs']} observations" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_trial_figures_have_alt_text_and_captions(trial: Rendered, fmt: str) -> None:
    check_figures(trial, "trial", fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_trial_has_no_error_or_warning_text(trial: Rendered, fmt: str) -> None:
    text = trial.text(fmt)
    assert text
    assert not LEAK.findall(text)


# --------------------------------------------------------------------------------------------
# registry report
# --------------------------------------------------------------------------------------------


def test_registry_renders_three_formats_without_warnings(registry: Rendered) -> None:
    assert all(p.is_file() and p.stat().st_size > 0 for p in registry.paths.values())
    assert registry.warnings == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_registry_prints_the_weighted_odds_ratio(
    registry: Rendered, registry_expected: dict, fmt: str
) -> None:
    text = registry.text(fmt)
    assert f"in acne scars was {registry_expected['odds_ratio']}" in text


@pytest.mark.parametrize("fmt", ["html", "docx"])
def test_registry_retreatment_table_equals_cumulative_incidence(
    registry: Rendered, registry_expected: dict, fmt: str
) -> None:
    rows = registry.page.rows if fmt == "html" else registry.docx_rows
    for arm, expected in registry_expected["retreated_365"].items():
        # the retreatment table is the last with a row per modality (after the safety table)
        assert [r for r in rows if r and r[0] == arm][-1][-1] == expected


def test_registry_population_and_sections(registry: Rendered) -> None:
    total = row_of(registry.page.rows, "Total")
    assert total[-1] == "800"
    for heading in (
        "Population",
        "Balance before and after weighting",
        "Adjusted comparisons",
        "Durability and retreatment",
        "Methods",
        "Model checks",
    ):
        assert heading in registry.html
    # the models' warnings are stated in words (few clinics -> cluster-robust SEs are imprecise)
    assert "clusters" in registry.html.split("Model checks", 1)[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_registry_figures_have_alt_text_and_captions(registry: Rendered, fmt: str) -> None:
    check_figures(registry, "registry", fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_registry_has_no_error_or_warning_text(registry: Rendered, fmt: str) -> None:
    assert not LEAK.findall(registry.text(fmt))


def joined(text: str) -> str:
    """Text with words rejoined where Typst hyphenated at a line end ("confi- dence")."""
    return re.sub(r"(?<=[a-z])- ?(?=[a-z])", "", text)


def check_figures(rendered: Rendered, report: str, fmt: str) -> None:
    figures = figure_options(report)
    alts = [f["fig-alt"] for f in figures]
    captions = [f"Figure {i}. {f['fig-cap']}" for i, f in enumerate(figures, start=1)]
    assert all(alts) and all(f["fig-cap"] for f in figures)
    if fmt == "html":
        assert [i.get("alt") for i in rendered.page.images] == alts
        assert rendered.page.figcaptions == captions
    elif fmt == "docx":
        assert rendered.docx_alts == alts
        assert all(c in rendered.docx for c in captions)
    else:
        assert all(joined(c) in joined(rendered.pdf) for c in captions)


# --------------------------------------------------------------------------------------------
# trial report: the qualitative grade, the declared primary model, a trial without gb_qual
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_trial_prints_the_clmm_odds_ratio_of_the_grade(
    trial: Rendered, trial_expected: dict, fmt: str
) -> None:
    text = trial.text(fmt)
    assert "Qualitative grade" in text
    assert f"MN+PRP relative to MN were {trial_expected['grade_or']}" in text
    assert "(conditional odds ratio)" in text and "marginal, population-averaged" in text


def test_trial_grade_odds_ratio_of_a_weakly_identified_fit_is_called_doubtful(
    trial: Rendered, trial_parallel: Rendered
) -> None:
    doubt = "The conditional odds ratio is doubtful: the participant random-intercept SD"
    text = trial_parallel.text("html")
    assert doubt in text
    assert "Weakly identified: the random-intercept SD (subject_id 10.7)" in text
    assert doubt not in trial.text("html")


@pytest.mark.parametrize("fmt", ["html", "docx"])
def test_trial_grade_table_row_is_the_conditional_odds_ratio(
    trial: Rendered, trial_expected: dict, fmt: str
) -> None:
    rows = trial.page.rows if fmt == "html" else trial.docx_rows
    row = row_of(rows, "Conditional (same participant), every cut-point")
    assert row[1] == trial_expected["grade_or"]
    assert row_of(rows, "Marginal (population-averaged), grade > 1")


def test_trial_mmrm_renders_without_warnings(trial_mmrm: Rendered) -> None:
    assert trial_mmrm.warnings == []


@pytest.mark.parametrize("fmt", ["html", "docx"])
def test_trial_mmrm_table_prints_the_kenward_roger_contrast(
    trial_mmrm: Rendered, mmrm_expected: dict, fmt: str
) -> None:
    rows = trial_mmrm.page.rows if fmt == "html" else trial_mmrm.docx_rows
    week24 = row_of(rows, "Week 24 (n = 40, 40)")
    assert week24[3] == mmrm_expected["primary"]
    assert week24[-1] == mmrm_expected["df"]
    assert not [r for r in rows if r and r[0] == "Baseline"]  # baseline is a covariate


@pytest.mark.parametrize("fmt", FORMATS)
def test_trial_mmrm_summary_and_methods_follow_the_result(
    trial_mmrm: Rendered, mmrm_expected: dict, fmt: str
) -> None:
    text = trial_mmrm.text(fmt)
    if fmt == "pdf":  # a line may break after the hyphen of "likelihood-based"
        text = text.replace("- ", "-")
    assert f"(MN+PRP minus MN) was {mmrm_expected['primary']} points" in text
    assert "mixed model for repeated measures (MMRM)" in text
    assert "unstructured covariance" in text
    assert "Kenward-Roger degrees of freedom" in text
    assert "likelihood-based, no imputation" in text
    assert f"{mmrm_expected['n_obs']} observations" in text
    assert "report option primary_model = mmrm" in text


def test_trial_without_grade_says_so_and_renders(trial_no_grade: Rendered) -> None:
    assert trial_no_grade.warnings == []
    figures = figure_options("trial")
    captions = [f["fig-cap"] for f in figures if "qualitative grade" not in f["fig-cap"]]
    for fmt in FORMATS:
        text = trial_no_grade.text(fmt)
        assert not LEAK.findall(text)
        grade = "Goodman & Baron qualitative acne scar grade"
        assert f"The {grade} was not collected in this study" in text
        assert "odds ratios of a higher (worse) grade" not in text
        assert "needs Goodman & Baron qualitative acne scar grade, which this study did not" in text
        for i, caption in enumerate(captions, start=1):  # figure numbers close up
            assert flat(f"Figure {i}. {caption}") in flat(text)
    assert [i.get("alt") for i in trial_no_grade.page.images] == [
        f["fig-alt"] for f in figures if "qualitative grade" not in f["fig-cap"]
    ]


def test_primary_plan_follows_the_declared_analysis() -> None:
    root = REPORTS.parent / "analyses"
    plan = primary_plan(load_spec(root / "trial_lmm_gb_quant.yaml"))
    assert (plan.kind, plan.instrument) == ("lmm", "gb_quant")
    assert plan.formula == "value ~ week * modality"
    assert plan.options == {"re_formula": "~week"}
    assert plan.source == "declared analysis trial_lmm_gb_quant (trial_lmm_gb_quant.yaml)"
    plan = primary_plan(None, "mmrm", "gb_quant", cov="ar1h", ddf="satterthwaite")
    assert plan.options == {"visit": "week", "cov": "ar1h", "ddf": "satterthwaite", "reml": True}
    with pytest.raises(InputError, match=r"trial_time_to_improvement\.yaml: model: kind"):
        primary_plan(load_spec(root / "trial_time_to_improvement.yaml"))
    with pytest.raises(InputError, match="primary_model='gee'"):
        primary_plan(None, "gee")


# --------------------------------------------------------------------------------------------
# comparison report (slow: the comparison runs every model of the trial and the registry)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comparison(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    out = tmp_path_factory.mktemp("comparison_report")
    result = render(
        REPORTS / "comparison.qmd", params={"store": str(demo_store)}, out_dir=out, engine="builtin"
    )
    return read_back(dict(result), result.warnings)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_comparison_prints_only_real_published_trials(comparison: Rendered, fmt: str) -> None:
    pairs = microneedling_pairs("excellent_response", "MN+PRP")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one study: nothing pooled, stated in the report
        meta = meta_analysis(pairs, "OR", "FE", r=0.3)  # the report's split_r
    own = meta.tidy(exponentiate=True).iloc[-1]
    expected = format_ci(own["estimate"], own["conf_low"], own["conf_high"])
    text = comparison.text(fmt)
    assert f"(Asif 2016): odds ratio {expected}" in text
    assert "nothing is pooled" in text
    # the invented example studies are gone, and so is any pooled row built on them
    assert "llustrative" not in text and "Pooled (random effects)" not in text
    assert comparison.warnings == []
    assert not LEAK.findall(text)
    check_figures(comparison, "comparison", fmt)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_comparison_network_section(comparison: Rendered, fmt: str) -> None:
    arms = microneedling_network("excellent_response")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no loops: stated in the report
        fit = network_meta(arms, "OR", reference="MN", r=0.3, small_values="undesirable")
    vitc = fit.relative_effects("random", exponentiate=True).set_index("treatment").loc["MN+vitC"]
    text = joined(comparison.text(fmt))
    # MN+vitC vs MN is estimated indirectly only (through MN+PRP): Asif 2016 and Chawla 2014
    assert format_ci(vitc["estimate"], vitc["conf_low"], vitc["conf_high"]) in text
    assert "none (indirect only)" in text
    assert joined("heterogeneity and inconsistency cannot be estimated") in text
    assert "not attainable" in text  # r = 0.5, 0.7 exceed what Asif 2016's counts allow
    # Asif 2016's DOI in the provenance table (in the PDF the table may break across pages
    # inside the DOI, and the text then comes out in layout order)
    assert ("jocd.12207" if fmt == "pdf" else "10.1111/jocd.12207") in text


# --------------------------------------------------------------------------------------------
# the command line's parameters
# --------------------------------------------------------------------------------------------


def test_parameters_are_python_literals_or_text(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    params = parse_params(["snapshot=2", "study=TRIAL1", "indication=None", "store=s.duckdb"])
    assert params == {
        "snapshot": 2,
        "study": "TRIAL1",
        "indication": None,
        "store": str(tmp_path / "s.duckdb"),
    }


@pytest.mark.parametrize("bad", ["snapshot", "=3", "two words=1"])
def test_bad_parameters_are_input_errors(bad: str, capsys: Any) -> None:
    assert main(["report", "trial", "-P", bad, "--reports", str(REPORTS)]) == 2
    assert "-P expects key=value" in capsys.readouterr().err


def test_unknown_report_lists_the_available_ones(capsys: Any) -> None:
    assert main(["report", "nope", "--reports", str(REPORTS)]) == 2
    err = capsys.readouterr().err
    assert "no report 'nope'" in err
    assert "comparison, power, registry, trial" in err
    assert resolve_report("trial", REPORTS) == REPORTS / "trial.qmd"


def test_unknown_report_parameter_is_refused(capsys: Any) -> None:
    code = main(["report", "trial", "-P", "colour=1", "--reports", str(REPORTS), "--to", "html"])
    assert code == 2
    assert "unknown parameter 'colour'" in capsys.readouterr().err


def test_visit_schedule_comes_from_study_days_with_any_labels() -> None:
    from outcomes.report import trial_sections as ts

    data = pd.DataFrame(
        {
            "visit": ["month_3", "screen", "month_1", "month_3", "month_1", "screen"],
            "day": [98, 7, 37, 98, 38, 7],
        }
    )
    schedule = ts.schedule_from_days(data)
    assert schedule.baseline == "screen"  # the earliest visit, whatever its label
    assert list(schedule.weeks) == ["screen", "month_1", "month_3"]
    assert schedule.weeks["month_3"] == pytest.approx(13.0)
    assert schedule.nearest(12) == "month_3"
    assert schedule.nearest(0) == "month_1"  # the primary visit is never the baseline
    assert schedule.name("screen") == "Screen (baseline)"
    assert schedule.name("month_3") == "Month 3 (week 13)"
    assert list(ts.with_weeks(data, schedule)["week"])[:2] == [13.0, 0.0]


def test_median_time_not_reached_is_said_in_words() -> None:
    from outcomes.report import sections as sh

    assert sh.median_days(float("nan")) == "not reached"
    assert sh.median_days(84.0) == "84 days"


def test_word_reference_document_is_a4_with_page_numbers() -> None:
    import pypandoc

    from outcomes.report import _assets

    docx = zipfile.ZipFile(io.BytesIO(_assets.reference_docx(pypandoc.get_pandoc_path())))
    document = docx.read("word/document.xml").decode()
    assert '<w:pgSz w:w="11906" w:h="16838" />' in document
    assert 'r:id="rIdPageFooter"' in document
    assert "footer1.xml" in docx.read("word/_rels/document.xml.rels").decode()
    assert " PAGE " in docx.read("word/footer1.xml").decode()
    assert "/word/footer1.xml" in docx.read("[Content_Types].xml").decode()


def test_table_columns_keep_their_longest_word_when_the_table_is_wide() -> None:
    from outcomes.report.tables import _NARROWEST, _PADDING, _column_widths

    header = ["Indication", "Comparison", "Source", "Estimate (95% CI)", "p"]
    rows = [
        ["Pigmentation", "MN+laser vs MN", "Registry (pct improvement) " * 3, "x" * 25, "<0.001"]
    ]
    widths = _column_widths(header, rows)
    assert widths[0] >= len("Pigmentation") + _PADDING
    assert widths[1] >= len("Comparison") + _PADDING
    assert widths[4] >= _NARROWEST + _PADDING
    assert widths[2] > widths[1]  # the long text takes the rest
