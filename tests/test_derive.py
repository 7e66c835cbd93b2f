"""Derived time-to-event datasets: hand-made tables with known answers, and simulator truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from outcomes.derive.endpoints import ENDPOINTS, Endpoint
from outcomes.derive.tte import CENSORING_CODES, TTE_COLUMNS, derive_tte
from outcomes.errors import InputError, OutcomesWarning


def _tables(rows, units=None, sessions=None, subjects=None):
    """Small schema tables: rows are (unit, instrument, day, value[, role, rater])."""
    units = units or [("u1", "p1", "MN"), ("u2", "p1", "MN+PRP"), ("u3", "p2", "MN")]
    sessions = sessions or [(u, 0) for u, _, _ in units]
    subjects = subjects or [("p1", 168, "completed"), ("p2", 60, "lost_to_follow_up")]
    a = []
    for r in rows:
        unit, inst, day, value = r[:4]
        role = r[4] if len(r) > 4 else "investigator"
        rater = r[5] if len(r) > 5 else "INV1"
        a.append(
            {
                "study_id": "S",
                "unit_id": unit,
                "instrument": inst,
                "visit": f"d{day}",
                "day": day,
                "value": value,
                "rater_role": role,
                "rater_id": rater,
            }
        )
    return {
        "units": pd.DataFrame(
            {
                "study_id": "S",
                "unit_id": [u[0] for u in units],
                "subject_id": [u[1] for u in units],
                "modality": [u[2] for u in units],
                "side": "whole",
            }
        ),
        "sessions": pd.DataFrame(
            {"study_id": "S", "unit_id": [s[0] for s in sessions], "day": [s[1] for s in sessions]}
        ),
        "assessments": pd.DataFrame(a),
        "subjects": pd.DataFrame(
            {
                "study_id": "S",
                "subject_id": [s[0] for s in subjects],
                "end_day": [s[1] for s in subjects],
                "end_reason": [s[2] for s in subjects],
                "age": 30,
            }
        ),
    }


GRADES = [
    ("u1", "gb_qual", 0, 3),
    ("u1", "gb_qual", 28, 3),
    ("u1", "gb_qual", 56, 2),
    ("u1", "gb_qual", 84, 3),
    ("u2", "gb_qual", 0, 3),
    ("u2", "gb_qual", 28, 3),
    ("u2", "gb_qual", 168, 3),
    ("u3", "gb_qual", 0, 4),
    ("u3", "gb_qual", 35, 3),
]


def test_first_improvement_events_intervals_and_censoring():
    raw = derive_tte(_tables(GRADES), "first_improvement")
    assert list(raw.columns[: len(TTE_COLUMNS)]) == list(TTE_COLUMNS)
    tte = raw.set_index("unit_id")
    # u1: 3 -> 2 at day 56, last visit without the event day 28
    assert tte.loc["u1", ["time", "event", "cnsr", "lower", "upper"]].tolist() == [56, 1, 0, 28, 56]
    assert tte.loc["u1", "event_type"] == "first_improvement"
    assert tte.loc["u1", "cnsdtdesc"] == "" and tte.loc["u1", "evntdesc"].startswith("first visit")
    # u2: never improves; censored at the last visit (168), follow-up completed
    assert tte.loc["u2", ["time", "event", "cnsr", "lower"]].tolist() == [168, 0, 1, 168]
    assert np.isinf(tte.loc["u2", "upper"])
    assert tte.loc["u2", "cnsdtdesc"] == CENSORING_CODES[1] and tte.loc["u2", "evntdesc"] == ""
    # u3: improves at its first visit after the origin: interval (0, 35]
    assert tte.loc["u3", ["time", "event", "lower", "upper"]].tolist() == [35, 1, 0, 35]
    assert (tte["event"] == (tte["cnsr"] == 0)).all()
    assert tte.loc["u1", "base"] == 3 and tte.loc["u1", "age"] == 30


def test_time_counts_from_the_first_session():
    sessions = [("u1", 7), ("u1", 35), ("u2", 0), ("u3", 0)]
    tte = derive_tte(_tables(GRADES, sessions=sessions), "first_improvement").set_index("unit_id")
    # baseline (day 0) is before the first session (day 7); event at day 56 -> time 49
    assert tte.loc["u1", ["start_day", "adt", "time", "lower", "upper"]].tolist() == [
        7,
        56,
        49,
        21,
        49,
    ]


def test_censoring_reason_follows_end_reason():
    rows = [("u3", "gb_qual", 0, 4), ("u3", "gb_qual", 35, 4)]
    tables = _tables(rows, units=[("u3", "p2", "MN")], sessions=[("u3", 0)])
    tte = derive_tte(tables, "first_improvement")
    assert tte["cnsr"].item() == 3
    assert tte["cnsdtdesc"].item() == "lost to follow-up"


def test_units_without_baseline_or_follow_up():
    rows = [("u1", "gb_qual", 28, 3), ("u2", "gb_qual", 0, 3)]
    tables = _tables(rows, units=[("u1", "p1", "MN"), ("u2", "p1", "MN")])
    tte = derive_tte(tables, "first_improvement").set_index("unit_id")
    assert tte.loc["u1", ["cnsr", "time", "lower"]].tolist() == [8, 0, 0]  # no baseline
    assert tte.loc["u2", "cnsr"] == 9  # nothing after the origin
    assert tte.loc["u2", "time"] == 0


def test_direction_higher_better():
    # satisfaction_10 is higher = better: an improvement is an increase
    rows = [
        ("u1", "satisfaction_10", 0, 4),
        ("u1", "satisfaction_10", 28, 3),
        ("u1", "satisfaction_10", 56, 6),
    ]
    tables = _tables(rows, units=[("u1", "p1", "MN")], sessions=[("u1", 0)])
    ep = Endpoint("sat_up", "satisfaction_10", "improvement", 2, "investigator")
    tte = derive_tte(tables, ep)
    assert tte[["time", "event", "lower"]].iloc[0].tolist() == [56, 1, 28]


def test_percent_improvement_and_zero_baseline():
    rows = [
        ("u1", "gb_quant", 0, 30),
        ("u1", "gb_quant", 28, 16),
        ("u1", "gb_quant", 56, 15),
        ("u2", "gb_quant", 0, 0),
        ("u2", "gb_quant", 28, 0),
    ]
    tte = derive_tte(
        _tables(rows, units=[("u1", "p1", "MN"), ("u2", "p1", "MN")]), "full_result"
    ).set_index("unit_id")
    # 16 is a 46.7% reduction of 30, 15 exactly 50%
    assert tte.loc["u1", ["time", "event", "lower"]].tolist() == [56, 1, 28]
    assert tte.loc["u2", ["cnsr", "time"]].tolist() == [10, 0]  # percent change undefined


def test_level_rule_gais():
    rows = [("u1", "gais", 28, 3), ("u1", "gais", 56, 2), ("u2", "gais", 28, 4)]
    tables = _tables(rows, units=[("u1", "p1", "MN"), ("u2", "p1", "MN")])
    tte = derive_tte(tables, "gais_much_improved").set_index("unit_id")
    assert tte.loc["u1", ["time", "event", "lower"]].tolist() == [56, 1, 28]
    assert tte.loc["u2", "event"] == 0 and tte.loc["u2", "cnsr"] == 1


def test_raters_are_averaged_and_filtered_by_role():
    rows = [
        ("u1", "gb_qual", 0, 3, "blinded_photo_rater", "R1"),
        ("u1", "gb_qual", 0, 3, "blinded_photo_rater", "R2"),
        ("u1", "gb_qual", 28, 2, "blinded_photo_rater", "R1"),
        ("u1", "gb_qual", 28, 3, "blinded_photo_rater", "R2"),
        ("u1", "gb_qual", 56, 2, "blinded_photo_rater", "R1"),
        ("u1", "gb_qual", 56, 2, "blinded_photo_rater", "R2"),
        ("u1", "gb_qual", 0, 3),
        ("u1", "gb_qual", 28, 2),
    ]
    tables = _tables(rows, units=[("u1", "p1", "MN")], sessions=[("u1", 0)])
    photo = Endpoint("photo", "gb_qual", "improvement", 1, "blinded_photo_rater")
    # day 28 mean 2.5 is only half a grade better; day 56 mean 2 is one grade
    assert derive_tte(tables, photo)["time"].item() == 56
    assert derive_tte(tables, "first_improvement")["time"].item() == 28  # investigator


def _registry_tables():
    units = [("r1", "p1", "MN"), ("r2", "p2", "MN"), ("r3", "p3", "MN"), ("r4", "p4", "MN")]
    sessions = [(u, d) for u, _, _ in units for d in (0, 28, 56)] + [("r2", 250), ("r2", 278)]
    rows = []
    for unit, values in {
        "r1": [(0, 40), (90, 18), (168, 19), (240, 25)],  # responds at 90, loses at 240
        "r2": [(0, 40), (90, 18), (168, 19)],  # responds, then retreated on day 250
        "r3": [(0, 40), (90, 30)],  # never responds; lost to follow-up
        "r4": [(0, 40), (168, 10), (300, 12)],  # responds at 168, still responding
    }.items():
        rows += [(unit, "gb_quant", d, v) for d, v in values]
    subjects = [
        ("p1", 365, "completed"),
        ("p2", 278, "retreated"),
        ("p3", 120, "lost_to_follow_up"),
        ("p4", 300, "completed"),
    ]
    return _tables(rows, units=units, sessions=sessions, subjects=subjects)


def test_durability_loss_retreatment_and_censoring():
    tte = derive_tte(_registry_tables(), "durability").set_index("unit_id")
    assert sorted(tte.index) == ["r1", "r2", "r4"]  # only responders are at risk
    r1, r2, r4 = tte.loc["r1"], tte.loc["r2"], tte.loc["r4"]
    assert [r1["start_day"], r1["time"], r1["lower"], r1["upper"]] == [90, 150, 78, 150]
    assert r1["event_type"] == "loss_of_response"
    # retreatment day is the first session of the new course (250), not end_day (278)
    assert [r2["start_day"], r2["time"], r2["lower"], r2["upper"]] == [90, 160, 78, 160]
    assert r2["event_type"] == "retreated" and r2["evntdesc"] == "retreatment"
    assert [r4["time"], r4["event"], r4["cnsr"]] == [132, 0, 1]


def test_retreatment_with_competing_loss_to_follow_up():
    tte = derive_tte(_registry_tables(), "retreatment").set_index("unit_id")
    assert tte["event_type"].to_dict() == {
        "r1": "censored",
        "r2": "retreated",
        "r3": "lost_to_follow_up",
        "r4": "censored",
    }
    assert tte.loc["r2", ["time", "lower", "upper", "event"]].tolist() == [250, 250, 250, 1]
    assert tte.loc["r3", ["time", "event", "cnsr"]].tolist() == [120, 0, 3]
    assert tte.loc["r1", "time"] == 365


def test_onset_is_censored_at_retreatment():
    tables = _registry_tables()
    # r2: a 50% improvement seen only after its retreatment does not count
    extra = pd.DataFrame(
        [
            {
                "study_id": "S",
                "unit_id": "r3",
                "instrument": "gb_quant",
                "visit": "d300",
                "day": 300,
                "value": 5.0,
                "rater_role": "investigator",
                "rater_id": "INV1",
            }
        ]
    )
    tables["assessments"] = pd.concat([tables["assessments"], extra], ignore_index=True)
    tables["sessions"] = pd.concat(
        [tables["sessions"], pd.DataFrame({"study_id": "S", "unit_id": ["r3"], "day": [200]})],
        ignore_index=True,
    )
    tte = derive_tte(tables, "full_result").set_index("unit_id")
    assert tte.loc["r3", ["event", "cnsr", "time"]].tolist() == [0, 6, 90]


def test_endpoint_spec_from_dict_and_description():
    ep = Endpoint.from_dict(
        {"name": "x", "instrument": "gb_quant", "rule": "percent_improvement", "threshold": 25}
    )
    assert ep.description == "time to >= 25% improvement on gb_quant"
    assert "retreatment" in ENDPOINTS


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"name": "x", "instrument": "nope", "rule": "improvement", "threshold": 1},
            "unknown instrument",
        ),
        ({"name": "x", "instrument": "gb_qual", "rule": "better", "threshold": 1}, "rule must"),
        ({"name": "x", "instrument": "gb_qual", "rule": "improvement"}, "needs instrument"),
        ({"name": "x", "kind": "sometime"}, "kind must"),
        ({"name": "x", "colour": "red"}, "unknown keys"),
    ],
)
def test_bad_endpoint_specs(spec, message):
    with pytest.raises(InputError, match=message):
        Endpoint.from_dict(spec)


def test_input_errors():
    tables = _tables(GRADES)
    with pytest.raises(InputError, match="unknown endpoint"):
        derive_tte(tables, "nope")
    with pytest.raises(InputError, match="lacks required column"):
        derive_tte(
            {**tables, "units": tables["units"].drop(columns="modality")}, "first_improvement"
        )
    with pytest.raises(InputError, match="needs the 'sessions' table"):
        derive_tte({k: v for k, v in tables.items() if k != "sessions"}, "first_improvement")
    dup = pd.concat([tables["assessments"], tables["assessments"].iloc[[0]]])
    with pytest.raises(InputError, match="duplicate key"):
        derive_tte({**tables, "assessments": dup}, "first_improvement")
    with pytest.raises(InputError, match="no 'gb_quant' assessments"):
        derive_tte(tables, "full_result")
    with pytest.raises(InputError, match="rater role 'patient'"):
        derive_tte(tables, Endpoint("p", "gb_qual", "improvement", 1, "patient"))


def test_unit_without_sessions_is_left_out_with_a_warning():
    tables = _tables(GRADES, sessions=[("u1", 0), ("u2", 0)])
    with pytest.warns(OutcomesWarning, match="no session"):
        tte = derive_tte(tables, "first_improvement")
    assert sorted(tte["unit_id"]) == ["u1", "u2"]


# --------------------------------------------------------------------------------------------
# agreement with the simulator's true event times


@pytest.mark.parametrize(
    ("seed", "design"), [(1, "split_body"), (2, "parallel"), (3, "split_body")]
)
def test_true_improvement_times_lie_in_derived_intervals(seed, design):
    from outcomes.simulate.trial import simulate_trial

    feeds = simulate_trial(seed=seed, design=design, n_subjects=80, dropout=0.2, missed_visit=0.15)
    tte = derive_tte(feeds.tables, "first_improvement")
    truth = tte["unit_id"].map(feeds.truth["event_times"]["first_improvement"])
    assert truth.notna().all() and len(tte) == len(feeds.tables["units"])
    lower = tte["start_day"] + tte["lower"]
    upper = tte["start_day"] + tte["upper"]
    assert ((truth > lower) & (truth <= upper)).all()
    censored = tte["event"] == 0
    assert censored.any() and (~censored).any()
    # censored units: the true time is after their last attended visit
    assert (truth[censored] > tte.loc[censored, "start_day"] + tte.loc[censored, "time"]).all()
    # events: the event visit is the first attended visit at or after the true time
    a = feeds.tables["assessments"]
    a = a[(a["instrument"] == "gb_qual") & (a["rater_role"] == "investigator")]
    ev = tte.loc[~censored]
    for unit, t, upper_day in zip(ev["unit_id"], truth[~censored], upper[~censored], strict=True):
        days = a.loc[a["unit_id"] == unit, "day"]
        assert days[days >= t].min() == upper_day


def test_registry_retreatment_and_loss_counts_match_truth():
    from outcomes.simulate.registry import simulate_registry

    feeds = simulate_registry(seed=4, n_subjects=400)
    tte = derive_tte(feeds.tables, "retreatment")
    counts = tte["event_type"].value_counts()
    assert counts["retreated"] == feeds.truth["retreatment"]["n_retreated"]
    assert counts["lost_to_follow_up"] == feeds.truth["follow_up"]["n_lost"]
    dur = derive_tte(feeds.tables, "durability")
    assert (dur["time"] >= 0).all() and (dur["lower"] <= dur["time"]).all()
    assert set(dur["event_type"]) <= {"loss_of_response", "retreated", "censored"}


def test_rater_role_must_be_chosen_when_several_score_the_instrument():
    rows = [("u1", "gb_qual", 0, 3), ("u1", "gb_qual", 0, 3, "blinded_photo_rater", "R1")]
    tables = _tables(rows, units=[("u1", "p1", "MN")], sessions=[("u1", 0)])
    with pytest.raises(InputError, match="several rater roles"):
        derive_tte(tables, Endpoint("any", "gb_qual", "improvement", 1))
