"""Nox sessions: every session builds its own environment from the lock file.

nox -s tests       the test suite (what CI runs)
nox -s lint        ruff and mypy
nox -s demo        simulate a trial and a registry, ingest both, summarise
nox -s benchmark   speed and memory targets
nox -s package     install the package outside the checkout and render a report from it
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nox
import nox.command

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
LOCK = "requirements.lock"


def install(session: nox.Session) -> None:
    """Install the pinned dependencies, then the package itself (not editable)."""
    session.install("-r", LOCK)
    session.install("--no-deps", ".")


def demo_store(session: nox.Session) -> str:
    """Simulate the demo trial (seed 1) and registry (seed 2) and ingest them into demo/.

    Re-running adds nothing: identical feeds are recognised by their hashes.
    """
    out = session.create_tmp()
    session.run("outcomes", "simulate", "trial", "--seed", "1", "--out", f"{out}/trial")
    session.run("outcomes", "simulate", "registry", "--seed", "2", "--out", f"{out}/registry")
    store = "demo/outcomes.duckdb"
    Path("demo").mkdir(exist_ok=True)
    session.run("outcomes", "ingest", f"{out}/trial", f"{out}/registry", "--store", store)
    return store


def render_reports(session: nox.Session, store: str, names: tuple[str, ...], *extra: str) -> None:
    """Render reports/NAME.qmd from the store to HTML, PDF and Word in demo/reports."""
    for name in names:
        session.run(
            "outcomes",
            "report",
            name,
            "-P",
            f"store={store}",
            "--to",
            "html,pdf,docx",
            "--out",
            "demo/reports",
            *extra,
        )


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite against the installed package."""
    install(session)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style (ruff) and types (mypy)."""
    install(session)
    session.run("ruff", "check", "outcomes", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "outcomes", "tests", "benchmarks", "noxfile.py")
    session.run("mypy", "outcomes")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job: simulate a trial and a registry, ingest, compare, render the reports.

    Everything lands in demo/: the store, the comparison table and forest plot, and the
    trial and registry reports in HTML, PDF and Word.
    """
    install(session)
    store = demo_store(session)
    session.run("outcomes", "summary", "--store", store)
    session.run("outcomes", "compare", "--store", store, "--out", "demo/compare")
    render_reports(session, store, ("trial", "registry"))


@nox.session(python=PYTHON)
def benchmark(session: nox.Session) -> None:
    """Time and measure the benchmarks in benchmarks/ (targets are printed beside results).

    mixedlm-rs, a young Rust LMM engine on PyPI, is installed when it can be, only as a
    yardstick for the toolkit's engine; without it those rows are skipped.
    """
    install(session)
    try:
        session.install("mixedlm-rs==0.2.0")
    except nox.command.CommandFailed:
        session.log("mixedlm-rs did not install: its benchmark rows are skipped")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=PYTHON)
def recovery(session: nox.Session) -> None:
    """Slow recovery studies: simulate many data sets with known truth, check CI coverage."""
    install(session)
    session.run("pytest", "-m", "slow", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON)
def audit(session: nox.Session) -> None:
    """Re-run every declared analysis in analyses/ and compare with its committed expected
    results; check that requirements.lock is what `uv pip compile` gives now. Any difference
    fails with a readable diff (`nox -s audit -- --strict` also fails on package versions)."""
    import shutil

    install(session)
    compiled = Path(session.create_tmp()) / "requirements.lock"
    shutil.copy(LOCK, compiled)  # compile onto a copy: uv keeps the pins as preferences
    session.run(
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--extra",
        "reports",
        "--extra",
        "test",
        "--extra",
        "lint",
        "--extra",
        "formats",
        "--extra",
        "cluster",
        "--python-version",
        PYTHON,
        "-o",
        str(compiled),
        "--quiet",
        external=True,
    )
    lock = ("--lock", LOCK, "--compiled-lock", str(compiled))
    session.run("outcomes", "audit", "analyses", *lock, *session.posargs)


@nox.session(python=PYTHON)
def reports(session: nox.Session) -> None:
    """Render the trial, registry and comparison reports to HTML, PDF and Word in demo/reports.

    Reads demo/outcomes.duckdb (made here as in ``nox -s demo`` when missing). Extra arguments
    go to every ``outcomes report``: ``nox -s reports -- -P snapshot=1``.
    """
    install(session)
    store = demo_store(session)
    render_reports(session, store, ("trial", "registry", "comparison"), *session.posargs)


#: Run by ``nox -s package`` in the installed environment, outside the checkout: the shipped
#: report templates are regular files with the bytes of reports/*.qmd (argv[1] is the checkout).
CHECK_TEMPLATES = """
import sys
from importlib import resources
from pathlib import Path

import outcomes

assert "site-packages" in outcomes.__file__, outcomes.__file__
folder = resources.files("outcomes.report").joinpath("templates")
for report in sorted(Path(sys.argv[1], "reports").glob("[!_]*.qmd")):
    shipped = Path(str(folder.joinpath(report.name)))
    assert shipped.is_file() and not shipped.is_symlink(), shipped
    assert shipped.read_bytes() == report.read_bytes(), shipped
    print("shipped", shipped)
"""


@nox.session(python=PYTHON)
def package(session: nox.Session) -> None:
    """Install the package (not editable) and render a report from its packaged template.

    Runs in a temporary folder outside the checkout, so the template, the report helpers and
    the data dictionary all come from the installed package: simulate a trial, ingest it and
    render ``outcomes report trial -P store=...`` to HTML, PDF and Word.
    """
    install(session)
    checkout = Path.cwd()
    work = Path(tempfile.mkdtemp(prefix="outcomes-package-"))
    session.chdir(work)
    session.run("python", "-c", CHECK_TEMPLATES, str(checkout))
    session.run("outcomes", "simulate", "trial", "--seed", "1", "--out", "feeds")
    session.run("outcomes", "ingest", "feeds", "--store", "trial.duckdb")
    session.run(
        "outcomes",
        "report",
        "trial",
        "-P",
        "store=trial.duckdb",
        "--to",
        "html,pdf,docx",
        "--out",
        "out",
        *session.posargs,
    )
    for ext in ("html", "pdf", "docx"):
        if not (work / "out" / f"trial.{ext}").is_file():
            session.error(f"{work}/out/trial.{ext} was not written")
    session.log(f"rendered from the installed package in {work}/out")
