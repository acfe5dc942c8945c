"""The tidegate version, written into every export's manifest."""

__version__ = "0.2.0"
