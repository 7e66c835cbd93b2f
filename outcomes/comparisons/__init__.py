"""Combination versus microneedling alone, by indication.

The public function is :func:`outcomes.compare` (in ``comparison.py``).
"""
