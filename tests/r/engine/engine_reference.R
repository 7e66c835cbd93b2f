# Reference numbers for tests/test_lmm_engine.py, from lme4 and lmerTest.
#
#   cd tests/r/engine && Rscript engine_reference.R
#
# Writes the simulated data sets (CSV) and reference.json. Every fit uses lme4's BOBYQA
# (minqa) with a final trust radius of 1e-12, so the references are the optimum, not a nearby
# point: with the default nloptwrap tolerances lme4 stops up to ~1e-4 (relative) away from
# it in theta on flat likelihoods such as the boundary and clinic cases.
# theta is reported in lme4's own order (terms by decreasing number of levels: innermost
# first); the tests reorder it to the engine's order (outermost first).
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

ctrl <- lmerControl(
  optimizer = "bobyqa",
  optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
  check.conv.singular = "ignore"
)

summarise_fit <- function(m, varpar_scale = 1.1) {
  theta <- unname(getME(m, "theta"))
  sigma <- sigma(m)
  varpar <- c(theta, sigma) * varpar_scale
  devfun <- update(m, devFunOnly = TRUE)
  reml <- isREML(m)
  list(
    formula = paste(deparse(formula(m)), collapse = ""),
    reml = reml,
    beta = unname(fixef(m)),
    beta_names = names(fixef(m)),
    se = unname(sqrt(diag(as.matrix(vcov(m))))),
    vcov = unname(as.matrix(vcov(m))),
    theta = theta,
    theta_names = names(getME(m, "theta")),
    sigma = sigma,
    loglik = as.numeric(logLik(m)),
    varcorr = as.data.frame(VarCorr(m))[, c("grp", "var1", "var2", "vcov", "sdcor")],
    singular = isSingular(m, tol = 1e-4),
    # lmerTest's deviance and covariance of beta at varpar = 1.1 * (theta, sigma)
    varpar = varpar,
    deviance_at_varpar = lmerTest:::devfun_vp(varpar, devfun = devfun, reml = reml),
    vcov_at_varpar = unname(as.matrix(lmerTest:::get_covbeta(varpar, devfun = devfun))),
    satterthwaite_df = unname(summary(m)$coefficients[, "df"])
  )
}

out <- list()

# 1. sleepstudy (lme4's data)
write.csv(sleepstudy, "sleepstudy.csv", row.names = FALSE)
out$sleep_slope_reml <- summarise_fit(
  lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE, control = ctrl))
out$sleep_slope_ml <- summarise_fit(
  lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE, control = ctrl))
out$sleep_intercept_reml <- summarise_fit(
  lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = TRUE, control = ctrl))

# 2. split-face: two sides nested in each patient, treatment arm by side
set.seed(20261125)
n_pat <- 40
sf <- expand.grid(visit = 0:3, side = c("L", "R"), patient = sprintf("P%02d", 1:n_pat))
sf$treated <- as.integer((sf$side == "L") == (as.integer(factor(sf$patient)) %% 2 == 0))
u_pat <- rnorm(n_pat, 0, 1.2)
u_side <- rnorm(2 * n_pat, 0, 0.6)
sf$y <- 5 + 0.4 * sf$visit + 0.5 * sf$treated + 0.3 * sf$visit * sf$treated +
  u_pat[as.integer(factor(sf$patient))] +
  u_side[as.integer(interaction(sf$side, sf$patient, lex.order = TRUE))] + rnorm(nrow(sf), 0, 0.8)
sf <- sf[, c("patient", "side", "visit", "treated", "y")]
write.csv(sf, "splitface.csv", row.names = FALSE)
out$splitface_reml <- summarise_fit(
  lmer(y ~ visit * treated + (1 | patient / side), sf, REML = TRUE, control = ctrl))
out$splitface_ml <- summarise_fit(
  lmer(y ~ visit * treated + (1 | patient / side), sf, REML = FALSE, control = ctrl))

# 3. patient (intercept and slope) within clinic (intercept)
set.seed(777)
n_clinic <- 10
per_clinic <- 12
pc <- expand.grid(visit = 0:4, pat = 1:per_clinic, clinic = sprintf("C%02d", 1:n_clinic))
pc$patient <- sprintf("%s-%02d", pc$clinic, pc$pat)
pc$arm <- as.integer(pc$pat %% 2 == 0)
u_clin <- rnorm(n_clinic, 0, 1.0)
n_p <- n_clinic * per_clinic
b0 <- rnorm(n_p, 0, 1.5)
b1 <- 0.4 * b0 / 1.5 * 0.5 + rnorm(n_p, 0, 0.35)
pid <- as.integer(factor(pc$patient))
pc$y <- 20 - 0.8 * pc$visit - 0.6 * pc$arm * pc$visit + u_clin[as.integer(factor(pc$clinic))] +
  b0[pid] + b1[pid] * pc$visit + rnorm(nrow(pc), 0, 1)
pc <- pc[, c("clinic", "patient", "visit", "arm", "y")]
write.csv(pc, "clinic.csv", row.names = FALSE)
out$clinic_reml <- summarise_fit(
  lmer(y ~ visit * arm + (1 | clinic) + (visit | clinic:patient), pc, REML = TRUE,
       control = ctrl))

# 4. boundary: no between-patient variation at all. lme4 puts the intercept variance at zero
#    (theta = 0) and the slope fit at a correlation of -1 (a zero diagonal element of Lambda).
set.seed(2)
n_b <- 30
bd <- expand.grid(visit = 0:4, id = sprintf("S%02d", 1:n_b))
bd$arm <- as.integer(as.integer(factor(bd$id)) %% 2 == 0)
bd$y <- 10 + 0.5 * bd$visit + 0.4 * bd$arm + rnorm(nrow(bd), 0, 2)
bd <- bd[, c("id", "visit", "arm", "y")]
write.csv(bd, "boundary.csv", row.names = FALSE)
out$boundary_intercept_reml <- summarise_fit(
  lmer(y ~ visit + arm + (1 | id), bd, REML = TRUE, control = ctrl))
out$boundary_slope_reml <- summarise_fit(
  lmer(y ~ visit + arm + (visit | id), bd, REML = TRUE, control = ctrl))
out$boundary_intercept_ml <- summarise_fit(
  lmer(y ~ visit + arm + (1 | id), bd, REML = FALSE, control = ctrl))

# 5. a small intercept variance and no slope variance. With lme4's default optimiser settings
#    (nloptwrap) lme4 stops on the boundary at intercept variance 0 ("failed to converge with
#    1 negative eigenvalue"); with tight BOBYQA it finds the better point with correlation +1.
#    The tests check the engine finds the better one.
set.seed(4242)
n_b <- 30
bc <- expand.grid(visit = 0:4, id = sprintf("S%02d", 1:n_b))
bc$arm <- as.integer(as.integer(factor(bc$id)) %% 2 == 0)
bc$y <- 10 + 0.5 * bc$visit + 0.4 * bc$arm + rnorm(n_b, 0, 0.3)[as.integer(factor(bc$id))] +
  rnorm(nrow(bc), 0, 2)
bc <- bc[, c("id", "visit", "arm", "y")]
write.csv(bc, "boundary_corr.csv", row.names = FALSE)
out$boundary_corr_reml <- summarise_fit(
  lmer(y ~ visit + arm + (visit | id), bc, REML = TRUE, control = ctrl))
out$boundary_corr_reml_default <- summarise_fit(
  lmer(y ~ visit + arm + (visit | id), bc, REML = TRUE))

out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     lmerTest = as.character(packageVersion("lmerTest")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "reference.json")
