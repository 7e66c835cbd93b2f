"""REDCap's Data Dictionary CSV: each field's form, type, choices and identifier flag.

REDCap exports its project's Data Dictionary as a CSV with the columns "Variable / Field Name",
"Form Name", "Field Type", "Field Label", "Choices, Calculations, OR Slider Labels", "Text
Validation Type OR Show Slider Number" and "Identifier?" (among others). Coded fields (radio,
dropdown, checkbox) hold their choices as ``1, MN | 2, MN+PRP``; yes/no and true/false fields
are coded 1/0. A mapping's ``decode:`` turns codes into these labels; ``outcomes map draft``
reads the forms to guess row filters and tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from outcomes.errors import InputError

__all__ = ["RedcapDictionary", "RedcapField", "parse_choices", "read_redcap_dictionary"]

#: REDCap's columns that this reader uses, by the start of their (lower-case) header; the
#: starts are short because REDCap versions spell them differently ("Choices, Calculations, OR
#: Slider Labels", "Choices OR Calculations"; "Identifier?", "Identifier")
HEADERS = {
    "name": "variable / field name",
    "form": "form name",
    "type": "field type",
    "label": "field label",
    "choices": "choices",
    "validation": "text validation type",
    "identifier": "identifier",
}
CODED_TYPES = ("radio", "dropdown", "checkbox")
FIXED_CHOICES = {
    "yesno": {"1": "Yes", "0": "No"},
    "truefalse": {"1": "True", "0": "False"},
}
#: columns REDCap adds to a records export besides the project's fields
SYSTEM_COLUMNS = (
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "redcap_data_access_group",
    "redcap_survey_identifier",
)


@dataclass(frozen=True)
class RedcapField:
    """One field of the Data Dictionary."""

    name: str
    form: str
    type: str
    label: str
    choices: dict[str, str] = field(default_factory=dict)
    validation: str = ""
    identifier: bool = False

    @property
    def is_date(self) -> bool:
        """Whether the field holds a date (text validated as a date or datetime)."""
        return self.type == "text" and self.validation.startswith(("date_", "datetime_"))


@dataclass(frozen=True)
class RedcapDictionary:
    """The fields of a REDCap project, by name, in the dictionary's order."""

    path: Path
    fields: dict[str, RedcapField]
    sha256: str

    def labels(self) -> dict[str, dict[str, str]]:
        """Column -> {code: label} for every coded field (checkbox fields excluded: REDCap
        exports one 0/1 column per choice, ``field___code``)."""
        return {
            name: f.choices for name, f in self.fields.items() if f.choices and f.type != "checkbox"
        }

    def forms(self) -> list[str]:
        """Form names in order of first appearance."""
        return list(dict.fromkeys(f.form for f in self.fields.values()))

    def field_of(self, column: str) -> RedcapField | None:
        """The field behind an export column (``x___2`` -> ``x``; ``form_complete`` -> None)."""
        return self.fields.get(column) or self.fields.get(column.split("___")[0])


def parse_choices(text: str, where: str = "") -> dict[str, str]:
    """``"1, MN | 2, MN+PRP"`` -> ``{"1": "MN", "2": "MN+PRP"}``."""
    out: dict[str, str] = {}
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        code, sep, label = part.partition(",")
        if not sep or not code.strip():
            raise InputError(
                f"{where}choice {part!r} is not 'code, label' (REDCap writes '1, MN | 2, MN+PRP')"
            )
        out[code.strip()] = label.strip()
    return out


def read_redcap_dictionary(path: Path) -> RedcapDictionary:
    """Read a REDCap Data Dictionary CSV (an InputError naming file and row if it is not one)."""
    from outcomes.data.readers import read_feed

    raw = read_feed(path)
    lower = {c.lower().strip(): c for c in raw.data.columns}
    cols = {}
    for key, start in HEADERS.items():
        found = [c for low, c in lower.items() if low.startswith(start)]
        if found:
            cols[key] = found[0]
    for key in ("name", "form", "type"):
        if key not in cols:
            raise InputError(
                f"{path}: not a REDCap Data Dictionary: no column {HEADERS[key]!r} "
                "(export it from REDCap: Project Setup > Data Dictionary > Download)"
            )
    fields: dict[str, RedcapField] = {}
    df = raw.data.fillna("")
    for i, rec in enumerate(df.to_dict("records")):
        row = raw.rows[i]
        name = str(rec[cols["name"]]).strip()
        if not name:
            raise InputError(f"{path}: row {row}: field name is empty")
        ftype = str(rec[cols["type"]]).strip().lower()
        text = str(rec.get(cols.get("choices", ""), "") or "")
        if ftype in CODED_TYPES:
            choices = parse_choices(text, f"{path}: row {row}: field {name}: ")
        else:
            choices = dict(FIXED_CHOICES.get(ftype, {}))
        fields[name] = RedcapField(
            name=name,
            form=str(rec[cols["form"]]).strip(),
            type=ftype,
            label=str(rec.get(cols.get("label", ""), "") or "").strip(),
            choices=choices,
            validation=str(rec.get(cols.get("validation", ""), "") or "").strip().lower(),
            identifier=str(rec.get(cols.get("identifier", ""), "") or "").strip().lower()
            in ("y", "yes", "1"),
        )
    return RedcapDictionary(path, fields, raw.sha256)
