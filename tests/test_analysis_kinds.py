"""Declared analyses of the model kinds ``mmrm`` and ``network_meta``: valid specs run and
write their ARD; bad specs give "file: key 'k': message" errors.

The results are compared with the model functions called directly on the same data, so a
runner that passes options wrongly (or not at all) fails here.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from outcomes.analysis.run import run_analyses, run_analysis
from outcomes.analysis.spec import load_spec
from outcomes.errors import InputError
from outcomes.models.mmrm import mmrm
from outcomes.models.network import component_meta, microneedling_network, network_meta
from outcomes.results import ARD_COLUMNS
from outcomes.simulate.output import write_feeds
from outcomes.simulate.trial import simulate_trial

MMRM_SPEC = """\
name: tiny_mmrm
question: How much lower is gb_quant with MN+PRP than with MN at each visit?
data: {feeds: data/trial}
population: {study_id: TRIAL1, week: {min: 1}}
outcome: {instrument: gb_quant, rater_role: investigator}
model:
  kind: mmrm
  formula: value ~ baseline + modality * week
  visit: week
  design: split_body
  cov: cs
  ddf: kenward-roger
comparisons:
  - {specs: modality, by: week, ref: MN}
seed: 3
figures: false
"""

NETWORK_SPEC = """\
name: tiny_network
question: How do MN+PRP and MN+vitC compare with MN on an excellent response?
data: {published: microneedling_network}
outcome: {network: excellent_response}
model:
  kind: network_meta
  measure: OR
  reference: MN
  r: [0.1, 0.4]        # attainable: Asif 2016 allows at most 0.41
  small_values: undesirable
seed: 1
figures: false
"""

# a connected network with loops (MN - MN+PRP - laser - MN), parallel-group arms, where the
# components MN, PRP and laser are separable through the untreated (inactive) arms:
# netsplit and component_meta have work to do
NETWORK_CSV = """\
study,treatment,mean,sd,n
A,MN,10.0,3.0,30
A,MN+PRP,8.5,3.2,30
B,MN,11.0,2.8,25
B,laser,9.8,3.1,25
C,laser,9.0,3.0,40
C,laser+PRP,7.9,3.3,40
D,MN+PRP,8.1,3.0,35
D,laser,8.6,2.9,35
E,MN,10.4,3.1,28
E,MN+PRP,9.2,2.9,28
F,untreated,12.1,3.0,20
F,MN,10.6,3.2,20
G,untreated,11.8,2.7,22
G,laser,9.9,3.0,22
"""


@pytest.fixture(scope="module")
def analyses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kinds") / "analyses"
    write_feeds(simulate_trial(seed=3, n_subjects=12), root / "data" / "trial")
    (root / "data" / "network.csv").write_text(NETWORK_CSV)
    return root


def _write(folder: Path, text: str, change: dict | None = None, name: str = "spec.yaml") -> Path:
    content = yaml.safe_load(textwrap.dedent(text))
    for key, value in (change or {}).items():
        if isinstance(value, dict) and isinstance(content.get(key), dict):
            content[key] = {**content[key], **value}
        else:
            content[key] = value
    content = {k: v for k, v in content.items() if v is not None}
    for section in ("model", "data", "outcome"):
        if isinstance(content.get(section), dict):
            content[section] = {k: v for k, v in content[section].items() if v != "<drop>"}
    path = folder / name
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
# kind: mmrm


def _direct_dataset(analyses: Path) -> pd.DataFrame:
    """The tiny trial's post-baseline gb_quant rows with each side's baseline, by hand."""
    tables = {
        n: pd.read_csv(analyses / "data" / "trial" / f"{n}.csv")
        for n in ("assessments", "units", "subjects")
    }
    a = tables["assessments"]
    a = a[(a["instrument"] == "gb_quant") & (a["rater_role"] == "investigator")]
    df = a.merge(tables["units"]).merge(tables["subjects"])
    base = df.loc[df["day"] == 0, ["unit_id", "value"]].rename(columns={"value": "baseline"})
    df = df.merge(base, on="unit_id", how="left").assign(week=lambda d: d["day"] // 7)
    return df[df["week"] >= 1]


def test_mmrm_spec_runs_and_matches_a_direct_fit(analyses: Path, tmp_path: Path) -> None:
    res = run_analysis(_write(analyses, MMRM_SPEC, name="tiny_mmrm.yaml"), tmp_path)
    assert list(res.ard.columns) == list(ARD_COLUMNS)
    assert not res.ard.duplicated(["analysis", "group", "term", "stat_name"]).any()
    contrasts = res.table("contrast")
    assert list(contrasts["term"]) == [f"MN+PRP - MN | {w}" for w in (4, 8, 12, 24)]
    assert len(res.table("emmeans")) == 8
    # the same model fitted directly on the same rows
    df = _direct_dataset(analyses)
    fit = mmrm(
        df,
        "value ~ baseline + modality * week",
        subject="unit_id",
        nested_in="subject_id",
        visit="week",
        cov="cs",
    )
    direct = fit.contrasts("modality", by="week", ref="MN")
    np.testing.assert_allclose(contrasts["estimate"], direct["estimate"], rtol=1e-8)
    np.testing.assert_allclose(contrasts["df"], direct["df"], rtol=1e-6)
    assert res.stat("model", "loglik", table="mmrm") == pytest.approx(fit.loglik, rel=1e-10)
    assert res.stat("analysis_set", "n_units") == df["unit_id"].nunique()
    # covariance parameters: cs over visits within a side, and the patient intercept variance
    cov = res.table("covariance").set_index("term")
    assert list(cov.index) == list(
        fit.covariance_parameters["group"] + "|" + fit.covariance_parameters["parameter"]
    )
    assert cov.loc["subject_id|var[intercept]", "estimate"] == pytest.approx(
        fit.random_intercept_variance, rel=1e-8
    )


def test_mmrm_subject_and_options_pass_through(analyses: Path, tmp_path: Path) -> None:
    """Without ``design``, ``subject`` is required and the options reach ``mmrm``."""
    spec = _write(
        analyses,
        MMRM_SPEC,
        {
            "name": "tiny_mmrm_ar1",
            "model": {
                "design": "<drop>",
                "subject": "unit_id",
                "cov": "ar1",
                "ddf": "satterthwaite",
                "reml": False,
                "visit_order": [4, 8, 12, 24],
            },
        },
        name="tiny_mmrm_ar1.yaml",
    )
    res = run_analysis(spec, tmp_path)
    fit = mmrm(
        _direct_dataset(analyses),
        "value ~ baseline + modality * week",
        subject="unit_id",
        visit="week",
        cov="ar1",
        reml=False,
        ddf="satterthwaite",
    )
    assert res.stat("model", "reml", table="mmrm") == 0.0
    assert res.stat("model", "loglik", table="mmrm") == pytest.approx(fit.loglik, rel=1e-10)
    cov = res.table("covariance")
    assert list(cov["term"]) == list("all|" + fit.covariance_parameters["parameter"])
    direct = fit.contrasts("modality", by="week", ref="MN")
    np.testing.assert_allclose(res.table("contrast")["df"], direct["df"], rtol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"covv": "us"}}, "key 'model.covv': unknown key"),
        ({"model": {"cov": "unstructured"}}, "key 'model.cov': must be one of 'us', 'toep'"),
        ({"model": {"fallback": ["toeph", "ar2"]}}, "key 'model.fallback': must be one of"),
        ({"model": {"ddf": "kr"}}, "key 'model.ddf': must be one of 'kenward-roger'"),
        ({"model": {"vcov": "sandwich"}}, "key 'model.vcov': must be one of 'model'"),
        ({"model": {"reml": "yes"}}, "key 'model.reml': must be true or false, got 'yes'"),
        ({"model": {"formula": 3}}, "key 'model.formula': must be text, got 3"),
        ({"model": {"level": 95}}, "key 'model.level': must lie strictly between 0 and 1"),
        ({"model": {"visit": "<drop>"}}, "key 'model.visit': missing required key"),
        ({"model": {"design": "<drop>"}}, "key 'model.subject': missing required key"),
        ({"model": {"subject": "unit_id"}}, "key 'model.design': design: split_body sets"),
        ({"model": {"design": "crossover"}}, "key 'model.design': must be one of 'split_body'"),
        ({"comparisons": [{"specs": "modality", "bye": "week"}]}, "'comparisons[0].bye'"),
        ({"comparisons": [{"by": "week"}]}, "key 'comparisons[0].specs': missing required"),
        (
            {"comparisons": [{"specs": "modality", "by": 4}]},
            "'comparisons[0].by': must be a column name",
        ),
        ({"model": {"visit_order": "4, 8"}}, "key 'model.visit_order': must be a list, got '4, 8'"),
        ({"outcome": {"instrument": "<drop>"}}, "key 'outcome.instrument': missing"),
        ({"data": {"published": "microneedling_network"}}, "key 'data': give exactly one"),
        (
            {"data": {"feeds": "<drop>", "published": "microneedling_network"}},
            "key 'data': model kind 'mmrm' reads trial or registry tables",
        ),
    ],
)
def test_bad_mmrm_spec_names_file_and_key(
    analyses: Path, tmp_path: Path, change: dict, message: str
) -> None:
    (tmp_path / "data" / "trial").mkdir(parents=True)
    path = _write(tmp_path, MMRM_SPEC, change)
    with pytest.raises(InputError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: key ")
    assert message in str(err.value)


def test_mmrm_unknown_column_is_named_at_run_time(analyses: Path, tmp_path: Path) -> None:
    spec = _write(analyses, MMRM_SPEC, {"model": {"visit": "visit_week"}}, name="col.yaml")
    with pytest.raises(InputError, match=r"col\.yaml: key 'model\.visit': no column 'visit_week'"):
        run_analyses([spec], tmp_path)


# --------------------------------------------------------------------------------------------
# kind: network_meta


def test_network_spec_on_the_shipped_data_fits_once_per_r(analyses: Path, tmp_path: Path) -> None:
    res = run_analysis(_write(analyses, NETWORK_SPEC, name="tiny_network.yaml"), tmp_path)
    assert list(res.ard.columns) == list(ARD_COLUMNS)
    assert not res.ard.duplicated(["analysis", "group", "term", "stat_name"]).any()
    assert res.manifest["data"]["source"] == "published"
    assert res.manifest["data"]["files"][0]["path"].endswith("microneedling_network.csv")
    # no closed loop: the fit's warning is recorded in the manifest and on the ARD rows
    message = "No degrees of freedom for heterogeneity"
    assert any(message in w for w in res.manifest["warnings"])
    assert res.ard["warning"].str.contains(message).any()
    arms = microneedling_network("excellent_response")
    for r in (0.1, 0.4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            direct = network_meta(arms, "OR", reference="MN", r=r, small_values="undesirable")
        want = direct.relative_effects("random").set_index("term")
        got = res.table("network_meta")
        got = got[got["group"] == f"model=random;r={r}"].set_index("term")
        assert list(got.index) == ["MN+PRP vs MN", "MN+vitC vs MN"]
        np.testing.assert_allclose(got["estimate"], want["estimate"], rtol=1e-12)
        np.testing.assert_allclose(got["std_error"], want["std_error"], rtol=1e-12)
    # a higher r (paired split-face sides) gives a smaller standard error
    se = res.table("network_meta").set_index("group").loc[:, ["term", "std_error"]]
    low = se.loc["model=common;r=0.1"].set_index("term")["std_error"]
    high = se.loc["model=common;r=0.4"].set_index("term")["std_error"]
    assert (high < low).all()


def test_network_spec_on_a_csv_with_components_and_netsplit(analyses: Path, tmp_path: Path) -> None:
    spec = _write(
        analyses,
        NETWORK_SPEC,
        {
            "name": "csv_network",
            "data": {"published": "data/network.csv"},
            "outcome": None,
            "model": {
                "measure": "MD",
                "r": "<drop>",
                "small_values": "desirable",
                "method_tau": "REML",
                "components": True,
                "inactive": "untreated",
                "netsplit": "back-calculation",
            },
        },
        name="csv_network.yaml",
    )
    res = run_analysis(spec, tmp_path)
    data = pd.read_csv(analyses / "data" / "network.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = network_meta(data, "MD", reference="MN", method_tau="REML")
        comp = component_meta(direct, inactive="untreated")
    effects = res.table("network_meta")
    got = effects[effects["group"] == "model=random"].set_index("term")["estimate"]
    want = direct.relative_effects("random").set_index("term")["estimate"]
    np.testing.assert_allclose(got.loc[want.index], want, rtol=1e-12)
    table = res.table("component_meta")
    components = table[table["group"] == "model=random"].set_index("term")["estimate"]
    np.testing.assert_allclose(
        components.loc[["MN", "PRP", "laser"]],
        comp.tidy("random").set_index("term").loc[["MN", "PRP", "laser"], "estimate"],
        rtol=1e-12,
    )
    split = res.ard[res.ard["group"].str.contains("table=netsplit")]
    assert len(split) and split["stat_value"].notna().any()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"measure": "HR"}}, "key 'model.measure': must be one of 'MD', 'OR'"),
        ({"model": {"measure": "<drop>"}}, "key 'model.measure': missing required key"),
        ({"model": {"r": [0.3, 1.5]}}, "key 'model.r': must lie strictly between -1 and 1"),
        (
            {"model": {"r": "0.5"}},
            "key 'model.r': must be a number or a list of numbers, got '0.5'",
        ),
        (
            {"model": {"r": [0.3, None]}},
            "key 'model.r': must be a number or a list of numbers, got None",
        ),
        ({"model": {"method_tau": "PM"}}, "key 'model.method_tau': must be one of 'DL', 'REML'"),
        ({"model": {"netsplit": "yes"}}, "key 'model.netsplit': must be one of"),
        ({"model": {"components": "yes"}}, "key 'model.components': must be true or false"),
        ({"model": {"referense": "MN"}}, "key 'model.referense': unknown key"),
        ({"outcome": {"instrument": "gb_qual"}}, "key 'outcome.instrument': unknown key"),
        ({"data": {"published": "no_such_set"}}, "key 'data.published': must be a shipped"),
        (
            {"data": {"published": "<drop>", "feeds": "data/trial"}},
            "key 'data': model kind 'network_meta' reads published study-level data",
        ),
    ],
)
def test_bad_network_spec_names_file_and_key(
    analyses: Path, tmp_path: Path, change: dict, message: str
) -> None:
    (tmp_path / "data" / "trial").mkdir(parents=True)
    path = _write(tmp_path, NETWORK_SPEC, change)
    with pytest.raises(InputError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: key ")
    assert message in str(err.value)


def test_network_without_outcome_on_mixed_outcomes_is_refused(
    analyses: Path, tmp_path: Path
) -> None:
    spec = _write(analyses, NETWORK_SPEC, {"outcome": None}, name="mixed.yaml")
    with pytest.raises(InputError, match=r"mixed\.yaml: key 'outcome\.network': missing: the data"):
        run_analyses([spec], tmp_path)


def test_component_model_that_cannot_separate_mn_is_an_input_error(
    analyses: Path, tmp_path: Path
) -> None:
    spec = _write(analyses, NETWORK_SPEC, {"model": {"components": True}}, name="comp.yaml")
    with pytest.raises(InputError, match=r"comp\.yaml: analysis tiny_network: .*component"):
        run_analyses([spec], tmp_path)


# --------------------------------------------------------------------------------------------
# kind: clmm and kind: glmm

CLMM_SPEC = """\
name: tiny_clmm
question: Is the Goodman & Baron grade lower with MN+PRP than with MN at week 12?
data: {feeds: data/trial}
population: {study_id: TRIAL1}
outcome: {instrument: gb_qual, rater_role: investigator}
model:
  kind: clmm
  formula: value ~ week * modality
  design: split_body
  link: logit
comparisons:
  - {specs: modality, at: {week: 12}, ref: MN}
seed: 3
figures: false
"""

GLMM_SPEC = """\
name: tiny_glmm
question: Do more MN+PRP sides improve by 6 points or more on gb_quant?
data: {feeds: data/trial}
population: {study_id: TRIAL1, week: {min: 1}}
outcome:
  instrument: gb_quant
  rater_role: investigator
  responder: {column: change, max: -6}
model:
  kind: glmm
  formula: responder ~ week + modality
  groups: subject_id
  family: binomial
  nagq: 5
comparisons:
  - {specs: modality, at: {week: 8}, ref: MN}
seed: 3
figures: false
"""


def test_clmm_spec_runs_and_matches_a_direct_fit(analyses: Path, tmp_path: Path) -> None:
    from outcomes.models.glmm import clmm

    res = run_analysis(_write(analyses, CLMM_SPEC, name="tiny_clmm.yaml"), tmp_path)
    assert not res.ard.duplicated(["analysis", "group", "term", "stat_name"]).any()
    tables = {
        n: pd.read_csv(analyses / "data" / "trial" / f"{n}.csv")
        for n in ("assessments", "units", "subjects")
    }
    a = tables["assessments"]
    a = a[(a["instrument"] == "gb_qual") & (a["rater_role"] == "investigator")]
    df = a.merge(tables["units"]).merge(tables["subjects"]).assign(week=lambda d: d["day"] / 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = clmm(df, "value ~ week * modality", design="split_body")
    want = fit.tidy().set_index("term")
    got = res.table("fixed").set_index("term")
    np.testing.assert_allclose(got.loc[want.index, "estimate"], want["estimate"], rtol=1e-6)
    assert res.stat("model", "loglik", table="clmm") == pytest.approx(fit.loglik, rel=1e-9)
    contrast = fit.contrasts("modality", at={"week": 12}, ref="MN")["estimate"].iloc[0]
    assert res.stat("MN+PRP - MN", "estimate", table="contrast") == pytest.approx(
        contrast, rel=1e-6
    )
    probs = res.table("probabilities")
    assert len(probs) == 2 * 2 * df["value"].nunique()  # arms x (conditional, marginal) x grades
    sums = probs.assign(kind=probs["term"].str.extract(r"\((\w+)\)$")[0]).groupby("kind")
    np.testing.assert_allclose(sums["estimate"].sum(), [2.0, 2.0], rtol=1e-8)  # per arm: 1
    ratios = res.table("odds_ratio")["term"]
    assert ratios.str.contains("conditional").any() and ratios.str.contains("marginal").any()


def test_glmm_spec_with_a_responder_runs_and_matches_a_direct_fit(
    analyses: Path, tmp_path: Path
) -> None:
    from outcomes.models.glmm import glmm

    res = run_analysis(_write(analyses, GLMM_SPEC, name="tiny_glmm.yaml"), tmp_path)
    df = _direct_dataset(analyses).assign(
        responder=lambda d: (d["value"] - d["baseline"] <= -6).astype(float)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmm(df, "responder ~ week + modality", groups="subject_id", nagq=5)
    assert res.stat("model", "loglik", table="glmm") == pytest.approx(fit.loglik, rel=1e-9)
    assert res.stat("model", "nagq", table="glmm") == 5
    means = fit.emmeans("modality", at={"week": 8}, scale="response").set_index("term")
    got = res.table("emmeans").set_index("term")
    np.testing.assert_allclose(got.loc[means.index, "estimate"], means["estimate"], rtol=1e-6)
    assert ((got["estimate"] > 0) & (got["estimate"] < 1)).all()  # probabilities
    assert len(res.table("odds_ratio")) == 2  # conditional and marginal


@pytest.mark.parametrize(
    ("text", "change", "message"),
    [
        (
            CLMM_SPEC,
            {"model": {"link": "cloglog"}},
            "'model.link': must be one of 'logit', 'probit'",
        ),
        (CLMM_SPEC, {"model": {"nagq": 0}}, "key 'model.nagq': must be >= 1"),
        (CLMM_SPEC, {"model": {"nagq": "5"}}, "key 'model.nagq': must be a whole number, got '5'"),
        (
            CLMM_SPEC,
            {"model": {"design": "<drop>"}},
            "key 'model.groups': missing required key (or give design)",
        ),
        (CLMM_SPEC, {"model": {"design": "splitface"}}, "key 'model.design': must be one of"),
        (CLMM_SPEC, {"model": {"family": "binomial"}}, "key 'model.family': unknown key"),
        (
            CLMM_SPEC,
            {"outcome": {"responder": {"column": "value", "min": 3}}},
            "'outcome.responder'",
        ),
        (GLMM_SPEC, {"model": {"family": "gaussian"}}, "'model.family': must be one of 'binomial'"),
        (GLMM_SPEC, {"model": {"link": "identity"}}, "key 'model.link': must be one of 'logit'"),
        (GLMM_SPEC, {"model": {"nested": 3}}, "key 'model.nested': must be a column name"),
        (GLMM_SPEC, {"model": {"formula": "<drop>"}}, "key 'model.formula': missing required"),
        (
            GLMM_SPEC,
            {"outcome": {"responder": {"column": "change"}}},
            "key 'outcome.responder.min': give min, max or both",
        ),
        (
            GLMM_SPEC,
            {"outcome": {"responder": {"column": "change", "below": 3}}},
            "key 'outcome.responder.below': unknown key",
        ),
        (GLMM_SPEC, {"comparisons": [{"specs": "modality", "ref": [1]}]}, "'comparisons[0].ref'"),
    ],
)
def test_bad_clmm_glmm_spec_names_file_and_key(
    analyses: Path, tmp_path: Path, text: str, change: dict, message: str
) -> None:
    (tmp_path / "data" / "trial").mkdir(parents=True)
    path = _write(tmp_path, text, change)
    with pytest.raises(InputError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: key ")
    assert message in str(err.value)
