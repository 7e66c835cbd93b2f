# Reference values for tests/test_gee.py. geepack is not installed, so only the independence
# working correlation has an R reference: its GEE estimates are glm()'s, and statsmodels'
# "robust" covariance is the cluster sandwich without small-sample correction, written out
# below. Run from the repository root:  Rscript tests/r/mixed/gee.R
source("tests/r/mixed/common.R")
d <- read.csv("tests/r/mixed/gee.csv")
d$arm <- factor(d$arm, levels = c("combo", "control"))  # patsy's order: combo first (reference)

fit <- glm(responder ~ time + arm, family = binomial, data = d)
X <- model.matrix(fit)
mu <- fitted(fit)
bread <- solve(crossprod(X, X * (mu * (1 - mu))))
scores <- rowsum(X * (d$responder - mu), d$subject)   # per-subject score contributions
meat <- crossprod(scores)
V <- bread %*% meat %*% bread

write_json_here(list(
  call = "glm(responder ~ time + arm, family = binomial, data = d); sandwich by subject",
  term = colnames(X),
  estimate = unname(coef(fit)),
  robust_se = unname(sqrt(diag(V)))
), "gee.json")
