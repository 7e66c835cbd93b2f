# Reference numbers for tests/test_means.py: emmeans' marginal means, contrasts and multiplicity
# adjustments on an lmer fit (parallel.csv) and response-scale means of a logistic glm
# (binary.csv). Run from the repository root:  Rscript tests/r/means/means.R
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(emmeans); library(jsonlite)})
emm_options(lmer.df = "satterthwaite")
here <- "tests/r/means"

table_of <- function(x) {
  d <- as.data.frame(x)
  d[] <- lapply(d, function(v) if (is.factor(v)) as.character(v) else v)
  d
}

# Each contrast family with each adjustment: p-values and intervals in one summary.
contrast_tables <- function(emm, methods, adjusts) {
  out <- list()
  for (m in methods) for (a in adjusts) {
    set.seed(20261207)  # mvt is Monte-Carlo (mvtnorm's Genz-Bretz)
    con <- contrast(emm, m, adjust = a)
    out[[paste(m, a, sep = "/")]] <- table_of(summary(con, infer = c(TRUE, TRUE)))
  }
  out
}

# Correlation of the contrast estimates within each by group (the mvt adjustment's input).
contrast_corr <- function(emm, method) {
  con <- contrast(emm, method)
  v <- cov2cor(vcov(con))
  d <- table_of(summary(con))
  by <- if ("visit" %in% names(d)) d$visit else rep("all", nrow(d))
  lapply(split(seq_len(nrow(d)), by), function(i) unname(v[i, i, drop = FALSE]))
}

d <- read.csv(file.path(here, "parallel.csv"))
d$arm <- factor(d$arm); d$visit <- factor(d$visit)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
m <- lmer(score ~ visit * arm + (1 | patient), d, REML = TRUE, control = ctrl)
emm <- emmeans(m, ~ arm | visit)
adjusts <- c("none", "tukey", "dunnettx", "mvt", "sidak", "bonferroni", "holm")
lmm_out <- list(
  loglik = as.numeric(logLik(m)),
  emmeans = table_of(summary(emm)),
  contrasts = c(contrast_tables(emm, "pairwise", adjusts),
                contrast_tables(emm, "trt.vs.ctrl", setdiff(adjusts, "tukey"))),
  corr = list(pairwise = contrast_corr(emm, "pairwise"),
              trt.vs.ctrl = contrast_corr(emm, "trt.vs.ctrl"))
)

b <- read.csv(file.path(here, "binary.csv"))
b$arm <- factor(b$arm)
g <- glm(y ~ arm + age, binomial, b, control = glm.control(epsilon = 1e-14, maxit = 100))
emm_g <- emmeans(g, ~ arm)
glm_out <- list(
  coef = unname(coef(g)),
  response = table_of(summary(emmeans(g, ~ arm, type = "response"), infer = c(TRUE, TRUE))),
  link = table_of(summary(emm_g, infer = c(TRUE, TRUE))),
  contrasts = c(contrast_tables(emm_g, "pairwise", c("none", "tukey", "mvt", "holm")),
                contrast_tables(emm_g, "trt.vs.ctrl", c("dunnettx", "mvt"))),
  corr = list(pairwise = contrast_corr(emm_g, "pairwise"),
              trt.vs.ctrl = contrast_corr(emm_g, "trt.vs.ctrl"))
)

writeLines(toJSON(list(lmer = lmm_out, glm = glm_out,
                       versions = list(emmeans = as.character(packageVersion("emmeans")),
                                       lme4 = as.character(packageVersion("lme4")),
                                       mvtnorm = as.character(packageVersion("mvtnorm")))),
                  digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           file.path(here, "means.json"))
