"""The README's REDCap walk-through, run as written: its commands and its mapping file.

The commands and the YAML are taken from README.md (so the document cannot drift from what
works); the export and its Data Dictionary are built here from a simulated split-face trial,
and the store is compared, table by table, with the trial the export was made from.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from outcomes.data.dictionary import load_dictionary
from outcomes.data.mapping import load_mapping
from outcomes.data.store import Store

ROOT = Path(__file__).parents[1]
_spec = importlib.util.spec_from_file_location(
    "export_shapes", Path(__file__).parent / "export_shapes.py"
)
assert _spec is not None and _spec.loader is not None
shapes = importlib.util.module_from_spec(_spec)
sys.modules["export_shapes"] = shapes
_spec.loader.exec_module(shapes)

HEADING = "### Walk-through: a REDCap split-face trial, no code"


def walkthrough() -> tuple[str, str]:
    """The walk-through's bash block and its YAML block, from README.md."""
    text = (ROOT / "README.md").read_text()
    start = text.index(HEADING)
    section = text[start : text.index("\n## ", start)]
    bash = re.search(r"```bash\n(.*?)```", section, re.S)
    mapping = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert bash and mapping
    return bash.group(1), mapping.group(1)


def _words(value: object) -> set[str]:
    """Every key and text value in a parsed YAML document."""
    if isinstance(value, dict):
        return {str(k) for k in value} | set().union(*map(_words, value.values()))
    if isinstance(value, list):
        return set().union(*map(_words, value)) if value else set()
    return {str(value)}


def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    commands, mapping = walkthrough()
    feeds = shapes.trial(seed=7, n_subjects=16)
    export, _ = shapes.redcap_split_face(feeds, tmp_path)
    (tmp_path / "trial_export.csv.mapping.yaml").write_text(mapping)
    script = f'set -e\noutcomes() {{ "{sys.executable}" -m outcomes.cli "$@"; }}\n{commands}'
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    # the draft accounts for every column of the export and loads as a mapping
    draft = (tmp_path / "draft.yaml").read_text()
    parsed = yaml.safe_load(draft)
    decoded = set(parsed.pop("decode"))
    named = _words(parsed)
    columns = set(pd.read_csv(export, nrows=0).columns)
    assert columns <= named, columns - named  # each column mapped, a filter or dropped
    assert decoded <= columns
    assert {"arm_left", "tx_side", "gbqs", "enrolment_complete"} <= set(parsed["drop"])
    (tmp_path / "check").mkdir()
    (tmp_path / "check" / "trial_export.csv.mapping.yaml").write_text(draft)
    load_mapping(tmp_path / "check" / "trial_export.csv.mapping.yaml")
    # every table went in whole, and equals the trial the export was made from
    for line in ("studies: 1 rows in, 1 accepted", "subjects: 16 rows in, 16 accepted"):
        assert line in done.stdout
    expected = shapes.expected_tables(feeds, {"L": "Left", "R": "Right"})
    d = load_dictionary()
    skip = {"study_id", "title", "registration_id", "start_year", "n_planned"}
    with Store(tmp_path / "trial.duckdb") as store:
        for name, table in d.tables.items():
            stored = store.table(name)
            cols = [c for c in table.columns if c not in skip and stored[c].notna().any()]
            ok, why = shapes.same_rows(stored, expected[name], cols)
            assert ok, f"{name}: {why}"
    # and the trial analysis ran: MN+PRP vs MN on the primary score, with an interval
    result = pd.read_csv(tmp_path / "results" / "comparison.csv")
    md = result[(result["measure"] == "mean_difference") & (result["source"] == "trial")]
    assert md["comparison"].tolist() == ["MN+PRP vs MN"]
    assert md["conf_low"].iloc[0] < md["estimate"].iloc[0] < md["conf_high"].iloc[0]
