"""Per-row log-likelihoods of the GLMM families and their derivatives in the linear predictor.

Each family turns the linear predictor ``eta`` (fixed part plus random effects) and, for the
cumulative-link model, the thresholds ``alpha`` into per-row pieces (:class:`Pieces`):

* ``l``, ``l1``, ``l2``: the log-likelihood and its first two derivatives in ``eta``;
* ``w``, ``w1``: the weight that enters the Laplace determinant and its derivative in ``eta``.
  For the cumulative-link model this is the observed information ``-l2`` (ordinal::clmm); for
  binomial and Poisson GLMMs it is the expected (Fisher) information, as lme4's penalised
  IRLS uses it (identical to ``-l2`` for the canonical logit and log links);
* for the thresholds: derivatives ``la``, ``l1a``, ``wa`` of ``l``, ``l1`` and ``w`` in the two
  thresholds a row touches, whose positions are ``ia`` (``-1`` for the open ends).

The cumulative-link model follows ordinal::clmm: ``P(Y <= j) = F(alpha_j - eta)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = [
    "BINOMIAL_LINKS",
    "CLMM_LINKS",
    "Binomial",
    "Cumulative",
    "Pieces",
    "Poisson",
    "link_cdf",
]

CLMM_LINKS = ("logit", "probit")
BINOMIAL_LINKS = ("logit", "probit", "cloglog")


@dataclass
class Pieces:
    """Per-row log-likelihood pieces at one ``eta`` (see the module docstring)."""

    l: np.ndarray  # noqa: E741 - the log-likelihood, as in the formulas
    l1: np.ndarray
    l2: np.ndarray
    w: np.ndarray
    w1: np.ndarray
    la: np.ndarray | None = None
    l1a: np.ndarray | None = None
    wa: np.ndarray | None = None
    ia: np.ndarray | None = None


def link_cdf(link: str, x: np.ndarray, order: int = 0) -> np.ndarray:
    """Inverse link ``F`` (``order=0``) and its derivatives ``f, f', f''`` (``order=1..3``)."""
    x = np.asarray(x, dtype=float)
    if order == 0:
        if link == "logit":
            return special.expit(x)
        if link == "probit":
            return special.ndtr(x)
        return -np.expm1(-np.exp(np.minimum(x, 700.0)))
    return link_derivatives(link, x)[order - 1]


def link_derivatives(link: str, x: np.ndarray) -> list[np.ndarray]:
    """``[f, f', f'']`` of the inverse link at ``x`` (zero at +/- infinity)."""
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x)
    if finite.all():
        return _link_functions(link, x)[1:]
    return [np.where(finite, v, 0.0) for v in _link_functions(link, np.where(finite, x, 0.0))[1:]]


def _link_functions(link: str, x: np.ndarray) -> list[np.ndarray]:
    if link == "logit":
        p = special.expit(x)
        q = 1.0 - p
        out = [p, p * q, p * q * (q - p), p * q * (1.0 - 6.0 * p * q)]
    elif link == "probit":
        d = np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
        out = [special.ndtr(x), d, -x * d, (x * x - 1.0) * d]
    elif link == "cloglog":
        ex = np.exp(np.minimum(x, 700.0))
        dens = ex * np.exp(-ex)
        out = [-np.expm1(-ex), dens, dens * (1.0 - ex), dens * ((1.0 - ex) ** 2 - ex)]
    else:  # pragma: no cover - links are checked by the public functions
        raise ValueError(link)
    return out


class Cumulative:
    """Cumulative-link model for ``n_cat`` ordered categories coded ``0 .. n_cat - 1``.

    Parameters
    ----------
    y
        Category codes.
    weights
        Prior (frequency) weights of the rows.
    link
        ``"logit"`` or ``"probit"``.
    """

    def __init__(self, y: np.ndarray, n_cat: int, weights: np.ndarray, link: str) -> None:
        self.y = np.asarray(y, dtype=np.intp)
        self.n_cat = n_cat
        self.n_alpha = n_cat - 1
        self.weights = np.asarray(weights, dtype=float)
        self.link = link
        upper = np.where(self.y < n_cat - 1, self.y, -1)
        lower = np.where(self.y > 0, self.y - 1, -1)
        self.ia = np.column_stack([upper, lower])
        self.constant = 0.0

    def _bounds(self, eta: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ext = np.concatenate([alpha, [np.inf, -np.inf]])
        # index -1 is +inf for the upper bound, -1 -> -inf for the lower bound
        a = np.where(self.ia[:, 0] >= 0, ext[self.ia[:, 0]], np.inf) - eta
        b = np.where(self.ia[:, 1] >= 0, ext[self.ia[:, 1]], -np.inf) - eta
        return a, b

    def probability(self, eta: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Probability of each row's observed category."""
        a, b = self._bounds(eta, alpha)
        return self._prob(a, b)

    def _prob(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # F(a) - F(b), from the upper tail when both are large (no cancellation)
        upper = a + b > 0
        lo = link_cdf(self.link, np.where(upper, -a, b))
        hi = link_cdf(self.link, np.where(upper, -b, a))
        return hi - lo

    def loglik(self, eta: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Per-row weighted log-likelihood."""
        with np.errstate(divide="ignore"):
            return self.weights * np.log(self.probability(eta, alpha))

    def pieces(self, eta: np.ndarray, alpha: np.ndarray, third: bool = True) -> Pieces:
        """Log-likelihood pieces (module docstring); ``third=False`` skips ``w1`` and the
        threshold derivatives (enough for the conditional modes)."""
        a, b = self._bounds(eta, alpha)
        prob = self._prob(a, b)
        wt = self.weights
        fa, ga, ka = link_derivatives(self.link, a)
        fb, gb, kb = link_derivatives(self.link, b)
        with np.errstate(divide="ignore"):
            ll = wt * np.log(prob)
        inv = 1.0 / prob
        la, lb = fa * inv, -fb * inv
        laa = ga * inv - la * la
        lbb = -gb * inv - lb * lb
        lab = fa * fb * inv * inv
        l1 = -(la + lb)
        l2 = laa + 2 * lab + lbb
        out = Pieces(l=ll, l1=wt * l1, l2=wt * l2, w=-wt * l2, w1=np.zeros_like(l2))
        if not third:
            return out
        laaa = ka * inv - 3 * la * ga * inv + 2 * la**3
        lbbb = -kb * inv + 3 * lb * gb * inv + 2 * lb**3
        laab = ga * fb * inv * inv - 2 * la * la * fb * inv
        labb = fa * gb * inv * inv + 2 * la * lb * lb
        out.w1 = wt * (laaa + 3 * laab + 3 * labb + lbbb)
        out.la = wt[:, None] * np.column_stack([la, lb])
        out.l1a = -wt[:, None] * np.column_stack([laa + lab, lab + lbb])
        out.wa = -wt[:, None] * np.column_stack([laaa + 2 * laab + labb, laab + 2 * labb + lbbb])
        out.ia = self.ia
        return out


class Binomial:
    """Binomial counts ``y`` of ``trials`` (0/1 rows have one trial) with a logit, probit or
    cloglog link; the log-likelihood includes ``log C(trials, y)`` as R's ``logLik`` does."""

    n_alpha = 0

    def __init__(self, y: np.ndarray, trials: np.ndarray, link: str) -> None:
        self.y = np.asarray(y, dtype=float)
        self.trials = np.asarray(trials, dtype=float)
        self.link = link
        self.constant = float(
            np.sum(
                special.gammaln(self.trials + 1)
                - special.gammaln(self.y + 1)
                - special.gammaln(self.trials - self.y + 1)
            )
        )

    def mean(self, eta: np.ndarray) -> np.ndarray:
        """Probability of success."""
        return link_cdf(self.link, eta)

    def loglik(self, eta: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Per-row log-likelihood without the binomial coefficient."""
        y, n = self.y, self.trials
        if self.link == "logit":
            return y * eta - n * np.logaddexp(0.0, eta)
        if self.link == "probit":
            return y * special.log_ndtr(eta) + (n - y) * special.log_ndtr(-eta)
        ex = np.exp(np.minimum(eta, 700.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_mu = np.log(-np.expm1(-ex))
        return np.where(y > 0, y * log_mu, 0.0) - (n - y) * ex

    def pieces(self, eta: np.ndarray, alpha: np.ndarray, third: bool = True) -> Pieces:
        """Log-likelihood pieces with Fisher weights (module docstring)."""
        y, n = self.y, self.trials
        ll = self.loglik(eta, alpha)
        if self.link == "logit":
            mu = special.expit(eta)
            v = mu * (1.0 - mu)
            w = n * v
            return Pieces(l=ll, l1=y - n * mu, l2=-w, w=w, w1=w * (1.0 - 2.0 * mu))
        mu = np.clip(link_cdf(self.link, eta), 1e-300, 1 - 1e-16)
        nu = 1.0 - mu
        f, g = (link_cdf(self.link, eta, order) for order in (1, 2))
        l1 = y * f / mu - (n - y) * f / nu
        l2 = y * (g / mu - (f / mu) ** 2) - (n - y) * (g / nu + (f / nu) ** 2)
        v = mu * nu
        w = n * f * f / v
        w1 = n * (2 * f * g / v - f**3 * (nu - mu) / v**2) if third else np.zeros_like(w)
        return Pieces(l=ll, l1=l1, l2=l2, w=w, w1=w1)


class Poisson:
    """Poisson counts with the log link; the log-likelihood includes ``-log(y!)``."""

    n_alpha = 0
    link = "log"

    def __init__(self, y: np.ndarray) -> None:
        self.y = np.asarray(y, dtype=float)
        self.constant = float(-np.sum(special.gammaln(self.y + 1)))

    def mean(self, eta: np.ndarray) -> np.ndarray:
        """Expected count."""
        return np.exp(eta)

    def loglik(self, eta: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Per-row log-likelihood without ``-log(y!)``."""
        return self.y * eta - np.exp(eta)

    def pieces(self, eta: np.ndarray, alpha: np.ndarray, third: bool = True) -> Pieces:
        """Log-likelihood pieces (module docstring)."""
        mu = np.exp(eta)
        return Pieces(l=self.y * eta - mu, l1=self.y - mu, l2=-mu, w=mu, w1=mu)
