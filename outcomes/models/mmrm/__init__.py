"""Mixed models for repeated measures (MMRM), matching SAS PROC MIXED.

``mmrm(data, "change ~ arm * visit + baseline", subject="subject_id", visit="visit")`` fits an
unstructured (or structured) covariance over visits by REML with Kenward-Roger degrees of
freedom; ``nested_in="patient_id"`` adds the patient random intercept of a split-face trial.

Files: :mod:`.covariance` (structures), :mod:`.likelihood` (deviance, gradient, optimiser),
:mod:`.dof` (fixed-effects covariance and degrees of freedom), :mod:`.data` (checks and
design), :mod:`.fit` (the public function), :mod:`.result` (:class:`MmrmResult`).
"""

from outcomes.models.mmrm.covariance import STRUCTURES
from outcomes.models.mmrm.dof import DDF_METHODS
from outcomes.models.mmrm.fit import mmrm
from outcomes.models.mmrm.result import MmrmResult

__all__ = ["DDF_METHODS", "STRUCTURES", "MmrmResult", "mmrm"]
