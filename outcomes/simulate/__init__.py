"""Synthetic data feeds with known truth: split-body and parallel trials, and registries.

The simulator writes the same six tables real sites send (``studies``, ``subjects``, ``units``,
``sessions``, ``assessments``, ``adverse_events``; columns and codes exactly as in the data
dictionary, every row valid) plus ``truth.json``, the parameters that generated them, so
models can be checked by recovery.

- :func:`simulate_trial`: a randomised trial (split-body or parallel) with a continuous outcome
  from a stated linear mixed model (``gb_quant``), an ordinal outcome with exact latent
  improvement times (``gb_qual``), blinded photo raters, patient-reported pain and
  satisfaction, sessions, dropout, missed visits and adverse events.
- :func:`simulate_registry`: an observational registry where clinicians choose the modality
  from phototype, baseline severity and clinic preference (confounding by construction), with a
  homogeneous true effect of each combination, irregular visits, loss to follow-up, loss of
  response and retreatments. Vectorised: about 100,000 subjects (a million assessment rows)
  take seconds.

Defaults are calibrated to published arm-level numbers (acne scars): :data:`CALIBRATION` holds
each target's design value, published range, unit, definition and source, and the trial's LMM,
baseline grade, dropout, PIH and the registry's acne-scar outcome are derived from it;
:func:`calibration_table` lists the targets, and ``truth.json`` repeats them (``calibration``).

Modules: :mod:`~outcomes.simulate.trial` (:func:`simulate_trial`),
:mod:`~outcomes.simulate.registry` (:func:`simulate_registry`),
:mod:`~outcomes.simulate.calibration` (the published numbers behind the defaults),
:mod:`~outcomes.simulate.parts` (pieces shared by both) and :mod:`~outcomes.simulate.output`
(:class:`Feeds`, :func:`write_feeds`). The public names are also ``outcomes.simulate_trial``
and ``outcomes.simulate_registry``.

Same seed, same bytes: all randomness comes from ``numpy.random.SeedSequence(seed)``, rows are
in a fixed order and floats are written with a fixed format (CSV and Parquet; XLSX workbooks
store the time they were written).

``truth.json`` of a trial: ``simulator, seed, study_id, design, options`` (every argument),
``arms``, ``lmm`` (``formula``; ``fixed`` with terms ``(Intercept), week, combo, week:combo``;
``sd_subject_intercept, sd_subject_week, corr_subject, sd_unit, sd_residual``; ``n_clipped``;
notes on rounding and clipping), ``calibration`` (``targets``, ``assumptions``,
``implied_side_correlation``), ``survival`` (``endpoint, instrument, definition,
weibull_shape, control_scale_days, control_median_days, hazard_ratio,
combination_scale_days``), ``event_times.first_improvement`` (every unit id -> true day of the
first one-grade improvement, including units censored in the data), ``raters``,
``patient_reported``, ``follow_up``, ``adverse_events``.

``truth.json`` of a registry: ``simulator, seed, study_id, design, options``, ``calibration``
(as for trials, plus ``registry``: what is calibrated and what has no target), ``effects``
(``outcome: "pct_improvement_day168", vs: "MN"``, and the true effect in percentage points of
``MN+PRP, MN+RF, MN+laser``), ``confounders`` (``phototype, baseline_severity, site_id``),
``outcome``, ``baseline_severity``, ``phototype_model``, ``treatment_model`` (coefficients and
clinic preferences), ``outcome_model`` (coefficients and clinic effects),
``durability``, ``event_times.loss_of_response`` (unit id -> true day the improvement fell
below 50%, for the responders who lose it, including days after the end of follow-up),
``retreatment``, ``follow_up``, ``gais``, ``pain_vas``, ``adverse_events``.
"""
