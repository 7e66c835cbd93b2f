"""Write the simulated time-to-event data that splitface.R and registry.R analyse.

Run from the repository root: ``python tests/r/survival/make_data.py``. The CSVs are kept in
the repository, so the R reference numbers stay tied to fixed data even if the simulator
changes.
"""

from pathlib import Path

from outcomes.derive.tte import derive_tte
from outcomes.simulate.registry import simulate_registry
from outcomes.simulate.trial import simulate_trial

HERE = Path(__file__).parent
COLUMNS = ["subject_id", "unit_id", "arm", "phototype", "sex", "time", "event", "lower", "upper"]

trial = simulate_trial(seed=11, design="split_body", n_subjects=120)
tte = derive_tte(trial.tables, "first_improvement")
tte[COLUMNS].to_csv(HERE / "splitface.csv", index=False)

registry = simulate_registry(seed=12, n_subjects=600)
ret = derive_tte(registry.tables, "retreatment")
ret[["subject_id", "arm", "time", "event_type"]].to_csv(
    HERE / "registry_retreatment.csv", index=False
)
