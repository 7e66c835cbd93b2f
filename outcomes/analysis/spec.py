"""The analysis spec: load a YAML file, check its keys and values, find the specs in a folder."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from outcomes.analysis.differences import DEFAULT_RELATIVE_TOLERANCE
from outcomes.errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")

# --------------------------------------------------------------------------------------------
# the spec
# --------------------------------------------------------------------------------------------

TOP_KEYS = {
    "name": True,
    "question": True,
    "data": True,
    "population": False,
    "outcome": False,
    "model": True,
    "comparisons": False,
    "seed": True,
    "tolerance": False,
    "figures": False,
    "notes": False,
}
DATA_KEYS = {
    "feeds": {"feeds"},
    "simulate": {"simulate", "seed", "options"},
    "store": {"store", "snapshot"},
}
TOLERANCE_KEYS = {"relative", "absolute", "stats", "reason"}


@dataclass(frozen=True)
class _Kind:
    """What one model kind accepts: keys of ``outcome``, ``model`` and each comparison."""

    outcome_required: frozenset[str]
    outcome_optional: frozenset[str]
    model_required: frozenset[str]
    model_optional: frozenset[str]
    comparison_required: frozenset[str]
    comparison_optional: frozenset[str]


def _kind(
    outcome: tuple[Iterable[str], Iterable[str]],
    model: tuple[Iterable[str], Iterable[str]],
    comparison: tuple[Iterable[str], Iterable[str]],
) -> _Kind:
    return _Kind(
        frozenset(outcome[0]),
        frozenset(outcome[1]),
        frozenset(model[0]),
        frozenset(model[1]),
        frozenset(comparison[0]),
        frozenset(comparison[1]),
    )


#: Model kinds of declared analyses and the options each accepts.
MODEL_KINDS: dict[str, _Kind] = {
    "lmm": _kind(
        (["instrument"], ["rater_role"]),
        (["formula"], ["design", "groups", "nested", "re_formula", "reml", "engine", "level"]),
        (["specs"], ["at", "by", "ref", "method", "adjust"]),
    ),
    "time_to_result": _kind(
        (["endpoint"], ["retreatment_gap"]),
        (["by"], ["times", "conf_level"]),
        (["test"], ["formula", "cluster", "strata", "ties"]),
    ),
    "comparison": _kind(
        ([], []),
        (
            [],
            [
                "reference",
                "primary_day",
                "window",
                "responder_threshold",
                "estimand",
                "trim",
                "ae_outcomes",
                "published",
                "level",
            ],
        ),
        ([], []),
    ),
}


@dataclass(frozen=True)
class AnalysisSpec:
    """A validated declared analysis (see :func:`load_spec`).

    Attributes
    ----------
    path
        The YAML file.
    content
        The parsed spec, as written (no defaults filled in).
    sha256
        SHA-256 of the file's bytes.
    """

    path: Path
    content: dict[str, Any]
    sha256: str

    @property
    def name(self) -> str:
        """The analysis name (folder name of its results)."""
        return str(self.content["name"])

    @property
    def kind(self) -> str:
        """The model kind."""
        return str(self.content["model"]["kind"])

    @property
    def seed(self) -> int:
        """The spec's seed."""
        return int(self.content["seed"])

    @property
    def tolerance(self) -> dict[str, Any]:
        """Audit tolerance: ``relative`` (default 1e-9), ``absolute`` (default 0), ``stats``
        (per statistic name, ``{relative, absolute}`` replacing these) and ``reason``."""
        tol = dict(self.content.get("tolerance") or {})
        tol.setdefault("relative", DEFAULT_RELATIVE_TOLERANCE)
        tol.setdefault("absolute", 0.0)
        tol.setdefault("stats", {})
        return tol

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the parsed content (comments and layout of the file do not count)."""
        return hashlib.sha256(_canonical_json(self.content).encode()).hexdigest()

    @property
    def expected_dir(self) -> Path:
        """Where the committed expected results live: ``<spec folder>/expected/<name>/``."""
        return self.path.parent / "expected" / self.name


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _fail(path: Path, key: str, message: str) -> InputError:
    where = f"{path}: key {key!r}" if key else str(path)
    return InputError(f"{where}: {message}")


def _check_keys(
    path: Path,
    where: str,
    value: Any,
    required: Iterable[str],
    optional: Iterable[str],
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, where, f"must be a mapping, got {type(value).__name__}")
    allowed = set(required) | set(optional)
    for key in value:
        if key not in allowed:
            raise _fail(
                path,
                f"{where}.{key}" if where else str(key),
                f"unknown key; allowed here: {', '.join(sorted(allowed)) or 'none'}",
            )
    for key in sorted(required):
        if key not in value:
            raise _fail(path, f"{where}.{key}" if where else key, "missing required key")
    return dict(value)


def _check_type(path: Path, key: str, value: Any, types: tuple[type, ...], what: str) -> None:
    if isinstance(value, bool) and bool not in types:
        raise _fail(path, key, f"must be {what}, got {value!r}")
    if not isinstance(value, types):
        raise _fail(path, key, f"must be {what}, got {value!r}")


def load_spec(path: str | Path) -> AnalysisSpec:
    """Read and validate a declared analysis.

    Parameters
    ----------
    path
        A YAML file.

    Returns
    -------
    AnalysisSpec

    Raises
    ------
    InputError
        Naming the file and the key: unreadable YAML, unknown keys, missing required keys,
        an unknown model kind, a wrong type, a data source that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such analysis spec")
    raw = path.read_bytes()
    try:
        content = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    content = _check_keys(
        path, "", content, [k for k, r in TOP_KEYS.items() if r], [k for k, r in TOP_KEYS.items()]
    )
    name = content["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(path, "name", "must be letters, digits, '_', '-' or '.' (a folder name)")
    _check_type(path, "question", content["question"], (str,), "text")
    _check_type(path, "seed", content["seed"], (int,), "a whole number")
    if content["seed"] < 0:
        raise _fail(path, "seed", "must be >= 0")
    _validate_data(path, content["data"])
    model = content["model"]
    if not isinstance(model, Mapping) or "kind" not in model:
        raise _fail(path, "model.kind", "missing required key")
    kind = model["kind"]
    if kind not in MODEL_KINDS:
        raise _fail(
            path, "model.kind", f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}"
        )
    k = MODEL_KINDS[kind]
    _check_keys(path, "model", model, k.model_required | {"kind"}, k.model_optional)
    if k.outcome_required or "outcome" in content:
        if "outcome" not in content:
            raise _fail(path, "outcome", f"missing required key (model kind {kind!r})")
        _check_keys(path, "outcome", content["outcome"], k.outcome_required, k.outcome_optional)
    comparisons = content.get("comparisons") or []
    if not isinstance(comparisons, list):
        raise _fail(path, "comparisons", "must be a list of mappings")
    for i, comp in enumerate(comparisons):
        _check_keys(path, f"comparisons[{i}]", comp, k.comparison_required, k.comparison_optional)
    population = content.get("population") or {}
    _check_keys(path, "population", population, [], population.keys())
    for column, rule in population.items():
        if isinstance(rule, Mapping):
            _check_keys(path, f"population.{column}", rule, [], ["min", "max"])
    tol = content.get("tolerance")
    if tol is not None:
        tol = _check_keys(path, "tolerance", tol, [], TOLERANCE_KEYS)
        stats = _check_keys(
            path, "tolerance.stats", tol.get("stats") or {}, [], tol.get("stats") or {}
        )
        levels = [("tolerance", tol)] + [
            (
                f"tolerance.stats.{k}",
                _check_keys(path, f"tolerance.stats.{k}", v, [], ["relative", "absolute"]),
            )
            for k, v in stats.items()
        ]
        loose = False
        for where, level in levels:
            for key in ("relative", "absolute"):
                if key in level:
                    _check_type(path, f"{where}.{key}", level[key], (int, float), "a number")
                    if not 0 <= level[key] < 1:
                        raise _fail(path, f"{where}.{key}", "must be in [0, 1)")
            loose |= level.get("relative", 0) > DEFAULT_RELATIVE_TOLERANCE
            loose |= level.get("absolute", 0) > 0
        if loose and not str(tol.get("reason", "")).strip():
            raise _fail(
                path, "tolerance.reason", "a tolerance looser than the default needs a reason"
            )
    if "figures" in content:
        _check_type(path, "figures", content["figures"], (bool,), "true or false")
    return AnalysisSpec(path=path, content=content, sha256=hashlib.sha256(raw).hexdigest())


def _validate_data(path: Path, data: Any) -> None:
    if not isinstance(data, Mapping):
        raise _fail(path, "data", "must be a mapping with one of feeds, simulate or store")
    sources = [s for s in DATA_KEYS if s in data]
    if len(sources) != 1:
        raise _fail(path, "data", "give exactly one of feeds, simulate or store")
    source = sources[0]
    _check_keys(path, "data", data, [source], DATA_KEYS[source])
    base = path.parent
    if source == "feeds":
        feeds = data["feeds"] if isinstance(data["feeds"], list) else [data["feeds"]]
        for f in feeds:
            if not isinstance(f, str) or not (base / f).exists():
                raise _fail(path, "data.feeds", f"{f!r}: no such file or folder (from {base})")
    elif source == "simulate":
        if data["simulate"] not in ("trial", "registry"):
            raise _fail(path, "data.simulate", "must be 'trial' or 'registry'")
        if "seed" in data:
            _check_type(path, "data.seed", data["seed"], (int,), "a whole number")
        options = data.get("options") or {}
        from outcomes.simulate import simulate_registry, simulate_trial

        func = simulate_trial if data["simulate"] == "trial" else simulate_registry
        allowed = set(inspect.signature(func).parameters) - {"seed"}
        _check_keys(path, "data.options", options, [], allowed)
    else:
        if not isinstance(data["store"], str) or not (base / data["store"]).is_file():
            raise _fail(path, "data.store", f"{data['store']!r}: no such store (from {base})")
        if "snapshot" not in data:
            raise _fail(path, "data.snapshot", "a store source must pin its snapshot")
        _check_type(path, "data.snapshot", data["snapshot"], (int,), "a snapshot number")


def discover_specs(paths: Sequence[str | Path]) -> list[Path]:
    """Spec files among ``paths``: files as given, folders' ``*.yaml``/``*.yml`` (not nested)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such spec file or folder")
    if not out:
        raise InputError(f"no analysis specs (*.yaml) in {', '.join(map(str, paths))}")
    return out
