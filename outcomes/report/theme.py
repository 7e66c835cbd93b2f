"""One figure look for every report: :func:`theme_outcomes` and fixed modality colours.

The palette is Okabe & Ito's colour-blind-safe set (Okabe M, Ito K. Color Universal Design,
2008), with one colour fixed per modality of the data dictionary's ``modality`` codelist, so
"MN+PRP" has the same colour in every figure of every report. Yellow, the weakest on white, goes
to the least common arm (vitamin C); the saline control is grey.

Examples
--------
>>> import pandas as pd
>>> from plotnine import aes, geom_line, ggplot
>>> df = pd.DataFrame({"week": [0, 4, 0, 4], "score": [3.1, 2.4, 3.0, 1.9],
...                    "modality": ["MN", "MN", "MN+PRP", "MN+PRP"]})
>>> p = (ggplot(df, aes("week", "score", colour="modality")) + geom_line()
...      + scale_colour_modality() + theme_outcomes())
"""

from __future__ import annotations

from typing import Any

from plotnine import (
    element_blank,
    element_line,
    element_rect,
    element_text,
    scale_colour_manual,
    scale_fill_manual,
    theme,
    theme_bw,
)

__all__ = ["MODALITY_COLOURS", "scale_colour_modality", "scale_fill_modality", "theme_outcomes"]

#: One Okabe-Ito colour per modality code (keys are the dictionary's ``modality`` codes).
MODALITY_COLOURS: dict[str, str] = {
    "MN": "#0072B2",  # blue
    "MN+PRP": "#D55E00",  # vermillion
    "MN+RF": "#009E73",  # bluish green
    "MN+laser": "#CC79A7",  # reddish purple
    "MN+TXA": "#E69F00",  # orange
    "MN+saline": "#999999",  # grey: the usual control
    "MN+vitC": "#F0E442",  # yellow
    "laser": "#56B4E9",  # sky blue
    "subcision": "#000000",  # black
}


def theme_outcomes(
    base_size: float = 11, figure_size: tuple[float, float] = (6.5, 4.0), dpi: int = 300
) -> theme:
    """Return the print-quality plotnine theme used by all reports.

    White background, light grey major grid only, black axes text at readable sizes, legend at
    the bottom without a box, and a figure size that fits a portrait page's text width.

    Parameters
    ----------
    base_size
        Base font size in points; titles and labels scale from it.
    figure_size
        Width and height in inches.
    dpi
        Resolution of the PNG a report gets (300 is print quality).

    Returns
    -------
    plotnine.theme
    """
    return theme_bw(base_size=base_size) + theme(
        figure_size=figure_size,
        dpi=dpi,
        plot_background=element_rect(fill="white", colour="white"),
        panel_background=element_rect(fill="white"),
        panel_border=element_rect(colour="#4d4d4d", size=0.6),
        panel_grid_major=element_line(colour="#e6e6e6", size=0.4),
        panel_grid_minor=element_blank(),
        axis_text=element_text(colour="black", size=base_size * 0.9),
        axis_title=element_text(size=base_size),
        strip_background=element_rect(fill="#f2f2f2", colour="#4d4d4d"),
        strip_text=element_text(size=base_size * 0.9),
        legend_position="bottom",
        legend_title=element_text(size=base_size * 0.9),
        legend_text=element_text(size=base_size * 0.9),
        legend_key=element_blank(),
        legend_background=element_blank(),
    )


def scale_colour_modality(**kwargs: Any) -> scale_colour_manual:
    """Colour scale with the fixed colour of each modality (keyword arguments go to plotnine)."""
    return scale_colour_manual(values=MODALITY_COLOURS, **kwargs)


def scale_fill_modality(**kwargs: Any) -> scale_fill_manual:
    """Fill scale with the fixed colour of each modality (keyword arguments go to plotnine)."""
    return scale_fill_manual(values=MODALITY_COLOURS, **kwargs)
