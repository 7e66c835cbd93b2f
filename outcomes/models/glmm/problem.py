"""From a DataFrame and a formula to a :class:`~.core.Design`: checks, dropped rows, groups.

Everything a user can get wrong is refused here with a message naming the column, the row (as
the DataFrame's index label) and the rule; rows with missing values in model variables are
dropped and counted, never silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import patsy

from outcomes.errors import InputError
from outcomes.models.glmm.core import Design
from outcomes.models.lmm.design import _check_columns, _formula_variables

__all__ = ["Spec", "build_design", "design_from", "ordinal_codes"]


@dataclass(frozen=True)
class Spec:
    """What was kept besides the arrays, for tables, grids and messages."""

    formula: str
    response: str
    groups: str
    nested: tuple[str, ...]
    design_info: Any
    frame: pd.DataFrame
    n_dropped: int
    dropped_rows: tuple[Any, ...]
    x_names: tuple[str, ...]
    group_levels: np.ndarray
    group_codes: np.ndarray
    nested_levels: np.ndarray | None = None
    nested_codes: np.ndarray | None = None
    nested_top: np.ndarray | None = None
    categories: tuple[Any, ...] = ()
    unobserved: tuple[Any, ...] = ()


def _first_bad(frame: pd.DataFrame, mask: np.ndarray) -> str:
    idx = frame.index[np.asarray(mask)]
    shown = ", ".join(map(str, idx[:5])) + (" ..." if len(idx) > 5 else "")
    return f"row(s) {shown}"


def ordinal_codes(
    values: pd.Series, column: str, levels: Sequence[Any] | None
) -> tuple[np.ndarray, tuple[Any, ...], tuple[Any, ...]]:
    """Codes ``0 .. J - 1`` of an ordered response, its categories and any declared but unseen.

    Ordered categoricals keep their order; integers (or integer-valued floats) are ordered
    numerically; other values (e.g. strings) need ``levels`` (lowest first). Categories never
    observed are left out (their thresholds are not estimable) and returned as ``unobserved``.
    """
    if levels is not None:
        order = list(levels)
        bad = ~values.isin(order)
        if bad.any():
            raise InputError(
                f"Column {column!r}: {_first_bad(values.to_frame(), bad.to_numpy())} hold values "
                f"{sorted(map(str, values[bad].unique()))[:5]} that are not among the declared "
                f"levels {order}."
            )
    elif isinstance(values.dtype, pd.CategoricalDtype):
        if not values.cat.ordered:
            raise InputError(
                f"Column {column!r} is an unordered categorical: make it ordered "
                "(pd.Categorical(..., ordered=True)) or pass levels= lowest first."
            )
        order = list(values.cat.categories)
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float)
        if np.any(numbers != np.round(numbers)):
            raise InputError(
                f"Column {column!r}: {_first_bad(values.to_frame(), numbers != np.round(numbers))} "
                "are not whole numbers; an ordinal grade must be integer-coded or ordered "
                "categories."
            )
        order = sorted(pd.unique(values.astype("int64")))
        values = values.astype("int64")
    else:
        raise InputError(
            f"Column {column!r} holds {values.dtype} values: an ordinal response must be "
            "integer-coded, an ordered categorical, or come with levels= (lowest first)."
        )
    observed = [lev for lev in order if (values == lev).any()]
    unobserved = tuple(lev for lev in order if lev not in observed)
    if len(observed) < 2:
        raise InputError(
            f"Column {column!r} has {len(observed)} observed categor"
            f"{'y' if len(observed) == 1 else 'ies'}: a cumulative-link model needs at least 2."
        )
    lookup = {lev: i for i, lev in enumerate(observed)}
    codes = np.array([lookup[v] for v in values], dtype=np.intp)
    return codes, tuple(observed), unobserved


def build_design(
    data: pd.DataFrame,
    formula: str,
    *,
    groups: str,
    nested: str | Sequence[str] | None,
    extra_columns: Sequence[str] = (),
    intercept: bool,
    what: str,
) -> tuple[pd.DataFrame, np.ndarray, Spec]:
    """Model frame (complete rows), fixed-effects design and the grouping codes.

    Returns
    -------
    frame, x, spec
        ``spec.group_levels`` and ``spec.nested_levels`` are filled; the caller adds the
        family and builds the :class:`~.core.Design` with :func:`design_from`.
    """
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"{what}() needs a pandas DataFrame, got {type(data).__name__}.")
    if not isinstance(formula, str) or "~" not in formula:
        raise InputError(f"The formula must look like 'y ~ x1 + x2', got {formula!r}.")
    nested_t: tuple[str, ...] = (
        () if nested is None else ((nested,) if isinstance(nested, str) else tuple(nested))
    )
    if len(nested_t) > 1:
        raise InputError(
            f"{what}() supports one nested level (e.g. side within patient); got {list(nested_t)}."
        )
    _check_columns(data, [groups, *nested_t, *extra_columns], "grouping or weights")
    lhs, rhs = formula.split("~", 1)
    responses = _formula_variables(lhs, list(data.columns))
    if len(responses) != 1 or lhs.strip() != responses[0]:
        raise InputError(
            f"The left side of {formula!r} must name one column of the data (got {lhs.strip()!r})."
        )
    response = responses[0]
    fixed_vars = _formula_variables(rhs, list(data.columns))
    used = list(dict.fromkeys([response, *fixed_vars, groups, *nested_t, *extra_columns]))
    complete = data[used].notna().all(axis=1)
    frame = data.loc[complete, used]
    dropped = tuple(data.index[~complete.to_numpy()])
    if len(frame) == 0:
        raise InputError(f"No complete rows: every row misses a value in {used}.")
    try:
        x_mat = patsy.dmatrix("~" + rhs, frame, return_type="dataframe", NA_action="raise")
    except patsy.PatsyError as exc:
        raise InputError(f"Cannot build the model from the formula: {exc}") from None
    x_names = list(x_mat.columns)
    x = x_mat.to_numpy(dtype=float)
    if not intercept:
        if "Intercept" not in x_names:
            raise InputError(
                f"The thresholds of {what}() take the place of the intercept: remove '-1' or "
                f"'0 +' from {formula!r}."
            )
        keep = [i for i, name in enumerate(x_names) if name != "Intercept"]
        x = x[:, keep]
        x_names = [x_names[i] for i in keep]
    if x.shape[1] and np.linalg.matrix_rank(x) < x.shape[1]:
        raise InputError(
            "The fixed-effects design is rank deficient (some terms are confounded, or a factor "
            "level or combination never occurs in the complete rows): simplify the formula."
        )
    codes, levels = pd.factorize(frame[groups], sort=True)
    if len(levels) < 2:
        raise InputError(f"The grouping column {groups!r} has fewer than 2 groups.")
    nested_kwargs: dict[str, Any] = {}
    if nested_t:
        keys = frame[groups].astype(str) + ":" + frame[nested_t[0]].astype(str)
        n_codes, nested_levels = pd.factorize(keys, sort=True)
        top = np.zeros(len(nested_levels), dtype=np.intp)
        top[n_codes] = codes
        nested_kwargs = {
            "nested_levels": np.asarray(nested_levels),
            "nested_codes": n_codes.astype(np.intp),
            "nested_top": top,
        }
    spec = Spec(
        formula=formula,
        response=response,
        groups=groups,
        nested=nested_t,
        design_info=x_mat.design_info,
        frame=frame,
        n_dropped=len(dropped),
        dropped_rows=dropped,
        x_names=tuple(x_names),
        group_levels=np.asarray(levels),
        group_codes=codes.astype(np.intp),
        **nested_kwargs,
    )
    return frame, x, spec


def design_from(spec: Spec, x: np.ndarray, family: Any, offset: np.ndarray) -> Design:
    """The :class:`~.core.Design` of a built problem."""
    return Design(
        x=x,
        offset=offset,
        group=spec.group_codes,
        n_group=len(spec.group_levels),
        family=family,
        nested=spec.nested_codes,
        n_nested=0 if spec.nested_levels is None else len(spec.nested_levels),
        nested_top=spec.nested_top,
    )
