"""Kenward-Roger standard errors and degrees of freedom against pbkrtest.

Reference: tests/r/mixed/kenward_roger.R -> kenward_roger.json, i.e.
``summary(fit, ddf = "Kenward-Roger")`` (lmerTest 3.1-3 calling pbkrtest 0.5.2 ``vcovAdj`` and
``Lb_ddf``). Tolerances: standard errors 1e-4, df 1e-3 (relative).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from outcomes.errors import InputError
from outcomes.models.lmm.fit import lmm

_spec = importlib.util.spec_from_file_location("rref", Path(__file__).parent / "r/mixed/rref.py")
rref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rref)

KR = json.loads((rref.R_DIR / "kenward_roger.json").read_text())
SLEEP = rref.load_csv("sleepstudy.csv")
SPLIT = rref.load_csv("splitface.csv")
FACTORS = {"visit": ["week_04", "week_08", "week_12"], "arm": ["PRP", "RF"]}

CASES = {
    # lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
    "sleep_slope": (SLEEP, "Reaction ~ Days", {"groups": "Subject", "re_formula": "~Days"}),
    # lmer(score ~ visit * arm + (1 | patient/side), d)
    "visit": (SPLIT, "score ~ visit * arm", {"groups": "patient", "nested": "side"}),
    # lmer(score ~ week * arm + (week | patient) + (1 | patient:side), d)
    "week": (
        SPLIT,
        "score ~ week * arm",
        {"groups": "patient", "nested": "side", "re_formula": "~week"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_kenward_roger_matches_pbkrtest(name):
    data, formula, kwargs = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = lmm(data, formula, engine="statsmodels", ddf="kenward-roger", **kwargs)
    ref = KR[name]
    r = rref.r_fixed({"fixed": ref}, FACTORS)
    ours = fit.fixed.set_index("term").loc[r.index]
    # summary(fit, ddf = "Kenward-Roger")$coefficients[, c("Std. Error", "df")]
    rref.assert_rel(ours["std_error"], r["std_error"], 1e-4, f"{name} KR std_error")
    rref.assert_rel(ours["df"], r["df"], 1e-3, f"{name} KR df")
    assert "Kenward-Roger df" in str(fit)


def test_emmeans_contrasts_with_kenward_roger_match_emmeans_default():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = lmm(
            SPLIT,
            "score ~ visit * arm",
            groups="patient",
            nested="side",
            engine="statsmodels",
            ddf="kenward-roger",
        )
    # confint(contrast(emmeans(m_visit, ~ arm | visit), "trt.vs.ctrl", adjust = "none")) with
    # emm_options(lmer.df = "kenward-roger"), emmeans' default for lmer fits
    r = pd.DataFrame(KR["visit_contrast"]).set_index(["visit", "contrast"])
    ours = fit.contrasts("arm", by="visit").set_index(["visit", "contrast"]).loc[r.index]
    rref.assert_rel(ours["estimate"], r["estimate"], 1e-6, "estimate")
    rref.assert_rel(ours["std_error"], r["SE"], 1e-4, "KR SE")
    rref.assert_rel(ours["df"], r["df"], 1e-3, "KR df")
    rref.assert_rel(ours["conf_low"], r["lower.CL"], 1e-4, "lower.CL")


def test_kenward_roger_needs_reml():
    with pytest.raises(InputError, match="REML"):
        lmm(
            SLEEP,
            "Reaction ~ Days",
            groups="Subject",
            reml=False,
            ddf="kenward-roger",
            engine="statsmodels",
        )
    with pytest.raises(InputError, match="ddf="):
        lmm(SLEEP, "Reaction ~ Days", groups="Subject", ddf="residual", engine="statsmodels")
