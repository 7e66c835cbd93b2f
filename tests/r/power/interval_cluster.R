# Interval-censored Weibull AFT fitted by R survreg: the reference for the fast fit of the
# power analysis "interval" (outcomes.planning.interval.weibull_interval_fit).
# Data: tests/r/power/interval_bounds.csv (3 simulated split-face trials, 15 patients, monthly
# visits; written by outcomes.planning.interval.interval_bounds). Run from the repository root:
#   Rscript tests/r/power/interval_cluster.R
# Written: logLik, coefficients, log(scale), model-based SE of arm, the per-row scores implied
# by residuals(fit, "dfbeta") (dfbeta %*% solve(vcov)), and survreg's robust SE with
# cluster = subject. In survival 3.5.3 the log(scale) column of those dfbeta residuals has the
# wrong sign on interval-censored rows (it does not sum to 0 at the maximum; see the test), so
# the robust SE built from them is not used as a reference; the coefficient columns are.
library(survival)
library(jsonlite)
d <- read.csv("tests/r/power/interval_bounds.csv")
out <- list()
ctl <- survreg.control(rel.tolerance = 1e-12, maxiter = 200)
for (r in sort(unique(d$replicate))) {
  x <- d[d$replicate == r & !(d$lower == 0 & is.infinite(d$upper)), ]
  l <- ifelse(x$lower == 0, NA, x$lower)
  u <- ifelse(is.infinite(x$upper), NA, x$upper)
  fit <- survreg(Surv(l, u, type = "interval2") ~ arm, data = x, dist = "weibull", control = ctl)
  robust <- survreg(Surv(l, u, type = "interval2") ~ arm, data = x, dist = "weibull",
                    cluster = subject, control = ctl)
  scores <- resid(fit, "dfbeta") %*% solve(vcov(fit))
  out[[length(out) + 1]] <- list(
    replicate = r,
    unit = x$unit,
    loglik = fit$loglik[2],
    coef = unname(coef(fit)),
    log_scale = log(fit$scale),
    se_arm = sqrt(vcov(fit)[2, 2]),
    scores = unname(scores),
    robust_se_arm = sqrt(vcov(robust)[2, 2]),
    R = R.version.string,
    survival = as.character(packageVersion("survival"))
  )
}
write_json(out, "tests/r/power/interval_cluster.json", digits = NA, auto_unbox = TRUE)
