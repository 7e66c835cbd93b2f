"""Find the feed files named on the command line (files, or folders one level deep).

Reading a file is :mod:`outcomes.data.readers`; its mapping file (``<feed>.mapping.yaml``)
is :mod:`outcomes.data.mapping`.
"""

from __future__ import annotations

import re
from pathlib import Path

from outcomes.data.readers import FEED_SUFFIXES, SKIP_REASONS
from outcomes.errors import InputError

__all__ = ["FEED_SUFFIXES", "discover_feeds"]

MAPPING_SUFFIX = ".mapping.yaml"
# Files a feed folder may hold besides feeds, skipped without a word.
QUIET_NAMES = ("truth.json",)
_DICTIONARY_KEY = re.compile(r"^redcap_dictionary:\s*['\"]?([^'\"#]+?)['\"]?\s*(#.*)?$", re.M)


def _dictionaries(folder: Path) -> set[str]:
    """Names of the REDCap data dictionaries that the folder's mapping files point to."""
    names: set[str] = set()
    for m in folder.glob(f"*{MAPPING_SUFFIX}"):
        try:
            text = m.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            continue  # the mapping's own reading names the problem
        names.update(match.group(1) for match in _DICTIONARY_KEY.finditer(text))
    return names


def discover_feeds(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Feed files named by ``paths`` and a note for each file or folder skipped.

    Folders are searched one level deep; subfolders, mapping files, the REDCap data
    dictionaries that mappings name and files of other formats are not read as feeds, and each
    skipped entry (except mapping files and the simulator's ``truth.json``) is named with the
    reason.
    """
    found: list[Path] = []
    skipped: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            dictionaries = _dictionaries(p)
            for f in sorted(p.iterdir()):
                if f.name.endswith(MAPPING_SUFFIX) or f.name in QUIET_NAMES:
                    continue
                if f.name in dictionaries:
                    skipped.append(f"{f}: a REDCap data dictionary, read with its export's mapping")
                elif f.is_dir():
                    skipped.append(f"{f}: subfolder not searched (name it to ingest its feeds)")
                elif f.name.startswith("."):
                    skipped.append(f"{f}: hidden file not read")
                elif f.suffix.lower() in FEED_SUFFIXES:
                    found.append(f)
                else:
                    why = SKIP_REASONS.get(
                        f.suffix.lower(),
                        "not a feed format (CSV, .xlsx, Parquet, .sav, .dta, .sas7bdat, .xpt)",
                    )
                    skipped.append(f"{f}: {why}")
        elif p.is_file():
            found.append(p)
        elif p.exists():
            raise InputError(f"{p}: not a file or folder")
        else:
            raise InputError(f"{p}: no such file or folder")
    return found, skipped
