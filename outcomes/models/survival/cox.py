"""Cox proportional hazards (R ``coxph``): Efron or Breslow ties, cluster-robust standard
errors and the ``cox.zph`` proportional-hazards test."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import ConvergenceWarning, InputError, ModelError, StatisticalWarning
from outcomes.models.survival.common import FEW_EVENTS, HR_COLUMNS, _as_list, _prepare, _z
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["CoxResult", "cox"]

# --------------------------------------------------------------------------------------------
# Cox proportional hazards


def _risk_sets(
    time: np.ndarray, event: np.ndarray, strata: np.ndarray
) -> list[dict[str, np.ndarray]]:
    """Per stratum: order by decreasing time and tie-group ids (shared by every Cox pass)."""
    out = []
    for s in pd.unique(strata):
        idx = np.flatnonzero(strata == s)
        idx = idx[np.argsort(-time[idx], kind="stable")]
        ts = time[idx]
        new = np.r_[True, ts[1:] != ts[:-1]]
        gid = np.cumsum(new) - 1
        ends = np.r_[np.flatnonzero(new)[1:] - 1, len(ts) - 1]
        out.append({"idx": idx, "gid": gid, "ends": ends, "event": event[idx]})
    return out


def _cox_pass(
    sets: list[dict[str, np.ndarray]],
    x: np.ndarray,
    beta: np.ndarray,
    efron: bool,
    gtime: np.ndarray | None = None,
) -> dict[str, Any]:
    """Log partial likelihood, score and information of a Cox model at ``beta``.

    With ``gtime`` (one value per row), also the score and the ``2p x 2p`` information for
    adding ``x * g(t)`` terms at coefficient 0: the pieces of R's ``cox.zph`` score test.
    """
    p = x.shape[1]
    loglik, u, imat = 0.0, np.zeros(p), np.zeros((p, p))
    ug, ibg, igg = np.zeros(p), np.zeros((p, p)), np.zeros((p, p))
    for rs in sets:
        xs = x[rs["idx"]]
        xs = xs - xs.mean(axis=0)  # centring for stability; partial likelihood is unchanged
        eta = xs @ beta
        risk = np.exp(eta)
        dead = rs["event"] == 1
        if not dead.any():
            continue
        gid, ends = rs["gid"], rs["ends"]
        ng = len(ends)
        s0 = np.cumsum(risk)[ends]
        s1 = np.cumsum(risk[:, None] * xs, axis=0)[ends]
        s2 = np.cumsum(risk[:, None, None] * xs[:, :, None] * xs[:, None, :], axis=0)[ends]
        dg = np.bincount(gid[dead], minlength=ng).astype(float)
        d0 = np.bincount(gid[dead], weights=risk[dead], minlength=ng)
        d1 = np.zeros((ng, p))
        np.add.at(d1, gid[dead], risk[dead, None] * xs[dead])
        d2 = np.zeros((ng, p, p))
        np.add.at(d2, gid[dead], risk[dead, None, None] * xs[dead, :, None] * xs[dead, None, :])
        # one term per death; Efron removes k/d of the tied deaths' risk for the k-th death
        gd = gid[dead]
        first_dead = np.r_[0, np.cumsum(dg)[:-1]]
        k = np.arange(dead.sum()) - first_dead[gd]
        f = k / dg[gd] if efron else np.zeros(len(gd))
        den = s0[gd] - f * d0[gd]
        a = s1[gd] - f[:, None] * d1[gd]
        c = s2[gd] - f[:, None, None] * d2[gd]
        mean = a / den[:, None]
        info = c / den[:, None, None] - mean[:, :, None] * mean[:, None, :]
        loglik += float(eta[dead].sum() - np.log(den).sum())
        resid = xs[dead] - mean
        u += resid.sum(axis=0)
        imat += info.sum(axis=0)
        if gtime is not None:
            gt = gtime[rs["idx"]][dead]
            ug += (gt[:, None] * resid).sum(axis=0)
            ibg += (gt[:, None, None] * info).sum(axis=0)
            igg += (gt[:, None, None] ** 2 * info).sum(axis=0)
    out: dict[str, Any] = {"loglik": loglik, "u": u, "imat": imat}
    if gtime is not None:
        out["zph_u"] = ug
        out["zph_imat"] = np.block([[imat, ibg], [ibg.T, igg]])
    return out


def _sum_by(
    group: np.ndarray, n_groups: int, w: np.ndarray, vec: np.ndarray | None = None
) -> np.ndarray:
    """Sum ``w`` (or ``w * vec`` row-wise) within groups ``0 .. n_groups - 1``."""
    if vec is None:
        return np.bincount(group, weights=w, minlength=n_groups)
    out = np.zeros((n_groups, vec.shape[1]))
    np.add.at(out, group, w[:, None] * vec)
    return out


def _score_residuals(
    sets: list[dict[str, np.ndarray]], x: np.ndarray, beta: np.ndarray, n: int, efron: bool
) -> np.ndarray:
    """Score residuals of a Cox model (rows in the input order), as R's ``coxph.detail``.

    A subject at risk at an event time takes ``risk_i (x_i - mean_k) / den_k`` for each of the
    time's (Efron) terms ``k``; a subject dying then takes a share ``1 - k/d`` of term ``k``.
    """
    p = x.shape[1]
    res = np.zeros((n, p))
    for rs in sets:
        idx, gid, ends, ev = rs["idx"], rs["gid"], rs["ends"], rs["event"]
        xs = x[idx] - x[idx].mean(axis=0)
        risk = np.exp(xs @ beta)
        dead = ev == 1
        if not dead.any():
            continue
        ng = len(ends)
        s0 = np.cumsum(risk)[ends]
        s1 = np.cumsum(risk[:, None] * xs, axis=0)[ends]
        gd = gid[dead]
        dg = np.bincount(gd, minlength=ng).astype(float)
        d0 = np.bincount(gd, weights=risk[dead], minlength=ng)
        d1 = np.zeros((ng, p))
        np.add.at(d1, gd, risk[dead, None] * xs[dead])
        first_dead = np.r_[0, np.cumsum(dg)[:-1]]
        f = (np.arange(dead.sum()) - first_dead[gd]) / dg[gd] if efron else np.zeros(len(gd))
        den = s0[gd] - f * d0[gd]
        mean = (s1[gd] - f[:, None] * d1[gd]) / den[:, None]

        a_all, b_all = _sum_by(gd, ng, 1 / den), _sum_by(gd, ng, 1 / den, mean)
        a_dead, b_dead = _sum_by(gd, ng, (1 - f) / den), _sum_by(gd, ng, (1 - f) / den, mean)
        m_dead = _sum_by(gd, ng, 1 / dg[gd], mean)
        # sums over event times <= t: groups run in decreasing time, so accumulate from the end
        a_cum = np.cumsum(a_all[::-1])[::-1]
        b_cum = np.cumsum(b_all[::-1], axis=0)[::-1]
        a_i, b_i = a_cum[gid].copy(), b_cum[gid].copy()
        g = gid[dead]
        a_i[dead] += a_dead[g] - a_all[g]
        b_i[dead] += b_dead[g] - b_all[g]
        r = -risk[:, None] * (xs * a_i[:, None] - b_i)
        r[dead] += xs[dead] - m_dead[g]
        res[idx] = r
    return res


def _newton_cox(
    sets: list[dict[str, np.ndarray]],
    x: np.ndarray,
    efron: bool,
    start: np.ndarray | None = None,
    max_iter: int = 50,
) -> tuple[np.ndarray, dict[str, Any], bool]:
    """Newton-Raphson with step halving, to full convergence (as R's coxph.fit).

    Stops when the log-likelihood no longer changes; the fit counts as converged only if the
    last step was also negligible (otherwise the likelihood is monotone: a coefficient is
    heading to infinity, as with complete separation).
    """
    beta = np.zeros(x.shape[1]) if start is None else np.asarray(start, dtype=float)
    cur = _cox_pass(sets, x, beta, efron)
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(cur["imat"], cur["u"])
        except np.linalg.LinAlgError:
            return beta, cur, False
        for _half in range(30):
            new = _cox_pass(sets, x, beta + step, efron)
            if new["loglik"] >= cur["loglik"] - 1e-12 * abs(cur["loglik"]):
                break
            step = step / 2
        beta = beta + step
        flat = abs(new["loglik"] - cur["loglik"]) <= 1e-11 * max(1.0, abs(cur["loglik"]))
        cur = new
        if np.max(np.abs(step) / np.maximum(1.0, np.abs(beta))) < 1e-10:
            return beta, cur, True
        if flat and np.max(np.abs(step)) > 1e-3:  # big moves, no gain: monotone likelihood
            return beta, cur, False
    return beta, cur, False


def _km_transform(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """R cox.zph ``transform = "km"``: 1 - left-continuous KM of the whole data at each time."""
    times, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event.astype(float))
    n = np.bincount(inv)[::-1].cumsum()[::-1]
    surv = np.cumprod(1 - d / n)
    km_times, km_surv = times, surv
    pos = np.searchsorted(km_times, time, side="left")  # number of KM times strictly < t
    return 1 - np.r_[1.0, km_surv][pos]


def _zph(
    sets: list[dict[str, np.ndarray]],
    x: np.ndarray,
    beta: np.ndarray,
    efron: bool,
    time: np.ndarray,
    event: np.ndarray,
    assign: dict[str, list[int]],
) -> pd.DataFrame:
    """R >= 3.0 ``cox.zph`` score test (transform "km"), per term and global."""
    tt = _km_transform(time, event)
    gtime = tt - tt[event == 1].mean()
    res = _cox_pass(sets, x, beta, efron, gtime=gtime)
    p = x.shape[1]
    u = np.r_[np.zeros(p), res["zph_u"]]
    imat = res["zph_imat"]
    rows = []
    for term, cols in assign.items():
        kk = [*range(p), *(p + j for j in cols)]
        uu = np.r_[np.zeros(p), res["zph_u"][cols]]
        chisq = float(uu @ np.linalg.solve(imat[np.ix_(kk, kk)], uu))
        rows.append({"term": term, "chisq": chisq, "df": len(cols)})
    chisq = float(u @ np.linalg.solve(imat, u))
    rows.append({"term": "GLOBAL", "chisq": chisq, "df": p})
    out = pd.DataFrame(rows)
    out["p_value"] = stats.chi2.sf(out["chisq"], out["df"])
    return out


@dataclass
class CoxResult:
    """A fitted Cox proportional-hazards model.

    Attributes
    ----------
    table
        Tidy coefficients (log hazard ratios): ``term, estimate, std_error, statistic (z),
        df (NaN), p_value, conf_low, conf_high`` plus ``hazard_ratio, hr_conf_low,
        hr_conf_high``. With ``cluster``, ``std_error`` is the robust (sandwich) one.
    ph_test
        Proportional-hazards test per term and ``GLOBAL`` (R ``cox.zph``, transform "km"):
        ``term, chisq, df, p_value``.
    loglik
        Log partial likelihood at 0 and at the estimate (R ``fit$loglik``).
    vcov
        Covariance of the coefficients (robust with ``cluster``).
    naive_std_error
        Model-based standard errors (R's ``se(coef)`` next to the robust one).
    n, n_events
        Rows used and events.
    ties
        ``"efron"`` or ``"breslow"``.
    diagnostics
        Dropped rows, few events per coefficient, non-convergence, PH violation.
    fitter
        The lifelines ``CoxPHFitter`` whose estimate starts the Newton polish (Efron ties;
        model-based variance, covariates named ``x0, x1, ...``), else ``None``.
    """

    table: pd.DataFrame
    ph_test: pd.DataFrame
    loglik: tuple[float, float]
    vcov: pd.DataFrame
    naive_std_error: pd.Series
    n: int
    n_events: int
    ties: str
    diagnostics: pd.DataFrame
    fitter: Any = field(default=None, repr=False)

    def tidy(self) -> pd.DataFrame:
        """Log hazard ratios with the shared tidy columns, then the hazard ratios."""
        return tidy_frame(self.table, extra=["hazard_ratio", "hr_conf_low", "hr_conf_high"])

    def to_ard(self, analysis: str = "cox") -> pd.DataFrame:
        """Analysis-results-dataset rows (coefficients and hazard ratios)."""
        return to_ard(self.table, analysis=analysis, diagnostics=self.diagnostics)


def _design(df: pd.DataFrame, formula: str) -> tuple[pd.DataFrame, dict[str, list[int]]]:
    from formulaic import model_matrix

    # text columns (object or pandas "string" dtype, which formulaic would not treat as a
    # factor) become categoricals with sorted levels: treatment contrasts vs the first level
    df = df.copy()
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]) and not isinstance(
            df[col].dtype, pd.CategoricalDtype
        ):
            df[col] = pd.Categorical(df[col].astype(str))
    try:
        mm = model_matrix(formula, df, na_action="raise")
    except Exception as exc:  # formulaic raises many types for a bad formula
        raise InputError(f"cannot build the design from formula {formula!r}: {exc}") from None
    x = pd.DataFrame(mm).drop(columns=["Intercept"], errors="ignore")
    if x.shape[1] == 0:
        raise InputError(f"formula {formula!r} has no covariates")
    assign: dict[str, list[int]] = {}
    all_columns = list(pd.DataFrame(mm).columns)
    for term, cols in mm.model_spec.term_slices.items():
        if str(term) == "1":
            continue
        assign[str(term)] = [list(x.columns).index(c) for c in all_columns[cols]]
    return x, assign


def _formula_variables(formula: str) -> list[str]:
    from formulaic import Formula

    try:
        return sorted(Formula(formula).required_variables)
    except Exception as exc:
        raise InputError(f"cannot parse formula {formula!r}: {exc}") from None


def cox(
    tte: pd.DataFrame,
    formula: str,
    *,
    cluster: str | None = None,
    strata: str | Sequence[str] | None = None,
    ties: str = "efron",
    time: str = "time",
    event: str = "event",
    conf_level: float = 0.95,
) -> CoxResult:
    """Cox proportional-hazards model, as R ``coxph(Surv(time, event) ~ formula, ...)``.

    Parameters
    ----------
    tte
        Time-to-event data.
    formula
        Right-hand side in Wilkinson notation, e.g. ``"arm + phototype"`` (formulaic; text
        columns become treatment contrasts against their first level in sorted order).
        Column names must be Python identifiers (rename R-style ``ph.ecog`` to ``ph_ecog``).
    cluster
        Column identifying clusters (e.g. ``"subject_id"`` for split-face units within
        patients): robust sandwich standard errors, as ``coxph(..., cluster = id)``.
    strata
        Stratification column(s): separate baseline hazards (``+ strata(x)``).
    ties
        ``"efron"`` (R's default, via lifelines) or ``"breslow"`` (SAS's default).
    time, event
        Duration and 0/1 event columns.
    conf_level
        Confidence level of Wald intervals.

    Returns
    -------
    CoxResult
    """
    if ties not in ("efron", "breslow"):
        raise InputError(f"ties must be 'efron' or 'breslow', got {ties!r}")
    strata_cols = _as_list(strata)
    variables = _formula_variables(formula)
    extra = [c for c in [cluster, *strata_cols] if c is not None]
    df, diags = _prepare(tte, time, event, [*variables, *extra], "cox")
    x_df, assign = _design(df, formula)
    names = list(x_df.columns)
    x = x_df.to_numpy(float)
    t = df[time].to_numpy(float)
    d = df[event].to_numpy(float)
    strata_codes = (
        df[strata_cols].astype(str).agg("\x1f".join, axis=1).to_numpy()
        if strata_cols
        else np.zeros(len(df), dtype=int)
    )
    sets = _risk_sets(t, d, strata_codes)
    n_events = int(d.sum())
    p = x.shape[1]
    if n_events == 0:
        raise ModelError("cox: there are no events; a Cox model cannot be fitted")
    const = [names[j] for j in range(p) if np.ptp(x[:, j]) == 0]
    if const:
        raise ModelError(f"cox: covariate column(s) constant in the data: {', '.join(const)}")
    efron = ties == "efron"
    fitter, start = None, None
    if efron:
        start, fitter = _lifelines_cox(x_df, t, d, df, strata_cols)
    # Newton-Raphson on the exact partial likelihood: polishes lifelines' Efron estimate (its
    # stopping rule leaves ~1e-6 relative error) and fits Breslow ties, which lifelines lacks
    beta, res, converged = _newton_cox(sets, x, efron, start=start)
    try:
        naive_var = np.linalg.inv(res["imat"])
    except np.linalg.LinAlgError:
        naive_var = np.full((p, p), np.nan)
    if not converged or np.isnan(naive_var).any():
        diags.append(
            Diagnostic(
                "not_converged",
                "the Cox fit did not converge: a coefficient may be infinite (e.g. a group in "
                "which every unit has the event first); estimates and standard errors are "
                "unreliable",
            )
        )
    robust_var = None
    if cluster is not None:
        # R's robust variance: D'D with D the dfbeta residuals summed within clusters
        dfbeta = _score_residuals(sets, x, beta, len(df), efron) @ naive_var
        by_cluster = pd.DataFrame(dfbeta).groupby(df[cluster].to_numpy()).sum().to_numpy()
        robust_var = by_cluster.T @ by_cluster
    final = _cox_pass(sets, x, beta, efron)
    null = _cox_pass(sets, x, np.zeros(p), efron)
    var = robust_var if robust_var is not None else naive_var
    se = np.sqrt(np.diag(var))
    zval = beta / se
    zq = _z(conf_level)
    with np.errstate(over="ignore"):  # an infinite-looking fit gives inf bounds, flagged
        hr = np.exp(np.column_stack([beta, beta - zq * se, beta + zq * se]))
    table = tidy_frame(
        pd.DataFrame(
            {
                "term": names,
                "estimate": beta,
                "std_error": se,
                "statistic": zval,
                "p_value": 2 * stats.norm.sf(np.abs(zval)),
                "conf_low": beta - zq * se,
                "conf_high": beta + zq * se,
                "hazard_ratio": hr[:, 0],
                "hr_conf_low": hr[:, 1],
                "hr_conf_high": hr[:, 2],
            }
        ),
        extra=list(HR_COLUMNS),
    )
    try:
        ph = _zph(sets, x, beta, efron, t, d, assign)
    except np.linalg.LinAlgError:
        ph = pd.DataFrame(columns=["term", "chisq", "df", "p_value"])
        diags.append(
            Diagnostic("ph_test_failed", "the proportional-hazards test matrix is singular")
        )
    if n_events < FEW_EVENTS * p:
        diags.append(
            Diagnostic(
                "few_events",
                f"{n_events} events for {p} coefficient(s) (fewer than {FEW_EVENTS} per "
                "coefficient): estimates may be biased and intervals too narrow",
            )
        )
    if len(ph) and ph["p_value"].iloc[-1] < 0.05:
        diags.append(
            Diagnostic(
                "ph_violation",
                f"proportional-hazards test (cox.zph, km transform): global p = "
                f"{ph['p_value'].iloc[-1]:.3g}; hazard ratios may change over time",
            )
        )
    for diag in diags:
        diag.emit(ConvergenceWarning if diag.code == "not_converged" else StatisticalWarning)
    return CoxResult(
        table=table,
        ph_test=ph,
        loglik=(null["loglik"], final["loglik"]),
        vcov=pd.DataFrame(var, index=names, columns=names),
        naive_std_error=pd.Series(np.sqrt(np.diag(naive_var)), index=names),
        n=len(df),
        n_events=n_events,
        ties=ties,
        diagnostics=diagnostics_frame(diags),
        fitter=fitter,
    )


def _lifelines_cox(
    x_df: pd.DataFrame,
    t: np.ndarray,
    d: np.ndarray,
    df: pd.DataFrame,
    strata_cols: list[str],
) -> tuple[np.ndarray, Any]:
    """Efron-ties fit by lifelines' CoxPHFitter (model-based variance; no cluster)."""
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    cols = [f"x{j}" for j in range(x_df.shape[1])]
    data = pd.DataFrame(x_df.to_numpy(float), columns=cols)
    data["__time"], data["__event"] = t, d
    kwargs: dict[str, Any] = {}
    if strata_cols:
        for j, s in enumerate(strata_cols):
            data[f"__strata{j}"] = df[s].astype(str).to_numpy()
        kwargs["strata"] = [f"__strata{j}" for j in range(len(strata_cols))]
    fitter = CoxPHFitter()
    with warnings.catch_warnings():
        # lifelines' own convergence warnings: convergence is judged after the Newton polish
        warnings.simplefilter("ignore")
        try:
            fitter.fit(data, "__time", "__event", **kwargs)
        except ConvergenceError as exc:
            raise ModelError(f"Cox model did not converge: {str(exc).splitlines()[0]}") from None
    return fitter.params_[cols].to_numpy(), fitter
