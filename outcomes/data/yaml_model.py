"""Check a YAML mapping against a pydantic model, with "file: key 'a.b': message" errors.

The toolkit's YAML files (the data dictionary, analysis specs) are described by pydantic models
derived from :class:`YamlModel`: unknown keys are refused and named, and the first problem is
raised as an :class:`~outcomes.errors.InputError` naming the file and the key. The models only
validate: the parsed YAML stays the record (no defaults are written back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from outcomes.errors import InputError

__all__ = ["Problem", "YamlModel", "check_keys", "fail", "key_path", "problems", "validate"]

M = TypeVar("M", bound=BaseModel)

#: pydantic error type -> the message shown (``{input!r}`` is the offending value).
MESSAGES = {
    "missing": "missing required key",
    "int_type": "must be a whole number, got {input!r}",
    "int_parsing": "must be a whole number, got {input!r}",
    "int_from_float": "must be a whole number, got {input!r}",
    "float_type": "must be a number, got {input!r}",
    "float_parsing": "must be a number, got {input!r}",
    "bool_type": "must be true or false, got {input!r}",
    "bool_parsing": "must be true or false, got {input!r}",
    "string_type": "must be text, got {input!r}",
    "list_type": "must be a list, got {input!r}",
    "tuple_type": "must be a list, got {input!r}",
    "dict_type": "must be a mapping, got {input!r}",
    "too_short": "must have at least {min_length} item(s), got {input!r}",
    "too_long": "must have at most {max_length} item(s), got {input!r}",
    "literal_error": "must be one of {expected}, got {input!r}",
}
#: error types about the keys of a mapping (a reader fixes those before the values)
SHAPE_ERRORS = frozenset({"unknown_key", "not_mapping", "missing"})


def check_keys(
    value: Any, allowed: Iterable[str], required: Iterable[str] = (), where: str = ""
) -> dict[Any, Any]:
    """``value`` as a dict whose keys are all ``allowed`` and include every ``required`` one.

    Raises ``PydanticCustomError`` naming the offending key (below ``where``) in its context:
    a value that is not a mapping, then an unknown key, then a missing one (alphabetically).
    """
    if not isinstance(value, Mapping):
        raise PydanticCustomError(
            "not_mapping",
            "must be a mapping, got {got}",
            {"got": type(value).__name__, **({"key": where} if where else {})},
        )
    allowed = sorted(allowed)
    for key in value:
        if key not in allowed:
            raise PydanticCustomError(
                "unknown_key",
                "unknown key; allowed here: {allowed}",
                {"key": _below(where, key), "allowed": ", ".join(allowed) or "none"},
            )
    for key in sorted(required):
        if key not in value:
            raise PydanticCustomError(
                "missing", "missing required key", {"key": _below(where, key)}
            )
    return dict(value)


def _below(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


class YamlModel(BaseModel):
    """A YAML mapping: unknown keys are an error naming the key and the keys allowed there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        check_keys(value, (f.alias or n for n, f in cls.model_fields.items()))
        return value


def key_path(loc: tuple[int | str, ...], ctx: dict[str, Any] | None = None) -> str:
    """``("tables", "units", "columns")`` -> ``"tables.units.columns"``; list items as ``[i]``."""
    out = ""
    for part in (*loc, *([ctx["key"]] if ctx and "key" in ctx else [])):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    template = MESSAGES.get(error["type"])
    if template is None:
        return str(error["msg"])
    ctx = dict(error.get("ctx") or {})
    try:
        return template.format(input=error.get("input"), **ctx)
    except KeyError:  # a pydantic version naming its context differently
        return str(error["msg"])


class Problem(NamedTuple):
    """One problem: the key in the file (``comparisons[0].specs``), the message, the pydantic
    error type and the location in the model (``()`` for the mapping itself)."""

    key: str
    message: str
    type: str
    loc: tuple[int | str, ...]


def problems(
    model: type[BaseModel], value: Any, prefix: str = "", context: Any = None
) -> list[Problem]:
    """Every problem of ``value`` as ``model``, in pydantic's order (empty if it is valid)."""
    try:
        model.model_validate(value, context=context)
    except ValidationError as exc:
        found = []
        for error in exc.errors(include_url=False):
            key = ".".join(k for k in (prefix, key_path(error["loc"], error.get("ctx"))) if k)
            found.append(Problem(key, _message(error), error["type"], tuple(error["loc"])))
        return found
    return []


def fail(path: str | Path, key: str, message: str) -> InputError:
    """``InputError("{path}: key '{key}': {message}")`` (``"{path}: {message}"`` without a key)."""
    where = f"key {key!r}: " if key else ""
    return InputError(f"{path}: {where}{message}")


def validate(
    model: type[M], value: Any, path: str | Path, prefix: str = "", context: Any = None
) -> M:
    """``model.model_validate(value)``; the first problem as ``InputError("{path}: key 'k': m")``.

    ``prefix`` is the key of ``value`` within the file (empty for the whole file); ``context``
    is passed to the validators (e.g. the folder that relative paths start from).
    """
    try:
        return model.model_validate(value, context=context)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        key = ".".join(k for k in (prefix, key_path(error["loc"], error.get("ctx"))) if k)
        raise fail(path, key, _message(error)) from None
