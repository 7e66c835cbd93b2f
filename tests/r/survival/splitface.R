# Reference values for tests/test_survival.py on simulated split-face data (splitface.csv,
# written by make_data.py) and registry retreatment data (registry_retreatment.csv).
# Run from this folder: Rscript splitface.R   (writes splitface.json)
suppressPackageStartupMessages({library(survival); library(jsonlite)})
d <- read.csv("splitface.csv", stringsAsFactors = TRUE)
out <- list(R_version = R.version.string, survival_version = as.character(packageVersion("survival")))

cox_out <- function(cf) {
  sm <- summary(cf)
  list(term = names(coef(cf)), coef = unname(coef(cf)), se = unname(sqrt(diag(vcov(cf)))),
       naive_se = unname(sqrt(diag(cf$naive.var %||% vcov(cf)))), loglik = cf$loglik,
       hr_lower = unname(sm$conf.int[, "lower .95"]), hr_upper = unname(sm$conf.int[, "upper .95"]),
       p = unname(sm$coefficients[, ncol(sm$coefficients)]),
       zph_chisq = unname(cox.zph(cf)$table[, "chisq"]), zph_terms = rownames(cox.zph(cf)$table))
}
`%||%` <- function(a, b) if (is.null(a)) b else a
# split-face units (sides) are clustered within subjects: robust sandwich SEs
out$cox_cluster_efron <- cox_out(coxph(Surv(time, event) ~ arm + phototype, data = d,
                                       cluster = subject_id))
out$cox_cluster_breslow <- cox_out(coxph(Surv(time, event) ~ arm + phototype, data = d,
                                         cluster = subject_id, ties = "breslow"))
out$cox_strata_efron <- cox_out(coxph(Surv(time, event) ~ arm + strata(sex), data = d))
out$cox_cluster_strata <- cox_out(coxph(Surv(time, event) ~ arm + phototype + strata(sex),
                                        data = d, cluster = subject_id))

# interval-censored AFT: lower = 0 is left-censoring (NA), upper = Inf is right-censoring (NA)
l <- ifelse(d$lower == 0, NA, d$lower)
r <- ifelse(is.infinite(d$upper), NA, d$upper)
for (dist in c("weibull", "lognormal")) {
  # rel.tolerance tightened from 1e-9 so that R, too, reports the optimum to ~1e-10
  fit <- survreg(Surv(l, r, type = "interval2") ~ arm, data = d, dist = dist,
                 control = survreg.control(rel.tolerance = 1e-12))
  nd <- data.frame(arm = levels(d$arm))
  pr <- predict(fit, newdata = nd, type = "uquantile", p = 0.5, se.fit = TRUE)
  out[[paste0("survreg_", dist)]] <- list(
    term = names(coef(fit)), coef = unname(coef(fit)), log_scale = log(fit$scale),
    se = unname(sqrt(diag(vcov(fit)))), loglik = fit$loglik[2], n = nrow(fit$y),
    arm = levels(d$arm), log_median = unname(pr$fit), log_median_se = unname(pr$se.fit))
}

# competing risks: Aalen-Johansen via a multi-state survfit (first factor level = censoring)
g <- read.csv("registry_retreatment.csv", stringsAsFactors = FALSE)
g$state <- factor(g$event_type, levels = c("censored", "retreated", "lost_to_follow_up"))
aj_out <- function(fit, strata = NULL) {
  s <- summary(fit, censored = TRUE)
  j <- which(fit$states == "retreated")
  list(time = s$time, n_risk = s$n.risk[, 1], pstate = s$pstate[, j], std_err = s$std.err[, j],
       lower = s$lower[, j], upper = s$upper[, j],
       strata = if (is.null(s$strata)) NULL else as.character(s$strata))
}
out$aj_all <- aj_out(survfit(Surv(time, state) ~ 1, data = g))
out$aj_arm <- aj_out(survfit(Surv(time, state) ~ arm, data = g))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "splitface.json")
