# R lme4 timing for benchmarks/bench_lmm_engine.py (run by hand; R is not needed by CI).
#
# Write the benchmark's data sets first, from the repository root:
#   python -c "import sys; sys.path.insert(0, 'benchmarks'); import bench_lmm_engine as B
#   [B.make_data(n, irregular=i).to_csv(f'/tmp/rbench/d_{n}_{int(i)}.csv', index=False)
#    for n in (5000, 50000) for i in (False, True)]"
# then: Rscript tests/r/engine/time_lme4.R
#
# Recorded on the shared 2-core development machine, 2026-11-25 (lme4 1.1-31, other jobs
# running: the same period as the benchmark run reported with the engine), elapsed seconds:
#   d_5000_0   30,000 rows fixed visits        1.16 s  (0.75 s CPU)  logLik -64085.2256133391
#   d_5000_1   27,456 rows irregular visits    0.88 s  (0.54 s CPU)  logLik -58694.000194494
#   d_50000_0 300,000 rows fixed visits       19.3 s   (6.2 s CPU)   logLik -639941.568394173
#   d_50000_1 275,092 rows irregular visits   10.7 s   (5.6 s CPU)   logLik -587527.0633922
# lme4 warned "Model failed to converge with max|grad| = 0.0022 / 0.0027" on both 300k fits.
suppressPackageStartupMessages(library(lme4))
dir <- Sys.getenv("RBENCH_DIR", "/tmp/rbench")
for (f in c("d_5000_0", "d_5000_1", "d_50000_0", "d_50000_1")) {
  d <- read.csv(file.path(dir, paste0(f, ".csv")))
  d$id <- factor(d$id)
  invisible(lmer(y ~ time * arm + (time | id), d[d$id %in% levels(d$id)[1:50], ]))  # warm-up
  t <- system.time(m <- lmer(y ~ time * arm + (time | id), d, REML = TRUE))
  cat(f, nrow(d), "elapsed", t[["elapsed"]], "cpu", t[["user.self"]] + t[["sys.self"]],
      "logLik", format(as.numeric(logLik(m)), digits = 15), "\n")
}
