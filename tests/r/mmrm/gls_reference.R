# nlme::gls / nlme::lme fits that tests/test_mmrm_nlme.py compares against outcomes.mmrm.
# Run from this folder: Rscript gls_reference.R  (writes gls_reference.json)
suppressPackageStartupMessages({library(nlme); library(jsonlite)})
fev <- read.csv("fev_data.csv")
fev <- fev[!is.na(fev$FEV1), ]
fev$AVISIT <- factor(fev$AVISIT, levels = paste0("VIS", 1:4))
fev$ARMCD <- factor(fev$ARMCD, levels = c("PBO", "TRT"))
ctrl <- glsControl(maxIter = 1000, msMaxIter = 1000, tolerance = 1e-12, msTol = 1e-14,
                   returnObject = FALSE, opt = "optim", optimMethod = "BFGS")
ctrl_nlminb <- glsControl(maxIter = 1000, msMaxIter = 1000, tolerance = 1e-12, msTol = 1e-14,
                          returnObject = FALSE)
full_cov <- function(fit) {
  # covariance over the 4 visits, from a subject observed at all of them
  subj <- names(which(table(fev$USUBJID) == 4))[1]
  m <- getVarCov(fit, individual = subj); matrix(as.numeric(m), nrow(m))
}
best <- function(...) {
  fits <- list(try(gls(..., control = ctrl), silent = TRUE),
               try(gls(..., control = ctrl_nlminb), silent = TRUE))
  fits <- Filter(function(f) !inherits(f, "try-error"), fits)
  fits[[which.max(sapply(fits, logLik))]]
}
form <- FEV1 ~ ARMCD * AVISIT + FEV1_BL
out <- list()
specs <- list(
  us = list(correlation = corSymm(form = ~ VISITN | USUBJID), weights = varIdent(form = ~ 1 | AVISIT)),
  ar1 = list(correlation = corAR1(form = ~ VISITN | USUBJID), weights = NULL),
  ar1h = list(correlation = corAR1(form = ~ VISITN | USUBJID), weights = varIdent(form = ~ 1 | AVISIT)),
  cs = list(correlation = corCompSymm(form = ~ VISITN | USUBJID), weights = NULL),
  csh = list(correlation = corCompSymm(form = ~ VISITN | USUBJID), weights = varIdent(form = ~ 1 | AVISIT)),
  toep = list(correlation = corARMA(form = ~ VISITN | USUBJID, p = 3), weights = NULL),
  toeph = list(correlation = corARMA(form = ~ VISITN | USUBJID, p = 3), weights = varIdent(form = ~ 1 | AVISIT))
)
for (name in names(specs)) {
  for (method in c("REML", "ML")) {
    s <- specs[[name]]
    fit <- best(form, data = fev, correlation = s$correlation, weights = s$weights, method = method)
    out[[paste(name, method, sep = "_")]] <- list(
      coef = unname(coef(fit)), names = names(coef(fit)), se = unname(sqrt(diag(vcov(fit)))),
      loglik = as.numeric(logLik(fit)), cov = full_cov(fit)
    )
  }
}
# Per-arm unstructured fits (the grouped covariance by arm must reproduce them).
for (arm in c("PBO", "TRT")) {
  sub <- fev[fev$ARMCD == arm, ]
  fit <- gls(FEV1 ~ AVISIT, data = sub, method = "REML", control = ctrl_nlminb,
             correlation = corSymm(form = ~ VISITN | USUBJID), weights = varIdent(form = ~ 1 | AVISIT))
  out[[paste0("us_arm_", arm)]] <- list(coef = unname(coef(fit)), loglik = as.numeric(logLik(fit)),
                                       cov = matrix(as.numeric(getVarCov(fit, individual = names(which(table(sub$USUBJID) == 4))[1])), 4))
}
out$R <- R.version.string
out$nlme <- as.character(packageVersion("nlme"))
write_json(out, "gls_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
