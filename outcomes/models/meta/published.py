"""Example study-level data sets shipped with the package (``outcomes/data/published``)."""

from __future__ import annotations

import pandas as pd

from outcomes.errors import InputError

__all__ = ["published_data"]


def published_data(name: str) -> pd.DataFrame:
    """Load an example study-level data set shipped in ``outcomes/data/published``.

    Parameters
    ----------
    name
        ``"prp_acne_scars_response"`` (event counts) or ``"microneedling_continuous"`` (means,
        SDs, sizes). Rows with ``source_type == "illustrative"`` are invented reconstructions,
        not real studies: see the README in that folder.
    """
    from importlib import resources

    folder = resources.files("outcomes") / "data" / "published"
    available = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".csv"))
    if name not in available:
        raise InputError(f"No published example {name!r}; available: {', '.join(available)}.")
    with (folder / f"{name}.csv").open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)
