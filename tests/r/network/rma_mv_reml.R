# REML tau^2 of a contrast-based network meta-analysis with metafor::rma.mv, as an independent
# check of outcomes.models.network (method_tau = "REML").
#
# Model (what netmeta passes to rma.mv): basic contrasts of each study against one baseline arm
# (the reference when the study has it, else its first treatment), within-study covariance from
# the comparison variances (cov(a-b, a-c) = (v_ab + v_ac - v_bc) / 2), random effects
# ~ factor(comparison) | study with struct = "CS" and rho = 0.5 fixed, fixed effects one per
# treatment against the reference. Tight optimiser tolerances; logLik reported first.
#
# Run from the repository root:  Rscript tests/r/network/rma_mv_reml.R
library(metafor)
library(jsonlite)

here <- "tests/r/network"

basic_contrasts <- function(d, reference) {
  d$treat1 <- as.character(d$treat1); d$treat2 <- as.character(d$treat2)
  out <- list(); Vs <- list()
  for (s in unique(d$study)) {
    g <- d[d$study == s, ]
    arms <- unique(c(g$treat1, g$treat2))
    arms <- arms[order(tolower(arms), arms)]
    base <- if (reference %in% arms) reference else arms[1]
    others <- setdiff(arms, base)
    te <- function(a, b) {
      i <- which(g$treat1 == a & g$treat2 == b); if (length(i)) return(g$TE[i])
      i <- which(g$treat1 == b & g$treat2 == a); -g$TE[i]
    }
    v <- function(a, b) {
      i <- which((g$treat1 == a & g$treat2 == b) | (g$treat1 == b & g$treat2 == a)); g$seTE[i]^2
    }
    k <- length(others)
    V <- matrix(0, k, k)
    for (i in seq_len(k)) for (j in seq_len(k))
      V[i, j] <- if (i == j) v(base, others[i]) else
        (v(base, others[i]) + v(base, others[j]) - v(others[i], others[j])) / 2
    out[[s]] <- data.frame(study = s, treat = others, base = base,
                           yi = sapply(others, function(o) te(o, base)),
                           comparison = paste(others, base, sep = " vs "))
    Vs[[s]] <- V
  }
  list(data = do.call(rbind, out), V = bdiag_list(Vs))
}

bdiag_list <- function(blocks) {
  n <- sum(sapply(blocks, nrow)); M <- matrix(0, n, n); at <- 0
  for (b in blocks) { k <- nrow(b); M[at + 1:k, at + 1:k] <- b; at <- at + k }
  M
}

fit_reml <- function(d, reference) {
  bc <- basic_contrasts(d, reference)
  x <- bc$data
  trts <- sort(unique(c(x$treat, x$base)))
  trts <- setdiff(trts, reference)
  X <- sapply(trts, function(t) (x$treat == t) - (x$base == t))
  colnames(X) <- make.names(trts)
  fit <- rma.mv(x$yi, bc$V, mods = X, intercept = FALSE,
                random = ~ factor(comparison) | study, struct = "CS", rho = 0.5,
                data = x, method = "REML",
                control = list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-14,
                               maxit = 10000))
  list(logLik = as.numeric(logLik(fit)), tau2 = fit$tau2, treatments = trts,
       estimate = as.numeric(coef(fit)), std_error = as.numeric(fit$se))
}

senn <- read.csv(file.path(here, "senn2013.csv"))
senn <- data.frame(study = senn$studlab, treat1 = senn$treat1, treat2 = senn$treat2,
                   TE = senn$TE, seTE = senn$seTE)
linde <- read.csv(file.path(here, "linde2016_pairwise.csv"))
linde <- data.frame(study = linde$studlab, treat1 = linde$treat1, treat2 = linde$treat2,
                    TE = linde$TE, seTE = linde$seTE)

res <- list(
  senn2013 = fit_reml(senn, "plac"),
  linde2016 = fit_reml(linde, "Placebo"),
  info = list(R = R.version.string, metafor = as.character(packageVersion("metafor")))
)
write_json(res, file.path(here, "rma_mv_reml.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
