# Helpers shared by the R scripts in this folder (sourced, not run alone).
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(emmeans); library(jsonlite)})

# Tight optimum, so the reference is lme4's optimum rather than where bobyqa happened to stop.
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))

summarise <- function(fit, reml) {
  co <- summary(fit)$coefficients          # lmerTest: Satterthwaite df
  vc <- as.data.frame(VarCorr(fit))
  list(
    call = deparse(fit@call),
    fixed = list(term = rownames(co), estimate = unname(co[, "Estimate"]),
                 std_error = unname(co[, "Std. Error"]), df = unname(co[, "df"]),
                 statistic = unname(co[, "t value"]), p_value = unname(co[, "Pr(>|t|)"])),
    varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = ifelse(is.na(vc$var2), "", vc$var2),
                   vcov = vc$vcov, sdcor = vc$sdcor),
    theta = unname(getME(fit, "theta")),
    sigma = sigma(fit),
    loglik = as.numeric(logLik(fit)),
    aic = AIC(fit), bic = BIC(fit),
    deviance = if (reml) REMLcrit(fit) else deviance(fit),  # -2 logLik
    nobs = nobs(fit),
    singular = isSingular(fit)
  )
}


emm_table <- function(x) {
  d <- if (inherits(x, "summary_emm")) as.data.frame(x) else as.data.frame(summary(x))
  d[] <- lapply(d, function(v) if (is.factor(v)) as.character(v) else v)
  d
}

write_json_here <- function(x, file) {
  writeLines(toJSON(x, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
             file.path("tests/r/mixed", file))
}
