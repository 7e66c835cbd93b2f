"""Risk ratios and differences of the trial report's adverse-event table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from outcomes.report.trial_sections import (
    paired_risk_ratio_difference,
    risk_ratio_difference,
)


def test_independent_risk_ratio_is_katz_log_interval() -> None:
    # Asif 2016's counts as if independent: 20/50 vs 5/50
    r = risk_ratio_difference(20, 50, 5, 50)
    assert r["rr"] == pytest.approx(4.0)
    se = math.sqrt(1 / 20 - 1 / 50 + 1 / 5 - 1 / 50)
    assert r["rr_low"] == pytest.approx(4.0 * math.exp(-1.959963985 * se))
    assert r["rd"] == pytest.approx(0.30)
    assert r["rd_high"] - r["rd"] == pytest.approx(
        1.959963985 * math.sqrt(0.4 * 0.6 / 50 + 0.1 * 0.9 / 50)
    )
    assert math.isnan(risk_ratio_difference(3, 50, 0, 50)["rr"])  # not estimable


def test_paired_risk_difference_is_the_difference_of_the_margins() -> None:
    # 50 participants: 4 with the event on both sides, 10 on the combination side only, 2 on
    # the control side only
    r = paired_risk_ratio_difference(4, 10, 2, 50)
    assert r["rd"] == pytest.approx(14 / 50 - 6 / 50)
    assert r["rr"] == pytest.approx(14 / 6)
    # concordant pairs alone carry no evidence of a difference
    same = paired_risk_ratio_difference(7, 0, 0, 50)
    assert same["rr"] == 1.0 and same["rr_low"] == same["rr_high"] == 1.0
    assert same["rd_low"] == same["rd_high"] == 0.0
    # pairing narrows the interval when the sides agree, compared with independent groups
    indep = risk_ratio_difference(14, 50, 6, 50)
    assert r["rd_high"] - r["rd_low"] < indep["rd_high"] - indep["rd_low"]


def test_trial_figures_have_no_text_under_7_pt_at_print_size() -> None:
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    from matplotlib.text import Text

    from outcomes.report.trial_figures import consort_figure, diagnostics_figure

    counts = pd.DataFrame(
        [
            ("enrolled", "all", 50, 100),
            *[(s, a, 50, 50) for s in ("allocated", "treated", "baseline") for a in ("MN", "X")],
            *[(s, a, 40, 40) for s in ("primary", "analysed") for a in ("MN", "X")],
            *[("lost: lost_to_follow_up", a, 10, 10) for a in ("MN", "X")],
        ],
        columns=["stage", "arm", "participants", "units"],
    )
    rng = np.random.default_rng(1)
    modes = pd.DataFrame(
        {"group": "s", "level": range(30), "effect": "Intercept", "estimate": rng.normal(size=30)}
    )
    fitted = pd.DataFrame({"fitted": rng.normal(size=90), "residual": rng.normal(size=90)})
    # A4 with 2.5 cm margins: a 6.5-inch figure prints at 16 cm / 16.51 cm of its size
    scale = 16 / (6.5 * 2.54)
    for fig in (
        consort_figure(counts, ["MN", "X"], True, "Week 24"),
        diagnostics_figure(fitted, modes, {"s|Intercept": "Participant: intercept"}),
    ):
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()]
        assert sizes and min(sizes) * scale >= 7
        assert fig.get_size_inches()[0] == 6.5
        plt.close(fig)


def test_change_from_baseline_equals_the_model_of_change() -> None:
    from outcomes.models.mmrm.fit import mmrm
    from outcomes.report import sections as sh
    from outcomes.report import trial_models as tm
    from outcomes.report import trial_sections as ts
    from outcomes.simulate.trial import simulate_trial

    tables = simulate_trial(seed=4, design="parallel", n_subjects=30).tables
    t = dict(tables)
    data = sh.primary_dataset(t, "gb_quant")
    data = data.loc[data["modality"] == "MN+PRP"]
    post, _ = tm.mmrm_dataset(ts.with_weeks(data, ts.schedule_from_days(data)))
    base = float(post.drop_duplicates("unit_id")["baseline"].mean())
    options = {"subject": "unit_id", "visit": "week", "cov": "us", "ddf": "kenward-roger"}
    fit = mmrm(post, "value ~ baseline + week", **options)
    change = tm.change_from_baseline(fit.emmeans("week", at={"baseline": base}), base)
    direct = mmrm(
        post.assign(chg=post["value"] - post["baseline"]), "chg ~ baseline + week", **options
    )
    expected = direct.emmeans("week", at={"baseline": base})
    np.testing.assert_allclose(change["estimate"], expected["estimate"], atol=1e-8)
    np.testing.assert_allclose(change["conf_low"], expected["conf_low"], atol=1e-6)
    np.testing.assert_allclose(change["std_error"], expected["std_error"], rtol=1e-6)
