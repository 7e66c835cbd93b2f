"""Pydantic models for YAML files, with errors that name the file and the key.

A :class:`YamlModel` checks its keys first, as a person reads a mapping: an unknown key, then a
missing one (in alphabetical order). :func:`problems` turns pydantic's errors into
``(key, message)`` pairs worded as the rest of the toolkit words them ("must be a whole number,
got '1'"), and :func:`fail` makes the ``"<file>: key '<key>': <message>"`` error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from outcomes.errors import InputError

#: pydantic error type -> message; ``{input}`` is the offending value (repr), ``{type}`` its type
MESSAGES = {
    "int_type": "must be a whole number, got {input}",
    "float_type": "must be a number, got {input}",
    "bool_type": "must be true or false, got {input}",
    "string_type": "must be text, got {input}",
    "dict_type": "must be a mapping, got {type}",
    "list_type": "must be a list of mappings",
}
#: pydantic error types about the shape of a mapping (reported before its values)
SHAPE_ERRORS = frozenset({"unknown_key", "not_mapping", "missing", "dict_type"})


class Problem(NamedTuple):
    """One error: the dotted key (``comparisons[0].specs``), its message, its pydantic type and
    its location in the model (``()`` for the mapping itself)."""

    key: str
    message: str
    type: str
    loc: tuple[int | str, ...]


def check_keys(
    value: Any, allowed: Iterable[str], required: Iterable[str] = (), where: str = ""
) -> dict[Any, Any]:
    """``value`` as a dict whose keys are all ``allowed`` and include every ``required`` one.

    Raises ``PydanticCustomError`` naming the offending key (below ``where``) in its context.
    """
    if not isinstance(value, Mapping):
        raise PydanticCustomError(
            "not_mapping",
            "must be a mapping, got {got}",
            {"got": type(value).__name__, **({"key": where} if where else {})},
        )
    allowed = set(allowed)
    for key in value:
        if key not in allowed:
            raise PydanticCustomError(
                "unknown_key",
                "unknown key; allowed here: {allowed}",
                {"key": _below(where, key), "allowed": ", ".join(sorted(allowed)) or "none"},
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
    """A YAML mapping. Validation only: the parsed YAML stays the record (no defaults added)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        fields = cls.model_fields
        return check_keys(
            value, fields, [name for name, field in fields.items() if field.is_required()]
        )


def _key(loc: tuple[int | str, ...], context: Mapping[str, Any] | None, prefix: str) -> str:
    key = prefix
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    if context and "key" in context:
        key += f".{context['key']}" if key else str(context["key"])
    return key


def problems(
    model: type[YamlModel], value: Any, prefix: str = "", context: Any = None
) -> list[Problem]:
    """Every problem of ``value`` as ``model``: a mapping's shape before its values."""
    try:
        model.model_validate(value, context=context)
    except ValidationError as exc:
        found = []
        for err in exc.errors(include_url=False):
            template = MESSAGES.get(err["type"])
            message = (
                template.format(input=repr(err["input"]), type=type(err["input"]).__name__)
                if template
                else err["msg"]
            )
            key = _key(err["loc"], err.get("ctx"), prefix)
            found.append(Problem(key, message, err["type"], tuple(err["loc"])))
        return found
    return []


def fail(path: str | Path, key: str, message: str) -> InputError:
    """The error ``"<path>: key '<key>': <message>"`` (or ``"<path>: <message>"``)."""
    where = f"{path}: key {key!r}" if key else str(path)
    return InputError(f"{where}: {message}")


def validate(
    model: type[YamlModel], value: Any, path: str | Path, prefix: str = "", context: Any = None
) -> None:
    """Raise :func:`fail` for the first problem of ``value`` as ``model``, if any."""
    found = problems(model, value, prefix, context)
    if found:
        first = min(found, key=lambda p: p.type not in SHAPE_ERRORS)
        raise fail(path, first.key, first.message)
