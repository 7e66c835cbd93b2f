# Reference values for tests/test_meta.py, computed with R metafor.
# Run from the repository root:  Rscript tests/r/meta/metafor_reference.R
# Writes tests/r/meta/metafor_reference.json (metafor version recorded inside).
#
# Tight convergence settings (control=list(tol=1e-12, threshold=1e-12)) are used for the
# iterative tau^2 estimators (REML, PM) so that the reference tau^2 is precise to far better
# than the 1e-4 tolerance the tests use; with metafor's defaults (threshold 1e-5, uniroot tol
# .Machine$double.eps^0.25) the printed tau^2 can differ in the 5th digit.
suppressMessages(library(metafor))
suppressMessages(library(jsonlite))

tight <- list(tol = 1e-12, threshold = 1e-12, maxiter = 10000)

fit_summary <- function(res) {
  list(
    estimate = as.numeric(res$beta), se = res$se, zval = res$zval, pval = res$pval,
    ci_lb = res$ci.lb, ci_ub = res$ci.ub, tau2 = res$tau2, se_tau2 = res$se.tau2,
    I2 = res$I2, H2 = res$H2, QE = res$QE, QEp = res$QEp, k = res$k,
    ddf = if (is.null(res$ddf)) NA else as.numeric(res$ddf)
  )
}
pred_summary <- function(res) {
  p <- predict(res)
  list(pred = p$pred, se = p$se, ci_lb = p$ci.lb, ci_ub = p$ci.ub,
       pi_lb = p$pi.lb, pi_ub = p$pi.ub)
}

out <- list(metafor_version = as.character(packageVersion("metafor")))

## 1. BCG vaccine trials (dat.bcg), log risk ratios --------------------------------------
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
out$bcg_data <- list(trial = dat.bcg$trial, author = dat.bcg$author, year = dat.bcg$year,
                     tpos = dat.bcg$tpos, tneg = dat.bcg$tneg, cpos = dat.bcg$cpos,
                     cneg = dat.bcg$cneg, alloc = dat.bcg$alloc)
out$bcg_rr_escalc <- list(yi = as.numeric(dat$yi), vi = as.numeric(dat$vi))
# rma(yi, vi, data = dat, method = "FE")
out$bcg_rr_fe <- fit_summary(rma(yi, vi, data = dat, method = "FE"))
# rma(yi, vi, data = dat, method = "DL")
res_dl <- rma(yi, vi, data = dat, method = "DL")
out$bcg_rr_dl <- fit_summary(res_dl)
out$bcg_rr_dl_predict <- pred_summary(res_dl)
# rma(yi, vi, data = dat, method = "REML")
res_reml <- rma(yi, vi, data = dat, method = "REML", control = tight)
out$bcg_rr_reml <- fit_summary(res_reml)
out$bcg_rr_reml_predict <- pred_summary(res_reml)
# exponentiated prediction: predict(res, transf = exp)
pe <- predict(res_reml, transf = exp)
out$bcg_rr_reml_predict_exp <- list(pred = pe$pred, ci_lb = pe$ci.lb, ci_ub = pe$ci.ub,
                                    pi_lb = pe$pi.lb, pi_ub = pe$pi.ub)
# weights(res_reml): percentage weight of each study
out$bcg_rr_reml_weights <- as.numeric(weights(res_reml))
# rma(yi, vi, data = dat, method = "REML", level = 90)
res90 <- rma(yi, vi, data = dat, method = "REML", level = 90, control = tight)
p90 <- predict(res90)
out$bcg_rr_reml_level90 <- list(ci_lb = res90$ci.lb, ci_ub = res90$ci.ub, pi_lb = p90$pi.lb,
                                pi_ub = p90$pi.ub)
# rma(yi, vi, data = dat, method = "PM")
out$bcg_rr_pm <- fit_summary(rma(yi, vi, data = dat, method = "PM", control = tight))
# rma(yi, vi, data = dat, method = "REML", test = "knha")
res_kh <- rma(yi, vi, data = dat, method = "REML", test = "knha", control = tight)
out$bcg_rr_reml_knha <- fit_summary(res_kh)
out$bcg_rr_reml_knha_predict <- pred_summary(res_kh)
# rma(yi, vi, data = dat, method = "DL", test = "knha")
out$bcg_rr_dl_knha <- fit_summary(rma(yi, vi, data = dat, method = "DL", test = "knha"))

## Subgroups by allocation: separate REML fits, then a fixed-effect test of the subgroup
## estimates (the "separate tau^2" subgroup analysis of the metafor documentation).
groups <- c("alternate", "random", "systematic")
sub <- lapply(groups, function(g) {
  fit_summary(rma(yi, vi, data = dat, subset = alloc == g, method = "REML", control = tight))
})
names(sub) <- groups
out$bcg_rr_reml_by_alloc <- sub
est <- sapply(sub, function(s) s$estimate)
sei <- sapply(sub, function(s) s$se)
# rma(est, sei = sei, method = "FE")  -> QE is the test of subgroup differences
between <- rma(est, sei = sei, method = "FE")
out$bcg_rr_reml_by_alloc_test <- list(Q = between$QE, df = length(groups) - 1, p = between$QEp)

## 2. BCG odds ratios and risk differences (escalc), and OR with DL ----------------------
dat_or <- escalc(measure = "OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
out$bcg_or_escalc <- list(yi = as.numeric(dat_or$yi), vi = as.numeric(dat_or$vi))
out$bcg_or_dl <- fit_summary(rma(yi, vi, data = dat_or, method = "DL"))
dat_rd <- escalc(measure = "RD", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
out$bcg_rd_escalc <- list(yi = as.numeric(dat_rd$yi), vi = as.numeric(dat_rd$vi))

## 3. Zero cells: metafor adds 1/2 to every cell of a table with a zero (add=1/2, to="only0")
zero <- data.frame(ai = c(0, 3, 5, 10), n1i = c(20, 25, 30, 10),
                   ci = c(2, 0, 4, 6), n2i = c(20, 25, 30, 12))
zr <- escalc(measure = "RR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = zero)
zo <- escalc(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = zero)
out$zero_data <- as.list(zero)
out$zero_rr_escalc <- list(yi = as.numeric(zr$yi), vi = as.numeric(zr$vi))
out$zero_or_escalc <- list(yi = as.numeric(zo$yi), vi = as.numeric(zo$vi))
# rma(yi, vi, data = zr, method = "REML"): few studies, tau^2 at the boundary
out$zero_rr_reml <- fit_summary(rma(yi, vi, data = zr, method = "REML", control = tight))

## 4. Standardised mean differences (dat.normand1999) ------------------------------------
dn <- dat.normand1999
out$normand_data <- as.list(dn[, c("study", "source", "n1i", "m1i", "sd1i", "n2i", "m2i", "sd2i")])
smd <- escalc(measure = "SMD", m1i = m1i, sd1i = sd1i, n1i = n1i,
              m2i = m2i, sd2i = sd2i, n2i = n2i, data = dn)
out$normand_smd_escalc <- list(yi = as.numeric(smd$yi), vi = as.numeric(smd$vi))
res_smd <- rma(yi, vi, data = smd, method = "REML", control = tight)
out$normand_smd_reml <- fit_summary(res_smd)
out$normand_smd_reml_predict <- pred_summary(res_smd)
out$normand_smd_dl <- fit_summary(rma(yi, vi, data = smd, method = "DL"))
md <- escalc(measure = "MD", m1i = m1i, sd1i = sd1i, n1i = n1i,
             m2i = m2i, sd2i = sd2i, n2i = n2i, data = dn)
out$normand_md_escalc <- list(yi = as.numeric(md$yi), vi = as.numeric(md$vi))
out$normand_md_pm <- fit_summary(rma(yi, vi, data = md, method = "PM", control = tight))

## 5. Paired (split-face) designs ---------------------------------------------------------
pr <- data.frame(m1i = c(62.2, 40.0, 55.0), sd1i = c(15.0, 12.0, 20.0),
                 m2i = c(45.8, 35.0, 50.0), sd2i = c(15.0, 12.0, 20.0),
                 ni = c(50, 30, 24), ri = c(0.5, 0.3, 0.7))
# escalc(measure = "MC", ...): raw mean difference, var (sd1^2 + sd2^2 - 2 r sd1 sd2) / n
mc <- escalc(measure = "MC", m1i = m1i, m2i = m2i, sd1i = sd1i, sd2i = sd2i, ni = ni,
             ri = ri, data = pr)
# escalc(measure = "SMCR", ...): standardised by the raw SD (sd1 = sd2 here)
smcr <- escalc(measure = "SMCR", m1i = m1i, m2i = m2i, sd1i = sd1i, ni = ni, ri = ri, data = pr)
out$paired_data <- as.list(pr)
out$paired_mc_escalc <- list(yi = as.numeric(mc$yi), vi = as.numeric(mc$vi))
out$paired_smcr_escalc <- list(yi = as.numeric(smcr$yi), vi = as.numeric(smcr$vi))
# Paired binary from the marginal counts and a guessed phi correlation (measure = "MPORM").
# Asif 2016 split-face: excellent response 20/50 (PRP side) vs 5/50 (distilled-water side).
pb <- data.frame(ai = c(20, 12), bi = c(30, 18), ci = c(5, 6), di = c(45, 24), ri = c(0.3, 0.5))
mporm <- escalc(measure = "MPORM", ai = ai, bi = bi, ci = ci, di = di, ri = ri, data = pb)
out$paired_binary_data <- as.list(pb)
out$paired_mporm_escalc <- list(yi = as.numeric(mporm$yi), vi = as.numeric(mporm$vi))

write_json(out, "tests/r/meta/metafor_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE, na = "null")
