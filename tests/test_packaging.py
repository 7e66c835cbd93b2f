"""The reports ship in the package: templates equal reports/*.qmd and are found from anywhere.

Under ``nox -s tests`` the package is installed (not editable), so these check the shipped
files; ``nox -s package`` renders one of them in a fresh folder outside the checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from outcomes.errors import InputError
from outcomes.report.lookup import report_file, resolve_report

REPORTS = Path(__file__).resolve().parents[1] / "reports"
NAMES = sorted(p.stem for p in REPORTS.glob("*.qmd") if not p.stem.startswith("_"))


def test_every_report_is_shipped() -> None:
    assert NAMES == ["comparison", "power", "registry", "trial"]


@pytest.mark.parametrize("name", NAMES)
def test_packaged_template_is_the_report(name: str) -> None:
    shipped = resources.files("outcomes.report").joinpath("templates", f"{name}.qmd")
    assert shipped.is_file()
    assert shipped.read_bytes() == (REPORTS / f"{name}.qmd").read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_templates_import_helpers_from_the_package(name: str) -> None:
    text = (REPORTS / f"{name}.qmd").read_text()
    assert "from outcomes.report import sections as sh" in text
    assert "_shared" not in text and "sys.path" not in text


def test_reports_folder_wins_over_the_package(tmp_path: Path) -> None:
    (tmp_path / "trial.qmd").write_text("---\ntitle: local\n---\n")
    assert resolve_report("trial", tmp_path) == tmp_path / "trial.qmd"
    with report_file("trial", tmp_path) as path:
        assert path == tmp_path / "trial.qmd"


def test_without_a_reports_folder_the_packaged_template_is_used(tmp_path: Path) -> None:
    found = resolve_report("trial", tmp_path / "none")
    assert found.name == "trial.qmd"
    assert Path(str(found)).parent.name == "templates"
    with report_file("trial", tmp_path / "none") as path:
        copied = path
        assert path.read_bytes() == (REPORTS / "trial.qmd").read_bytes()
        assert path.parent != Path(str(found)).parent  # a copy, rendered away from the package
    assert not copied.parent.exists()


def test_unknown_report_lists_the_packaged_ones(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"no report 'nope'.*available: comparison, power, registry, trial"
    ):
        resolve_report("nope", tmp_path / "none")
