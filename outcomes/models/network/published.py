"""The shipped network of published microneedling trials (``outcomes/data/published``).

Real study arms only, each with its citation, DOI or page, the quoted numbers and how any value
was derived; see ``outcomes/data/published/README.md``. Different trials report different
outcomes, so a network is built per outcome: pool like with like.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from outcomes.errors import InputError

__all__ = ["NETWORK_OUTCOMES", "microneedling_network", "microneedling_pairs"]

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


def microneedling_pairs(
    outcome: str | None = None, experimental: str | None = None, comparator: str = "MN"
) -> pd.DataFrame:
    """The shipped real trials as two-arm comparisons, in the layout of ``meta_analysis``.

    This is the published evidence that :func:`outcomes.compare` pools with
    ``published=True`` and that the comparison report prints: real trial arms only.

    Parameters
    ----------
    outcome
        One of :data:`NETWORK_OUTCOMES`; ``None`` for every outcome.
    experimental
        Keep only this treatment against ``comparator``; ``None`` for every treatment that
        a trial compared with ``comparator``.
    comparator
        The comparator arm (default ``"MN"``, microneedling alone).

    Returns
    -------
    pandas.DataFrame
        One row per trial and comparison: ``study, design, indication, outcome, arm1, arm2``
        and ``events1, n1, events2, n2`` (counts) or ``mean1, sd1, n1, mean2, sd2, n2``
        (means), plus ``citation, doi, source_status``. Trials without a ``comparator`` arm
        (e.g. MN+PRP vs MN+vitamin C) are not listed: they inform the network only.

    Examples
    --------
    >>> from outcomes.models.network import microneedling_pairs
    >>> pairs = microneedling_pairs("excellent_response", "MN+PRP")
    >>> pairs[["study", "events1", "events2"]].values.tolist()
    [['Asif 2016', 20, 5]]
    """
    arms = microneedling_network(outcome)
    rows = []
    for (study, out), g in arms.groupby(["study", "outcome"], sort=False):
        by = g.set_index("treatment")
        if comparator not in by.index:
            continue
        b = by.loc[comparator]
        others = [t for t in by.index if t != comparator]
        for treatment in others if experimental is None else [experimental]:
            if treatment not in by.index:
                continue
            a = by.loc[treatment]
            row = {
                "study": study,
                "design": a["design"],
                "indication": "acne_scars",
                "outcome": out,
                "arm1": treatment,
                "arm2": comparator,
            }
            if pd.notna(a["events"]):
                row.update(
                    events1=int(a["events"]),
                    n1=int(a["n"]),
                    events2=int(b["events"]),
                    n2=int(b["n"]),
                )
            else:
                row.update(
                    mean1=a["mean"],
                    sd1=a["sd"],
                    n1=int(a["n"]),
                    mean2=b["mean"],
                    sd2=b["sd"],
                    n2=int(b["n"]),
                )
            row.update(citation=a["citation"], doi=a["doi"], source_status=a["source_status"])
            rows.append(row)
    return pd.DataFrame(rows)
