# Reference values for the exchangeable GEE tests in tests/test_gee.py: R geepack::geeglm.
# Run from the repository root:  Rscript tests/r/mixed/gee_exchangeable.R
# Data: gee.csv (simulated by make_data.py) and resp_gee.csv (the CAMIS respiratory trial,
# copied from the CAMIS reference data: 111 subjects x 4 visits, binary outcome).
# geepack's moment estimators divide by N and by the number of within-cluster pairs (no "- p",
# unlike SAS PROC GENMOD); the toolkit's gee(..., convention = "geepack") follows them.
suppressPackageStartupMessages({library(geepack); library(jsonlite)})

summarise <- function(fit, call) {
  s <- summary(fit)
  list(call = call, term = names(coef(fit)), estimate = unname(coef(fit)),
       robust_se = unname(s$coefficients[, "Std.err"]),
       alpha = unname(fit$geese$alpha), scale = unname(fit$geese$gamma),
       n_clusters = length(unique(fit$id)))
}
ctrl <- geese.control(epsilon = 1e-12, maxit = 100)

d <- read.csv("tests/r/mixed/gee.csv")
d$arm <- factor(d$arm, levels = c("combo", "control"))  # patsy's order: combo first
d <- d[order(d$subject, d$time), ]
sim <- geeglm(responder ~ time + arm, family = binomial, data = d, id = factor(subject),
              corstr = "exchangeable", control = ctrl)

r <- read.csv("tests/r/mixed/resp_gee.csv")
r <- r[order(r$usubjid, r$avisitn), ]
resp <- geeglm(outcome ~ trtp + sex + age + base + avisitn, family = binomial, data = r,
               id = factor(usubjid), corstr = "exchangeable", control = ctrl)

writeLines(toJSON(list(
  versions = list(R = R.version.string, geepack = as.character(packageVersion("geepack"))),
  simulated = summarise(sim, "geeglm(responder ~ time + arm, binomial, d, id = subject, corstr = 'exchangeable')"),
  resp = summarise(resp, "geeglm(outcome ~ trtp + sex + age + base + avisitn, binomial, r, id = usubjid, corstr = 'exchangeable')")
), digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/r/mixed/gee_exchangeable.json")
