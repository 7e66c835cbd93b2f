# nlme::gls fits of the models whose SAS PROC MIXED Kenward-Roger numbers tests/test_mmrm_sas.py
# quotes (FEV1 ~ ARMCD, REML): is the optimum SAS reports the REML optimum?
# Run from this folder: Rscript gls_sas_models.R  (writes gls_sas_models.json)
suppressPackageStartupMessages({library(nlme); library(jsonlite)})
fev <- read.csv("fev_data.csv")
fev <- fev[!is.na(fev$FEV1), ]
fev$AVISIT <- factor(fev$AVISIT, levels = paste0("VIS", 1:4))
fev$ARMCD <- factor(fev$ARMCD, levels = c("PBO", "TRT"))
ctrl <- list(
  glsControl(maxIter = 1000, msMaxIter = 1000, tolerance = 1e-12, msTol = 1e-14,
             returnObject = FALSE, opt = "optim", optimMethod = "BFGS"),
  glsControl(maxIter = 1000, msMaxIter = 1000, tolerance = 1e-12, msTol = 1e-14,
             returnObject = FALSE)
)
best <- function(...) {
  fits <- lapply(ctrl, function(cc) try(gls(..., control = cc), silent = TRUE))
  fits <- Filter(function(f) !inherits(f, "try-error"), fits)
  fits[[which.max(sapply(fits, logLik))]]
}
full_cov <- function(fit) {
  subj <- names(which(table(fev$USUBJID) == 4))[1]
  m <- getVarCov(fit, individual = subj); matrix(as.numeric(m), nrow(m))
}
vi <- varIdent(form = ~ 1 | AVISIT)
specs <- list(
  us = list(correlation = corSymm(form = ~ VISITN | USUBJID), weights = vi),
  ar1 = list(correlation = corAR1(form = ~ VISITN | USUBJID), weights = NULL),
  ar1h = list(correlation = corAR1(form = ~ VISITN | USUBJID), weights = vi),
  cs = list(correlation = corCompSymm(form = ~ VISITN | USUBJID), weights = NULL),
  csh = list(correlation = corCompSymm(form = ~ VISITN | USUBJID), weights = vi)
)
out <- list()
for (name in names(specs)) {
  s <- specs[[name]]
  fit <- best(FEV1 ~ ARMCD, data = fev, correlation = s$correlation, weights = s$weights,
              method = "REML")
  out[[name]] <- list(coef = unname(coef(fit)), loglik = as.numeric(logLik(fit)),
                      cov = full_cov(fit))
}
out$R <- R.version.string
out$nlme <- as.character(packageVersion("nlme"))
write_json(out, "gls_sas_models.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
