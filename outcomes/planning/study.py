"""``outcomes.power``: power and sample size of a split-face or parallel trial by simulation."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from outcomes.errors import InputError
from outcomes.planning.analyse import Analysis
from outcomes.planning.design import Design
from outcomes.planning.results import INTERVALS, PowerResult
from outcomes.planning.run import plan_chunks, run_chunks
from outcomes.progress import progress as progress_bar

__all__ = ["load_power", "power"]


def power(
    design: Design | str = "split_body",
    *,
    n: int | Sequence[int] = (5, 6, 8, 10, 12, 15, 20),
    reps: int = 1000,
    seed: int = 1,
    effect: float | None = None,
    analysis: str = "lmm",
    ddf: str = "satterthwaite",
    time: str = "linear",
    random: str = "slope",
    alpha: float = 0.05,
    target: float = 0.8,
    null: bool = True,
    interval: str = "wilson",
    backend: str = "serial",
    n_jobs: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    store: str | os.PathLike | None = None,
    chunk_size: int = 25,
    progress: bool | None = None,
    **design_options: Any,
) -> PowerResult:
    """Power of a trial by simulation: each sample size, many simulated trials, each analysed.

    Parameters
    ----------
    design
        ``"split_body"`` or ``"parallel"`` (defaults from the calibrated simulator), or a
        :class:`~outcomes.planning.design.Design`.
    n
        Sample sizes to simulate: patients per arm (split-face: patients, each with one side
        in each arm; parallel: ``2 n`` patients).
    reps
        Simulated trials per sample size (and per scenario).
    seed
        One seed for the whole study; each trial has its own stream
        (:func:`~outcomes.planning.run.replicate_seed`), so results do not depend on the
        backend or the number of workers.
    effect
        True difference (combination minus control) at the primary visit, in score points;
        default the calibrated one (MN+PRP vs MN, about -1.55 at day 168).
    analysis, ddf, time, random, alpha
        How each trial is analysed (:class:`~outcomes.planning.analyse.Analysis`).
    target
        Power to reach; the result names the smallest simulated ``n`` reaching it.
    null
        Also simulate each size with no difference, for the type I error.
    interval
        Monte Carlo interval of power and type I error: ``"wilson"`` or ``"exact"``.
    backend
        ``"serial"``, ``"joblib"`` (local processes) or ``"dask"`` (``client``, ``scheduler``,
        or a local cluster); ``client`` or ``scheduler`` alone imply ``"dask"``.
    n_jobs
        Local workers for joblib or a local Dask cluster (default: all cores).
    client
        A ``dask.distributed.Client`` to run on.
    scheduler
        Address of a Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    store
        Folder where results are written as they arrive (Parquet, one file per chunk); a run
        pointed at the same folder resumes, and more ``reps`` or sizes add to it.
    chunk_size
        Trials per task sent to a worker.
    progress
        Progress bar (done, rate, time left): ``None`` shows it on a terminal only.
    **design_options
        Any :class:`~outcomes.planning.design.Design` field: ``visit_days``, ``primary_day``,
        ``dropout``, ``missed_visit``, ``sd_unit``, ``sd_residual``, ...

    Returns
    -------
    PowerResult
        ``.summary`` (power, type I error, bias, coverage, warnings share per size),
        ``.sample_size``, ``.table()``, ``.plot()``, ``.diagnostics``, ``.replicates``.

    Examples
    --------
    >>> res = power(n=[6, 10], reps=50, dropout=0.1)  # doctest: +SKIP
    >>> res.summary[["n", "power", "power_low", "power_high", "type1"]]  # doctest: +SKIP
    """
    if isinstance(design, Design):
        if design_options:
            raise InputError("give design options either in the Design or as keywords, not both")
        the_design = design if effect is None else design.with_effect(effect)
    else:
        the_design = Design.build(effect=effect, design=design, **design_options)
    the_analysis = Analysis(analysis=analysis, ddf=ddf, time=time, random=random, alpha=alpha)
    if the_analysis.analysis in ("mmrm", "interval", "responder") and (
        the_design.primary_day == the_design.visit_days[0]
    ):
        raise InputError(
            f"analysis={analysis!r} compares change from the baseline visit (day "
            f"{the_design.visit_days[0]}): give a later primary_day and visits after baseline."
        )
    ns = sorted({int(x) for x in ([n] if isinstance(n, int) else n)})
    minimum = 3 if the_design.design == "split_body" else 2
    if not ns or ns[0] < minimum:
        raise InputError(f"n={list(ns)}: simulate at least {minimum} patients per arm.")
    if int(reps) < 1 or int(chunk_size) < 1:
        raise InputError("reps and chunk_size must be at least 1.")
    if not 0 < target < 1:
        raise InputError(f"target={target}: a power between 0 and 1.")
    if interval not in INTERVALS:
        raise InputError(f"interval={interval!r}: use one of {', '.join(INTERVALS)}.")
    if int(seed) < 0:
        raise InputError(f"seed={seed}: a whole number >= 0.")
    if (client is not None or scheduler) and backend == "serial":
        backend = "dask"
    chunks = plan_chunks(ns, int(reps), null, int(chunk_size))
    total = sum(c.count for c in chunks)
    with progress_bar(total, "simulated trials", unit="trial", enabled=progress) as bar:
        replicates = run_chunks(
            the_design,
            the_analysis,
            int(seed),
            chunks,
            backend=backend,
            n_jobs=n_jobs,
            client=client,
            scheduler=scheduler,
            store=store,
            chunk_size=int(chunk_size),
            on_chunk=lambda c: bar.update(c.count),
        )
    result = PowerResult(
        design=the_design,
        analysis=the_analysis,
        seed=int(seed),
        reps=int(reps),
        target=float(target),
        replicates=replicates,
        interval=interval,
    )
    if store is not None:
        _write_settings(Path(store), result, ns, null)
    return result


def _write_settings(folder: Path, result: PowerResult, ns: list[int], null: bool) -> None:
    """Record what the last run asked for, so a report can rebuild the result from the store."""
    request = {
        "n": ns,
        "reps": result.reps,
        "null": null,
        "target": result.target,
        "interval": result.interval,
        "overridden": list(result.design.overridden),
    }
    (folder / "request.json").write_text(json.dumps(request, indent=2) + "\n")


def load_power(store: str | os.PathLike) -> PowerResult:
    """The result of the last finished run in a power-study store (nothing is recomputed).

    Raises
    ------
    InputError
        The folder is not a power-study store, or its last run did not finish.
    """
    import pandas as pd

    from outcomes.planning.run import load_chunk

    folder = Path(store)
    try:
        settings = json.loads((folder / "run.json").read_text())
        request = json.loads((folder / "request.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"store {folder}: not a finished power study (run.json and request.json: {exc})"
        ) from None
    design_dict = dict(settings["design"])
    design_dict["visit_days"] = tuple(design_dict["visit_days"])
    design = Design(**design_dict, overridden=tuple(request.get("overridden", ())))
    analysis = Analysis(**settings["analysis"])
    chunks = plan_chunks(request["n"], request["reps"], request["null"], settings["chunk_size"])
    frames = []
    for chunk in chunks:
        frame = load_chunk(folder, chunk)
        if frame is None:
            raise InputError(f"store {folder}: chunk {chunk.name} is missing; run it again")
        frames.append(frame)
    replicates = pd.concat(frames, ignore_index=True)
    return PowerResult(
        design=design,
        analysis=analysis,
        seed=settings["seed"],
        reps=request["reps"],
        target=request["target"],
        replicates=replicates,
        interval=request["interval"],
    )
