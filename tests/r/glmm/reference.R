# Reference numbers for tests/test_glmm*.py: ordinal::clmm and lme4::glmer, refitted tightly.
# Run from the repository root:  Rscript tests/r/glmm/reference.R
# Writes the public data sets as CSV (so tests need no R) and glmm.json beside this script.
suppressPackageStartupMessages({library(ordinal); library(lme4); library(jsonlite); library(numDeriv)
  library(emmeans)})
dir <- "tests/r/glmm"

# Tight optima: clmm's inner (conditional-mode) gradient tolerance 1e-8 (1e-10 is below what its
# step-halving can reach) and nlminb's rel.tol; for glmer bobyqa's rhoend and PIRLS' tolPwrss
# (lme4's default 1e-7 leaves the conditional modes inexact enough to move the Laplace optimum
# in the 4th digit: cbpp logLik -92.026566 at 1e-7, -92.026282 at 1e-10; the nested split-face
# glmer needs 1e-14: -321.7090836 at 1e-12, -321.7090698 at 1e-14).
cctrl <- clmm.control(method = "nlminb", gradTol = 1e-8, maxIter = 500,
                      rel.tol = 1e-12, eval.max = 1e5, iter.max = 1e5)
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
                      tolPwrss = 1e-14)

# clmm's vcov() comes from central differences with step 1e-4 (ordinal's deriv12) of an
# objective whose conditional modes are solved only to gradTol: at Laplace that moves SEs in the
# 3rd digit. For one scalar random effect (ordinal's "ssr" path) the Hessian is recomputed here
# with numDeriv's Richardson extrapolation on ordinal's own objective (se_numderiv).
numderiv_se <- function(m, formula, data, nAGQ, link) {
  if (length(m$ST) != 1) return(NULL)
  rho <- clmm(formula, data = data, nAGQ = nAGQ, link = link, control = cctrl, doFit = FALSE)
  f <- if (nAGQ > 1) ordinal:::getNAGQ.ssr else ordinal:::getNLA.ssr
  par <- c(m$alpha, m$beta, log(unlist(m$ST)))
  h <- numDeriv::hessian(function(p) f(rho, p), par)
  se <- sqrt(diag(solve(h)))
  names(se) <- rownames(vcov(m))
  as.list(se)
}

clmm_summary <- function(m, m_default, se_numderiv) {
  v <- vcov(m)
  list(
    call = paste(deparse(m$call), collapse = " "),
    alpha = as.list(m$alpha), beta = as.list(m$beta),
    se = as.list(sqrt(diag(v))), vcov_names = rownames(v), se_numderiv = se_numderiv,
    sd = unname(unlist(m$ST)), sd_names = names(m$ST),
    loglik = as.numeric(logLik(m)), aic = AIC(m), bic = BIC(m),
    nobs = nobs(m), loglik_default_control = as.numeric(logLik(m_default)),
    max_grad = max(abs(m$gradient))
  )
}

glmer_summary <- function(m, m_default) {
  co <- summary(m)$coefficients
  vc <- as.data.frame(VarCorr(m))
  list(
    call = paste(deparse(m@call), collapse = " "),
    fixed = list(term = rownames(co), estimate = unname(co[, 1]), std_error = unname(co[, 2]),
                 statistic = unname(co[, 3]), p_value = unname(co[, 4])),
    varcorr = list(grp = vc$grp, vcov = vc$vcov, sdcor = vc$sdcor),
    theta = unname(getME(m, "theta")),
    loglik = as.numeric(logLik(m)), aic = AIC(m), bic = BIC(m), nobs = nobs(m),
    loglik_default_control = as.numeric(logLik(m_default)),
    singular = isSingular(m)
  )
}

# Restart each optimiser from its own optimum while that raises logLik (by more than 1e-10):
# a stop on a flat ridge is not the optimum.
fit_clmm <- function(formula, data, nAGQ = 1, link = "logit") {
  m <- clmm(formula, data = data, nAGQ = nAGQ, link = link, control = cctrl)
  for (i in 1:5) {
    st <- unname(unlist(m$ST))  # one random effect: (alpha, beta, log sd); else a list
    start <- if (length(st) == 1) c(m$alpha, m$beta, log(st)) else list(c(m$alpha, m$beta), st)
    m2 <- clmm(formula, data = data, nAGQ = nAGQ, link = link, control = cctrl, start = start)
    if (!(logLik(m2) > logLik(m) + 1e-10)) break
    m <- m2
  }
  m0 <- clmm(formula, data = data, nAGQ = nAGQ, link = link)
  clmm_summary(m, m0, numderiv_se(m, formula, data, nAGQ, link))
}

fit_glmer <- function(formula, data, nAGQ = 1, family = binomial) {
  m <- glmer(formula, data = data, family = family, nAGQ = nAGQ, control = gctrl)
  for (i in 1:5) {
    m2 <- glmer(formula, data = data, family = family, nAGQ = nAGQ, control = gctrl,
                start = list(theta = getME(m, "theta"), fixef = fixef(m)))
    if (!(logLik(m2) > logLik(m) + 1e-10)) break
    m <- m2
  }
  m0 <- glmer(formula, data = data, family = family, nAGQ = nAGQ)
  glmer_summary(m, m0)
}

# Public data sets, written for the Python tests.
write.csv(wine[, c("rating", "temp", "contact", "bottle", "judge")], file.path(dir, "wine.csv"),
          row.names = FALSE)
write.csv(cbpp, file.path(dir, "cbpp.csv"), row.names = FALSE)
write.csv(grouseticks[, c("TICKS", "BROOD", "YEAR", "LOCATION", "cHEIGHT")],
          file.path(dir, "grouseticks.csv"), row.names = FALSE)

sf <- read.csv(file.path(dir, "splitface_grades.csv"))
sf$grade_f <- factor(sf$grade, ordered = TRUE)
sf$visit <- factor(sf$visit)
sf$patient <- factor(sf$patient); sf$side <- factor(sf$side)
sf$arm <- factor(sf$arm)                 # MN (control), PRP

out <- list(
  versions = list(R = R.version.string, ordinal = as.character(packageVersion("ordinal")),
                  lme4 = as.character(packageVersion("lme4"))),
  wine = list(
    laplace = fit_clmm(rating ~ temp + contact + (1 | judge), wine),
    agq5 = fit_clmm(rating ~ temp + contact + (1 | judge), wine, nAGQ = 5),
    agq10 = fit_clmm(rating ~ temp + contact + (1 | judge), wine, nAGQ = 10),
    probit = fit_clmm(rating ~ temp + contact + (1 | judge), wine, link = "probit"),
    probit_agq7 = fit_clmm(rating ~ temp + contact + (1 | judge), wine, nAGQ = 7,
                           link = "probit")),
  cbpp = list(
    laplace = fit_glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp),
    agq5 = fit_glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, 5),
    agq10 = fit_glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, 10),
    probit = fit_glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, 1,
                       binomial(link = "probit")),
    cloglog = fit_glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, 1,
                        binomial(link = "cloglog"))),
  grouseticks = list(
    laplace = fit_glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD), grouseticks, 1, poisson),
    agq10 = fit_glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD), grouseticks, 10, poisson),
    nested = fit_glmer(TICKS ~ YEAR + cHEIGHT + (1 | LOCATION/BROOD), grouseticks, 1,
                       poisson)),
  splitface = list(
    clmm_nested = fit_clmm(grade_f ~ visit * arm + (1 | patient) + (1 | patient:side), sf),
    clmm_agq10 = fit_clmm(grade_f ~ visit * arm + (1 | patient), sf, nAGQ = 10),
    glmer_nested = fit_glmer(responder ~ visit * arm + (1 | patient/side), sf),
    glmer_agq10 = fit_glmer(responder ~ visit * arm + (1 | patient), sf, 10))
)
# Marginal means and contrasts (emmeans, z tests: df = Inf).
emm_table <- function(x) {
  d <- as.data.frame(x)
  d[] <- lapply(d, function(v) if (is.factor(v)) as.character(v) else v)
  d
}
m_cbpp <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial,
                control = gctrl)
emm_cbpp <- emmeans(m_cbpp, ~ period, type = "response")
m_wine <- clmm(rating ~ temp + contact + (1 | judge), data = wine, control = cctrl)
out$emmeans <- list(
  cbpp_response = emm_table(emm_cbpp),
  cbpp_dunnettx = emm_table(summary(contrast(emmeans(m_cbpp, ~ period), "trt.vs.ctrl"),
                                    infer = TRUE)),
  wine_prob = emm_table(emmeans(m_wine, ~ rating | temp + contact, mode = "prob")),
  wine_contrast = emm_table(summary(contrast(emmeans(m_wine, ~ temp | contact),
                                             "trt.vs.ctrl"), infer = TRUE))
)

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           file.path(dir, "glmm.json"))
