"""The analysis spec: load a YAML file, check its keys and values, find the specs in a folder.

The checks are pydantic models (:mod:`outcomes.data.yaml_model`); they only validate. The spec
itself stays the parsed YAML (:attr:`AnalysisSpec.content`), so its content hash does not
depend on the models' defaults. Errors read ``"<file>: key '<key>': <message>"``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from outcomes.analysis.differences import DEFAULT_RELATIVE_TOLERANCE
from outcomes.data.yaml_model import SHAPE_ERRORS, YamlModel, check_keys, fail, problems, validate
from outcomes.errors import InputError
from outcomes.models.glmm.families import BINOMIAL_LINKS, CLMM_LINKS
from outcomes.models.glmm.glmm import FAMILIES as GLMM_FAMILIES
from outcomes.models.mmrm.covariance import STRUCTURES
from outcomes.models.mmrm.dof import DDF_METHODS
from outcomes.models.network.contrasts import NETWORK_MEASURES
from outcomes.models.network.nma import TAU_METHODS
from outcomes.models.network.split import SPLIT_METHODS

MMRM_STRUCTURES = list(STRUCTURES)
MMRM_DDF = list(DDF_METHODS)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")

# --------------------------------------------------------------------------------------------
# the spec
# --------------------------------------------------------------------------------------------


class _Keys(YamlModel):
    """A spec mapping: unknown keys, then missing ones, are reported before any value."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        fields = cls.model_fields
        check_keys(value, fields, [name for name, field in fields.items() if field.is_required()])
        return value


def _mapping(value: Any) -> Any:
    """A field validator: null and other empty values read as ``{}``; else a mapping."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise PydanticCustomError(
            "not_mapping", "must be a mapping, got {got}", {"got": type(value).__name__}
        )
    return value


def _non_negative(value: int) -> int:
    if value < 0:
        raise PydanticCustomError("range", "must be >= 0")
    return value


def _fraction(value: float) -> float:
    if not 0 <= value < 1:
        raise PydanticCustomError("range", "must be in [0, 1)")
    return value


def _given(error: str) -> BeforeValidator:
    """An explicit null is a type error (``error``); only a missing key takes the default."""

    def check(value: Any) -> Any:
        if value is None:
            raise PydanticCustomError(error, "null")
        return value

    return BeforeValidator(check)


_Fraction = Annotated[StrictFloat | None, AfterValidator(_fraction), _given("float_type")]


class _Level(_Keys):
    """An audit tolerance: relative and absolute, each in [0, 1)."""

    relative: _Fraction = None
    absolute: _Fraction = None


class _Tolerance(_Level):
    """The spec's tolerance: a level, levels per statistic, and the reason for a looser one."""

    stats: dict[Any, _Level] = Field(default_factory=dict)
    reason: Any = ""

    _stats = field_validator("stats", mode="before")(_mapping)

    @model_validator(mode="after")
    def _reason_for_loose(self) -> _Tolerance:
        levels = [self, *self.stats.values()]
        loose = any((level.relative or 0) > DEFAULT_RELATIVE_TOLERANCE for level in levels)
        loose |= any((level.absolute or 0) > 0 for level in levels)
        if loose and not str(self.reason).strip():
            raise PydanticCustomError(
                "reason", "a tolerance looser than the default needs a reason", {"key": "reason"}
            )
        return self


class _Spec(_Keys):
    """The top level of a spec. ``data``, ``model``, ``outcome`` and each comparison are checked
    in steps after it (what they accept depends on the data source and the model kind)."""

    name: Any
    question: StrictStr
    seed: Annotated[StrictInt, AfterValidator(_non_negative)]
    data: Any
    model: Any
    outcome: Any = None
    comparisons: list[Any] = Field(default_factory=list)
    population: dict[Any, Any] = Field(default_factory=dict)
    tolerance: _Tolerance | None = None
    figures: StrictBool = False
    notes: Any = None

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: Any) -> Any:
        if not isinstance(value, str) or not _NAME.match(value):
            raise PydanticCustomError(
                "name", "must be letters, digits, '_', '-' or '.' (a folder name)"
            )
        return value

    _population = field_validator("population", mode="before")(_mapping)

    @field_validator("comparisons", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        if value and not isinstance(value, list):
            raise PydanticCustomError("not_list", "must be a list of mappings")
        return value or []

    @field_validator("population")
    @classmethod
    def _ranges(cls, value: dict[Any, Any]) -> dict[Any, Any]:
        for column, rule in value.items():
            if isinstance(rule, Mapping):
                check_keys(rule, ["min", "max"], where=str(column))
        return value


#: groups of problems of the top level, in the order they are reported
_ORDER = ["name", "question", "seed", "comparisons", "population", "tolerance", "figures"]


class _Feeds(_Keys):
    feeds: Any

    @field_validator("feeds")
    @classmethod
    def _exist(cls, value: Any, info: ValidationInfo) -> Any:
        base: Path = (info.context or {})["base"]
        for f in value if isinstance(value, list) else [value]:
            if not isinstance(f, str) or not (base / f).exists():
                raise PydanticCustomError(
                    "no_file",
                    "{f}: no such file or folder (from {base})",
                    {"f": repr(f), "base": str(base)},
                )
        return value


class _Simulate(_Keys):
    simulate: Any
    seed: Annotated[StrictInt | None, _given("int_type")] = None
    options: Any = None

    @field_validator("simulate")
    @classmethod
    def _known(cls, value: Any) -> Any:
        if value not in ("trial", "registry"):
            raise PydanticCustomError("simulate", "must be 'trial' or 'registry'")
        return value

    @model_validator(mode="after")
    def _options(self) -> _Simulate:
        from outcomes.simulate.registry import simulate_registry
        from outcomes.simulate.trial import simulate_trial

        func = simulate_trial if self.simulate == "trial" else simulate_registry
        allowed = set(inspect.signature(func).parameters) - {"seed"}
        check_keys(self.options or {}, allowed, where="options")
        return self


class _Store(_Keys):
    store: Any
    snapshot: Any = None

    @field_validator("store")
    @classmethod
    def _exists(cls, value: Any, info: ValidationInfo) -> Any:
        base: Path = (info.context or {})["base"]
        if not isinstance(value, str) or not (base / value).is_file():
            raise PydanticCustomError(
                "no_store",
                "{store}: no such store (from {base})",
                {"store": repr(value), "base": str(base)},
            )
        return value

    @field_validator("snapshot")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise PydanticCustomError(
                "snapshot", "must be a snapshot number, got {got}", {"got": repr(value)}
            )
        return value

    @model_validator(mode="after")
    def _pinned(self) -> _Store:
        if self.snapshot is None:
            raise PydanticCustomError(
                "unpinned", "a store source must pin its snapshot", {"key": "snapshot"}
            )
        return self


#: shipped published data sets a ``published`` source can name (else a CSV path)
PUBLISHED_DATA = ("microneedling_network",)


class _Published(_Keys):
    published: Any

    @field_validator("published")
    @classmethod
    def _known(cls, value: Any, info: ValidationInfo) -> Any:
        base: Path = (info.context or {})["base"]
        if value in PUBLISHED_DATA:
            return value
        if not isinstance(value, str) or not value.endswith(".csv") or not (base / value).is_file():
            raise PydanticCustomError(
                "published",
                "must be a shipped data set ({names}) or a CSV file; {got}: no such file "
                "(from {base})",
                {"names": ", ".join(PUBLISHED_DATA), "got": repr(value), "base": str(base)},
            )
        return value


_SOURCES: dict[str, type[YamlModel]] = {
    "feeds": _Feeds,
    "simulate": _Simulate,
    "store": _Store,
    "published": _Published,
}
#: the model kinds that read published study-level data (and only those read it)
_PUBLISHED_KINDS = ("network_meta",)


def _keys_model(name: str, required: Sequence[str], optional: Sequence[str]) -> type[YamlModel]:
    """A model that checks keys only (values are checked where they are used)."""
    fields: dict[str, Any] = {key: (Any, ...) for key in required}
    fields |= {key: (Any, None) for key in optional}
    return create_model(name, __base__=_Keys, **fields)


def _one_of(options: Sequence[str]) -> AfterValidator:
    """A field check: the value is one of ``options`` (``None`` passes: the default applies)."""

    def check(value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is not None and v not in options:
                raise PydanticCustomError(
                    "one_of",
                    "must be one of {options}, got {got}",
                    {"options": ", ".join(map(repr, options)), "got": repr(v)},
                )
        return value

    return AfterValidator(check)


def _level(value: float | None) -> float | None:
    if value is not None and not 0 < value < 1:
        raise PydanticCustomError("range", "must lie strictly between 0 and 1")
    return value


_Level01 = Annotated[StrictFloat | None, AfterValidator(_level)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _names(value: Any) -> Any:
    if value is not None and not (
        isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    ):
        raise PydanticCustomError(
            "names", "must be a column name or a list of them, got {got}", {"got": repr(value)}
        )
    return value


def _scalar(value: Any) -> Any:
    if value is not None and not (isinstance(value, str) or _is_number(value)):
        raise PydanticCustomError(
            "scalar", "must be a level (text or a number), got {got}", {"got": repr(value)}
        )
    return value


def _scalars(value: Any) -> Any:
    if value is not None:
        if not isinstance(value, list):
            raise PydanticCustomError(
                "list_type", "must be a list, got {got}", {"got": repr(value)}
            )
        for v in value:
            _scalar(v)
    return value


_Names = Annotated[Any, BeforeValidator(_names)]
_Scalar = Annotated[Any, BeforeValidator(_scalar)]


class _MmrmModel(_Keys):
    """``kind: mmrm`` (:func:`outcomes.mmrm`); ``design: split_body`` stands for
    ``subject: unit_id, nested_in: subject_id``."""

    kind: StrictStr
    formula: StrictStr
    visit: StrictStr
    subject: StrictStr | None = None
    design: Annotated[StrictStr | None, _one_of(["split_body"])] = None
    cov: Annotated[StrictStr | None, _one_of(MMRM_STRUCTURES)] = None
    cov_by: StrictStr | None = None
    nested_in: StrictStr | None = None
    reml: StrictBool | None = None
    ddf: Annotated[StrictStr | None, _one_of(MMRM_DDF)] = None
    vcov: Annotated[StrictStr | None, _one_of(["model", "empirical"])] = None
    visit_order: Annotated[Any, BeforeValidator(_scalars)] = None
    fallback: Annotated[list[StrictStr] | None, _one_of(MMRM_STRUCTURES)] = None
    level: _Level01 = None

    @model_validator(mode="after")
    def _subject(self) -> _MmrmModel:
        if self.design is not None and (self.subject or self.nested_in):
            raise PydanticCustomError(
                "design",
                "design: split_body sets subject and nested_in; give one or the other",
                {"key": "design"},
            )
        if self.design is None and self.subject is None:
            raise PydanticCustomError("missing", "missing required key", {"key": "subject"})
        return self


class _MeansComparison(_Keys):
    """A comparison of marginal means through the model's ``.contrasts`` (and ``.emmeans``)."""

    specs: StrictStr
    by: _Names = None
    at: dict[StrictStr, Any] | None = None
    ref: _Scalar = None
    method: Annotated[StrictStr | None, _one_of(["trt.vs.ctrl", "pairwise", "revpairwise"])] = None
    adjust: StrictStr | None = None


def _correlation(value: Any) -> Any:
    """``r``: a correlation, or a list of them (one fit per value)."""
    for v in value if isinstance(value, list) else [value]:
        if v is None and not isinstance(value, list):
            continue
        if not _is_number(v):
            raise PydanticCustomError(
                "correlation", "must be a number or a list of numbers, got {got}", {"got": repr(v)}
            )
        if not -1 < v < 1:
            raise PydanticCustomError(
                "range", "must lie strictly between -1 and 1, got {v}", {"v": v}
            )
    return value


class _NetworkModel(_Keys):
    """``kind: network_meta`` (:func:`outcomes.network_meta`, :func:`outcomes.component_meta`)."""

    kind: StrictStr
    measure: Annotated[StrictStr, _one_of(NETWORK_MEASURES)]
    reference: StrictStr | None = None
    method_tau: Annotated[StrictStr | None, _one_of(TAU_METHODS)] = None
    r: Annotated[Any, BeforeValidator(_correlation)] = None
    small_values: Annotated[StrictStr | None, _one_of(["desirable", "undesirable"])] = None
    components: StrictBool | None = None
    inactive: StrictStr | None = None
    netsplit: Annotated[StrictStr | None, _one_of(SPLIT_METHODS)] = None
    level: _Level01 = None


class _NetworkOutcome(_Keys):
    network: StrictStr


def _positive(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise PydanticCustomError("range", "must be >= 1")
    return value


class _RandomIntercepts(_Keys):
    """What ``kind: clmm`` and ``kind: glmm`` share: the formula, the random intercepts
    (``groups``, ``nested`` or ``design`` as ``lmm``), the quadrature and the level."""

    kind: StrictStr
    formula: StrictStr
    groups: StrictStr | None = None
    nested: _Names = None
    design: Annotated[
        StrictStr | None, _one_of(["split_body", "parallel", "single_arm", "observational"])
    ] = None
    nagq: Annotated[StrictInt | None, AfterValidator(_positive)] = None
    level: _Level01 = None

    @model_validator(mode="after")
    def _structure(self) -> _RandomIntercepts:
        if self.groups is None and self.design is None:
            raise PydanticCustomError(
                "groups", "missing required key (or give design)", {"key": "groups"}
            )
        return self


class _ClmmModel(_RandomIntercepts):
    """``kind: clmm`` (:func:`outcomes.clmm`)."""

    link: Annotated[StrictStr | None, _one_of(CLMM_LINKS)] = None
    levels: Annotated[Any, BeforeValidator(_scalars)] = None


class _GlmmModel(_RandomIntercepts):
    """``kind: glmm`` (:func:`outcomes.glmm`)."""

    family: Annotated[StrictStr | None, _one_of(GLMM_FAMILIES)] = None
    link: Annotated[StrictStr | None, _one_of([*BINOMIAL_LINKS, "log"])] = None
    trials: StrictStr | None = None
    offset: StrictStr | None = None


class _Responder(_Keys):
    """A 0/1 ``responder`` column from a column of the analysis dataset and its bounds."""

    column: StrictStr
    min: StrictInt | StrictFloat | None = None
    max: StrictInt | StrictFloat | None = None

    @model_validator(mode="after")
    def _bound(self) -> _Responder:
        if self.min is None and self.max is None:
            raise PydanticCustomError("bounds", "give min, max or both", {"key": "min"})
        return self


class _GlmmOutcome(_Keys):
    instrument: StrictStr
    rater_role: StrictStr | None = None
    responder: _Responder | None = None


@dataclass(frozen=True)
class _Kind:
    """What one model kind accepts: its ``model``, its ``outcome`` (given or not, as
    ``outcome_required`` says) and each comparison."""

    model: type[YamlModel]
    outcome: type[YamlModel]
    outcome_required: bool
    comparison: type[YamlModel]


_NO_COMPARISON = _keys_model("NoComparison", [], [])

#: Model kinds of declared analyses and the keys each accepts.
MODEL_KINDS: dict[str, _Kind] = {
    "lmm": _Kind(
        _keys_model(
            "LmmModel",
            ["kind", "formula"],
            ["design", "groups", "nested", "re_formula", "reml", "engine", "level"],
        ),
        _keys_model("LmmOutcome", ["instrument"], ["rater_role"]),
        True,
        _keys_model("LmmComparison", ["specs"], ["at", "by", "ref", "method", "adjust"]),
    ),
    "time_to_result": _Kind(
        _keys_model("TimeToResultModel", ["kind", "by"], ["times", "conf_level"]),
        _keys_model("TimeToResultOutcome", ["endpoint"], ["retreatment_gap"]),
        True,
        _keys_model("TimeToResultComparison", ["test"], ["formula", "cluster", "strata", "ties"]),
    ),
    "comparison": _Kind(
        _keys_model(
            "ComparisonModel",
            ["kind"],
            [
                "reference",
                "primary_day",
                "window",
                "responder_threshold",
                "estimand",
                "ps_model",
                "trim",
                "ae_outcomes",
                "published",
                "level",
            ],
        ),
        _keys_model("NoOutcome", [], []),
        False,
        _NO_COMPARISON,
    ),
    "mmrm": _Kind(
        _MmrmModel,
        _keys_model("MmrmOutcome", ["instrument"], ["rater_role"]),
        True,
        _MeansComparison,
    ),
    "network_meta": _Kind(_NetworkModel, _NetworkOutcome, False, _NO_COMPARISON),
    "clmm": _Kind(
        _ClmmModel,
        _keys_model("ClmmOutcome", ["instrument"], ["rater_role"]),
        True,
        _MeansComparison,
    ),
    "glmm": _Kind(_GlmmModel, _GlmmOutcome, True, _MeansComparison),
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
    """The error ``"<path>: key '<key>': <message>"`` of a spec (also for run-time checks)."""
    return fail(path, key, message)


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
    # the top level's keys, then its values in _ORDER (a mapping's keys before its values),
    # with data, model, outcome and comparison items checked in steps in between
    found = problems(_Spec, content)
    if found and found[0].loc == ():
        raise fail(path, found[0].key, found[0].message)
    found.sort(key=lambda p: (_ORDER.index(str(p.loc[0])), p.type not in SHAPE_ERRORS))

    def report(groups: set[str]) -> None:
        for p in found:
            if p.loc[0] in groups:
                raise fail(path, p.key, p.message)

    report({"name", "question", "seed"})
    _validate_data(path, content["data"])
    model = content["model"]
    if not isinstance(model, Mapping) or "kind" not in model:
        raise fail(path, "model.kind", "missing required key")
    kind = model["kind"]
    if not isinstance(kind, str) or kind not in MODEL_KINDS:  # (a mapping is unhashable)
        raise fail(
            path, "model.kind", f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}"
        )
    if ("published" in content["data"]) != (kind in _PUBLISHED_KINDS):
        raise fail(
            path,
            "data",
            f"model kind {kind!r} "
            + (
                "reads published study-level data: give data: {published: ...}"
                if kind in _PUBLISHED_KINDS
                else "reads trial or registry tables: give feeds, simulate or store"
            ),
        )
    k = MODEL_KINDS[kind]
    validate(k.model, model, path, "model")
    if k.outcome_required or "outcome" in content:
        if "outcome" not in content:
            raise fail(path, "outcome", f"missing required key (model kind {kind!r})")
        validate(k.outcome, content["outcome"], path, "outcome")
    report({"comparisons"})
    for i, comp in enumerate(content.get("comparisons") or []):
        validate(k.comparison, comp, path, f"comparisons[{i}]")
    report(set(_ORDER))
    return AnalysisSpec(path=path, content=content, sha256=hashlib.sha256(raw).hexdigest())


def _validate_data(path: Path, data: Any) -> None:
    if not isinstance(data, Mapping):
        raise fail(path, "data", f"must be a mapping with one of {', '.join(_SOURCES)}")
    sources = [s for s in _SOURCES if s in data]
    if len(sources) != 1:
        raise fail(path, "data", f"give exactly one of {', '.join(_SOURCES)}")
    validate(_SOURCES[sources[0]], data, path, "data", {"base": path.parent})


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
