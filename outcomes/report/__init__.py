"""Reports: render ``.qmd`` files (with or without Quarto), the figure theme, journal tables.

See :mod:`outcomes.report.render` for the supported Quarto subset.
"""

from outcomes.report.qmd import RenderError
from outcomes.report.render import CapturedWarning, RenderResult, render
from outcomes.report.tables import JournalTable, format_ci, format_number, format_p, journal_table
from outcomes.report.theme import (
    MODALITY_COLOURS,
    scale_colour_modality,
    scale_fill_modality,
    theme_outcomes,
)

__all__ = [
    "MODALITY_COLOURS",
    "CapturedWarning",
    "JournalTable",
    "RenderError",
    "RenderResult",
    "format_ci",
    "format_number",
    "format_p",
    "journal_table",
    "render",
    "scale_colour_modality",
    "scale_fill_modality",
    "theme_outcomes",
]
