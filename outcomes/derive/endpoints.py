"""Declared time-to-event endpoints: :class:`Endpoint` and the standard set :data:`ENDPOINTS`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from outcomes.data.dictionary import load_dictionary
from outcomes.errors import InputError

__all__ = ["ENDPOINTS", "Endpoint"]


RULES = ("improvement", "percent_improvement", "at_or_better")


KINDS = ("onset", "durability", "retreatment")


@dataclass(frozen=True)
class Endpoint:
    """A declared time-to-event endpoint.

    Parameters
    ----------
    name
        Short code, written to the ``paramcd`` column (e.g. ``"first_improvement"``).
    instrument
        Instrument code from the data dictionary (not needed for ``kind="retreatment"``).
    rule
        What counts as a result at a visit:

        - ``"improvement"``: improvement from baseline of at least ``threshold`` points
          (grades), in the instrument's better direction;
        - ``"percent_improvement"``: improvement of at least ``threshold`` percent of
          ``|baseline|``;
        - ``"at_or_better"``: the score itself is ``threshold`` or better (e.g. GAIS <= 2,
          "much improved or better"; GAIS is rated against baseline, so no baseline is used).
    threshold
        The rule's threshold.
    rater_role
        Use only assessments by this rater role (``investigator``, ``blinded_photo_rater``,
        ``patient``). ``None`` is allowed only when one role scores the instrument. Several
        raters of the role at one visit are averaged.
    kind
        ``"onset"``: days from the first session to the first visit meeting the rule.
        ``"durability"``: for units that met the rule, days from the first visit meeting it to
        the first later visit not meeting it (loss of response) or to retreatment (the first
        session of a new course, see ``retreatment_gap`` of :func:`derive_tte`), whichever
        comes first.
        ``"retreatment"``: days from the first session to retreatment, with loss to follow-up
        recorded as a competing event in ``event_type`` (censored in ``event``). Records
        without retreatment end on ``end_day`` or, while follow-up continues, on the last
        session or assessment day. Needs the ``subjects`` table.
    label
        Description for ``param``; generated when empty.
    """

    name: str
    instrument: str | None = None
    rule: str | None = None
    threshold: float | None = None
    rater_role: str | None = None
    kind: str = "onset"
    label: str = field(default="")

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(
                f"endpoint {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )
        if self.kind == "retreatment":
            return
        if self.instrument is None or self.rule is None or self.threshold is None:
            raise InputError(
                f"endpoint {self.name!r}: an {self.kind!r} endpoint needs instrument, rule and "
                "threshold"
            )
        if self.rule not in RULES:
            raise InputError(
                f"endpoint {self.name!r}: rule must be one of {RULES}, got {self.rule!r}"
            )
        known = load_dictionary().instruments
        if self.instrument not in known:
            raise InputError(
                f"endpoint {self.name!r}: unknown instrument {self.instrument!r}; the data "
                f"dictionary has: {', '.join(known)}"
            )

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Endpoint:
        """Build an endpoint from a mapping (e.g. one entry of a declared analysis)."""
        unknown = set(spec) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"endpoint spec has unknown keys: {', '.join(sorted(unknown))}")
        return cls(**dict(spec))

    @property
    def description(self) -> str:
        """The endpoint in words (the ``param`` column)."""
        if self.label:
            return self.label
        if self.kind == "retreatment":
            return "time from first session to retreatment"
        inst = load_dictionary().instruments[self.instrument]  # type: ignore[index]
        who = f", {self.rater_role}" if self.rater_role else ""
        if self.rule == "improvement":
            what = f">= {self.threshold:g} point improvement on {self.instrument}{who}"
        elif self.rule == "percent_improvement":
            what = f">= {self.threshold:g}% improvement on {self.instrument}{who}"
        else:
            sign = ">=" if inst.higher_is_better else "<="
            what = f"{self.instrument} {sign} {self.threshold:g}{who}"
        if self.kind == "durability":
            return f"durability of response ({what}): to loss of response or retreatment"
        return f"time to {what}"


#: Endpoints of the microneedling analyses.
ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "first_improvement",
            "gb_qual",
            "improvement",
            1,
            "investigator",
            label="time to first visible improvement (>= 1 grade on gb_qual)",
        ),
        Endpoint(
            "full_result",
            "gb_quant",
            "percent_improvement",
            50,
            "investigator",
            label="time to full result (>= 50% improvement on gb_quant)",
        ),
        Endpoint(
            "gais_much_improved",
            "gais",
            "at_or_better",
            2,
            label="time to GAIS <= 2 (much improved or better)",
        ),
        Endpoint(
            "durability",
            "gb_quant",
            "percent_improvement",
            50,
            "investigator",
            kind="durability",
            label="durability of a >= 50% gb_quant improvement",
        ),
        Endpoint(
            "gais_durability",
            "gais",
            "at_or_better",
            2,
            kind="durability",
            label="durability of GAIS <= 2 (much improved or better)",
        ),
        Endpoint("retreatment", kind="retreatment"),
    )
}
