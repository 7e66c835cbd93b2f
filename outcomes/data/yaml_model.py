"""Check a YAML mapping against a pydantic model, with "file: key 'a.b': message" errors.

The toolkit's YAML files (the data dictionary, analysis specs) are described by pydantic models
derived from :class:`YamlModel`: unknown keys are refused and named, and the first problem is
raised as an :class:`~outcomes.errors.InputError` naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from outcomes.errors import InputError

__all__ = ["YamlModel", "check_keys", "key_path", "validate"]

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
    "too_short": "must have {expected} items, got {input!r}",
    "too_long": "must have {expected} items, got {input!r}",
    "literal_error": "must be one of {expected}, got {input!r}",
}


class YamlModel(BaseModel):
    """A YAML mapping: unknown keys are an error naming the key and the keys allowed there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        return check_keys(cls, value)


def check_keys(model: type[BaseModel], value: Any) -> Any:
    """``value`` if it is a mapping whose keys are all fields of ``model``; else the error."""
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "not_mapping", "must be a mapping, got {got}", {"got": type(value).__name__}
        )
    allowed = sorted(f.alias or n for n, f in model.model_fields.items())
    for key in value:
        if key not in allowed:
            raise PydanticCustomError(
                "unknown_key",
                "unknown key; allowed here: {allowed}",
                {"key": key, "allowed": ", ".join(allowed) or "none"},
            )
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
    return template.format(input=error.get("input"), **ctx)


def validate(model: type[M], value: Any, path: str | Path, prefix: str = "") -> M:
    """``model.model_validate(value)``; the first problem as ``InputError("{path}: key 'k': m")``.

    ``prefix`` is the key of ``value`` within the file (empty for the whole file).
    """
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        key = ".".join(k for k in (prefix, key_path(error["loc"], error.get("ctx"))) if k)
        where = f"key {key!r}: " if key else ""
        raise InputError(f"{path}: {where}{_message(error)}") from None
