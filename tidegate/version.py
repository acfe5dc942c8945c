"""The tidegate version, written into every export's manifest."""

__version__ = "0.1.0"
