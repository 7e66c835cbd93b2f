"""Declared analyses: a YAML spec in, a results folder with a manifest out, and its audit.

A declared analysis (``analyses/NAME.yaml``) states the question, the data (feeds, a simulated
data set, or a store snapshot), the population, the outcome, the model and its options, the
comparisons and the seed::

    name: trial_lmm_gb_quant
    question: Does MN+PRP lower the Goodman & Baron score faster than MN alone?
    data: {feeds: data/trial_seed1}          # relative to the spec; ingested into a
                                             # temporary store, snapshot 1
    population: {study_id: TRIAL1}
    outcome: {instrument: gb_quant, rater_role: investigator}
    model: {kind: lmm, formula: "value ~ week * modality", design: split_body,
            re_formula: "~week"}
    comparisons:
      - {specs: modality, at: {week: 24}, ref: MN}
    seed: 1

:func:`outcomes.run_analysis` (``outcomes run analyses/NAME.yaml``) writes ``results/NAME/``:

``ard.csv``, ``ard.parquet``
    The analysis results dataset: one row per statistic with
    :data:`~outcomes.results.ARD_COLUMNS` (``analysis, group, term, stat_name, stat_value,
    warning, error``). ``group`` always holds ``table=...`` (which result table the row comes
    from) and the grouping of that table.
``estimates.csv``, ``estimates.parquet``
    The same estimates as tidy tables (``analysis, table, group`` + the tidy columns), for
    reports.
``figures/*.png``
    Figures (PNG without software or time metadata).
``manifest.json``
    What produced the numbers: the snapshot and the SHA-256 of every input table and source
    file, the data dictionary hash, the spec (its bytes' hash, its parsed content and that
    content's hash), the code (git commit and dirty flag; hash of every module that ran),
    Python, platform and package versions, the seeds, start and end times, and every warning.

Results files are byte-identical for the same inputs: rows in a fixed order, floats written
with ``repr`` (shortest round-trip), Parquet without pandas metadata, PNGs without metadata;
time stamps live only in the manifest.

:func:`outcomes.audit` (``outcomes audit``, ``nox -s audit``) re-runs every declared analysis and
compares it with the expected results committed beside the specs
(``analyses/expected/NAME/``): counts exactly, other statistics within the spec's tolerance
(default relative ``1e-9``), and explains any difference from the two manifests.
:func:`outcomes.load_results` reads a results folder back.

The files: ``spec.py`` (load and check a spec), ``session.py`` (the data source in a temporary
store), ``runners.py`` (one runner per model kind), ``results.py`` (results in and out),
``run.py`` (run and write a results folder), ``audit.py`` (re-run and compare),
``differences.py`` (what differs and why), ``provenance.py`` (fingerprints in the manifest).
"""
