"""Meta-analysis of published study-level summaries (aggregate data).

Two steps, as in R's metafor: :func:`escalc` turns each study's summary (means, SDs and sizes,
or event counts) into an effect size ``yi`` with its sampling variance ``vi``, and
:func:`meta_analysis` pools them with a fixed-effect or random-effects model.

Effect sizes (``measure``)
--------------------------
``"MD"``
    Mean difference ``mean1 - mean2``; ``vi = sd1^2/n1 + sd2^2/n2`` (metafor ``"MD"``).
``"SMD"``
    Hedges' g: ``(mean1 - mean2) / sd_pooled`` times the exact small-sample correction
    ``J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, ``m = n1 + n2 - 2``;
    ``vi = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2))`` (metafor ``escalc(measure="SMD")``, ``vtype="LS"``).
``"OR"``, ``"RR"``
    Log odds ratio and log risk ratio from event counts; a table with a zero cell gets 1/2
    added to each of its four cells (metafor's default ``add=1/2, to="only0"``).
``"RD"``
    Risk difference (no correction needed for zero cells).
``"GEN"``
    Generic: the data already holds ``yi`` and ``vi`` (or ``sei``).

Group 1 is the experimental arm (e.g. MN+PRP), group 2 the comparator.

Paired (split-face, split-body) studies
---------------------------------------
Rows with ``design`` ``"split_body"`` (or ``"paired"``) compare two sides of the same patients
and need the within-patient correlation ``r`` (a column, or the ``r`` argument; it is rarely
reported, so it is usually an assumption to vary in a sensitivity analysis). ``n1`` is the
number of patients (``n2`` must equal it). The SD of the within-patient difference is
``sd_d = sqrt(sd1^2 + sd2^2 - 2 r sd1 sd2)``:

- ``"MD"``: ``vi = sd_d^2 / n`` (metafor ``"MC"``).
- ``"SMD"``: standardised by the raw-score SD ``s = sqrt((sd1^2 + sd2^2) / 2)`` so that paired
  and parallel studies estimate the same quantity: ``g = J(n-1) (mean1 - mean2) / s``,
  ``vi = sd_d^2 / (s^2 n) + g^2 / (2 n)``; with ``sd1 == sd2`` this is metafor's ``"SMCR"``.
- Binary measures use the marginal counts of each side and ``r`` as the phi correlation of the
  two sides' outcomes (Elbourne et al. 2002): the covariance of the two sides' proportions is
  subtracted in the delta-method variance. For ``"OR"`` this is metafor's ``"MPORM"``.
  Margins bound phi (:func:`~outcomes.models.meta.effect_sizes.phi_limits`, the Fréchet
  bounds): an ``r`` outside that range describes no possible data and is refused.

Pooling (``method``)
--------------------
``"FE"`` (fixed/common effect, inverse-variance), ``"DL"`` (DerSimonian-Laird), ``"PM"``
(Paule-Mandel) and ``"REML"``. Cochran's Q comes from
:func:`statsmodels.stats.meta_analysis.combine_effects`, and the binary effect sizes from its
``effectsize_2proportions``. The rest is written here, because statsmodels does not serve:
its DerSimonian-Laird tau^2 is not truncated at zero, its Paule-Mandel iteration returns 0
when a step overshoots the root (so the PM tau^2 is the root of the generalised Q equation,
found with :func:`scipy.optimize.brentq` as metafor does with ``uniroot``), its Hedges' g uses
an approximate correction and another variance than metafor, and it has no REML: REML tau^2
is the root of the restricted-likelihood score equation (``brentq``).

``knapp_hartung=True`` gives the Knapp-Hartung (Hartung-Knapp-Sidik-Jonkman) standard error
and t-based intervals with ``k - 1`` degrees of freedom (metafor ``test="knha"``, not
truncated). I^2 and H^2 follow metafor: for random-effects fits
``I^2 = tau^2 / (tau^2 + s^2)`` with the "typical" within-study variance ``s^2``; for
fixed-effect fits ``I^2 = (Q - (k-1)) / Q``.

Subgroups (``by``) are fitted separately (each with its own tau^2), and the test of subgroup
differences is the fixed-effect Q of the subgroup estimates (``df = groups - 1``).
"""
