"""Helpers of the mixed-model tests: read the R reference numbers here, map lme4 names to patsy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

R_DIR = Path(__file__).parent


def load_json(name: str) -> dict:
    """Reference numbers written by an R script in tests/r/mixed/."""
    return json.loads((R_DIR / name).read_text())


def load_csv(name: str) -> pd.DataFrame:
    """A data set from tests/r/mixed/."""
    return pd.read_csv(R_DIR / name)


def patsy_name(r_term: str, factors: dict[str, list[str]]) -> str:
    """lme4's coefficient name (``visitweek_04:armPRP``) as patsy's (``visit[T.week_04]:...``)."""
    parts = []
    for part in r_term.split(":"):
        if part == "(Intercept)":
            parts.append("Intercept")
            continue
        for factor, levels in factors.items():
            rest = part[len(factor) :]
            if part.startswith(factor) and rest in levels:
                parts.append(f"{factor}[T.{rest}]")
                break
        else:
            parts.append(part)
    return ":".join(parts)


def r_fixed(ref: dict, factors: dict[str, list[str]]) -> pd.DataFrame:
    """R's fixed-effects table indexed by patsy names."""
    fixed = pd.DataFrame(ref["fixed"])
    fixed["term"] = [patsy_name(t, factors) for t in fixed["term"]]
    return fixed.set_index("term")


def r_varcorr(ref: dict) -> dict[tuple[str, str, str], float]:
    """R's ``as.data.frame(VarCorr(fit))$vcov`` keyed by (group, var1, var2), patsy names.

    lme4 names the nested level ``side:patient`` (inner:outer); the toolkit names it
    ``patient:side`` (outer:inner).
    """
    out = {}
    vc = ref["varcorr"]
    for grp, v1, v2, value in zip(vc["grp"], vc["var1"], vc["var2"], vc["vcov"], strict=True):
        if grp == "side:patient":
            grp = "patient:side"
        v1 = "Intercept" if v1 == "(Intercept)" else (v1 or "")
        v2 = "Intercept" if v2 == "(Intercept)" else (v2 or "")
        out[(grp, v1, v2)] = value
    return out


def our_varcorr(fit) -> dict[tuple[str, str, str], float]:
    """The toolkit's variance components keyed like :func:`r_varcorr`."""
    vc = fit.variance_components
    return {
        (g, t or "", t2 or ""): v
        for g, t, t2, v in zip(vc["group"], vc["term"], vc["term2"], vc["variance"], strict=True)
    }


def assert_rel(actual, expected, rtol: float, what: str, atol: float = 0.0) -> None:
    """Relative closeness with a message naming the quantity."""
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=atol, err_msg=what
    )


def assert_coef(actual, expected, std_error, tol: float, what: str) -> None:
    """Coefficients on the scale of their uncertainty: ``|diff| <= tol * max(|beta|, SE)``.

    A relative tolerance alone is meaningless for a coefficient near zero, and an absolute one
    ignores the units; R's own SE sets the scale.
    """
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    scale = np.maximum(np.abs(expected), np.asarray(std_error, float))
    np.testing.assert_array_less(np.abs(actual - expected) / scale, tol, err_msg=what)
