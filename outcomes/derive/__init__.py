"""Derived analysis datasets: time-to-event (time-to-result) records in the spirit of ADaM ADTTE.

A time-to-event dataset has one row per treated unit and endpoint. Endpoints are declared, not
hard-coded: an :class:`Endpoint` names the instrument, the rule that defines the event (a grade
improvement, a percent improvement, or a level reached), the rater role to use and the kind of
time (onset of a result, durability of a result, or time to retreatment).

Modules: :mod:`~outcomes.derive.endpoints` (:class:`Endpoint`, :data:`ENDPOINTS`) and
:mod:`~outcomes.derive.tte` (:func:`derive_tte`, :data:`CENSORING_CODES`, :data:`TTE_COLUMNS`).

Conventions (one place, so every analysis counts days the same way)
-------------------------------------------------------------------
- Days are the study days of the schema (elapsed days since the subject's enrolment, day 0).
- ``start_day`` is the time origin: the unit's first session day for ``"onset"`` and
  ``"retreatment"`` endpoints, the day of the first response visit for ``"durability"``.
- ``time = adt - start_day`` is elapsed days, *without* the ``+ 1`` that date-based ADaM
  derivations (``AVAL = ADT - STARTDT + 1``) add: a visit 28 days after the first session has
  ``time = 28``.
- Results are seen only at visits, so the true event time is interval-censored:
  ``lower < T <= upper``, where ``lower`` is the last visit without the event (or the origin,
  0, when the event shows at the first visit after it) and ``upper`` is the first visit with
  it. Right-censored rows have ``upper = inf``. ``time`` is ``upper`` for events (the usual
  "first visit with the event" convention) and ``lower`` for censored rows. An event whose day
  is known exactly (a retreatment) has ``lower == upper == time``.
- ``event`` is 1 for an event and 0 for censoring (lifelines, R ``Surv``); ``cnsr`` is ADaM's
  CNSR: 0 for an event and a positive code for the censoring reason (:data:`CENSORING_CODES`).
  ``evntdesc`` describes the event and ``cnsdtdesc`` the censoring (the other one is empty).
  ``event_type`` names what ended the record (the endpoint's event, ``loss_of_response``,
  ``retreated``, ``lost_to_follow_up`` or ``censored``), for competing-risks analyses.
- Thresholds follow each instrument's ``direction`` in the data dictionary: an improvement is
  a decrease on a ``higher_worse`` scale and an increase on a ``higher_better`` one. Percent
  improvement is relative to ``|baseline|`` and is undefined when the baseline is 0 (such
  units are censored at the origin with their own code).
- Baseline is the last assessment on or before the first session day. When several raters of
  the chosen role score one visit, the visit's value is the mean of their scores.
"""
