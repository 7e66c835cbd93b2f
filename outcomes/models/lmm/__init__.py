"""Linear mixed models: the public `lmm` (fit.py), its fitting engines, tests and result."""
