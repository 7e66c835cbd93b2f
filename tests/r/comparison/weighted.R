# Reference values for tests/test_comparison.py: the propensity model (glm logit, overlap
# weights) and the registry models of
# outcomes.compare on tests/r/comparison/weighted_data.csv (acne-scar units of the
# simulated registry, MN vs MN+RF, overlap weights, clinic clusters; see make_data.py).
#  - weighted logistic and Poisson (log link) regressions, glm(..., weights = w), with the
#    cluster sandwich written out (CR1 factor G/(G-1) * (n-1)/(n-k), as sandwich::vcovCL
#    type "HC1", which is not installed here);
#  - weighted Cox model with robust SE by clinic: coxph(..., weights = w, cluster = site_id).
# Run from the repository root:  Rscript tests/r/comparison/weighted.R
suppressMessages(library(jsonlite))
suppressMessages(library(survival))
d <- read.csv("tests/r/comparison/weighted_data.csv", stringsAsFactors = FALSE)
d$rf <- as.numeric(d$modality == "MN+RF")

# the pairwise propensity model of outcomes.compare (MN+RF vs MN within acne scars):
# glm(rf ~ phototype_num + baseline_score + site_id, family = binomial), overlap weights
ps_fit <- glm(rf ~ phototype_num + baseline_score + factor(site_id), family = binomial, data = d,
              control = glm.control(epsilon = 1e-14, maxit = 100))
ps <- fitted(ps_fit)
w_overlap <- ifelse(d$rf == 1, 1 - ps, ps)

cluster_glm <- function(fit, data, w) {
  x <- model.matrix(fit)
  y <- fit$y
  mu <- fitted(fit)
  v <- if (fit$family$family == "binomial" || fit$family$family == "quasibinomial") mu * (1 - mu) else mu
  bread <- solve(t(x) %*% (x * (w * v)))
  s <- x * (w * (y - mu))
  sg <- rowsum(s, data$site_id)
  G <- nrow(sg); n <- nrow(x); k <- ncol(x)
  vc <- G / (G - 1) * (n - 1) / (n - k) * bread %*% (t(sg) %*% sg) %*% bread
  list(coef = unname(coef(fit)), se = unname(sqrt(diag(vc))), G = G)
}

r <- d[!is.na(d$responder), ]
# glm(responder ~ rf, family = quasibinomial, weights = weight)  (quasi: non-integer weights)
f_logit_w <- glm(responder ~ rf, family = quasibinomial, weights = weight, data = r)
f_logit_n <- glm(responder ~ rf, family = binomial, data = r)
# glm(responder ~ rf, family = quasipoisson, weights = weight): the "modified Poisson" RR
f_pois_w <- glm(responder ~ rf, family = quasipoisson, weights = weight, data = r)
logit_w <- cluster_glm(f_logit_w, r, r$weight)
logit_n <- cluster_glm(f_logit_n, r, rep(1, nrow(r)))
pois_w <- cluster_glm(f_pois_w, r, r$weight)

s <- d[!is.na(d$time) & d$time > 0, ]
# coxph(Surv(time, event) ~ rf, weights = weight, cluster = site_id)  (Efron ties)
cox_w <- coxph(Surv(time, event) ~ rf, weights = weight, cluster = site_id, data = s)
cox_n <- coxph(Surv(time, event) ~ rf, cluster = site_id, data = s)

out <- list(
  ps_coef = unname(coef(ps_fit)),
  ps_loglik = as.numeric(logLik(ps_fit)),
  ps_converged = ps_fit$converged,
  w_overlap = unname(w_overlap),
  logistic_weighted = logit_w,
  logistic_naive = logit_n,
  poisson_weighted = pois_w,
  cox_weighted = list(coef = unname(coef(cox_w)), se = unname(sqrt(diag(vcov(cox_w)))),
                      n = cox_w$n, nevent = cox_w$nevent),
  cox_naive = list(coef = unname(coef(cox_n)), se = unname(sqrt(diag(vcov(cox_n)))),
                   n = cox_n$n, nevent = cox_n$nevent),
  r_version = R.version.string,
  survival_version = as.character(packageVersion("survival"))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/r/comparison/weighted.json")
