"""Helpers of the GLMM tests: R's reference numbers (written by reference.R) and its data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

R_DIR = Path(__file__).parent
REF = json.loads((R_DIR / "glmm.json").read_text())


def load_csv(name: str) -> pd.DataFrame:
    """A data set from tests/r/glmm/."""
    return pd.read_csv(R_DIR / name)


def rel_diff(ours: object, theirs: object) -> float:
    """Largest relative difference (absolute below 1e-8 in magnitude)."""
    a = np.asarray(ours, dtype=float)
    b = np.asarray(theirs, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8)))


def patsy_term(r_term: str, factors: tuple[str, ...]) -> str:
    """R's coefficient name (``visitweek_08:armPRP``) as patsy's (``visit[T.week_08]:...``)."""
    parts = []
    for part in r_term.split(":"):
        if part == "(Intercept)":
            parts.append("Intercept")
            continue
        for factor in factors:
            if part.startswith(factor) and len(part) > len(factor):
                parts.append(f"{factor}[T.{part[len(factor) :]}]")
                break
        else:
            parts.append(part)
    return ":".join(parts)
