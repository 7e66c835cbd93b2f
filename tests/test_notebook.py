"""Execute notebooks/starter.ipynb end to end (nbclient) so it never rots.

The notebook reads the store named by ``OUTCOMES_STORE``: here a store holding
``simulate_trial(seed=1)``. Every cell must run without an error and without writing to stderr
(warnings included), both figures must be drawn, and the contrast the notebook prints must
equal the one fitted here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from outcomes.data.ingest import ingest
from outcomes.data.store import Store
from outcomes.models.lmm.fit import lmm
from outcomes.report import format_ci
from outcomes.simulate.output import write_feeds
from outcomes.simulate.trial import simulate_trial

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "starter.ipynb"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("notebook")
    write_feeds(simulate_trial(seed=1), root / "trial")
    path = root / "outcomes.duckdb"
    assert ingest([root / "trial"], path).exit_code == 0
    return path


@pytest.fixture(scope="module")
def executed(store: Path) -> Any:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    mp = pytest.MonkeyPatch()
    mp.setenv("OUTCOMES_STORE", str(store))
    try:
        NotebookClient(
            nb,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": NOTEBOOK.parent}},
        ).execute()
    finally:
        mp.undo()
    return nb


def outputs(nb: Any) -> list[dict[str, Any]]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def test_notebook_runs_without_errors_or_warnings(executed: Any) -> None:
    found = outputs(executed)
    assert not [o for o in found if o["output_type"] == "error"]
    stderr = [o["text"] for o in found if o["output_type"] == "stream" and o["name"] == "stderr"]
    assert stderr == []


def test_notebook_draws_the_marginal_means_and_kaplan_meier_figures(executed: Any) -> None:
    images = [o for o in outputs(executed) if "image/png" in o.get("data", {})]
    assert len(images) == 2


def test_notebook_prints_the_primary_contrast(executed: Any, store: Path) -> None:
    with Store(store) as s:
        t = s.tables()
    a = t["assessments"]
    a = a.loc[(a["instrument"] == "gb_quant") & (a["rater_role"] == "investigator")]
    df = a.merge(t["units"], on=["study_id", "unit_id"])
    data = pd.DataFrame(
        {
            "value": df["value"].astype(float).to_numpy(),
            "week": df["day"].astype(float).to_numpy() / 7,
            "modality": df["modality"].astype(str).to_numpy(),
            "subject_id": df["subject_id"].astype(str).to_numpy(),
            "unit_id": df["unit_id"].astype(str).to_numpy(),
        }
    )
    fit = lmm(data, "value ~ week * modality", design="split_body", re_formula="~week")
    c = fit.contrasts("modality", at={"week": 24}, ref="MN").iloc[0]
    expected = format_ci(c["estimate"], c["conf_low"], c["conf_high"])
    printed = "".join(o["text"] for o in outputs(executed) if o["output_type"] == "stream")
    assert f"MN+PRP minus MN at week 24: {expected}" in printed
    assert "hazard ratio MN+PRP vs MN:" in printed
