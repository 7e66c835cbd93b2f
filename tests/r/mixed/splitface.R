# Reference values for tests/test_mixed_splitface.py: a simulated split-face trial
# (splitface.csv, written by make_data.py with a fixed seed) and a deliberately singular data
# set (singular.csv). Run from the repository root:  Rscript tests/r/mixed/splitface.R
source("tests/r/mixed/common.R")
emm_options(lmer.df = "satterthwaite")   # emmeans' default for lmer is Kenward-Roger

d <- read.csv("tests/r/mixed/splitface.csv")
d$visit <- factor(d$visit)
d$arm <- factor(d$arm)                   # levels MN (control), PRP, RF

# A. categorical visit, side nested in patient: (1 | patient/side)
m_visit <- lmer(score ~ visit * arm + (1 | patient/side), d, REML = TRUE, control = ctrl)
emm_visit <- emmeans(m_visit, ~ arm | visit)
con_visit <- contrast(emm_visit, "trt.vs.ctrl", adjust = "none")
con_visit_bonf <- contrast(emm_visit, "trt.vs.ctrl", adjust = "bonferroni")

# B. continuous week, random slope for patient plus side-within-patient intercept
m_week <- lmer(score ~ week * arm + (week | patient) + (1 | patient:side), d, REML = TRUE,
               control = ctrl)
m_week_ml <- lmer(score ~ week * arm + (week | patient) + (1 | patient:side), d, REML = FALSE,
                  control = ctrl)
emm_week <- emmeans(m_week, ~ arm, at = list(week = 12))
con_week <- contrast(emm_week, "trt.vs.ctrl", adjust = "none")
# a custom contrast: combination-by-time interaction PRP minus RF
L <- matrix(0, 1, length(fixef(m_week))); colnames(L) <- names(fixef(m_week))
L[1, "week:armPRP"] <- 1; L[1, "week:armRF"] <- -1
ct_week <- contest(m_week, L, joint = FALSE, confint = TRUE)

# C. ANCOVA style: post-baseline visits, baseline score and age as covariates (set at their
#    means by emmeans)
post <- droplevels(subset(d, week > 0))
m_ancova <- lmer(score ~ baseline + age + visit * arm + (1 | patient/side), post, REML = TRUE,
                 control = ctrl)
emm_ancova <- emmeans(m_ancova, ~ arm | visit)
con_ancova <- contrast(emm_ancova, "trt.vs.ctrl", adjust = "none")
con_ancova_pair <- contrast(emm_ancova, "pairwise", adjust = "holm")

# D. singular: no between-patient variation in the data
s <- read.csv("tests/r/mixed/singular.csv")
m_sing <- lmer(score ~ week * arm + (1 | patient), s, REML = TRUE, control = ctrl)

write_json_here(list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  lmerTest = as.character(packageVersion("lmerTest")),
                  emmeans = as.character(packageVersion("emmeans"))),
  visit = c(summarise(m_visit, TRUE), list(
    emmeans = emm_table(emm_visit),
    contrast = emm_table(confint(con_visit)), contrast_p = emm_table(con_visit),
    contrast_bonf = emm_table(confint(con_visit_bonf)), contrast_bonf_p = emm_table(con_visit_bonf))),
  week = c(summarise(m_week, TRUE), list(
    emmeans = emm_table(emm_week), contrast = emm_table(confint(con_week)),
    contrast_p = emm_table(con_week), contest = as.data.frame(ct_week))),
  week_ml = summarise(m_week_ml, FALSE),
  ancova = c(summarise(m_ancova, TRUE), list(
    emmeans = emm_table(emm_ancova), contrast = emm_table(confint(con_ancova)),
    contrast_p = emm_table(con_ancova), pairwise_holm = emm_table(con_ancova_pair),
    pairwise_holm_ci = emm_table(confint(con_ancova_pair)),
    means = list(baseline = mean(post$baseline), age = mean(post$age)))),
  singular = summarise(m_sing, TRUE)
), "splitface.json")
