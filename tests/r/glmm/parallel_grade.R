# Reference for the weakly identified parallel-trial grade fit (tests/test_glmm_r.py).
# Data: outcomes.simulate.trial.simulate_trial(seed=3, design="parallel"), investigator gb_qual
# (tests/r/glmm/parallel_grades.csv). Run from the repository root:
#   Rscript tests/r/glmm/parallel_grade.R
suppressPackageStartupMessages({library(ordinal); library(jsonlite)})
dir <- "tests/r/glmm"
d <- read.csv(file.path(dir, "parallel_grades.csv"))
d$grade <- factor(d$grade, levels = 1:4, ordered = TRUE)
d$modality <- factor(d$modality, levels = c("MN", "MN+PRP"))
d$subject_id <- factor(d$subject_id)
f <- grade ~ week * modality + (1 | subject_id)
cctrl <- clmm.control(method = "nlminb", gradTol = 1e-8, maxIter = 500,
                      rel.tol = 1e-12, eval.max = 1e5, iter.max = 1e5)
m <- clmm(f, data = d, control = cctrl)
m0 <- clmm(f, data = d)
# logLik profile in the log-SD: ordinal's own Laplace objective, other parameters re-optimised.
rho <- clmm(f, data = d, control = cctrl, doFit = FALSE)
obj <- ordinal:::getNLA.ssr
p_hat <- c(m$alpha, m$beta, log(m$ST[[1]]))
k <- length(p_hat)
sds <- c(1, 2, 3, 5, 8, 10, 15, 20, 30)
prof <- sapply(sds, function(s) {
  o <- nlminb(p_hat[-k], function(p) obj(rho, c(p, log(s))),
              control = list(rel.tol = 1e-12, eval.max = 1e5, iter.max = 1e5))
  -o$objective
})
v <- vcov(m)
# vcov() differentiates with step 1e-4; numDeriv's Richardson extrapolation of the same objective
# (as reference.R's numderiv_se) is what the test compares standard errors with.
h <- numDeriv::hessian(function(p) obj(rho, p), p_hat)
se_nd <- sqrt(diag(solve(h)))
names(se_nd) <- rownames(v)
out <- list(
  versions = list(R = R.version.string, ordinal = as.character(packageVersion("ordinal"))),
  alpha = as.list(m$alpha), beta = as.list(m$beta), se = as.list(sqrt(diag(v))),
  se_numderiv = as.list(se_nd),
  sd = unname(m$ST[[1]]), loglik = as.numeric(logLik(m)),
  default = list(sd = unname(m0$ST[[1]]), loglik = as.numeric(logLik(m0))),
  profile = list(sd = sds, loglik = prof)
)
write_json(out, file.path(dir, "parallel_grade.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
