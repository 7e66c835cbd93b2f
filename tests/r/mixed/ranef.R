# Reference values for tests/test_lmm_random_effects.py: conditional modes (BLUPs), fitted
# values and conditional residuals of lmer fits on splitface.csv (nested intercepts and a random
# week slope). Run from the repository root:  Rscript tests/r/mixed/ranef.R
source("tests/r/mixed/common.R")
d <- read.csv("tests/r/mixed/splitface.csv")
d$arm <- factor(d$arm)
m <- lmer(score ~ week * arm + (week | patient) + (1 | patient:side), d, REML = TRUE,
          control = ctrl)
re <- ranef(m)
out <- list(
  loglik = as.numeric(logLik(m)),
  patient = list(level = rownames(re$patient), intercept = re$patient[, "(Intercept)"],
                 week = re$patient[, "week"]),
  patient_side = list(level = rownames(re$`patient:side`),
                      intercept = re$`patient:side`[, "(Intercept)"]),
  fitted = unname(fitted(m)),
  residual = unname(residuals(m))
)
write_json_here(out, "ranef.json")
