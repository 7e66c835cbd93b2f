"""The package's shape: file sizes, which folder may import which, no public name shadowed.

The folders of ``outcomes/`` follow the data path (data -> derive -> models -> comparisons ->
analysis -> report, with ``cli.py`` on top). A folder imports only the ones below it; the
rules are checked on every import statement of every module, inside functions too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import outcomes

PACKAGE = Path(outcomes.__file__).parent
MAX_LINES = 1000

#: folder -> prefixes of ``outcomes`` modules its modules may import ("*" = any but ``DENIED``)
ALLOWED: dict[str, tuple[str, ...]] = {
    "outcomes.errors": ("outcomes.errors",),
    "outcomes.results": ("outcomes.errors", "outcomes.results"),
    "outcomes.progress": ("outcomes.progress",),
    "outcomes.data": (
        "outcomes.errors",
        "outcomes.data",
        "outcomes.__version__",
        "outcomes.progress",
    ),
    "outcomes.derive": ("outcomes.errors", "outcomes.data", "outcomes.derive"),
    "outcomes.simulate": ("outcomes.errors", "outcomes.data", "outcomes.simulate"),
    "outcomes.models": ("outcomes.errors", "outcomes.results", "outcomes.models"),
}
#: folder -> prefixes its modules must not import (on top of the rule for ``outcomes.cli``)
DENIED: dict[str, tuple[str, ...]] = {
    "outcomes.comparisons": ("outcomes.analysis", "outcomes.report", "outcomes.cli"),
    "outcomes.analysis": ("outcomes.cli",),
    "outcomes.planning": ("outcomes.comparisons", "outcomes.analysis", "outcomes.cli"),
    "outcomes.report": (
        "outcomes.models",
        "outcomes.comparisons",
        "outcomes.analysis",
        "outcomes.cli",
    ),
}
#: the one upward import allowed: the forest plot of a comparison uses the report theme
EXCEPTIONS = {("outcomes.comparisons.forest", "outcomes.report.theme")}


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(source: str) -> list[tuple[int, str]]:
    """(line, imported ``outcomes`` module or name) of every import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("outcomes")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "outcomes":  # `from outcomes import x`: the name x of the package
                found += [(node.lineno, f"outcomes.{a.name}") for a in node.names]
            elif node.module.startswith("outcomes."):
                found.append((node.lineno, node.module))
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(module: str, source: str) -> list[str]:
    """Imports of ``source`` (the text of ``module``) that break the layering rules."""
    out = []
    for line, target in _imports(source):
        if (module, target) in EXCEPTIONS:
            continue
        allowed = next((v for k, v in ALLOWED.items() if _within(module, k)), None)
        denied = next((v for k, v in DENIED.items() if _within(module, k)), ())
        if allowed is not None:
            bad = not any(_within(target, p) for p in allowed)
        else:
            bad = any(_within(target, p) for p in denied)
        if _within(target, "outcomes.cli") and module != "outcomes.cli":
            bad = True
        if bad:
            out.append(f"{module}:{line} imports {target}")
    return out


def test_no_module_over_the_size_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert len(sizes) > 40
    too_big = {name: n for name, n in sizes.items() if n >= MAX_LINES}
    assert not too_big, f"modules of {MAX_LINES} lines or more: {too_big}"


def test_folders_import_only_the_layers_below_them():
    found = []
    for name, path in _modules().items():
        found += violations(name, path.read_text())
    assert not found, "layering broken:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("outcomes.models.gee", "from outcomes.data.store import Store", 1),
        ("outcomes.models.gee", "def f():\n    from outcomes.analysis.spec import load_spec", 1),
        ("outcomes.models.gee", "from outcomes import compare", 1),
        ("outcomes.models.gee", "import outcomes.report.theme", 1),
        ("outcomes.models.gee", "from outcomes.models.means import emmeans", 0),
        ("outcomes.data.store", "from outcomes import __version__", 0),
        ("outcomes.data.store", "from outcomes.derive.tte import derive_tte", 1),
        ("outcomes.derive.tte", "from outcomes.data.dictionary import load_dictionary", 0),
        ("outcomes.comparisons.trial", "from outcomes.models.gee import gee", 0),
        ("outcomes.comparisons.trial", "from outcomes.analysis.run import run_analysis", 1),
        ("outcomes.comparisons.trial", "from outcomes.report.theme import theme_outcomes", 1),
        ("outcomes.comparisons.forest", "from outcomes.report.theme import theme_outcomes", 0),
        ("outcomes.report.sections", "from outcomes.data.store import Store", 0),
        ("outcomes.report.sections", "from outcomes.models.lmm.fit import lmm", 1),
        ("outcomes.analysis.run", "from outcomes.cli import main", 1),
        ("outcomes.data.ingest", "from outcomes.progress import progress", 0),
        ("outcomes.progress", "from outcomes.data.store import Store", 1),
        ("outcomes.planning.run", "from outcomes.models.lmm.engine import fit", 0),
        ("outcomes.planning.run", "from outcomes.analysis.run import run_analysis", 1),
    ],
)
def test_the_layering_check_itself(module, source, expected):
    assert len(violations(module, source)) == expected


def test_every_submodule_imports():
    names = [m.name for m in pkgutil.walk_packages(outcomes.__path__, prefix="outcomes.")]
    assert set(names) == set(_modules()) - {"outcomes"}
    for name in names:
        importlib.import_module(name)


def test_public_names_work_and_no_module_shadows_one():
    # importing every submodule first is what sets module attributes on the packages: a
    # module named like a public name (outcomes/audit.py beside the function audit) would
    # replace the lazy name, so `outcomes.audit` would be the module
    for m in pkgutil.walk_packages(outcomes.__path__, prefix="outcomes."):
        importlib.import_module(m.name)
    subpackages = {m.name for m in pkgutil.iter_modules(outcomes.__path__)}
    public = [name for name in outcomes.__all__ if name != "__version__"]
    assert not set(public) & subpackages
    for name in public:
        value = getattr(outcomes, name)
        assert not inspect.ismodule(value), f"outcomes.{name} is a module"
        module, attr = outcomes._LAZY[name]
        assert value is getattr(importlib.import_module(module), attr)
    assert set(dir(outcomes)) >= set(outcomes.__all__)
