"""ncanalyze: measure Neural Collapse from saved training dumps."""
__version__ = "0.1.0"
