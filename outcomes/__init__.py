"""outcomes: clinical outcomes research on microneedling (collagen induction therapy)."""

from outcomes.dictionary import load_dictionary

__version__ = "0.1.0"
__all__ = ["__version__", "load_dictionary"]
