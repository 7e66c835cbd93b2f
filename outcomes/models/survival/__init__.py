"""Time-to-result models: Kaplan-Meier, log-rank, Cox, interval-censored AFT, competing risks.

Every function takes a time-to-event DataFrame (see :func:`outcomes.derive_tte`; any
frame with a duration and a 0/1 event column works) and returns a result object whose tables
use the toolkit's tidy columns. Defaults follow R ``survival`` (checked in
``tests/test_survival.py`` against numbers produced by the scripts in ``tests/r/survival/``):

- Kaplan-Meier: Greenwood variance, ``conf.type = "log"`` confidence intervals, medians and
  quantiles with their CIs computed as ``quantile.survfit`` does (``print.survfit``), survival
  at chosen days as ``summary(fit, times = ...)``.
- Log-rank: ``survdiff`` (``rho = 0``), stratified with ``strata(x)``.
- Cox: Efron ties by default: lifelines' ``CoxPHFitter`` fit, polished by Newton-Raphson on
  the exact partial likelihood (lifelines stops ~1e-6 relative short of the optimum);
  Breslow ties by the same Newton-Raphson (lifelines has only Efron). Cluster-robust
  (sandwich) standard errors as ``coxph(..., cluster = id)``, from score residuals computed
  here: lifelines' ``cluster_col`` standard errors differ from R's by up to ~40% on data with
  tied times. The proportional-hazards test is R >= 3.0 ``cox.zph`` (``transform = "km"``),
  a score test computed here: lifelines' ``proportional_hazard_test`` is the older
  approximate test and does not match it (nor give a global test).
- Interval-censored Weibull and log-normal models (lifelines AFT fitters, polished by
  Newton-Raphson with exact derivatives so estimates match
  ``survreg(Surv(l, r, type = "interval2") ~ arm)``).
- Cumulative incidence: Aalen-Johansen, computed here (lifelines' ``AalenJohansenFitter``
  randomly jitters tied times, and visit-day data are full of ties) with R's infinitesimal
  jackknife standard errors and log-scale CIs, as ``survfit`` with a factor status.

Rows with a missing time, event or covariate are dropped (R's ``na.omit``); the count is
reported in each result's ``diagnostics``.
"""
