"""outcomes.compare with the mixed models for grades and responders (CLMM, GLMM).

The trial's qualitative-grade row must equal the CLMM's conditional cumulative odds ratio, and
the GLMM responder row the GLMM's odds ratio, both refitted here from the raw tables; the
default rows must not move; each row says which model made it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from outcomes.comparisons.comparison import compare
from outcomes.errors import InputError
from outcomes.models.glmm.clmm import clmm
from outcomes.models.glmm.glmm import glmm
from outcomes.simulate.trial import simulate_trial


def _quiet(data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare(data, **kwargs)


@pytest.fixture(scope="module")
def trial():
    tables = simulate_trial(seed=1).tables
    return tables, _quiet(tables), _quiet(tables, grade_model="clmm", responder_model="glmm")


def _row(table: pd.DataFrame, outcome: str) -> pd.Series:
    rows = table.loc[(table["source"] == "trial") & (table["outcome"] == outcome)]
    assert len(rows) == 1
    return rows.iloc[0]


def _investigator(tables: dict, instrument: str) -> pd.DataFrame:
    a = tables["assessments"]
    a = a.loc[(a["instrument"] == instrument) & (a["rater_role"] == "investigator")]
    return a.merge(tables["units"][["unit_id", "subject_id", "modality"]], on="unit_id")


def test_grade_row_is_the_clmm_conditional_odds_ratio_at_week_24(trial):
    tables, _, mixed = trial
    g = _investigator(tables, "gb_qual")
    g = pd.DataFrame(
        {
            "grade": g["value"].astype(int).to_numpy(),
            "week": g["day"].astype(float).to_numpy() / 7,
            "arm": (g["modality"] == "MN+PRP").astype(float).to_numpy(),
            "subject_id": g["subject_id"].astype(str).to_numpy(),
            "unit_id": g["unit_id"].astype(str).to_numpy(),
        }
    )
    fit = clmm(g, "grade ~ week * arm", groups="subject_id", nested="unit_id")
    names = list(fit.coef.index)
    lvec = np.zeros(len(names))
    lvec[names.index("arm")] = 1.0
    lvec[names.index("week:arm")] = 24.0
    log_or = float(lvec @ fit.coef.to_numpy())
    se = float(np.sqrt(lvec @ fit.vcov.loc[names, names].to_numpy() @ lvec))
    row = _row(mixed.table, "gb_qual")
    assert row["measure"] == "odds_ratio"
    assert row["estimate"] == pytest.approx(np.exp(log_or), rel=1e-6)
    assert row["std_error"] == pytest.approx(se, rel=1e-6)
    assert row["conf_low"] == pytest.approx(np.exp(log_or - 1.959963984540054 * se), rel=1e-6)
    assert row["n"] == g["unit_id"].nunique() and row["n_clusters"] == g["subject_id"].nunique()
    assert "CLMM" in row["method"] and "conditional (subject-specific)" in row["method"]
    assert "higher (worse) gb_qual grade at day 168" in row["definition"]
    assert "Weakly identified" not in row["warning"]


def test_weakly_identified_grade_row_is_marked():
    """Parallel trial, seed 3: the participant SD is 10.7 (logit), the grade OR doubtful."""
    res = _quiet(simulate_trial(seed=3, design="parallel").tables, grade_model="clmm")
    row = _row(res.table, "gb_qual")
    assert "Weakly identified" in row["warning"]
    assert "random-intercept SD (subject_id 10.7) is above 5" in row["warning"]


def test_glmm_responder_row_is_the_glmm_odds_ratio(trial):
    tables, default, mixed = trial
    q = _investigator(tables, "gb_quant")
    base = q.loc[q["day"] == 0].set_index("unit_id")["value"]
    post = q.loc[q["day"].between(140, 210)].copy()
    post["distance"] = (post["day"] - 168).abs()
    post = post.sort_values(["unit_id", "distance", "day"]).groupby("unit_id").first()
    post = post.join(base.rename("base"), how="inner").reset_index()
    visit = pd.DataFrame(
        {
            "responder": (100 * (post["base"] - post["value"]) / post["base"] >= 50).astype(float),
            "arm": (post["modality"] == "MN+PRP").astype(float),
            "subject_id": post["subject_id"].astype(str),
        }
    )
    fit = glmm(visit, "responder ~ arm", groups="subject_id", family="binomial")
    coef = fit.fixed.set_index("term").loc["arm"]
    row = _row(mixed.table, "responder")
    assert row["n"] == len(visit)
    assert row["estimate"] == pytest.approx(np.exp(coef["estimate"]), rel=1e-6)
    assert row["std_error"] == pytest.approx(coef["std_error"], rel=1e-6)
    assert "GLMM" in row["method"] and "conditional (subject-specific)" in row["method"]
    gee_row = _row(default.table, "responder")
    assert "GEE" in gee_row["method"] and "marginal (population-averaged)" in gee_row["method"]
    # conditional odds ratios are further from 1 than marginal ones when subjects differ
    assert abs(np.log(row["estimate"])) > abs(np.log(gee_row["estimate"]))


def test_default_rows_unchanged_and_no_grade_row_by_default(trial):
    _, default, mixed = trial
    assert "gb_qual" not in set(default.table["outcome"])
    keys = ["source", "outcome", "measure", "comparison", "adjustment"]
    cols = ["estimate", "std_error", "conf_low", "conf_high", "p_value"]
    a = default.table.loc[default.table["outcome"] != "responder"].set_index(keys)[cols]
    b = mixed.table.loc[~mixed.table["outcome"].isin(["responder", "gb_qual"])].set_index(keys)
    pd.testing.assert_frame_equal(a, b[cols])


def test_trial_without_gb_qual_gets_no_grade_row(trial):
    tables = dict(trial[0])
    a = tables["assessments"]
    tables["assessments"] = a.loc[a["instrument"] != "gb_qual"].reset_index(drop=True)
    res = _quiet(tables, grade_model="clmm")
    assert "gb_qual" not in set(res.table["outcome"])
    assert "gb_quant" in set(res.table["outcome"])


@pytest.mark.parametrize(("option", "value"), [("grade_model", "gee"), ("responder_model", "clmm")])
def test_unknown_model_options_are_refused(trial, option, value):
    with pytest.raises(InputError, match=option):
        compare(trial[0], **{option: value})
