"""Run declared analyses: execute a spec and write its results folder and manifest."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from outcomes.analysis.provenance import (
    code_fingerprint,
    environment_fingerprint,
    git_state,
    sha256_file,
)
from outcomes.analysis.results import (
    ESTIMATE_COLUMNS,
    EXPECTED_FILES,
    RESULT_FILES,
    AnalysisResults,
    _save_figure,
    _write_csv,
    _write_parquet,
    load_results,
)
from outcomes.analysis.runners import _RUNNERS
from outcomes.analysis.session import _Session
from outcomes.analysis.spec import AnalysisSpec, load_spec
from outcomes.errors import InputError, OutcomesError
from outcomes.results import ARD_COLUMNS

MANIFEST_VERSION = 1


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _execute(spec: AnalysisSpec, session: _Session, out_dir: Path) -> Path:
    started, t0 = _now(), time.perf_counter()
    final = out_dir / spec.name
    work = out_dir / f"{spec.name}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    (work / "figures").mkdir(parents=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = session.data(spec)
        try:
            output = _RUNNERS[spec.kind](spec, data.tables)
        except OutcomesError as err:
            if str(err).startswith(str(spec.path)):
                raise
            raise type(err)(f"{spec.path}: analysis {spec.name}: {err}") from None
        figure_files = {}
        if spec.content.get("figures", True):
            for fig_name, plot in output.figures.items():
                fig_path = work / "figures" / f"{fig_name}.png"
                _save_figure(plot, fig_path)
                figure_files[f"figures/{fig_name}.png"] = sha256_file(fig_path)
    ard = pd.concat(output.ard, ignore_index=True)[list(ARD_COLUMNS)]
    dup = ard.duplicated(["analysis", "group", "term", "stat_name"])
    if dup.any():
        raise RuntimeError(f"duplicate ARD rows: {ard.loc[dup].head().to_dict('records')}")
    estimates = pd.concat(output.estimates, ignore_index=True)[list(ESTIMATE_COLUMNS)]
    _write_csv(ard, work / "ard.csv")
    _write_parquet(ard, work / "ard.parquet")
    _write_csv(estimates, work / "estimates.csv")
    _write_parquet(estimates, work / "estimates.parquet")
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    code = code_fingerprint()
    code["git"] = git_state(spec.path)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "analysis": spec.name,
        "question": spec.content["question"],
        "kind": spec.kind,
        "spec": {
            "path": spec.path.as_posix(),
            "sha256": spec.sha256,
            "content_sha256": spec.content_sha256,
            "content": spec.content,
        },
        "data": data.info,
        "code": code,
        "environment": environment_fingerprint(),
        "seeds": {
            "spec_seed": spec.seed,
            "seed_sequence_entropy": np.random.SeedSequence(spec.seed).entropy,
            "data_seed": data.info.get("seed"),
        },
        "tolerance": spec.tolerance,
        "results": {
            "rows": len(ard),
            "files": {
                **{f: sha256_file(work / f) for f in RESULT_FILES},
                **figure_files,
            },
        },
        "warnings": messages,
        "started_at": started,
        "finished_at": _now(),
        "duration_seconds": round(time.perf_counter() - t0, 3),
    }
    (work / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    )
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return final


def run_analyses(
    specs: Sequence[str | Path | AnalysisSpec],
    out_dir: str | Path = "results",
    *,
    save_expected: bool = False,
) -> list[Path]:
    """Run declared analyses (sharing each data source) into ``out_dir/<name>/``.

    Parameters
    ----------
    specs
        Spec files (or loaded specs).
    out_dir
        Results root (``results`` by default).
    save_expected
        Also copy ``ard.csv``, ``estimates.csv`` and ``manifest.json`` to each spec's
        ``expected/<name>/`` folder: the reference :func:`audit` compares with.

    Returns
    -------
    list of Path
        The results folders.
    """
    loaded = [s if isinstance(s, AnalysisSpec) else load_spec(s) for s in specs]
    names = [s.name for s in loaded]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"two specs declare the same analysis name: {', '.join(dup)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folders = []
    with _Session() as session:
        for spec in loaded:
            folder = _execute(spec, session, out)
            folders.append(folder)
            if save_expected:
                _save_expected(spec, folder)
    return folders


def _save_expected(spec: AnalysisSpec, folder: Path) -> None:
    dest = spec.expected_dir
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in EXPECTED_FILES:
        shutil.copy(folder / f, dest / f)


def run_analysis(
    spec: str | Path | AnalysisSpec, out_dir: str | Path = "results"
) -> AnalysisResults:
    """Run one declared analysis into ``out_dir/<name>/`` and return its results.

    Examples
    --------
    >>> res = run_analysis("analyses/trial_lmm_gb_quant.yaml")  # doctest: +SKIP
    >>> res.table("fixed")                                      # doctest: +SKIP
    """
    (folder,) = run_analyses([spec], out_dir)
    return load_results(folder)
