# Reference values from R survival for tests/test_survival.py: Kaplan-Meier with every
# conf.type (log, log-log, plain), whole curves and quantiles with their limits; and the
# CAMIS whas500 log-rank and Cox cases.
# Run from this folder: Rscript km_conf.R   (writes whas500.csv, nonmonotone.csv, km_conf.json)
# whas500: the CAMIS copy (../shared/reference-data/camis/whas500.csv), time in years as
# CAMIS has it, round(LENFOL / 365.25, 2); lung: survival::lung (lung.csv, written by lung.R).
suppressPackageStartupMessages({library(survival); library(jsonlite)})
camis <- "/work/shared/reference-data/camis/whas500.csv"
if (file.exists(camis)) {
  w <- read.csv(camis)[, c("ID", "AGE", "GENDER", "AFB", "LENFOL", "FSTAT")]
  write.csv(w, "whas500.csv", row.names = FALSE)
}
whas <- read.csv("whas500.csv")
whas$Y <- round(whas$LENFOL / 365.25, 2)
lung <- read.csv("lung.csv")

# A data set whose upper band is not monotone and ends below its earlier maximum of 1 - upper:
# ten early events among 100 pull the log-scale upper limit to 0.961; after 70 censorings an
# event in a risk set of 20 lifts it to 0.964, where it stays (the rest are censored). So
# 1 - upper reaches 0.039 at day 10 and ends at 0.036: R's quantile(fit, 0.038) upper limit
# is day 10, where a search that reads the band as sorted finds nothing.
nonmono <- data.frame(time = c(1:10, 10 + 1:70, 81, 81 + 1:19),
                      event = c(rep(1, 10), rep(0, 70), 1, rep(0, 19)))
write.csv(nonmono, "nonmonotone.csv", row.names = FALSE)

probs <- c(0.02, 0.038, 0.1, 0.25, 0.5, 0.75, 0.9)
na <- function(x) ifelse(is.na(x), "NA", x)
one <- function(fit) {
  s <- summary(fit, censored = TRUE)
  q <- quantile(fit, probs = probs)
  strata <- if (is.null(s$strata)) rep("all", length(s$time)) else as.character(s$strata)
  qm <- function(m) if (is.matrix(m)) as.vector(t(m)) else unname(m)
  list(strata = strata, time = s$time, surv = s$surv, std_err = na(s$std.err),
       lower = na(s$lower), upper = na(s$upper),
       q_estimate = na(qm(q$quantile)), q_lower = na(qm(q$lower)), q_upper = na(qm(q$upper)),
       upper_monotone = !any(sapply(split(s$upper, strata), function(u) is.unsorted(rev(u[!is.na(u)])))))
}
out <- list(R_version = R.version.string, survival_version = as.character(packageVersion("survival")),
            probs = probs)
for (ct in c("log", "log-log", "plain")) {
  out[[ct]] <- list(
    whas500_afb = one(survfit(Surv(Y, FSTAT) ~ AFB, data = whas, conf.type = ct)),
    whas500_gender = one(survfit(Surv(Y, FSTAT) ~ GENDER, data = whas, conf.type = ct)),
    lung_sex = one(survfit(Surv(time, status) ~ sex, data = lung, conf.type = ct)),
    lung_all = one(survfit(Surv(time, status) ~ 1, data = lung, conf.type = ct)),
    nonmonotone = one(survfit(Surv(time, event) ~ 1, data = nonmono, conf.type = ct))
  )
}
# the other CAMIS whas500 cases: log-rank by AFB, Cox on AGE + GENDER + AFB (both ties)
lr <- survdiff(Surv(Y, FSTAT) ~ AFB, data = whas)
out$whas500_logrank <- list(chisq = lr$chisq, obs = unname(lr$obs), exp = unname(lr$exp),
                            p = pchisq(lr$chisq, 1, lower.tail = FALSE))
for (ties in c("efron", "breslow")) {
  cf <- coxph(Surv(Y, FSTAT) ~ AGE + GENDER + AFB, data = whas, ties = ties)
  out[[paste0("whas500_cox_", ties)]] <- list(term = names(coef(cf)), coef = unname(coef(cf)),
                                              se = unname(sqrt(diag(vcov(cf)))), loglik = cf$loglik)
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "km_conf.json")
