"""From a long DataFrame to the arrays of an MMRM: checks, visit order, design, aliasing.

Every refusal names the rows and columns concerned and the rule broken; rows dropped for a
missing outcome or covariate are counted and said in the result (the likelihood uses every
observed visit of a subject; nothing is imputed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import patsy

from outcomes.errors import InputError

__all__ = ["MmrmData", "order_visits", "prepare"]

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def order_visits(values: pd.Series, visit_order: Sequence[Any] | None) -> tuple[list[Any], str]:
    """The ordered visit levels and a sentence saying how the order was chosen.

    Order: ``visit_order`` when given; else the categories of an ordered categorical; else
    numeric values ascending; else labels ordered by the one number each contains
    (``"Week 4"`` < ``"Week 12"``, ``"month_3"`` < ``"month_10"``). Labels that do not each
    contain exactly one distinct number need ``visit_order``.
    """
    name = values.name
    present = pd.unique(values.dropna())
    if visit_order is not None:
        order = list(visit_order)
        if len(set(order)) != len(order):
            raise InputError(f"visit_order lists a visit twice: {order}.")
        unknown = values.notna() & ~values.isin(order)
        if unknown.any():
            rows = list(values.index[unknown][:5])
            raise InputError(
                f"Column {name!r}: value(s) {sorted(set(values[unknown].astype(str)))[:5]} at "
                f"row(s) {rows} are not in visit_order {order}."
            )
        return [v for v in order if v in set(present)], "as given in visit_order"
    if isinstance(values.dtype, pd.CategoricalDtype) and values.cat.ordered:
        return [c for c in values.cat.categories if c in set(present)], (
            "by the order of the categorical's categories"
        )
    if pd.api.types.is_numeric_dtype(values):
        return sorted(present), "by numeric value"
    numbers = {}
    for label in present:
        found = _NUMBER.findall(str(label))
        if len(found) != 1:
            raise InputError(
                f"Column {name!r}: cannot order the visit {label!r} (it contains "
                f"{len(found)} numbers); pass visit_order=[...] with every visit in order."
            )
        numbers[label] = float(found[0])
    if len(set(numbers.values())) != len(numbers):
        raise InputError(
            f"Column {name!r}: visit labels {sorted(map(str, present))} share numbers, so "
            "their order is ambiguous; pass visit_order=[...]."
        )
    return sorted(present, key=lambda lab: numbers[lab]), (
        "by the number in each label (e.g. 'Week 4' before 'Week 12')"
    )


@dataclass(frozen=True)
class MmrmData:
    """Arrays and bookkeeping of one MMRM.

    Attributes
    ----------
    y, x
        Outcome and the full-rank fixed-effects design (aliased columns removed).
    names, kept
        All design column names and which are kept (``kept[j]`` is False when aliased).
    null_basis
        Basis of the null space of the full design, ``(p_full, p_full - rank)``: a linear
        function ``L`` is estimable when ``L @ null_basis == 0``.
    block, unit, visit, group
        Integer codes per row: independent block (subject, or patient when nested), unit slot
        within the block, visit index, covariance group.
    visit_levels, group_levels
        Labels of the codes.
    frame
        The rows used (for marginal means), visit as an ordered categorical.
    design_info
        patsy's design info of the fixed effects.
    n_dropped
        Rows dropped for a missing outcome or covariate.
    visit_order_rule
        How the visit order was chosen.
    """

    y: np.ndarray
    x: np.ndarray
    names: tuple[str, ...]
    kept: np.ndarray
    null_basis: np.ndarray
    block: np.ndarray
    unit: np.ndarray
    visit: np.ndarray
    group: np.ndarray
    visit_levels: list[Any]
    group_levels: list[Any]
    block_levels: np.ndarray
    frame: pd.DataFrame
    design_info: Any
    n_dropped: int
    visit_order_rule: str


def _check_ties(frame: pd.DataFrame, keys: list[str], visit: str) -> None:
    dup = frame.duplicated(subset=[*keys, visit], keep=False)
    if dup.any():
        first = frame[dup].groupby([*keys, visit], sort=False, observed=True)
        msgs = []
        for key, sub in list(first)[:5]:
            msgs.append(
                f"rows {list(sub.index)} share {dict(zip([*keys, visit], key, strict=True))}"
            )
        raise InputError(
            f"Each subject may have one row per visit (column {visit!r}); "
            + "; ".join(msgs)
            + ". Average or choose one row per visit before fitting."
        )


def prepare(
    data: pd.DataFrame,
    formula: str,
    subject: str,
    visit: str,
    nested_in: str | None,
    cov_by: str | None,
    visit_order: Sequence[Any] | None,
) -> MmrmData:
    """Check the data and build the arrays (see :class:`MmrmData`)."""
    if not isinstance(data, pd.DataFrame):
        raise InputError("data must be a pandas DataFrame in long format (one row per visit).")
    if "~" not in formula:
        raise InputError(f"formula {formula!r} needs an outcome: 'outcome ~ terms'.")
    outcome, rhs = (part.strip() for part in formula.split("~", 1))
    needed = [outcome, subject, visit, *(c for c in (nested_in, cov_by) if c)]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise InputError(
            f"Column(s) {missing} not found in the data (columns: {list(data.columns)})."
        )
    frame = data.copy()
    levels, rule = order_visits(frame[visit], visit_order)
    keys = [nested_in, subject] if nested_in else [subject]
    _check_ties(frame.dropna(subset=[visit]), keys, visit)
    frame[visit] = pd.Categorical(frame[visit], categories=levels, ordered=False)
    # text columns of the formula as categoricals: same levels (sorted), and patsy builds the
    # design several times faster from them
    named = set(_NAME.findall(rhs))
    for col in frame.columns:
        if col in named and col != visit and pd.api.types.is_object_dtype(frame[col]):
            frame[col] = frame[col].astype("category")
    try:
        y_mat, x_mat = patsy.dmatrices(
            f"{outcome} ~ {rhs}", frame, return_type="dataframe", NA_action="drop"
        )
    except patsy.PatsyError as exc:
        raise InputError(f"formula {formula!r} cannot be built from the data: {exc}") from exc
    used = frame.loc[x_mat.index]
    for col in keys + ([cov_by] if cov_by else []) + [visit]:
        if used[col].isna().any():
            rows = list(used.index[used[col].isna()][:5])
            raise InputError(f"Column {col!r} is missing at row(s) {rows}.")
    n_dropped = len(frame) - len(used)
    x_full = x_mat.to_numpy(dtype=float)
    names = tuple(x_mat.columns)
    kept, null_basis = _aliasing(x_full)
    if nested_in:
        block_codes, block_levels = pd.factorize(used[nested_in])
        per_unit = used.groupby(subject, observed=True)[nested_in].nunique()
        if (per_unit > 1).any():
            bad = list(per_unit.index[per_unit > 1][:5])
            raise InputError(
                f"Unit(s) {bad} of column {subject!r} appear under more than one "
                f"{nested_in!r}; each unit (side) must belong to one patient."
            )
        unit_codes = (
            used.groupby(nested_in, observed=True, sort=False)[subject]
            .transform(lambda s: pd.factorize(s)[0])
            .to_numpy()
        )
    else:
        block_codes, block_levels = pd.factorize(used[subject])
        unit_codes = np.zeros(len(used), dtype=int)
    if cov_by:
        group_codes, group_levels = pd.factorize(used[cov_by], sort=True)
        unit_key = [*keys]
        per = used.groupby(unit_key, observed=True)[cov_by].nunique()
        if (per > 1).any():
            bad = list(per.index[per > 1][:5])
            raise InputError(
                f"cov_by={cov_by!r} must be constant within each subject; it varies for {bad}."
            )
        group_list = list(group_levels)
    else:
        group_codes = np.zeros(len(used), dtype=int)
        group_list = ["all"]
    return MmrmData(
        y=y_mat.to_numpy(dtype=float).ravel(),
        x=x_full[:, kept],
        names=names,
        kept=kept,
        null_basis=null_basis,
        block=np.asarray(block_codes),
        unit=np.asarray(unit_codes, dtype=int),
        visit=used[visit].cat.codes.to_numpy(),
        group=np.asarray(group_codes),
        visit_levels=levels,
        group_levels=group_list,
        block_levels=np.asarray(block_levels),
        frame=used,
        design_info=x_mat.design_info,
        n_dropped=n_dropped,
        visit_order_rule=rule,
    )


def _aliasing(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns kept (left to right, as R's ``lm``) and the null-space basis.

    Column ``j`` is aliased when the QR factor's ``|R[j, j]|`` (its distance from the span of
    the columns before it) is below ``1e-7`` of its norm.
    """
    p = x.shape[1]
    r = np.linalg.qr(x, mode="r")
    scale = np.linalg.norm(x, axis=0)
    kept = np.abs(np.diag(r)) > 1e-7 * np.where(scale > 0, scale, 1.0)
    basis = []
    xk = x[:, kept]
    for j in np.flatnonzero(~kept):
        coef = np.linalg.lstsq(xk, x[:, j], rcond=None)[0]
        vec = np.zeros(p)
        vec[kept] = -coef
        vec[j] = 1.0
        basis.append(vec)
    return kept, np.array(basis).T if basis else np.zeros((p, 0))
