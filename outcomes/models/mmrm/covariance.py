"""Within-subject covariance structures over ``m`` visits, in SAS PROC MIXED's parameters.

Each structure maps two parameter vectors to an ``m x m`` covariance matrix:

``natural``
    SAS's covariance parameters (what PROC MIXED prints under "Covariance Parameter
    Estimates"): variances, covariances and correlations. Kenward-Roger's correction uses the
    derivatives of the covariance in these parameters; for ``us``, ``toep`` and ``cs`` the
    covariance is linear in them, so Kenward-Roger and its linear variant coincide as in SAS.
``free``
    Unconstrained values the optimiser moves (log standard deviations, a Cholesky factor,
    partial autocorrelations through ``tanh``): every value gives a positive-definite matrix.

==========  ================================================  ==========================
code        covariance ``Sigma[i, j]``                        natural parameters (SAS)
==========  ================================================  ==========================
``us``      unstructured                                      lower triangle, row-wise
``toep``    ``c[|i - j|]``                                    ``c0 .. c(m-1)`` (TOEP)
``toeph``   ``s_i s_j r[|i - j|]``                            ``s_i^2``, ``r1 .. r(m-1)``
``ar1``     ``s^2 rho^|i - j|``                               ``s^2``, ``rho`` (AR(1))
``ar1h``    ``s_i s_j rho^|i - j|``                           ``s_i^2``, ``rho`` (ARH(1))
``ad``      ``s^2 prod_{k=i}^{j-1} r_k``                      ``s^2``, ``r1 .. r(m-1)``
``adh``     ``s_i s_j prod_{k=i}^{j-1} r_k``                  ``s_i^2``, ``r_k`` (ANTE(1))
``cs``      ``c + s^2 [i == j]``                              ``c``, ``s^2`` (CS)
``csh``     ``s_i s_j (rho + (1 - rho) [i == j])``            ``s_i^2``, ``rho`` (CSH)
==========  ================================================  ==========================

All functions are written so that they also accept complex arrays: derivatives in the
natural parameters are taken by the complex step, exact to rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["STRUCTURES", "Structure", "get_structure"]


def _sd_outer(var: np.ndarray) -> np.ndarray:
    sd = np.sqrt(var)
    return sd[:, None] * sd[None, :]


def _lag(m: int) -> np.ndarray:
    idx = np.arange(m)
    return np.abs(idx[:, None] - idx[None, :])


def _ante_corr(r: np.ndarray, m: int) -> np.ndarray:
    """Correlation ``prod_{k=i}^{j-1} r_k`` of ante-dependence (``r`` has ``m - 1`` values)."""
    out = np.ones((m, m), dtype=np.result_type(r, float))
    for i in range(m):
        acc = 1.0
        for j in range(i + 1, m):
            acc = acc * r[j - 1]
            out[i, j] = out[j, i] = acc
    return out


def _pacf_to_acf(pacf: np.ndarray) -> np.ndarray:
    """Autocorrelations ``r1 .. rK`` from partial autocorrelations (Durbin-Levinson).

    Any partial autocorrelations in ``(-1, 1)`` give a positive-definite Toeplitz matrix.
    """
    rho = [1.0]
    a: list[float] = []
    for k, p in enumerate(pacf, start=1):
        v = 1.0 - sum(a[j] * rho[j + 1] for j in range(k - 1))
        rho.append(sum(a[j] * rho[k - 1 - j] for j in range(k - 1)) + p * v)
        a = [a[j] - p * a[k - 2 - j] for j in range(k - 1)] + [p]
    return np.array(rho[1:])


def _acf_to_pacf(acf: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_pacf_to_acf` (for starting values); clipped inside ``(-1, 1)``."""
    pacf = []
    rho = np.concatenate([[1.0], acf])
    a = np.zeros(0)
    for k in range(1, len(rho)):
        num = rho[k] - sum(a[j] * rho[k - 1 - j] for j in range(k - 1))
        den = 1.0 - sum(a[j] * rho[j + 1] for j in range(k - 1))
        p = float(np.clip(num / den, -0.95, 0.95))
        pacf.append(p)
        a = np.concatenate([a - p * a[::-1], [p]])
    return np.array(pacf)


def _cs_low(m: int) -> float:
    """Lowest correlation that keeps an ``m x m`` compound-symmetric matrix positive definite."""
    return -1.0 / (m - 1) if m > 1 else -1.0


def _to_unit(x: np.ndarray, low: float) -> np.ndarray:
    """Map the real line onto ``(low, 1)``."""
    return low + (1.0 - low) / (1.0 + np.exp(-x))


def _from_unit(r: float, low: float) -> float:
    u = (np.clip(r, low + 1e-3, 1 - 1e-3) - low) / (1.0 - low)
    return float(np.log(u / (1.0 - u)))


@dataclass(frozen=True)
class Structure:
    """One covariance structure: parameter counts, maps and names.

    Attributes
    ----------
    code
        ``"us"``, ``"toep"``, ...
    n_params
        ``m -> number of parameters``.
    natural_cov
        ``(natural, m) -> Sigma``.
    free_to_natural
        ``(free, m) -> natural``.
    start_free
        ``(sample covariance, m) -> free`` starting values.
    names
        ``m -> names of the natural parameters`` (``"var[2]"``, ``"cov[2,1]"``, ``"rho"``).
    linear
        Whether ``Sigma`` is linear in the natural parameters (second derivatives vanish).
    """

    code: str
    n_params: Callable[[int], int]
    natural_cov: Callable[[np.ndarray, int], np.ndarray]
    free_to_natural: Callable[[np.ndarray, int], np.ndarray]
    start_free: Callable[[np.ndarray, int], np.ndarray]
    names: Callable[[int], list[str]]
    linear: bool


# -- unstructured ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _tril(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tril_indices(m)


def _us_cov(t: np.ndarray, m: int) -> np.ndarray:
    out = np.zeros((m, m), dtype=np.result_type(t, float))
    rows, cols = _tril(m)
    out[rows, cols] = t
    out[cols, rows] = t
    return out


def _us_free(f: np.ndarray, m: int) -> np.ndarray:
    chol = np.zeros((m, m), dtype=np.result_type(f, float))
    rows, cols = _tril(m)
    chol[rows, cols] = f
    diag = np.arange(m)
    chol[diag, diag] = np.exp(chol[diag, diag])
    return (chol @ chol.T)[rows, cols]


def _us_start(s: np.ndarray, m: int) -> np.ndarray:
    chol = np.linalg.cholesky(s)
    chol[np.diag_indices(m)] = np.log(np.diag(chol))
    return chol[np.tril_indices(m)]


def _us_names(m: int) -> list[str]:
    rows, cols = np.tril_indices(m)
    return [
        f"var[{i + 1}]" if i == j else f"cov[{i + 1},{j + 1}]"
        for i, j in zip(rows, cols, strict=True)
    ]


# -- Toeplitz ---------------------------------------------------------------------------------


def _toep_cov(t: np.ndarray, m: int) -> np.ndarray:
    return t[_lag(m)]


def _toep_free(f: np.ndarray, m: int) -> np.ndarray:
    var = np.exp(2 * f[0])
    return np.concatenate([[var], var * _pacf_to_acf(np.tanh(f[1:]))])


def _start_corr(s: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diag(s))
    return s / np.outer(sd, sd)


def _mean_lag_corr(s: np.ndarray, m: int) -> np.ndarray:
    corr = _start_corr(s)
    return np.array([np.mean(np.diag(corr, k)) for k in range(1, m)])


def _toep_start(s: np.ndarray, m: int) -> np.ndarray:
    pacf = _acf_to_pacf(_mean_lag_corr(s, m))
    return np.concatenate([[0.5 * np.log(np.mean(np.diag(s)))], np.arctanh(pacf)])


def _toep_names(m: int) -> list[str]:
    return ["var"] + [f"cov[lag {k}]" for k in range(1, m)]


def _toeph_cov(t: np.ndarray, m: int) -> np.ndarray:
    r = np.concatenate([np.ones(1, dtype=t.dtype), t[m:]])
    return _sd_outer(t[:m]) * r[_lag(m)]


def _toeph_free(f: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([np.exp(2 * f[:m]), _pacf_to_acf(np.tanh(f[m:]))])


def _toeph_start(s: np.ndarray, m: int) -> np.ndarray:
    pacf = _acf_to_pacf(_mean_lag_corr(s, m))
    return np.concatenate([0.5 * np.log(np.diag(s)), np.arctanh(pacf)])


def _var_names(m: int) -> list[str]:
    return [f"var[{i + 1}]" for i in range(m)]


def _toeph_names(m: int) -> list[str]:
    return _var_names(m) + [f"rho[lag {k}]" for k in range(1, m)]


# -- autoregressive ---------------------------------------------------------------------------


def _ar1_cov(t: np.ndarray, m: int) -> np.ndarray:
    return t[0] * t[1] ** _lag(m)


def _ar1_free(f: np.ndarray, m: int) -> np.ndarray:
    return np.array([np.exp(2 * f[0]), np.tanh(f[1])])


def _first_lag_start(s: np.ndarray, m: int) -> float:
    return float(np.arctanh(np.clip(_mean_lag_corr(s, m)[0], -0.9, 0.9))) if m > 1 else 0.0


def _ar1_start(s: np.ndarray, m: int) -> np.ndarray:
    return np.array([0.5 * np.log(np.mean(np.diag(s))), _first_lag_start(s, m)])


def _ar1h_cov(t: np.ndarray, m: int) -> np.ndarray:
    return _sd_outer(t[:m]) * t[m] ** _lag(m)


def _ar1h_free(f: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([np.exp(2 * f[:m]), [np.tanh(f[m])]])


def _ar1h_start(s: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([0.5 * np.log(np.diag(s)), [_first_lag_start(s, m)]])


# -- ante-dependence --------------------------------------------------------------------------


def _ad_cov(t: np.ndarray, m: int) -> np.ndarray:
    return t[0] * _ante_corr(t[1:], m)


def _ad_free(f: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([[np.exp(2 * f[0])], np.tanh(f[1:])])


def _adjacent_corr(s: np.ndarray, m: int) -> np.ndarray:
    return np.arctanh(np.clip(np.diag(_start_corr(s), 1), -0.9, 0.9))


def _ad_start(s: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([[0.5 * np.log(np.mean(np.diag(s)))], _adjacent_corr(s, m)])


def _adh_cov(t: np.ndarray, m: int) -> np.ndarray:
    return _sd_outer(t[:m]) * _ante_corr(t[m:], m)


def _adh_free(f: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([np.exp(2 * f[:m]), np.tanh(f[m:])])


def _adh_start(s: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([0.5 * np.log(np.diag(s)), _adjacent_corr(s, m)])


def _ad_names(m: int) -> list[str]:
    return ["var"] + [f"rho[{k},{k + 1}]" for k in range(1, m)]


def _adh_names(m: int) -> list[str]:
    return _var_names(m) + [f"rho[{k},{k + 1}]" for k in range(1, m)]


# -- compound symmetry ------------------------------------------------------------------------


def _cs_cov(t: np.ndarray, m: int) -> np.ndarray:
    return t[0] + t[1] * np.eye(m)


def _cs_free(f: np.ndarray, m: int) -> np.ndarray:
    var = np.exp(2 * f[0])
    rho = _to_unit(f[1], _cs_low(m))
    return np.array([var * rho, var * (1 - rho)])


def _mean_corr(s: np.ndarray, m: int) -> float:
    corr = _start_corr(s)
    return float(np.mean(corr[np.triu_indices(m, 1)])) if m > 1 else 0.0


def _cs_start(s: np.ndarray, m: int) -> np.ndarray:
    return np.array([0.5 * np.log(np.mean(np.diag(s))), _from_unit(_mean_corr(s, m), _cs_low(m))])


def _csh_cov(t: np.ndarray, m: int) -> np.ndarray:
    return _sd_outer(t[:m]) * (t[m] + (1 - t[m]) * np.eye(m))


def _csh_free(f: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([np.exp(2 * f[:m]), [_to_unit(f[m], _cs_low(m))]])


def _csh_start(s: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([0.5 * np.log(np.diag(s)), [_from_unit(_mean_corr(s, m), _cs_low(m))]])


STRUCTURES: dict[str, Structure] = {
    "us": Structure(
        "us", lambda m: m * (m + 1) // 2, _us_cov, _us_free, _us_start, _us_names, True
    ),
    "toep": Structure("toep", lambda m: m, _toep_cov, _toep_free, _toep_start, _toep_names, True),
    "toeph": Structure(
        "toeph", lambda m: 2 * m - 1, _toeph_cov, _toeph_free, _toeph_start, _toeph_names, False
    ),
    "ar1": Structure(
        "ar1", lambda m: 2, _ar1_cov, _ar1_free, _ar1_start, lambda m: ["var", "rho"], False
    ),
    "ar1h": Structure(
        "ar1h",
        lambda m: m + 1,
        _ar1h_cov,
        _ar1h_free,
        _ar1h_start,
        lambda m: [*_var_names(m), "rho"],
        False,
    ),
    "ad": Structure("ad", lambda m: m, _ad_cov, _ad_free, _ad_start, _ad_names, False),
    "adh": Structure(
        "adh", lambda m: 2 * m - 1, _adh_cov, _adh_free, _adh_start, _adh_names, False
    ),
    "cs": Structure(
        "cs", lambda m: 2, _cs_cov, _cs_free, _cs_start, lambda m: ["cov", "var_residual"], True
    ),
    "csh": Structure(
        "csh",
        lambda m: m + 1,
        _csh_cov,
        _csh_free,
        _csh_start,
        lambda m: [*_var_names(m), "rho"],
        False,
    ),
}


def get_structure(code: str) -> Structure:
    """The structure named ``code`` (case-insensitive), or a ``ValueError`` listing them."""
    key = code.lower()
    if key not in STRUCTURES:
        raise ValueError(
            f"Unknown covariance structure {code!r}; use one of {', '.join(STRUCTURES)}."
        )
    return STRUCTURES[key]
