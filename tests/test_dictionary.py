"""The data dictionary loader: the shipped file loads, and a broken file is named key by key."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from outcomes.data.dictionary import load_dictionary
from outcomes.errors import InputError

SHIPPED = Path(__file__).resolve().parents[1] / "data_dictionary" / "dictionary.yaml"


def test_shipped_dictionary_loads_and_hashes_the_file_bytes() -> None:
    d = load_dictionary()
    data = resources.files("outcomes").joinpath("data/dictionary.yaml").read_bytes()
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert load_dictionary(SHIPPED).sha256 == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert d.table("units").columns["unit_id"].description == (
        "Treated-unit identifier, unique within the study."
    )


def _set(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(raw: dict[str, Any]) -> None:
        target = raw
        for k in keys[:-1]:
            target = target[k]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return edit


_DELETE = object()
UNIT_ID = ("tables", "units", "columns", "unit_id")
CASES = [
    (
        _set(*UNIT_ID, "codelist", value="nope"),
        "tables.units.columns.unit_id.codelist",
        "unknown codelist 'nope'",
    ),
    (
        _set(*UNIT_ID, "stray", value=None),
        "tables.units.columns.unit_id.stray",
        "unknown key; allowed here: codelist",
    ),
    (
        _set(*UNIT_ID, "required", value=_DELETE),
        "tables.units.columns.unit_id.required",
        "missing required key",
    ),
    (
        _set(*UNIT_ID, "required", value="yes"),
        "tables.units.columns.unit_id.required",
        "must be true or false, got 'yes'",
    ),
    (
        _set(*UNIT_ID, "type", value="text"),
        "tables.units.columns.unit_id.type",
        "must be one of 'string'",
    ),
    (
        _set("tables", "units", "primary_key", value=["nope"]),
        "tables.units.primary_key",
        "unknown column 'nope'",
    ),
    (
        _set("tables", "units", "foreign_keys", 0, "references", value="people"),
        "tables.units.foreign_keys[0].references",
        "unknown table 'people'",
    ),
    (
        _set("instruments", "gb_quant", "range", value=["low", 4]),
        "instruments.gb_quant.range[0]",
        "must be a number, got 'low'",
    ),
    (_set("version", value=_DELETE), "version", "missing required key"),
]


@pytest.mark.parametrize(("edit", "key", "message"), CASES)
def test_broken_dictionary_names_file_and_key(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], key: str, message: str
) -> None:
    raw = copy.deepcopy(yaml.safe_load(SHIPPED.read_bytes()))
    edit(raw)
    path = tmp_path / "dictionary.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError) as info:
        load_dictionary(path)
    assert str(info.value).startswith(f"{path}: key {key!r}: {message}")


def test_invalid_yaml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "dictionary.yaml"
    path.write_text("tables: [unclosed\n")
    with pytest.raises(InputError, match=r"dictionary\.yaml: not valid YAML"):
        load_dictionary(path)
