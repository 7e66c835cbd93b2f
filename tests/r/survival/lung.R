# Reference values from R survival for tests/test_survival.py (lung data).
# Run from this folder: Rscript lung.R   (writes lung.csv and lung.json)
suppressPackageStartupMessages({library(survival); library(jsonlite)})
lung <- survival::lung
write.csv(lung, "lung.csv", row.names = FALSE, na = "")
out <- list(R_version = R.version.string, survival_version = as.character(packageVersion("survival")))

# Kaplan-Meier per sex, R defaults: conf.type = "log", conf.int = 0.95
fit <- survfit(Surv(time, status) ~ sex, data = lung)
tab <- summary(fit)$table
out$km_table <- list(strata = rownames(tab), records = unname(tab[, "records"]),
                     events = unname(tab[, "events"]), median = unname(tab[, "median"]),
                     lower = unname(tab[, "0.95LCL"]), upper = unname(tab[, "0.95UCL"]))
q <- quantile(fit, probs = c(0.25, 0.5, 0.75))
out$km_quantiles <- list(quantile = unname(q$quantile), lower = unname(q$lower), upper = unname(q$upper),
                         strata = rownames(q$quantile))
s <- summary(fit, times = c(180, 365))
out$km_at <- list(strata = as.character(s$strata), time = s$time, n_risk = s$n.risk,
                  n_event = s$n.event, surv = s$surv, std_err = s$std.err,
                  lower = s$lower, upper = s$upper)
# full curve of the sex = 1 stratum (all event and censoring times)
s1 <- summary(fit[1], censored = TRUE)
out$km_curve_sex1 <- list(time = s1$time, n_risk = s1$n.risk, n_event = s1$n.event, surv = s1$surv,
                          std_err = s1$std.err, lower = s1$lower, upper = s1$upper)
# overall median: the whole sample
fit0 <- survfit(Surv(time, status) ~ 1, data = lung)
t0 <- summary(fit0)$table
out$km_overall <- list(median = unname(t0["median"]), lower = unname(t0["0.95LCL"]), upper = unname(t0["0.95UCL"]))

# log-rank
lr <- survdiff(Surv(time, status) ~ sex, data = lung)
out$logrank <- list(chisq = lr$chisq, df = length(lr$n) - 1, obs = unname(lr$obs), exp = unname(lr$exp),
                    p = pchisq(lr$chisq, length(lr$n) - 1, lower.tail = FALSE))
# stratified log-rank (ph.ecog has one missing value: R drops that row)
lrs <- survdiff(Surv(time, status) ~ sex + strata(ph.ecog), data = lung)
out$logrank_strata <- list(chisq = lrs$chisq, n = sum(lrs$n), p = pchisq(lrs$chisq, 1, lower.tail = FALSE))

# Cox: rows with missing ph.ecog are dropped (na.action = na.omit) -> n = 227
for (ties in c("efron", "breslow")) {
  cf <- coxph(Surv(time, status) ~ age + sex + ph.ecog, data = lung, ties = ties)
  sm <- summary(cf)
  out[[paste0("cox_", ties)]] <- list(
    term = names(coef(cf)), coef = unname(coef(cf)), se = unname(sqrt(diag(vcov(cf)))),
    z = unname(sm$coefficients[, "z"]), p = unname(sm$coefficients[, "Pr(>|z|)"]),
    hr = unname(exp(coef(cf))), hr_lower = unname(sm$conf.int[, "lower .95"]),
    hr_upper = unname(sm$conf.int[, "upper .95"]), loglik = cf$loglik, n = cf$n, nevent = cf$nevent,
    zph_chisq = unname(cox.zph(cf)$table[, "chisq"]), zph_df = unname(cox.zph(cf)$table[, "df"]),
    zph_p = unname(cox.zph(cf)$table[, "p"]), zph_terms = rownames(cox.zph(cf)$table),
    zph_identity_chisq = unname(cox.zph(cf, transform = "identity")$table[, "chisq"]))
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "lung.json")
