"""Find a report's ``.qmd`` file: a path, the reports folder, or the templates in the package.

The reports (``trial``, ``registry``, ``comparison``) live in ``reports/`` of the repository and
are shipped in the package as ``outcomes/report/templates/*.qmd``, so ``outcomes report trial``
works after ``pip install`` outside the repository too.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from outcomes.errors import InputError

__all__ = ["report_file", "resolve_report", "templates"]


def templates() -> Traversable:
    """The folder of the report templates shipped in the package."""
    return resources.files("outcomes.report").joinpath("templates")


def _names(folder: Traversable) -> list[str]:
    if not folder.is_dir():
        return []
    return [
        p.name[: -len(".qmd")]
        for p in folder.iterdir()
        if p.name.endswith(".qmd") and not p.name.startswith("_")
    ]


def _find(name: str, reports_dir: str | Path) -> tuple[Path | Traversable, bool]:
    """The file for ``name`` and whether it is a template shipped in the package."""
    given = Path(name)
    if given.suffix == ".qmd":
        if not given.is_file():
            raise InputError(f"no report file {given}")
        return given, False
    folder = Path(reports_dir)
    path = folder / f"{name}.qmd"
    if path.is_file():
        return path, False
    packaged = templates().joinpath(f"{name}.qmd")
    if packaged.is_file():
        return packaged, True
    found = sorted(set(_names(folder)) | set(_names(templates())))
    where = f"in {folder}/" if folder.is_dir() else f"({folder}/ does not exist)"
    raise InputError(
        f"no report {name!r} {where} or in the package; "
        f"available: {', '.join(found) or 'none'} (or give the path of a .qmd file)"
    )


def resolve_report(name: str, reports_dir: str | Path = "reports") -> Path | Traversable:
    """The ``.qmd`` file for ``name``.

    A path ending in ``.qmd`` is taken as given; otherwise ``<reports_dir>/<name>.qmd`` if it
    exists, else the template of that name shipped in the package.
    """
    return _find(name, reports_dir)[0]


@contextmanager
def report_file(name: str, reports_dir: str | Path = "reports") -> Iterator[Path]:
    """:func:`resolve_report` as a file path to render.

    A template shipped in the package is copied into a temporary folder first: rendering
    writes beside the source (``<stem>_files/``, ``.quarto/``), and the installed package may be
    read-only or shared. The folder is removed afterwards.
    """
    found, packaged = _find(name, reports_dir)
    if not packaged:
        yield Path(str(found))
        return
    with tempfile.TemporaryDirectory(prefix="outcomes-report-") as tmp:
        path = Path(tmp) / found.name
        with resources.as_file(found) as source:
            shutil.copyfile(source, path)
        yield path
