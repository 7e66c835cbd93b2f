"""The shipped network of published microneedling trials (``outcomes/data/published``).

Real study arms only, each with its citation, DOI or page, the quoted numbers and how any value
was derived; see ``outcomes/data/published/README.md``. Different trials report different
outcomes, so a network is built per outcome: pool like with like.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from outcomes.errors import InputError

__all__ = ["NETWORK_OUTCOMES", "microneedling_network"]

#: outcome code -> (what it is, measure to analyse it with, ``small_values`` for P-scores)
NETWORK_OUTCOMES: dict[str, tuple[str, str, str]] = {
    "gb_grade_final": (
        "Goodman & Baron qualitative grade (1-4) at the end of follow-up, mean (SD)",
        "MD",
        "desirable",
    ),
    "excellent_response": (
        "Patients with an 'excellent' response on the Goodman & Baron qualitative scale",
        "OR",
        "undesirable",
    ),
}


def microneedling_network(outcome: str | None = None) -> pd.DataFrame:
    """Arm-level data of published split-face microneedling trials (acne scars).

    Parameters
    ----------
    outcome
        One of :data:`NETWORK_OUTCOMES` (``"gb_grade_final"``: means and SDs;
        ``"excellent_response"``: counts); ``None`` returns every row.

    Returns
    -------
    pandas.DataFrame
        One row per study arm: ``study, treatment, n`` and ``mean, sd`` or ``events``, the
        ``design`` (``"split_body"``; the within-patient correlation ``r`` is not reported, so
        pass ``r=`` to the models and vary it), and the provenance columns ``citation, doi,
        pmid, confirmed_at, quoted, derivation, source_status``.

    Examples
    --------
    >>> from outcomes.models.network import microneedling_network, network_meta
    >>> arms = microneedling_network("excellent_response")
    >>> res = network_meta(arms, "OR", reference="MN", r=0.5,
    ...                    small_values="undesirable")  # doctest: +SKIP
    """
    path = resources.files("outcomes") / "data" / "published" / "microneedling_network.csv"
    with path.open("r", encoding="utf-8") as fh:
        data = pd.read_csv(fh, dtype={"pmid": "string", "year": "Int64"})
    if outcome is None:
        return data
    if outcome not in NETWORK_OUTCOMES:
        raise InputError(
            f"No outcome {outcome!r} in the microneedling network; available: "
            f"{', '.join(NETWORK_OUTCOMES)}."
        )
    return data[data["outcome"] == outcome].reset_index(drop=True)
