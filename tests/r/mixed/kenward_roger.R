# Kenward-Roger reference values (pbkrtest through lmerTest) for tests/test_mixed_kr.py.
# Run from the repository root:  Rscript tests/r/mixed/kenward_roger.R
source("tests/r/mixed/common.R")
kr <- function(fit) {
  co <- summary(fit, ddf = "Kenward-Roger")$coefficients
  list(term = rownames(co), estimate = unname(co[, "Estimate"]),
       std_error = unname(co[, "Std. Error"]), df = unname(co[, "df"]))
}
m_sleep <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE, control = ctrl)
d <- read.csv("tests/r/mixed/splitface.csv")
m_visit <- lmer(score ~ visit * arm + (1 | patient/side), d, REML = TRUE, control = ctrl)
m_week <- lmer(score ~ week * arm + (week | patient) + (1 | patient:side), d, REML = TRUE,
               control = ctrl)
# emmeans' own default df for lmer fits is Kenward-Roger
emm_options(lmer.df = "kenward-roger")
con_visit <- confint(contrast(emmeans(m_visit, ~ arm | visit), "trt.vs.ctrl", adjust = "none"))
write_json_here(list(
  pbkrtest = as.character(packageVersion("pbkrtest")),
  sleep_slope = kr(m_sleep), visit = kr(m_visit), week = kr(m_week),
  visit_contrast = emm_table(con_visit)
), "kenward_roger.json")
