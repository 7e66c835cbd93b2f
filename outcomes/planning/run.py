"""Running the replicates: seeds, chunks, backends (serial, joblib, Dask) and the resumable store.

Reproducible by construction: replicate ``r`` of sample size ``n`` in scenario ``s`` (0 the
alternative, 1 the null) draws from ``numpy.random.SeedSequence(seed, spawn_key=(s, n, r))``,
the child ``SeedSequence(seed).spawn(2)[s].spawn(n + 1)[n].spawn(r + 1)[r]``. Each stream
depends on nothing else, every chunk runs with one BLAS thread, and the results are sorted
before they are summarised, so a seed gives the same numbers whatever the backend, the number
of workers, the chunk order or an interruption.

The store (``store=`` a folder) keeps ``run.json`` (design, analysis, seed, chunk size) and one
Parquet file per finished chunk, written as it arrives (to a temporary name, then renamed). A
run pointed at the same folder loads the finished chunks and computes only the rest; asking
for more replicates or sample sizes adds chunks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from outcomes.errors import InputError
from outcomes.planning.analyse import Analysis, analyse
from outcomes.planning.design import Design
from outcomes.planning.generate import simulate_replicate

__all__ = ["BACKENDS", "Chunk", "plan_chunks", "replicate_seed", "run_chunk", "run_chunks"]


BACKENDS = ("serial", "joblib", "dask")
SCENARIOS = ("alternative", "null")
COLUMNS = (
    "scenario",
    "n",
    "replicate",
    "truth",
    "estimate",
    "std_error",
    "df",
    "p_value",
    "conf_low",
    "conf_high",
    "n_obs",
    "warnings",
    "error",
)


@dataclass(frozen=True)
class Chunk:
    """Replicates ``first .. first + count - 1`` of one scenario and sample size."""

    scenario: str
    n: int
    first: int
    count: int

    @property
    def name(self) -> str:
        """File name of the chunk in a store."""
        return f"{self.scenario}-n{self.n}-r{self.first}.parquet"


def replicate_seed(seed: int, scenario: str, n: int, replicate: int) -> np.random.SeedSequence:
    """The random stream of one replicate (see the module documentation)."""
    return np.random.SeedSequence(seed, spawn_key=(SCENARIOS.index(scenario), n, replicate))


def plan_chunks(ns: Sequence[int], reps: int, null: bool, chunk_size: int) -> list[Chunk]:
    """Every chunk of the study, alternative first, by sample size."""
    out = []
    for scenario in SCENARIOS if null else SCENARIOS[:1]:
        for n in ns:
            for first in range(0, reps, chunk_size):
                out.append(Chunk(scenario, int(n), first, min(chunk_size, reps - first)))
    return out


def run_chunk(design: Design, analysis: Analysis, seed: int, chunk: Chunk) -> pd.DataFrame:
    """Simulate and analyse the replicates of one chunk (one BLAS thread)."""
    from threadpoolctl import threadpool_limits

    truth_design = design if chunk.scenario == "alternative" else design.null()
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for r in range(chunk.first, chunk.first + chunk.count):
            rng = np.random.default_rng(replicate_seed(seed, chunk.scenario, chunk.n, r))
            rep = simulate_replicate(truth_design, chunk.n, rng)
            out = analyse(rep, truth_design, analysis)
            rows.append(
                {
                    "scenario": chunk.scenario,
                    "n": chunk.n,
                    "replicate": r,
                    "truth": analysis.truth(truth_design),
                    **out,
                    "n_obs": len(rep.y),
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


def _settings(design: Design, analysis: Analysis, seed: int, chunk_size: int) -> dict[str, Any]:
    d = design.to_dict()
    d.pop("overridden")
    return {
        "design": d,
        "analysis": asdict(analysis),
        "seed": int(seed),
        "chunk_size": int(chunk_size),
    }


def open_store(path: str | os.PathLike, settings: dict[str, Any]) -> Path:
    """Create the store folder, or check that an existing one holds the same study."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"store {folder}: is a file, not a folder")
    meta = folder / "run.json"
    if meta.exists():
        try:
            old = json.loads(meta.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"store {folder}: cannot read run.json ({exc})") from None
        if old != json.loads(json.dumps(settings)):
            keys = sorted(k for k in settings if old.get(k) != json.loads(json.dumps(settings[k])))
            raise InputError(
                f"store {folder}: holds a power study with other settings (differs in: "
                f"{', '.join(keys) or 'layout'}); use another folder to keep both."
            )
    else:
        if folder.exists() and any(folder.iterdir()):
            raise InputError(f"store {folder}: not empty and not a power-study store")
        (folder / "chunks").mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    (folder / "chunks").mkdir(exist_ok=True)
    return folder


def load_chunk(folder: Path, chunk: Chunk) -> pd.DataFrame | None:
    """A finished chunk from the store, or None."""
    path = folder / "chunks" / chunk.name
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    return frame if len(frame) == chunk.count else None


def save_chunk(folder: Path, chunk: Chunk, frame: pd.DataFrame) -> None:
    """Write a chunk to a temporary file, then rename it (never a half-written chunk)."""
    path = folder / "chunks" / chunk.name
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


def _serial(work: Callable[[Chunk], pd.DataFrame], chunks: list[Chunk]) -> Iterator:
    for chunk in chunks:
        yield chunk, work(chunk)


def _joblib(
    design: Design, analysis: Analysis, seed: int, chunks: list[Chunk], n_jobs: int | None
) -> Iterator:
    from joblib import Parallel, delayed

    def job(chunk: Chunk) -> tuple[Chunk, pd.DataFrame]:
        return chunk, run_chunk(design, analysis, seed, chunk)

    parallel = Parallel(n_jobs=n_jobs or -1, return_as="generator_unordered")
    yield from parallel(delayed(job)(chunk) for chunk in chunks)


def dask_client(client: Any = None, scheduler: str | None = None, n_jobs: int | None = None):
    """The Dask client to use, and whether it was made here (and must be closed).

    ``client`` is used as given; ``scheduler`` is the address of a running scheduler; with
    neither, a local cluster of ``n_jobs`` single-threaded worker processes is started.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise InputError(
            "The Dask backend needs dask.distributed, an optional extra: "
            "pip install 'outcomes[cluster]' (or use backend='joblib' on one machine)."
        ) from None
    if client is not None:
        return client, False
    if scheduler:
        return Client(scheduler), True
    cluster = LocalCluster(
        n_workers=n_jobs or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    )
    return Client(cluster), True


def _dask(
    design: Design,
    analysis: Analysis,
    seed: int,
    chunks: list[Chunk],
    client: Any,
    scheduler: str | None,
    n_jobs: int | None,
) -> Iterator:
    dask, made_here = dask_client(client, scheduler, n_jobs)
    from dask.distributed import as_completed

    try:
        futures = {
            dask.submit(run_chunk, design, analysis, seed, chunk, pure=False): chunk
            for chunk in chunks
        }
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        if made_here:
            cluster = getattr(dask, "cluster", None)
            dask.close()
            if cluster is not None:
                cluster.close()


def run_chunks(
    design: Design,
    analysis: Analysis,
    seed: int,
    chunks: list[Chunk],
    *,
    backend: str = "serial",
    n_jobs: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    store: str | os.PathLike | None = None,
    chunk_size: int = 25,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> pd.DataFrame:
    """Run ``chunks`` (skipping those finished in ``store``) and return every replicate, sorted.

    ``on_chunk`` is called as each chunk finishes (the progress bar). ``chunk_size`` is
    recorded in the store: a store is resumed only with the chunking it was made with.
    """
    if backend not in BACKENDS:
        raise InputError(f"backend={backend!r}: use one of {', '.join(BACKENDS)}.")
    folder = None
    if store is not None:
        folder = open_store(store, _settings(design, analysis, seed, chunk_size))
    done: list[pd.DataFrame] = []
    todo = []
    for chunk in chunks:
        frame = load_chunk(folder, chunk) if folder is not None else None
        if frame is None:
            todo.append(chunk)
        else:
            done.append(frame)
            if on_chunk is not None:
                on_chunk(chunk)
    results: Iterable
    if not todo:
        results = ()
    elif backend == "serial":
        results = _serial(lambda c: run_chunk(design, analysis, seed, c), todo)
    elif backend == "joblib":
        results = _joblib(design, analysis, seed, todo, n_jobs)
    else:
        results = _dask(design, analysis, seed, todo, client, scheduler, n_jobs)
    for chunk, frame in results:
        if folder is not None:
            save_chunk(folder, chunk, frame)
        done.append(frame)
        if on_chunk is not None:
            on_chunk(chunk)
    table = pd.concat(done, ignore_index=True) if done else pd.DataFrame(columns=list(COLUMNS))
    order = table["scenario"].map(SCENARIOS.index)
    table = table.assign(_o=order).sort_values(["_o", "n", "replicate"], kind="stable")
    return table.drop(columns="_o").reset_index(drop=True)
