# Split-face MMRM reference: nlme::lme with a patient random intercept and an unstructured
# covariance over visits within a side (corSymm + varIdent), REML and ML.
# Run from this folder: Rscript lme_splitface.R  (writes lme_splitface.json)
suppressPackageStartupMessages({library(nlme); library(jsonlite)})
sf <- read.csv("splitface.csv")
sf$visit <- factor(sf$visit, levels = paste("Week", c(4, 8, 12, 16)))
sf$arm <- factor(sf$arm, levels = c("MN", "MN+PRP"))
ctrl <- lmeControl(maxIter = 1000, msMaxIter = 1000, niterEM = 100, tolerance = 1e-12,
                   msTol = 1e-14, returnObject = FALSE)
out <- list()
for (method in c("REML", "ML")) {
  fit <- lme(score ~ arm * visit, random = ~ 1 | patient_id, data = sf, method = method,
             correlation = corSymm(form = ~ visit_index | patient_id / unit_id),
             weights = varIdent(form = ~ 1 | visit), control = ctrl)
  # within-side covariance: sigma^2 D R D (varIdent sd ratios D, corSymm correlations R)
  sds <- fit$sigma * coef(fit$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
  sds <- sds[levels(sf$visit)]
  rr <- diag(4)
  rr[lower.tri(rr)] <- coef(fit$modelStruct$corStruct, unconstrained = FALSE)
  rr[upper.tri(rr)] <- t(rr)[upper.tri(rr)]
  vc <- diag(sds) %*% rr %*% diag(sds)
  out[[method]] <- list(
    coef = unname(fixef(fit)), names = names(fixef(fit)),
    se = unname(sqrt(diag(vcov(fit)))), loglik = as.numeric(logLik(fit)),
    tau2 = as.numeric(getVarCov(fit))[1],
    within_cov = matrix(as.numeric(vc), nrow(vc))
  )
}
out$R <- R.version.string
out$nlme <- as.character(packageVersion("nlme"))
write_json(out, "lme_splitface.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
