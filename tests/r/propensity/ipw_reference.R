# Reference values for tests/test_propensity.py: a binary propensity score (glm logit),
# stabilised inverse-probability and overlap weights, weighted means, standardised mean
# differences, and a weighted outcome regression with HC1 and cluster-robust (CR1) SEs.
# Base R only: the sandwich estimators are written out as matrix algebra below (the same
# small-sample factors as statsmodels: HC1 n/(n-k); cluster G/(G-1) * (n-1)/(n-k)).
# Run from the repository root:  Rscript tests/r/propensity/ipw_reference.R
# Writes tests/r/propensity/ipw_data.csv and tests/r/propensity/ipw_reference.json.
suppressMessages(library(jsonlite))
set.seed(20261125)
n <- 240
clinic <- sprintf("C%02d", sample(1:10, n, replace = TRUE))
x1 <- round(rnorm(n), 3)
x2 <- sample(c("a", "b", "c"), n, replace = TRUE, prob = c(0.5, 0.3, 0.2))
lin <- -0.2 + 0.8 * x1 + ifelse(x2 == "b", 0.7, 0) + ifelse(x2 == "c", -0.5, 0)
treat <- ifelse(runif(n) < plogis(lin), "MN+PRP", "MN")
y <- round(40 + 8 * (treat == "MN+PRP") - 5 * x1 + ifelse(x2 == "b", 3, 0) + rnorm(n, sd = 10), 2)
dat <- data.frame(clinic, x1, x2, modality = treat, y)
write.csv(dat, "tests/r/propensity/ipw_data.csv", row.names = FALSE)

t1 <- as.numeric(dat$modality == "MN+PRP")
# glm(t1 ~ x1 + x2, family = binomial)
ps_fit <- glm(t1 ~ x1 + x2, family = binomial, data = dat)
ps <- fitted(ps_fit)
p1 <- mean(t1)
w_ate <- ifelse(t1 == 1, p1 / ps, (1 - p1) / (1 - ps))     # stabilised ATE weights
w_ovl <- ifelse(t1 == 1, 1 - ps, ps)                       # overlap weights

wmean <- function(x, w) sum(w * x) / sum(w)
smd <- function(x, w, binary) {
  v <- function(z) if (binary) mean(z) * (1 - mean(z)) else var(z)
  den <- sqrt((v(x[t1 == 1]) + v(x[t1 == 0])) / 2)
  (wmean(x[t1 == 1], w[t1 == 1]) - wmean(x[t1 == 0], w[t1 == 0])) / den
}
xb <- as.numeric(dat$x2 == "b")
one <- rep(1, n)

robust <- function(w) {
  X <- cbind(1, t1)
  fit <- lm(y ~ t1, weights = w, data = dat)          # lm(y ~ modality, weights = w)
  e <- residuals(fit)
  k <- ncol(X)
  bread <- solve(t(X) %*% (w * X))
  meat_hc <- t(X * (w * e)) %*% (X * (w * e))
  v_hc1 <- bread %*% meat_hc %*% bread * n / (n - k)
  G <- length(unique(dat$clinic))
  scores <- rowsum(X * (w * e), dat$clinic)
  v_cl <- bread %*% crossprod(scores) %*% bread * G / (G - 1) * (n - 1) / (n - k)
  se_cl <- sqrt(v_cl[2, 2])
  list(estimate = unname(coef(fit)[2]), se_hc1 = sqrt(v_hc1[2, 2]), se_cluster = se_cl,
       ci_cluster = unname(coef(fit)[2] + c(-1, 1) * qt(0.975, G - 1) * se_cl),
       p_cluster = 2 * pt(abs(coef(fit)[2] / se_cl), G - 1, lower.tail = FALSE),
       n_clusters = G)
}

out <- list(
  ps_coef = unname(coef(ps_fit)),
  ps = unname(ps),
  w_ate = unname(w_ate),
  w_overlap = unname(w_ovl),
  mean_x1_ate = c(wmean(dat$x1[t1 == 1], w_ate[t1 == 1]), wmean(dat$x1[t1 == 0], w_ate[t1 == 0])),
  smd_x1 = list(unweighted = smd(dat$x1, one, FALSE), ate = smd(dat$x1, w_ate, FALSE),
                overlap = smd(dat$x1, w_ovl, FALSE)),
  smd_x2b = list(unweighted = smd(xb, one, TRUE), ate = smd(xb, w_ate, TRUE),
                 overlap = smd(xb, w_ovl, TRUE)),
  outcome_ate = robust(w_ate),
  outcome_overlap = robust(w_ovl),
  outcome_naive = robust(one)
)
write_json(out, "tests/r/propensity/ipw_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
