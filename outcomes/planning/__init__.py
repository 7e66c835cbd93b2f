"""Planning the next trial: power and sample size by simulation (``outcomes.power``).

Modules, in the order a study runs: :mod:`~outcomes.planning.design` (the trial: design,
visits, dropout, effect and variance components with calibrated defaults and their sources),
:mod:`~outcomes.planning.generate` (one simulated trial as arrays),
:mod:`~outcomes.planning.analyse` (the primary contrast of one trial: LMM with Satterthwaite or
Kenward-Roger df, or a t-test; :mod:`~outcomes.planning.interval` the interval-censored time
to a full result and :mod:`~outcomes.planning.responder` responders at the primary visit),
:mod:`~outcomes.planning.run` (seeds, chunks, serial / joblib /
Dask backends, the resumable Parquet store), :mod:`~outcomes.planning.results` (power and type
I error with Monte Carlo intervals, bias, coverage, warnings as data, the power curve) and
:mod:`~outcomes.planning.study` (:func:`power`, :func:`load_power`).

The folder is not named ``power``: a subpackage of that name would shadow the public function
``outcomes.power``.
"""
