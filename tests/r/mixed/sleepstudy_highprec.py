"""High-precision optimum of sleepstudy's REML criterion, to check R's and the engines' optima.

Run from the repository root: ``python tests/r/mixed/sleepstudy_highprec.py``. Writes
``sleepstudy_highprec.json``: theta, sigma, beta, the random-effect covariances and logLik of
``lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE)`` at the optimum found by
Newton's method in 50-digit decimal arithmetic (standard library only) on the REML
criterion, so neither an optimiser's stopping rule nor double rounding limits the reference.

Per subject, with ``M = I + Lambda' Z'Z Lambda`` (2 x 2) and ``X = Z = (1, Days)``:
``log|V0| = log|M|`` and ``V0^-1 = I - Z Lambda M^-1 Lambda' Z'``.
"""

import json
from decimal import Decimal, getcontext
from pathlib import Path

import pandas as pd

getcontext().prec = 50
HERE = Path(__file__).parent
N, P = 180, 2
D = Decimal


def mul(a, b):
    return [[a[i][0] * b[0][j] + a[i][1] * b[1][j] for j in range(2)] for i in range(2)]


def tr(a):
    return [[a[0][0], a[1][0]], [a[0][1], a[1][1]]]


def det(a):
    return a[0][0] * a[1][1] - a[0][1] * a[1][0]


def inv(a):
    d = det(a)
    return [[a[1][1] / d, -a[0][1] / d], [-a[1][0] / d, a[0][0] / d]]


def matvec(a, v):
    return [a[0][0] * v[0] + a[0][1] * v[1], a[1][0] * v[0] + a[1][1] * v[1]]


data = pd.read_csv(HERE / "sleepstudy.csv")
STATS = []  # per subject: Z'Z, Z'y, y'y (exact decimals of the CSV values)
for _, g in data.groupby("Subject", sort=True):
    days = [D(str(int(d))) for d in g["Days"]]
    ys = [D(repr(float(v))) for v in g["Reaction"]]
    ztz = [[D(len(days)), sum(days)], [sum(days), sum(d * d for d in days)]]
    zty = [sum(ys), sum(d * y for d, y in zip(days, ys, strict=True))]
    STATS.append((ztz, zty, sum(y * y for y in ys)))
    assert len(days) == 10
assert len(STATS) == 18


def reml(theta):
    """REML deviance (sigma profiled), r^2 and beta at ``theta``."""
    lam = [[theta[0], D(0)], [theta[1], theta[2]]]
    logdet, xvx, xvy, yvy = D(0), [[D(0)] * 2 for _ in range(2)], [D(0)] * 2, D(0)
    for ztz, zty, yty in STATS:
        m = mul(mul(tr(lam), ztz), lam)
        m = [[m[0][0] + 1, m[0][1]], [m[1][0], m[1][1] + 1]]
        logdet += det(m).ln()
        k = mul(mul(ztz, lam), inv(m))  # Z'Z Lambda M^-1
        a = mul(k, mul(tr(lam), ztz))  # Z'Z Lambda M^-1 Lambda' Z'Z
        b = matvec(mul(k, tr(lam)), zty)  # Z'Z Lambda M^-1 Lambda' Z'y
        lz = matvec(tr(lam), zty)
        c = sum(u * v for u, v in zip(lz, matvec(inv(m), lz), strict=True))
        xvx = [[xvx[i][j] + ztz[i][j] - a[i][j] for j in range(2)] for i in range(2)]
        xvy = [xvy[i] + zty[i] - b[i] for i in range(2)]
        yvy += yty - c
    beta = matvec(inv(xvx), xvy)
    r2 = yvy - xvy[0] * beta[0] - xvy[1] * beta[1]
    dof = D(N - P)
    two_pi = 2 * D("3.14159265358979323846264338327950288419716939937510")
    dev = logdet + det(xvx).ln() + dof * (1 + (two_pi * r2 / dof).ln())
    return dev, r2, beta


def newton(theta, steps=20):
    theta = [D(str(t)) for t in theta]
    h, hh = D("1e-15"), D("1e-9")

    def f(t):
        return reml(t)[0]

    def shifted(t, i, d):
        t = list(t)
        t[i] += d
        return t

    for _ in range(steps):
        grad = [(f(shifted(theta, i, h)) - f(shifted(theta, i, -h))) / (2 * h) for i in range(3)]
        hess = [[D(0)] * 3 for _ in range(3)]
        for i in range(3):
            for j in range(3):
                pp = f(shifted(shifted(theta, i, hh), j, hh))
                pm = f(shifted(shifted(theta, i, hh), j, -hh))
                mp = f(shifted(shifted(theta, i, -hh), j, hh))
                mm = f(shifted(shifted(theta, i, -hh), j, -hh))
                hess[i][j] = (pp - pm - mp + mm) / (4 * hh * hh)
        step = solve3(hess, grad)
        theta = [t - s for t, s in zip(theta, step, strict=True)]
        if max(abs(s) for s in step) < D("1e-30"):
            break
    return theta


def solve3(a, b):
    """Gaussian elimination for a 3 x 3 system."""
    a = [[*row, b[i]] for i, row in enumerate(a)]
    for c in range(3):
        for r in range(c + 1, 3):
            f = a[r][c] / a[c][c]
            a[r] = [x - f * y for x, y in zip(a[r], a[c], strict=True)]
    x = [D(0)] * 3
    for r in (2, 1, 0):
        x[r] = (a[r][3] - sum(a[r][k] * x[k] for k in range(r + 1, 3))) / a[r][r]
    return x


theta = newton([0.9667, 0.01517, 0.2309])
dev, r2, beta = reml(theta)
sigma2 = r2 / D(N - P)
out = {
    "model": "lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE)",
    "method": "Newton in 50-digit decimal arithmetic on the REML criterion",
    "theta": [float(t) for t in theta],
    "sigma": float(sigma2.sqrt()),
    "beta": [float(b) for b in beta],
    "var_intercept": float(sigma2 * theta[0] ** 2),
    "cov_intercept_days": float(sigma2 * theta[0] * theta[1]),
    "var_days": float(sigma2 * (theta[1] ** 2 + theta[2] ** 2)),
    "loglik": float(-dev / 2),
}
(HERE / "sleepstudy_highprec.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out, indent=2))
