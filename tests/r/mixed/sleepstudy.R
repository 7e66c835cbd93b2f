# Reference values for tests/test_mixed.py: lme4's sleepstudy.
# Run from the repository root:  Rscript tests/r/mixed/sleepstudy.R
# Writes sleepstudy.csv (the data, from lme4) and sleepstudy.json (the numbers).
source("tests/r/mixed/common.R")
here <- "tests/r/mixed"
write.csv(sleepstudy, file.path(here, "sleepstudy.csv"), row.names = FALSE)

m_slope_reml <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE, control = ctrl)
m_slope_ml <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE, control = ctrl)
m_int_reml <- lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = TRUE, control = ctrl)
# default optimiser too, to show how far lme4's own default stops from the tight optimum
m_slope_default <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE)

out <- list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  lmerTest = as.character(packageVersion("lmerTest"))),
  control = "lmerControl(optimizer = 'bobyqa', optCtrl = list(rhoend = 1e-12, maxfun = 1e5))",
  slope_reml = summarise(m_slope_reml, TRUE),
  slope_ml = summarise(m_slope_ml, FALSE),
  intercept_reml = summarise(m_int_reml, TRUE),
  slope_reml_default_optimizer = summarise(m_slope_default, TRUE)
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(here, "sleepstudy.json"))
