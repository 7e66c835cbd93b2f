"""Statistical models: mixed, time-to-result, comparison, meta-analysis."""
