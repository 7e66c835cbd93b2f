# Fit the simulator's stated LMM with lme4 to check that truth.json is recoverable.
#
# Data: the split-body trial simulated by
#   python -c "from outcomes.simulate import simulate_trial, write_feeds; \
#              write_feeds(simulate_trial(seed=21, n_subjects=500), 'FEEDS')"
# Run:  Rscript tests/r/simulate/trial_lmm.R FEEDS
# Writes tests/r/simulate/trial_lmm.json (estimates, SEs, and the md5 of the input
# assessments.csv so the test can tell when the simulator's output has changed).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
feeds <- args[1]
a <- read.csv(file.path(feeds, "assessments.csv"))
u <- read.csv(file.path(feeds, "units.csv"))
truth <- fromJSON(file.path(feeds, "truth.json"))
g <- merge(a[a$instrument == "gb_quant", ], u[, c("unit_id", "subject_id", "modality")])
g$week <- g$day / 7
g$combo <- as.numeric(g$modality == truth$arms$combination)
fit <- lmer(value ~ week * combo + (week | subject_id) + (1 | unit_id), data = g, REML = TRUE,
            control = lmerControl(optimizer = "bobyqa"))
vc <- as.data.frame(VarCorr(fit))
pick <- function(grp, v1, v2 = NA) {
  row <- vc[vc$grp == grp & vc$var1 %in% v1 & (if (is.na(v2)) is.na(vc$var2) else vc$var2 %in% v2), ]
  row$sdcor
}
co <- summary(fit)$coefficients
out <- list(
  call = "lmer(value ~ week * combo + (week | subject_id) + (1 | unit_id), REML = TRUE, control = lmerControl(optimizer = \"bobyqa\"))",
  lme4_version = as.character(packageVersion("lme4")),
  input_md5 = unname(tools::md5sum(file.path(feeds, "assessments.csv"))),
  n_obs = nrow(g),
  fixed = as.list(setNames(co[, "Estimate"], rownames(co))),
  fixed_se = as.list(setNames(co[, "Std. Error"], rownames(co))),
  sd_subject_intercept = pick("subject_id", "(Intercept)"),
  sd_subject_week = pick("subject_id", "week"),
  corr_subject = pick("subject_id", "(Intercept)", "week"),
  sd_unit = pick("unit_id", "(Intercept)"),
  sd_residual = pick("Residual", NA),
  singular = isSingular(fit)
)
write(toJSON(out, auto_unbox = TRUE, digits = 10, pretty = TRUE),
      file.path("tests", "r", "simulate", "trial_lmm.json"))
