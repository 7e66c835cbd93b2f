"""From a DataFrame, a formula and the study design to an :class:`~.types.LmmProblem`."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import patsy

from outcomes.errors import InputError
from outcomes.models.lmm.types import LmmProblem, RandomTerm

__all__ = ["build_problem", "design_structure"]


_DESIGNS = ("parallel", "split_body", "single_arm", "observational")


# --------------------------------------------------------------------------------------------
# Design -> structure
# --------------------------------------------------------------------------------------------


def design_structure(
    design: str,
    *,
    subject: str = "subject_id",
    unit: str = "unit_id",
    site: str = "site_id",
) -> dict[str, Any]:
    """Default random-effects structure for a study design code (data dictionary ``design``).

    Parameters
    ----------
    design
        ``"split_body"``: sides (units) nested in subjects, ``groups=subject, nested=unit``.
        ``"parallel"`` or ``"single_arm"``: one unit per subject, ``groups=subject``.
        ``"observational"`` (registries): subjects nested in clinics,
        ``groups=site, nested=subject``.
    subject, unit, site
        Column names (the data dictionary's by default).

    Returns
    -------
    dict
        ``{"groups": ..., "nested": [...]}``, keyword arguments for :func:`lmm`.

    Examples
    --------
    >>> design_structure("split_body")
    {'groups': 'subject_id', 'nested': ['unit_id']}
    """
    if design == "split_body":
        return {"groups": subject, "nested": [unit]}
    if design in ("parallel", "single_arm"):
        return {"groups": subject, "nested": []}
    if design == "observational":
        return {"groups": site, "nested": [subject]}
    raise InputError(f"Unknown study design {design!r}; expected one of {', '.join(_DESIGNS)}.")


# --------------------------------------------------------------------------------------------
# Problem building
# --------------------------------------------------------------------------------------------


def _formula_variables(formula: str, columns: Sequence[str]) -> list[str]:
    """Data columns named in a patsy formula (in order of appearance)."""
    names: list[str] = []
    for side in formula.split("~"):
        text = side.strip()
        if not text:
            continue
        # Formula operators are Python operators too, so ast can find the names.
        try:
            tree = ast.parse(text.replace("|", "+"), mode="eval")
        except SyntaxError as exc:
            raise InputError(f"Cannot read the formula {formula!r}: {exc.msg}.") from None
        for node in ast.walk(tree):
            name: object = None
            if isinstance(node, ast.Name):
                name = node.id
            elif (  # Q("Global score"): patsy's quoting of a column name that is not a name
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Q"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                name = node.args[0].value
            if isinstance(name, str) and name in columns and name not in names:
                names.append(name)
    return names


def _check_columns(data: pd.DataFrame, names: Sequence[str], what: str) -> None:
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise InputError(
            f"The {what} names column(s) {', '.join(map(repr, missing))} not in the data; "
            f"available columns: {', '.join(map(str, data.columns))}."
        )


def _rank_deficient(x: np.ndarray) -> bool:
    """Whether ``x`` has fewer than full column rank, as ``numpy.linalg.matrix_rank``.

    The eigenvalues of ``X'X`` settle the clear case (singular values within a factor 1e5 of
    each other, far above matrix_rank's tolerance) at a fraction of the cost of an SVD of the
    long matrix; only a doubtful design is decided by the SVD.
    """
    eig = np.linalg.eigvalsh(x.T @ x)
    if eig[-1] > 0 and eig[0] > 1e-10 * eig[-1]:
        return False
    return bool(np.linalg.matrix_rank(x) < x.shape[1])


def _design_matrices(frame: pd.DataFrame, formula: str, re_formula: str) -> tuple[Any, Any, Any]:
    """Patsy's response, fixed-effects and random-effects matrices of a frame without NAs.

    Numeric columns that the formulas use as they are (``time``, not ``C(time)`` or
    ``np.log(time)``) go to patsy as NumPy arrays, which it evaluates several times faster than
    pandas Series; every other column stays a Series, so that patsy keeps its levels, their
    order and their labels. The frame has no missing values, so patsy need not look for them;
    values a formula makes non-finite (log(0), 1/0) are found by the caller.
    """
    descs = [patsy.ModelDesc.from_formula(f) for f in (formula, re_formula)]
    codes = {
        factor.code
        for desc in descs
        for term in [*desc.lhs_termlist, *desc.rhs_termlist]
        for factor in term.factors
    }
    inside = set(
        _formula_variables(" + ".join(c for c in codes if c not in frame), list(frame.columns))
    )
    columns = {
        name: values.to_numpy()
        if name in codes
        and name not in inside
        and isinstance(values.dtype, np.dtype)
        and values.dtype.kind in "fiu"
        else values
        for name, values in frame.items()
    }
    none_missing = patsy.NAAction(on_NA="raise", NA_types=[])
    y_mat, x_mat = patsy.dmatrices(descs[0], columns, NA_action=none_missing)
    # Patsy counts rows from a DataFrame or from a factor: "~1" has no factor.
    has_factor = any(term.factors for term in descs[1].rhs_termlist)
    z_mat = patsy.dmatrix(descs[1], columns if has_factor else frame, NA_action=none_missing)
    return y_mat, x_mat, z_mat


def _joined_codes(frame: pd.DataFrame, path: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Codes and labels (``"clinic:patient"``, sorted as text) of combinations of ``path``.

    Each column is factorised once and only the distinct combinations are turned into text,
    so long data cost no string operations per row.
    """
    parts = []
    for name in path:
        codes, uniques = pd.factorize(frame[name])
        text_codes, text = pd.factorize(np.asarray(uniques).astype(str))
        parts.append((text_codes[codes], np.asarray(text, dtype=object)))
    combined = np.column_stack([codes for codes, _ in parts])
    combos, codes = np.unique(combined, axis=0, return_inverse=True)
    text = np.array(
        ["\x1f".join(str(t[c]) for c, (_, t) in zip(row, parts, strict=True)) for row in combos],
        dtype=object,
    )
    order = np.argsort(text, kind="stable")
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    levels = np.array([t.replace("\x1f", ":") for t in text[order]], dtype=object)
    return rank[codes.reshape(-1)].astype(np.intp), levels


@dataclass(frozen=True)
class _Spec:
    """What :func:`build_problem` kept besides the arrays (for marginal means and tables)."""

    formula: str
    groups: str
    nested: tuple[str, ...]
    re_formula: str
    design_info: Any
    frame: pd.DataFrame
    n_dropped: int
    response: str


def build_problem(
    data: pd.DataFrame,
    formula: str,
    *,
    groups: str,
    re_formula: str = "~1",
    nested: Sequence[str] = (),
    reml: bool = True,
) -> tuple[LmmProblem, _Spec]:
    """Turn a DataFrame and formulas into an :class:`LmmProblem` (rows with missing values dropped).

    Raises
    ------
    InputError
        Unknown columns, a formula patsy cannot read, a non-numeric response, or too few rows
        or groups to fit.
    """
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"lmm() needs a pandas DataFrame, got {type(data).__name__}.")
    if not isinstance(formula, str) or "~" not in formula:
        raise InputError(f"The formula must look like 'y ~ x1 + x2', got {formula!r}.")
    if not re_formula.strip().startswith("~"):
        re_formula = "~" + re_formula
    nested = tuple(nested)
    _check_columns(data, [groups, *nested], "grouping")
    fixed_vars = _formula_variables(formula, list(data.columns))
    re_vars = _formula_variables(re_formula, list(data.columns))
    lhs = formula.split("~")[0].strip()
    responses = _formula_variables(lhs, list(data.columns))
    if len(responses) != 1:
        raise InputError(f"The response {lhs!r} must name one column of the data.")
    response = responses[0]
    used = list(dict.fromkeys([*fixed_vars, *re_vars, groups, *nested]))
    missing = np.zeros(len(data), dtype=bool)
    for name in used:
        missing |= data[name].isna().to_numpy()
    frame = data.loc[~missing, used] if missing.any() else data[used]
    n_dropped = int(missing.sum())
    if not pd.api.types.is_numeric_dtype(frame[response]) or pd.api.types.is_bool_dtype(
        frame[response]
    ):
        raise InputError(
            f"The response {response!r} must be numeric for a linear mixed model "
            f"(got {frame[response].dtype}); use gee() for binary or ordinal outcomes."
        )
    labels = frame.index  # the data's row labels, for messages
    frame = frame.reset_index(drop=True)
    try:
        y_mat, x_mat, z_mat = _design_matrices(frame, formula, re_formula)
    except patsy.PatsyError as exc:
        raise InputError(f"Cannot build the model from the formula: {exc}") from None
    for mat, which in ((y_mat, formula), (x_mat, formula), (z_mat, re_formula)):
        bad = ~np.isfinite(mat)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            names = [
                n for n, b in zip(mat.design_info.column_names, bad.any(axis=0), strict=True) if b
            ]
            raise InputError(
                f"The formula {which!r} gives missing or infinite values in column(s) "
                f"{', '.join(map(repr, names))} in {len(rows)} row(s) "
                f"(data index {', '.join(map(str, labels[rows[:5]]))}"
                f"{', ...' if len(rows) > 5 else ''}); check transformations such as log() of "
                "zero or negative values."
            )
    top_codes, top_levels = pd.factorize(frame[groups], sort=True)
    terms = [
        RandomTerm(
            group=groups,
            codes=top_codes.astype(np.intp),
            levels=np.asarray(top_levels),
            z=np.asarray(z_mat, dtype=float),
            z_names=tuple(z_mat.design_info.column_names),
        )
    ]
    path = [groups]
    for name in nested:
        path.append(name)
        codes, levels = _joined_codes(frame, path)
        terms.append(
            RandomTerm(
                group=":".join(path),
                codes=codes,
                levels=levels,
                z=np.ones((len(frame), 1)),
                z_names=("Intercept",),
            )
        )
    x = np.asarray(x_mat, dtype=float)
    n, p = x.shape
    if terms[0].n_groups < 2:
        raise InputError(f"The grouping column {groups!r} has fewer than 2 groups.")
    if n <= p + 1:
        raise InputError(f"Only {n} complete rows for {p} fixed effects: too few to fit.")
    if _rank_deficient(x):
        raise InputError(
            "The fixed-effects design is rank deficient (some terms are confounded or a level "
            "never occurs): simplify the formula."
        )
    problem = LmmProblem(
        y=np.asarray(y_mat, dtype=float)[:, 0],
        x=x,
        x_names=tuple(x_mat.design_info.column_names),
        terms=tuple(terms),
        reml=reml,
    )
    spec = _Spec(
        formula=formula,
        groups=groups,
        nested=nested,
        re_formula=re_formula,
        design_info=x_mat.design_info,
        frame=frame,
        n_dropped=n_dropped,
        response=response,
    )
    return problem, spec
